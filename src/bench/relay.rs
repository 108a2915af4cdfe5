//! The relay under test, wherever `--relay` puts it: `urc serve` in a process the bench starts
//! (the default), a real [`Server`] on a thread of this process, or a relay already running on
//! this machine. The first two get a fresh log on disk (every batch flushed with fdatasync, as
//! `urc serve` does) and limits raised out of the benchmark's way; each is measured apart
//! from the simulated clients: its process (or its thread) from `/proc`. Processes of their
//! own may be several (W5: three relays on one NATS store, sharing one relay key).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::child::{RelayChild, Spawn};
use super::cleanup::{self, Ticket};
use super::measure::{self, Proc};
use crate::proto::secure::keys::PublicKey;
use crate::relay::{Config, Stats};
use crate::serve::layout;
use crate::serve::server::{KEY_FILE, Server, StartError};

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

/// A relay in a process of its own with its data directory.
#[derive(Debug)]
pub(super) struct Apart {
    child: RelayChild,
    dir: TempDir,
    /// Its directory, removed if the bench is stopped by a signal.
    _tracked: Ticket,
}

/// Silence after which the bench's relay drops a client: the clients ping every 5 s, but
/// while 10,000 join, each JOIN a presence datagram to everyone, the relay's socket buffer
/// overflows and drops pings, and with the default 30 s W3's clients were dropped before it
/// began (docs/performance.md).
pub(super) const TIMEOUT: Duration = Duration::from_secs(600);

/// Where the relay under test runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayAt {
    /// `urc serve` in a process the bench starts and stops: this program, or the one named.
    Child(Option<PathBuf>),
    /// A relay on a thread of the bench's own process, sharing its memory.
    InProcess,
    /// A relay already running on this machine, at this address (its key, when known; else
    /// the clients learn it on first contact). Its limits must let the load through.
    Running(SocketAddr, Option<PublicKey>),
}

impl RelayAt {
    /// Reads `--relay`: `child`, `in-process`, or the address of a relay running on this
    /// machine.
    ///
    /// # Errors
    /// A one-line explanation when it is none of these.
    pub fn parse(
        text: &str,
        program: Option<PathBuf>,
        key: Option<PublicKey>,
    ) -> Result<RelayAt, String> {
        match text {
            "child" => Ok(RelayAt::Child(program)),
            "in-process" => Ok(RelayAt::InProcess),
            addr => addr.parse().map(|a| RelayAt::Running(a, key)).map_err(|_| {
                format!(
                    "--relay takes child, in-process or the address of a running relay (127.0.0.1:7707, say), not {addr:?}"
                )
            }),
        }
    }

    /// What it is, for the progress line.
    pub(super) fn name(&self) -> String {
        match self {
            RelayAt::Child(None) => "urc serve in a process of its own".into(),
            RelayAt::Child(Some(p)) => format!("{} serve in a process of its own", p.display()),
            RelayAt::InProcess => "in this process".into(),
            RelayAt::Running(addr, _) => format!("running on {addr}"),
        }
    }
}

/// The relay under test, started or found.
#[derive(Debug)]
pub(super) enum Relay {
    /// In the bench's process.
    InProcess(InProcess),
    /// `urc serve` started by the bench, once or more (on one shared store), each with the
    /// data directory it was given.
    Child(Vec<Apart>, Spawn),
    /// A relay running before the bench, and its process when it could be found.
    Running(SocketAddr, Option<PublicKey>, Option<u32>),
}

