//! Properties of the datagram format and of the relay's intake, over generated inputs: every
//! packet round-trips; no bytes at all, random or a damaged valid packet, make the decoder or
//! the relay panic; and what the relay stores is only what its clients sent.
//!
//! Case counts are kept small enough for the whole file to run in seconds in a debug build;
//! `PROPTEST_CASES=10000 cargo test --test wire_props` searches further.

#[path = "hostile/driver.rs"]
mod driver;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use driver::Driver;
use proptest::collection::vec;
use proptest::prelude::*;
use urc::proto::message::{MAX_TEXT_BYTES, Message, Millis};
use urc::proto::wire::{
    Acked, Change, DecodeError, ErrorCode, LeaveReason, MAGIC, MAX_CSN, MAX_PACKET, Packet, Sent,
    Token, VERSION,
};
use urc::relay::Config;
use uuid::Uuid;

/// Cases for the cheap properties; the relay's gets fewer, each case being a whole session.
const CASES: u32 = 512;
const RELAY_CASES: u32 = 64;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(cases),
        ..ProptestConfig::default()
    }
}

/// A string of any Unicode of at most `max` bytes: ASCII up to the limit, or any characters
/// (four bytes at most each) up to a quarter of it.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        vec(any::<char>(), 0..=max / 4).prop_map(String::from_iter),
        vec(0x20u8..0x7f, 0..=max).prop_map(|b| String::from_utf8(b).expect("ascii")),
    ]
}

fn token() -> impl Strategy<Value = Token> {
    any::<[u8; 16]>().prop_map(Token)
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn message() -> impl Strategy<Value = Message> {
    (any::<u64>(), any::<i64>(), uuid(), text(255), text(300)).prop_map(
        |(seq, time, id, from, text)| Message {
            seq,
            id,
            from,
            text,
            time: Millis(time),
        },
    )
}

/// A list of up to 255 messages, mostly a few (which fit a datagram), sometimes many.
fn messages() -> impl Strategy<Value = Vec<Message>> {
    prop_oneof![
        4 => vec(message(), 0..4),
        1 => vec(message(), 0..=255),
    ]
}

fn code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::Malformed),
        Just(ErrorCode::NameTaken),
        Just(ErrorCode::BadName),
        Just(ErrorCode::NotJoined),
        Just(ErrorCode::BadText),
        Just(ErrorCode::Storage),
        Just(ErrorCode::Full),
        Just(ErrorCode::RateLimited),
    ]
}

fn reason() -> impl Strategy<Value = LeaveReason> {
    prop_oneof![Just(LeaveReason::Quit), Just(LeaveReason::TimedOut)]
}

/// A csn or base the format carries (1 to 2^63 − 1), often at its extremes.
fn csn() -> impl Strategy<Value = u64> {
    prop_oneof![Just(1), Just(MAX_CSN), Just(MAX_CSN - 1), 1..=MAX_CSN,]
}

/// One message of a SEND, its text at most `max` bytes.
fn sent(max: usize) -> impl Strategy<Value = Sent> {
    (csn(), uuid(), text(max)).prop_map(|(csn, id, text)| Sent {
        room: 0,
        csn,
        id,
        text,
    })
}

/// One change of a PRESENCE, its name at most `max` bytes.
fn change(max: usize) -> impl Strategy<Value = Change> {
    (
        any::<bool>(),
        reason(),
        text(max),
        proptest::option::of(text(max)),
    )
        .prop_map(|(joined, reason, name, message)| Change {
            joined,
            reason,
            name,
            // Only a quit carries what was said.
            message: message.filter(|_| !joined && reason == LeaveReason::Quit),
        })
}

