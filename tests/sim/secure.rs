//! The secure channel alone, the client's tunnel and the relay's channels over a simulated lossy link: first contact, pinning, rekeying under loss, restarts, roaming, and an attacker on the path who flips, replays and injects.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use urc::client::tunnel::{Received, Tunnel};
use urc::proto::secure::REKEY_AFTER;
use urc::proto::secure::frame::Frame;
use urc::proto::secure::keys::{Keypair, PublicKey};
use urc::relay::channels::{Channels, Incoming};
use urc::relay::cookie::Cookies;

use crate::net::{Rng, seeds};

const CLIENT: &str = "127.0.0.1:40000";
const ROAMED: &str = "127.0.0.1:40001";

/// The relay's side: its channels and cookies, and what it opened.
struct Relay {
    channels: Channels,
    cookies: Cookies,
    opened: Vec<(SocketAddr, Vec<u8>, PublicKey)>,
    /// Every datagram opened, as it arrived: none may open twice.
    opened_datagrams: BTreeSet<Vec<u8>>,
}

impl Relay {
    fn new(keypair: Keypair, now: Instant) -> Self {
        Self {
            channels: Channels::new(keypair, 64),
            cookies: Cookies::new(now),
            opened: Vec::new(),
            opened_datagrams: BTreeSet::new(),
        }
    }

    /// Takes a datagram; what it answers.
    fn take(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        match self.channels.receive(
            now,
            from,
            datagram,
            &mut self.cookies,
            || true,
            || None,
            &mut out,
        ) {
            Incoming::Packet { peer } => {
                assert!(
                    self.opened_datagrams.insert(datagram.to_vec()),
                    "a datagram opened twice"
                );
                self.opened.push((from, out, peer));
                None
            }
            Incoming::Answer(a) => Some(a),
            Incoming::Dropped(..) => None,
        }
    }
}

/// The client's side: its tunnel, and what it received.
struct Client {
    tunnel: Tunnel,
    addr: SocketAddr,
    opened: Vec<Vec<u8>>,
    events: Vec<Received>,
}

