//! A stream of garbage at the real relay: it stays up, stores nothing, keeps its memory, and
//! the room goes on chatting.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::proxy::Rng;
use common::{Client, Relay};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn garbage(rng: &mut Rng) -> Vec<u8> {
    let len = (rng.next_u64() % 1500) as usize;
    let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    // Half of it starts like urc, so the decoder gets past the header.
    if rng.next_u64().is_multiple_of(2) && bytes.len() >= 3 {
        bytes[0] = 0x55;
        bytes[1] = if rng.next_u64().is_multiple_of(8) {
            2
        } else {
            1
        };
        bytes[2] =
            [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x81, 0x84, 0x99][(rng.next_u64() % 9) as usize];
    }
    bytes
}

#[test]
fn garbage_is_dropped_without_harm() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Client::join(relay.addr, "bob", &[]);
    alice.expect(|e| e["event"] == "joined" && e["name"] == "bob");
    let pid = relay.child.id();

    let mut rng = Rng(0x5eed);
    let sockets: Vec<UdpSocket> = (0..32)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut send_round = |count: usize| {
        for i in 0..count {
            let _ = sockets[i % sockets.len()].send_to(&garbage(&mut rng), relay.addr);
        }
    };
    // A first round to let the relay reach its working size, then measure the next rounds.
    send_round(20_000);
    alice.say("between the rounds");
    bob.expect_text("between the rounds");
    let before = rss_kib(pid);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = 0;
    while sent < 200_000 && Instant::now() < deadline {
        send_round(10_000);
        sent += 10_000;
        // Chat goes on in the middle of it.
        if sent % 50_000 == 0 {
            let text = format!("still here after {sent}");
            alice.say(&text);
            bob.expect_text(&text);
        }
    }
    let after = rss_kib(pid);
    assert!(sent >= 50_000, "sent only {sent} datagrams in time");
    eprintln!("{sent} garbage datagrams; relay RSS {before} KiB before, {after} KiB after");
    assert!(
        after < before + 4 * 1024,
        "memory grew from {before} to {after} KiB"
    );

    bob.say("and back");
    alice.expect_text("and back");
    let log = std::fs::read_to_string(data.path().join("rooms/lobby/messages.jsonl")).unwrap();
    let texts: Vec<String> = common::events(&log)
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        texts.first().map(String::as_str),
        Some("between the rounds")
    );
    assert_eq!(texts.last().map(String::as_str), Some("and back"));
    assert!(
        texts
            .iter()
            .all(|t| t.starts_with("still here") || t == "between the rounds" || t == "and back")
    );
    // Nothing reached a terminal either: both clients saw only the chat.
    for c in [&alice, &bob] {
        assert!(c.seen.iter().all(|e| e["event"] != "error"), "{:?}", c.seen);
    }
    assert!(relay.stop().success());
}
