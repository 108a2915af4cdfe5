//! Private conversations: each conversation's order is one and gap-free for its two people
//! under loss, nothing of it reaches anyone else (its messages, its ENTERED, presence from
//! it), a reader who was away is let in on joining with what was written meanwhile (or what
//! came since they left off), and a relay crash keeps every conversation and its seqs.

use std::collections::{HashMap, HashSet};

use urc::client::{Event, Seen};
use urc::proto::message::Millis;
use urc::proto::wire::Packet;
use uuid::Uuid;

use crate::chat::settle;
use crate::checks::errors;
use crate::net::{Conditions, Net, Restart, Rng, ms, relay_room, secs, seeds};

/// Everyone, all in the lobby; client `k` is `PEOPLE[k]`.
const PEOPLE: [&str; 4] = ["alice", "bob", "Carol", "dave"];

/// The conversations: who opens each, entering it as what (any case will do), and the other,
/// who is let in by the opener's first message. bob opens his with dave too, as `@DAVE`, at
/// the same time as dave.
const DMS: [(&str, &str, &str); 3] = [
    ("alice", "@BOB", "bob"),
    ("Carol", "@alice", "alice"),
    ("dave", "@bob", "bob"),
];

/// bob's own opening of his conversation with dave.
const BOB_OPENS: &str = "@DAVE";

fn who(name: &str) -> usize {
    PEOPLE
        .iter()
        .position(|p| *p == name)
        .expect("one of PEOPLE")
}

/// The relay's key of the conversation of `a` and `b` (`@a+b`).
fn key(a: &str, b: &str) -> String {
    relay_room(a, &format!("@{b}"))
}

/// What `me` calls the conversation of `(opener, typed, other)`: what they typed to open it,
/// or, let in unasked, `@` and the opener's name as the relay spells it.
fn label(me: &str, (opener, typed, other): (&str, &str, &str)) -> String {
    match me {
        _ if me == opener => typed.to_owned(),
        "bob" if opener == "dave" => BOB_OPENS.to_owned(),
        _ if me == other => format!("@{opener}"),
        _ => unreachable!("{me} is not in it"),
    }
}

/// True when client `i` is in the room or conversation it calls `room`, in this session.
fn is_in(net: &Net, i: usize, room: &str) -> bool {
    (net.nodes[i].client.rooms().iter()).any(|r| r.name == room && r.entered)
}

/// Shuffles `v` with `rng` (Fisher–Yates).
fn shuffle<T>(rng: &mut Rng, v: &mut [T]) {
    for k in (1..v.len()).rev() {
        let j = rng.range(0, k as u64) as usize;
        v.swap(k, j);
    }
}

/// Everyone of [`PEOPLE`] joins the lobby over a network losing 20% (and duplicating,
/// reordering); the conversations of [`DMS`] are opened and written to first by their
/// openers; then for 20 rounds both sides of each write to each other, interleaved at random
/// with chatter in the lobby. The relay crashes and starts again after round 10 when
/// `restart`; returns each conversation's latest seq then. Runs until all is shown.
fn dms_run(seed: u64, restart: bool) -> (Net, HashMap<String, u64>) {
    let cond = Conditions::jittery(ms(10), ms(20))
        .losing(20)
        .duplicating(10);
    let mut net = Net::under(seed, cond);
    for name in PEOPLE {
        net.join_rooms(name, 0, &["lobby"]);
    }
    net.run_until(secs(120), "everyone in the lobby", |net| {
        (net.nodes.iter()).all(|n| n.client.rooms().iter().all(|r| r.entered))
    });
    for (a, typed, _) in DMS {
        net.enter(who(a), typed, 0);
    }
    net.enter(who("bob"), BOB_OPENS, 0);
    net.run_until(secs(60), "the conversations opened", |net| {
        DMS.iter().all(|&(a, typed, _)| is_in(net, who(a), typed))
            && is_in(net, who("bob"), BOB_OPENS)
    });
    let mut count: HashMap<(usize, String), usize> = HashMap::new();
    let mut say = |net: &mut Net, from: usize, to: &str| {
        let k = count.entry((from, to.to_owned())).or_default();
        let text = format!("{} to {to}, {k}: 你好", PEOPLE[from]);
        *k += 1;
        net.send_to(from, to, &text);
    };
    // The first word lets the other in, unasked.
    for (a, typed, _) in DMS {
        say(&mut net, who(a), typed);
    }
    net.run_until(
        secs(60),
        "everyone let in (an unasked ENTERED) where written to",
        |net| (DMS.iter()).all(|&dm| is_in(net, who(dm.2), &label(dm.2, dm))),
    );
    let mut rng = Rng::new(seed ^ 0xd1a1);
    let mut at_restart = HashMap::new();
    for round in 0..20 {
        let mut turns: Vec<(usize, String)> = Vec::new();
        for dm in DMS {
            for me in [dm.0, dm.2] {
                for _ in 0..rng.range(0, 2) {
                    turns.push((who(me), label(me, dm)));
                }
            }
        }
        for (k, _) in PEOPLE.iter().enumerate() {
            if rng.percent(50) {
                turns.push((k, "lobby".to_owned()));
            }
        }
        shuffle(&mut rng, &mut turns);
        for (from, to) in turns {
            say(&mut net, from, &to);
            if rng.percent(30) {
                net.run_for(ms(rng.range(0, 15)));
            }
        }
        net.run_for(ms(rng.range(5, 80)));
        if restart && round == 10 {
            // In the middle of every conversation.
            net.run_until(secs(60), "every conversation under way", |net| {
                (DMS.iter()).all(|(a, _, b)| !net.log(&key(a, b)).is_empty())
            });
            at_restart = (DMS.iter())
                .map(|(a, _, b)| (key(a, b), net.log(&key(a, b)).len() as u64))
                .collect();
            net.restart_relay(Restart::Crash);
        }
    }
    settle(&mut net);
    (net, at_restart)
}

