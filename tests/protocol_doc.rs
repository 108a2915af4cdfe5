//! Keeps docs/protocol.md and the code in step: every hex dump in the document must decode,
//! re-encode to the same bytes and be the frame or packet its caption names; the handshake's
//! frames must be exactly what the fixed test keys make, and its DATA must open to the JOIN
//! shown; every ERROR NotJoined must name a token its receiver was given; and the document's
//! session must be exactly what the relay answers, both its rules alone and a real relay over
//! UDP, through the secure channel.
//!
//! A dump is a fenced code block with the info string `hex`; what follows `#` on a line is a
//! comment. The last non-empty line before it is its caption:
//! `**<step>. <sender> → <receiver>: <TYPE>** (<n> bytes)`. A sender named `<someone> (as
//! <client>)` sends from that client's address (a spoofed source). A dump whose type is
//! 0x10 to 0x1f is a frame, any other a packet; a packet right after a DATA frame of the same
//! step and sender is what that DATA seals.
//!
//! The relay picks tokens (and keys, cookies and indices) at random: the replay maps the
//! document's tokens to the ones it really picked, the way a client would use them (in the
//! packets it sends, and as a NotJoined names them). Over UDP the clients make handshakes of
//! their own, with keys of their own.

mod common;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use urc::client::tunnel::Received;
use urc::proto::message::Millis;
use urc::proto::secure::frame::{self, Frame};
use urc::proto::secure::keys::Keypair;
use urc::proto::secure::noise::{Initiation, accept_with};
use urc::proto::secure::transport::Transport;
use urc::proto::wire::{ErrorCode, Packet, Token};
use urc::relay::{Config, Relay, Stats};
use urc::serve::server::Server;
use zeroize::Zeroizing;

use common::Sealed;

/// The relay's wall clock throughout the document's session.
const DOC_TIME: Millis = Millis(1_795_593_600_123);

/// One datagram (or packet) of the document.
#[derive(Debug)]
struct Dump {
    /// Its number in the session, from 1.
    step: usize,
    /// Who sends it: `relay` or a client's name.
    from: String,
    /// Who receives it: `relay` or a client's name.
    to: String,
    /// The frame or packet type the caption names, e.g. `WELCOME`.
    kind: String,
    /// The bytes.
    bytes: Vec<u8>,
    /// Line of the caption, for failure messages.
    line: usize,
}

impl Dump {
    /// True for a frame of the secure channel (types 0x10 to 0x1f), false for a packet.
    fn is_frame(&self) -> bool {
        self.bytes.get(2).is_some_and(|t| (0x10..0x20).contains(t))
    }

    fn frame(&self) -> Frame<'_> {
        Frame::decode(&self.bytes).unwrap_or_else(|e| {
            panic!(
                "line {}: step {} does not decode as a frame: {e}",
                self.line, self.step
            )
        })
    }
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
        Packet::Enter { .. } => "ENTER",
        Packet::Part { .. } => "PART",
        Packet::Entered { .. } => "ENTERED",
        Packet::Parted { .. } => "PARTED",
        Packet::NotEntered { .. } => "NOT_ENTERED",
    }
}

