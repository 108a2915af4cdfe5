//! The relay against datagrams nobody's client sends, driven directly, datagram by datagram
//! (the shell is in `hostile/driver.rs`): too many clients from one address, joins too fast,
//! wrong tokens, late joins. (Spoofed source addresses and cookies are the secure channel's:
//! `tests/handshake.rs`.) The same attacks against a room with running clients over
//! the simulated network are in `tests/sim/` (`hostile.rs`, `floods.rs`).

#[path = "hostile/driver.rs"]
mod driver;
#[path = "hostile/load.rs"]
mod load;

use std::net::SocketAddr;
use std::time::Duration;

use driver::{Driver, Joined};
use urc::proto::wire::{ErrorCode, Packet, Token};
use urc::relay::Config;
use uuid::Uuid;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("an address")
}

/// At most `max_per_ip` sessions share one IP address (64 by default): the next JOIN from it,
/// with a good cookie, is refused Full with a message that names the address and the limit;
/// another address still gets in, and when one of the 64 leaves its place is free again. And at
/// most `max_clients` in all.
#[test]
fn sessions_are_limited_per_ip_and_in_all() {
    let mut d = Driver::new(Config::default());
    let nat = |port: u16| SocketAddr::from(([198, 51, 100, 1], port));
    let tokens: Vec<Token> = (0..64)
        .map(|k| d.member(nat(10_000 + k), &format!("n{k}")))
        .collect();
    // (The address may join 64 times at once, then at the request rate.)
    d.advance(Duration::from_secs(1));
    let Joined::Refused(code, message) = d.join(nat(20_000), "n64") else {
        panic!("the 65th got in");
    };
    assert_eq!(code, ErrorCode::Full);
    assert!(message.contains("198.51.100.1"), "{message}");
    assert!(message.contains("64"), "{message}");
    assert_eq!(d.relay.clients().len(), 64);
    assert_eq!(d.relay.stats().joins_refused, 1);
    // IPv6, and the next IPv4 address, are other addresses.
    d.member(addr("[2001:db8::1]:20000"), "v6");
    d.member(addr("198.51.100.2:20000"), "next");
    // One leaves: the 65th gets in.
    d.packet(
        nat(10_000),
        &Packet::Leave {
            token: tokens[0],
            message: String::new(),
        },
    );
    d.member(nat(20_000), "n64");
    assert!(matches!(
        d.join(nat(20_001), "n65"),
        Joined::Refused(ErrorCode::Full, _)
    ));

    let mut d = Driver::new(Config {
        max_clients: 3,
        ..Config::default()
    });
    for k in 0..3u8 {
        d.member(
            SocketAddr::from(([192, 0, 2, k + 1], 4000)),
            &format!("c{k}"),
        );
    }
    let Joined::Refused(code, message) = d.join(addr("192.0.2.9:4000"), "c3") else {
        panic!("the 4th got in");
    };
    assert_eq!(code, ErrorCode::Full);
    assert!(message.contains("full"), "{message}");
    assert_eq!(d.relay.clients().len(), 3);
}

/// IPv6 addresses count per /64 network (one host usually has a whole /64): 3 sessions from
/// 3 addresses of one /64 fill it at `max_per_ip` 3, the refusal names the network, another
/// /64 still gets in; an IPv4 address seen as IPv6 (`::ffff:…`, a dual-stack socket) counts
/// with the same IPv4 address.
#[test]
fn ipv6_clients_are_counted_per_64_network() {
    let mut d = Driver::new(Config {
        max_per_ip: 3,
        ..Config::default()
    });
    for k in 1..=3 {
        d.member(addr(&format!("[2001:db8:0:7::{k}]:4000")), &format!("v{k}"));
    }
    d.advance(Duration::from_secs(1));
    let Joined::Refused(code, message) = d.join(addr("[2001:db8:0:7:ffff::9]:4000"), "v4") else {
        panic!("a 4th address of the /64 got in");
    };
    assert_eq!(code, ErrorCode::Full);
    assert!(message.contains("2001:db8:0:7::/64"), "{message}");
    d.member(addr("[2001:db8:0:8::1]:4000"), "other");

    d.member(addr("192.0.2.5:1"), "four-a");
    d.member(addr("192.0.2.5:2"), "four-b");
    d.member(addr("[::ffff:192.0.2.5]:3"), "four-c");
    let Joined::Refused(_, message) = d.join(addr("192.0.2.5:4"), "four-d") else {
        panic!("a 4th session from 192.0.2.5 got in");
    };
    assert!(
        message.contains("192.0.2.5:") || message.contains("192.0.2.5 "),
        "{message}"
    );
}

