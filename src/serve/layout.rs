//! Where a data directory keeps each room: `<data>/rooms/<room>/` (a private conversation `<data>/dm/<a>+<b>/`), its message log (the last seq stored in each is a line of `<data>/stored-seqs`, see `store/mark.rs`); and the upgrade of a directory of the one-room relay, whose log was `<data>/messages.jsonl`, to the room `lobby`, every seq and id kept.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::proto::dm::{DM_MARK, dm_parties};
pub use crate::proto::room::DEFAULT_ROOM;
use crate::proto::room::{check_room, room_key};
use crate::serve::store::{LOG_FILE, mark::LEGACY_FILE};

/// The directory of the rooms in `data`.
fn rooms(data: &Path) -> PathBuf {
    data.join("rooms")
}

/// The directory of the private conversations in `data`.
fn dms(data: &Path) -> PathBuf {
    data.join("dm")
}

/// The longest name of a private conversation's directory: one whose key is longer is
/// named by its key's hash (`~` and 32 hex digits), and keeps its key in the file [`KEY_FILE`].
const MAX_DM_DIR: usize = 240;
/// The file of a hash-named conversation's directory that holds its key.
pub const KEY_FILE: &str = "key";

/// The directory of `room` in `data`: a room's (a name
/// [`check_room`](crate::proto::room::check_room) took) under its key, in `rooms/`; a private
/// conversation's ([`dm_key`](crate::proto::dm::dm_key), `@a+b`) as `a+b` in `dm/`, or, when
/// that is too long for a file's name, by its hash.
pub fn room_dir(data: &Path, room: &str) -> PathBuf {
    match room.strip_prefix(DM_MARK) {
        Some(part) if part.len() > MAX_DM_DIR => dms(data).join(hashed(room)),
        Some(part) => dms(data).join(part),
        None => rooms(data).join(room_key(room)),
    }
}

/// The name of the directory of the private conversation `key` when its key is too long.
fn hashed(key: &str) -> String {
    let hash = blake3::hash(key.as_bytes()).to_hex();
    format!("~{}", &hash[..32])
}

/// Makes the directory of `room` in `data` (see [`room_dir`]), with the file of its key if it
/// is named by a hash.
///
/// # Errors
/// The directory or the file cannot be made.
pub fn make_room_dir(data: &Path, room: &str) -> io::Result<PathBuf> {
    let dir = room_dir(data, room);
    fs::create_dir_all(&dir)?;
    if dir
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('~'))
    {
        let file = dir.join(KEY_FILE);
        if !file.exists() {
            fs::write(&file, format!("{room}\n"))?;
            fs::File::open(&file)?.sync_all()?;
            fs::File::open(&dir)?.sync_all()?;
        }
    }
    Ok(dir)
}

/// `dir` and the directories it is in, up to and with the data directory `data`: what must be
/// flushed for a name made in `dir` to be found after a crash.
pub fn up_to_data(dir: &Path, data: &Path) -> Vec<PathBuf> {
    (dir.ancestors())
        .take_while(|d| d.starts_with(data))
        .map(Path::to_owned)
        .collect()
}

/// The key of the private conversation whose directory in `dm/` is `entry`, if it is one.
fn dm_of_dir(entry: &Path) -> Option<String> {
    let name = entry.file_name()?.to_string_lossy().into_owned();
    let key = if name.starts_with('~') {
        let key = fs::read_to_string(entry.join(KEY_FILE)).ok()?;
        let key = key.trim_end().to_owned();
        (hashed(&key) == name).then_some(key)?
    } else {
        format!("{DM_MARK}{name}")
    };
    dm_parties(&key)?;
    (room_dir(Path::new(""), &key).file_name()? == entry.file_name()?).then_some(key)
}

/// The rooms and private conversations whose directories are in `data`, by key (the rooms
/// sorted, then the conversations); a directory under `rooms/` whose name is no room's key is
/// left alone, and said so.
///
/// # Errors
/// A one-line explanation when the directory of the rooms cannot be read.
pub fn rooms_in(data: &Path) -> Result<Vec<String>, String> {
    let mut names = rooms_only(data)?;
    names.extend(dms_in(data)?);
    Ok(names)
}

/// The private conversations whose directories are in `data`, by key, sorted; a directory
/// under `dm/` that is none is left alone, and said so.
fn dms_in(data: &Path) -> Result<Vec<String>, String> {
    let dir = dms(data);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read the directory {}: {e}", dir.display())),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| format!("cannot read the directory {}: {e}", dir.display()))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        match dm_of_dir(&entry.path()).filter(|_| is_dir) {
            Some(key) => keys.push(key),
            None => tracing::warn!(
                "{} is not a private conversation's directory: left alone",
                entry.path().display()
            ),
        }
    }
    keys.sort();
    Ok(keys)
}

