//! Rooms at the relay, datagram by datagram (the shell is `hostile/driver.rs`): entering gives a
//! number of the session's own and the room's history, presence and fan-out go to a room's
//! members only, parting is told with its message, and the limits (rooms per session, rooms
//! per relay, room names) refuse clearly.

#[path = "hostile/driver.rs"]
mod driver;

use std::net::SocketAddr;

use driver::Driver;
use urc::proto::wire::{ErrorCode, MAX_ROOMS, Packet, Sent, Token};
use urc::relay::Config;
use uuid::Uuid;

fn addr(k: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, k], 4000))
}

/// `token` enters `room` from `from`; the packets the relay answered with.
fn enter(d: &mut Driver, from: SocketAddr, token: Token, room: &str, history: u16) -> Vec<Packet> {
    let before = d.sent_to(from).len();
    let enter = Packet::Enter {
        token,
        room: room.into(),
        history,
    };
    d.packet(from, &enter);
    d.sent_to(from)[before..]
        .iter()
        .map(|p| (*p).clone())
        .collect()
}

/// The number the relay gave `room` in an answer to ENTER.
fn number(answers: &[Packet]) -> u16 {
    (answers.iter())
        .find_map(|p| match p {
            Packet::Entered { room, .. } => Some(*room),
            _ => None,
        })
        .unwrap_or_else(|| panic!("not entered: {answers:?}"))
}

fn say(d: &mut Driver, from: SocketAddr, token: Token, room: u16, csn: u64, text: &str) {
    let send = Packet::Send {
        token,
        base: csn,
        messages: vec![Sent {
            csn,
            room,
            id: Uuid::new_v4(),
            text: text.into(),
        }],
    };
    d.packet(from, &send);
}

