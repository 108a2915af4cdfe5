//! Where the terminal client remembers, per relay, the last message its user saw and when:
//! `$XDG_STATE_HOME/urc/last-seen.json` (`~/.local/state/urc/last-seen.json`).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::client::Seen;

/// The file, if the system has a place for it.
pub fn default_path() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_dir)
        .map(|d| d.join("urc").join("last-seen.json"))
}

/// What the user last saw of `relay` (its address, as given), if anything.
pub fn load(path: &Path, relay: &str) -> Option<Seen> {
    read(path).remove(relay)
}

/// Remembers what the user last saw of `relay`, keeping what the file says of other relays.
///
/// # Errors
/// When the file or its directory cannot be written.
pub fn save(path: &Path, relay: &str, seen: Seen) -> io::Result<()> {
    let mut all = read(path);
    all.insert(relay.to_owned(), seen);
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

/// At the end of a session in a terminal: saves `delivered`, the last message shown, for
/// "since you were last here" next time, in `file` (its path, and the relay's name in it),
/// when the client was in the room.
pub fn remember(file: Option<&(PathBuf, String)>, joined: bool, delivered: u64) {
    let (Some((path, relay)), true) = (file, joined) else {
        return;
    };
    let seen = Seen {
        seq: delivered,
        at: crate::proto::message::Millis::now(),
    };
    if let Err(e) = save(path, relay, seen) {
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
        assert_eq!(load(&path, "127.0.0.1:7707"), None);
        let a = Seen {
            seq: 42,
            at: Millis(1_795_593_600_000),
        };
        let b = Seen {
            seq: 7,
            at: Millis(1_795_593_600_999),
        };
        save(&path, "127.0.0.1:7707", a).unwrap();
        save(&path, "chat.example:7707", b).unwrap();
        assert_eq!(load(&path, "127.0.0.1:7707"), Some(a));
        assert_eq!(load(&path, "chat.example:7707"), Some(b));
        fs::write(&path, "not json").unwrap();
        assert_eq!(load(&path, "127.0.0.1:7707"), None);
    }
}