/// Any packet, its fields anything the format can carry.
fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        (text(255), any::<u16>(), uuid()).prop_map(|(name, history, instance)| Packet::Join {
            room: "lobby".into(),
            name,
            history,
            instance,
        }),
        (
            token(),
            csn(),
            prop_oneof![
                vec(sent(1100), 1..=1),
                vec(sent(30), 1..30),
                vec(sent(0), 1..=255)
            ]
        )
            .prop_map(|(token, base, messages)| Packet::Send {
                token,
                base,
                messages,
            }),
        (token(), any::<u32>(), any::<u64>(), any::<u16>()).prop_map(
            |(token, req, from, count)| Packet::History {
                room: 0,
                token,
                req,
                from,
                count,
            }
        ),
        (token(), any::<u32>()).prop_map(|(token, req)| Packet::Who {
            room: 0,
            token,
            req
        }),
        token().prop_map(|token| Packet::Ping { token }),
        (token(), text(255)).prop_map(|(token, message)| Packet::Leave { token, message }),
        (token(), text(255), any::<u64>(), any::<u32>()).prop_map(
            |(token, name, latest, timeout_ms)| Packet::Welcome {
                token,
                name,
                latest,
                timeout_ms,
            }
        ),
        (code(), uuid(), text(1100)).prop_map(|(code, id, message)| Packet::Error {
            code,
            id,
            message,
        }),
        vec(
            (uuid(), any::<u64>(), any::<u64>(), any::<i64>()).prop_map(|(id, csn, seq, time)| {
                Acked {
                    room: 0,
                    id,
                    csn,
                    seq,
                    time: Millis(time),
                }
            }),
            1..=29
        )
        .prop_map(|acks| Packet::Ack { acks }),
        messages().prop_map(|messages| Packet::Messages { room: 0, messages }),
        (any::<u32>(), any::<u64>(), any::<u64>(), messages()).prop_map(
            |(req, first, last, messages)| Packet::HistoryPage {
                room: 0,
                req,
                first,
                last,
                messages,
            }
        ),
        prop_oneof![vec(change(255), 1..=4), vec(change(8), 1..=100)]
            .prop_map(|changes| Packet::Presence { room: 0, changes }),
        (
            any::<u32>(),
            any::<u16>(),
            prop_oneof![vec(text(40), 0..5), vec(text(4), 0..=255)]
        )
            .prop_map(|(req, total, names)| Packet::Names {
                room: 0,
                req,
                total,
                names
            }),
        (any::<u16>(), any::<u64>(), any::<u32>()).prop_map(|(room, latest, members)| {
            Packet::Pong {
                rooms: vec![urc::proto::wire::Latest {
                    room,
                    latest,
                    members,
                }],
            }
        }),
    ]
}

/// Damage done to a datagram on its way.
#[derive(Debug, Clone)]
enum Damage {
    /// These bits flipped (indices modulo the length).
    Flip(Vec<usize>),
    /// Cut to this length (modulo the length).
    Truncate(usize),
    /// These bytes added at the end.
    Extend(Vec<u8>),
    /// This byte overwritten (index modulo the length).
    Set(usize, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        vec(any::<usize>(), 1..8).prop_map(Damage::Flip),
        any::<usize>().prop_map(Damage::Truncate),
        vec(any::<u8>(), 1..64).prop_map(Damage::Extend),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Set(i, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
    let len = bytes.len();
    match damage {
        Damage::Flip(bits) => {
            for bit in bits {
                let bit = bit % (len * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
            }
        }
        Damage::Truncate(n) => bytes.truncate(n % len),
        Damage::Extend(more) => bytes.extend_from_slice(more),
        Damage::Set(i, b) => bytes[i % len] = *b,
    }
}

/// Decodes `bytes`, which must not panic; what decodes must encode to the same bytes (one
/// encoding per packet: nothing is ignored, nothing has two spellings).
fn decodes_canonically(bytes: &[u8]) -> Result<(), TestCaseError> {
    match Packet::decode(bytes) {
        Ok(p) => prop_assert_eq!(p.encode(), bytes, "{:?}", p),
        Err(DecodeError::TooLong) => prop_assert!(bytes.len() > MAX_PACKET),
        Err(_) => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(CASES))]

    /// Every packet decodes to itself, or, when its fields make it longer than a datagram may
    /// be, is refused as too long.
    #[test]
    fn every_packet_round_trips(p in packet()) {
        let bytes = p.encode();
        if bytes.len() <= MAX_PACKET {
            prop_assert_eq!(Packet::decode(&bytes), Ok(p));
        } else {
            prop_assert_eq!(Packet::decode(&bytes), Err(DecodeError::TooLong));
        }
    }

    /// Any bytes at all.
    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..1500)) {
        decodes_canonically(&bytes)?;
    }

