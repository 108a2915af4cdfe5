//! The format's unit tests: every packet round trips, header errors, pages and varints.

use super::codec::{Reader, Writer, varint_len};
use super::*;
use crate::proto::message::MAX_TEXT_BYTES;

fn msg(seq: u64, text: &str) -> Message {
    Message {
        seq,
        id: Uuid::new_v4(),
        from: "小明".into(),
        text: text.into(),
        time: Millis(1_795_593_600_123),
    }
}

#[test]
fn every_packet_round_trips() {
    let token = Token::random();
    let packets = vec![
        Packet::Join {
            room: "lobby".into(),
            name: "alice".into(),
            history: 20,
            instance: Uuid::new_v4(),
        },
        Packet::Send {
            token,
            base: 5,
            messages: vec![
                Sent {
                    room: 0,
                    csn: 7,
                    id: Uuid::new_v4(),
                    text: "你好".into(),
                },
                Sent {
                    room: 0,
                    csn: 8,
                    id: Uuid::new_v4(),
                    text: String::new(),
                },
            ],
        },
        Packet::History {
            room: 0,
            token,
            req: 3,
            from: 0,
            count: 20,
        },
        Packet::Who {
            room: 0,
            token,
            req: 9,
        },
        Packet::Ping { token },
        Packet::Leave {
            token,
            message: String::new(),
        },
        Packet::Leave {
            token,
            message: "gone home".into(),
        },
        Packet::Welcome {
            token,
            name: "alice".into(),
            latest: 42,
            timeout_ms: 30_000,
        },
        Packet::Error {
            code: ErrorCode::NameTaken,
            id: Uuid::nil(),
            message: "the name alice is taken".into(),
        },
        Packet::Ack {
            acks: vec![Acked {
                room: 0,
                id: Uuid::new_v4(),
                csn: 1,
                seq: 43,
                time: Millis(5),
            }],
        },
        Packet::Messages {
            room: 0,
            messages: vec![msg(1, "a"), msg(2, "你好")],
        },
        Packet::HistoryPage {
            room: 0,
            req: 0,
            first: 1,
            last: 2,
            messages: vec![msg(1, "a")],
        },
        Packet::Presence {
            room: 0,
            changes: vec![
                Change {
                    joined: false,
                    reason: LeaveReason::TimedOut,
                    name: "bob".into(),
                    message: None,
                },
                Change {
                    joined: false,
                    reason: LeaveReason::Quit,
                    name: "carol".into(),
                    message: Some("gone home".into()),
                },
                Change {
                    joined: true,
                    reason: LeaveReason::Quit,
                    name: "小明".into(),
                    message: None,
                },
            ],
        },
        Packet::Names {
            room: 0,
            req: 1,
            total: 2,
            names: vec!["alice".into(), "bob".into()],
        },
        Packet::Pong {
            rooms: vec![
                Latest {
                    room: 0,
                    latest: 9,
                    members: 3,
                },
                Latest {
                    room: 7,
                    latest: 0,
                    members: 1,
                },
            ],
        },
        Packet::Pong { rooms: vec![] },
        Packet::Enter {
            token,
            room: "ops".into(),
            history: 50,
        },
        Packet::Part {
            token,
            room: 3,
            message: "lunch".into(),
        },
        Packet::Entered {
            room: 3,
            name: "ops".into(),
            latest: 12,
        },
        Packet::Parted { room: 3 },
        Packet::NotEntered {
            name: "-x".into(),
            code: ErrorCode::BadRoom,
            message: "the room's name begins with '-'".into(),
        },
    ];
    for p in packets {
        let bytes = p.encode();
        assert!(bytes.len() <= MAX_PACKET);
        assert_eq!(Packet::decode(&bytes), Ok(p.clone()), "{p:?}");
        // Every strict prefix is truncated, never a panic or a different packet.
        for cut in 0..bytes.len() {
            assert!(Packet::decode(&bytes[..cut]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Packet::decode(&longer), Err(DecodeError::Trailing));
    }
}

#[test]
fn header_errors() {
    assert_eq!(Packet::decode(&[]), Err(DecodeError::Truncated));
    assert_eq!(Packet::decode(b"hello"), Err(DecodeError::BadMagic));
    // A packet of version 1 (a proof after a relay packet's header, a cookie in JOIN) is
    // not read as one of this version.
    assert_eq!(
        Packet::decode(&[MAGIC, 1, kind::PING]),
        Err(DecodeError::Version(1))
    );
    assert_eq!(
        Packet::decode(&[MAGIC, VERSION, 0x7f]),
        Err(DecodeError::Kind(0x7f))
    );
    // CHALLENGE 0x89 of version 1 is gone: the secure channel's CHALLENGE frame took its place.
    assert_eq!(
        Packet::decode(&[MAGIC, VERSION, 0x89, 0]),
        Err(DecodeError::Kind(0x89))
    );
    assert_eq!(
        Packet::decode(&vec![MAGIC; MAX_DATAGRAM + 1]),
        Err(DecodeError::TooLong)
    );
    let mut bad_utf8 = vec![MAGIC, VERSION, kind::JOIN, 2, 0xff, 0xfe, 0, 20];
    bad_utf8.extend_from_slice(&[7; 16]);
    bad_utf8.extend_from_slice(&[5, b'l', b'o', b'b', b'b', b'y']);
    assert_eq!(Packet::decode(&bad_utf8), Err(DecodeError::Utf8));
    bad_utf8[4] = b'a';
    bad_utf8[5] = b'b';
    assert!(Packet::decode(&bad_utf8).is_ok());
}

#[test]
fn a_departure_carries_its_message_and_an_arrival_cannot() {
    let said = Change {
        joined: false,
        reason: LeaveReason::Quit,
        name: "bob".into(),
        message: Some("gone home".into()),
    };
    let bytes = Packet::Presence {
        room: 0,
        changes: vec![said.clone()],
    }
    .encode();
    // After the room and the count, reason 2, then the name and the message, each a str8.
    let at = 3 + 2 + 1;
    assert_eq!(&bytes[at..at + 3], &[0, 2, 3]);
    assert_eq!(bytes.len(), at + change_len(&said));
    // A reason 2 with joined 1 is invalid.
    let mut joined = bytes.clone();
    joined[at] = 1;
    assert_eq!(Packet::decode(&joined), Err(DecodeError::Field("reason")));
    // An arrival never carries one (a message given is not written).
    let arrival = Change {
        joined: true,
        ..said
    };
    let bytes = Packet::Presence {
        room: 0,
        changes: vec![arrival],
    }
    .encode();
    assert_eq!(&bytes[at..at + 2], &[1, 0]);
}

#[test]
fn the_largest_message_fits_one_page() {
    let big = Message {
        seq: u64::MAX,
        id: Uuid::new_v4(),
        from: "𝄞".repeat(32),
        text: "界".repeat(MAX_TEXT_BYTES / 3),
        time: Millis(i64::MAX),
    };
    assert_eq!(big.from.len(), MAX_NAME_BYTES);
    assert_eq!(big.text.len(), MAX_TEXT_BYTES);
    let page = Packet::HistoryPage {
        room: 0,
        req: u32::MAX,
        first: 1,
        last: u64::MAX,
        messages: vec![big],
    };
    assert!(page.encode().len() <= MAX_PACKET);
}

#[test]
fn pages_hold_whole_messages_within_the_limit() {
    let messages: Vec<Message> = (1..=300)
        .map(|i| msg(i, &"话".repeat(i as usize % 300)))
        .collect();
    let pages = paginate(&messages, HISTORY_HEADER);
    let flat: Vec<Message> = pages.iter().flat_map(|p| p.iter().cloned()).collect();
    assert_eq!(flat, messages);
    for page in pages {
        let p = Packet::HistoryPage {
            room: 0,
            req: 1,
            first: 1,
            last: 300,
            messages: page.to_vec(),
        };
        assert!(p.encode().len() <= MAX_PACKET);
    }
    let short: Vec<Message> = (1..=600).map(|i| msg(i, "")).collect();
    assert!(
        paginate(&short, MESSAGES_HEADER)
            .iter()
            .all(|p| p.len() <= 255)
    );
}

#[test]
fn varints_are_shortest_and_strict() {
    for v in [0, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
        let mut w = Writer(Vec::new());
        w.varint(v);
        assert_eq!(w.0.len(), varint_len(v), "{v}");
        assert_eq!(Reader(&w.0).varint(), Ok(v));
    }
    // A needless final zero, an eleventh byte, a tenth byte past 64 bits.
    for bad in [
        &[0x80, 0x00][..],
        &[0xff; 11],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
    ] {
        assert_eq!(
            Reader(bad).varint(),
            Err(DecodeError::Field("varint")),
            "{bad:?}"
        );
    }
    assert_eq!(Reader(&[0x80]).varint(), Err(DecodeError::Truncated));
}

#[test]
fn records_in_any_order_round_trip_and_those_in_order_are_short() {
    let mut messages = vec![msg(5, "a"), msg(3, "b"), msg(u64::MAX, "c"), msg(1, "d")];
    messages[1].time = Millis(i64::MIN);
    messages[2].time = Millis(i64::MAX);
    let p = Packet::Messages { room: 0, messages };
    assert_eq!(Packet::decode(&p.encode()), Ok(p));

    // The fan-out of a busy room: consecutive seqs, the same millisecond or the next.
    let room: Vec<Message> = (1_000_000..1_000_100)
        .map(|seq| Message {
            seq,
            id: Uuid::new_v4(),
            from: "c0".into(),
            text: "hello world message 000123".into(),
            time: Millis(1_795_593_600_123 + seq as i64 / 3),
        })
        .collect();
    assert_eq!(message_len(&room[1], Some(&room[0])), 49);
    let pages = paginate(&room, MESSAGES_HEADER);
    assert_eq!(pages[0].len(), 23, "23 such messages to a packet");
    for page in pages {
        let p = Packet::Messages {
            room: 0,
            messages: page.to_vec(),
        };
        let bytes = p.encode();
        assert!(bytes.len() <= MAX_PACKET);
        assert_eq!(
            bytes.len(),
            MESSAGES_HEADER
                + (page.iter().enumerate())
                    .map(|(k, m)| message_len(m, k.checked_sub(1).map(|j| &page[j])))
                    .sum::<usize>()
        );
        assert_eq!(Packet::decode(&bytes), Ok(p));
    }
}
