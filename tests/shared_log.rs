//! Several relays on one shared log (`Config::shared`, as `urc serve --store nats://` runs them), datagram by datagram: a room's seqs are the store's, every relay passes a room's messages on to its members in that one order (a message waits for those stored before it through another relay), a retransmission to another relay is stored once, and history is the shared log's.

#[path = "hostile/driver.rs"]
mod driver;

use std::net::SocketAddr;

use driver::{Driver, Shared};
use urc::proto::message::Message;
use urc::proto::secure::keys::{Keypair, PublicKey};
use urc::proto::wire::{Acked, ErrorCode, Packet, Token};
use urc::relay::Stored;
use urc::relay::{Config, HANDOVER_GRACE};
use uuid::Uuid;

fn addr(k: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, k], 4000))
}

/// The seqs of the lobby's messages the relay sent `to` (live, and in answers), in the order
/// they were sent.
fn seen(d: &Driver, to: SocketAddr) -> Vec<u64> {
    (d.sent_to(to).into_iter())
        .flat_map(|p| match p {
            Packet::Messages { messages, .. } => messages.iter().map(|m| m.seq).collect(),
            Packet::HistoryPage { messages, .. } => messages.iter().map(|m| m.seq).collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// The acknowledgements the relay sent `to`.
fn acks(d: &Driver, to: SocketAddr) -> Vec<Acked> {
    (d.sent_to(to).into_iter())
        .flat_map(|p| match p {
            Packet::Ack { acks } => acks.clone(),
            _ => Vec::new(),
        })
        .collect()
}

fn say(d: &mut Driver, from: SocketAddr, token: Token, csn: u64, id: Uuid, text: &str) {
    d.packet(from, &Packet::send_one(token, csn, csn, id, text));
}

fn two_relays() -> (Shared, Driver, Driver) {
    let store = Shared::default();
    let a = Driver::sharing(Config::default(), &store);
    let b = Driver::sharing(Config::default(), &store);
    (store, a, b)
}

#[test]
fn members_of_two_relays_see_one_order_and_a_message_waits_for_those_before_it() {
    let (store, mut a, mut b) = two_relays();
    let (alice, carol, bob, dave) = (addr(1), addr(3), addr(2), addr(4));
    let ta = a.member(alice, "alice");
    a.member(carol, "carol");
    let tb = b.member(bob, "bob");
    b.member(dave, "dave");

    // alice's line is seq 1 on A; bob's, sent to B before B follows the store, is seq 2.
    say(&mut a, alice, ta, 1, Uuid::new_v4(), "from a");
    say(&mut b, bob, tb, 1, Uuid::new_v4(), "from b");
    assert_eq!(
        acks(&a, alice).iter().map(|k| k.seq).collect::<Vec<_>>(),
        [1]
    );
    assert_eq!(
        acks(&b, bob).iter().map(|k| k.seq).collect::<Vec<_>>(),
        [2],
        "acknowledged as soon as it is stored, with the store's seq"
    );
    assert_eq!(
        seen(&a, carol),
        [1],
        "A's own line follows the room's latest: out at once"
    );
    assert_eq!(
        seen(&b, dave),
        Vec::<u64>::new(),
        "bob's seq 2 is not passed on before seq 1, which B has not followed yet"
    );

    b.follow();
    a.follow();
    assert_eq!(seen(&b, dave), [1, 2]);
    assert_eq!(seen(&b, bob), [1], "a sender is not sent its own line");
    assert_eq!(seen(&a, carol), [1, 2]);
    assert_eq!(seen(&a, alice), [2]);
    // Following again brings nothing twice.
    a.follow();
    b.follow();
    assert_eq!(seen(&b, dave), [1, 2]);
    assert_eq!(seen(&a, carol), [1, 2]);
    let texts: Vec<String> = store.borrow()["lobby"]
        .iter()
        .map(|m| m.text.clone())
        .collect();
    assert_eq!(texts, ["from a", "from b"]);
    assert_eq!(a.relay.latest(), 2);
    assert_eq!(b.relay.latest(), 2);
}

#[test]
fn a_retransmission_to_another_relay_is_stored_once_with_its_first_seq_and_time() {
    let (store, mut a, mut b) = two_relays();
    let (alice, bob) = (addr(1), addr(2));
    let ta = a.member(alice, "alice");
    b.member(bob, "bob");
    let id = Uuid::new_v4();
    say(&mut a, alice, ta, 1, id, "hello");
    let first = acks(&a, alice)[0];
    a.advance(std::time::Duration::from_secs(2));

    // alice's client moved to B (its ACK lost, A gone) and sends the line again, before B
    // followed the store: the store knows the id.
    let moved = addr(11);
    let tm = b.member(moved, "alice");
    say(&mut b, moved, tm, 1, id, "hello");
    let again = acks(&b, moved);
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].seq, again[0].time), (first.seq, first.time));
    assert_eq!(store.borrow()["lobby"].len(), 1, "stored once");

    // Once B followed the store, a third copy is recognised by B itself.
    b.follow();
    let third = addr(12);
    let tt = b.member(third, "alice2");
    say(&mut b, third, tt, 1, id, "hello");
    assert_eq!(acks(&b, third)[0].seq, first.seq);
    assert_eq!(store.borrow()["lobby"].len(), 1);
    assert_eq!(seen(&b, bob), [1], "passed on once");
}

