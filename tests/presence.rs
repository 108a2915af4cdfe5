//! Who is in the room, end to end: leaving with a message, leaving at once, and the room told
//! truly after a relay restart.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Relay};
use serde_json::json;

/// `/quit MESSAGE` leaves with the message, shown to the others with the leave within a
/// second, and the name is free again at once.
#[test]
fn quit_with_a_message_is_shown_with_the_leave_and_frees_the_name_at_once() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut ann = Client::join(relay.addr, "ann", &[]);
    let mut bo = Client::join(relay.addr, "bo", &[]);
    ann.expect(|e| e["event"] == "joined" && e["name"] == "bo");
    let quit = Instant::now();
    bo.say("/quit  gone home, back at 9 ");
    let left = ann.expect(|e| e["event"] == "left" && e["name"] == "bo");
    let took = quit.elapsed();
    assert!(took < Duration::from_secs(1), "shown after {took:?}");
    assert_eq!(left["reason"], "quit");
    assert_eq!(left["message"], "gone home, back at 9");
    let (status, _) = bo.finish();
    assert!(status.success());
    // Another process takes the name at once.
    let _bo = Client::join(relay.addr, "bo", &[]);
    ann.expect(|e| e["event"] == "joined" && e["name"] == "bo");
}

/// The relay restarts (stopped with SIGTERM, started again on its log): cy quits while it is
/// away. ann and bo rejoin the new relay; each is shown cy leaving, once, within a few
/// seconds, and nobody joining; `/who` then agrees.
#[test]
fn after_a_relay_restart_who_left_meanwhile_is_shown_and_nobody_joins_twice() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let addr = relay.addr;
    let mut ann = Client::join(addr, "ann", &[]);
    let mut bo = Client::join(addr, "bo", &[]);
    let cy = Client::join(addr, "cy", &[]);
    ann.expect(|e| e["event"] == "joined" && e["name"] == "cy");
    bo.expect(|e| e["event"] == "joined" && e["name"] == "cy");
    assert!(relay.stop().success());
    for c in [&mut ann, &mut bo] {
        c.expect(|e| {
            e["event"] == "notice" && e["message"] == "the relay stopped; trying to rejoin"
        });
    }
    // cy leaves while nobody listens.
    let (status, _) = cy.finish();
    assert!(status.success());
    let _relay = Relay::start_at(&addr.to_string(), data.path(), &[]);
    let back = Instant::now();
    for c in [&mut ann, &mut bo] {
        let name = c.name.clone();
        c.expect(|e| e["event"] == "notice" && e["message"] == format!("rejoined as {name}"));
        c.expect(|e| e["event"] == "left" && e["name"] == "cy");
        let took = back.elapsed();
        assert!(took < Duration::from_secs(12), "{name} told after {took:?}");
    }
    for c in [&mut ann, &mut bo] {
        c.say("/who");
        let who = c.expect(|e| e["event"] == "who");
        assert_eq!(who["names"], json!(["ann", "bo"]));
        let since: Vec<_> = (c.seen.iter())
            .skip_while(|e| e["message"] != "the relay stopped; trying to rejoin")
            .filter(|e| e["event"] == "joined" || e["event"] == "left")
            .collect();
        assert_eq!(since.len(), 1, "{}: {since:#?}", c.name);
    }
}
