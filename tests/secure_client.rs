//! The client behind its secure channel against the relay behind its own, with no network:
//! what the secure client does with the keys of a session it left behind, the client's rules
//! on the NotJoined a leave earns, and a client that moves to another relay of its list: a new
//! handshake there, with the key of the first (another key refused).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use urc::client::tunnel::{Received, Tunnel};
use urc::client::{Client, Config as ClientConfig, Event, MOVE_AFTER, SecureClient};
use urc::proto::message::Millis;
use urc::proto::secure::REKEY_AFTER;
use urc::proto::secure::frame::Frame;
use urc::proto::secure::keys::Keypair;
use urc::proto::wire::{ErrorCode, Packet, Token};
use urc::relay::secure::SecureRelay;
use urc::relay::{Config, Relay};
use uuid::Uuid;

const ALICE: &str = "192.0.2.1:4000";

fn relay_with(keys: Keypair) -> SecureRelay {
    SecureRelay::new(Relay::new(Config::default(), Vec::new()), keys)
}

fn config(name: &str) -> ClientConfig {
    ClientConfig {
        rooms: Vec::new(),
        name: name.into(),
        history: 0,
        since: None,
        seen: Default::default(),
        relays: Vec::new(),
    }
}

/// The relay takes `bytes` from `from` and ends its turn: what it sends.
fn datagram(
    relay: &mut SecureRelay,
    now: Instant,
    from: SocketAddr,
    bytes: &[u8],
) -> Vec<(SocketAddr, Vec<u8>)> {
    relay.handle(now, Millis::now(), from, bytes);
    turn(relay, now)
}

/// The relay ends its turn (its log committed): what it sends.
fn turn(relay: &mut SecureRelay, now: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
    relay.end_turn(now, Millis::now());
    let r = relay.relay_mut();
    if r.has_appends() {
        r.commit();
    }
    std::iter::from_fn(|| relay.poll_transmit())
        .map(|t| (t.to, t.bytes.to_vec()))
        .collect()
}

/// Datagrams both ways, without loss, until the client has nothing more to send.
fn settle(relay: &mut SecureRelay, now: Instant, from: SocketAddr, client: &mut SecureClient) {
    for _ in 0..50 {
        let to_relay: Vec<Vec<u8>> = std::iter::from_fn(|| client.poll_transmit(now)).collect();
        if to_relay.is_empty() {
            return;
        }
        for d in to_relay {
            for (to, back) in datagram(relay, now, from, &d) {
                if to == from {
                    client.handle(now, &back);
                }
            }
        }
    }
    panic!("never settled");
}

/// The relay restarted while alice renewed her keys with the new process (her DATA on the old
/// keys lost, so no UNKNOWN told her): NotJoined, a rejoin, a WELCOME opening a new session.
/// The old relay's late Stopping, sealed with her old keys, must not open then.
#[test]
fn the_secure_client_forgets_the_old_relays_keys_once_a_new_session_opens() {
    let keys = Keypair::generate();
    let mut now = Instant::now();
    let alice: SocketAddr = ALICE.parse().unwrap();
    let mut old = relay_with(keys.clone());
    let mut client = SecureClient::new(config("alice"), Keypair::generate(), None, now);
    settle(&mut old, now, alice, &mut client);
    assert!(client.is_joined());
    assert_eq!(client.sessions(), 1);
    old.relay_mut().stopping();
    let late: Vec<Vec<u8>> = turn(&mut old, now)
        .into_iter()
        .filter(|(to, _)| *to == alice)
        .map(|(_, d)| d)
        .collect();
    assert_eq!(late.len(), 1, "one Stopping to alice");
    drop(old);
    let mut new = relay_with(keys);
    now += REKEY_AFTER + Duration::from_secs(1);
    client.client_mut().request_who(now);
    let to_relay: Vec<Vec<u8>> = std::iter::from_fn(|| client.poll_transmit(now)).collect();
    assert!(
        to_relay
            .iter()
            .any(|d| matches!(Frame::decode(d), Ok(Frame::Hello { .. }))),
        "alice renews her keys"
    );
    // Her DATA on the old keys is lost: only the handshake reaches the new relay.
    for d in to_relay
        .iter()
        .filter(|d| !matches!(Frame::decode(d), Ok(Frame::Data { .. })))
    {
        for (to, back) in datagram(&mut new, now, alice, d) {
            assert_eq!(to, alice);
            client.handle(now, &back);
        }
    }
    settle(&mut new, now, alice, &mut client);
    assert!(client.is_joined(), "rejoined the new relay");
    assert_eq!(client.sessions(), 2, "a new session");
    while client.poll_event().is_some() {}
    client.handle(now, &late[0]);
    let events: Vec<Event> = std::iter::from_fn(|| client.poll_event()).collect();
    assert!(
        client.is_joined() && events.is_empty(),
        "the old relay's late Stopping was taken: {events:?}"
    );
}