    /// A good header (magic, version, any type) and then anything.
    #[test]
    fn a_good_header_with_a_random_body_never_panics(
        kind in any::<u8>(),
        body in vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = vec![MAGIC, VERSION, kind];
        bytes.extend(body);
        decodes_canonically(&bytes)?;
    }

    /// A valid datagram damaged: bits flipped, cut short, lengthened, a byte changed.
    #[test]
    fn damaged_packets_never_panic(p in packet(), damage in vec(damage(), 1..4)) {
        let mut bytes = p.encode();
        for d in &damage {
            if bytes.is_empty() {
                break;
            }
            apply(&mut bytes, d);
        }
        decodes_canonically(&bytes)?;
    }

    /// Long text is split after the last space that fits, inside a word only when the word
    /// itself is longer than a piece, never inside a character; the pieces read back as the
    /// text.
    #[test]
    fn long_text_splits_at_spaces_and_reads_back(
        words in vec(
            (
                prop_oneof![16 => "[a-z]{1,12}", 4 => "[你好世界]{1,6}", 1 => "x{990,1010}"],
                "[ \u{3000}]",
            ),
            1..200,
        ),
    ) {
        let text: String = words.iter().map(|(w, s)| format!("{w}{s}")).collect();
        let pieces = urc::proto::message::split_text(&text, MAX_TEXT_BYTES);
        prop_assert_eq!(pieces.concat(), text.as_str());
        for (i, piece) in pieces.iter().enumerate() {
            prop_assert!(!piece.is_empty() && piece.len() <= MAX_TEXT_BYTES);
            let last = i + 1 == pieces.len();
            if !last && !piece.ends_with(char::is_whitespace) {
                // Cut inside a word: only when no space fitted, that is the piece is one word.
                prop_assert!(!piece.trim_start().contains(char::is_whitespace), "{:?}", piece);
                let next = pieces[i + 1];
                let full = piece.len() + next.chars().next().map_or(0, char::len_utf8);
                prop_assert!(full > MAX_TEXT_BYTES);
            }
        }
    }
}

/// Something that reaches the relay.
#[derive(Debug, Clone)]
enum Arrival {
    /// Bytes from an address: a member's (by index) or any other.
    Junk { from: From, bytes: Vec<u8> },
    /// A member's real SEND, damaged, from an address that is not the member's.
    Damaged {
        member: usize,
        damage: Damage,
        from: SocketAddr,
    },
    /// A member's next message.
    Say { member: usize, text: String },
    /// Time passes.
    Wait(Duration),
}

#[derive(Debug, Clone)]
enum From {
    Member(usize),
    Other(SocketAddr),
}

fn address() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
        // The members' IP with other ports.
        (1u8..=2, any::<u16>()).prop_map(|(k, port)| SocketAddr::from(([192, 0, 2, k], port))),
    ]
}