#[test]
fn history_and_the_heartbeat_are_the_shared_logs() {
    let store = Shared::default();
    // A cache of two messages: older history is read from the shared log.
    let small = Config {
        cache: 2,
        ..Config::default()
    };
    let mut a = Driver::sharing(small.clone(), &store);
    let mut b = Driver::sharing(small, &store);
    let alice = addr(1);
    let ta = a.member(alice, "alice");
    for csn in 1..=5 {
        say(
            &mut a,
            alice,
            ta,
            csn,
            Uuid::new_v4(),
            &format!("line {csn}"),
        );
    }
    let bob = addr(2);
    let tb = b.member(bob, "bob");
    b.follow();
    b.packet(
        bob,
        &Packet::History {
            token: tb,
            room: 0,
            req: 7,
            from: 1,
            count: 5,
        },
    );
    let pages: Vec<&Message> = (b.sent_to(bob).into_iter())
        .flat_map(|p| match p {
            Packet::HistoryPage {
                req: 7, messages, ..
            } => messages.iter().collect(),
            _ => Vec::new(),
        })
        .collect();
    let seqs: Vec<u64> = pages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(pages[0].text, "line 1");
    // B's heartbeat for the lobby tells bob the latest seq, A's.
    b.advance(urc::relay::QUIET + std::time::Duration::from_millis(10));
    let latest = (b.sent_to(bob).into_iter()).find_map(|p| match p {
        Packet::Pong { rooms, .. } => rooms.first().map(|r| r.latest),
        _ => None,
    });
    assert_eq!(latest, Some(5));
}

/// A JOIN of `name` from `from`, sealed by `key`'s holder (behind the secure channel).
fn join_as(d: &mut Driver, from: SocketAddr, name: &str, key: PublicKey) -> Vec<Packet> {
    let before = d.sent_to(from).len();
    let join = Packet::Join {
        room: "lobby".into(),
        name: name.to_owned(),
        history: 0,
        instance: Uuid::new_v4(),
    };
    let (now, wall) = (d.now, d.wall());
    d.relay
        .handle_as(now, wall, from, &join.encode(), Some(key));
    d.advance(std::time::Duration::ZERO);
    d.sent_to(from)[before..]
        .iter()
        .map(|p| (*p).clone())
        .collect()
}

