//! Keeps docs/protocol.md and the code in step: every hex dump in the document must decode,
//! re-encode to the same bytes (with its proof written in) and be the packet its caption names,
//! every relay dump's proof must be made of a secret its receiver has, and the document's
//! session must be exactly what the relay answers, proofs included, both its rules alone and a
//! real relay over UDP.
//!
//! A dump is a fenced code block with the info string `hex`; what follows `#` on a line is a
//! comment. The last non-empty line before it is its caption:
//! `**<step>. <sender> → <receiver>: <TYPE>** (<n> bytes)`. A sender named `<someone> (as
//! <client>)` sends from that client's address (a spoofed source).
//!
//! The relay picks tokens and cookies at random (a cookie is also made of its clock): the
//! replay maps the document's to the ones it really picked, the way a client would use them,
//! and so the proofs the relay writes in its datagrams, which are made of tokens and instances.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use urc::proto::message::Millis;
use urc::proto::wire::{ErrorCode, PROOF_LEN, Packet, Proof, Token};
use urc::relay::{Config, Relay, Stats};
use urc::serve::server::Server;

/// The relay's wall clock throughout the document's session.
const DOC_TIME: Millis = Millis(1_795_593_600_123);

/// One datagram of the document.
#[derive(Debug)]
struct Dump {
    /// Its number in the session, from 1.
    step: usize,
    /// Who sends it: `relay` or a client's name.
    from: String,
    /// Who receives it: `relay` or a client's name.
    to: String,
    /// The packet type the caption names, e.g. `WELCOME`.
    kind: String,
    /// The datagram.
    bytes: Vec<u8>,
    /// Line of the caption, for failure messages.
    line: usize,
}

fn document() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md");
    std::fs::read_to_string(path).expect("docs/protocol.md is readable")
}

fn dumps(doc: &str) -> Vec<Dump> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut dumps = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "```hex" {
            i += 1;
            continue;
        }
        let at = (0..i)
            .rev()
            .find(|&j| !lines[j].trim().is_empty())
            .unwrap_or_else(|| panic!("line {}: a hex dump without a caption", i + 1));
        let (step, from, to, kind, size) = caption(lines[at])
            .unwrap_or_else(|| panic!("line {}: not a dump caption: {}", at + 1, lines[at]));
        let mut bytes = Vec::new();
        i += 1;
        while lines.get(i).map(|l| l.trim()) != Some("```") {
            let line = lines
                .get(i)
                .unwrap_or_else(|| panic!("line {}: unterminated hex dump", at + 1));
            let data = line.split('#').next().unwrap_or("");
            for byte in data.split_whitespace() {
                assert_eq!(byte.len(), 2, "line {}: {byte:?} is not one byte", i + 1);
                let b = u8::from_str_radix(byte, 16)
                    .unwrap_or_else(|_| panic!("line {}: {byte:?} is not hex", i + 1));
                bytes.push(b);
            }
            i += 1;
        }
        assert_eq!(
            bytes.len(),
            size,
            "line {}: the caption says {size} bytes",
            at + 1
        );
        dumps.push(Dump {
            step,
            from,
            to,
            kind,
            bytes,
            line: at + 1,
        });
        i += 1;
    }
    dumps
}

/// Parses `**8. alice → relay: SEND** (51 bytes)`.
fn caption(line: &str) -> Option<(usize, String, String, String, usize)> {
    let rest = line.trim().strip_prefix("**")?;
    let (inner, after) = rest.split_once("**")?;
    let (step, inner) = inner.split_once(". ")?;
    let (who, kind) = inner.split_once(": ")?;
    let (from, to) = who.split_once(" → ")?;
    let size = after.trim().strip_prefix('(')?.strip_suffix(" bytes)")?;
    Some((
        step.parse().ok()?,
        from.to_owned(),
        to.to_owned(),
        kind.to_owned(),
        size.parse().ok()?,
    ))
}