fn arrival() -> impl Strategy<Value = Arrival> {
    let junk = prop_oneof![
        vec(any::<u8>(), 0..1500),
        (any::<u8>(), vec(any::<u8>(), 0..100)).prop_map(|(kind, body)| {
            let mut bytes = vec![MAGIC, VERSION, kind];
            bytes.extend(body);
            bytes
        }),
        (packet(), damage()).prop_map(|(p, d)| {
            let mut bytes = p.encode();
            apply(&mut bytes, &d);
            bytes
        }),
        packet().prop_map(|p| p.encode()),
    ];
    let from = prop_oneof![
        1 => (0usize..2).prop_map(From::Member),
        3 => address().prop_map(From::Other),
    ];
    // Text a client would send: 1 to 50 characters, no control characters.
    let said = vec(
        prop_oneof![Just('a'), Just('字'), Just('\t'), Just('😀')],
        1..50,
    )
    .prop_map(String::from_iter);
    prop_oneof![
        6 => (from, junk).prop_map(|(from, bytes)| Arrival::Junk { from, bytes }),
        1 => (0usize..2, damage(), address())
            .prop_map(|(member, damage, from)| Arrival::Damaged { member, damage, from }),
        2 => (0usize..2, said).prop_map(|(member, text)| Arrival::Say { member, text }),
        1 => (0u64..3000).prop_map(|ms| Arrival::Wait(Duration::from_millis(ms))),
    ]
}

proptest! {
    #![proptest_config(config(RELAY_CASES))]

    /// Two members chat while anything at all arrives from anywhere, their addresses included
    /// (as if opened by the secure channel, which proved each address: the budget of an
    /// address not proved is the channel's, tested in tests/handshake.rs): the relay never
    /// panics, stores exactly what the members said in the order they said it, and keeps
    /// both members' sessions.
    #[test]
    fn the_relay_stores_only_what_members_said(arrivals in vec(arrival(), 1..150)) {
        let mut d = Driver::new(Config::default());
        let members = [
            SocketAddr::from(([192, 0, 2, 1], 4000)),
            SocketAddr::from(([192, 0, 2, 2], 4000)),
        ];
        let names = ["alice", "bob"];
        let tokens = [d.member(members[0], names[0]), d.member(members[1], names[1])];
        let mut csn = [0u64; 2];
        let mut said: Vec<(usize, Uuid, String)> = Vec::new();
        let mut last_send: [Option<Vec<u8>>; 2] = [None, None];
        for arrival in arrivals {
            match arrival {
                Arrival::Junk { from, bytes } => {
                    let from = match from {
                        // A JOIN from a member's own channel is the member renaming itself,
                        // not an attack (a forged source never gets through the channel).
                        From::Member(_) if matches!(Packet::decode(&bytes), Ok(Packet::Join { .. })) => continue,
                        From::Member(k) => members[k],
                        From::Other(a) => a,
                    };
                    d.raw(from, &bytes);
                }
                Arrival::Damaged { member, damage, from } => {
                    let Some(mut bytes) = last_send[member].clone() else { continue };
                    if members.contains(&from) {
                        continue;
                    }
                    apply(&mut bytes, &damage);
                    d.raw(from, &bytes);
                }
                Arrival::Say { member, text } => {
                    csn[member] += 1;
                    let id = Uuid::new_v4();
                    let send = Packet::send_one(tokens[member], csn[member], csn[member], id, &text);
                    last_send[member] = Some(send.encode());
                    d.packet(members[member], &send);
                    said.push((member, id, text));
                }
                Arrival::Wait(t) => {
                    // Time passes, but the members keep in touch.
                    d.advance(t);
                    for k in 0..2 {
                        d.packet(members[k], &Packet::Ping { token: tokens[k] });
                    }
                }
            }
            prop_assert!(members.iter().all(|m| d.relay.clients().contains_key(m)));
        }
        let stored: Vec<(&str, Uuid, &str)> =
            d.log.iter().map(|m| (m.from.as_str(), m.id, m.text.as_str())).collect();
        let want: Vec<(&str, Uuid, &str)> =
            said.iter().map(|(k, id, text)| (names[*k], *id, text.as_str())).collect();
        prop_assert_eq!(stored, want);
    }
}

/// A number a member or a relay may put in a u64 field: at its extremes, near them, or any.
fn extreme() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(MAX_CSN),
        Just(MAX_CSN + 1),
        Just(u64::MAX - 1),
        Just(u64::MAX),
        0u64..2000,
        any::<u64>(),
    ]
}

