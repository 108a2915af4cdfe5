//! The relay behind its secure channel against spoofed and forged traffic, driven datagram by datagram: a spoofed source gets at most one small answer, never three times what it sent, and no transport; a cookie proves one address for ten seconds; nothing sealed by anyone but a member is opened; and a real client joins through it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use urc::client::{Config as ClientConfig, Event, SecureClient};
use urc::proto::message::Millis;
use urc::proto::secure::frame::{Frame, HELLO_NOISE_LEN};
use urc::proto::secure::keys::Keypair;
use urc::relay::secure::SecureRelay;
use urc::relay::{Config, Relay};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("an address")
}

/// SplitMix64, for reproducible junk.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// A relay behind its channel, and what it sent to whom.
struct Net {
    relay: SecureRelay,
    now: Instant,
    sent: Vec<(SocketAddr, Vec<u8>)>,
}

impl Net {
    fn new() -> Self {
        Self {
            relay: SecureRelay::new(
                Relay::new(Config::default(), Vec::new()),
                Keypair::generate(),
            ),
            now: Instant::now(),
            sent: Vec::new(),
        }
    }

    /// Hands the relay one datagram and ends the turn; what it sent.
    fn datagram(&mut self, from: SocketAddr, bytes: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
        self.relay.handle(self.now, Millis::now(), from, bytes);
        self.relay.end_turn(self.now, Millis::now());
        let r = self.relay.relay_mut();
        if r.has_appends() {
            r.commit();
        }
        let mut out = Vec::new();
        while let Some(t) = self.relay.poll_transmit() {
            out.push((t.to, t.bytes.to_vec()));
        }
        self.sent.extend(out.iter().cloned());
        out
    }

    /// A client joined as `name` from `from`, the datagrams going both ways until it is in.
    fn join(&mut self, from: SocketAddr, name: &str) -> SecureClient {
        let config = ClientConfig {
            rooms: Vec::new(),
            name: name.into(),
            history: 0,
            since: None,
            seen: Default::default(),
            relays: Vec::new(),
        };
        let mut client = SecureClient::new(config, Keypair::generate(), None, self.now);
        for _ in 0..20 {
            let mut to_relay = Vec::new();
            while let Some(d) = client.poll_transmit(self.now) {
                to_relay.push(d);
            }
            for d in to_relay {
                for (to, back) in self.datagram(from, &d) {
                    assert_eq!(to, from);
                    client.handle(self.now, &back);
                }
            }
            if client.is_joined() {
                return client;
            }
        }
        panic!("{name} never joined");
    }
}

/// HELLOs and DATA with a victim's source address (an attacker spoofing it, or replaying
/// what it captured of a member): each gets at most one small answer, a CHALLENGE or an
/// UNKNOWN, never more than three times the bytes it came in; the victim gets no transport,
/// no session and nothing of the room.
#[test]
fn spoofed_handshakes_and_data_make_the_relay_send_a_victim_little() {
    let mut net = Net::new();
    let alice = addr("192.0.2.1:4000");
    let mut client = net.join(alice, "alice");
    let transports = net.relay.transports();
    // What alice sent, captured: her handshake with its cookie, and a sealed PING.
    let captured: Vec<Vec<u8>> = net
        .sent
        .iter()
        .filter(|(to, _)| *to == alice)
        .map(|(_, d)| d.clone())
        .collect();
    assert!(!captured.is_empty());
    client.client_mut().request_who(net.now);
    let alices_data = client.poll_transmit(net.now).expect("a sealed WHO");
    let victim = addr("203.0.113.7:5353");
    let mut rng = Rng(7);
    let (mut sent, mut received) = (0, 0);
    for k in 0..1000u64 {
        let datagram = match k % 4 {
            0 => Frame::Hello {
                sender: k as u32,
                cookie: &[],
                noise: &rng.bytes(HELLO_NOISE_LEN).try_into().unwrap(),
            }
            .encode(),
            1 => Frame::Hello {
                sender: k as u32,
                cookie: &rng.bytes(20),
                noise: &rng.bytes(HELLO_NOISE_LEN).try_into().unwrap(),
            }
            .encode(),
            2 => alices_data.clone(),
            _ => {
                let sealed = rng.bytes(16 + (k as usize % 200));
                Frame::Data {
                    receiver: rng.next_u64() as u32,
                    counter: k,
                    sealed: &sealed,
                }
                .encode()
            }
        };
        received += datagram.len();
        let answers = net.datagram(victim, &datagram);
        assert!(answers.len() <= 1, "one answer at most: {answers:?}");
        for (to, answer) in &answers {
            assert_eq!(*to, victim);
            assert!(
                matches!(
                    Frame::decode(answer),
                    Ok(Frame::Challenge { .. } | Frame::Unknown { .. })
                ),
                "{answer:02x?}"
            );
            assert!(answer.len() <= 3 * datagram.len());
            sent += answer.len();
        }
    }
    assert!(sent <= 3 * received, "{sent} bytes for {received}");
    assert_eq!(
        net.relay.transports(),
        transports,
        "the victim got a transport"
    );
    assert_eq!(net.relay.relay().clients().len(), 1);
    // Alice's one, and one for each spoofed HELLO: none got as far as a handshake.
    assert_eq!(net.relay.relay().stats().challenges, 1 + 500);
    assert_eq!(net.relay.relay().stats().handshakes, 1);
    println!(
        "victim: {received} bytes spoofed, {sent} bytes sent back ({:.2}x)",
        sent as f64 / received as f64
    );
}

