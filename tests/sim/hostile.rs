//! Hostile traffic: refused texts, datagrams forged with a member's address, and garbage from
//! everywhere change nothing for the members.

use urc::client::Event;
use urc::proto::message::{Message, Millis};
use urc::proto::wire::{Acked, Change, ErrorCode, LeaveReason, Packet, Token};
use uuid::Uuid;

use crate::chat::{alice_and_bob, enter_all, say, settle};
use crate::checks::{notices, presence, sessions, settle_and_check};
use crate::net::{Conditions, Net, Rng, ms, secs, seeds};

/// How many ERROR BadText about `id` client `i` received.
fn bad_texts(net: &Net, i: usize, id: Uuid) -> usize {
    let about = net.nodes[i].errors_received(ErrorCode::BadText);
    about.iter().filter(|&&about| about == id).count()
}

/// A SEND with a text the relay refuses (no client of this crate sends one; forged here with
/// a real session's token) is answered BadText, and so is every retransmission of it: had the
/// first answer been lost, silence would leave its sender resending for ever. A refused message
/// takes its csn, and what follows it is stored; one ahead of a gap is refused at once, before
/// it could wait (an empty text counted nothing of the relay's memory for waiting messages).
#[test]
fn a_refused_text_is_refused_again_when_sent_again() {
    for seed in seeds(0..1) {
        let mut net = Net::quiet(seed);
        let [a, raw] = enter_all(&mut net, ["alice", "raw"]);
        let token = net.nodes[raw].first_token();
        let send = |csn: u64, id: Uuid, text: &str| Packet::send_one(token, 1, csn, id, text);

        // A control character; the first refusal is lost.
        let control = Uuid::new_v4();
        net.nodes[raw].deaf = true;
        net.inject_to_relay(raw, &send(1, control, "a\u{7}b"));
        net.run_for(ms(50));
        net.nodes[raw].deaf = false;
        assert_eq!(bad_texts(&net, raw, control), 0);
        net.inject_to_relay(raw, &send(1, control, "a\u{7}b"));
        net.run_for(ms(50));
        assert_eq!(bad_texts(&net, raw, control), 1);

        // 1001 bytes: the decoder lets it through, the relay's rule refuses it.
        let long = Uuid::new_v4();
        for sent in 1..=2 {
            net.inject_to_relay(raw, &send(2, long, &"x".repeat(1001)));
            net.run_for(ms(50));
            assert_eq!(bad_texts(&net, raw, long), sent);
        }

        // An empty text that arrives ahead of the message before it is refused at once, and
        // does not wait.
        let (empty, good, after) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        net.inject_to_relay(raw, &send(4, empty, ""));
        net.run_for(ms(50));
        assert_eq!(bad_texts(&net, raw, empty), 1, "refused before its turn");
        assert_eq!(net.relay.parked_bytes(), 0, "nothing waits");
        net.inject_to_relay(raw, &send(3, good, "fine"));
        net.run_for(ms(50));
        assert_eq!(bad_texts(&net, raw, empty), 1);
        // Sent again in its turn (its sender missed the refusal), it is refused again.
        net.inject_to_relay(raw, &send(4, empty, ""));
        net.inject_to_relay(raw, &send(5, after, "after"));
        settle(&mut net);
        assert_eq!(bad_texts(&net, raw, empty), 2);

        net.check_store();
        let stored: Vec<(Uuid, &str)> = (net.store.iter())
            .map(|m| (m.id, m.text.as_str()))
            .collect();
        assert_eq!(stored, [(good, "fine"), (after, "after")]);
        assert_eq!(net.relay.stats().refused, 3);
        for id in [control, long, empty] {
            let acked = net.nodes[raw].ack_time(id);
            assert!(acked.is_none(), "a refused message is never acknowledged");
        }
        net.check_live(a, 2);
    }
}