fn kind_name(p: &Packet) -> &'static str {
    match p {
        Packet::Join { .. } => "JOIN",
        Packet::Send { .. } => "SEND",
        Packet::History { .. } => "HISTORY",
        Packet::Who { .. } => "WHO",
        Packet::Ping { .. } => "PING",
        Packet::Leave { .. } => "LEAVE",
        Packet::Welcome { .. } => "WELCOME",
        Packet::Error { .. } => "ERROR",
        Packet::Ack { .. } => "ACK",
        Packet::Messages { .. } => "MESSAGES",
        Packet::HistoryPage { .. } => "HISTORY_PAGE",
        Packet::Presence { .. } => "PRESENCE",
        Packet::Names { .. } => "NAMES",
        Packet::Pong { .. } => "PONG",
        Packet::Challenge { .. } => "CHALLENGE",
    }
}

/// The client whose address a sender uses: `mallory (as bob)` sends from bob's.
fn address_of(sender: &str) -> &str {
    sender
        .strip_suffix(')')
        .and_then(|s| s.split_once(" (as "))
        .map_or(sender, |(_, owner)| owner)
}

fn decode(d: &Dump) -> Packet {
    Packet::decode(&d.bytes)
        .unwrap_or_else(|e| panic!("line {}: step {} does not decode: {e}", d.line, d.step))
}

/// The client a party is: `alice (new address)` is alice, `mallory (as bob)` is mallory.
fn client_of(party: &str) -> &str {
    party.split_once(" (").map_or(party, |(client, _)| client)
}

/// The proof of a relay datagram of the document.
fn proof(d: &Dump) -> Proof {
    Proof::read(&d.bytes).unwrap_or_else(|| panic!("line {}: step {} has no proof", d.line, d.step))
}

#[test]
fn every_dump_decodes_to_the_packet_its_caption_names() {
    let dumps = dumps(&document());
    assert!(dumps.len() >= 20, "only {} dumps found", dumps.len());
    for (n, d) in dumps.iter().enumerate() {
        assert_eq!(
            d.step,
            n + 1,
            "line {}: steps are numbered 1, 2, 3…",
            d.line
        );
        let p = decode(d);
        assert_eq!(kind_name(&p), d.kind, "line {}", d.line);
        // The dumps are canonical: what the code encodes, byte for byte, with the proof the
        // relay writes in. (Tokens are fixed example values, so this holds for the relay's
        // WELCOME too.)
        let mut again = p.encode();
        if d.from == "relay" {
            proof(d).write(&mut again);
        }
        assert_eq!(
            again, d.bytes,
            "line {}: does not re-encode the same",
            d.line
        );
        let to_relay = d.to == "relay";
        assert_eq!(
            to_relay,
            d.from != "relay",
            "line {}: one end is the relay",
            d.line
        );
        assert_eq!(
            to_relay,
            d.bytes[2] < 0x80,
            "line {}: wrong direction",
            d.line
        );
    }
}

/// Every relay datagram's proof is made of a secret its receiver has: the instance of a JOIN
/// its client sent, or a token a WELCOME gave it (an ERROR NotJoined too: it echoes the token
/// of the datagram it refuses).
#[test]
fn every_relay_dump_carries_a_proof_of_its_receiver() {
    let dumps = dumps(&document());
    // Per client: the proofs it can check, from what it sent and received so far.
    let mut known: HashMap<&str, Vec<[u8; PROOF_LEN]>> = HashMap::new();
    for d in &dumps {
        let p = decode(d);
        if let Packet::Join { instance, .. } = &p {
            let client = client_of(&d.from);
            known
                .entry(client)
                .or_default()
                .push(Proof::of_instance(instance).0);
        }
        if d.from != "relay" {
            continue;
        }
        let client = client_of(&d.to);
        let proof = proof(d);
        // A NotJoined too: it carries the token of the datagram it refuses.
        assert!(
            known.get(client).is_some_and(|k| k.contains(&proof.0)),
            "line {}: step {}'s proof is of no instance or token {client} has",
            d.line,
            d.step
        );
        if let Packet::Welcome { token, .. } = &p {
            known
                .entry(client)
                .or_default()
                .push(Proof::of_token(token).0);
        }
    }
}

