//! The relay under test: a real [`Server`] on `127.0.0.1:0` with a fresh log on disk (every
//! batch flushed with fdatasync, as `urc serve` does), on a thread of its own so that its CPU
//! time can be told apart from the simulated clients'.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use tempfile::TempDir;

use super::measure;
use crate::proto::secure::keys::PublicKey;
use crate::relay::{Config, Stats};
use crate::serve::server::{Server, StartError};

/// The relay's thread's name.
const RELAY_THREAD: &str = "urc-relay";

/// A relay running in this process.
#[derive(Debug)]
pub(super) struct InProcess {
    /// Where it listens.
    pub(super) addr: SocketAddr,
    /// Its public key, which the bench's clients pin.
    pub(super) key: PublicKey,
    /// Its data directory, removed when the relay is dropped.
    data: TempDir,
    stop: async_channel::Sender<()>,
    thread: JoinHandle<io::Result<Stats>>,
}

/// Silence after which the bench's relay drops a client: the clients ping every 5 s, but
/// while 10,000 join, each JOIN a presence datagram to everyone, the relay's socket buffer
/// overflows and drops pings, and with the default 30 s W3's clients were dropped before it
/// began (docs/performance.md).
pub(super) const TIMEOUT: Duration = Duration::from_secs(600);

/// The relay's settings for a bench of `clients` clients: the defaults, but with every
/// limit a benchmark would hit (the message and request rates, clients per address, clients
/// in all, the silence timeout) raised far out of the way; the handshakes an address may make
/// follow the request rate and clients per address, so every client's is allowed at once.
pub(super) fn config(clients: usize) -> Config {
    Config {
        timeout: TIMEOUT,
        max_clients: clients + 16,
        max_per_ip: clients + 16,
        rate: 1e9,
        burst: 1e9,
        request_rate: 1e6,
        ..Config::default()
    }
}

/// Starts a relay with `config` and a fresh data directory inside `parent` (the system's
/// temporary directory when `None`).
///
/// # Errors
/// When the directory cannot be made, the relay cannot start, or its thread cannot be spawned.
pub(super) fn start(parent: Option<&Path>, config: Config) -> Result<InProcess, String> {
    start_in(temp_dir(parent)?, config)
}

/// A fresh data directory inside `parent` (the system's temporary directory when `None`),
/// removed when dropped.
///
/// # Errors
/// When it cannot be made.
pub(super) fn temp_dir(parent: Option<&Path>) -> Result<TempDir, String> {
    match parent {
        Some(p) => tempfile::Builder::new().prefix("urc-bench-").tempdir_in(p),
        None => tempfile::Builder::new().prefix("urc-bench-").tempdir(),
    }
    .map_err(|e| format!("cannot make a temporary data directory: {e}"))
}

/// Starts a relay with `config` on the log in `data` (a fresh one when the directory is
/// empty), which it owns from now on.
///
/// # Errors
/// When the relay cannot start or its thread cannot be spawned.
pub(super) fn start_in(data: TempDir, config: Config) -> Result<InProcess, String> {
    let server = Server::bind(
        "127.0.0.1:0".parse().expect("an address"),
        data.path().to_owned(),
        config,
    )
    .map_err(|e: StartError| e.to_string())?;
    let addr = server
        .local_addr()
        .map_err(|e| format!("the relay has no address: {e}"))?;
    let key = server.public_key();
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let thread = std::thread::Builder::new()
        .name(RELAY_THREAD.into())
        .spawn(move || {
            smol::block_on(server.run(async move {
                // A closed channel stops the relay as well as a message does.
                stopped.recv().await.ok();
            }))
        })
        .map_err(|e| format!("cannot start the relay's thread: {e}"))?;
    Ok(InProcess {
        addr,
        key,
        data,
        stop,
        thread,
    })
}

impl InProcess {
    /// CPU time the relay's thread has used so far.
    pub(super) fn cpu(&self) -> Option<Duration> {
        let tids = measure::threads_named(RELAY_THREAD);
        if tids.is_empty() {
            return None;
        }
        tids.into_iter().map(measure::thread_cpu).sum()
    }

    /// The data directory (for the report).
    pub(super) fn data_dir(&self) -> PathBuf {
        self.data.path().to_owned()
    }

    /// Stops the relay after the turn under way and returns what it counted.
    ///
    /// # Errors
    /// When its socket failed or its thread panicked.
    pub(super) fn stop(self) -> Result<Stats, String> {
        self.stop_keeping().map(|(stats, _)| stats)
    }

    /// [`InProcess::stop`], handing back its data directory (removed when dropped).
    ///
    /// # Errors
    /// When its socket failed or its thread panicked.
    pub(super) fn stop_keeping(self) -> Result<(Stats, TempDir), String> {
        self.stop.close();
        let stats = self
            .thread
            .join()
            .map_err(|_| "the relay's thread panicked".to_owned())?
            .map_err(|e| format!("the relay's socket failed: {e}"))?;
        Ok((stats, self.data))
    }
}