/// What a member with a real session sends, its numbers anything the format carries.
#[derive(Debug, Clone)]
enum Ask {
    Send { csn: u64, base: u64, text: String },
    History { from: u64, count: u16 },
    Who,
    Wait(Duration),
}

fn ask() -> impl Strategy<Value = Ask> {
    prop_oneof![
        4 => (csn(), csn(), text(20)).prop_map(|(csn, base, text)| Ask::Send { csn, base, text }),
        2 => (extreme(), any::<u16>()).prop_map(|(from, count)| Ask::History { from, count }),
        1 => Just(Ask::Who),
        1 => (0u64..3000).prop_map(|ms| Ask::Wait(Duration::from_millis(ms))),
    ]
}

/// Something a relay sends a client, its numbers at their extremes.
fn extreme_packet() -> impl Strategy<Value = Packet> {
    let acked = (uuid(), extreme(), extreme(), any::<i64>()).prop_map(|(id, csn, seq, t)| Acked {
        room: 0,
        id,
        csn,
        seq,
        time: Millis(t),
    });
    let message = || {
        (extreme(), any::<i64>(), uuid(), text(8), text(8)).prop_map(
            |(seq, time, id, from, text)| Message {
                seq,
                id,
                from,
                text,
                time: Millis(time),
            },
        )
    };
    prop_oneof![
        vec(acked, 1..4).prop_map(|acks| Packet::Ack { acks }),
        vec(message(), 0..4).prop_map(|messages| Packet::Messages { room: 0, messages }),
        (any::<u32>(), extreme(), extreme(), vec(message(), 0..4)).prop_map(
            |(req, first, last, messages)| Packet::HistoryPage {
                room: 0,
                req: req % 4,
                first,
                last,
                messages,
            }
        ),
        extreme().prop_map(|latest| Packet::Pong {
            rooms: vec![urc::proto::wire::Latest {
                room: u16::MAX,
                latest,
                members: u32::MAX,
            }],
        }),
        (any::<u32>(), any::<u16>(), vec(text(8), 0..4)).prop_map(|(req, total, names)| {
            Packet::Names {
                room: 0,
                req: req % 4,
                total,
                names,
            }
        }),
        (code(), text(20)).prop_map(|(code, message)| Packet::Error {
            code,
            id: Uuid::nil(),
            message,
        }),
    ]
}

