//! Fuzz target: a client that finished its handshake and joined sends the relay arbitrary packets (its own token written in where a packet carries one), while another member listens.
//!
//! Run with `cargo fuzz run session` (see docs/security.md).
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use urc::client::tunnel::{Received, Tunnel};
use urc::client::{Config as ClientConfig, Event, SecureClient};
use urc::proto::message::Millis;
use urc::proto::secure::keys::Keypair;
use urc::proto::wire::{MAGIC, MAX_DATAGRAM, Packet, Token, VERSION};
use urc::relay::secure::SecureRelay;
use urc::relay::{Config, Relay};
use uuid::Uuid;

/// The relay, its clock, and what it sent in the last turn.
struct Net {
    relay: SecureRelay,
    now: Instant,
}

impl Net {
    /// Hands the relay `datagrams` from `from`, ends the turn as the shell does, and returns
    /// what it sent.
    fn turn(&mut self, from: SocketAddr, datagrams: &[Vec<u8>]) -> Vec<(SocketAddr, Vec<u8>)> {
        for d in datagrams {
            self.relay.handle(self.now, Millis(0), from, d);
        }
        self.relay.end_turn(self.now, Millis(0));
        let r = self.relay.relay_mut();
        if r.has_appends() {
            r.commit();
        }
        let mut out = Vec::new();
        while let Some(t) = self.relay.poll_transmit() {
            assert!(t.bytes.len() <= MAX_DATAGRAM, "a datagram over the largest");
            out.push((t.to, t.bytes.to_vec()));
        }
        out
    }
}

fuzz_target!(|data: &[u8]| {
    let mut net = Net {
        relay: SecureRelay::new(
            Relay::new(Config::default(), Vec::new()),
            Keypair::generate(),
        ),
        now: Instant::now(),
    };
    // Bob, an ordinary member, listening.
    let bob_at: SocketAddr = "192.0.2.2:4000".parse().unwrap();
    let config = ClientConfig {
        name: "bob".into(),
        history: 0,
        since: None,
        seen: Default::default(),
        relays: Vec::new(),
        rooms: Vec::new(),
    };
    let mut bob = SecureClient::new(config, Keypair::generate(), None, net.now);
    for _ in 0..20 {
        let out: Vec<Vec<u8>> = std::iter::from_fn(|| bob.poll_transmit(net.now)).collect();
        for (_, back) in net.turn(bob_at, &out) {
            bob.handle(net.now, &back);
        }
        if bob.client().is_joined() {
            break;
        }
    }
    assert!(bob.client().is_joined(), "bob joins");
    // Mallory makes her handshake and joins, by hand.
    let mallory_at: SocketAddr = "192.0.2.66:4000".parse().unwrap();
    let mut mallory = Tunnel::new(Keypair::generate(), None);
    let mut opened = Vec::new();
    for _ in 0..4 {
        mallory.seal(net.now, b"", &mut Vec::new());
        let hellos: Vec<Vec<u8>> = std::iter::from_fn(|| mallory.poll_transmit()).collect();
        for (_, back) in net.turn(mallory_at, &hellos) {
            mallory.receive(net.now, &back, &mut opened);
        }
    }
    assert!(mallory.is_up(net.now), "mallory's handshake");
    let join = Packet::Join {
        name: "mallory".into(),
        history: 0,
        instance: Uuid::from_u128(7),
        room: "lobby".into(),
    };
    let mut sealed = Vec::new();
    mallory.seal(net.now, &join.encode(), &mut sealed);
    let mut token = None;
    for (to, back) in net.turn(mallory_at, &[sealed]) {
        if to == bob_at {
            bob.handle(net.now, &back);
            continue;
        }
        let mut packet = Vec::new();
        if let Received::Packet { .. } = mallory.receive(net.now, &back, &mut packet)
            && let Ok(Packet::Welcome { token: t, .. }) = Packet::decode(&packet)
        {
            token = Some(t);
        }
    }
    let Token(token) = token.expect("mallory is welcomed");
    // Then whatever the input says: packets of one byte's length each, a turn after every
    // few, the clock moving on; each made a packet of ours (magic, version) with the token.
    let mut rest = data;
    let mut turns = 0;
    while let [len, tail @ ..] = rest
        && turns < 64
    {
        let len = usize::from(*len).min(tail.len());
        let (chunk, after) = tail.split_at(len);
        rest = after;
        let mut packet = chunk.to_vec();
        if packet.len() >= 3 {
            packet[0] = MAGIC;
            packet[1] = VERSION;
        }
        if packet.len() >= 19 && (0x02..=0x06).contains(&packet[2]) {
            packet[3..19].copy_from_slice(&token);
        }
        let mut sealed = Vec::new();
        if !mallory.seal(net.now, &packet, &mut sealed) {
            continue;
        }
        // At most 100 ms a turn: 64 turns stay well inside the relay's timeout, so bob,
        // who sends no keepalive here, is not timed out.
        net.now +=
            Duration::from_millis(u64::from(chunk.first().copied().unwrap_or(0)) * 100 / 255);
        turns += 1;
        for (to, back) in net.turn(mallory_at, &[sealed]) {
            if to == bob_at {
                bob.handle(net.now, &back);
            } else {
                let mut packet = Vec::new();
                mallory.receive(net.now, &back, &mut packet);
            }
        }
    }
    // Whatever she sent, bob is still a member, and the relay answers his WHO with the room.
    assert!(bob.client().is_joined(), "bob lost his session");
    assert!(
        net.relay.relay().clients().contains_key(&bob_at),
        "the relay lost bob"
    );
    bob.client_mut().request_who(net.now);
    let out: Vec<Vec<u8>> = std::iter::from_fn(|| bob.poll_transmit(net.now)).collect();
    while bob.poll_event().is_some() {}
    for (to, d) in net.turn(bob_at, &out) {
        if to == bob_at {
            bob.handle(net.now, &d);
        }
    }
    let who = std::iter::from_fn(|| bob.poll_event()).find_map(|e| match e {
        Event::Who { names, .. } => Some(names),
        _ => None,
    });
    let who = who.expect("bob's WHO is answered");
    assert!(who.iter().any(|n| n == "bob"), "{who:?}");
});