/// A cookie proves an address for ten seconds: from another address (even the same IP's next
/// port), altered in any byte, cut short or older than that, a HELLO with it is challenged
/// again and makes no transport. The same cookie from its own address, fresh, is answered.
#[test]
fn a_cookie_is_good_for_its_own_address_for_ten_seconds() {
    let mut net = Net::new();
    let carol = addr("192.0.2.3:4000");
    let noise = [7u8; HELLO_NOISE_LEN];
    let hello = |cookie: &[u8]| {
        Frame::Hello {
            sender: 1,
            cookie,
            noise: &noise,
        }
        .encode()
    };
    let challenged = |net: &mut Net, from: SocketAddr, cookie: &[u8]| {
        let answers = net.datagram(from, &hello(cookie));
        assert_eq!(answers.len(), 1, "{answers:?}");
        match Frame::decode(&answers[0].1) {
            Ok(Frame::Challenge { cookie, echo, .. }) => {
                assert_eq!(echo, noise[..8], "the CHALLENGE echoes the HELLO");
                cookie.to_vec()
            }
            other => panic!("not challenged: {other:?}"),
        }
    };
    let cookie = challenged(&mut net, carol, &[]);
    assert_eq!(cookie.len(), urc::relay::cookie::COOKIE_LEN);
    for other in ["192.0.2.3:4001", "192.0.2.4:4000", "[2001:db8::3]:4000"] {
        challenged(&mut net, addr(other), &cookie);
    }
    for byte in 0..cookie.len() {
        let mut forged = cookie.clone();
        forged[byte] ^= 0x40;
        challenged(&mut net, carol, &forged);
    }
    challenged(&mut net, carol, &cookie[..cookie.len() - 1]);
    // With the good cookie the relay goes on to the handshake: the random bytes of this HELLO
    // do not authenticate, so nothing comes back, and no transport is made.
    assert!(net.datagram(carol, &hello(&cookie)).is_empty());
    assert_eq!(net.relay.transports(), 0);
    net.now += Duration::from_secs(11);
    let fresh = challenged(&mut net, carol, &cookie);
    assert_ne!(fresh, cookie);
}

/// A real client through the channel: it learns the relay's key, joins, and the relay knows
/// its key; no datagram after the handshake carries the name or the text in the clear.
#[test]
fn a_client_joins_through_the_channel_and_nothing_is_in_the_clear() {
    let mut net = Net::new();
    let dave = addr("192.0.2.4:4000");
    let mut client = net.join(dave, "dave");
    let mut learnt = Vec::new();
    while let Some(e) = client.poll_event() {
        if let Event::RelayKeyLearnt { key } = e {
            learnt.push(key);
        }
    }
    assert_eq!(learnt, [net.relay.public_key()]);
    assert_eq!(net.relay.last_confirmed(dave), Some(client.identity()));
    client.client_mut().send(net.now, "the plan: 你好").unwrap();
    while let Some(d) = client.poll_transmit(net.now) {
        assert!(!d.windows(4).any(|w| w == b"plan"), "the text in the clear");
        for (_, back) in net.datagram(dave, &d) {
            client.handle(net.now, &back);
        }
    }
    assert!(
        net.sent
            .iter()
            .all(|(_, d)| !d.windows(4).any(|w| w == b"dave"))
    );
    assert_eq!(client.unacked(), 0, "the message was acknowledged");
}