/// A relay the document's session is played against.
trait Room {
    /// Delivers a datagram from the named client.
    fn deliver(&mut self, from: &str, bytes: &[u8]);
    /// The next datagram the relay sent to the named client.
    fn receive(&mut self, to: &str) -> Option<Vec<u8>>;
    /// Panics if the relay sent anything not yet received.
    fn assert_quiet(&mut self);
    /// Whether message times are the document's (else they are the real clock's).
    fn fixed_time(&self) -> bool;
    /// Stops the relay cleanly, as SIGTERM would.
    fn stop(&mut self);
}

/// The packet's token, if it carries one.
fn token_mut(p: &mut Packet) -> Option<&mut Token> {
    match p {
        Packet::Send { token, .. }
        | Packet::History { token, .. }
        | Packet::Who { token, .. }
        | Packet::Ping { token }
        | Packet::Leave { token, .. }
        | Packet::Welcome { token, .. } => Some(token),
        _ => None,
    }
}

/// The packet's cookie, if it carries one.
fn cookie_mut(p: &mut Packet) -> Option<&mut Vec<u8>> {
    match p {
        Packet::Join { cookie, .. } | Packet::Challenge { cookie } => Some(cookie),
        _ => None,
    }
}

/// The document's proofs → the proofs the relay really writes.
struct Proofs(HashMap<[u8; PROOF_LEN], Proof>);

impl Proofs {
    /// Only zero, the proof of NotJoined, is known before the session starts.
    fn new() -> Self {
        Proofs(HashMap::new())
    }

    /// The proof `doc` (of the document's token or instance) stands for `real` (of the token or
    /// instance the relay really has).
    fn learn(&mut self, doc: Proof, real: Proof) {
        let before = self.0.insert(doc.0, real);
        assert!(
            before.is_none_or(|b| b == real),
            "the document's proof {:02x?} stands for two",
            doc.0
        );
    }

    /// Checks that the relay wrote in `bytes` the proof the document wrote in `d`.
    fn check(&self, d: &Dump, bytes: &[u8]) {
        let doc = proof(d);
        let real = Proof::read(bytes).expect("the relay's datagrams carry a proof");
        let want = self.0.get(&doc.0).unwrap_or_else(|| {
            panic!(
                "line {}: step {}'s proof {:02x?} is of no token or instance of the session so far",
                d.line, d.step, doc.0
            )
        });
        assert!(
            real == *want,
            "line {}: step {} carries another proof than the document's {:02x?}",
            d.line,
            d.step,
            doc.0
        );
    }
}

