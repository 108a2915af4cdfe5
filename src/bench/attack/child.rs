//! The relay under attack: `urc serve` in a process of its own (this program, or the one
//! `--relay-bin` names), so that its memory and CPU are its own and not the attackers', and so
//! that it can be stopped with SIGSTOP or run under a faked clock.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::proto::secure::keys::PublicKey;

/// How long the relay may take to say where it listens (it reads its log first).
const START_BOUND: Duration = Duration::from_secs(30);
/// Lines of the relay's log kept, for a failure's explanation.
const KEPT_LINES: usize = 200;
/// Clock ticks a second of `/proc/*/stat` times; 100 on every Linux platform urc builds for.
const TICKS_PER_SECOND: u64 = 100;

/// How the relay process is started.
#[derive(Debug, Clone)]
pub(super) struct Spawn {
    /// The `urc` program that serves.
    pub(super) program: PathBuf,
    /// `--max-clients`, when the attack needs more than the default room.
    pub(super) max_clients: Option<usize>,
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
    child: Child,
    /// The last lines of its log (stderr).
    log: Arc<Mutex<Vec<String>>>,
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
        if let Some(n) = spawn.max_clients {
            command.arg("--max-clients").arg(n.to_string());
        }
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
        std::thread::Builder::new()
            .name("relay-log".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on udp ").nth(1) {
                        let addr = rest.split(';').next().unwrap_or("").trim().to_owned();
                        let key = rest
                            .split("relay key ")
                            .nth(1)
                            .and_then(|k| k.split_whitespace().next())
                            .and_then(|k| k.parse().ok());
                        tx.send((addr, key)).ok();
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
            child,
            log,
        };
        let said = rx.recv_timeout(START_BOUND).ok();
        relay.key = said.as_ref().and_then(|(_, key)| *key);
        relay.addr = match said.and_then(|(a, _)| a.parse().ok()) {
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

    /// Its resident memory now (`VmRSS`), in bytes.
    pub(super) fn rss(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    /// Its peak resident memory (`VmHWM`) since it started or the peak was last reset.
    pub(super) fn peak_rss(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    /// Starts its peak memory afresh from what it uses now; false where the kernel refuses.
    pub(super) fn reset_peak(&self) -> bool {
        // "5" resets the peak resident set size (proc(5), /proc/pid/clear_refs).
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok()
    }

    /// CPU time (user + system) it has used so far.
    pub(super) fn cpu(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // After the command name (which may hold spaces) come field 3 onwards: utime is field
        // 14, stime field 15.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(Duration::from_millis(
            (utime + stime) * 1000 / TICKS_PER_SECOND,
        ))
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        let kib: u64 = line[field.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// Sends it `signal` (`STOP`, `CONT`, `TERM`) with kill(1): the crate forbids the unsafe
    /// code a direct call would take.
    ///
    /// # Errors
    /// When kill cannot be run or fails.
    pub(super) fn signal(&self, signal: &str) -> Result<(), String> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -{signal} {} failed ({status})", self.pid))
        }
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
        self.signal("CONT").ok();
        self.signal("TERM").ok();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && self.is_running() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RelayChild {
    fn drop(&mut self) {
        // A stopped process dies of SIGKILL as well.
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
