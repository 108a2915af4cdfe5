//! Keys as a new user meets them, with the real binaries: the relay's key pinned on first contact and told once, a restarted relay with its key is no news, a relay whose key changed is refused with both keys named (and `--relay-key` accepts it), `--fingerprint` prints the key the clients pinned, key files are 0600, and nothing said is in the traffic.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Client, Relay, WAIT, fingerprint, fresh_home, urc};

/// What `urc serve --fingerprint` prints for the data directory `data`.
fn first_contact(c: &Client) -> usize {
    c.seen
        .iter()
        .filter(|e| {
            e["event"] == "notice"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("first contact"))
        })
        .count()
}

#[test]
fn the_relays_key_is_pinned_once_and_a_changed_key_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let home = fresh_home();
    let relay = Relay::start(data.path(), &[]);
    let key = fingerprint(data.path());
    assert_eq!(key.len(), 44, "{key}");
    relay.expect_log(&format!("relay key {key}"));
    let mode = std::fs::metadata(data.path().join("relay.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // First contact: told once, with the key, and pinned.
    let mut alice = Client::spawn_at(relay.addr, "alice", &[], &home);
    alice.expect(|e| e["event"] == "notice" && e["message"] == "joined as alice");
    assert_eq!(first_contact(&alice), 1, "{:?}", alice.seen);
    assert!(
        alice
            .seen
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains(&key)))
    );
    let identity = home.join("config/urc/identity.key");
    assert_eq!(
        std::fs::metadata(&identity).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !alice.stderr.lock().unwrap().contains(
            &std::fs::read_to_string(&identity)
                .unwrap()
                .trim()
                .to_owned()
        )
    );
    assert!(alice.finish().0.success());

    // The relay restarted, with its key: nothing to say.
    let addr = relay.addr;
    relay.stop();
    let relay = Relay::start_at(&addr.to_string(), data.path(), &[]);
    let mut alice = Client::spawn_at(relay.addr, "alice", &[], &home);
    alice.expect(|e| e["event"] == "notice" && e["message"] == "joined as alice");
    assert_eq!(first_contact(&alice), 0, "{:?}", alice.seen);
    assert!(alice.finish().0.success());

    // Its key moved away: the relay makes a new one, and the pinned client refuses it.
    let (relay, new_key) = relay.restart_with_a_new_key(data.path());
    assert_ne!(new_key, key);
    let mut alice = Client::spawn_at(relay.addr, "alice", &[], &home);
    let refused = alice.expect(|e| e["event"] == "error");
    let said = refused["message"].as_str().unwrap();
    assert!(said.contains(&key) && said.contains(&new_key), "{said}");
    assert!(said.contains("--relay-key"), "{said}");
    let stderr = alice.stderr.clone();
    let status = alice.wait();
    assert!(!status.success(), "a refused key is a failure");
    // Its last words, read from its stderr as the pipe closes.
    let want = "urc: not talking to a relay whose key is not the one pinned for it";
    let deadline = Instant::now() + WAIT;
    while !stderr.lock().unwrap().contains(want) {
        assert!(Instant::now() < deadline, "{}", stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(10));
    }

    // The operator says the new key is right: given with --relay-key, it is taken.
    let mut alice = Client::spawn_at(relay.addr, "alice", &["--relay-key", &new_key], &home);
    alice.expect(|e| e["event"] == "notice" && e["message"] == "joined as alice");
    assert!(alice.finish().0.success());
}

/// Where a proxy between one client and `relay` sends what came from `from`: to the relay,
/// or back to the client (the last address that was not the relay's; none before it spoke).
fn other_side(
    from: SocketAddr,
    relay: SocketAddr,
    client: &mut Option<SocketAddr>,
) -> Option<SocketAddr> {
    if from == relay {
        *client
    } else {
        *client = Some(from);
        Some(relay)
    }
}

/// A proxy on loopback that passes every datagram both ways and keeps a copy.
fn capturing_proxy(relay: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let captured = Arc::new(Mutex::new(Vec::new()));
    let copy = captured.clone();
    std::thread::spawn(move || {
        let mut client: Option<SocketAddr> = None;
        let mut buf = [0u8; 2048];
        let end = Instant::now() + 4 * WAIT;
        while Instant::now() < end {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            copy.lock().unwrap().push(buf[..n].to_vec());
            let Some(to) = other_side(from, relay, &mut client) else {
                continue;
            };
            let _ = socket.send_to(&buf[..n], to);
        }
    });
    (addr, captured)
}