/// Datagrams forged with alice's source address but not her token (an attacker can spoof her
/// address but not read her token): a SEND is not stored, a LEAVE does not end her session,
/// HISTORY, WHO and PING get no answer, and nobody hears of any of it; a JOIN without her cookie
/// gets a CHALLENGE, which her client, in the room, ignores. Alice carries on in the same
/// session, without a notice. Forged PINGs do not keep her session alive once she is silent.
#[test]
fn forged_datagrams_from_a_members_address_change_nothing() {
    for seed in seeds(0..1) {
        let (mut net, a, b) = alice_and_bob(seed, 0..3);
        let token = net.nodes[a].first_token();
        let mut near = token;
        near.0[15] ^= 1;
        let events = (net.nodes[a].events.len(), net.nodes[b].events.len());
        let forged = |token: Token| {
            [
                Packet::send_one(token, 4, 4, Uuid::new_v4(), "forged"),
                Packet::Leave {
                    token,
                    message: String::new(),
                },
                Packet::History {
                    room: 0,
                    token,
                    req: 1,
                    from: 0,
                    count: 1000,
                },
                Packet::Who {
                    room: 0,
                    token,
                    req: 1,
                },
                Packet::Ping { token },
            ]
        };
        let mut count = 0;
        for token in [near, Token([0; 16]), Token(*Uuid::new_v4().as_bytes())] {
            for p in forged(token) {
                let sent = net.from_relay.len();
                net.inject_to_relay(a, &p);
                count += 1;
                assert_eq!(net.from_relay.len(), sent, "an answer to {p:?}");
                assert_eq!(net.relay.stats().unauthorised, count);
                let dropped = net.relay.last_dropped().expect("noted");
                assert_eq!(dropped.from, net.nodes[a].addr);
                assert!(dropped.why.contains("token"), "{dropped:?}");
                assert!(net.relay_has("alice"));
            }
        }
        net.run_for(secs(1));
        for k in 3..6 {
            say(&mut net, a, k);
            say(&mut net, b, k);
        }

        settle_and_check(&mut net, 9);
        assert!(net.store.iter().all(|m| m.text != "forged"));
        assert_eq!(net.nodes[a].welcomes().len(), 1, "alice did not join again");
        for (i, from) in [(a, events.0), (b, events.1)] {
            let since: Vec<&Event> = net.nodes[i].events[from..].iter().map(|(_, e)| e).collect();
            assert!(
                since.iter().all(|e| matches!(e, Event::Message { .. })),
                "{} was told something: {since:?}",
                net.nodes[i].client.name()
            );
        }
        assert_eq!(presence(&net, b), Vec::<String>::new());
        assert_eq!(net.relay.stats().unauthorised, count);

        // Alice goes silent; forged pings from her address every second do not keep her in.
        net.freeze(a);
        let frozen = net.now;
        while !net.nodes[b]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Left { .. }))
        {
            assert!(
                net.now < frozen + secs(40),
                "alice was kept in by forged pings"
            );
            net.inject_to_relay(a, &Packet::Ping { token: near });
            net.run_for(secs(1));
        }
        assert_eq!(presence(&net, b), ["-alice TimedOut"]);
    }
}

