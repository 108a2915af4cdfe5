//! Test helpers: a real `urc serve` on 127.0.0.1:0, real `urc join` clients, a lossy proxy, a
//! real NATS JetStream cluster.
#![allow(dead_code)]

pub mod nats;
pub mod proxy;
pub mod stream;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The longest any one wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(15);

/// `urc`, with a home of its own: its identity, its pinned relay keys and its other files in
/// a fresh directory, so that no test sees another's (nor the user's) keys.
pub fn urc() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_urc"));
    let home = fresh_home();
    for (var, dir) in [
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_DATA_HOME", "data"),
    ] {
        cmd.env(var, home.join(dir));
    }
    cmd.env_remove("URC_IDENTITY").env_remove("URC_RELAY_KEY");
    cmd
}

/// Runs `urc bench` with `args`, requires it to succeed and returns what it printed.
pub fn bench_passes<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_urc"))
        .arg("bench")
        .args(args)
        .output()
        .expect("urc runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    stdout
}

/// `urc` run by the user `name` of this test: the same name in the same test is the same
/// user (the same identity, the same pinned keys); another test's is another user.
pub fn urc_as(name: &str) -> Command {
    let mut cmd = urc();
    at_home(&mut cmd, &user_home(name));
    cmd
}

/// The home of the user `name` in the running test (named after the test's thread).
pub fn user_home(name: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static RUN: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static TEST: usize = RUN.fetch_add(1, Ordering::Relaxed);
    }
    let test = TEST.with(|t| *t);
    let safe: String = name
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("homes")
        .join(format!(
            "{}-t{test}-{safe}-{:x}",
            std::process::id(),
            fnv(name)
        ));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// A short hash, so that names that differ only in what a file name cannot hold stay apart.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Points `cmd`'s files (identity, pinned keys, state) into `home`.
pub fn at_home(cmd: &mut Command, home: &Path) {
    for (var, dir) in [
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_DATA_HOME", "data"),
    ] {
        cmd.env(var, home.join(dir));
    }
}