/// A session that moves to another IP address (the same client, from a new network) counts
/// against that address's `max_per_ip` like a new one: at the limit the move is refused Full and
/// the session stays where it was; a move within the same IP address (a new port) is always
/// allowed.
#[test]
fn a_moving_session_is_held_to_the_per_ip_limit_of_its_new_address() {
    let mut d = Driver::new(Config {
        max_per_ip: 2,
        ..Config::default()
    });
    let full = |port: u16| SocketAddr::from(([198, 51, 100, 1], port));
    d.member(full(1000), "a");
    d.member(full(1001), "b");
    let away = addr("203.0.113.7:5000");
    let instance = Uuid::new_v4();
    let Joined::Welcome(token) = d.join_instance(away, "roamer", instance) else {
        panic!("roamer refused");
    };
    d.advance(Duration::from_secs(1));
    let Joined::Refused(code, message) = d.join_instance(full(1002), "roamer", instance) else {
        panic!("the session moved to a full address");
    };
    assert_eq!(code, ErrorCode::Full);
    assert!(message.contains("198.51.100.1"), "{message}");
    // Still at its old address, and working there.
    let send = Packet::send_one(token, 1, 1, Uuid::new_v4(), "still here");
    d.packet(away, &send);
    assert_eq!(d.log.len(), 1);
    // A new port on the same IP is the same address for the limit: the move goes through.
    let Joined::Welcome(moved) = d.join_instance(addr("203.0.113.7:5001"), "roamer", instance)
    else {
        panic!("a move within one IP address was refused");
    };
    assert!(moved.matches(&token), "the same session");
    assert_eq!(d.relay.clients().len(), 3);
}

/// One address with a good cookie (good for ten seconds) joins again and again, each time as a
/// new process (a new instance replaces its session) and asking for 1000 messages of history,
/// 100 JOINs a second for 10 s, in a room of 50: each JOIN that is taken tells the whole room
/// someone left and joined and sends the history, so the relay takes them at the request rate
/// (with a burst of as many as may share an address), tells the address once, and the room
/// goes on.
#[test]
fn join_churn_from_one_address_is_held_to_the_request_rate() {
    let config = Config::default();
    let mut d = Driver::new(config.clone());
    let members: Vec<SocketAddr> = (0..50u8)
        .map(|k| SocketAddr::from(([192, 0, 2, k + 1], 4000)))
        .collect();
    let tokens: Vec<Token> = (members.iter().enumerate())
        .map(|(k, a)| d.member(*a, &format!("m{k}")))
        .collect();
    for csn in 1..=100u64 {
        let send = Packet::send_one(tokens[0], csn, csn, Uuid::new_v4(), &"字".repeat(300));
        d.packet(members[0], &send);
    }
    let attacker = addr("198.51.100.9:5000");
    let join = || Packet::Join {
        room: "lobby".into(),
        name: "churn".into(),
        history: 1000,
        instance: Uuid::new_v4(),
    };
    let before = d.sent.len();
    let duration = Duration::from_secs(10);
    let end = d.now + duration;
    while d.now < end {
        d.packet(attacker, &join());
        d.advance(Duration::from_millis(10));
    }
    let sent = &d.sent[before..];
    let welcomes = (sent.iter())
        .filter(|(to, p)| *to == attacker && matches!(p, Packet::Welcome { .. }))
        .count();
    let bound = config.max_per_ip as f64 + config.request_rate * duration.as_secs_f64();
    assert!(welcomes as f64 <= bound + 1.0, "{welcomes} joins taken");
    assert!(welcomes as f64 >= bound - 10.0, "{welcomes} joins taken");
    let presence = (sent.iter())
        .filter(|(to, p)| members.contains(to) && matches!(p, Packet::Presence { .. }))
        .count();
    assert!(presence <= 2 * welcomes * members.len(), "{presence}");
    let told = (sent.iter())
        .filter(|(to, p)| {
            *to == attacker
                && matches!(
                    p,
                    Packet::Error {
                        code: ErrorCode::RateLimited,
                        ..
                    }
                )
        })
        .count();
    assert_eq!(told, 1);
    let history: usize = (sent.iter())
        .filter(|(to, p)| *to == attacker && matches!(p, Packet::HistoryPage { .. }))
        .map(|(_, p)| p.encode().len())
        .sum();
    println!(
        "1000 JOINs in 10 s: {welcomes} taken, {presence} presence datagrams to the room, {history} bytes of history"
    );
    // The room goes on.
    let send = Packet::send_one(tokens[1], 1, 1, Uuid::new_v4(), "still here");
    let before = d.sent.len();
    d.packet(members[1], &send);
    let fanned = d.sent[before..]
        .iter()
        .filter(|(_, p)| matches!(p, Packet::Messages { .. }))
        .count();
    assert_eq!(
        fanned,
        members.len() - 1 + 1,
        "everyone else, the churner included"
    );
}

