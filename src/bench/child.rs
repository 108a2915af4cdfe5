//! A relay in a process of its own: `urc serve` (this program, or another build) started by
//! the bench, so that its memory and CPU are its own and not the load's, and so that it can be
//! stopped with SIGSTOP or run under a faked clock; what it counted is read from its last log
//! line.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cleanup::{self, Ticket};
use super::measure::Proc;
use crate::proto::secure::keys::PublicKey;
use crate::relay::Stats;

/// How long the relay may take to say where it listens (it reads its log first).
const START_BOUND: Duration = Duration::from_secs(30);
/// Lines of the relay's log kept, for a failure's explanation.
const KEPT_LINES: usize = 200;
/// How long the relay may take to stop once told: it finishes its turn, flushes every room's
/// log and writes their marks.
const STOP_BOUND: Duration = Duration::from_secs(30);
/// What the relay's last log line says before its counts (see `serve/server.rs`).
const COUNTED: &str = "relay stopped; counted ";

/// How the relay process is started.
#[derive(Debug, Clone)]
pub(super) struct Spawn {
    /// The `urc` program that serves.
    pub(super) program: PathBuf,
    /// Arguments after `serve --bind 127.0.0.1:0 --data <dir>` (limits, say).
    pub(super) args: Vec<String>,
    /// Environment added to the relay's (libfaketime's settings, say).
    pub(super) env: Vec<(String, String)>,
}

/// A relay process, killed when dropped.
#[derive(Debug)]
pub(super) struct RelayChild {
    /// Where it listens.
    pub(super) addr: SocketAddr,
    /// Its public key, as it logged it (an older build may not say: then the clients learn
    /// it on first contact).
    pub(super) key: Option<PublicKey>,
    /// Its process id.
    pub(super) pid: u32,
    /// The rooms it said it has as it started.
    rooms: Option<usize>,
    child: Child,
    /// The last lines of its log (stderr).
    log: Arc<Mutex<Vec<String>>>,
    /// The thread that reads its log, done when the process has exited.
    reader: Option<JoinHandle<()>>,
    /// Its last line's counts, once it logged them.
    counted: Arc<Mutex<Option<Stats>>>,
    /// Its process, killed if the bench is stopped by a signal (when that is armed).
    _tracked: Ticket,
}