impl Relay {
    /// Starts (or finds) the relay for a bench of `clients`, its data directory inside
    /// `parent` (the system's temporary directory when `None`) holding the directories of
    /// `rooms` already, as a relay that served them before has them: the measured phase
    /// measures their chat, not the filesystem making a thousand directories in its first
    /// second (on ext4 without a journal, each new inode looks past every one deleted in the
    /// last minute: a bench run just after another took about 1 ms a room). `store` is what
    /// `urc serve` is given for its store (nothing: its files; then the rooms' directories are
    /// made), and `relays` how many are started on it (only as processes of their own: the
    /// later ones with the first's relay key).
    ///
    /// # Errors
    /// When the relay cannot be started or is not on this machine.
    pub(super) fn start(
        at: &RelayAt,
        parent: Option<&Path>,
        clients: usize,
        rooms: &[String],
        (store, relays): (&[String], usize),
    ) -> Result<Relay, String> {
        if relays != 1 && !matches!(at, RelayAt::Child(_)) {
            return Err(
                "several relays run only as processes the bench starts (--relay child)".into(),
            );
        }
        let made = || {
            let dir = temp_dir(parent)?;
            for room in rooms.iter().filter(|_| store.is_empty()) {
                layout::make_room_dir(dir.path(), room)
                    .map_err(|e| format!("cannot make the room {room}'s directory: {e}"))?;
            }
            Ok::<_, String>(dir)
        };
        match at {
            RelayAt::InProcess => start_in(made()?, config(clients)).map(Relay::InProcess),
            RelayAt::Child(program) => {
                let program = match program {
                    Some(p) => p.clone(),
                    None => std::env::current_exe()
                        .map_err(|e| format!("cannot find this program: {e}"))?,
                };
                let mut args = serve_args(clients);
                args.extend(store.iter().cloned());
                let spawn = Spawn {
                    program,
                    args,
                    env: Vec::new(),
                };
                let mut started: Vec<Apart> = Vec::with_capacity(relays);
                for _ in 0..relays {
                    let dir = made()?;
                    let tracked = cleanup::track_dir(dir.path());
                    if let Some(first) = started.first() {
                        // One key for the relays of a cluster (docs/cluster.md).
                        std::fs::copy(first.dir.path().join(KEY_FILE), dir.path().join(KEY_FILE))
                            .map_err(|e| format!("cannot copy the first relay's key: {e}"))?;
                    }
                    let child = RelayChild::start(&spawn, dir.path())?;
                    started.push(Apart {
                        child,
                        dir,
                        _tracked: tracked,
                    });
                }
                Ok(Relay::Child(started, spawn))
            }
            RelayAt::Running(addr, key) => {
                if !addr.ip().is_loopback() {
                    return Err(format!(
                        "--relay {addr} is not on this machine: the bench drives and measures a relay on loopback only (127.0.0.0/8 or ::1)"
                    ));
                }
                Ok(Relay::Running(*addr, *key, measure::udp_port_owner(*addr)))
            }
        }
    }

    /// Where each relay listens, and its key when known (else the clients learn it on first
    /// contact).
    pub(super) fn addrs(&self) -> Vec<(SocketAddr, Option<PublicKey>)> {
        match self {
            Relay::InProcess(r) => vec![(r.addr, Some(r.key))],
            Relay::Child(c, _) => c.iter().map(|a| (a.child.addr, a.child.key)).collect(),
            Relay::Running(addr, key, _) => vec![(*addr, *key)],
        }
    }

    /// Its processes, when not the bench's own (none known for a relay running before the
    /// bench whose process was not found).
    fn processes(&self) -> Vec<Proc> {
        match self {
            Relay::InProcess(_) => Vec::new(),
            Relay::Child(c, _) => c.iter().map(|a| Proc::Pid(a.child.pid)).collect(),
            Relay::Running(_, _, pid) => pid.map(Proc::Pid).into_iter().collect(),
        }
    }

    /// CPU time each relay process has used so far (empty in this process).
    pub(super) fn cpus(&self) -> Vec<Option<Duration>> {
        self.processes().into_iter().map(Proc::cpu).collect()
    }

    /// True when it runs in a process of its own (its CPU and memory are its own).
    pub(super) fn is_apart(&self) -> bool {
        !matches!(self, Relay::InProcess(_))
    }