#[test]
fn a_name_another_relay_bound_first_is_its_owners_here_too() {
    let (_, _a, mut b) = two_relays();
    let (ours, theirs) = (Keypair::generate().public(), Keypair::generate().public());
    let here = addr(2);
    let welcomed = join_as(&mut b, here, "alice", ours);
    assert!(welcomed.iter().any(|p| matches!(p, Packet::Welcome { .. })));
    assert_eq!(b.relay.owners().get("alice").map(|(_, k)| k), Some(ours));

    // The cluster's bucket says another relay bound alice to another key first.
    b.relay.owner_learnt("alice", theirs);
    assert_eq!(b.relay.owners().get("alice").map(|(_, k)| k), Some(theirs));
    let refused = join_as(&mut b, addr(3), "Alice", ours);
    let said = refused.iter().find_map(|p| match p {
        Packet::Error {
            code: ErrorCode::NameTaken,
            message,
            ..
        } => Some(message.clone()),
        _ => None,
    });
    assert_eq!(
        said.as_deref(),
        Some(
            "the name Alice looks like alice, which belongs to another key: choose another with --name"
        )
    );
    assert!(
        join_as(&mut b, addr(4), "alice", theirs)
            .iter()
            .any(|p| matches!(p, Packet::Welcome { .. })),
        "the owner's key is welcomed: the session under another key was ended"
    );
}