impl RelayChild {
    /// Starts `urc serve --bind 127.0.0.1:0 --data <data>` and waits until it listens.
    ///
    /// # Errors
    /// When it cannot be started, or exits or stays silent before it says where it listens.
    pub(super) fn start(spawn: &Spawn, data: &Path) -> Result<RelayChild, String> {
        let mut command = Command::new(&spawn.program);
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command.args(&spawn.args);
        for (k, v) in &spawn.env {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", spawn.program.display()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let kept = log.clone();
        let counted = Arc::new(Mutex::new(None));
        let counts = counted.clone();
        let reader = std::thread::Builder::new()
            .name("relay-log".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(at) = line.find(COUNTED) {
                        *counts.lock().expect("not poisoned") =
                            Stats::from_counts(&line[at + COUNTED.len()..]);
                    }
                    if let Some(rest) = line.split("listening on udp ").nth(1) {
                        let addr = rest.split(';').next().unwrap_or("").trim().to_owned();
                        let key = rest
                            .split("relay key ")
                            .nth(1)
                            .and_then(|k| k.split_whitespace().next())
                            .and_then(|k| k.parse().ok());
                        let rooms = rest
                            .split(") and ")
                            .nth(1)
                            .and_then(|r| r.split_whitespace().next())
                            .and_then(|n| n.parse::<usize>().ok())
                            .map(|others| others + 1);
                        tx.send((addr, key, rooms)).ok();
                    }
                    let mut kept = kept.lock().expect("not poisoned");
                    if kept.len() == KEPT_LINES {
                        kept.remove(0);
                    }
                    kept.push(line);
                }
            })
            .map_err(|e| format!("cannot read the relay's log: {e}"))?;
        let pid = child.id();
        let mut relay = RelayChild {
            addr: "127.0.0.1:0".parse().expect("an address"),
            key: None,
            pid,
            rooms: None,
            child,
            log,
            reader: Some(reader),
            counted,
            _tracked: cleanup::track_pid(pid),
        };
        let said = rx.recv_timeout(START_BOUND).ok();
        relay.key = said.as_ref().and_then(|(_, key, _)| *key);
        relay.rooms = said.as_ref().and_then(|(_, _, rooms)| *rooms);
        relay.addr = match said.and_then(|(a, ..)| a.parse().ok()) {
            Some(addr) => addr,
            None => {
                return Err(format!(
                    "the relay did not say where it listens within {} s: {}",
                    START_BOUND.as_secs(),
                    relay.log_tail(5)
                ));
            }
        };
        Ok(relay)
    }

    /// The rooms it said it has as it started (its log's and the others).
    pub(super) fn rooms(&self) -> Option<usize> {
        self.rooms
    }

    /// Its resident memory now (`VmRSS`), in bytes.
    pub(super) fn rss(&self) -> Option<u64> {
        Proc::Pid(self.pid).rss()
    }

    /// Its peak resident memory (`VmHWM`) since it started or the peak was last reset.
    pub(super) fn peak_rss(&self) -> Option<u64> {
        Proc::Pid(self.pid).peak_rss()
    }

    /// Starts its peak memory afresh from what it uses now; false where the kernel refuses.
    pub(super) fn reset_peak(&self) -> bool {
        Proc::Pid(self.pid).reset_peak_rss()
    }

    /// CPU time (user + system) it has used so far.
    pub(super) fn cpu(&self) -> Option<Duration> {
        Proc::Pid(self.pid).cpu()
    }

    /// Sends it `signal` (`STOP`, `CONT`, `TERM`).
    ///
    /// # Errors
    /// When the signal has no such name or cannot be sent.
    pub(super) fn signal(&self, signal: &str) -> Result<(), String> {
        use nix::sys::signal::{Signal, kill};
        let sig: Signal = format!("SIG{signal}")
            .parse()
            .map_err(|e| format!("no signal {signal}: {e}"))?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX));
        kill(pid, sig)
            .map_err(|e| format!("cannot send SIG{signal} to the relay ({}): {e}", self.pid))
    }

    /// True while the process runs.
    pub(super) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `n` lines of its log, joined, for an explanation.
    pub(super) fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().expect("not poisoned");
        let tail = &log[log.len().saturating_sub(n)..];
        if tail.is_empty() {
            "it logged nothing".into()
        } else {
            tail.join(" | ")
        }
    }

    /// Lines of its log that contain `needle`.
    pub(super) fn log_count(&self, needle: &str) -> usize {
        let log = self.log.lock().expect("not poisoned");
        log.iter().filter(|l| l.contains(needle)).count()
    }

    /// Stops it with SIGTERM (it finishes its turn) and waits a little, then kills it.
    pub(super) fn stop(mut self) {
        self.terminate(Duration::from_secs(3)).ok();
    }

    /// Wakes it if stopped, sends it SIGTERM and waits up to `bound` for it to exit.
    ///
    /// # Errors
    /// When it cannot be signalled, or does not exit in time.
    fn terminate(&mut self, bound: Duration) -> Result<std::process::ExitStatus, String> {
        self.signal("CONT")?;
        self.signal("TERM")?;
        let deadline = Instant::now() + bound;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    return Err(format!(
                        "the relay did not stop within {} s of SIGTERM: {}",
                        bound.as_secs(),
                        self.log_tail(3)
                    ));
                }
                Err(e) => return Err(format!("cannot wait for the relay: {e}")),
            }
        }
    }

    /// Stops it with SIGTERM, waits until it has exited, and returns what it counted (`None`
    /// from a build that does not log its counts).
    ///
    /// # Errors
    /// When it does not exit in time or fails.
    pub(super) fn finish(mut self) -> Result<Option<Stats>, String> {
        let status = self.terminate(STOP_BOUND)?;
        // Its log is read to the end once it has exited.
        if let Some(reader) = self.reader.take() {
            reader.join().ok();
        }
        if !status.success() {
            return Err(format!(
                "the relay exited with {status}: {}",
                self.log_tail(3)
            ));
        }
        Ok(self.counted.lock().expect("not poisoned").take())
    }
}

impl Drop for RelayChild {
    fn drop(&mut self) {
        // A stopped process dies of SIGKILL as well.
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