/// Checks every conversation of [`DMS`]: its two people showed it whole, each message once,
/// in its order, as stored, under the name they call it (`@` and the other's name), and the
/// same order both; nobody else was sent anything of it (no message, no ENTERED); and no
/// presence came of any (the lobby, every session's room 0, is the only room that has any).
fn check_dms_apart(net: &Net) {
    net.check_rooms();
    net.check_sent_are_stored();
    let seed = net.seed;
    let keys: HashSet<String> = DMS.iter().map(|(a, _, b)| key(a, b)).collect();
    let made: HashSet<String> = net.rooms.keys().cloned().collect();
    assert_eq!(
        made, keys,
        "seed {seed}: the logs are those of the conversations"
    );
    // The conversation each stored message is of.
    let dm_of: HashMap<Uuid, &str> = (keys.iter())
        .flat_map(|k| net.log(k).iter().map(move |m| (m.id, k.as_str())))
        .collect();
    for dm in DMS {
        let (a, _, b) = dm;
        let k = key(a, b);
        let log = net.log(&k);
        assert!(
            log.len() > 20,
            "seed {seed}: {k} has {} messages",
            log.len()
        );
        assert_eq!(net.relay.latest_in(&k), Some(log.len() as u64));
        assert_eq!(net.relay.members_in(&k), 2, "seed {seed}: both in {k}");
        let mut orders = Vec::new();
        for me in [a, b] {
            let node = &net.nodes[who(me)];
            let label = label(me, dm);
            let shown: Vec<_> = (node.shown().into_iter())
                .filter(|s| s.room == label)
                .collect();
            let seqs: Vec<u64> = shown.iter().map(|s| s.message.seq).collect();
            let want: Vec<u64> = (1..=log.len() as u64).collect();
            assert_eq!(seqs, want, "seed {seed}: {me}'s {label}");
            for s in &shown {
                assert_eq!(
                    &s.message,
                    &log[s.message.seq as usize - 1],
                    "{me}'s {label}"
                );
                assert_eq!(s.own, s.message.from == me, "{me}'s own flag in {label}");
            }
            let entered = (node.events.iter())
                .filter(|(_, e)| matches!(e, Event::Entered { room } if *room == label))
                .count();
            assert_eq!(entered, 1, "seed {seed}: {me} entered {label} once");
            orders.push(shown.iter().map(|s| s.message.id).collect::<Vec<_>>());
        }
        assert_eq!(orders[0], orders[1], "seed {seed}: one order in {k}");
    }
    for (i, node) in net.nodes.iter().enumerate() {
        let me = PEOPLE[i];
        let mine: HashSet<String> = (DMS.iter())
            .filter(|(a, _, b)| *a == me || *b == me)
            .map(|(a, _, b)| key(a, b))
            .collect();
        for s in node.shown() {
            if let Some(k) = dm_of.get(&s.message.id) {
                assert!(mine.contains(*k), "seed {seed}: {me} showed {s:?} of {k}");
                assert_eq!(relay_room(me, &s.room), *k, "seed {seed}: {me}: {s:?}");
            }
        }
        for (_, packet) in &node.received {
            match packet {
                Packet::Messages { messages, .. } | Packet::HistoryPage { messages, .. } => {
                    for m in messages {
                        if let Some(k) = dm_of.get(&m.id) {
                            assert!(mine.contains(*k), "seed {seed}: {me} was sent {m:?} of {k}");
                        }
                    }
                }
                Packet::Entered { name, .. } => {
                    let k = relay_room(me, name);
                    assert!(mine.contains(&k), "seed {seed}: {me} was let in {k}");
                }
                Packet::Presence { room, changes } => {
                    assert_eq!(*room, 0, "seed {seed}: {me} was told {changes:?} of a DM")
                }
                Packet::Names { room, names, .. } => {
                    assert_eq!(*room, 0, "seed {seed}: {me} was told {names:?} of a DM")
                }
                _ => {}
            }
        }
        for (_, event) in &node.events {
            match event {
                Event::Joined { room, .. } | Event::Left { room, .. } | Event::Who { room, .. } => {
                    assert_eq!(room, "lobby", "seed {seed}: {me} showed {event:?}")
                }
                Event::NotEntered { .. } => panic!("seed {seed}: {me} showed {event:?}"),
                _ => {}
            }
        }
        let shown = errors(net, i);
        assert!(shown.is_empty(), "seed {seed}: {me} showed {shown:?}");
    }
}

