//! `urc join` from scripts and signals: it joins and leaves properly or not at all, leaves at
//! once when told to, says which lines were not delivered, and answers every request.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Client, Relay, events, pipe};

/// Whether `name` is in the room, as a fresh client's `/who` says.
fn present(relay: SocketAddr, name: &str) -> bool {
    let (status, out, err) = pipe(relay, "census", "/who\n", &["--json"]);
    assert!(status.success(), "{err}");
    let who = events(&out)
        .into_iter()
        .find(|e| e["event"] == "who")
        .unwrap_or_else(|| panic!("no who answer: {out}"));
    who["names"].as_array().unwrap().iter().any(|n| n == name)
}

/// A path to `relay` on which what clients send takes `delay` to arrive; stops when dropped.
struct Slow {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Slow {
    fn start(relay: SocketAddr, delay: Duration) -> Slow {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        front
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (addr, running) = (front.local_addr().unwrap(), stop.clone());
        std::thread::spawn(move || {
            // One socket towards the relay per client, each answered through `front`.
            let mut ups: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut buf = [0u8; 2048];
            while !running.load(Ordering::Relaxed) {
                let Ok((n, client)) = front.recv_from(&mut buf) else {
                    continue;
                };
                let up = ups.entry(client).or_insert_with(|| {
                    let up = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
                    up.connect(relay).unwrap();
                    up.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
                    let (down, front, running) = (up.clone(), front.clone(), running.clone());
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 2048];
                        while !running.load(Ordering::Relaxed) {
                            if let Ok(n) = down.recv(&mut buf) {
                                let _ = front.send_to(&buf[..n], client);
                            }
                        }
                    });
                    up
                });
                let (up, bytes) = (up.clone(), buf[..n].to_vec());
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let _ = up.send(&bytes);
                });
            }
        });
        Slow { addr, stop }
    }
}

impl Drop for Slow {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn empty_input_joins_and_leaves_properly_twice_in_a_row() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut watcher = Client::join(relay.addr, "watcher", &[]);
    // Input ends long before the relay can answer the JOIN.
    let slow = Slow::start(relay.addr, Duration::from_millis(300));
    for _ in 0..2 {
        let (status, out, err) = pipe(slow.addr, "bot", "", &["--json"]);
        assert!(status.success(), "{out}{err}");
        watcher.expect(|e| e["event"] == "joined" && e["name"] == "bot");
        watcher.expect(|e| e["event"] == "left" && e["name"] == "bot" && e["reason"] == "quit");
    }
    assert!(!present(relay.addr, "bot"), "bot was left behind");
}

#[test]
fn a_relay_that_never_answers_is_named_and_the_exit_is_non_zero() {
    // A port where something listens and never answers, and one where nothing listens.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    for addr in [silent.local_addr().unwrap(), closed] {
        let started = Instant::now();
        let (status, out, err) = pipe(addr, "bot", "hello\n", &["--wait", "1"]);
        assert!(!status.success(), "{out}{err}");
        assert!(
            err.contains(&format!("no answer from a relay at {addr}")),
            "{err}"
        );
        assert!(err.contains("\"hello\""), "the lost line is named: {err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    }
}

#[test]
fn every_who_in_a_script_gets_its_own_answer_in_any_case() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let _alice = Client::join(relay.addr, "alice", &[]);
    let (status, out, err) = pipe(relay.addr, "bot", "/who\n/WHO\n/Who\n", &["--json"]);
    assert!(status.success(), "{err}");
    let answers: Vec<_> = events(&out)
        .into_iter()
        .filter(|e| e["event"] == "who")
        .collect();
    assert_eq!(answers.len(), 3, "{out}");
    for who in answers {
        assert_eq!(who["names"], serde_json::json!(["alice", "bot"]));
    }
}

#[test]
fn sigterm_sighup_and_sigint_leave_at_once_and_free_the_name() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut watcher = Client::join(relay.addr, "watcher", &[]);
    for signal in ["-TERM", "-HUP", "-INT"] {
        let bot = Client::join(relay.addr, "bot", &[]);
        watcher.expect(|e| e["event"] == "joined" && e["name"] == "bot");
        let sent = Instant::now();
        bot.signal(signal);
        watcher.expect(|e| e["event"] == "left" && e["name"] == "bot" && e["reason"] == "quit");
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "{signal}: left after {:?}",
            sent.elapsed()
        );
        assert!(bot.wait().success(), "{signal}: a clean leave exits 0");
        // The name is free again at once: the next round joins with it.
    }
}

#[test]
fn a_rejoin_refused_names_the_lines_not_delivered() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let addr = relay.addr;
    let mut alice = Client::join(addr, "alice", &[]);
    relay.crash();
    alice.say("written while the relay was down");
    // The operator frees the name meanwhile, and another alice (another key) takes it as soon
    // as the relay is back, before the first one's backed-off rejoin.
    let released = common::urc()
        .args(["serve", "--release-name", "alice", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(released.status.success(), "{released:?}");
    let _relay = Relay::start_at(&addr.to_string(), data.path(), &[]);
    let _other = Client::spawn_at(addr, "alice", &[], &common::fresh_home());
    alice.expect(|e| e["event"] == "error");
    let stderr = alice.stderr.clone();
    let (status, _) = alice.finish();
    assert!(
        !status.success(),
        "a refused rejoin with a line lost exits non-zero"
    );
    let stderr = stderr.lock().unwrap();
    assert!(
        stderr.contains("not delivered: \"written while the relay was down\""),
        "{stderr}"
    );
}