/// How many RATE LIMITED errors the relay sent to `to` from the `from`th datagram on.
fn rate_limited(d: &Driver, to: SocketAddr, from: usize) -> usize {
    (d.sent[from..].iter())
        .filter(|(t, p)| {
            *t == to
                && matches!(
                    p,
                    Packet::Error {
                        code: ErrorCode::RateLimited,
                        ..
                    }
                )
        })
        .count()
}

/// Too fast is told once an episode: a sender past its burst gets one RATE LIMITED, about the
/// first message refused, and none for the messages refused after it while it goes on at the
/// rate; once it has kept to the rate long enough to have its whole burst again, the next
/// flood is told again. Requests likewise, with their own rate.
#[test]
fn too_fast_is_told_once_an_episode() {
    let config = Config::default();
    let mut d = Driver::new(config.clone());
    let alice = addr("192.0.2.1:4000");
    let token = d.member(alice, "alice");
    let ids = std::cell::RefCell::new(Vec::new());
    // A client that sends faster than the rate: its base stays at 1 (nothing acknowledged
    // that the relay could skip), so every message must be taken in its turn.
    let say = |d: &mut Driver| {
        let id = Uuid::new_v4();
        ids.borrow_mut().push(id);
        let csn = ids.borrow().len() as u64;
        let send = Packet::send_one(token, 1, csn, id, &format!("message {csn}"));
        let stored = d.log.len();
        d.packet(alice, &send);
        (d.log.len() > stored, id)
    };
    let start = d.sent.len();
    for _ in 0..100 {
        assert!(say(&mut d).0, "within the burst");
    }
    let (stored, first_refused) = say(&mut d);
    assert!(!stored, "over the burst: it waits");
    let told: Vec<&Packet> = d.sent[start..].iter().map(|(_, p)| p).collect();
    assert!(matches!(
        told.last(),
        Some(Packet::Error { code: ErrorCode::RateLimited, id, .. }) if *id == first_refused
    ));
    // Going on at twice the rate for 2 s: the relay takes one message a 50 ms, in order, as
    // its allowance refills (at its ticks), the rest wait; nobody is told again.
    for _ in 0..40 {
        d.advance(Duration::from_millis(50));
        say(&mut d);
        say(&mut d);
    }
    assert_eq!(d.log.len(), 140, "the burst, then 20 a second");
    assert_eq!(rate_limited(&d, alice, start), 1);
    assert_eq!(
        d.relay.stats().rate_limited,
        81,
        "every arrival that had to wait"
    );
    // Quiet: the waiting messages are taken as the allowance comes back, until none wait
    // and the burst is whole again.
    d.advance(Duration::from_secs(3));
    assert_eq!(d.log.len(), 181);
    d.advance(Duration::from_secs(5));
    let stored: Vec<Uuid> = d.log.iter().map(|m| m.id).collect();
    assert_eq!(
        stored,
        *ids.borrow(),
        "every message stored once, in the order sent"
    );
    // A new episode: the burst, then told again.
    for _ in 0..100 {
        assert!(say(&mut d).0, "the burst again");
    }
    assert!(!say(&mut d).0);
    assert_eq!(rate_limited(&d, alice, start), 2);

    // Requests: twice the request rate at once, then the rate.
    let start = d.sent.len();
    let who = |req: u32| Packet::Who {
        room: 0,
        token,
        req,
    };
    let answered = |d: &Driver, req: u32| {
        (d.sent.iter()).any(|(_, p)| matches!(p, Packet::Names { req: r, .. } if *r == req))
    };
    let burst = (2.0 * config.request_rate) as u32;
    for req in 1..=burst + 20 {
        d.packet(alice, &who(req));
        assert_eq!(answered(&d, req), req <= burst, "request {req}");
    }
    assert_eq!(rate_limited(&d, alice, start), 1);
    d.advance(Duration::from_millis(200));
    d.packet(alice, &who(100));
    assert!(answered(&d, 100), "one a 200 ms is the request rate");
    d.packet(alice, &who(101));
    assert!(!answered(&d, 101));
    assert_eq!(rate_limited(&d, alice, start), 1);
    d.advance(Duration::from_secs(2));
    for req in 200..200 + burst + 1 {
        d.packet(alice, &who(req));
    }
    assert_eq!(rate_limited(&d, alice, start), 2);
}

