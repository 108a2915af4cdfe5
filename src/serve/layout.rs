//! Where a data directory keeps each room: `<data>/rooms/<room>/`, its message log and its stored-seq; and the upgrade of a directory of the one-room relay, whose log was `<data>/messages.jsonl`, to the room `lobby`, every seq and id kept.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use crate::proto::room::DEFAULT_ROOM;
use crate::proto::room::{check_room, room_key};
use crate::serve::store::{LOG_FILE, mark::MARK_FILE};

/// The directory of the rooms in `data`.
fn rooms(data: &Path) -> PathBuf {
    data.join("rooms")
}

/// The directory of `room` (a name [`check_room`](crate::proto::room::check_room) took) in
/// `data`: its log and its stored-seq, under the room's key.
pub fn room_dir(data: &Path, room: &str) -> PathBuf {
    rooms(data).join(room_key(room))
}

/// The rooms whose directories are in `data`, by key, sorted; a directory under `rooms/` whose
/// name is no room's key is left alone, and said so.
///
/// # Errors
/// A one-line explanation when the directory of the rooms cannot be read.
pub fn rooms_in(data: &Path) -> Result<Vec<String>, String> {
    let dir = rooms(data);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read the directory {}: {e}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| format!("cannot read the directory {}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && check_room(&name).is_ok() && room_key(&name) == name {
            names.push(name);
        } else {
            tracing::warn!(
                "{} is not a room's directory (a room's is its name in lower case): left alone",
                entry.path().display()
            );
        }
    }
    names.sort();
    Ok(names)
}

/// The directory of the room [`DEFAULT_ROOM`] in `data`, made if need be, after the one-room
/// log of an earlier relay is moved into it (and the relay's log says so): what
/// `urc serve` and `--repair-log` open.
///
/// # Errors
/// A one-line explanation when the log cannot be moved or the directory made.
pub fn lobby(data: &Path) -> Result<PathBuf, String> {
    let dir = room_dir(data, DEFAULT_ROOM);
    if upgrade(data)? {
        tracing::info!(
            "moved the message log of this one-room data directory into {}: it is the room {DEFAULT_ROOM}, every seq and id kept",
            dir.display()
        );
    }
    fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot make the directory {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Moves the one-room log of an earlier relay (`<data>/messages.jsonl` and `stored-seq`)
/// into the room [`DEFAULT_ROOM`], unchanged; true when it did. Each file moves by a rename,
/// the stored-seq first, so that a start cut short moves the rest the next time, and a log
/// never goes without its mark.
///
/// # Errors
/// A one-line explanation when a file cannot be moved, or when both places hold a log.
fn upgrade(data: &Path) -> Result<bool, String> {
    let old = data.join(LOG_FILE);
    let old_mark = data.join(MARK_FILE);
    if !old.exists() && !old_mark.exists() {
        return Ok(false);
    }
    let dir = room_dir(data, DEFAULT_ROOM);
    let new = dir.join(LOG_FILE);
    for (one, other) in [(&old, &new), (&old_mark, &dir.join(MARK_FILE))] {
        if one.exists() && other.exists() {
            return Err(format!(
                "both {} (of a relay before rooms) and {} (the room {DEFAULT_ROOM}'s) are there: move the one not in use away",
                one.display(),
                other.display()
            ));
        }
    }
    let synced = |d: &Path| {
        fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("cannot sync the directory {}: {e}", d.display()))
    };
    fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot make the directory {}: {e}", dir.display()))?;
    // Each move on disk before the next (the directories' entries).
    for (what, to) in [(&old_mark, dir.join(MARK_FILE)), (&old, new)] {
        if what.exists() {
            fs::rename(what, &to).map_err(|e: io::Error| {
                format!("cannot move {} to {}: {e}", what.display(), to.display())
            })?;
            for d in [dir.as_path(), &rooms(data), data] {
                synced(d)?;
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_room_log_becomes_the_lobby_unchanged() {
        let d = tempfile::tempdir().unwrap();
        let log = "{\"seq\":1}\n{\"seq\":2}\n";
        fs::write(d.path().join(LOG_FILE), log).unwrap();
        fs::write(d.path().join(MARK_FILE), "2\n").unwrap();
        assert!(upgrade(d.path()).unwrap());
        let dir = room_dir(d.path(), DEFAULT_ROOM);
        assert_eq!(fs::read_to_string(dir.join(LOG_FILE)).unwrap(), log);
        assert_eq!(fs::read_to_string(dir.join(MARK_FILE)).unwrap(), "2\n");
        assert!(!d.path().join(LOG_FILE).exists() && !d.path().join(MARK_FILE).exists());
        assert!(!upgrade(d.path()).unwrap(), "nothing more to move");
    }

    #[test]
    fn an_upgrade_cut_short_after_the_mark_moves_the_log_the_next_time() {
        let d = tempfile::tempdir().unwrap();
        let dir = room_dir(d.path(), DEFAULT_ROOM);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(MARK_FILE), "1\n").unwrap();
        fs::write(d.path().join(LOG_FILE), "{\"seq\":1}\n").unwrap();
        assert!(upgrade(d.path()).unwrap());
        assert!(dir.join(LOG_FILE).exists());
    }

    #[test]
    fn two_logs_are_refused_naming_both() {
        let d = tempfile::tempdir().unwrap();
        let dir = room_dir(d.path(), DEFAULT_ROOM);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(LOG_FILE), "").unwrap();
        fs::write(d.path().join(LOG_FILE), "").unwrap();
        let e = upgrade(d.path()).unwrap_err();
        assert!(
            e.contains("both") && e.contains("rooms/lobby/messages.jsonl"),
            "{e}"
        );
    }
}
