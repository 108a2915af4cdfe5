//! What `urc join` tells its user about the relay, end to end: a relay that stops says so
//! first, and nothing at the relay's address is said at once and once.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{Client, Relay};

/// A relay stopped with SIGTERM tells its sessions before it exits: the client says so at
/// once (not seconds later, when the relay's silence is noticed), keeps trying, and is back
/// in the room when the relay is.
#[test]
fn a_relay_that_stops_says_so_and_the_client_rejoins_when_it_is_back() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let addr = relay.addr;
    let mut bob = Client::join(addr, "bob", &[]);
    bob.say("hello");
    bob.expect_text("hello");
    let stopped = Instant::now();
    assert!(relay.stop().success());
    bob.expect(|e| e["event"] == "notice" && e["message"] == "the relay stopped; trying to rejoin");
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(1), "told after {took:?}");
    let _relay = Relay::start_at(&addr.to_string(), data.path(), &[]);
    bob.expect(|e| e["event"] == "notice" && e["message"] == "rejoined as bob");
    bob.say("again");
    let again = bob.expect_text("again");
    assert_eq!(again["seq"], 2);
    let (status, _) = bob.finish();
    assert!(status.success());
}

/// Nothing listens at the relay's address: the system's "port unreachable" is told at once,
/// naming the address, once however many datagrams are refused; the client keeps trying and
/// joins the relay that starts there.
#[test]
fn no_relay_at_the_address_is_said_at_once_and_once() {
    let data = tempfile::tempdir().unwrap();
    // A port nobody listens on (for as long as this test needs it).
    let addr = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let started = Instant::now();
    let mut bob = Client::spawn(addr, "bob", &[]);
    let said = format!("no relay at {addr}: still trying");
    bob.expect(|e| e["event"] == "notice" && e["message"] == said);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "told after {took:?}");
    // The JOIN goes again and again with its backoff, each refused; after 3 s of that the
    // relay's silence is not told again: "no relay at" said it.
    std::thread::sleep(Duration::from_millis(3500));
    let relay = Relay::start_at(&addr.to_string(), data.path(), &[]);
    bob.expect(|e| e["event"] == "notice" && e["message"] == "joined as bob");
    assert!(
        !bob.seen.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("is not answering"))),
        "{:#?}",
        bob.seen
    );
    let told = (bob.seen.iter())
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no relay at"))
        })
        .count();
    assert_eq!(told, 1, "{:#?}", bob.seen);
    drop(relay);
}