/// While leaving, only a NotJoined naming the current session's token ends the wait: one
/// naming the session before (a late answer) does not.
#[test]
fn a_leaving_client_closes_only_on_a_not_joined_naming_its_token() {
    let now = Instant::now();
    let mut client = Client::new(config("alice"), now);
    while client.poll_transmit().is_some() {}
    let welcome = |token| Packet::Welcome {
        token,
        name: "alice".into(),
        latest: 0,
        timeout_ms: 30_000,
    };
    let not_joined = |token: Token| Packet::Error {
        code: ErrorCode::NotJoined,
        id: Uuid::from_bytes(token.0),
        message: "not joined: join again".into(),
    };
    let (first, second) = (Token([1; 16]), Token([2; 16]));
    client.handle(now, &welcome(first).encode());
    client.handle(now, &not_joined(first).encode());
    client.handle(now, &welcome(second).encode());
    assert_eq!(client.sessions(), 2);
    client.leave(now);
    client.handle(now, &not_joined(first).encode());
    assert!(
        !client.is_closed(),
        "closed on a NotJoined of the session before"
    );
    client.handle(now, &not_joined(second).encode());
    assert!(client.is_closed());
}

/// Mallory receives at alice's address (an on-path router, a shared NAT) and makes
/// handshakes there with keys of her own, each confirmed by a packet with a token she does
/// not know. Alice's session is still alice's, and her transport is still there: bob's
/// message to it is sealed for alice's key, which mallory cannot open, and alice reads it.
#[test]
fn a_sessions_packets_are_sealed_only_for_its_own_key() {
    let now = Instant::now();
    let keys = Keypair::generate();
    let relay_key = keys.public();
    let mut relay = relay_with(keys);
    let alice_at: SocketAddr = ALICE.parse().unwrap();
    let bob_at: SocketAddr = "192.0.2.2:4000".parse().unwrap();
    let mut alice = SecureClient::new(config("alice"), Keypair::generate(), None, now);
    let mut bob = SecureClient::new(config("bob"), Keypair::generate(), None, now);
    settle(&mut relay, now, alice_at, &mut alice);
    settle(&mut relay, now, bob_at, &mut bob);
    assert!(alice.is_joined() && bob.is_joined());
    // Alice hears of bob; what is in flight to her now is not the point.
    for (to, d) in turn(&mut relay, now) {
        if to == alice_at {
            alice.handle(now, &d);
        }
    }
    while alice.poll_event().is_some() {}

    // Three keys of hers, one after the other: each handshake confirmed by its PING.
    let junk = Token([9; 16]);
    let ping = Packet::Ping { token: junk }.encode();
    let mut mallories = Vec::new();
    let mut opened = Vec::new();
    for _ in 0..3 {
        let mut mallory = Tunnel::new(Keypair::generate(), Some(relay_key));
        let mut sealed = Vec::new();
        for _ in 0..5 {
            sealed.clear();
            if mallory.seal(now, &ping, &mut sealed) {
                break;
            }
            let hellos: Vec<Vec<u8>> = std::iter::from_fn(|| mallory.poll_transmit()).collect();
            for hello in hellos {
                for (to, back) in datagram(&mut relay, now, alice_at, &hello) {
                    assert_eq!(to, alice_at);
                    mallory.receive(now, &back, &mut opened);
                }
            }
        }
        assert!(
            !sealed.is_empty(),
            "mallory made a handshake at alice's address"
        );
        for (to, back) in datagram(&mut relay, now, alice_at, &sealed) {
            assert_eq!(to, alice_at);
            opened.clear();
            if let Received::Packet { .. } = mallory.receive(now, &back, &mut opened) {
                // Only the NotJoined her own packet earned, naming the token she sent.
                assert_eq!(
                    Packet::decode(&opened).unwrap(),
                    Packet::Error {
                        code: ErrorCode::NotJoined,
                        id: Uuid::from_bytes(junk.0),
                        message: "not joined: join again".into(),
                    }
                );
            }
        }
        mallories.push(mallory);
    }
    assert!(
        relay.relay().clients().get(&alice_at).is_some(),
        "alice is still in"
    );

    bob.client_mut().send(now, "for alice only").unwrap();
    let to_relay: Vec<Vec<u8>> = std::iter::from_fn(|| bob.poll_transmit(now)).collect();
    let mut to_alice = Vec::new();
    for d in to_relay {
        for (to, back) in datagram(&mut relay, now, bob_at, &d) {
            if to == alice_at {
                to_alice.push(back);
            }
        }
    }
    to_alice.extend(
        turn(&mut relay, now)
            .into_iter()
            .filter(|(to, _)| *to == alice_at)
            .map(|(_, d)| d),
    );
    assert!(
        !to_alice.is_empty(),
        "bob's message went to alice's address"
    );
    for d in &to_alice {
        for mallory in &mut mallories {
            opened.clear();
            assert!(
                !matches!(
                    mallory.receive(now, d, &mut opened),
                    Received::Packet { .. }
                ),
                "mallory opened a packet of alice's session"
            );
        }
    }
    for d in &to_alice {
        alice.handle(now, d);
    }
    let heard = std::iter::from_fn(|| alice.poll_event())
        .any(|e| matches!(&e, Event::Message { message, .. } if message.text == "for alice only"));
    assert!(heard, "alice read bob's message");
}