#[test]
fn private_messages_reach_their_two_only_in_one_order_under_loss() {
    for seed in seeds(0..8) {
        let (net, _) = dms_run(seed, false);
        check_dms_apart(&net);
    }
}

#[test]
fn a_relay_crash_keeps_every_conversation_and_its_order() {
    for seed in seeds(0..6) {
        let (net, at_restart) = dms_run(seed, true);
        check_dms_apart(&net);
        for (k, then) in at_restart {
            let now = net.log(&k).len() as u64;
            assert!(
                then > 0 && now > then,
                "seed {seed}: {k} had {then} at the crash, {now} after"
            );
        }
        for (i, node) in net.nodes.iter().enumerate() {
            assert!(
                node.tokens().len() >= 2,
                "seed {seed}: {} joined the new relay",
                PEOPLE[i]
            );
        }
    }
}

/// alice and bob in the lobby over a network losing `loss`% and doubling `dup`%, and alice in
/// `@bob` (bob not yet: nothing was written in it). Returns the net, alice and bob.
fn alice_opens_bob(seed: u64, loss: u32, dup: u32) -> (Net, usize, usize) {
    let cond = Conditions::jittery(ms(10), ms(20))
        .losing(loss)
        .duplicating(dup);
    let mut net = Net::under(seed, cond);
    let alice = net.join_rooms("alice", 0, &["lobby"]);
    let bob = net.join_rooms("bob", 0, &["lobby"]);
    settle(&mut net);
    net.enter(alice, "@bob", 0);
    net.run_until(secs(60), "alice in @bob", |net| is_in(net, alice, "@bob"));
    (net, alice, bob)
}

/// alice opens `@bob` while bob is here and writes him `read` messages, which he reads; bob
/// leaves; alice writes 3 more; bob comes back (history 10, or where `seen` says he left off
/// in `@alice`). Returns the net, alice and bob's new client, once all is shown.
fn offline_reader(seed: u64, read: usize, seen: Option<u64>) -> (Net, usize, usize) {
    let (mut net, alice, bob) = alice_opens_bob(seed, 10, 5);
    for k in 0..read {
        net.send_to(alice, "@bob", &format!("read {k}"));
    }
    net.send_to(alice, "lobby", "in the lobby");
    settle(&mut net);
    // An ENTERED lost is told again at the room's next heartbeat (or bob's next PING).
    net.run_until(
        secs(30),
        "bob, here, let in @alice and shown what alice wrote",
        |net| net.nodes[bob].client.delivered_in("@alice") == read as u64,
    );
    net.leave(bob);
    net.run_until(secs(60), "bob gone", |net| {
        !net.relay_has("bob") && net.nodes[bob].client.is_closed()
    });
    for k in 0..3 {
        net.send_to(alice, "@bob", &format!("unread {k}"));
    }
    net.send_to(alice, "lobby", "in the lobby again");
    settle(&mut net);
    assert_eq!(net.log("@alice+bob").len(), read + 3, "seed {seed}");
    let seen: HashMap<String, Seen> = (seen.into_iter())
        .map(|seq| {
            let at = Millis(1_795_593_600_000);
            ("@alice".to_owned(), Seen { seq, at })
        })
        .collect();
    let bob = net.join_rooms_seen("bob", 10, &["lobby"], seen);
    net.run_until(secs(60), "bob back in @alice", |net| {
        is_in(net, bob, "@alice")
    });
    settle(&mut net);
    (net, alice, bob)
}

