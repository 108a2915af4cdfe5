//! A client with several relays (`urc join --server A,B`), end to end with real processes:
//! its relay killed, it moves to the other and loses nothing; the other with another key is
//! refused as a changed key.
//!
//! The file store cannot share a log between two running relays, so the cluster is played by
//! relay A killed with SIGKILL and relay B started at another port on A's data directory (the
//! same key, the same log, the same seqs), as relays sharing a replicated log would serve a
//! client that moved.

mod common;

use std::net::{SocketAddr, UdpSocket};

use common::stream::across_a_crash;
use common::{Client, Relay, urc_as};

/// A loopback address with a port that nothing listens on now (a relay is started there
/// later).
fn free_port() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

#[test]
fn a_client_whose_relay_is_killed_moves_to_the_next_and_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let a = Relay::start(data.path(), &[]);
    let b_addr = free_port();
    let list = format!("{},{b_addr}", a.addr);
    let alice = Client::join_list(&list, "alice", &[]);
    let mut bob = Client::join_list(&list, "bob", &[]);
    // B started on A's data directory, at the list's other address.
    let (b, alice_events) = across_a_crash(a, alice, &mut bob, data.path(), 200, || {
        Relay::start_at(&b_addr.to_string(), data.path(), &[])
    });
    assert_eq!(b.addr, b_addr);
    // Each was told where it went: the move to B, or (B not up yet when A was found gone, a
    // round of the list found none) B answering.
    for events in [&alice_events, &bob.seen] {
        let told = events.iter().any(|e| {
            e["event"] == "notice"
                && e["message"].as_str().is_some_and(|m| {
                    m.starts_with(&format!("moving to the relay at {b_addr}: "))
                        || m == format!("the relay at {b_addr} is answering")
                })
        });
        assert!(told, "{events:#?}");
    }
}

#[test]
fn one_key_is_pinned_for_the_list_and_a_relay_of_it_with_another_is_refused() {
    let (one, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Relay::start(one.path(), &[]);
    let c = Relay::start(other.path(), &[]);
    // First contact through the list [A, B]: A's key pinned for both (nothing at B yet).
    let b_addr = free_port();
    let alice = Client::join_list(&format!("{},{b_addr}", a.addr), "alice", &[]);
    let (status, _) = alice.finish();
    assert!(status.success());
    let pins = common::user_home("alice").join("state/urc/known_relays");
    let text = std::fs::read_to_string(&pins).unwrap();
    let key = common::fingerprint(one.path());
    for relay in [a.addr, b_addr] {
        assert!(text.contains(&format!("{relay} {key}\n")), "{text}");
    }
    // The list [C, A]: A's key pinned is the one expected of C, which offers its own.
    let out = urc_as("alice")
        .args(["join", "--json", "--name", "alice", "--server"])
        .arg(format!("{},{}", c.addr, a.addr))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let offered = common::fingerprint(other.path());
    let said = format!(
        "the relay at {} offered the key {offered}, not the key {key} pinned for the relays of its --server list ({}, {})",
        c.addr, c.addr, a.addr
    );
    let events = common::events(&String::from_utf8(out.stdout).unwrap());
    let refused = (events.iter()).any(|e| {
        e["event"] == "error" && e["message"].as_str().is_some_and(|m| m.starts_with(&said))
    });
    assert!(refused, "{events:#?}");
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "notice" && e["message"] == "joined as alice"),
        "nothing sent to C"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "urc: not talking to a relay whose key is not the one pinned for it\n"
    );
}