/// Random bytes from `rng`.
fn junk(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

/// A packet of any type with random fields (small enough to encode), as an attacker who knows
/// the format but no token or cookie writes it.
fn random_packet(rng: &mut Rng) -> Packet {
    let token = Token(junk(rng, 16).try_into().expect("16 bytes"));
    let id = Uuid::from_u64_pair(rng.next_u64(), rng.next_u64());
    let short = |rng: &mut Rng| {
        let n = rng.range(0, 40) as usize;
        String::from_utf8_lossy(&junk(rng, n)).into_owned()
    };
    let message = |rng: &mut Rng| Message {
        seq: rng.next_u64(),
        id,
        from: short(rng),
        text: short(rng),
        time: Millis(rng.next_u64() as i64),
    };
    match rng.range(0, 13) {
        0 => Packet::Join {
            room: "lobby".into(),
            name: short(rng),
            history: rng.next_u64() as u16,
            instance: id,
        },
        1 => Packet::send_one(token, rng.range(0, 3), rng.range(0, 3), id, &short(rng)),
        2 => Packet::History {
            room: 0,
            token,
            req: rng.next_u64() as u32,
            from: rng.range(0, 5),
            count: rng.next_u64() as u16,
        },
        3 => Packet::Who {
            room: 0,
            token,
            req: rng.next_u64() as u32,
        },
        4 => Packet::Ping { token },
        5 => Packet::Leave {
            token,
            message: String::new(),
        },
        6 => Packet::Welcome {
            token,
            name: short(rng),
            latest: rng.next_u64(),
            timeout_ms: rng.next_u64() as u32,
        },
        7 => Packet::Error {
            code: ErrorCode::NotJoined,
            id,
            message: short(rng),
        },
        8 => Packet::Ack {
            acks: vec![Acked {
                room: 0,
                id,
                csn: 1,
                seq: rng.next_u64(),
                time: Millis(0),
            }],
        },
        9 => Packet::Messages {
            room: 0,
            messages: (0..rng.range(0, 3)).map(|_| message(rng)).collect(),
        },
        10 => Packet::HistoryPage {
            room: 0,
            req: 0,
            first: 1,
            last: 2,
            messages: (0..rng.range(0, 3)).map(|_| message(rng)).collect(),
        },
        11 => Packet::Presence {
            room: 0,
            changes: vec![Change {
                joined: false,
                reason: LeaveReason::Quit,
                name: short(rng),
                message: None,
            }],
        },
        12 => Packet::Names {
            room: 0,
            req: 0,
            total: 1,
            names: vec![short(rng)],
        },
        _ => Packet::Pong {
            rooms: vec![urc::proto::wire::Latest {
                room: 0,
                latest: rng.next_u64(),
                members: rng.next_u64() as u32,
            }],
        },
    }
}

/// One datagram of garbage: random bytes of any length up to 1500, a good header with a random
/// body, a random packet as it is, truncated, extended, with bits flipped or with another
/// version.
fn garbage(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = random_packet(rng).encode();
    match rng.range(0, 6) {
        0 => {
            let n = rng.range(0, 1500) as usize;
            bytes = junk(rng, n);
        }
        1 => {
            let n = rng.range(0, 100) as usize;
            bytes.truncate(3);
            bytes.extend(junk(rng, n));
        }
        2 => {}
        3 => bytes.truncate(rng.range(0, bytes.len() as u64 - 1) as usize),
        4 => {
            let n = rng.range(1, 20) as usize;
            bytes.extend(junk(rng, n));
        }
        5 => {
            for _ in 0..rng.range(1, 4) {
                let bit = rng.range(0, bytes.len() as u64 * 8 - 1) as usize;
                bytes[bit / 8] ^= 1 << (bit % 8);
            }
        }
        _ => bytes[1] = rng.range(2, 255) as u8,
    }
    bytes
}

/// Garbage from 300 addresses (and some with the members' own addresses), 200 datagrams a
/// second for 20 s, while alice and bob chat: the relay stores nothing of it, never sends an
/// address that is no member's more than three times what came from there, takes nobody in,
/// and alice and bob lose nothing.
#[test]
fn garbage_from_everywhere_changes_nothing() {
    let cond = Conditions::jittery(ms(15), ms(20)).losing(5).duplicating(5);
    for seed in seeds(0..3) {
        let mut rng = Rng::new(seed ^ 0x6a7b);
        let mut net = Net::under(seed, cond);
        let [a, b] = enter_all(&mut net, ["alice", "bob"]);
        let strangers: Vec<std::net::SocketAddr> = (0..300u64)
            .map(|k| match k % 3 {
                0 => std::net::SocketAddr::from(([203, 0, 113, k as u8], 1024 + k as u16)),
                1 => std::net::SocketAddr::from(([172, 16, (k >> 8) as u8, k as u8], 53)),
                _ => std::net::SocketAddr::from((
                    [0x2001, 0xdb8, 0, 0, 0, 0, 0, k as u16],
                    rng.range(1, 65535) as u16,
                )),
            })
            .collect();
        let members = [net.nodes[a].addr, net.nodes[b].addr];
        let start = net.now;
        let mut k = 0;
        while net.now < start + secs(20) {
            for _ in 0..rng.range(0, 2) {
                let from = if rng.percent(10) {
                    members[rng.range(0, 1) as usize]
                } else {
                    strangers[rng.range(0, strangers.len() as u64 - 1) as usize]
                };
                let bytes = garbage(&mut rng);
                // As if opened by the secure channel, which proved the address: a JOIN from a
                // stranger there is a newcomer, not garbage (strangers who never finish a
                // handshake are tests/handshake.rs's).
                // A JOIN of a client from before rooms (no room field) is one too: it is
                // answered, with what to do.
                let old_join = bytes.len() > 4
                    && bytes[..3] == [0x55, 2, 0x01]
                    && bytes.len() == 4 + usize::from(bytes[3]) + 2 + 16;
                if matches!(Packet::decode(&bytes), Ok(Packet::Join { .. })) || old_join {
                    continue;
                }
                let before = net.strangers.get(&from).map_or(0, |t| t.sent);
                net.inject_raw(from, &bytes);
                if let Some(t) = net.strangers.get(&from) {
                    assert!(t.sent - before <= 3 * bytes.len(), "{from}: {t:?}");
                }
                assert_eq!(net.relay.clients().len(), 2);
            }
            if rng.percent(1) {
                let i = [a, b][rng.range(0, 1) as usize];
                say(&mut net, i, k);
                k += 1;
            }
            net.run_for(ms(5));
        }

        settle_and_check(&mut net, k as u64);
        assert_eq!(sessions(&net).len(), 2);
        for (addr, t) in &net.strangers {
            assert!(t.sent <= 3 * t.received, "{addr}: {t:?}");
        }
        let stats = net.relay.stats();
        assert!(stats.malformed > 1000, "{stats:?}");
        assert!(stats.unauthorised > 100, "{stats:?}");
        assert!(net.relay.last_dropped().is_some());
        for i in [a, b] {
            // One session all along (the network may have duplicated its WELCOME).
            assert_eq!(net.nodes[i].tokens().len(), 1);
            assert_eq!(notices(&net, i, "joined"), 1, "joined, never again");
        }
        // Nobody but the two joined, and nobody left (the second one's arrival, shown to the
        // first, may have been lost on its way).
        // (The network may have duplicated it too.)
        let seen = [presence(&net, a), presence(&net, b)].map(|mut p| {
            p.dedup();
            p
        });
        assert!(seen[0].iter().all(|p| p == "+bob"), "{seen:?}");
        assert!(seen[1].iter().all(|p| p == "+alice"), "{seen:?}");
        assert!(seen[0].len() + seen[1].len() <= 1, "{seen:?}");
        let received: usize = net.strangers.values().map(|t| t.received).sum();
        let sent: usize = net.strangers.values().map(|t| t.sent).sum();
        println!(
            "seed {seed}: {k} messages; {received} bytes of garbage from strangers, {sent} bytes back; {stats:?}"
        );
    }
}