/// What client `i` showed of `room`: each message's seq and whether as history.
fn seqs_in(net: &Net, i: usize, room: &str) -> Vec<(u64, bool)> {
    (net.nodes[i].shown().into_iter())
        .filter(|s| s.room == room)
        .map(|s| (s.message.seq, s.history))
        .collect()
}

/// Checks that bob's client `bob`, back after alice wrote to him, showed ENTERED `@alice`
/// then `@alice`'s messages `history` as history, each once, in order, as stored; then that
/// what the two write next reaches the other live.
fn check_back(net: &mut Net, alice: usize, bob: usize, history: std::ops::RangeInclusive<u64>) {
    let seed = net.seed;
    let log = net.log("@alice+bob").to_vec();
    let entered = (net.nodes[bob].events.iter())
        .position(|(_, e)| matches!(e, Event::Entered { room } if room == "@alice"))
        .expect("bob entered @alice");
    let first = (net.nodes[bob].events.iter())
        .position(|(_, e)| matches!(e, Event::Message { room, .. } if room == "@alice"));
    assert!(
        first.is_none_or(|first| entered < first),
        "seed {seed}: ENTERED @alice, then its messages"
    );
    let want: Vec<(u64, bool)> = history.clone().map(|s| (s, true)).collect();
    assert_eq!(
        seqs_in(net, bob, "@alice"),
        want,
        "seed {seed}: bob's @alice"
    );
    for s in net.nodes[bob].history() {
        if s.room == "@alice" {
            assert_eq!(s.message, log[s.message.seq as usize - 1]);
            assert!(!s.own);
        }
    }
    // The lobby's join history holds the lobby's messages only.
    let lobby: Vec<String> = (net.nodes[bob].history().into_iter())
        .filter(|s| s.room == "lobby")
        .map(|s| s.message.text)
        .collect();
    assert_eq!(lobby, ["in the lobby", "in the lobby again"], "seed {seed}");
    // And it goes on, both ways.
    net.send_to(bob, "@alice", "back");
    net.send_to(alice, "@bob", "welcome back");
    settle(net);
    let n = log.len() as u64;
    let after: Vec<(u64, bool)> = seqs_in(net, bob, "@alice").split_off(want.len());
    assert_eq!(after, [(n + 1, false), (n + 2, false)], "seed {seed}");
    let alices: Vec<(u64, bool)> = seqs_in(net, alice, "@bob");
    let all: Vec<(u64, bool)> = (1..=n + 2).map(|s| (s, false)).collect();
    assert_eq!(alices, all, "seed {seed}: alice's @bob");
    net.check_rooms();
    net.check_sent_are_stored();
    for i in [alice, bob] {
        let shown = errors(net, i);
        assert!(shown.is_empty(), "seed {seed}: {shown:?}");
    }
}

#[test]
fn a_reader_who_was_away_is_let_in_with_what_was_written_meanwhile() {
    for seed in seeds(0..8) {
        // bob read one, then 3 came while he was away: he is shown the last 10, all 4.
        let (mut net, alice, bob) = offline_reader(seed, 1, None);
        check_back(&mut net, alice, bob, 1..=4);
        // He was never written to before he went: the 3, once he is back.
        let (mut net, alice, bob) = offline_reader(seed, 0, None);
        check_back(&mut net, alice, bob, 1..=3);
    }
}

#[test]
fn a_reader_who_was_away_sees_what_came_since_he_left_off() {
    for seed in seeds(0..8) {
        let (mut net, alice, bob) = offline_reader(seed, 1, Some(1));
        let missed: Vec<u64> = (net.nodes[bob].events.iter())
            .filter_map(|(_, e)| match e {
                Event::Missed { room, count, .. } if room == "@alice" => Some(*count),
                _ => None,
            })
            .collect();
        assert_eq!(missed, [3], "seed {seed}");
        check_back(&mut net, alice, bob, 2..=4);
    }
}