/// Plays the document's session: each client datagram is delivered, then the relay's answers
/// must be exactly the relay datagrams that follow it, in order, except for the tokens and
/// cookies the relay chose, and the proofs made of those tokens (and the clock, when `room` has
/// a real one). A WELCOME with a token the document used before must carry the token the relay
/// chose then: the same session. A CHALLENGE's cookie must be new; a JOIN carries the real
/// cookie of the document's. Each relay datagram must carry the proof of the real token or
/// instance that the document's proof is made of (the document's instances are sent as they
/// are), or zeros where the document has zeros.
fn replay(room: &mut impl Room) {
    let dumps = dumps(&document());
    // The document's token → the token the relay really chose.
    let mut tokens: HashMap<Token, Token> = HashMap::new();
    // The document's cookie → the cookie the relay really sent.
    let mut cookies: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut proofs = Proofs::new();
    let mut stopped = false;
    for d in &dumps {
        let mut expected = decode(d);
        if d.to == "relay" {
            if let Packet::Join { instance, .. } = &expected {
                proofs.learn(Proof::of_instance(instance), Proof::of_instance(instance));
            }
            if let Some(token) = token_mut(&mut expected)
                && let Some(real) = tokens.get(token)
            {
                *token = *real;
            }
            if let Some(cookie) = cookie_mut(&mut expected)
                && let Some(real) = cookies.get(cookie)
            {
                cookie.clone_from(real);
            }
            room.deliver(address_of(&d.from), &expected.encode());
            continue;
        }
        if let Packet::Error {
            code: ErrorCode::Stopping,
            ..
        } = expected
            && !stopped
        {
            // The document's relay is told to stop here.
            stopped = true;
            room.stop();
        }
        let bytes = room
            .receive(&d.to)
            .unwrap_or_else(|| panic!("line {}: step {} never came", d.line, d.step));
        let mut actual = Packet::decode(&bytes).expect("the relay sends valid datagrams");
        match (&mut actual, &expected) {
            (Packet::Welcome { token, .. }, Packet::Welcome { token: doc, .. }) => {
                match tokens.get(doc) {
                    Some(real) => assert!(
                        real.matches(token),
                        "line {}: step {} is not the same session's token",
                        d.line,
                        d.step
                    ),
                    None => {
                        assert!(
                            !tokens.values().any(|t| t.matches(token)),
                            "line {}: step {} reuses another session's token",
                            d.line,
                            d.step
                        );
                        tokens.insert(*doc, *token);
                        proofs.learn(Proof::of_token(doc), Proof::of_token(token));
                    }
                }
                *token = *doc;
            }
            (Packet::Challenge { cookie }, Packet::Challenge { cookie: doc }) => {
                assert_eq!(
                    cookie.len(),
                    doc.len(),
                    "line {}: step {} has a cookie of another length",
                    d.line,
                    d.step
                );
                assert!(
                    !cookies.contains_key(doc) && !cookies.values().any(|c| c == cookie),
                    "line {}: step {} reuses a cookie",
                    d.line,
                    d.step
                );
                if room.fixed_time() {
                    // The relay's cookie clock: seconds since it made its first cookie.
                    assert_eq!(
                        cookie[..4],
                        doc[..4],
                        "line {}: step {} has another time",
                        d.line,
                        d.step
                    );
                }
                cookies.insert(doc.clone(), cookie.clone());
                cookie.clone_from(doc);
            }
            (Packet::Ack { acks }, Packet::Ack { acks: doc }) if !room.fixed_time() => {
                for (a, doc) in acks.iter_mut().zip(doc) {
                    a.time = doc.time;
                }
            }
            (Packet::Messages { messages }, Packet::Messages { messages: doc })
            | (Packet::HistoryPage { messages, .. }, Packet::HistoryPage { messages: doc, .. })
                if !room.fixed_time() =>
            {
                for (m, doc) in messages.iter_mut().zip(doc) {
                    m.time = doc.time;
                }
            }
            _ => {}
        }
        proofs.check(d, &bytes);
        assert_eq!(actual, expected, "line {}: step {}", d.line, d.step);
        let mut again = actual.encode();
        proof(d).write(&mut again);
        assert_eq!(again, d.bytes, "line {}: step {}", d.line, d.step);
    }
    room.assert_quiet();
}

/// The relay's rules alone, with a log that never fails and a clock that only moves when a
/// datagram is awaited that nothing sent yet: then a second passes (one tick of the relay).
struct Rules {
    /// The rules under test.
    relay: Relay,
    /// The relay's monotonic clock.
    now: Instant,
    /// A made-up address per client.
    addrs: HashMap<String, SocketAddr>,
    /// What the relay sent, per address, not yet received.
    inbox: HashMap<SocketAddr, VecDeque<Vec<u8>>>,
}

impl Rules {
    fn addr(&mut self, name: &str) -> SocketAddr {
        let next = 40_000 + self.addrs.len() as u16;
        *self
            .addrs
            .entry(name.to_owned())
            .or_insert_with(|| SocketAddr::from(([127, 0, 0, 1], next)))
    }
}

impl Rules {
    fn collect(&mut self) {
        while let Some(t) = self.relay.poll_transmit() {
            self.inbox
                .entry(t.to)
                .or_default()
                .push_back(t.bytes.to_vec());
        }
    }
}

impl Room for Rules {
    fn deliver(&mut self, from: &str, bytes: &[u8]) {
        self.assert_quiet();
        let addr = self.addr(from);
        self.relay.handle(self.now, DOC_TIME, addr, bytes);
        self.relay.end_turn(self.now, DOC_TIME);
        if self.relay.has_appends() {
            self.relay.commit();
        }
        assert_eq!(
            self.relay.poll_read(),
            None,
            "the session fits the relay's cache"
        );
        self.collect();
    }