fn frame_name(f: &Frame) -> &'static str {
    match f {
        Frame::Hello { .. } => "HELLO",
        Frame::Challenge { .. } => "CHALLENGE",
        Frame::Reply { .. } => "REPLY",
        Frame::Data { .. } => "DATA",
        Frame::Unknown { .. } => "UNKNOWN",
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

/// True when `packet` is what the DATA frame `data` seals: it follows it, with its step and
/// sender.
fn seals(data: &Dump, packet: &Dump) -> bool {
    data.is_frame()
        && data.kind == "DATA"
        && !packet.is_frame()
        && data.step == packet.step
        && data.from == packet.from
}

/// True when the packet `dumps[i]` never reaches the relay's rules: its DATA is answered with
/// the UNKNOWN that follows it (it came from an address its transport is not for).
fn refused_by_the_channel(dumps: &[Dump], i: usize) -> bool {
    let d = &dumps[i];
    dumps.get(i + 1).is_some_and(|next| {
        !d.is_frame() && next.kind == "UNKNOWN" && next.is_frame() && next.to == d.from
    })
}

#[test]
fn every_dump_decodes_to_what_its_caption_names() {
    let dumps = dumps(&document());
    assert!(dumps.len() >= 20, "only {} dumps found", dumps.len());
    for (n, d) in dumps.iter().enumerate() {
        let before = n.checked_sub(1).map(|i| &dumps[i]);
        let step = match before {
            None => 1,
            Some(b) if seals(b, d) => b.step,
            Some(b) => b.step + 1,
        };
        assert_eq!(
            d.step, step,
            "line {}: steps are numbered 1, 2, 3… (a DATA's packet keeps its number)",
            d.line
        );
        let to_relay = d.to == "relay";
        assert_eq!(
            to_relay,
            d.from != "relay",
            "line {}: one end is the relay",
            d.line
        );
        if d.is_frame() {
            let f = d.frame();
            assert_eq!(frame_name(&f), d.kind, "line {}", d.line);
            assert_eq!(
                f.encode(),
                d.bytes,
                "line {}: does not re-encode the same",
                d.line
            );
            let client_sends = match f {
                Frame::Hello { .. } => Some(true),
                Frame::Challenge { .. } | Frame::Reply { .. } | Frame::Unknown { .. } => {
                    Some(false)
                }
                Frame::Data { .. } => None,
            };
            assert!(
                client_sends.is_none_or(|c| c == to_relay),
                "line {}: wrong direction",
                d.line
            );
            continue;
        }
        let p = decode(d);
        assert_eq!(kind_name(&p), d.kind, "line {}", d.line);
        // The dumps are canonical: what the code encodes, byte for byte. (Tokens are fixed
        // example values, so this holds for the relay's WELCOME too.)
        assert_eq!(
            p.encode(),
            d.bytes,
            "line {}: does not re-encode the same",
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

/// `N` bytes counting up from `first`: the document's fixed example keys and values.
fn counting<const N: usize>(first: u8) -> [u8; N] {
    std::array::from_fn(|i| first.wrapping_add(i as u8))
}

/// The fixed keys and values the document's handshake is made of (a real client and relay pick
/// each one at random).
struct Fixed {
    relay: Keypair,
    alice: Keypair,
    relay_ephemeral: [u8; 32],
    alice_ephemeral: [u8; 32],
    /// What alice's first HELLO carries instead of a Noise message.
    first_contact: [u8; frame::HELLO_NOISE_LEN],
    /// alice's index in her first HELLO, and in her handshake.
    first_index: u32,
    alice_index: u32,
    /// The relay's index for alice's transport.
    relay_index: u32,
    cookie: Vec<u8>,
}

fn fixed() -> Fixed {
    let mut cookie = vec![0; 4]; // the time: 0 s
    cookie.extend_from_slice(&counting::<16>(0x20)); // the MAC
    Fixed {
        relay: Keypair::from_private(Zeroizing::new(counting(0x80))),
        alice: Keypair::from_private(Zeroizing::new(counting(0xc0))),
        relay_ephemeral: counting(0xa0),
        alice_ephemeral: counting(0xe0),
        first_contact: counting(0x60),
        first_index: 0xa11c_e001,
        alice_index: 0xa11c_e002,
        relay_index: 0x5e1a_7001,
        cookie,
    }
}

/// The document's first handshake made again: its four frames, and both ends' transports.
struct Handshake {
    frames: Vec<Vec<u8>>,
    alice: Transport,
    relay: Transport,
}

fn handshake(k: &Fixed) -> Handshake {
    let now = Instant::now();
    let hello = Frame::Hello {
        sender: k.first_index,
        cookie: &[],
        noise: &k.first_contact,
    };
    let challenge = Frame::Challenge {
        echo: k.first_contact[..frame::ECHO_LEN].try_into().unwrap(),
        cookie: &k.cookie,
        relay: k.relay.public(),
    };
    let init = Initiation::with_ephemeral(&k.alice, &k.relay.public(), Some(&k.alice_ephemeral));
    let again = Frame::Hello {
        sender: k.alice_index,
        cookie: &k.cookie,
        noise: init.message(),
    };
    let accepted = accept_with(&k.relay, init.message(), Some(&k.relay_ephemeral))
        .expect("the relay takes alice's first message");
    assert_eq!(
        accepted.peer,
        k.alice.public(),
        "the relay learns alice's key"
    );
    let reply = Frame::Reply {
        sender: k.relay_index,
        receiver: k.alice_index,
        noise: &accepted.reply,
    };
    let frames = [hello, challenge, again, reply]
        .iter()
        .map(Frame::encode)
        .collect();
    let keys = init
        .finish(&accepted.reply)
        .expect("alice takes the relay's answer");
    Handshake {
        frames,
        alice: Transport::new(keys, k.relay_index, now),
        relay: Transport::new(accepted.keys, k.alice_index, now),
    }
}

/// Steps 1 to 4 are what the fixed keys make, byte for byte; step 5's DATA is alice's JOIN
/// sealed under counter 0, and opens to it; step 7's is the relay's HISTORY_PAGE under its
/// counter 1, byte for byte (a vector of the nonce's byte order).
#[test]
fn the_handshake_is_what_the_fixed_keys_make() {
    let doc = document();
    let dumps = dumps(&doc);
    let k = fixed();
    for key in [k.relay.public(), k.alice.public()] {
        assert!(doc.contains(&key.to_string()), "the document names {key}");
    }
    let mut made = handshake(&k);
    let kinds: Vec<&str> = dumps[..6].iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["HELLO", "CHALLENGE", "HELLO", "REPLY", "DATA", "JOIN"]
    );
    for (d, frame) in dumps.iter().zip(&made.frames) {
        assert_eq!(
            &d.bytes, frame,
            "line {}: step {} made again",
            d.line, d.step
        );
    }
    let (data, join) = (&dumps[4], &dumps[5]);
    assert!(seals(data, join));
    let mut sealed = Vec::new();
    assert!(made.alice.seal_into(&join.bytes, &mut sealed));
    assert_eq!(sealed, data.bytes, "line {}: the JOIN sealed", data.line);
    let Frame::Data {
        receiver,
        counter,
        sealed,
    } = data.frame()
    else {
        unreachable!("a DATA");
    };
    assert_eq!((receiver, counter), (k.relay_index, 0));
    let mut opened = Vec::new();
    made.relay
        .open_into(counter, sealed, &mut opened)
        .expect("the relay opens it");
    assert_eq!(
        opened, join.bytes,
        "line {}: opens to step 5's JOIN",
        data.line
    );
    // And the relay's first packet goes back the same way.
    let welcome = &dumps[6];
    let mut back = Vec::new();
    assert!(made.relay.seal_into(&welcome.bytes, &mut back));
    assert_eq!(&back[3..7], &k.alice_index.to_be_bytes());
    let Ok(Frame::Data {
        counter, sealed, ..
    }) = Frame::decode(&back)
    else {
        unreachable!("a DATA");
    };
    let mut opened = Vec::new();
    made.alice.open_into(counter, sealed, &mut opened).unwrap();
    assert_eq!(opened, welcome.bytes);
    // Its second under counter 1, as step 7's DATA shows it: the counter goes into the
    // nonce big-endian, after 4 zero bytes (counter 0 would not tell).
    let at = (dumps.iter())
        .position(|d| d.step == 7 && d.kind == "DATA")
        .expect("step 7's DATA");
    let (data, page) = (&dumps[at], &dumps[at + 1]);
    assert!(
        seals(data, page),
        "line {}: step 7's DATA, then its packet",
        data.line
    );
    let mut second = Vec::new();
    assert!(made.relay.seal_into(&page.bytes, &mut second));
    assert_eq!(
        second, data.bytes,
        "line {}: the HISTORY_PAGE sealed under counter 1, made again: {second:02x?}",
        data.line
    );
    let Frame::Data { counter, .. } = data.frame() else {
        unreachable!("a DATA");
    };
    assert_eq!(counter, 1);
}

/// Every UNKNOWN echoes the DATA it answers: a frame shown before it, or the DATA of the
/// packet before it, sealed on its sender's transport under the next counter (the document's
/// transports are those of its REPLYs). The relay answers UNKNOWN only to what the channel
/// refuses: none of the relay's rules see that packet.
#[test]
fn every_unknown_echoes_the_data_it_answers() {
    let dumps = dumps(&document());
    // Per client: the relay's index of its transport, and how many DATA it sealed on it.
    let mut transports: HashMap<&str, (u32, u64)> = HashMap::new();
    let mut unknowns = 0;
    for (i, d) in dumps.iter().enumerate() {
        if d.is_frame() {
            match d.frame() {
                Frame::Reply { sender, .. } => {
                    transports.insert(client_of(&d.to), (sender, 0));
                }
                Frame::Unknown { receiver, counter } => {
                    unknowns += 1;
                    let answered = &dumps[i - 1];
                    assert_eq!(
                        address_of(&answered.from),
                        address_of(&d.to),
                        "line {}",
                        d.line
                    );
                    let echoed = if answered.is_frame() {
                        let Frame::Data {
                            receiver, counter, ..
                        } = answered.frame()
                        else {
                            panic!("line {}: an UNKNOWN answers a DATA", d.line);
                        };
                        (receiver, counter)
                    } else {
                        let (index, sealed) = transports[client_of(&answered.from)];
                        (index, sealed - 1)
                    };
                    assert_eq!((receiver, counter), echoed, "line {}", d.line);
                    assert!(refused_by_the_channel(&dumps, i - 1) || answered.is_frame());
                }
                _ => {}
            }
            continue;
        }
        if d.to == "relay"
            && let Some((_, sealed)) = transports.get_mut(client_of(&d.from))
        {
            *sealed += 1;
        }
    }
    assert_eq!(unknowns, 2, "mallory's and alice's at her new address");
}

/// Every ERROR NotJoined names a token its receiver was given: the one in the packet it
/// refuses, which a WELCOME gave that client before.
#[test]
fn every_not_joined_names_a_token_of_its_receiver() {
    let dumps = dumps(&document());
    // Per client: the tokens WELCOMEs gave it so far.
    let mut given: HashMap<&str, Vec<Token>> = HashMap::new();
    let mut refusals = 0;
    for d in dumps.iter().filter(|d| !d.is_frame() && d.from == "relay") {
        let client = client_of(&d.to);
        match decode(d) {
            Packet::Welcome { token, .. } => given.entry(client).or_default().push(token),
            Packet::Error {
                code: ErrorCode::NotJoined,
                id,
                ..
            } => {
                refusals += 1;
                assert!(
                    given
                        .get(client)
                        .is_some_and(|t| t.contains(&Token(*id.as_bytes()))),
                    "line {}: step {} names no token {client} was given",
                    d.line,
                    d.step
                );
            }
            _ => {}
        }
    }
    assert_eq!(
        refusals, 2,
        "the PINGs from alice's new address and after she left"
    );
}

/// A relay the document's session is played against.
trait Room {
    /// Delivers a packet from the named party (sealed, when the room has the secure channel).
    fn deliver(&mut self, from: &str, packet: &[u8]);
    /// The next packet the relay sent to the named party.
    fn receive(&mut self, to: &str) -> Option<Vec<u8>>;
    /// True when the relay's secure channel is in the room: frames go and come as they are.
    /// (Else the room is the relay's rules alone, which see only the packets that opened.)
    fn sealed(&self) -> bool;
    /// Sends a frame, as it is, from the named party's address.
    fn deliver_frame(&mut self, from: &str, frame: &[u8]);
    /// The next frame the relay sent to the named party, as it is, and what its client made
    /// of it.
    fn receive_frame(&mut self, to: &str) -> Option<(Vec<u8>, Received)>;
    /// The relay's index of the named party's transport, as its last DATA carried it.
    fn relay_index(&self, party: &str) -> Option<u32>;
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
        | Packet::Enter { token, .. }
        | Packet::Part { token, .. }
        | Packet::Welcome { token, .. } => Some(token),
        _ => None,
    }
}

/// Plays the document's session: each client packet is delivered, then the relay's answers
/// must be exactly the relay packets that follow it, in order, except for the tokens the relay
/// chose (and the clock, when `room` has a real one). A WELCOME with a token the document used
/// before must carry the token the relay chose then: the same session; a NotJoined must name
/// the real token of the document's.
///
/// The handshake's frames are the channel's own: a room with the channel makes handshakes of
/// its own, and seals each packet itself (so a DATA followed by its packet is that packet,
/// delivered). A room with the channel also sends the other frames shown (mallory's DATA) as
/// they are, and must receive the UNKNOWNs shown: one that echoes its client's transport (with
/// the relay's real index) makes the client drop its keys, another is dropped. A room without
/// it skips every frame, and the packets the channel refused.
fn replay(room: &mut impl Room) {
    let dumps = dumps(&document());
    // The document's token → the token the relay really chose.
    let mut tokens: HashMap<Token, Token> = HashMap::new();
    // Per client: the document's relay index of its transport (from its REPLY).
    let mut indices: HashMap<&str, u32> = HashMap::new();
    let mut stopped = false;
    for (i, d) in dumps.iter().enumerate() {
        if d.is_frame() {
            let f = d.frame();
            if let Frame::Reply { sender, .. } = f {
                indices.insert(client_of(&d.to), sender);
            }
            if !room.sealed() {
                continue;
            }
            match f {
                Frame::Hello { .. } | Frame::Challenge { .. } | Frame::Reply { .. } => {}
                Frame::Data { .. } if dumps.get(i + 1).is_some_and(|p| seals(d, p)) => {}
                Frame::Data { .. } => room.deliver_frame(&d.from, &d.bytes),
                Frame::Unknown { receiver, counter } => {
                    let (bytes, got) = room
                        .receive_frame(&d.to)
                        .unwrap_or_else(|| panic!("line {}: step {} never came", d.line, d.step));
                    let Ok(Frame::Unknown {
                        receiver: real,
                        counter: real_counter,
                    }) = Frame::decode(&bytes)
                    else {
                        panic!(
                            "line {}: step {} is another frame: {bytes:02x?}",
                            d.line, d.step
                        );
                    };
                    assert_eq!(real_counter, counter, "line {}: step {}", d.line, d.step);
                    if indices.get(client_of(&d.to)) == Some(&receiver) {
                        assert_eq!(Some(real), room.relay_index(&d.to), "line {}", d.line);
                        assert_eq!(
                            got,
                            Received::Lost,
                            "line {}: the client drops its keys",
                            d.line
                        );
                    } else {
                        assert_eq!(real, receiver, "line {}: step {}", d.line, d.step);
                        assert!(
                            matches!(got, Received::Dropped(_)),
                            "line {}: the client takes it: {got:?}",
                            d.line
                        );
                    }
                }
            }
            continue;
        }
        let mut expected = decode(d);
        if d.to == "relay" {
            if !room.sealed() && refused_by_the_channel(&dumps, i) {
                continue;
            }
            if let Some(token) = token_mut(&mut expected)
                && let Some(real) = tokens.get(token)
            {
                *token = *real;
            }
            room.deliver(&d.from, &expected.encode());
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
        let mut actual = Packet::decode(&bytes).expect("the relay sends valid packets");
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
                    }
                }
                *token = *doc;
            }
            (Packet::Ack { acks }, Packet::Ack { acks: doc }) if !room.fixed_time() => {
                for (a, doc) in acks.iter_mut().zip(doc) {
                    a.time = doc.time;
                }
            }
            (
                Packet::Messages { room: _, messages },
                Packet::Messages {
                    room: _,
                    messages: doc,
                },
            )
            | (Packet::HistoryPage { messages, .. }, Packet::HistoryPage { messages: doc, .. })
                if !room.fixed_time() =>
            {
                for (m, doc) in messages.iter_mut().zip(doc) {
                    m.time = doc.time;
                }
            }
            (
                Packet::Error {
                    code: ErrorCode::NotJoined,
                    id,
                    ..
                },
                Packet::Error {
                    code: ErrorCode::NotJoined,
                    id: doc,
                    ..
                },
            ) => {
                let real = tokens.get(&Token(*doc.as_bytes()));
                assert!(
                    real.is_some_and(|t| t.0 == *id.as_bytes()),
                    "line {}: step {} names another token than the document's",
                    d.line,
                    d.step
                );
                *id = *doc;
            }
            _ => {}
        }
        assert_eq!(actual, expected, "line {}: step {}", d.line, d.step);
        assert_eq!(actual.encode(), d.bytes, "line {}: step {}", d.line, d.step);
    }
    room.assert_quiet();
}