/// A conversation is only with someone the relay knows: alice cannot open one with a name
/// nobody has joined under (the simulated sessions have no keys, so no name is owned).
#[test]
fn a_conversation_with_nobody_is_refused() {
    for seed in seeds(0..3) {
        let mut net = Net::under(seed, Conditions::jittery(ms(10), ms(20)).losing(10));
        let alice = net.join_rooms("alice", 0, &["lobby"]);
        settle(&mut net);
        net.enter(alice, "@carl", 0);
        net.run_until(secs(60), "refused", |net| {
            net.nodes[alice].client.followed("@carl").is_none()
        });
        let refused: Vec<&String> = (net.nodes[alice].events.iter())
            .filter_map(|(_, e)| match e {
                Event::NotEntered { room, message } if room == "@carl" => Some(message),
                _ => None,
            })
            .collect();
        assert_eq!(refused.len(), 1, "seed {seed}: {refused:?}");
        assert!(refused[0].contains("nobody called carl"), "{}", refused[0]);
        assert!(net.rooms.is_empty() && net.relay.latest_in("@alice+carl").is_none());
    }
}

/// bob closes the conversation alice opened (`/part @alice`) the moment it appears, before
/// his client has shown the relay it knows its number, over a lossy network: it stays closed
/// (the relay takes his PART, and stops telling him of it; his client's request that shows
/// it knows the number cannot enter him again), and opens again, with the message, when alice
/// writes again.
#[test]
fn a_conversation_closed_at_once_stays_closed_until_someone_writes_in_it() {
    for seed in seeds(0..12) {
        let (mut net, alice, bob) = alice_opens_bob(seed, 20, 10);
        net.send_to(alice, "@bob", "are you there?");
        net.run_until(secs(60), "bob let in", |net| is_in(net, bob, "@alice"));
        net.part(bob, "@alice");
        let key = relay_room("alice", "@bob");
        net.run_until(secs(60), "bob out of @alice, at the relay too", |net| {
            !(net.nodes[bob].client.rooms().iter()).any(|r| r.name == "@alice")
                && net.relay.members_in(&key) == 1
        });
        let told = |net: &Net| {
            (net.nodes[bob].received.iter())
                .filter(|(_, p)| matches!(p, Packet::Entered { name, .. } if name == "@alice"))
                .count()
        };
        // (Copies still on their way may come.)
        net.run_for(secs(1));
        let before = told(&net);
        net.run_for(secs(30));
        assert_eq!(told(&net), before, "seed {seed}: bob is told no more of it");
        assert!(
            !(net.nodes[bob].client.rooms().iter()).any(|r| r.name == "@alice"),
            "seed {seed}: it stays closed"
        );
        net.send_to(alice, "@bob", "still there?");
        net.run_until(secs(60), "bob shown alice's next message", |net| {
            (net.nodes[bob].shown().iter()).any(|s| s.message.text == "still there?")
        });
        assert!(is_in(&net, bob, "@alice"), "seed {seed}: opened again");
    }
}

/// A private conversation's ENTERED that was lost is told again at the next tick, even while
/// the conversation is busy (its heartbeat waits for it to be quiet): till then the client
/// drops the messages of a number it does not know.
#[test]
fn a_lost_entered_is_told_again_while_the_conversation_is_busy() {
    for seed in seeds(0..4) {
        let (mut net, alice, bob) = alice_opens_bob(seed, 0, 0);
        // bob hears nothing of the first message: neither his ENTERED nor its fan-out.
        net.nodes[bob].deaf = true;
        net.send_to(alice, "@bob", "first");
        net.run_for(ms(50));
        net.nodes[bob].deaf = false;
        // bob just spoke: his next keepalive (which would tell him too) is seconds away.
        net.send_to(bob, "lobby", "here");
        let busy = net.now;
        for k in 0..10 {
            if is_in(&net, bob, "@alice") {
                break;
            }
            net.send_to(alice, "@bob", &format!("busy {k}"));
            net.run_for(ms(200));
        }
        let pings = (net.nodes[bob].reached_relay.iter())
            .filter(|(at, p)| *at >= busy && matches!(p, Packet::Ping { .. }))
            .count();
        assert_eq!(pings, 0, "seed {seed}: bob pinged, the test proves nothing");
        assert!(
            is_in(&net, bob, "@alice"),
            "seed {seed}: bob not let in within 2 s of a busy conversation"
        );
    }
}