#[test]
fn no_name_and_no_text_is_in_the_traffic() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let (proxy, captured) = capturing_proxy(relay.addr);
    let mut bob = Client::join(relay.addr, "bob", &[]);
    let mut alice = Client::join(proxy, "alicewonder", &[]);
    let text = "the secret plan: 你好 meet at noon";
    alice.say(text);
    alice.expect(|e| e["event"] == "message" && e["text"] == text);
    bob.expect(|e| e["event"] == "message" && e["text"] == text);
    alice.say("/history 5");
    alice.expect(|e| e["event"] == "history_end");
    let captured = captured.lock().unwrap();
    assert!(captured.len() >= 6, "{} datagrams", captured.len());
    for needle in [
        &b"alicewonder"[..],
        b"bob",
        b"secret plan",
        "你好".as_bytes(),
    ] {
        assert!(
            !captured
                .iter()
                .any(|d| d.windows(needle.len()).any(|w| w == needle)),
            "{:?} is in the traffic",
            String::from_utf8_lossy(needle)
        );
    }
}

/// A man in the middle on loopback, seeded: of what passes it flips a bit in some datagrams,
/// sends others again later (replays), and injects DATA frames of random bytes with the
/// transports' real indexes, both ways.
fn tampering_proxy(relay: SocketAddr, seed: u64) -> (SocketAddr, Arc<Mutex<usize>>) {
    use urc::proto::secure::frame::Frame;
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let tampered = Arc::new(Mutex::new(0));
    let count = tampered.clone();
    std::thread::spawn(move || {
        let mut rng = common::proxy::Rng(seed);
        let mut client: Option<SocketAddr> = None;
        let mut seen: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        let mut buf = [0u8; 2048];
        let end = Instant::now() + 4 * WAIT;
        while Instant::now() < end {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let Some(to) = other_side(from, relay, &mut client) else {
                continue;
            };
            let mut d = buf[..n].to_vec();
            let roll = rng.next();
            if roll < 0.1 {
                // A bit flipped past the header: the datagram is lost to both ends.
                let i = 3 + (rng.next_u64() as usize) % (d.len() - 3);
                d[i] ^= 1 << (rng.next_u64() % 8);
                *count.lock().unwrap() += 1;
            } else if roll < 0.2 && !seen.is_empty() {
                // An older datagram of either side, sent again to where it went.
                let (again_to, again) = seen[(rng.next_u64() as usize) % seen.len()].clone();
                let _ = socket.send_to(&again, again_to);
                *count.lock().unwrap() += 1;
            } else if roll < 0.25
                && let Ok(Frame::Data {
                    receiver, counter, ..
                }) = Frame::decode(&d)
            {
                // A forgery for the same transport, a counter ahead.
                let junk: Vec<u8> = (0..16 + rng.next_u64() % 100)
                    .map(|_| rng.next_u64() as u8)
                    .collect();
                let forged = Frame::Data {
                    receiver,
                    counter: counter + 1 + rng.next_u64() % 1000,
                    sealed: &junk,
                }
                .encode();
                let _ = socket.send_to(&forged, to);
                *count.lock().unwrap() += 1;
            }
            seen.push((to, d.clone()));
            let _ = socket.send_to(&d, to);
        }
    });
    (addr, tampered)
}