/// A crowd's HELLOs in one turn wait for the end of it and are answered a few a turn
/// (each costs four Diffie-Hellman operations), so that the turn's chat never waits behind a
/// thousand handshakes; every one of them is answered in the turns that follow.
#[test]
fn a_crowd_of_handshakes_is_made_a_few_a_turn_after_the_chat() {
    use urc::client::tunnel::Tunnel;
    use urc::relay::secure::HANDSHAKES_PER_TURN;
    let mut net = Net::new();
    let crowd: Vec<(SocketAddr, Tunnel)> = (0..40u16)
        .map(|k| {
            let addr = SocketAddr::from(([192, 0, 2, 100], 5000 + k));
            (addr, Tunnel::new(Keypair::generate(), None))
        })
        .collect();
    // Each gets its cookie, and its HELLO with it is ready.
    let mut hellos = Vec::new();
    for (addr, tunnel) in crowd {
        let mut tunnel = tunnel;
        tunnel.seal(net.now, b"", &mut Vec::new());
        let hello = tunnel.poll_transmit().unwrap();
        let challenge = net.datagram(addr, &hello).remove(0).1;
        tunnel.receive(net.now, &challenge, &mut Vec::new());
        hellos.push((
            addr,
            tunnel.poll_transmit().expect("the HELLO with the cookie"),
        ));
    }
    // All in one turn, with a member's packet among them.
    let dave = addr("192.0.2.4:4000");
    let mut member = net.join(dave, "dave");
    for (addr, hello) in &hellos {
        net.relay.handle(net.now, Millis::now(), *addr, hello);
    }
    member.client_mut().request_who(net.now);
    let who = member.poll_transmit(net.now).unwrap();
    net.relay.handle(net.now, Millis::now(), dave, &who);
    let mut turns = Vec::new();
    for _ in 0..4 {
        net.relay.end_turn(net.now, Millis::now());
        let mut replies = 0;
        let mut to_dave = 0;
        while let Some(t) = net.relay.poll_transmit() {
            if matches!(Frame::decode(&t.bytes), Ok(Frame::Reply { .. })) {
                replies += 1;
            } else if t.to == dave {
                to_dave += 1;
            }
        }
        turns.push((replies, to_dave));
    }
    assert_eq!(turns[0].0, HANDSHAKES_PER_TURN, "{turns:?}");
    assert!(
        turns[0].1 >= 1,
        "dave's answer came in the first turn: {turns:?}"
    );
    let answered: usize = turns.iter().map(|t| t.0).sum();
    assert_eq!(answered, 40, "{turns:?}");
}

/// After a long turn (a fan-out to a large room), more handshakes are made: a quarter of the
/// time it took, and never more than the most a turn makes.
#[test]
fn a_long_turn_makes_room_for_more_handshakes() {
    use urc::client::tunnel::Tunnel;
    use urc::relay::secure::{HANDSHAKE_COST, MAX_HANDSHAKES_PER_TURN};
    let mut net = Net::new();
    let mut hellos = Vec::new();
    for k in 0..200u16 {
        let addr = SocketAddr::from(([192, 0, 2, 100 + (k / 64) as u8], 5000 + k));
        let mut tunnel = Tunnel::new(Keypair::generate(), None);
        tunnel.seal(net.now, b"", &mut Vec::new());
        let hello = tunnel.poll_transmit().unwrap();
        let challenge = net.datagram(addr, &hello).remove(0).1;
        tunnel.receive(net.now, &challenge, &mut Vec::new());
        hellos.push((addr, tunnel.poll_transmit().expect("the HELLO")));
    }
    net.relay.end_turn(net.now, Millis::now());
    for (addr, hello) in &hellos {
        net.relay.handle(net.now, Millis::now(), *addr, hello);
    }
    let replies = |net: &mut Net, after: std::time::Duration| {
        net.now += after;
        net.relay.end_turn(net.now, Millis::now());
        std::iter::from_fn(|| net.relay.poll_transmit())
            .filter(|t| matches!(Frame::decode(&t.bytes), Ok(Frame::Reply { .. })))
            .count()
    };
    // 40 ms since the last turn: 10 ms of handshakes.
    let expected =
        (std::time::Duration::from_millis(10).as_micros() / HANDSHAKE_COST.as_micros()) as usize;
    assert_eq!(
        replies(&mut net, std::time::Duration::from_millis(40)),
        expected
    );
    // A second since: never more than the most.
    assert_eq!(
        replies(&mut net, std::time::Duration::from_secs(1)),
        MAX_HANDSHAKES_PER_TURN
    );
}

/// A client that left the room leaves no transport behind once its goodbye is answered:
/// the memory of ten thousand sessions that came and went is given back.
#[test]
fn the_transports_of_a_client_that_left_are_forgotten() {
    use urc::relay::secure::LEFT_GRACE;
    let mut net = Net::new();
    let erin = addr("192.0.2.5:4000");
    let mut client = net.join(erin, "erin");
    assert_eq!(net.relay.transports(), 1);
    client.client_mut().leave(net.now);
    while let Some(d) = client.poll_transmit(net.now) {
        for (_, back) in net.datagram(erin, &d) {
            client.handle(net.now, &back);
        }
    }
    assert!(client.is_closed(), "the goodbye was answered");
    assert_eq!(
        net.relay.transports(),
        1,
        "kept for the answers to the goodbye"
    );
    net.now += LEFT_GRACE;
    net.relay.end_turn(net.now, Millis::now());
    assert_eq!(net.relay.transports(), 0);
}