/// Moves the private conversations of the name whose key is `party` out of `data`'s `dm/`, into
/// `released/dm/` (a name already there gets `.2`, `.3`…): a name freed for another key to
/// take must not hand them its earlier owner's conversations. Returns where each went.
///
/// # Errors
/// A one-line explanation when a directory cannot be read or moved.
pub fn release_dms(data: &Path, party: &str) -> Result<Vec<PathBuf>, String> {
    let aside = data.join("released").join("dm");
    let mut moved = Vec::new();
    for key in dms_in(data)? {
        let Some((a, b)) = dm_parties(&key) else {
            continue;
        };
        if a != party && b != party {
            continue;
        }
        let from = room_dir(data, &key);
        let name = from.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        fs::create_dir_all(&aside)
            .map_err(|e| format!("cannot make the directory {}: {e}", aside.display()))?;
        let mut to = aside.join(&name);
        let mut k = 1;
        while to.exists() {
            k += 1;
            to = aside.join(format!("{name}.{k}"));
        }
        fs::rename(&from, &to)
            .map_err(|e| format!("cannot move {} to {}: {e}", from.display(), to.display()))?;
        for d in [aside.as_path(), &dms(data)] {
            fs::File::open(d)
                .and_then(|f| f.sync_all())
                .map_err(|e| format!("cannot sync the directory {}: {e}", d.display()))?;
        }
        moved.push(to);
    }
    Ok(moved)
}

/// The rooms (not the private conversations) whose directories are in `data`.
fn rooms_only(data: &Path) -> Result<Vec<String>, String> {
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
    let old_mark = data.join(LEGACY_FILE);
    if !old.exists() && !old_mark.exists() {
        return Ok(false);
    }
    let dir = room_dir(data, DEFAULT_ROOM);
    let new = dir.join(LOG_FILE);
    for (one, other) in [(&old, &new), (&old_mark, &dir.join(LEGACY_FILE))] {
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
    for (what, to) in [(&old_mark, dir.join(LEGACY_FILE)), (&old, new)] {
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
        fs::write(d.path().join(LEGACY_FILE), "2\n").unwrap();
        assert!(upgrade(d.path()).unwrap());
        let dir = room_dir(d.path(), DEFAULT_ROOM);
        assert_eq!(fs::read_to_string(dir.join(LOG_FILE)).unwrap(), log);
        assert_eq!(fs::read_to_string(dir.join(LEGACY_FILE)).unwrap(), "2\n");
        assert!(!d.path().join(LOG_FILE).exists() && !d.path().join(LEGACY_FILE).exists());
        assert!(!upgrade(d.path()).unwrap(), "nothing more to move");
    }

    #[test]
    fn an_upgrade_cut_short_after_the_mark_moves_the_log_the_next_time() {
        let d = tempfile::tempdir().unwrap();
        let dir = room_dir(d.path(), DEFAULT_ROOM);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(LEGACY_FILE), "1\n").unwrap();
        fs::write(d.path().join(LOG_FILE), "{\"seq\":1}\n").unwrap();
        assert!(upgrade(d.path()).unwrap());
        assert!(dir.join(LOG_FILE).exists());
    }

    #[test]
    fn private_conversations_are_found_again_however_long_their_names() {
        let d = tempfile::tempdir().unwrap();
        let key = |a: &str, b: &str| {
            use crate::proto::name::name_key;
            crate::proto::dm::dm_key(&name_key(a), &name_key(b))
        };
        let short = key("alice", "Bob");
        let long = key(&"王".repeat(32), &"明".repeat(32));
        for k in [&short, &long] {
            make_room_dir(d.path(), k).unwrap();
        }
        assert!(d.path().join("dm/alice+bob").is_dir());
        let hashed = room_dir(d.path(), &long);
        assert!(
            hashed.file_name().unwrap().len() < 40,
            "{}",
            hashed.display()
        );
        fs::create_dir_all(room_dir(d.path(), "ops")).unwrap();
        fs::create_dir_all(d.path().join("dm/not-one")).unwrap();
        let mut want = vec![short.clone(), long.clone()];
        want.sort();
        want.insert(0, "ops".to_owned());
        assert_eq!(rooms_in(d.path()).unwrap(), want);
    }

    #[test]
    fn a_released_names_conversations_are_moved_aside() {
        let d = tempfile::tempdir().unwrap();
        for (a, b) in [("alice", "bob"), ("bob", "carol"), ("alice", "carol")] {
            make_room_dir(d.path(), &crate::proto::dm::dm_key(a, b)).unwrap();
        }
        fs::create_dir_all(d.path().join("released/dm/alice+bob")).unwrap();
        let moved = release_dms(d.path(), "bob").unwrap();
        assert_eq!(moved.len(), 2, "{moved:?}");
        assert!(d.path().join("released/dm/alice+bob.2").is_dir());
        assert!(d.path().join("released/dm/bob+carol").is_dir());
        assert_eq!(rooms_in(d.path()).unwrap(), ["@alice+carol"]);
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
