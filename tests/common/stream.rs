//! A stream of numbered lines across a relay killed mid-stream: alice says them, bob reads them, the relay dies without a word and another takes over, and nothing is lost or doubled.

use std::path::Path;

use serde_json::Value;

use super::{Client, Relay, read_log};

/// Alice says `n` numbered lines; once bob has seen line 040 the relay is killed and
/// `take_over` starts the one that follows, on the data directory `data`. Waits until bob has
/// seen every line and alice has had each acknowledged, then checks that each is stored once
/// in order, shown to bob once in order, and shown to alice as hers once. Returns the relay
/// that took over and alice's events.
pub fn across_a_crash(
    relay: Relay,
    mut alice: Client,
    bob: &mut Client,
    data: &Path,
    n: usize,
    take_over: impl FnOnce() -> Relay,
) -> (Relay, Vec<Value>) {
    for i in 0..n {
        alice.say(&format!("line {i:03}"));
    }
    // Part of the stream through, part of it in flight, then the relay dies.
    bob.expect(|e| e["event"] == "message" && e["text"] == "line 040");
    relay.crash();
    let relay = take_over();
    bob.expect(|e| e["event"] == "notice" && e["message"] == "rejoined as bob");
    while bob.live().len() < n {
        bob.expect(|e| e["event"] == "message");
    }
    let (status, alice_events) = alice.finish();
    assert!(
        status.success(),
        "every line acknowledged: {alice_events:#?}"
    );
    let typed: Vec<String> = (0..n).map(|i| format!("line {i:03}")).collect();
    let stored: Vec<String> = read_log(data).into_iter().map(|m| m.1).collect();
    assert_eq!(stored, typed, "each line stored once, in order");
    let seen: Vec<String> = bob.live().into_iter().map(|m| m.2).collect();
    assert_eq!(seen, typed, "bob saw each line once, in order");
    let acked: Vec<u64> = (alice_events.iter())
        .filter(|e| e["event"] == "message" && e["from"] == "alice")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        acked,
        (1..=n as u64).collect::<Vec<_>>(),
        "alice's own, once each"
    );
    (relay, alice_events)
}
