//! Fuzz target: the outer frames and the packets on arbitrary bytes, the relay behind its secure channel and the client's tunnel on what arrives.
//!
//! Run with `cargo fuzz run decode` (see docs/security.md).
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use urc::client::tunnel::Tunnel;
use urc::proto::message::Millis;
use urc::proto::secure::frame::Frame;
use urc::proto::secure::keys::Keypair;
use urc::proto::wire::Packet;
use urc::relay::secure::SecureRelay;
use urc::relay::{Config, Relay};

fuzz_target!(|data: &[u8]| {
    // Decoding never panics; whatever decodes encodes back to the same bytes.
    if let Ok(packet) = Packet::decode(data) {
        assert_eq!(packet.encode(), data, "{packet:?}");
    }
    if let Ok(frame) = Frame::decode(data) {
        assert_eq!(frame.encode(), data, "{frame:?}");
    }
    // The relay takes any datagram without panicking, stores nothing from a stranger, and
    // answers an address that never finished a handshake at most three times what it sent.
    let mut relay = SecureRelay::new(
        Relay::new(Config::default(), Vec::new()),
        Keypair::generate(),
    );
    let from: SocketAddr = "192.0.2.7:4000".parse().unwrap();
    let now = Instant::now();
    relay.handle(now, Millis(0), from, data);
    relay.end_turn(now, Millis(0));
    assert!(!relay.relay().has_appends());
    assert_eq!(relay.transports(), 0, "a transport from one datagram");
    while let Some(t) = relay.poll_transmit() {
        assert!(
            t.bytes.len() <= 3 * data.len(),
            "more than 3x to an unvalidated address"
        );
    }
    // The client's tunnel takes any datagram without panicking, and opens nothing.
    let mut tunnel = Tunnel::new(Keypair::generate(), None);
    let mut out = Vec::new();
    tunnel.seal(now, b"", &mut out);
    tunnel.receive(now, data, &mut out);
    assert!(!tunnel.is_up(now), "up from one datagram");
});
