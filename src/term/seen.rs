//! Where the terminal client remembers, per relay and room, the last message its user saw and
//! when: `$XDG_STATE_HOME/urc/last-seen.json` (`~/.local/state/urc/last-seen.json`), keyed
//! `"<relay> #<room>"` (a key of the relay alone, from before rooms, is its default room's), and
//! per private conversation, keyed `"<relay> @<name's key>"`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::client::Seen;
use crate::proto::dm::{DM_MARK, is_dm, target_key};

/// The file, if the system has a place for it.
pub fn default_path() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_dir)
        .map(|d| d.join("urc").join("last-seen.json"))
}

/// What the user last saw of `room` on `relay` (its address, as given), if anything.
pub fn load(path: &Path, relay: &str, room: &str) -> Option<Seen> {
    let mut all = read(path);
    all.remove(&key(relay, room)).or_else(|| {
        (room == crate::proto::room::DEFAULT_ROOM)
            .then(|| all.remove(relay))
            .flatten()
    })
}

/// The file's key for `room` (or `@` and a name) on `relay`.
fn key(relay: &str, room: &str) -> String {
    if is_dm(room) {
        format!("{relay} {}", target_key(room))
    } else {
        format!("{relay} #{room}")
    }
}

/// What the user last saw of each private conversation on `relay`, by its
/// [`target_key`].
pub fn load_dms(path: &Path, relay: &str) -> HashMap<String, Seen> {
    let prefix = format!("{relay} {DM_MARK}");
    (read(path).into_iter())
        .filter_map(|(k, seen)| {
            let name = k.strip_prefix(&prefix)?;
            Some((format!("{DM_MARK}{name}"), seen))
        })
        .collect()
}

/// Remembers what the user last saw of each of `rooms` on `relay`, keeping what the file says
/// of other rooms and relays.
///
/// # Errors
/// When the file or its directory cannot be written.
pub fn save(path: &Path, relay: &str, rooms: &[(String, Seen)]) -> io::Result<()> {
    let mut all = read(path);
    for (room, seen) in rooms {
        if room == crate::proto::room::DEFAULT_ROOM {
            all.remove(relay);
        }
        all.insert(key(relay, room), *seen);
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    // Written aside, then renamed over: a crash leaves the old file or the new, never half.
    let tmp = path.with_extension("json.tmp");
    fs::write(
        &tmp,
        serde_json::to_vec_pretty(&all).map_err(io::Error::other)?,
    )?;
    fs::rename(&tmp, path)
}

/// At the end of a session in a terminal: saves the last message shown in each of `rooms`
/// (a name and a seq), for "since you were last here" next time, in `file` (its path, and
/// the relay's name in it), when the client was joined.
pub fn remember(file: Option<&(PathBuf, String)>, joined: bool, rooms: &[(String, u64)]) {
    let (Some((path, relay)), true) = (file, joined) else {
        return;
    };
    let at = crate::proto::message::Millis::now();
    let rooms: Vec<(String, Seen)> = (rooms.iter())
        .map(|(room, seq)| (room.clone(), Seen { seq: *seq, at }))
        .collect();
    if let Err(e) = save(path, relay, &rooms) {
        // Only a convenience for next time: the session itself went well.
        eprintln!(
            "urc: cannot remember where you left off ({}): {e}",
            path.display()
        );
    }
}

/// The whole file; a missing or damaged file is as good as empty (it is only a convenience).
fn read(path: &Path) -> BTreeMap<String, Seen> {
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::message::Millis;

    #[test]
    fn remembered_per_relay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("urc").join("last-seen.json");
        let here = "127.0.0.1:7707";
        assert_eq!(load(&path, here, "lobby"), None);
        let a = Seen {
            seq: 42,
            at: Millis(1_795_593_600_000),
        };
        let b = Seen {
            seq: 7,
            at: Millis(1_795_593_600_999),
        };
        save(&path, here, &[("lobby".into(), a), ("ops".into(), b)]).unwrap();
        save(&path, "chat.example:7707", &[("lobby".into(), b)]).unwrap();
        assert_eq!(load(&path, here, "lobby"), Some(a));
        assert_eq!(load(&path, here, "ops"), Some(b));
        assert_eq!(load(&path, here, "lunch"), None);
        assert_eq!(load(&path, "chat.example:7707", "lobby"), Some(b));
        // A private conversation, under its name's key, however the name is spelt.
        save(&path, here, &[("@Bob".into(), b)]).unwrap();
        assert_eq!(load(&path, here, "@BOB"), Some(b));
        assert_eq!(load_dms(&path, here).get("@bob"), Some(&b));
        assert_eq!(load_dms(&path, here).len(), 1);
        assert_eq!(load(&path, here, "bob"), None);
        // A file of before rooms: the relay's key is its lobby's, and is replaced by it.
        let old = serde_json::json!({ here: a });
        fs::write(&path, old.to_string()).unwrap();
        assert_eq!(load(&path, here, "lobby"), Some(a));
        assert_eq!(load(&path, here, "ops"), None);
        save(&path, here, &[("lobby".into(), b)]).unwrap();
        assert_eq!(load(&path, here, "lobby"), Some(b));
        assert!(
            !fs::read_to_string(&path)
                .unwrap()
                .contains("\"127.0.0.1:7707\":")
        );
        fs::write(&path, "not json").unwrap();
        assert_eq!(load(&path, here, "lobby"), None);
    }
}