    fn receive(&mut self, to: &str) -> Option<Vec<u8>> {
        let addr = self.addr(to);
        if self.inbox.get(&addr).is_none_or(VecDeque::is_empty) {
            self.now += Duration::from_secs(1);
            self.relay.end_turn(self.now, DOC_TIME);
            self.collect();
        }
        self.inbox.get_mut(&addr)?.pop_front()
    }

    fn assert_quiet(&mut self) {
        for (to, queue) in &self.inbox {
            let extra: Vec<_> = queue.iter().map(|b| Packet::decode(b)).collect();
            assert!(queue.is_empty(), "the relay also sent {to}: {extra:?}");
        }
    }

    fn fixed_time(&self) -> bool {
        true
    }

    fn stop(&mut self) {
        self.relay.stopping();
        self.collect();
    }
}

/// What the relay counts after the document's session.
fn assert_counts(stats: &Stats) {
    assert_eq!(stats.stored, 1, "alice's message");
    assert_eq!(stats.duplicates, 1, "its retransmission");
    assert_eq!(
        stats.challenges, 4,
        "alice, bob, carol, alice at her new address"
    );
    assert_eq!(stats.joins_refused, 1, "carol");
    assert_eq!(
        stats.unauthorised, 3,
        "two PINGs without a session, mallory's"
    );
    assert_eq!(stats.over_budget, 0);
    assert_eq!(stats.rate_limited, 0);
    assert_eq!(stats.malformed, 0);
}

#[test]
fn the_session_is_what_the_relay_rules_answer() {
    let mut rules = Rules {
        relay: Relay::new(Config::default(), Vec::new()),
        now: Instant::now(),
        addrs: HashMap::new(),
        inbox: HashMap::new(),
    };
    replay(&mut rules);
    assert_counts(rules.relay.stats());
}

/// A real relay on 127.0.0.1, one socket per client.
struct Udp {
    /// Where the relay listens.
    relay: SocketAddr,
    /// Each client's socket, connected to the relay.
    sockets: HashMap<String, UdpSocket>,
    /// Dropped to stop the relay.
    stop: Option<async_channel::Sender<()>>,
}

impl Udp {
    fn socket(&mut self, name: &str) -> &UdpSocket {
        self.sockets.entry(name.to_owned()).or_insert_with(|| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("a client socket");
            s.connect(self.relay).expect("connect to the relay");
            s
        })
    }
}

impl Room for Udp {
    fn deliver(&mut self, from: &str, bytes: &[u8]) {
        self.socket(from).send(bytes).expect("send to the relay");
    }

    fn receive(&mut self, to: &str) -> Option<Vec<u8>> {
        let s = self.socket(to);
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut buf = [0u8; 2048];
        let n = s.recv(&mut buf).ok()?;
        Some(buf[..n].to_vec())
    }

    fn assert_quiet(&mut self) {
        let mut buf = [0u8; 2048];
        for (name, s) in &self.sockets {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            if let Ok(n) = s.recv(&mut buf) {
                panic!(
                    "the relay also sent {name}: {:?}",
                    Packet::decode(&buf[..n])
                );
            }
        }
    }

    fn fixed_time(&self) -> bool {
        false
    }

    fn stop(&mut self) {
        self.stop.take();
    }
}

#[test]
fn the_session_is_what_a_real_relay_answers_over_udp() {
    let data = tempfile::tempdir().expect("a temporary directory");
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = Server::bind(any_port, data.path().to_owned(), Config::default())
        .expect("the relay starts");
    let relay = server.local_addr().expect("the relay's address");
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let serving = std::thread::spawn(move || {
        smol::block_on(server.run(async move {
            let _ = stopped.recv().await;
        }))
    });
    let mut room = Udp {
        relay,
        sockets: HashMap::new(),
        stop: Some(stop),
    };
    replay(&mut room);
    assert!(room.stop.is_none(), "the document's relay stops");
    let stats = serving
        .join()
        .expect("the relay did not panic")
        .expect("the relay ran");
    assert_counts(&stats);
}