/// A new directory under the tests' scratch space.
pub fn fresh_home() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("homes")
        .join(format!("{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// A UDP socket to a real relay, through the secure channel: packets sent sealed, datagrams
/// received opened. For tests that speak the protocol by hand.
pub struct Sealed {
    pub socket: std::net::UdpSocket,
    pub tunnel: urc::client::tunnel::Tunnel,
    buf: Vec<u8>,
}

impl Sealed {
    /// A socket on 127.0.0.1 connected to `relay`, its handshake made (the relay's key taken
    /// on first contact).
    pub fn connect(relay: SocketAddr) -> Sealed {
        use urc::client::tunnel::Tunnel;
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(relay).unwrap();
        let mut sealed = Sealed {
            socket,
            tunnel: Tunnel::new(urc::proto::secure::keys::Keypair::generate(), None),
            buf: vec![0; 2048],
        };
        sealed.handshake();
        sealed
    }

    /// Makes a handshake from the socket as it is now (again, after an UNKNOWN, or from a
    /// new socket put in its place: a client whose address changed).
    pub fn handshake(&mut self) {
        use urc::client::tunnel::Received;
        let relay = self.socket.peer_addr().unwrap();
        self.socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while !self.tunnel.is_up(Instant::now()) {
            assert!(Instant::now() < deadline, "no handshake with {relay}");
            let mut ignored = Vec::new();
            self.tunnel.seal(Instant::now(), b"", &mut ignored);
            while let Some(frame) = self.tunnel.poll_transmit() {
                self.socket.send(&frame).unwrap();
            }
            if let Ok(n) = self.socket.recv(&mut self.buf) {
                let mut out = Vec::new();
                let got = self
                    .tunnel
                    .receive(Instant::now(), &self.buf[..n], &mut out);
                assert!(!matches!(got, Received::Changed { .. }), "{got:?}");
            }
        }
    }

    /// Sends one packet, sealed.
    pub fn send(&mut self, packet: &[u8]) {
        let mut datagram = Vec::new();
        assert!(
            self.tunnel.seal(Instant::now(), packet, &mut datagram),
            "no transport"
        );
        self.socket.send(&datagram).unwrap();
    }

    /// The next packet from the relay, opened; `None` after `wait` without one.
    pub fn recv(&mut self, wait: Duration) -> Option<Vec<u8>> {
        use urc::client::tunnel::Received;
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.socket.set_read_timeout(Some(left)).unwrap();
            let n = match self.socket.recv(&mut self.buf) {
                Ok(n) => n,
                Err(_) => return None,
            };
            let mut out = Vec::new();
            if let Received::Packet { .. } =
                self.tunnel
                    .receive(Instant::now(), &self.buf[..n], &mut out)
            {
                return Some(out);
            }
        }
    }
}

/// A relay process, killed when dropped.
pub struct Relay {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: Arc<Mutex<String>>,
}

impl Relay {
    pub fn start(data: &Path, extra: &[&str]) -> Relay {
        Relay::start_at("127.0.0.1:0", data, extra)
    }

    pub fn start_at(bind: &str, data: &Path, extra: &[&str]) -> Relay {
        let mut child = urc()
            .args(["serve", "--bind", bind, "--data"])
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start urc serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = channel();
        let reader = BufReader::new(child.stderr.take().unwrap());
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(rest) = line.split("listening on udp ").nth(1) {
                    let addr = rest.split(';').next().unwrap().trim().to_owned();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("the relay did not start: {}", stderr.lock().unwrap()));
        Relay {
            child,
            addr: addr.parse().unwrap(),
            stderr,
        }
    }

    /// Waits until the relay's log (its stderr) says `needle`; panics after [`WAIT`].
    pub fn expect_log(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.stderr.lock().unwrap().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the relay did not say {needle:?}: {}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the relay with SIGTERM and waits for it.
    pub fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        wait_exit(&mut self.child)
    }

    /// Stops the relay, moves its key away (to `relay.key.old`) and starts it again at the same
    /// address, so that it makes a new key: the new relay and its key.
    pub fn restart_with_a_new_key(self, data: &Path) -> (Relay, String) {
        let addr = self.addr;
        assert!(self.stop().success());
        std::fs::rename(data.join("relay.key"), data.join("relay.key.old")).unwrap();
        let relay = Relay::start_at(&addr.to_string(), data, &[]);
        (relay, fingerprint(data))
    }

    /// Kills the relay with SIGKILL, as a crash would.
    pub fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The key of the relay whose data directory is `data`, as `urc serve --fingerprint` prints it.
pub fn fingerprint(data: &Path) -> String {
    let out = urc()
        .args(["serve", "--fingerprint", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the process did not exit in time"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `urc join --json` client whose stdin stays open until closed.
pub struct Client {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Value>,
    /// Every event read so far.
    pub seen: Vec<Value>,
    /// What it wrote to stderr so far.
    pub stderr: Arc<Mutex<String>>,
}

impl Client {
    /// Starts a client and waits until it has joined.
    pub fn join(relay: SocketAddr, name: &str, extra: &[&str]) -> Client {
        let mut c = Client::spawn(relay, name, extra);
        c.expect(|e| e["event"] == "notice" && e["message"] == format!("joined as {name}"));
        c
    }

    pub fn spawn(relay: SocketAddr, name: &str, extra: &[&str]) -> Client {
        Client::spawn_at(relay, name, extra, &user_home(name))
    }

    /// Starts a client whose files (its identity, the relays' keys it pinned) are in `home`:
    /// the same home is the same user, run again.
    pub fn spawn_at(relay: SocketAddr, name: &str, extra: &[&str], home: &Path) -> Client {
        Client::spawn_to(&relay.to_string(), name, extra, home)
    }

    /// Starts a client with `--server servers` (a list: `A,B`) and waits until it has joined.
    pub fn join_list(servers: &str, name: &str, extra: &[&str]) -> Client {
        let mut c = Client::spawn_to(servers, name, extra, &user_home(name));
        c.expect(|e| e["event"] == "notice" && e["message"] == format!("joined as {name}"));
        c
    }

    /// Starts a client with `--server servers`, its files in `home`.
    pub fn spawn_to(servers: &str, name: &str, extra: &[&str], home: &Path) -> Client {
        let mut cmd = urc();
        at_home(&mut cmd, home);
        let mut child = cmd
            .args(["join", "--json", "--server", servers, "--name", name])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start urc join");
        let stderr = Arc::new(Mutex::new(String::new()));
        let errors = BufReader::new(child.stderr.take().unwrap());
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in errors.lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let (tx, rx) = channel();
        let reader = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON event: {line:?}: {e}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Client {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            events: rx,
            seen: Vec::new(),
            stderr,
        }
    }

    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Reads events until one matches, and returns it; panics after [`WAIT`].
    pub fn expect(&mut self, pred: impl FnMut(&Value) -> bool) -> Value {
        self.expect_within(WAIT, pred)
    }

    /// Reads events until one matches, and returns it; panics after `wait`.
    pub fn expect_within(&mut self, wait: Duration, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: no matching event in time; saw {:#?}",
                        self.name, self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: output ended; saw {:#?}", self.name, self.seen)
                }
            }
        }
    }

    /// Waits for a live chat message with this text.
    pub fn expect_text(&mut self, text: &str) -> Value {
        self.expect(|e| e["event"] == "message" && e["text"] == text && e["history"] == false)
    }

    /// The live chat messages seen so far, as (seq, from, text).
    pub fn live(&self) -> Vec<(u64, String, String)> {
        self.seen
            .iter()
            .filter(|e| e["event"] == "message" && e["history"] == false)
            .map(|e| {
                (
                    e["seq"].as_u64().unwrap(),
                    e["from"].as_str().unwrap().to_owned(),
                    e["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Closes stdin, reads the rest of the events, and returns how the client exited.
    pub fn finish(mut self) -> (ExitStatus, Vec<Value>) {
        drop(self.stdin.take());
        let status = wait_exit(&mut self.child);
        while let Ok(v) = self.events.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(v);
        }
        (status, std::mem::take(&mut self.seen))
    }

    /// Waits for the process to exit (its stdin stays as it is), and returns how it exited.
    pub fn wait(mut self) -> ExitStatus {
        wait_exit(&mut self.child)
    }

    /// Kills the client, as a crash would: it stops sending keepalives.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Freezes the process (SIGSTOP): it sends and reads nothing until [`Client::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Sends the process a signal, as `kill` would (`-TERM`, `-HUP`, `-INT`).
    pub fn signal(&self, which: &str) {
        let status = Command::new("kill")
            .args([which, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {which} {}", self.child.id());
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `urc join` with `input` on stdin to the end; returns its status, stdout and stderr.
pub fn pipe(
    relay: SocketAddr,
    name: &str,
    input: &str,
    extra: &[&str],
) -> (ExitStatus, String, String) {
    let mut child = urc_as(name)
        .args(["join", "--server", &relay.to_string(), "--name", name])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start urc join");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(WAIT * 2)
        .expect("urc join did not finish in time")
        .unwrap();
    writer.join().unwrap();
    (
        out.status,
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Parses JSON event lines.
pub fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// The chat messages among `events`, as (seq, from, text, history).
pub fn messages(events: &[Value]) -> Vec<(u64, String, String, bool)> {
    events
        .iter()
        .filter(|e| e["event"] == "message")
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["from"].as_str().unwrap().to_owned(),
                e["text"].as_str().unwrap().to_owned(),
                e["history"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Checks the lobby's log in the data directory `dir`: seqs 1..=n without gaps, every id
/// once; returns (from, text) in order.
pub fn read_log(dir: &std::path::Path) -> Vec<(String, String)> {
    let path = dir.join("rooms/lobby/messages.jsonl");
    let records = events(&std::fs::read_to_string(&path).unwrap());
    let mut ids = std::collections::HashSet::new();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            r["seq"].as_u64().unwrap(),
            i as u64 + 1,
            "sequence gap at line {}",
            i + 1
        );
        assert!(
            ids.insert(r["id"].as_str().unwrap().to_owned()),
            "id stored twice: {r}"
        );
    }
    read_log_file(&path)
}

/// The (from, text) of each record of a log file.
pub fn read_log_file(path: &std::path::Path) -> Vec<(String, String)> {
    let records = events(&std::fs::read_to_string(path).unwrap());
    records
        .iter()
        .map(|r| {
            (
                r["from"].as_str().unwrap().to_owned(),
                r["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
