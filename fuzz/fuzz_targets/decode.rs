//! Fuzz target: the datagram decoder on arbitrary bytes, and the relay's rules on what decodes.
//!
//! Run with `cargo fuzz run decode` (see docs/security.md).
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use urc::proto::message::Millis;
use urc::relay::{Config, Relay};
use urc::proto::wire::{Packet, Proof};

fuzz_target!(|data: &[u8]| {
    // Decoding never panics; whatever decodes encodes back to the same bytes (with the proof
    // of a relay datagram, which its sender writes in, put back).
    if let Ok(packet) = Packet::decode(data) {
        let mut again = packet.encode();
        if let Some(proof) = Proof::read(data) {
            proof.write(&mut again);
        }
        assert_eq!(again, data, "{packet:?}");
    }
    // The relay takes any datagram without panicking, and stores nothing from a stranger.
    let mut relay = Relay::new(Config::default(), Vec::new());
    let from: SocketAddr = "192.0.2.7:4000".parse().unwrap();
    let now = Instant::now();
    relay.handle(now, Millis(0), from, data);
    relay.end_turn(now, Millis(0));
    assert!(!relay.has_appends());
    while let Some(t) = relay.poll_transmit() {
        assert!(t.bytes.len() <= 3 * data.len(), "more than 3x to an unvalidated address");
    }
});