#[test]
fn a_room_is_entered_with_a_number_of_the_sessions_own_and_its_history() {
    let mut d = Driver::new(Config::default());
    let (a, b) = (addr(1), addr(2));
    let alice = d.member(a, "alice");
    let bob = d.member(b, "bob");
    let answers = enter(&mut d, a, alice, "Ops", 10);
    assert!(
        matches!(&answers[0], Packet::Entered { room: 1, name, latest: 0 } if name == "ops"),
        "{answers:?}"
    );
    for k in 1..=3 {
        say(&mut d, a, alice, 1, k, &format!("ops {k}"));
    }
    // bob enters after a room of his own: his number for ops is his, and the history is ops's.
    let hr = number(&enter(&mut d, b, bob, "hr", 0));
    assert_eq!(hr, 1);
    let answers = enter(&mut d, b, bob, "ops", 2);
    assert!(
        matches!(
            &answers[0],
            Packet::Entered {
                room: 2,
                latest: 3,
                ..
            }
        ),
        "{answers:?}"
    );
    let history: Vec<(u16, u64)> = (answers.iter())
        .filter_map(|p| match p {
            Packet::HistoryPage { room, messages, .. } => {
                Some(messages.iter().map(|m| (*room, m.seq)).collect::<Vec<_>>())
            }
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(history, [(2, 2), (2, 3)]);
    // Entering again (its ENTERED lost) is answered the same, with the same number.
    assert_eq!(number(&enter(&mut d, b, bob, "OPS", 0)), 2);
    // alice's next message reaches bob under his number; alice's own message is not fanned
    // out to her, and her ACK names her number.
    let before = d.sent_to(b).len();
    say(&mut d, a, alice, 1, 4, "hello bob");
    let to_bob: Vec<&Packet> = d.sent_to(b)[before..].to_vec();
    assert!(
        to_bob.iter().any(
            |p| matches!(p, Packet::Messages { room: 2, messages } if messages[0].text == "hello bob")
        ),
        "{to_bob:?}"
    );
    assert!(
        d.sent_to(a)
            .iter()
            .any(|p| matches!(p, Packet::Ack { acks } if acks[0].room == 1 && acks[0].seq == 4))
    );
    assert_eq!(d.relay.latest_in("ops"), Some(4));
    assert_eq!(d.relay.latest(), 0, "the lobby is untouched");
}

#[test]
fn presence_and_messages_go_to_a_rooms_members_only() {
    let mut d = Driver::new(Config::default());
    let (a, b, c) = (addr(1), addr(2), addr(3));
    let alice = d.member(a, "alice");
    let bob = d.member(b, "bob");
    let carol = d.member(c, "carol");
    let hr_a = number(&enter(&mut d, a, alice, "hr", 0));
    let before_bob = d.sent_to(b).len();
    let hr_c = number(&enter(&mut d, c, carol, "hr", 0));
    d.advance(std::time::Duration::from_millis(10));
    d.packet(c, &Packet::Ping { token: carol });
    say(&mut d, c, carol, hr_c, 1, "salaries");
    // alice hears of carol in hr, and what she says there.
    assert!(d.sent_to(a).iter().any(|p| matches!(p, Packet::Presence { room, changes } if *room == hr_a && changes[0].name == "carol" && changes[0].joined)));
    assert!(d.sent_to(a).iter().any(|p| matches!(p, Packet::Messages { room, messages } if *room == hr_a && messages[0].text == "salaries")));
    // bob, in the lobby with them but not in hr, hears nothing of it.
    for p in &d.sent_to(b)[before_bob..] {
        match p {
            Packet::Presence { changes, .. } => {
                panic!("bob was told of {changes:?}")
            }
            Packet::Messages { messages, .. } => panic!("bob was sent {messages:?}"),
            _ => {}
        }
    }
    // A WHO of hr by bob, who is not in it, is answered PARTED, not with its names.
    let before = d.sent_to(b).len();
    d.packet(
        b,
        &Packet::Who {
            token: bob,
            req: 9,
            room: 7,
        },
    );
    let answers: Vec<&Packet> = d.sent_to(b)[before..].to_vec();
    assert!(
        matches!(answers[..], [Packet::Parted { room: 7 }]),
        "{answers:?}"
    );
    // Parting: carol's others in hr are told, with what she said; she gets PARTED, and again
    // for a PART of a room she is not in.
    let before_a = d.sent_to(a).len();
    let part = Packet::Part {
        token: carol,
        room: hr_c,
        message: "lunch".into(),
    };
    d.packet(c, &part);
    assert!(
        d.sent_to(c)
            .iter()
            .any(|p| matches!(p, Packet::Parted { room } if *room == hr_c))
    );
    d.advance(std::time::Duration::from_millis(10));
    d.packet(a, &Packet::Ping { token: alice });
    let told: Vec<&Packet> = d.sent_to(a)[before_a..].to_vec();
    assert!(
        told.iter().any(|p| matches!(p, Packet::Presence { changes, .. } if !changes[0].joined && changes[0].message.as_deref() == Some("lunch"))),
        "{told:?}"
    );
    assert_eq!(d.relay.members_in("hr"), 1);
    let before = d.sent_to(c).len();
    d.packet(c, &part);
    assert!(matches!(d.sent_to(c)[before..], [Packet::Parted { .. }]));
    // A message to the room she left is refused, naming it.
    let before = d.sent_to(c).len();
    say(&mut d, c, carol, hr_c, 2, "too late");
    assert!(
        d.sent_to(c)[before..].iter().any(|p| matches!(p, Packet::Error { code: ErrorCode::BadRoom, message, .. } if message.contains("enter it first"))),
        "{:?}",
        &d.sent_to(c)[before..]
    );
    assert_eq!(d.relay.latest_in("hr"), Some(1));
}

#[test]
fn the_limits_refuse_clearly() {
    let config = Config {
        max_rooms: 70,
        ..Config::default()
    };
    let mut d = Driver::new(config);
    let a = addr(1);
    let alice = d.member(a, "alice");
    // The lobby and 63 more: 64 rooms, the most a session may be in.
    for k in 1..MAX_ROOMS {
        number(&enter(&mut d, a, alice, &format!("r{k}"), 0));
        d.advance(std::time::Duration::from_secs(1));
    }
    let refused = enter(&mut d, a, alice, "one-more", 0);
    assert!(
        matches!(&refused[..], [Packet::NotEntered { name, code: ErrorCode::TooManyRooms, message }]
            if name == "one-more" && message == "you are in 64 rooms, the most a session may be in: /part one first"),
        "{refused:?}"
    );
    // The relay's own limit: 70 rooms in all, whoever enters them.
    let b = addr(2);
    let bob = d.member(b, "bob");
    for k in 0..6 {
        number(&enter(&mut d, b, bob, &format!("b{k}"), 0));
        d.advance(std::time::Duration::from_secs(1));
    }
    assert_eq!(d.relay.room_count(), 70);
    let refused = enter(&mut d, b, bob, "b6", 0);
    assert!(
        matches!(&refused[..], [Packet::NotEntered { code: ErrorCode::TooManyRooms, message, .. }]
            if message.contains("the relay has 70 rooms, the most it may have (its --max-rooms)")),
        "{refused:?}"
    );
    // One that is there may still be entered.
    number(&enter(&mut d, b, bob, "r1", 0));
    d.advance(std::time::Duration::from_secs(1));
    // A name that breaks the rules is refused with the rule.
    let refused = enter(&mut d, b, bob, "-ops", 0);
    assert!(
        matches!(&refused[..], [Packet::NotEntered { code: ErrorCode::BadRoom, message, .. }]
            if message == "the room's name begins with '-': a room's name is 1 to 32 ASCII letters, digits, - or _, the first a letter or a digit"),
        "{refused:?}"
    );
    // And a JOIN naming one is refused whole.
    let join = Packet::Join {
        name: "carol".into(),
        history: 0,
        instance: Uuid::new_v4(),
        room: "caf\u{e9}".into(),
    };
    d.packet(addr(3), &join);
    assert!(
        d.sent_to(addr(3)).iter().any(|p| matches!(p, Packet::Error { code: ErrorCode::BadRoom, message, .. } if message.contains("U+00E9"))),
        "{:?}",
        d.sent_to(addr(3))
    );
    assert!(d.relay.clients().get(&addr(3)).is_none());
}

/// A client from before rooms (its JOIN ends after the instance, with no room) is told why it
/// gets no welcome, rather than left to say the relay does not answer.
#[test]
fn a_client_from_before_rooms_is_told_to_update() {
    let mut d = Driver::new(Config::default());
    let join = Packet::Join {
        name: "old".into(),
        history: 0,
        instance: Uuid::new_v4(),
        room: String::new(),
    };
    // The same JOIN without its last field, the room's (an empty str8: one byte).
    let mut old = join.encode();
    old.pop();
    d.raw(addr(9), &old);
    let told = d.sent_to(addr(9));
    assert!(
        matches!(told[..], [Packet::Error { code: ErrorCode::Malformed, message, .. }]
            if message == "this relay speaks urc protocol 2 with rooms, which your client does not: update urc"),
        "{told:?}"
    );
    assert!(d.relay.clients().get(&addr(9)).is_none());
}

/// What `to` was sent from `since` on about private conversations: each ENTERED's number,
/// name and latest.
fn entered_since(d: &Driver, to: SocketAddr, since: usize) -> Vec<(u16, String, u64)> {
    (d.sent_to(to)[since..].iter())
        .filter_map(|p| match p {
            Packet::Entered { room, name, latest } => Some((*room, name.clone(), *latest)),
            _ => None,
        })
        .collect()
}

/// The texts `to` was sent from `since` on in MESSAGES of its room `number`.
fn texts_since(d: &Driver, to: SocketAddr, since: usize, number: u16) -> Vec<String> {
    (d.sent_to(to)[since..].iter())
        .filter_map(|p| match p {
            Packet::Messages { room, messages } if *room == number => {
                Some(messages.iter().map(|m| m.text.clone()).collect::<Vec<_>>())
            }
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn a_private_conversation_reaches_the_two_and_nobody_else() {
    let mut d = Driver::new(Config::default());
    let (a, b, c) = (addr(1), addr(2), addr(3));
    let alice = d.member(a, "alice");
    let bob = d.member(b, "Bob");
    let carol = d.member(c, "carol");
    let (bob_before, carol_before) = (d.sent_to(b).len(), d.sent_to(c).len());
    // alice opens it by bob's name in any case; she sees it as bob spells his name.
    let answers = enter(&mut d, a, alice, "@BOB", 0);
    assert!(
        matches!(&answers[0], Packet::Entered { room: 1, name, latest: 0 } if name == "@Bob"),
        "{answers:?}"
    );
    // Opening it alone tells bob nothing: the first message lets him in, then reaches him.
    assert_eq!(entered_since(&d, b, bob_before), []);
    say(&mut d, a, alice, 1, 1, "psst, bob");
    assert_eq!(entered_since(&d, b, bob_before), [(1, "@alice".into(), 0)]);
    assert_eq!(texts_since(&d, b, bob_before, 1), ["psst, bob"]);
    assert!(
        d.sent_to(a)
            .iter()
            .any(|p| matches!(p, Packet::Ack { acks } if acks[0].room == 1 && acks[0].seq == 1))
    );
    // bob answers under his own number for it.
    say(&mut d, b, bob, 1, 1, "hi alice");
    assert!(d.sent_to(a).iter().any(
        |p| matches!(p, Packet::Messages { room: 1, messages } if messages[0].text == "hi alice")
    ));
    assert_eq!(d.relay.latest_in("@alice+bob"), Some(2));
    // Nobody else hears of it: no message, no ENTERED, and no presence from it.
    for p in &d.sent_to(c)[carol_before..] {
        assert!(
            !matches!(
                p,
                Packet::Messages { .. } | Packet::Entered { .. } | Packet::Presence { .. }
            ),
            "carol was told {p:?}"
        );
    }
    for p in &d.sent_to(b)[bob_before..] {
        assert!(!matches!(p, Packet::Presence { .. }), "bob was told {p:?}");
    }
    // carol writing to alice is another conversation, from seq 1.
    let answers = enter(&mut d, c, carol, "@alice", 0);
    assert!(
        matches!(&answers[0], Packet::Entered { room: 1, name, latest: 0 } if name == "@alice"),
        "{answers:?}"
    );
    say(&mut d, c, carol, 1, 1, "for alice only");
    assert_eq!(d.relay.latest_in("@alice+carol"), Some(1));
    assert_eq!(texts_since(&d, b, bob_before, 1), ["psst, bob"]);
    assert!(
        d.sent_to(a)
            .iter()
            .any(|p| matches!(p, Packet::Entered { room: 2, name, .. } if name == "@carol"))
    );
}

#[test]
fn a_private_conversation_waits_for_its_reader_to_come_back() {
    let mut d = Driver::new(Config::default());
    let (a, b) = (addr(1), addr(2));
    let alice = d.member(a, "alice");
    let bob = d.member(b, "bob");
    let dm = number(&enter(&mut d, a, alice, "@bob", 0));
    say(&mut d, a, alice, dm, 1, "one");
    d.packet(
        b,
        &Packet::Leave {
            token: bob,
            message: String::new(),
        },
    );
    say(&mut d, a, alice, dm, 2, "two");
    say(&mut d, a, alice, dm, 3, "three");
    // bob's next session is let in at once, with the conversation's latest: his client asks
    // for what it has not seen.
    let before = d.sent_to(b).len();
    let bob = d.member(b, "bob");
    let told = entered_since(&d, b, before);
    assert_eq!(told.len(), 1, "{told:?}");
    let (number, name, latest) = told[0].clone();
    assert_eq!((name.as_str(), latest), ("@alice", 3));
    d.packet(
        b,
        &Packet::History {
            token: bob,
            req: 7,
            room: number,
            from: 2,
            count: 2,
        },
    );
    let got: Vec<String> = (d.sent_to(b)[before..].iter())
        .filter_map(|p| match p {
            Packet::HistoryPage { room, messages, .. } if *room == number => {
                Some(messages.iter().map(|m| m.text.clone()).collect::<Vec<_>>())
            }
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(got, ["two", "three"]);
}

#[test]
fn private_conversations_refuse_clearly() {
    let mut d = Driver::new(Config::default());
    let a = addr(1);
    let alice = d.member(a, "alice");
    let refused = |answers: &[Packet]| {
        (answers.iter())
            .find_map(|p| match p {
                Packet::NotEntered { code, message, .. } => Some((*code, message.clone())),
                _ => None,
            })
            .unwrap_or_else(|| panic!("not refused: {answers:?}"))
    };
    let (code, message) = refused(&enter(&mut d, a, alice, "@ALICE", 0));
    assert_eq!(code, ErrorCode::BadName);
    assert!(message.contains("your own name"), "{message}");
    let (code, message) = refused(&enter(&mut d, a, alice, "@nobody", 0));
    assert_eq!(code, ErrorCode::BadName);
    assert!(message.contains("nobody called nobody"), "{message}");
    let (code, _) = refused(&enter(&mut d, a, alice, "@a b", 0));
    assert_eq!(code, ErrorCode::BadName);
    // No room's name begins with @, nor can a JOIN name a conversation.
    let (code, _) = refused(&enter(&mut d, a, alice, "@", 0));
    assert_eq!(code, ErrorCode::BadName);
    // Ten new conversations a minute; entering one again is free.
    let first = (1..=20)
        .map(|k| {
            let name = format!("p{k}");
            d.member(addr(10 + k), &name);
            name
        })
        .collect::<Vec<_>>();
    for name in &first[..10] {
        number(&enter(&mut d, a, alice, &format!("@{name}"), 0));
        d.advance(std::time::Duration::from_millis(200));
    }
    number(&enter(&mut d, a, alice, "@p1", 0));
    let (code, message) = refused(&enter(&mut d, a, alice, "@p11", 0));
    assert_eq!(code, ErrorCode::TooManyRooms);
    assert!(message.contains("in the last minute"), "{message}");
    d.advance(std::time::Duration::from_secs(7));
    number(&enter(&mut d, a, alice, "@p11", 0));
}

#[test]
fn the_caches_of_many_rooms_stay_within_the_relays_budget_and_history_reads_the_rest() {
    let budget = 40_000;
    let mut d = Driver::new(Config {
        cache_bytes: budget,
        ..Config::default()
    });
    let a = addr(1);
    let alice = d.member(a, "alice");
    let mut csn = 0;
    for k in 0..40 {
        let number = number(&enter(&mut d, a, alice, &format!("room{k}"), 0));
        for i in 0..20 {
            csn += 1;
            say(
                &mut d,
                a,
                alice,
                number,
                csn,
                &format!("{k}/{i} {}", "x".repeat(200)),
            );
            d.advance(std::time::Duration::from_millis(60));
        }
        assert!(
            d.relay.cached_bytes() <= budget + budget / 4,
            "{} bytes cached after {k} rooms",
            d.relay.cached_bytes()
        );
    }
    assert!(d.relay.cached_bytes() > budget / 2, "the budget is used");
    // The first room's first messages left the cache: history reads them from the log.
    let before = d.sent_to(a).len();
    d.packet(
        a,
        &Packet::History {
            token: alice,
            req: 1,
            room: 1,
            from: 1,
            count: 20,
        },
    );
    let seqs: Vec<u64> = (d.sent_to(a)[before..].iter())
        .filter_map(|p| match p {
            Packet::HistoryPage {
                room: 1, messages, ..
            } => Some(messages.iter().map(|m| m.seq).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
}

#[test]
fn rooms_entered_and_left_without_a_word_do_not_fill_the_relay() {
    let mut d = Driver::new(Config {
        max_rooms: 4,
        ..Config::default()
    });
    let (a, b) = (addr(1), addr(2));
    let alice = d.member(a, "alice");
    let bob = d.member(b, "bob");
    for k in 0..30 {
        let target = if k % 2 == 0 {
            format!("empty{k}")
        } else {
            "@bob".to_owned()
        };
        let n = number(&enter(&mut d, a, alice, &target, 0));
        d.packet(
            a,
            &Packet::Part {
                token: alice,
                room: n,
                message: String::new(),
            },
        );
        // Within the allowance of new private conversations (10 a minute), bob still here.
        d.advance(std::time::Duration::from_secs(3));
        d.packet(b, &Packet::Ping { token: bob });
    }
    assert_eq!(d.relay.room_count(), 1, "only the lobby is left");
    // A room with a message in it stays when its last member leaves.
    let n = number(&enter(&mut d, a, alice, "kept", 0));
    say(&mut d, a, alice, n, 1, "on the record");
    d.packet(
        a,
        &Packet::Part {
            token: alice,
            room: n,
            message: String::new(),
        },
    );
    d.advance(std::time::Duration::from_millis(250));
    assert_eq!(d.relay.room_count(), 2);
    let answers = enter(&mut d, a, alice, "kept", 5);
    assert!(
        matches!(&answers[0], Packet::Entered { latest: 1, .. }),
        "{answers:?}"
    );
    for k in 0..2 {
        number(&enter(&mut d, a, alice, &format!("new{k}"), 0));
    }
    assert_eq!(d.relay.room_count(), 4);
}