/// The relay's rules alone (behind the channel: every packet reaches them from a proved
/// address), with a log that never fails and a clock that only moves when a packet is awaited
/// that nothing sent yet: then a second passes (one tick of the relay).
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
    fn addr(&mut self, party: &str) -> SocketAddr {
        let next = 40_000 + self.addrs.len() as u16;
        *self
            .addrs
            .entry(address_of(party).to_owned())
            .or_insert_with(|| SocketAddr::from(([127, 0, 0, 1], next)))
    }

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
    fn deliver(&mut self, from: &str, packet: &[u8]) {
        self.assert_quiet();
        let addr = self.addr(from);
        self.relay.handle(self.now, DOC_TIME, addr, packet);
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

    fn sealed(&self) -> bool {
        false
    }

    fn deliver_frame(&mut self, _: &str, _: &[u8]) {
        unreachable!("the rules see no frames")
    }

    fn receive_frame(&mut self, _: &str) -> Option<(Vec<u8>, Received)> {
        unreachable!("the rules send no frames")
    }

    fn relay_index(&self, _: &str) -> Option<u32> {
        None
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

/// What the relay counts after the document's session; `sealed` when it ran behind its
/// secure channel.
fn assert_counts(stats: &Stats, sealed: bool) {
    assert_eq!(
        stats.stored, 3,
        "alice's messages in lobby, in ops and to bob"
    );
    assert_eq!(stats.duplicates, 1, "its retransmission");
    assert_eq!(stats.joins_refused, 1, "carol");
    assert_eq!(
        stats.unauthorised, 2,
        "alice's two PINGs without a session (mallory's DATA never reached the rules)"
    );
    assert_eq!(stats.over_budget, 0);
    assert_eq!(stats.rate_limited, 0);
    assert_eq!(stats.malformed, 0);
    let handshakes = if sealed { 4 } else { 0 };
    assert_eq!(
        (stats.challenges, stats.handshakes),
        (handshakes, handshakes),
        "alice, bob, carol, alice at her new address: a CHALLENGE and a handshake each"
    );
    assert_eq!((stats.unsealed, stats.unsealable), (0, 0));
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
    assert_counts(rules.relay.stats(), false);
}

/// A real relay on 127.0.0.1, each client with a socket and its end of the secure channel.
struct Udp {
    /// Where the relay listens.
    relay: SocketAddr,
    /// Per client: the address its socket stands for (`alice`, `alice (new address)`), and its
    /// channel to the relay.
    clients: HashMap<String, (String, Sealed)>,
    /// Per client: the relay's index of its transport, as its last DATA carried it.
    indices: HashMap<String, u32>,
    /// Dropped to stop the relay.
    stop: Option<async_channel::Sender<()>>,
}

impl Udp {
    /// The channel of `party`'s client, from the party's address: a new client makes its
    /// handshake; one seen at another address before moves there, to a new socket (its
    /// transport goes with it, until the relay answers UNKNOWN).
    fn client(&mut self, party: &str) -> &mut Sealed {
        let at = address_of(party).to_owned();
        match self.clients.entry(client_of(party).to_owned()) {
            Entry::Vacant(e) => &mut e.insert((at, Sealed::connect(self.relay))).1,
            Entry::Occupied(e) => {
                let (was, sealed) = e.into_mut();
                if *was != at {
                    let socket = UdpSocket::bind("127.0.0.1:0").expect("a client socket");
                    socket.connect(self.relay).expect("connect to the relay");
                    sealed.socket = socket;
                    *was = at;
                }
                sealed
            }
        }
    }

    /// The next datagram to `party`, and what its client made of it; handshake frames left
    /// over from a handshake (a HELLO sent twice on a slow machine) are skipped.
    fn next(&mut self, party: &str, wait: Duration) -> Option<(Vec<u8>, Vec<u8>, Received)> {
        let sealed = self.client(party);
        sealed.socket.set_read_timeout(Some(wait)).ok()?;
        let mut buf = [0u8; 2048];
        loop {
            let n = sealed.socket.recv(&mut buf).ok()?;
            let mut packet = Vec::new();
            let got = sealed
                .tunnel
                .receive(Instant::now(), &buf[..n], &mut packet);
            if matches!(
                Frame::decode(&buf[..n]),
                Ok(Frame::Challenge { .. } | Frame::Reply { .. })
            ) && matches!(got, Received::Dropped(_))
            {
                continue;
            }
            return Some((buf[..n].to_vec(), packet, got));
        }
    }
}

impl Room for Udp {
    fn deliver(&mut self, from: &str, packet: &[u8]) {
        let sealed = self.client(from);
        if !sealed.tunnel.is_up(Instant::now()) {
            sealed.handshake();
        }
        let mut datagram = Vec::new();
        assert!(
            sealed.tunnel.seal(Instant::now(), packet, &mut datagram),
            "{from} has a transport"
        );
        sealed.socket.send(&datagram).expect("send to the relay");
        let index = u32::from_be_bytes(datagram[3..7].try_into().unwrap());
        self.indices.insert(client_of(from).to_owned(), index);
    }

    fn receive(&mut self, to: &str) -> Option<Vec<u8>> {
        let (bytes, packet, got) = self.next(to, Duration::from_secs(5))?;
        assert!(
            matches!(got, Received::Packet { .. }),
            "{to} got {bytes:02x?}"
        );
        Some(packet)
    }

    fn sealed(&self) -> bool {
        true
    }

    fn deliver_frame(&mut self, from: &str, frame: &[u8]) {
        let at = address_of(from);
        let (_, sealed) = self
            .clients
            .values()
            .find(|(was, _)| was == at)
            .unwrap_or_else(|| panic!("{from}: nobody at {at} yet"));
        sealed.socket.send(frame).expect("send to the relay");
    }

    fn receive_frame(&mut self, to: &str) -> Option<(Vec<u8>, Received)> {
        let (bytes, _, got) = self.next(to, Duration::from_secs(5))?;
        Some((bytes, got))
    }

    fn relay_index(&self, party: &str) -> Option<u32> {
        self.indices.get(client_of(party)).copied()
    }

    fn assert_quiet(&mut self) {
        let parties: Vec<String> = self.clients.values().map(|(at, _)| at.clone()).collect();
        for party in parties {
            if let Some((bytes, packet, got)) = self.next(&party, Duration::from_millis(200)) {
                panic!(
                    "the relay also sent {party}: {got:?} {:?} ({bytes:02x?})",
                    Packet::decode(&packet)
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
        clients: HashMap::new(),
        indices: HashMap::new(),
        stop: Some(stop),
    };
    replay(&mut room);
    assert!(room.stop.is_none(), "the document's relay stops");
    let stats = serving
        .join()
        .expect("the relay did not panic")
        .expect("the relay ran");
    assert_counts(&stats, true);
}
