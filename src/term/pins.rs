//! The relays' keys the terminal client pinned on first contact, as ssh keeps known_hosts, and what it tells the user of them: `$XDG_STATE_HOME/urc/known_relays` (`~/.local/state/urc/known_relays`), one `RELAY KEY` a line.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::client::Event;
use crate::proto::secure::keys::PublicKey;

/// The file, if the system has a place for it.
pub fn default_path() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_dir)
        .map(|d| d.join("urc").join("known_relays"))
}

const HEADER: &str = "# urc: the relays' keys, pinned on first contact; a relay that offers another key is refused\n# (remove its line to accept a new key, after checking it with `urc serve --fingerprint`)\n";

/// The key pinned for `relay` (its address, as given), if any.
///
/// # Errors
/// A one-line explanation when the file exists but cannot be read, or its line for `relay`
/// holds no key: a damaged pin must not silently become a first contact.
pub fn load(path: &Path, relay: &str) -> Result<Option<PublicKey>, String> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot read the pinned keys {}: {e}",
                path.display()
            ));
        }
    };
    for (n, line) in text.lines().enumerate() {
        let Some((name, key)) = line.split_once(' ') else {
            continue;
        };
        if name == relay {
            return key.parse().map(Some).map_err(|e| {
                format!(
                    "line {} of the pinned keys {}: {e}: fix or remove it",
                    n + 1,
                    path.display()
                )
            });
        }
    }
    Ok(None)
}

/// Pins `key` for `relay`, keeping every other line of the file.
///
/// # Errors
/// When the file or its directory cannot be written.
pub fn save(path: &Path, relay: &str, key: PublicKey) -> io::Result<()> {
    let old = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => HEADER.to_owned(),
        Err(e) => return Err(e),
    };
    let mut text: String = old
        .lines()
        .filter(|l| l.split_once(' ').is_none_or(|(name, _)| name != relay))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!("{relay} {key}\n"));
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    // Written aside, then renamed over: a crash leaves the old file or the new, never half.
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

/// What first contact with a relay says: its key, and where it is pinned.
pub fn first_contact(
    server: SocketAddr,
    pins: Option<&(PathBuf, String)>,
    key: PublicKey,
) -> Event {
    let Some((path, relay)) = pins else {
        return Event::Notice(format!("the relay at {server} has the key {key}"));
    };
    match save(path, relay, key) {
        Ok(()) => Event::Notice(format!(
            "first contact with the relay at {relay}: its key {key} is pinned in {}",
            path.display()
        )),
        Err(e) => Event::Error(format!(
            "first contact with the relay at {relay} (key {key}), but its key could not be pinned in {}: {e}",
            path.display()
        )),
    }
}

/// What a relay offering another key than the pinned one says: both keys, and how to accept
/// the new one when it is right.
pub fn key_changed(
    server: SocketAddr,
    pins: Option<&(PathBuf, String)>,
    pinned: PublicKey,
    offered: PublicKey,
) -> String {
    let accept = match pins {
        Some((path, relay)) => format!(
            "remove the line of {relay} from {} (or pass --relay-key {offered})",
            path.display()
        ),
        None => format!("pass --relay-key {offered}"),
    };
    format!(
        "the relay at {} offered the key {offered}, not the key {pinned} pinned for it: someone may be in between; if its key really changed (its operator sees it with `urc serve --fingerprint`), {accept}",
        server
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::secure::keys::Keypair;

    #[test]
    fn pinned_per_relay_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("urc/known_relays");
        let (a, b) = (Keypair::generate().public(), Keypair::generate().public());
        assert_eq!(load(&path, "127.0.0.1:7707"), Ok(None));
        save(&path, "127.0.0.1:7707", a).unwrap();
        save(&path, "chat.example:7707", b).unwrap();
        assert_eq!(load(&path, "127.0.0.1:7707"), Ok(Some(a)));
        assert_eq!(load(&path, "chat.example:7707"), Ok(Some(b)));
        save(&path, "127.0.0.1:7707", b).unwrap();
        assert_eq!(load(&path, "127.0.0.1:7707"), Ok(Some(b)));
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# urc:"), "{text}");
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 2);
    }

    #[test]
    fn a_damaged_pin_is_an_error_not_a_first_contact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_relays");
        fs::write(&path, "127.0.0.1:7707 garbage\n").unwrap();
        let e = load(&path, "127.0.0.1:7707").unwrap_err();
        assert!(e.contains("line 1 of the pinned keys"), "{e}");
    }
}