/// Alice's relay forgot her (she was silent past its timeout) while she renewed her keys: her
/// JOIN, sealed on the old keys just before the new ones were up, opens a new session, and
/// the relay welcomes her on the old keys (the new ones are not confirmed until her first
/// DATA on them arrives). Those old keys are this relay's, for this session: what comes on
/// them next, bob's message, must still open.
#[test]
fn a_welcome_on_the_keys_before_the_current_ones_keeps_them() {
    let mut now = Instant::now();
    let mut relay = relay_with(Keypair::generate());
    let alice_at: SocketAddr = ALICE.parse().unwrap();
    let bob_at: SocketAddr = "192.0.2.2:4000".parse().unwrap();
    let mut alice = SecureClient::new(config("alice"), Keypair::generate(), None, now);
    settle(&mut relay, now, alice_at, &mut alice);
    assert_eq!(alice.sessions(), 1);
    // Silent past the relay's timeout and past the time to renew her keys.
    // (The relay counts a timeout in the time it ran: a turn a second.)
    let renew_at = now + REKEY_AFTER + Duration::from_secs(1);
    while now < renew_at {
        now += Duration::from_secs(1);
        turn(&mut relay, now);
    }
    assert!(
        relay.relay().clients().get(&alice_at).is_none(),
        "timed out"
    );
    let mut bob = SecureClient::new(config("bob"), Keypair::generate(), None, now);
    settle(&mut relay, now, bob_at, &mut bob);
    // Her WHO on the old keys earns a NotJoined, and she joins again, also on the old keys:
    // the renewal's HELLO is under way.
    alice.client_mut().request_who(now);
    let mut hello = Vec::new();
    let mut held_join = None;
    for _ in 0..3 {
        let out: Vec<Vec<u8>> = std::iter::from_fn(|| alice.poll_transmit(now)).collect();
        for d in out {
            match Frame::decode(&d) {
                Ok(Frame::Hello { .. }) => hello.push(d),
                Ok(Frame::Data { .. }) if held_join.is_none() && alice.sessions() == 1 => {
                    for (to, back) in datagram(&mut relay, now, alice_at, &d) {
                        if to == alice_at {
                            alice.handle(now, &back);
                        }
                    }
                    if !alice.is_joined() && held_join.is_none() {
                        // The NotJoined was taken: what she sends next is the JOIN.
                        let next: Vec<Vec<u8>> =
                            std::iter::from_fn(|| alice.poll_transmit(now)).collect();
                        for n in next {
                            match Frame::decode(&n) {
                                Ok(Frame::Data { .. }) => held_join = Some(n),
                                _ => hello.push(n),
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let join = held_join.expect("alice joined again on the old keys");
    assert!(!hello.is_empty(), "alice renews her keys");
    // The renewal: HELLO, CHALLENGE, HELLO with the cookie, REPLY. Her DATA on the new keys
    // is lost.
    let mut up = false;
    for _ in 0..4 {
        let mut next = Vec::new();
        for d in hello.drain(..) {
            for (to, back) in datagram(&mut relay, now, alice_at, &d) {
                assert_eq!(to, alice_at);
                alice.handle(now, &back);
            }
        }
        for d in std::iter::from_fn(|| alice.poll_transmit(now)).collect::<Vec<_>>() {
            match Frame::decode(&d) {
                Ok(Frame::Hello { .. }) => next.push(d),
                _ => up = true,
            }
        }
        hello = next;
    }
    assert!(up, "alice's new keys are up");
    // The JOIN on the old keys arrives: a new session, welcomed on the old keys.
    for (to, back) in datagram(&mut relay, now, alice_at, &join) {
        if to == alice_at {
            alice.handle(now, &back);
        }
    }
    assert!(alice.is_joined(), "welcomed");
    assert_eq!(alice.sessions(), 2);
    while alice.poll_event().is_some() {}
    bob.client_mut().send(now, "still on the old keys").unwrap();
    let to_relay: Vec<Vec<u8>> = std::iter::from_fn(|| bob.poll_transmit(now)).collect();
    for d in to_relay {
        for (to, back) in datagram(&mut relay, now, bob_at, &d) {
            if to == alice_at {
                alice.handle(now, &back);
            }
        }
    }
    let heard = std::iter::from_fn(|| alice.poll_event()).any(
        |e| matches!(&e, Event::Message { message, .. } if message.text == "still on the old keys"),
    );
    assert!(
        heard,
        "bob's message, sealed on the keys of her new session, was dropped"
    );
}

const RELAY_A: &str = "198.51.100.1:7707";
const RELAY_B: &str = "198.51.100.2:7707";

/// Alice, with the relays A and B as her list, joined at A (whose key she learnt) and with
/// a line sent there; then A falls silent and she moves to B. Returns her, the time, and
/// what she sends B first.
fn moved_from_a(a: &mut SecureRelay) -> (SecureClient, Instant, Vec<Vec<u8>>) {
    let mut now = Instant::now();
    let alice: SocketAddr = ALICE.parse().unwrap();
    let relays = vec![RELAY_A.parse().unwrap(), RELAY_B.parse().unwrap()];
    let config = ClientConfig {
        relays,
        ..config("alice")
    };
    let mut client = SecureClient::new(config, Keypair::generate(), None, now);
    assert_eq!(client.relay(), Some(RELAY_A.parse().unwrap()));
    settle(a, now, alice, &mut client);
    assert!(client.is_joined());
    let learnt = std::iter::from_fn(|| client.poll_event())
        .filter(|e| matches!(e, Event::RelayKeyLearnt { .. }))
        .count();
    assert_eq!(learnt, 1);
    // A says nothing more: what alice sends from now on is lost.
    client.client_mut().send(now, "still there?").unwrap();
    let start = now;
    while client.moves() == 0 {
        assert!(now < start + MOVE_AFTER * 2, "alice never moved");
        while client.poll_transmit(now).is_some() {}
        now = client
            .poll_timeout()
            .expect("a timer while a relay owes an answer");
        client.handle_timeout(now);
    }
    assert!(now >= start + MOVE_AFTER, "moved after {:?}", now - start);
    assert_eq!(client.relay(), Some(RELAY_B.parse().unwrap()));
    let first: Vec<Vec<u8>> = std::iter::from_fn(|| client.poll_transmit(now)).collect();
    (client, now, first)
}

/// B has A's key (one cluster): alice's tunnel starts afresh there (a HELLO first, its keys
/// for A useless at B), takes B's CHALLENGE as the key she learnt at A, and rejoins with the
/// line she had not had acknowledged.
#[test]
fn a_client_that_moves_makes_a_new_handshake_with_the_same_key() {
    let keys = Keypair::generate();
    let mut a = relay_with(keys.clone());
    let mut b = relay_with(keys.clone());
    let (mut client, now, first) = moved_from_a(&mut a);
    assert!(
        matches!(first.as_slice(), [hello] if matches!(Frame::decode(hello), Ok(Frame::Hello { .. }))),
        "a new handshake, nothing sealed for A"
    );
    let alice: SocketAddr = ALICE.parse().unwrap();
    for d in first {
        for (_, back) in datagram(&mut b, now, alice, &d) {
            client.handle(now, &back);
        }
    }
    settle(&mut b, now, alice, &mut client);
    assert!(client.is_joined() && !client.is_closed());
    assert_eq!(client.sessions(), 2, "a new session, at B");
    assert_eq!(client.relay_key(), Some(keys.public()));
    assert_eq!(client.unacked(), 0, "the line went to B");
    assert_eq!(b.relay_mut().latest(), 1, "and B stored it");
    let events: Vec<Event> = std::iter::from_fn(|| client.poll_event()).collect();
    assert!(
        !events.iter().any(|e| matches!(
            e,
            Event::RelayKeyLearnt { .. } | Event::RelayKeyChanged { .. }
        )),
        "no first contact again: {events:?}"
    );
}

/// B offers another key than the one alice learnt at A: refused as a changed key, and nothing
/// more is sent.
#[test]
fn a_relay_of_the_list_with_another_key_is_refused() {
    let keys = Keypair::generate();
    let mut a = relay_with(keys.clone());
    let other = Keypair::generate();
    let mut b = relay_with(other.clone());
    let (mut client, now, first) = moved_from_a(&mut a);
    let alice: SocketAddr = ALICE.parse().unwrap();
    for d in first {
        for (_, back) in datagram(&mut b, now, alice, &d) {
            client.handle(now, &back);
        }
    }
    let events: Vec<Event> = std::iter::from_fn(|| client.poll_event()).collect();
    assert!(
        events.contains(&Event::RelayKeyChanged {
            pinned: keys.public(),
            offered: other.public()
        }),
        "{events:?}"
    );
    assert!(client.is_closed() && client.key_refused());
    assert_eq!(client.poll_transmit(now), None, "nothing more sent");
    assert_eq!(b.relay_mut().latest(), 0);
}
