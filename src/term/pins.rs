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

/// The key pinned for any of `relays` (the entries of one `--server` list: one cluster, one
/// key), if any: a key pinned for one of them is the key expected of all.
///
/// # Errors
/// As [`load`]; and when two of them have different keys pinned (naming both: one line is
/// wrong, or they are not one cluster).
pub fn load_any(path: &Path, relays: &[String]) -> Result<Option<PublicKey>, String> {
    let mut found: Option<(&str, PublicKey)> = None;
    for relay in relays {
        let Some(key) = load(path, relay)? else {
            continue;
        };
        match found {
            Some((first, pinned)) if pinned != key => {
                return Err(format!(
                    "the pinned keys {} hold one key for {first} and another for {relay}, but the relays of one --server list share one key: remove the wrong line, or give them in separate --server lists",
                    path.display()
                ));
            }
            Some(_) => {}
            None => found = Some((relay, key)),
        }
    }
    Ok(found.map(|(_, key)| key))
}

/// Pins `key` for each of `relays`, keeping every other line of the file.
///
/// # Errors
/// When the file or its directory cannot be written.
pub fn save_all(path: &Path, relays: &[String], key: PublicKey) -> io::Result<()> {
    for relay in relays {
        save(path, relay, key)?;
    }
    Ok(())
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

/// What first contact with a relay says: its key, and where it is pinned (for every relay of
/// the list, `pins`' names).
pub fn first_contact(
    server: SocketAddr,
    pins: Option<&(PathBuf, Vec<String>)>,
    key: PublicKey,
) -> Event {
    let Some((path, relays)) = pins else {
        return Event::Notice(format!("the relay at {server} has the key {key}"));
    };
    let (relay, all) = named(server, relays);
    match save_all(path, relays, key) {
        Ok(()) => Event::Notice(format!(
            "first contact with the relay at {relay}: its key {key} is pinned{all} in {}",
            path.display()
        )),
        Err(e) => Event::Error(format!(
            "first contact with the relay at {relay} (key {key}), but its key could not be pinned in {}: {e}",
            path.display()
        )),
    }
}

/// How a notice names the relay at `server` and the relays of its list (`relays`, as pinned):
/// by its name when the list has one, else by its address, and `" for a, b"`.
fn named(server: SocketAddr, relays: &[String]) -> (String, String) {
    match relays {
        [one] => (one.clone(), String::new()),
        all => (server.to_string(), format!(" for {}", all.join(", "))),
    }
}

/// What a relay offering another key than the pinned one says: both keys, and how to accept
/// the new one when it is right.
pub fn key_changed(
    server: SocketAddr,
    pins: Option<&(PathBuf, Vec<String>)>,
    pinned: PublicKey,
    offered: PublicKey,
) -> String {
    let whose = match pins.map(|(_, relays)| relays.as_slice()) {
        Some(all @ [_, _, ..]) => format!("the relays of its --server list ({})", all.join(", ")),
        _ => "it".to_owned(),
    };
    let accept = match pins {
        Some((path, relays)) => {
            let lines = match relays.as_slice() {
                [one] => format!("the line of {one}"),
                all => format!("the lines of {}", all.join(", ")),
            };
            format!(
                "remove {lines} from {} (or pass --relay-key {offered})",
                path.display()
            )
        }
        None => format!("pass --relay-key {offered}"),
    };
    format!(
        "the relay at {server} offered the key {offered}, not the key {pinned} pinned for {whose}: someone may be in between; if its key really changed (its operator sees it with `urc serve --fingerprint`), {accept}"
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
    fn one_key_for_every_relay_of_a_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_relays");
        let list = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let (a, b) = (Keypair::generate().public(), Keypair::generate().public());
        let ab = list(&["a.example:7707", "b.example:7707"]);
        assert_eq!(load_any(&path, &ab), Ok(None), "first contact");
        // A key pinned for one address of the list is the key expected at the others.
        save(&path, "b.example:7707", a).unwrap();
        assert_eq!(load_any(&path, &ab), Ok(Some(a)));
        assert_eq!(
            load_any(&path, &list(&["c.example:7707", "b.example:7707"])),
            Ok(Some(a))
        );
        // First contact through a list pins the key for each of its relays.
        save_all(&path, &list(&["c.example:7707", "d.example:7707"]), b).unwrap();
        assert_eq!(load(&path, "c.example:7707"), Ok(Some(b)));
        assert_eq!(load(&path, "d.example:7707"), Ok(Some(b)));
        // Two relays of one list with different keys pinned: one line is wrong.
        let e = load_any(
            &path,
            &list(&["a.example:7707", "b.example:7707", "c.example:7707"]),
        )
        .unwrap_err();
        assert!(
            e.contains("one key for b.example:7707 and another for c.example:7707"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn a_changed_key_in_a_list_names_every_line_to_remove() {
        let path = PathBuf::from("/home/u/.local/state/urc/known_relays");
        let (a, b) = (Keypair::generate().public(), Keypair::generate().public());
        let at: SocketAddr = "192.0.2.2:7707".parse().unwrap();
        let pins = (
            path.clone(),
            vec!["a.example:7707".into(), "b.example:7707".into()],
        );
        let said = key_changed(at, Some(&pins), a, b);
        assert!(
            said.starts_with(&format!(
                "the relay at 192.0.2.2:7707 offered the key {b}, not the key {a} pinned for the relays of its --server list (a.example:7707, b.example:7707)"
            )),
            "{said}"
        );
        assert!(
            said.ends_with(&format!(
                "remove the lines of a.example:7707, b.example:7707 from {} (or pass --relay-key {b})",
                path.display()
            )),
            "{said}"
        );
        let one = (path, vec!["a.example:7707".into()]);
        let said = key_changed(at, Some(&one), a, b);
        assert!(
            said.contains(&format!("not the key {a} pinned for it:")),
            "{said}"
        );
        assert!(
            said.contains("remove the line of a.example:7707 from"),
            "{said}"
        );
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
