//! The command line's keys and relays: `--allow` files, `--relay-key`, the default identity file, and the name a relay is pinned under.

use std::path::PathBuf;

/// The key `--relay-key` gives (`urc serve --fingerprint` prints it).
///
/// # Errors
/// A one-line explanation when it is not a key.
pub fn relay_key(text: &str) -> Result<crate::proto::secure::keys::PublicKey, String> {
    text.parse()
        .map_err(|e| format!("invalid --relay-key: {e}"))
}

/// The keys of an `--allow` file.
///
/// # Errors
/// A one-line explanation naming the file and the line that holds no key.
pub fn allowed_keys(
    path: &std::path::Path,
) -> Result<std::collections::HashSet<crate::proto::secure::keys::PublicKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --allow {}: {e}", path.display()))?;
    let mut keys = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split_whitespace().next().unwrap_or_default();
        let key = key.parse().map_err(|e| {
            format!(
                "line {} of --allow {}: {e} (each line is a key, then a comment)",
                n + 1,
                path.display()
            )
        })?;
        keys.insert(key);
    }
    Ok(keys)
}

/// The client's key file when `--identity` is not given.
pub fn default_identity() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("urc").join("identity.key"))
}

/// An entry of `--server` as the pinned keys name the relay: as given, with the default port
/// when it has none.
pub fn relay_label(server: &str) -> String {
    let has_port = server.rsplit_once(':').is_some_and(|(host, port)| {
        port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
    });
    if has_port {
        server.to_owned()
    } else if server.contains(':') && !server.starts_with('[') {
        format!("[{server}]:{}", crate::serve::server::DEFAULT_PORT)
    } else {
        format!("{server}:{}", crate::serve::server::DEFAULT_PORT)
    }
}
