//! `urc serve --store`: the file store, or the NATS servers a cluster's relays share, read from the command line.

use super::ServeArgs;

impl ServeArgs {
    /// Where the rooms' messages are kept.
    ///
    /// # Errors
    /// A one-line explanation when `--store` names neither `file` nor NATS servers.
    pub fn store(&self) -> Result<crate::serve::server::StoreChoice, String> {
        use crate::serve::server::StoreChoice;
        if self.store == "file" {
            if self.replicas.is_some() {
                return Err("--replicas is for --store nats://HOST:PORT: a file-store relay keeps one copy, on its own disk".into());
            }
            return Ok(StoreChoice::File);
        }
        let urls = nats_urls(&self.store)?;
        Ok(StoreChoice::Nats(crate::serve::nats::Options {
            urls,
            replicas: self.replicas.unwrap_or(1),
        }))
    }
}

/// The NATS servers `--store` names, each as `nats://HOST:PORT` (the scheme may be left out
/// after the first; the port is NATS's 4222 when not given).
///
/// # Errors
/// A one-line explanation naming what is not a server.
pub fn nats_urls(store: &str) -> Result<Vec<String>, String> {
    let wrong = |what: &str| {
        format!("--store must be file or nats://HOST:PORT[,HOST:PORT...], not {store:?} ({what})")
    };
    let rest = store
        .strip_prefix("nats://")
        .ok_or_else(|| wrong("it does not begin with nats://"))?;
    rest.split(',')
        .map(|server| {
            let server = server.trim();
            let server = server.strip_prefix("nats://").unwrap_or(server);
            if server.is_empty() || server.contains(['/', ' ', '@']) {
                return Err(wrong(&format!("{server:?} is not HOST:PORT")));
            }
            if server.matches(':').count() > 1 && !server.starts_with('[') {
                return Err(wrong(&format!(
                    "write the IPv6 address of {server:?} in brackets: [::1]:4222"
                )));
            }
            let with_port = match server.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    server.to_owned()
                }
                Some(_) if !server.starts_with('[') => {
                    return Err(wrong(&format!(
                        "{server:?} has no port number after its colon"
                    )));
                }
                _ => format!("{server}:4222"),
            };
            Ok(format!("nats://{with_port}"))
        })
        .collect()
}