/// The presence changes the relay sent `to`: (joined, name, message) of each.
fn presence(d: &Driver, to: SocketAddr) -> Vec<(bool, String, Option<String>)> {
    (d.sent_to(to).into_iter())
        .flat_map(|p| match p {
            Packet::Presence { changes, .. } => (changes.iter())
                .map(|c| (c.joined, c.name.clone(), c.message.clone()))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// The names of the answer to the WHO `req` the relay sent `to`, and its last page's total.
fn who(d: &mut Driver, to: SocketAddr, token: Token, req: u32) -> (Vec<String>, u16) {
    d.packet(
        to,
        &Packet::Who {
            token,
            req,
            room: 0,
        },
    );
    let mut names = Vec::new();
    let mut total = 0;
    for p in d.sent_to(to) {
        if let Packet::Names {
            req: r,
            names: n,
            total: t,
            ..
        } = p
            && *r == req
        {
            names.extend(n.iter().cloned());
            total = *t;
        }
    }
    (names, total)
}

/// The members a PONG to `to` says the lobby has, the latest first.
fn members(d: &mut Driver, to: SocketAddr, token: Token) -> Option<u32> {
    d.packet(to, &Packet::Ping { token });
    (d.sent_to(to).into_iter().rev()).find_map(|p| match p {
        Packet::Pong { rooms } => rooms.first().map(|r| r.members),
        _ => None,
    })
}

#[test]
fn members_of_every_relay_are_in_who_pong_and_presence() {
    let (_, mut a, mut b) = two_relays();
    let (alice, carol, bob) = (addr(1), addr(3), addr(2));
    a.member(alice, "alice");
    let tc = a.member(carol, "carol");
    let tb = b.member(bob, "bob");
    a.tell_presence(&mut b);
    b.tell_presence(&mut a);
    assert_eq!(
        presence(&b, bob),
        [(true, "alice".into(), None), (true, "carol".into(), None)],
        "bob is told of A's members"
    );
    assert!(presence(&a, carol).contains(&(true, "bob".into(), None)));
    assert_eq!(
        who(&mut b, bob, tb, 7),
        (vec!["alice".into(), "bob".into(), "carol".into()], 3),
        "the names of both relays, in order, once"
    );
    assert_eq!(members(&mut b, bob, tb), Some(3));
    assert_eq!(members(&mut a, carol, tc), Some(3));

    // carol says goodbye on A: bob is told, with her words.
    a.packet(
        carol,
        &Packet::Leave {
            token: tc,
            message: "bye".into(),
        },
    );
    a.tell_presence(&mut b);
    assert_eq!(
        presence(&b, bob).last(),
        Some(&(false, "carol".into(), Some("bye".into())))
    );
    assert_eq!(members(&mut b, bob, tb), Some(2));
    assert_eq!(who(&mut b, bob, tb, 8).0, ["alice", "bob"]);
}

#[test]
fn a_session_that_moved_to_another_relay_ends_here_untold_and_its_other_rooms_wait_for_it() {
    let (_, mut a, mut b) = two_relays();
    let (alice, dave, alice_at_b) = (addr(1), addr(4), addr(5));
    let ta = a.member(alice, "alice");
    let td = a.member(dave, "dave");
    for (who, token) in [(alice, ta), (dave, td)] {
        a.packet(
            who,
            &Packet::Enter {
                token,
                room: "dev".into(),
                history: 0,
            },
        );
    }
    a.tell_presence(&mut b);
    let told = presence(&a, dave).len();

    // alice's client moves to B, which takes her into the lobby only.
    let tb = b.member(alice_at_b, "alice");
    b.tell_presence(&mut a);
    assert!(
        !a.relay.clients().contains_key(&alice),
        "her session on A ended"
    );
    assert_eq!(presence(&a, dave)[told..], [], "dave was told nothing");
    let gone = |room: &str| {
        let change = urc::proto::wire::Change {
            joined: false,
            reason: urc::proto::wire::LeaveReason::Quit,
            name: "alice".into(),
            message: None,
        };
        vec![(room.to_owned(), change)]
    };
    assert_eq!(
        a.relay.take_presence(),
        gone("lobby"),
        "A lets its entry of her in the lobby go (written only if it is still A's)"
    );
    assert_eq!(
        members(&mut a, dave, td),
        Some(2),
        "alice is still in, through B"
    );
    assert_eq!(who(&mut b, alice_at_b, tb, 1).0, ["alice", "dave"]);

    // She does not enter #dev on B within the grace: dave is told she left it, only it.
    a.advance(HANDOVER_GRACE + std::time::Duration::from_secs(1));
    assert_eq!(presence(&a, dave)[told..], [(false, "alice".into(), None)]);
    assert_eq!(
        a.relay.take_presence(),
        gone("dev"),
        "and its entry of her in #dev, for the other relays"
    );
    assert_eq!(
        members(&mut a, dave, td),
        Some(2),
        "the lobby still has her"
    );
}

#[test]
fn a_room_the_store_failed_is_refused_alone_and_its_resend_is_stored_after_the_others() {
    let (_, mut a, _) = two_relays();
    let alice = addr(1);
    let token = a.member(alice, "alice");
    a.packet(
        alice,
        &Packet::Enter {
            token,
            room: "dev".into(),
            history: 0,
        },
    );
    let (lobby_id, dev_id) = (Uuid::new_v4(), Uuid::new_v4());
    let sent = |csn, room, id, text: &str| urc::proto::wire::Sent {
        csn,
        room,
        id,
        text: text.to_owned(),
    };
    let send = Packet::Send {
        token,
        base: 1,
        messages: vec![
            sent(1, 1, dev_id, "to dev"),
            sent(2, 0, lobby_id, "to the lobby"),
        ],
    };
    // The turn by hand: the store stores the lobby's, and fails dev's.
    let (now, wall) = (a.now, a.wall());
    a.relay.handle(now, wall, alice, &send.encode());
    a.relay.end_turn(now, wall);
    let rooms: Vec<String> = a.relay.appends().map(|(room, _)| room.to_owned()).collect();
    assert_eq!(rooms, ["dev", "lobby"]);
    let stored = Stored { seq: 1, time: wall };
    a.relay
        .commit_some(&[None, Some(stored)], "its store failed");
    a.follow();
    let acked: Vec<Uuid> = acks(&a, alice).iter().map(|k| k.id).collect();
    assert_eq!(acked, [lobby_id], "the lobby's is stored and acknowledged");
    let refused = (a.sent_to(alice).into_iter()).find_map(|p| match p {
        Packet::Error {
            code: ErrorCode::Storage,
            id,
            message,
        } => Some((*id, message.clone())),
        _ => None,
    });
    assert_eq!(
        refused,
        Some((
            dev_id,
            "the relay could not store the message (its store failed): it will be resent".into()
        ))
    );
    // Its client resends it (base 1: csn 1 unacknowledged): taken again, and stored.
    let resend = Packet::Send {
        token,
        base: 1,
        messages: vec![sent(1, 1, dev_id, "to dev")],
    };
    a.packet(alice, &resend);
    let acked: Vec<(Uuid, u64)> = acks(&a, alice).iter().map(|k| (k.id, k.seq)).collect();
    assert_eq!(acked, [(lobby_id, 1), (dev_id, 1)]);
}

#[test]
fn turns_on_their_way_to_the_store_at_once_are_acknowledged_as_answered_and_passed_on_in_order() {
    let (_, mut a, _) = two_relays();
    let (alice, carol) = (addr(1), addr(3));
    let token = a.member(alice, "alice");
    a.member(carol, "carol");
    // Two turns handed off before the store answers either.
    let mut batches = Vec::new();
    for (csn, text) in [(1, "one"), (2, "two")] {
        let (now, wall) = (a.now, a.wall());
        let send = Packet::send_one(token, csn, csn, Uuid::new_v4(), text);
        a.relay.handle(now, wall, alice, &send.encode());
        a.relay.end_turn(now, wall);
        batches.push((a.relay.hand_off(), wall));
    }
    assert_eq!(a.relay.in_flight(), 2);
    // The second answered first: acknowledged at once, passed on once the first is.
    let (second, wall) = batches[1];
    a.relay
        .commit_batch(second, &[Some(Stored { seq: 2, time: wall })], "");
    a.follow();
    assert_eq!(
        acks(&a, alice).iter().map(|k| k.seq).collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(seen(&a, carol), Vec::<u64>::new(), "seq 2 waits for seq 1");
    let (first, wall) = batches[0];
    a.relay
        .commit_batch(first, &[Some(Stored { seq: 1, time: wall })], "");
    a.follow();
    assert_eq!(
        acks(&a, alice).iter().map(|k| k.seq).collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(seen(&a, carol), [1, 2]);
    assert_eq!(a.relay.in_flight(), 0);
}

#[test]
fn a_message_the_stream_brought_back_is_acknowledged_even_if_the_stores_answer_came_too_late() {
    let (_, mut a, _) = two_relays();
    let (alice, carol) = (addr(1), addr(3));
    let token = a.member(alice, "alice");
    a.member(carol, "carol");
    let id = Uuid::new_v4();
    let (now, wall) = (a.now, a.wall());
    a.relay.handle(
        now,
        wall,
        alice,
        &Packet::send_one(token, 1, 1, id, "one").encode(),
    );
    a.relay.end_turn(now, wall);
    let batch = a.relay.hand_off();
    let stored: Vec<Message> = a.relay.appends().map(|(_, m)| m.clone()).collect();
    assert!(stored.is_empty(), "handed off");
    // The stream's copy comes first; then the answer says it was not acknowledged in time.
    let copy = Message {
        seq: 1,
        id,
        from: "alice".into(),
        text: "one".into(),
        time: wall,
    };
    a.relay.followed("lobby", vec![copy]);
    a.relay
        .commit_batch(batch, &[None], "NATS did not answer in time");
    a.follow();
    assert_eq!(seen(&a, carol), [1]);
    assert_eq!(
        acks(&a, alice)
            .iter()
            .map(|k| (k.id, k.seq))
            .collect::<Vec<_>>(),
        [(id, 1)],
        "stored (the stream holds it): acknowledged, not refused"
    );
    assert!(
        !(a.sent_to(alice).iter()).any(|p| matches!(p, Packet::Error { .. })),
        "no ERROR Storage"
    );
}