/// A message put back in the waiting buffer by the rate limit, then resent and taken in turn,
/// leaves no copy behind in the buffer.
#[test]
fn a_message_the_rate_put_back_leaves_no_copy_waiting() {
    let config = Config {
        rate: 1.0,
        burst: 2.0,
        ..Config::default()
    };
    let mut d = Driver::new(config);
    let alice: SocketAddr = "192.0.2.10:5000".parse().unwrap();
    let token = d.member(alice, "alice");
    let send = |csn: u64, text: &str| {
        Packet::send_one(token, 1, csn, Uuid::from_u128(u128::from(csn)), text)
    };
    let waiting = |d: &Driver| d.relay.clients().get(&alice).unwrap().waiting();
    d.packet(alice, &send(1, "one"));
    d.packet(alice, &send(3, "three"));
    assert_eq!(waiting(&d), 1);
    // 2 is taken with the last of the burst; 3, behind it, is stopped by the rate and waits.
    d.packet(alice, &send(2, "two"));
    assert_eq!(waiting(&d), 1);
    // Resent once the rate allows it, 3 is taken, and its copy in the buffer goes.
    d.advance(Duration::from_secs(2));
    d.packet(alice, &send(3, "three"));
    assert_eq!(waiting(&d), 0);
    let texts: Vec<&str> = d.log.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["one", "two", "three"]);
}

/// A rotated log begins after an archived part: history answers reach back to its first
/// record and say so in their range, instead of promising messages that will never come.
#[test]
fn history_reaches_back_to_the_first_record_of_a_rotated_log() {
    use urc::proto::message::{Message, Millis};
    let tail: Vec<Message> = (3..=4)
        .map(|seq| Message {
            seq,
            id: Uuid::from_u128(u128::from(seq)),
            from: "r1".into(),
            text: format!("m{seq}"),
            time: Millis(1_795_593_600_000),
        })
        .collect();
    let mut d = Driver::new(Config::default());
    d.relay = urc::relay::Relay::new(Config::default(), tail);
    d.relay.set_log_start(3);
    let alice: SocketAddr = "192.0.2.10:5000".parse().unwrap();
    let token = d.member(alice, "alice");
    for (from, count) in [(0, 5), (1, 10)] {
        let before = d.sent.len();
        d.packet(
            alice,
            &Packet::History {
                room: 0,
                token,
                req: 7,
                from,
                count,
            },
        );
        let pages: Vec<(u64, u64, Vec<u64>)> = d.sent[before..]
            .iter()
            .filter_map(|(_, p)| match p {
                Packet::HistoryPage {
                    first,
                    last,
                    messages,
                    ..
                } => Some((*first, *last, messages.iter().map(|m| m.seq).collect())),
                _ => None,
            })
            .collect();
        assert_eq!(pages, [(3, 4, vec![3, 4])], "from {from} count {count}");
    }
}

/// A JOIN the network held back (or duplicated) past its client's LEAVE brings no ghost into
/// the room: the relay knows that client left, and a new client may take the name at once.
#[test]
fn a_join_that_arrives_after_its_clients_leave_brings_no_ghost() {
    let mut d = Driver::new(Config::default());
    let (at, instance) = (addr("192.0.2.7:4000"), Uuid::new_v4());
    let Joined::Welcome(token) = d.join_instance(at, "dee", instance) else {
        panic!("dee was refused");
    };
    let late = Packet::Join {
        room: "lobby".into(),
        name: "dee".into(),
        history: 0,
        instance,
    };
    d.packet(
        at,
        &Packet::Leave {
            token,
            message: String::new(),
        },
    );
    assert!(d.relay.clients().is_empty());
    d.advance(Duration::from_millis(30));
    let before = d.sent.len();
    d.packet(at, &late);
    assert!(d.relay.clients().is_empty(), "the late JOIN let a ghost in");
    assert!(
        !d.sent[before..]
            .iter()
            .any(|(_, p)| matches!(p, Packet::Welcome { .. })),
        "welcomed a client that left"
    );
    // Someone else (another process) takes the name at once.
    d.member(addr("192.0.2.8:4000"), "dee");
}
