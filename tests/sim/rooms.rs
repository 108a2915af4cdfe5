//! Rooms: each room's order is one and gap-free for all its members under loss, nothing of a
//! room reaches anyone outside it (its messages, who is in it), entering a room gives its own
//! history, parting it ends what comes of it, and a relay restart keeps every room.

use std::collections::HashSet;

use urc::client::Event;
use urc::proto::wire::Packet;
use uuid::Uuid;

use crate::chat::settle;
use crate::net::{Conditions, Net, Restart, Rng, ms, secs, seeds};

/// Who is in which room: ann and cy are in the lobby and one more room each; bo is in ops
/// alone, di in hr alone.
const PEOPLE: [(&str, &[&str]); 5] = [
    ("ann", &["lobby", "ops"]),
    ("bo", &["ops"]),
    ("cy", &["lobby", "hr"]),
    ("di", &["hr"]),
    ("ed", &["lobby"]),
];

/// Everyone of [`PEOPLE`] joins and enters their rooms over a network losing 20% (and
/// duplicating, reordering), then each says 20 things in each of their rooms; the relay
/// crashes and starts again halfway when `restart`. Runs until all is shown.
fn rooms_run(seed: u64, restart: bool) -> (Net, Vec<usize>) {
    let cond = Conditions::jittery(ms(10), ms(20))
        .losing(20)
        .duplicating(5);
    let mut net = Net::under(seed, cond);
    let clients: Vec<usize> = (PEOPLE.iter())
        .map(|(name, rooms)| net.join_rooms(name, 0, rooms))
        .collect();
    net.run_until(secs(120), "everyone in their rooms", |net| {
        (net.nodes.iter()).all(|n| n.client.rooms().iter().all(|r| r.entered))
    });
    let mut rng = Rng::new(seed ^ 0x2005);
    for round in 0..20 {
        for (k, (name, rooms)) in PEOPLE.iter().enumerate() {
            for room in rooms.iter() {
                net.send_to(clients[k], room, &format!("{name} in {room}, {round}"));
            }
        }
        net.run_for(ms(rng.range(5, 80)));
        if restart && round == 10 {
            net.restart_relay(Restart::Crash);
        }
    }
    settle(&mut net);
    (net, clients)
}

/// Checks that each client showed each of its rooms whole, in the room's order, and received
/// nothing of a room it is not in: no message, no name of someone it shares no room with.
fn check_rooms_apart(net: &Net, clients: &[usize]) {
    net.check_rooms();
    net.check_sent_are_stored();
    for (k, (name, rooms)) in PEOPLE.iter().enumerate() {
        let i = clients[k];
        for room in rooms.iter() {
            net.check_room(i, room);
        }
        let mine: HashSet<Uuid> = (rooms.iter())
            .flat_map(|r| net.log(r).iter().map(|m| m.id))
            .collect();
        // Whom this client may hear of: those it shares a room with.
        let known: HashSet<&str> = (PEOPLE.iter())
            .filter(|(_, theirs)| theirs.iter().any(|r| rooms.contains(r)))
            .map(|(n, _)| *n)
            .collect();
        for (_, packet) in &net.nodes[i].received {
            let (messages, names): (Vec<_>, Vec<&str>) = match packet {
                Packet::Messages { messages, .. } | Packet::HistoryPage { messages, .. } => {
                    (messages.iter().collect(), Vec::new())
                }
                Packet::Presence { changes, .. } => (
                    Vec::new(),
                    changes.iter().map(|c| c.name.as_str()).collect(),
                ),
                Packet::Names { names, .. } => {
                    (Vec::new(), names.iter().map(String::as_str).collect())
                }
                _ => continue,
            };
            for m in messages {
                assert!(
                    mine.contains(&m.id),
                    "{name} was sent {m:?} of another room"
                );
                assert!(
                    known.contains(m.from.as_str()),
                    "{name} heard of {}",
                    m.from
                );
            }
            for n in names {
                assert!(
                    known.contains(n),
                    "{name} was told of {n}, in no room of theirs"
                );
            }
        }
        for (_, event) in &net.nodes[i].events {
            let room = match event {
                Event::Message { room, .. }
                | Event::Joined { room, .. }
                | Event::Left { room, .. }
                | Event::Who { room, .. } => room,
                _ => continue,
            };
            assert!(rooms.contains(&room.as_str()), "{name} showed {event:?}");
        }
    }
}

#[test]
fn each_rooms_order_is_whole_for_its_members_and_nothing_leaks_under_loss() {
    for seed in seeds(0..8) {
        let (net, clients) = rooms_run(seed, false);
        check_rooms_apart(&net, &clients);
        // Each room holds what its members said in it, and nothing else.
        assert_eq!(net.log("lobby").len(), 3 * 20);
        assert_eq!(net.log("ops").len(), 2 * 20);
        assert_eq!(net.log("hr").len(), 2 * 20);
    }
}

#[test]
fn a_relay_restart_keeps_every_room() {
    for seed in seeds(0..6) {
        let (net, clients) = rooms_run(seed, true);
        check_rooms_apart(&net, &clients);
        for (room, n) in [("lobby", 60), ("ops", 40), ("hr", 40)] {
            assert_eq!(net.log(room).len(), n, "{room} after the restart");
            assert_eq!(net.relay.latest_in(room), Some(n as u64));
        }
    }
}

/// A late comer enters ops with 5 messages of history: the last 5 of ops, not of the lobby
/// it is in too; once it parts ops, nothing more of ops reaches it.
#[test]
fn entering_a_room_gives_its_history_and_parting_ends_it() {
    for seed in seeds(0..6) {
        let cond = Conditions::jittery(ms(10), ms(20)).losing(10);
        let mut net = Net::under(seed, cond);
        let ann = net.join_rooms("ann", 0, &["lobby", "ops"]);
        net.run_until(secs(60), "ann in", |net| {
            net.nodes[ann].client.rooms().iter().all(|r| r.entered)
        });
        for k in 0..12 {
            net.send_to(ann, "ops", &format!("ops {k}"));
            net.send_to(ann, "lobby", &format!("lobby {k}"));
        }
        settle(&mut net);
        let fay = net.join_rooms("fay", 0, &["lobby"]);
        settle(&mut net);
        net.enter(fay, "ops", 5);
        settle(&mut net);
        let history: Vec<_> = (net.nodes[fay].history().into_iter())
            .map(|s| (s.room, s.message.text))
            .collect();
        let want: Vec<_> = (7..12)
            .map(|k| ("ops".to_owned(), format!("ops {k}")))
            .collect();
        assert_eq!(history, want, "seed {seed}");
        net.part(fay, "ops");
        net.run_until(secs(60), "fay out of ops", |net| {
            net.nodes[fay]
                .client
                .rooms()
                .iter()
                .all(|r| r.name != "ops")
                && (net.nodes[fay].received.iter()).any(|(_, p)| matches!(p, Packet::Parted { .. }))
        });
        let parted = net.now;
        for k in 12..20 {
            net.send_to(ann, "ops", &format!("ops {k}"));
        }
        settle(&mut net);
        let after: Vec<_> = (net.nodes[fay].received.iter())
            .filter(|(at, _)| *at > parted)
            .filter(|(_, p)| matches!(p, Packet::Messages { .. } | Packet::HistoryPage { .. }))
            .collect();
        assert!(after.is_empty(), "seed {seed}: fay got {after:?}");
        assert!(
            (net.nodes[fay].events.iter())
                .any(|(_, e)| matches!(e, Event::Parted { room } if room == "ops"))
        );
        net.check_rooms();
        net.check_sent_are_stored();
    }
}