proptest! {
    #![proptest_config(config(RELAY_CASES))]

    /// A member with a real session sends csns, bases and history ranges at their extremes:
    /// the relay never panics (debug builds check every addition), keeps the session, and
    /// stores only texts the member sent.
    #[test]
    fn members_numbers_at_their_extremes_are_handled(asks in vec(ask(), 1..60)) {
        let mut d = Driver::with_log(Config::default(), 50);
        let alice = SocketAddr::from(([192, 0, 2, 1], 4000));
        let token = d.member(alice, "alice");
        let mut texts = std::collections::HashSet::new();
        for a in asks {
            match a {
                Ask::Send { csn, base, text } => {
                    texts.insert(text.clone());
                    d.packet(alice, &Packet::send_one(token, base, csn, Uuid::new_v4(), &text));
                }
                Ask::History { from, count } => {
                    d.packet(alice, &Packet::History { room: 0,  token, req: 1, from, count });
                }
                Ask::Who => {
                    d.packet(alice, &Packet::Who { room: 0,  token, req: 2 });
                }
                Ask::Wait(t) => {
                    d.advance(t);
                    d.packet(alice, &Packet::Ping { token });
                }
            }
            prop_assert_eq!(d.relay.clients().len(), 1);
        }
        for m in &d.log[50..] {
            prop_assert!(texts.contains(&m.text));
        }
    }

    /// A relay (one that is broken, or taken over) sends a client numbers at
    /// their extremes: seqs, csns and ranges of 2^64, latest seqs at the top. The client never
    /// panics, and never asks to be woken again and again at the same moment (a loop).
    #[test]
    fn the_client_takes_any_numbers_from_its_relay(
        latest in extreme(),
        timeout_ms in prop_oneof![Just(0u32), Just(1), any::<u32>()],
        packets in vec(extreme_packet(), 1..30),
    ) {
        use std::time::Instant;
        use urc::client::{Client, Config as ClientConfig};
        let mut now = Instant::now();
        let config = ClientConfig { rooms: Vec::new(),  name: "alice".into(), history: 20, since: None, seen: Default::default(), relays: Vec::new() };
        let mut client = Client::new(config, now);
        let Some(Ok(Packet::Join { .. })) = client.poll_transmit().map(|b| Packet::decode(&b)) else {
            panic!("the client did not join first");
        };
        let token = Token([7; 16]);
        let welcome = Packet::Welcome { token, name: "alice".into(), latest, timeout_ms };
        client.handle(now, &welcome.encode());
        client.request_who(now);
        client.request_history(now, 1000);
        let _ = client.send(now, "hello");
        for p in packets {
            client.handle(now, &p.encode());
            // Wake it as it asks, a while: each wake is later than the one before.
            for _ in 0..20 {
                let Some(at) = client.poll_timeout() else { break };
                prop_assert!(at >= now, "asked to be woken in the past");
                now = at.max(now + Duration::from_micros(1));
                client.handle_timeout(now);
                while client.poll_transmit().is_some() {}
                while client.poll_event().is_some() {}
            }
        }
    }
}

/// A client joined to a relay that is this test.
fn joined_client() -> (urc::client::Client, std::time::Instant) {
    use urc::client::{Client, Config as ClientConfig};
    let now = std::time::Instant::now();
    let config = ClientConfig {
        rooms: Vec::new(),
        name: "alice".into(),
        history: 0,
        since: None,
        seen: Default::default(),
        relays: Vec::new(),
    };
    let mut client = Client::new(config, now);
    let Some(Ok(Packet::Join { .. })) = client.poll_transmit().map(|b| Packet::decode(&b)) else {
        panic!("the client did not join first");
    };
    let token = Token([7; 16]);
    let welcome = Packet::Welcome {
        token,
        name: "alice".into(),
        latest: 0,
        timeout_ms: 30_000,
    };
    client.handle(now, &welcome.encode());
    while client.poll_event().is_some() {}
    (client, now)
}

/// The pages of a WHO answer, made as the room changes (someone after the first page left
/// before the second was made), arriving in any order and some twice: the client shows every
/// name once, as soon as it has them all, not after its 8 s wait.
#[test]
fn who_pages_in_any_order_or_twice_make_one_answer() {
    use urc::client::Event;
    let first: Vec<String> = (0..100).map(|k| format!("a{k:03}")).collect();
    let second: Vec<String> = (0..99).map(|k| format!("b{k:03}")).collect();
    // Made when the room had 200 names, then 199.
    let page = |names: &[String], total: u16| Packet::Names {
        room: 0,
        req: 1,
        total,
        names: names.to_vec(),
    };
    let orders: [&[usize]; 4] = [&[0, 1], &[1, 0], &[1, 1, 0], &[0, 0, 1]];
    for order in orders {
        let (mut client, now) = joined_client();
        client.request_who(now);
        while client.poll_transmit().is_some() {}
        let pages = [page(&first, 200), page(&second, 199)];
        let mut shown = None;
        for &k in order {
            client.handle(now, &pages[k].encode());
            while let Some(e) = client.poll_event() {
                if let Event::Who { room: _, names } = e {
                    shown = Some(names);
                }
            }
        }
        let names = shown.unwrap_or_else(|| panic!("{order:?}: not shown at once"));
        assert_eq!(names.len(), 199, "{order:?}");
        assert_eq!(names[0], "a000");
        assert_eq!(names[198], "b098");
    }
}
