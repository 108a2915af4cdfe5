//! `--server A,B,C`: the relays of one cluster, each entry HOST or HOST:PORT resolved to every address it has, and the names their one key is pinned under.

use std::net::SocketAddr;

use super::{relay_label, resolve_all};

/// The relays `--server` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Servers {
    /// Every address, in the order given (each host's IPv4 addresses first), each once: the
    /// order the client tries them in.
    pub addrs: Vec<SocketAddr>,
    /// Each entry as the pinned keys name it (as given, with the default port when it has
    /// none), each once: one key is pinned under all of them.
    pub labels: Vec<String>,
}

/// The relays of `text`: entries separated by commas, each `HOST` or `HOST:PORT` (port 7707
/// when not given), a host with several addresses giving each.
///
/// # Errors
/// A one-line explanation when an entry is empty or names no address.
pub fn servers(text: &str) -> Result<Servers, String> {
    let mut found = Servers {
        addrs: Vec::new(),
        labels: Vec::new(),
    };
    let entries: Vec<&str> = text.split(',').map(str::trim).collect();
    // Said before any name is looked up.
    if entries.contains(&"") {
        return Err(format!(
            "--server {text:?} has an empty entry: give HOST or HOST:PORT, separated by commas"
        ));
    }
    for entry in entries {
        for addr in resolve_all("--server", entry)? {
            if !found.addrs.contains(&addr) {
                found.addrs.push(addr);
            }
        }
        let label = relay_label(entry);
        if !found.labels.contains(&label) {
            found.labels.push(label);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(text: &str) -> Vec<String> {
        let s = servers(text).unwrap();
        s.addrs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn each_entry_takes_the_default_port_and_keeps_its_place() {
        assert_eq!(addrs("127.0.0.1"), ["127.0.0.1:7707"]);
        assert_eq!(
            addrs("127.0.0.1:9000,127.0.0.2, [::1]:9001 ,::2"),
            [
                "127.0.0.1:9000",
                "127.0.0.2:7707",
                "[::1]:9001",
                "[::2]:7707"
            ]
        );
        let s = servers("127.0.0.2, localhost:9000").unwrap();
        assert_eq!(s.labels, ["127.0.0.2:7707", "localhost:9000"]);
    }

    #[test]
    fn a_host_with_several_addresses_gives_each_ipv4_first() {
        let all = servers("localhost:9000").unwrap().addrs;
        assert_eq!(all[0], "127.0.0.1:9000".parse().unwrap());
        assert!(all.iter().all(|a| a.port() == 9000 && a.ip().is_loopback()));
        let v4 = all.iter().take_while(|a| a.is_ipv4()).count();
        assert!(all[v4..].iter().all(SocketAddr::is_ipv6), "{all:?}");
        assert_eq!(
            servers("localhost:9000").unwrap().labels,
            ["localhost:9000"]
        );
    }

    #[test]
    fn an_address_given_twice_is_tried_once() {
        assert_eq!(
            addrs("127.0.0.1,127.0.0.1:7707,127.0.0.3"),
            ["127.0.0.1:7707", "127.0.0.3:7707"]
        );
        assert_eq!(
            servers("127.0.0.1,127.0.0.1:7707").unwrap().labels,
            ["127.0.0.1:7707"]
        );
    }

    #[test]
    fn bad_lists_get_one_line_naming_the_entry() {
        for (text, says) in [
            (
                "a.invalid,,b",
                "--server \"a.invalid,,b\" has an empty entry",
            ),
            ("127.0.0.1,", "--server \"127.0.0.1,\" has an empty entry"),
            ("", "--server \"\" has an empty entry"),
            (
                "127.0.0.1,no-such-host.invalid",
                "cannot resolve --server no-such-host.invalid: ",
            ),
            (
                "127.0.0.1:99999",
                "cannot resolve --server 127.0.0.1:99999: ",
            ),
        ] {
            let e = servers(text).unwrap_err();
            assert!(e.starts_with(says), "{text}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