/// Through a proxy that flips, replays and injects: every message arrives once, in order,
/// nothing forged is shown or stored, and everything sent is acknowledged.
#[test]
fn a_man_in_the_middle_changes_nothing_shown_stored_or_acknowledged() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let (proxy, tampered) = tampering_proxy(relay.addr, 13);
    let mut bob = Client::join(relay.addr, "bob", &[]);
    let mut alice = Client::join(proxy, "alice", &[]);
    let texts: Vec<String> = (0..20).map(|k| format!("message {k} 你好")).collect();
    for t in &texts {
        alice.say(t);
    }
    for t in &texts {
        bob.expect(|e| e["event"] == "message" && e["text"] == t.as_str());
    }
    bob.say("and back");
    alice.expect(|e| e["event"] == "message" && e["text"] == "and back");
    bob.expect(|e| e["event"] == "message" && e["text"] == "and back");
    let (status, _) = alice.finish();
    assert!(status.success(), "alice's messages were all acknowledged");
    let shown: Vec<String> = bob.live().into_iter().map(|(_, _, t)| t).collect();
    let mut want = texts.clone();
    want.push("and back".into());
    assert_eq!(shown, want, "once each, in order, nothing else");
    let log = std::fs::read_to_string(data.path().join("rooms/lobby/messages.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 21, "{log}");
    assert!(
        *tampered.lock().unwrap() > 3,
        "the proxy did too little to test anything"
    );
}

/// A name belongs to its key: a killed client started again takes its name back at once
/// (nobody sees it leave or join), another user's key is refused with the reason, and
/// `urc serve --release-name` frees the name for them.
#[test]
fn a_killed_client_takes_its_name_back_and_another_key_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let (alices_home, eves_home) = (fresh_home(), fresh_home());
    let mut bob = Client::join(relay.addr, "bob", &[]);
    let mut alice = Client::spawn_at(relay.addr, "alice", &[], &alices_home);
    alice.expect(|e| e["event"] == "notice" && e["message"] == "joined as alice");
    bob.expect(|e| e["event"] == "joined" && e["name"] == "alice");
    alice.kill();
    // At once, while the relay still has the old session.
    let started = Instant::now();
    let mut alice = Client::spawn_at(relay.addr, "alice", &[], &alices_home);
    alice.expect(|e| e["event"] == "notice" && e["message"] == "joined as alice");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    alice.say("back already");
    bob.expect(|e| e["event"] == "message" && e["text"] == "back already");
    assert!(
        !bob.seen.iter().any(|e| e["event"] == "left"),
        "bob saw alice leave: {:?}",
        bob.seen
    );
    // Another user under the same name, or one that looks like it: refused while alice is
    // in, and after she left, told why.
    let refused = |name: &str| {
        let mut eve = Client::spawn_at(relay.addr, name, &[], &eves_home);
        let refused = eve.expect(|e| e["event"] == "error");
        assert!(!eve.wait().success());
        refused["message"].as_str().unwrap().to_owned()
    };
    assert!(refused("alice").contains("in use"));
    assert!(alice.finish().0.success());
    bob.expect(|e| e["event"] == "left" && e["name"] == "alice");
    for name in ["alice", "ALICE"] {
        let said = refused(name);
        assert!(said.contains("belongs to another key"), "{said}");
    }
    drop(bob);
    relay.stop();
    // The operator frees the name; then the other key may take it.
    let out = urc()
        .args(["serve", "--release-name", "alice", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.starts_with("released the name alice, which belonged to the key "),
        "{said}"
    );
    let relay = Relay::start(data.path(), &[]);
    let mut eve = Client::spawn_at(relay.addr, "alice", &[], &eves_home);
    eve.expect(|e| e["event"] == "notice" && e["message"] == "joined as alice");
    assert!(eve.finish().0.success());
}

/// `urc join --fingerprint` prints the user's key; `urc serve --allow FILE` admits only the
/// keys listed there, and refuses everyone else once, clearly, naming their key.
#[test]
fn an_invite_only_relay_admits_only_the_keys_it_lists() {
    let bobs_home = common::user_home("bob");
    let mut fingerprint = urc();
    common::at_home(&mut fingerprint, &bobs_home);
    let out = fingerprint
        .args(["join", "--fingerprint"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bobs_key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(bobs_key.len(), 44, "{bobs_key}");
    let data = tempfile::tempdir().unwrap();
    let allow = data.path().join("allowed");
    std::fs::write(&allow, format!("# the team\n\n{bobs_key} bob's laptop\n")).unwrap();
    let relay = Relay::start(data.path(), &["--allow", allow.to_str().unwrap()]);
    let mut bob = Client::join(relay.addr, "bob", &[]);
    let mut eve = Client::spawn(relay.addr, "eve", &[]);
    let refused = eve.expect(|e| e["event"] == "error");
    let said = refused["message"].as_str().unwrap();
    assert!(said.contains("admits only the keys it lists"), "{said}");
    assert!(!eve.wait().success());
    bob.say("still just us");
    bob.expect(|e| e["event"] == "message" && e["text"] == "still just us");
    // A line that holds no key: the relay does not start, and says which line.
    std::fs::write(&allow, format!("{bobs_key} bob\nnot-a-key eve\n")).unwrap();
    let out = urc()
        .args(["serve", "--bind", "127.0.0.1:0", "--allow"])
        .arg(&allow)
        .arg("--data")
        .arg(data.path().join("other"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("line 2 of --allow"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