    /// Where it runs, for the report.
    pub(super) fn describe(&self) -> String {
        match self {
            Relay::InProcess(r) => format!("in this process (a thread of its own) on {}", r.addr),
            Relay::Child(c, spawn) if c.len() == 1 => format!(
                "{} serve, process {} started by the bench, on {}",
                spawn.program.display(),
                c[0].child.pid,
                c[0].child.addr
            ),
            Relay::Child(c, spawn) => format!(
                "{} × {} serve, processes {} started by the bench, on {} (one relay key)",
                c.len(),
                spawn.program.display(),
                c.iter()
                    .map(|a| a.child.pid.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                c.iter()
                    .map(|a| a.child.addr.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Relay::Running(addr, _, Some(pid)) => {
                format!("running before the bench, process {pid}, on {addr}")
            }
            Relay::Running(addr, _, None) => format!(
                "running before the bench on {addr} (its process could not be found: its CPU and memory are unknown)"
            ),
        }
    }

    /// The data directory, when the bench made it.
    pub(super) fn data_dir(&self) -> Option<PathBuf> {
        match self {
            Relay::InProcess(r) => Some(r.data_dir()),
            Relay::Child(c, _) => Some(c[0].dir.path().to_owned()),
            Relay::Running(..) => None,
        }
    }

    /// CPU time it has used so far: its process's (all of them together), or its thread's.
    pub(super) fn cpu(&self) -> Option<Duration> {
        match self {
            Relay::InProcess(r) => r.cpu(),
            _ => {
                let procs = self.processes();
                if procs.is_empty() {
                    return None;
                }
                procs.into_iter().map(Proc::cpu).sum()
            }
        }
    }

    /// Starts its processes' peak memory afresh; false when it shares the bench's or the
    /// kernel refuses.
    pub(super) fn reset_peak(&self) -> bool {
        let procs = self.processes();
        !procs.is_empty() && procs.into_iter().all(Proc::reset_peak_rss)
    }

    /// Its process's peak resident memory (the sum of its processes' peaks, when several),
    /// when it has a process of its own.
    pub(super) fn peak_rss(&self) -> Option<u64> {
        let procs = self.processes();
        if procs.is_empty() {
            return None;
        }
        procs.into_iter().map(Proc::peak_rss).sum()
    }

    /// Stops it (a relay running before the bench is left running) and returns what it
    /// counted, when known, and, for a relay with more than one room, how long a relay started
    /// again on its logs took to be ready and how many rooms it had.
    ///
    /// # Errors
    /// When it failed, or stopping it did.
    pub(super) fn finish(self, restart: bool) -> Result<(Option<Stats>, Option<Restart>), String> {
        match self {
            Relay::InProcess(r) => {
                let (stats, dir) = r.stop_keeping()?;
                let again = restart.then(|| {
                    let started = Instant::now();
                    let server = Server::bind(
                        "127.0.0.1:0".parse().expect("an address"),
                        dir.path().to_owned(),
                        config(0),
                    );
                    let took = started.elapsed();
                    (took, server.as_ref().map_or(0, Server::rooms))
                });
                Ok((Some(stats), again))
            }
            Relay::Child(children, spawn) => {
                // What the first counted: where the senders are.
                let mut stats = None;
                let mut dirs = Vec::new();
                for (i, apart) in children.into_iter().enumerate() {
                    let counted = apart.child.finish()?;
                    if i == 0 {
                        stats = counted;
                    }
                    dirs.push((apart.dir, apart._tracked));
                }
                let again = if restart {
                    let started = Instant::now();
                    let child = RelayChild::start(&spawn, dirs[0].0.path())?;
                    let took = started.elapsed();
                    let rooms = child.rooms().unwrap_or(0);
                    child.stop();
                    Some((took, rooms))
                } else {
                    None
                };
                Ok((stats, again))
            }
            Relay::Running(..) => Ok((None, None)),
        }
    }
}

/// How long a relay started again on the logs took to be ready, and the rooms it had.
pub(super) type Restart = (Duration, usize);

/// The arguments that give `urc serve` the limits of [`config`].
fn serve_args(clients: usize) -> Vec<String> {
    let c = config(clients);
    [
        ("--timeout", c.timeout.as_secs().to_string()),
        ("--max-clients", c.max_clients.to_string()),
        ("--max-per-ip", c.max_per_ip.to_string()),
        ("--rate", c.rate.to_string()),
        ("--burst", c.burst.to_string()),
        ("--request-rate", c.request_rate.to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value])
    .collect()
}

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