impl Client {
    fn new(identity: Keypair, relay: Option<PublicKey>) -> Self {
        Self {
            tunnel: Tunnel::new(identity, relay),
            addr: CLIENT.parse().unwrap(),
            opened: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Seals `packet`, or starts the handshake: every datagram to send.
    fn send(&mut self, now: Instant, packet: &[u8]) -> Vec<Vec<u8>> {
        let mut d = Vec::new();
        let mut out = Vec::new();
        if self.tunnel.seal(now, packet, &mut d) {
            out.push(d);
        }
        out.extend(std::iter::from_fn(|| self.tunnel.poll_transmit()));
        out
    }

    fn take(&mut self, now: Instant, datagram: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        match self.tunnel.receive(now, datagram, &mut out) {
            Received::Packet { .. } => self.opened.push(out),
            Received::Dropped(_) => {}
            other => self.events.push(other),
        }
        std::iter::from_fn(|| self.tunnel.poll_transmit()).collect()
    }
}

/// Runs datagrams both ways until none is left, without loss.
fn settle(now: Instant, relay: &mut Relay, client: &mut Client, mut to_relay: Vec<Vec<u8>>) {
    for _ in 0..10 {
        let mut to_client = Vec::new();
        for d in to_relay.drain(..) {
            to_client.extend(relay.take(now, client.addr, &d));
        }
        if to_client.is_empty() {
            return;
        }
        for d in to_client {
            to_relay.extend(client.take(now, &d));
        }
    }
    panic!("the handshake never settled");
}

/// A client and a relay that made their first handshake, the client learning the key.
fn connected(now: Instant) -> (Relay, Client) {
    connected_with(Keypair::generate(), now)
}

fn connected_with(relay_keys: Keypair, now: Instant) -> (Relay, Client) {
    let mut relay = Relay::new(relay_keys.clone(), now);
    let mut client = Client::new(Keypair::generate(), None);
    let first = client.send(now, b"hello");
    settle(now, &mut relay, &mut client, first);
    assert_eq!(
        client.events,
        [Received::Learnt(relay_keys.public()), Received::Up]
    );
    client.events.clear();
    (relay, client)
}

#[test]
fn first_contact_learns_the_relays_key_and_then_every_packet_is_sealed() {
    let now = Instant::now();
    let relay_keys = Keypair::generate();
    let identity = Keypair::generate();
    let mut relay = Relay::new(relay_keys.clone(), now);
    let mut client = Client::new(identity.clone(), None);

    let hello = client.send(now, b"JOIN alice");
    assert_eq!(hello.len(), 1, "no transport yet: only the HELLO");
    let challenge = relay.take(now, client.addr, &hello[0]).unwrap();
    assert!(
        challenge.len() <= 3 * hello[0].len(),
        "an address not yet proved gets at most three times what it sent"
    );
    assert_eq!(
        relay.channels.len(),
        0,
        "a CHALLENGE costs the relay nothing"
    );
    let hello2 = client.take(now, &challenge);
    assert_eq!(client.events, [Received::Learnt(relay_keys.public())]);
    let reply = relay.take(now, client.addr, &hello2[0]).unwrap();
    assert!(client.take(now, &reply).is_empty());
    assert_eq!(client.events[1], Received::Up);

    let sent = client.send(now, "JOIN alice 你好".as_bytes());
    assert!(relay.take(now, client.addr, &sent[0]).is_none());
    assert_eq!(relay.opened.len(), 1);
    let (from, packet, peer) = &relay.opened[0];
    assert_eq!(
        (*from, packet.as_slice(), *peer),
        (client.addr, "JOIN alice 你好".as_bytes(), identity.public())
    );
    assert_eq!(
        relay.channels.last_confirmed(client.addr),
        Some(identity.public())
    );

    let mut back = Vec::new();
    assert!(
        relay
            .channels
            .seal(now, client.addr, &identity.public(), b"WELCOME", &mut back)
    );
    client.take(now, &back);
    assert_eq!(client.opened, [b"WELCOME".to_vec()]);
}

#[test]
fn a_pinned_client_refuses_another_relay_key_and_sends_nothing_more() {
    let now = Instant::now();
    let pinned = Keypair::generate().public();
    let mut relay = Relay::new(Keypair::generate(), now);
    let mut client = Client::new(Keypair::generate(), Some(pinned));
    let hello = client.send(now, b"JOIN");
    let challenge = relay.take(now, client.addr, &hello[0]).unwrap();
    assert!(client.take(now, &challenge).is_empty());
    assert_eq!(
        client.events,
        [Received::Changed {
            pinned,
            offered: relay.channels.public()
        }]
    );
    assert!(client.tunnel.is_refused());
    let later = now + Duration::from_secs(5);
    assert!(
        client.send(later, b"JOIN").is_empty(),
        "nothing is sent to that relay"
    );
}

#[test]
fn a_pinned_client_goes_straight_to_the_handshake_with_the_right_key() {
    let now = Instant::now();
    let relay_keys = Keypair::generate();
    let mut relay = Relay::new(relay_keys.clone(), now);
    let mut client = Client::new(Keypair::generate(), Some(relay_keys.public()));
    let first = client.send(now, b"JOIN");
    settle(now, &mut relay, &mut client, first);
    assert_eq!(
        client.events,
        [Received::Challenged, Received::Up],
        "nothing learnt: it was pinned"
    );
}

#[test]
fn a_hello_sent_again_gets_the_same_reply_and_no_second_transport() {
    let now = Instant::now();
    let relay_keys = Keypair::generate();
    let mut relay = Relay::new(relay_keys.clone(), now);
    let mut client = Client::new(Keypair::generate(), Some(relay_keys.public()));
    let hello = client.send(now, b"JOIN");
    let challenge = relay.take(now, client.addr, &hello[0]).unwrap();
    let hello2 = client.take(now, &challenge).remove(0);
    let reply = relay.take(now, client.addr, &hello2).unwrap();
    let again = relay.take(now, client.addr, &hello2).unwrap();
    assert_eq!(reply, again);
    assert_eq!(relay.channels.len(), 1);
}

#[test]
fn after_a_relay_restart_the_client_makes_a_new_handshake_at_once() {
    let now = Instant::now();
    let relay_keys = Keypair::generate();
    let (_, mut client) = connected_with(relay_keys.clone(), now);
    // The same key (read back from its file), no transports.
    let mut relay = Relay::new(
        Keypair::from_file_text(&relay_keys.to_file_text()).unwrap(),
        now,
    );
    let sent = client.send(now, b"PING");
    let unknown = relay.take(now, client.addr, &sent[0]).unwrap();
    assert!(matches!(Frame::decode(&unknown), Ok(Frame::Unknown { .. })));
    assert!(client.take(now, &unknown).is_empty());
    assert_eq!(client.events, [Received::Lost]);
    let again = client.send(now, b"PING");
    settle(now, &mut relay, &mut client, again);
    assert_eq!(
        client.events[1..],
        [Received::Challenged, Received::Up],
        "the same key: nothing learnt"
    );
    let sent = client.send(now, b"JOIN");
    relay.take(now, client.addr, &sent[0]);
    assert_eq!(relay.opened.last().unwrap().1, b"JOIN");
}

/// A relay that restarted while the client renewed its keys with the new one (no UNKNOWN told
/// the client): what the old relay sealed before it died still opens on the keys before the
/// current ones, until the client forgets them (the secure client does once a WELCOME opened
/// a new session), and then it does not.
#[test]
fn the_keys_before_the_current_ones_open_nothing_once_forgotten() {
    let now = Instant::now();
    let relay_keys = Keypair::generate();
    let (mut old, mut client) = connected_with(relay_keys.clone(), now);
    let key = client.tunnel.identity();
    let sent = client.send(now, b"JOIN");
    old.take(now, client.addr, &sent[0]);
    let late: Vec<Vec<u8>> = (0..2)
        .map(|k| {
            let mut d = Vec::new();
            assert!(
                old.channels
                    .seal(now, client.addr, &key, &[b'A' + k], &mut d)
            );
            d
        })
        .collect();
    let mut new = Relay::new(relay_keys, now);
    let later = now + REKEY_AFTER + Duration::from_secs(1);
    let renewing = client.send(later, b"PING");
    let hellos: Vec<Vec<u8>> = renewing
        .into_iter()
        .filter(|d| matches!(Frame::decode(d), Ok(Frame::Hello { .. })))
        .collect();
    assert_eq!(hellos.len(), 1, "the client renews its keys");
    settle(later, &mut new, &mut client, hellos);
    assert_eq!(client.events.last(), Some(&Received::Up));
    client.take(later, &late[0]);
    assert_eq!(client.opened, [b"A".to_vec()], "the old keys still open");
    client.tunnel.forget_previous();
    client.take(later, &late[1]);
    assert_eq!(client.opened.len(), 1, "opened after it was forgotten");
    // The current keys work on (confirmed by the client's first DATA on them).
    let sent = client.send(later, b"PING");
    new.take(later, client.addr, &sent[0]);
    let mut d = Vec::new();
    assert!(new.channels.seal(later, client.addr, &key, b"C", &mut d));
    client.take(later, &d);
    assert_eq!(client.opened.last().unwrap(), b"C");
}

#[test]
fn a_client_whose_address_changed_proves_the_new_one_with_a_new_handshake() {
    let now = Instant::now();
    let (mut relay, mut client) = connected(now);
    client.addr = ROAMED.parse().unwrap();
    let sent = client.send(now, b"PING");
    let unknown = relay.take(now, client.addr, &sent[0]).unwrap();
    assert!(
        relay.opened.is_empty(),
        "nothing opened from an address never proved"
    );
    client.take(now, &unknown);
    assert_eq!(client.events, [Received::Lost]);
    let again = client.send(now, b"PING");
    settle(now, &mut relay, &mut client, again);
    let sent = client.send(now, b"JOIN again");
    relay.take(now, client.addr, &sent[0]);
    assert_eq!(relay.opened.last().unwrap().0, client.addr);
}

#[test]
fn an_unknown_that_answers_nothing_we_sent_is_ignored() {
    let now = Instant::now();
    let (_relay, mut client) = connected(now);
    for receiver in [0, 1, u32::MAX] {
        let forged = Frame::Unknown {
            receiver,
            counter: 0,
        }
        .encode();
        client.take(now, &forged);
    }
    assert!(client.events.is_empty());
    assert!(client.tunnel.is_up(now));
}

#[test]
fn an_attacker_on_the_path_can_neither_read_nor_change_nor_replay_nor_inject() {
    for seed in seeds(0..20) {
        let mut rng = Rng::new(seed);
        let now = Instant::now();
        let (mut relay, mut client) = connected(now);
        let secret = format!("the secret plan {seed} 你好");
        let mut captured = Vec::new();
        for _ in 0..20 {
            let d = client.send(now, secret.as_bytes()).remove(0);
            captured.push(d.clone());
            relay.take(now, client.addr, &d);
        }
        let genuine = relay.opened.len();
        assert_eq!(genuine, 20);
        assert!(
            !captured
                .iter()
                .any(|d| d.windows(secret.len()).any(|w| w == secret.as_bytes())),
            "seed {seed}: the plaintext is in the captured bytes"
        );
        // Replayed, each one, and with one bit flipped anywhere past the receiver's index.
        for d in &captured {
            assert!(relay.take(now, client.addr, d).is_none());
            let mut bad = d.clone();
            let i = rng.range(7, d.len() as u64 - 1) as usize;
            bad[i] ^= 1 << rng.range(0, 7);
            relay.take(now, client.addr, &bad);
        }
        // Injected: DATA frames of random bytes to the client's real index.
        let index = u32::from_be_bytes(captured[0][3..7].try_into().unwrap());
        for counter in 0..50 {
            let sealed: Vec<u8> = (0..rng.range(16, 200))
                .map(|_| rng.next_u64() as u8)
                .collect();
            let forged = Frame::Data {
                receiver: index,
                counter: counter * 1000,
                sealed: &sealed,
            }
            .encode();
            relay.take(now, client.addr, &forged);
        }
        assert_eq!(
            relay.opened.len(),
            genuine,
            "seed {seed}: something forged was opened"
        );
        // The real client goes on as if nothing happened.
        let d = client.send(now, b"still here").remove(0);
        relay.take(now, client.addr, &d);
        assert_eq!(relay.opened.last().unwrap().1, b"still here");
    }
}

/// A lossy link in simulated time: each datagram is lost, duplicated or delayed by the seed.
struct Link {
    rng: Rng,
    /// (when it arrives, to the relay?, bytes)
    flying: VecDeque<(Instant, bool, Vec<u8>)>,
}

impl Link {
    fn send(&mut self, now: Instant, to_relay: bool, d: Vec<u8>) {
        if self.rng.percent(10) {
            return;
        }
        let copies = if self.rng.percent(5) { 2 } else { 1 };
        for _ in 0..copies {
            let at = now + Duration::from_millis(5) + self.rng.upto(Duration::from_millis(80));
            self.flying.push_back((at, to_relay, d.clone()));
        }
    }

    fn due(&mut self, now: Instant) -> Vec<(bool, Vec<u8>)> {
        let (due, later): (Vec<_>, Vec<_>) = self.flying.drain(..).partition(|(at, ..)| *at <= now);
        self.flying = later.into();
        due.into_iter().map(|(_, r, d)| (r, d)).collect()
    }
}

#[test]
fn rekeying_under_loss_loses_nothing_and_never_opens_a_datagram_twice() {
    for seed in seeds(0..8) {
        let start = Instant::now();
        let relay_keys = Keypair::generate();
        let mut relay = Relay::new(relay_keys, start);
        let mut client = Client::new(Keypair::generate(), None);
        let mut link = Link {
            rng: Rng::new(seed),
            flying: VecDeque::new(),
        };
        // Items 0.. sent every 100 ms for ten minutes; each sent again every 300 ms until the
        // relay echoes it (the retransmission the layer above does).
        let end = start + Duration::from_secs(600);
        let mut unechoed: BTreeSet<u32> = BTreeSet::new();
        let mut next_item = 0u32;
        let mut echoed = BTreeSet::new();
        let mut at_relay = BTreeSet::new();
        let mut now = start;
        let mut last_resend = start;
        while now < end || (!unechoed.is_empty() && now < end + Duration::from_secs(30)) {
            now += Duration::from_millis(10);
            if now < end && (now - start).as_millis().is_multiple_of(100) {
                unechoed.insert(next_item);
                for d in client.send(now, &next_item.to_be_bytes()) {
                    link.send(now, true, d);
                }
                next_item += 1;
            }
            if now - last_resend >= Duration::from_millis(300) {
                last_resend = now;
                for item in unechoed.clone() {
                    for d in client.send(now, &item.to_be_bytes()) {
                        link.send(now, true, d);
                    }
                }
            }
            for (to_relay, d) in link.due(now) {
                if to_relay {
                    let before = relay.opened.len();
                    if let Some(answer) = relay.take(now, client.addr, &d) {
                        link.send(now, false, answer);
                    }
                    if relay.opened.len() > before {
                        let (_, packet, key) = relay.opened.last().unwrap().clone();
                        at_relay.insert(u32::from_be_bytes(packet[..4].try_into().unwrap()));
                        let mut echo = Vec::new();
                        if relay
                            .channels
                            .seal(now, client.addr, &key, &packet, &mut echo)
                        {
                            link.send(now, false, echo);
                        }
                    }
                } else {
                    let before = client.opened.len();
                    for d in client.take(now, &d) {
                        link.send(now, true, d);
                    }
                    if client.opened.len() > before {
                        let p = client.opened.last().unwrap();
                        let item = u32::from_be_bytes(p[..4].try_into().unwrap());
                        unechoed.remove(&item);
                        echoed.insert(item);
                    }
                }
            }
            relay.channels.sweep(now);
            assert!(
                relay.channels.len() <= 3,
                "seed {seed}: {} transports for one client",
                relay.channels.len()
            );
        }
        assert!(
            unechoed.is_empty(),
            "seed {seed}: never echoed: {unechoed:?}"
        );
        assert_eq!(echoed.len() as u32, next_item, "seed {seed}");
        let handshakes = client.events.iter().filter(|e| **e == Received::Up).count();
        let expected = (600 / REKEY_AFTER.as_secs()) as usize;
        assert!(
            handshakes >= expected,
            "seed {seed}: {handshakes} handshakes in ten minutes, expected {expected} or more"
        );
        assert!(
            !client
                .events
                .iter()
                .any(|e| matches!(e, Received::Lost | Received::Changed { .. })),
            "seed {seed}: {:?}",
            client.events
        );
        // Every item reached the relay; no datagram opened twice there (Relay::take checks),
        // though the link duplicated some.
        assert_eq!(at_relay.len() as u32, next_item, "seed {seed}");
    }
}
