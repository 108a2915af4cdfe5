//! What one turn of the relay packs together: the acknowledgements of a sender's messages, the
//! presence changes of a join storm or a mass timeout, the fan-out of a batch; and the
//! client's SENDs carrying several messages. Driven datagram by datagram (`hostile/driver.rs`)
//! or over the simulated network (`sim/net/`).

#[path = "hostile/driver.rs"]
mod driver;
// Shared with the sim tests, which use all of it; this file uses a part.
#[allow(dead_code, unused_imports)]
#[path = "sim/net/mod.rs"]
mod net;

use std::net::SocketAddr;
use std::time::Duration;

use driver::Driver;
use net::{Conditions, Net, ms, secs};
use urc::proto::wire::{
    ACK_HEADER, ACKED_LEN, Change, LeaveReason, MAX_DATAGRAM, PRESENCE_HEADER, Packet, SEND_HEADER,
    Sent, Token, change_len, pack, sent_len,
};
use urc::relay::Config;
use uuid::Uuid;

fn addr(n: u32) -> SocketAddr {
    SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], 4000))
}

/// A relay whose limits stay out of the way of a few hundred clients and messages.
fn roomy() -> Config {
    Config {
        rate: 10_000.0,
        burst: 10_000.0,
        max_per_ip: 1000,
        ..Config::default()
    }
}

/// The SEND datagrams carrying `texts` as csns `first..`, packed as a client packs them.
fn sends(token: Token, first: u64, texts: &[String]) -> (Vec<Uuid>, Vec<Vec<u8>>) {
    let sent: Vec<Sent> = texts
        .iter()
        .enumerate()
        .map(|(k, text)| Sent {
            room: 0,
            csn: first + k as u64,
            id: Uuid::new_v4(),
            text: text.clone(),
        })
        .collect();
    let datagrams = pack(&sent, SEND_HEADER, sent_len)
        .into_iter()
        .map(|run| {
            Packet::Send {
                token,
                base: first,
                messages: run.to_vec(),
            }
            .encode()
        })
        .collect();
    (sent.iter().map(|s| s.id).collect(), datagrams)
}

fn presence_datagrams(d: &Driver, to: SocketAddr, since: usize) -> Vec<Vec<String>> {
    d.sent[since..]
        .iter()
        .filter_map(|(a, p)| match p {
            Packet::Presence { room: _, changes } if *a == to => Some(
                changes
                    .iter()
                    .map(|c| format!("{}{}", if c.joined { '+' } else { '-' }, c.name))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[test]
fn a_turn_of_messages_is_acknowledged_in_as_few_datagrams_as_hold_the_acks() {
    let mut d = Driver::new(roomy());
    let (alice, bob) = (addr(1), addr(2));
    let token = d.member(alice, "alice");
    d.member(bob, "bob");
    let texts: Vec<String> = (0..100).map(|k| format!("message {k:03}")).collect();
    let (ids, datagrams) = sends(token, 1, &texts);
    assert!(
        datagrams.len() < texts.len() / 10,
        "{} SENDs",
        datagrams.len()
    );
    let before = d.sent.len();
    d.turn(
        &datagrams
            .into_iter()
            .map(|b| (alice, b))
            .collect::<Vec<_>>(),
    );

    let acks: Vec<&Packet> = d.sent[before..]
        .iter()
        .filter(|(to, _)| *to == alice)
        .map(|(_, p)| p)
        .collect();
    let per_datagram = (MAX_DATAGRAM - ACK_HEADER) / ACKED_LEN;
    assert_eq!(acks.len(), texts.len().div_ceil(per_datagram), "{acks:?}");
    let acked: Vec<(Uuid, u64, u64)> = acks
        .iter()
        .flat_map(|p| match p {
            Packet::Ack { acks } => acks
                .iter()
                .map(|a| (a.id, a.csn, a.seq))
                .collect::<Vec<_>>(),
            other => panic!("alice got {other:?}"),
        })
        .collect();
    let expected: Vec<(Uuid, u64, u64)> = (ids.iter().enumerate())
        .map(|(k, id)| (*id, k as u64 + 1, k as u64 + 1))
        .collect();
    assert_eq!(acked, expected, "every message acknowledged once, in order");

    // Bob gets the batch packed too, in order, all of it.
    let fanned: Vec<Vec<u64>> = d.sent[before..]
        .iter()
        .filter(|(to, _)| *to == bob)
        .map(|(_, p)| match p {
            Packet::Messages { room: _, messages } => messages.iter().map(|m| m.seq).collect(),
            other => panic!("bob got {other:?}"),
        })
        .collect();
    assert!(fanned.len() <= 100 / 15, "{} datagrams", fanned.len());
    assert_eq!(fanned.concat(), (1..=100).collect::<Vec<u64>>());
    assert_eq!(d.log.len(), 100);
}

#[test]
fn retransmissions_of_durable_messages_are_acknowledged_together() {
    let mut d = Driver::new(roomy());
    let alice = addr(1);
    let token = d.member(alice, "alice");
    let texts: Vec<String> = (0..10).map(|k| format!("again {k}")).collect();
    let (ids, datagrams) = sends(token, 1, &texts);
    d.turn(&[(alice, datagrams[0].clone())]);
    // The acknowledgement was lost: all ten come again, one SEND each, in one turn.
    let again: Vec<(SocketAddr, Vec<u8>)> = (0..10)
        .map(|k| {
            let packet = Packet::send_one(token, 1, k + 1, ids[k as usize], &texts[k as usize]);
            (alice, packet.encode())
        })
        .collect();
    let before = d.sent.len();
    assert_eq!(d.turn(&again), 1, "one ACK for the ten");
    match &d.sent[before].1 {
        Packet::Ack { acks } => {
            assert_eq!(acks.iter().map(|a| a.id).collect::<Vec<_>>(), ids);
            assert!(acks.iter().zip(1..).all(|(a, seq)| a.seq == seq));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.log.len(), 10, "stored once");
}

#[test]
fn a_join_storm_costs_each_member_one_presence_datagram_a_turn() {
    let mut d = Driver::new(roomy());
    let members: Vec<SocketAddr> = (1..=5).map(addr).collect();
    for (k, a) in members.iter().enumerate() {
        d.member(*a, &format!("m{k}"));
    }
    // 200 clients ask to join (their handshakes done); their JOINs arrive in one turn.
    let joiners: Vec<SocketAddr> = (100..300).map(addr).collect();
    let join = |k: usize| {
        Packet::Join {
            room: "lobby".into(),
            name: format!("j{k}"),
            history: 0,
            instance: Uuid::from_u128(k as u128 + 1),
        }
        .encode()
    };
    let storm: Vec<(SocketAddr, Vec<u8>)> = (joiners.iter().enumerate())
        .map(|(k, a)| (*a, join(k)))
        .collect();
    let before = d.sent.len();
    d.turn(&storm);

    let everyone: Vec<String> = (0..200).map(|k| format!("+j{k}")).collect();
    let changes: Vec<Change> = (0..200)
        .map(|k| Change {
            joined: true,
            reason: LeaveReason::Quit,
            name: format!("j{k}"),
            message: None,
        })
        .collect();
    let datagrams = pack(&changes, PRESENCE_HEADER, change_len).len();
    assert_eq!(datagrams, 2, "200 short names fill two datagrams");
    for m in &members {
        let got = presence_datagrams(&d, *m, before);
        assert_eq!(got.len(), datagrams);
        assert_eq!(got.concat(), everyone, "every arrival, in order");
    }
    // A joiner hears of those who joined after it, not before, and not of itself.
    for (k, j) in joiners.iter().enumerate() {
        assert_eq!(
            presence_datagrams(&d, *j, before).concat(),
            everyone[k + 1..],
            "joiner {k}"
        );
    }
    let presence_sent = d.sent[before..]
        .iter()
        .filter(|(_, p)| matches!(p, Packet::Presence { .. }))
        .count();
    // Before: one datagram per member per arrival, 5 * 200 + 199 * 200 / 2 = 20,900.
    assert!(
        presence_sent <= 5 * 2 + 200 * 2,
        "{presence_sent} datagrams"
    );

    // They all go silent and time out in one tick: the members hear it in one datagram each.
    let before = d.sent.len();
    for _ in 0..31 {
        d.advance(Duration::from_secs(1));
        for m in &members {
            let token = member_token(&d, *m);
            d.packet(*m, &Packet::Ping { token });
        }
    }
    let mut left: Vec<String> = (0..200).map(|k| format!("-j{k}")).collect();
    left.sort();
    for m in &members {
        let got = presence_datagrams(&d, *m, before);
        assert!(got.len() <= 2, "{} datagrams", got.len());
        let mut got = got.concat();
        got.sort();
        assert_eq!(got, left);
    }
}

/// The token the relay welcomed `a` with.
fn member_token(d: &Driver, a: SocketAddr) -> Token {
    d.sent
        .iter()
        .find_map(|(to, p)| match p {
            Packet::Welcome { token, .. } if *to == a => Some(*token),
            _ => None,
        })
        .expect("welcomed")
}

#[test]
fn an_arrival_is_announced_before_the_first_words_of_the_same_turn() {
    let mut d = Driver::new(roomy());
    let (alice, bob) = (addr(1), addr(2));
    d.member(alice, "alice");
    let instance = Uuid::new_v4();
    let join = Packet::Join {
        room: "lobby".into(),
        name: "bob".into(),
        history: 0,
        instance,
    }
    .encode();
    // Bob's JOIN and his first SEND in one turn (the SEND needs his token, so the turn is
    // driven by hand: the token is only known once the JOIN is handled).
    let before = d.sent.len();
    d.relay.handle(d.now, d.wall(), bob, &join);
    let token = std::iter::from_fn(|| d.relay.poll_transmit())
        .find_map(|t| match Packet::decode(&t.bytes) {
            Ok(Packet::Welcome { token, .. }) => Some(token),
            _ => None,
        })
        .expect("welcomed");
    let (_, datagrams) = sends(token, 1, &["hi all".to_owned()]);
    d.turn(&[(bob, datagrams[0].clone())]);
    let to_alice: Vec<&Packet> = d.sent[before..]
        .iter()
        .filter(|(to, _)| *to == alice)
        .map(|(_, p)| p)
        .collect();
    assert!(
        matches!(
            to_alice[..],
            [Packet::Presence { .. }, Packet::Messages { .. }]
        ),
        "{to_alice:?}"
    );
}

/// A room of 300 members into which 100 clients join in one turn, driven by hand as the shell
/// drives it: the turn's datagrams are sent until the first of its presence datagrams. Returns
/// the members' addresses and tokens, the joiners' (by `joiner(k)`) and the packets sent.
fn storm_under_way(d: &mut Driver) -> (Vec<(SocketAddr, Token)>, Vec<Outgoing>) {
    let members: Vec<(SocketAddr, Token)> = (1..=300)
        .map(|k| (addr(k), d.member(addr(k), &format!("m{k}"))))
        .collect();
    for k in 0..100 {
        let join = Packet::Join {
            room: "lobby".into(),
            name: format!("j{k}"),
            history: 0,
            instance: Uuid::from_u128(k as u128 + 1),
        };
        d.relay.handle(d.now, d.wall(), joiner(k), &join.encode());
    }
    d.relay.end_turn(d.now, d.wall());
    let mut sent = Vec::new();
    while !matches!(sent.last(), Some((_, Packet::Presence { .. }))) {
        let t = d
            .relay
            .poll_transmit()
            .expect("the storm's presence to send");
        sent.push((t.to, Packet::decode(&t.bytes).expect("valid")));
    }
    (members, sent)
}

/// A datagram the relay sent: to whom, what.
type Outgoing = (SocketAddr, Packet);

fn joiner(k: u32) -> SocketAddr {
    addr(1000 + k)
}

/// Ends the turn as the shell does (its messages written, then committed) and returns what the
/// relay sends after it.
fn finish(d: &mut Driver) -> Vec<Outgoing> {
    d.relay.end_turn(d.now, d.wall());
    if d.relay.has_appends() {
        d.relay.commit();
    }
    std::iter::from_fn(|| d.relay.poll_transmit())
        .map(|t| (t.to, Packet::decode(&t.bytes).expect("valid")))
        .collect()
}

#[test]
fn what_is_taken_while_a_turn_goes_out_wants_the_next_turn_at_once() {
    // The shell reads its socket while a long fan-out goes out, and hands the relay what it
    // read; the socket may then stay silent (the sender waits for its acknowledgement), so
    // the relay must tell the shell to take its next turn at once, not at its next tick.
    let mut d = Driver::new(roomy());
    let alice = addr(1);
    let token = d.member(alice, "alice");
    d.member(addr(2), "bob");
    d.advance(Duration::from_millis(10));
    assert!(!d.relay.took_meanwhile(), "idle");
    let (_, datagrams) = sends(token, 1, &["read mid-turn".to_owned()]);
    d.relay.handle(d.now, d.wall(), alice, &datagrams[0]);
    assert!(
        d.relay.took_meanwhile(),
        "a message to write wants its turn now"
    );
    d.advance(Duration::ZERO);
    assert_eq!(d.log.len(), 1, "written in that turn");
    assert!(!d.relay.took_meanwhile(), "idle again");
    // A PING's answer, queued when it was read, too.
    d.relay
        .handle(d.now, d.wall(), alice, &Packet::Ping { token }.encode());
    assert!(d.relay.took_meanwhile(), "a reply to send now");
}

/// alice (of 1000 messages of 900 bytes) asked for all of them, and the first 3 of the
/// turn's pages of the answer are sent: the rest wait to leave.
fn history_under_way() -> (Driver, SocketAddr) {
    let mut d = Driver::with_log_of(roomy(), 1000, 900);
    let alice = addr(1);
    let token = d.member(alice, "alice");
    let history = Packet::History {
        room: 0,
        token,
        req: 1,
        from: 0,
        count: 1000,
    };
    d.relay.handle(d.now, d.wall(), alice, &history.encode());
    d.relay.end_turn(d.now, d.wall());
    for _ in 0..3 {
        let t = d.relay.poll_transmit().expect("pages to send");
        assert!(matches!(
            Packet::decode(&t.bytes),
            Ok(Packet::HistoryPage { req: 1, .. })
        ));
    }
    (d, alice)
}

#[test]
fn answers_left_unsent_wait_for_their_turn_instead_of_piling_up() {
    // Steady chat ends every turn before the last turn's pages of answers are out: the next
    // turns queue no more pages until those are sent (a turn's pages are at most 256 KiB).
    let (mut d, _) = history_under_way();
    // A second later (the allowances full again) the next turn comes, the pages not yet out.
    d.now += Duration::from_secs(1);
    d.relay.end_turn(d.now, d.wall());
    let queued = std::iter::from_fn(|| d.relay.poll_transmit()).count();
    let one_turn = (256 << 10) / 900;
    assert!(
        queued <= one_turn,
        "{queued} datagrams queued, more than a turn's {one_turn} pages"
    );
    assert!(
        queued > 100,
        "the first turn's pages ({queued}) are still sent"
    );
}

#[test]
fn what_was_queued_for_a_session_is_not_sent_to_the_one_that_replaced_it() {
    // Pages of alice's history answer wait to leave when another client process joins from her
    // address (she crashed and a new one started on the same port): they answer a request of
    // the old process, whose request numbers the new one reuses, and must not reach it.
    let (mut d, alice) = history_under_way();
    let again = Packet::Join {
        room: "lobby".into(),
        name: "alice".into(),
        history: 0,
        instance: Uuid::new_v4(),
    };
    d.relay.handle(d.now, d.wall(), alice, &again.encode());
    let after: Vec<Packet> = std::iter::from_fn(|| d.relay.poll_transmit())
        .filter(|t| t.to == alice)
        .map(|t| Packet::decode(&t.bytes).expect("valid"))
        .collect();
    assert!(
        matches!(after.first(), Some(Packet::Welcome { .. })),
        "the new process is welcomed: {:?}",
        after.first()
    );
    assert!(
        !after
            .iter()
            .any(|p| matches!(p, Packet::HistoryPage { req: 1, .. })),
        "a page of the old session's answer reached the new one: {:?}",
        after
            .iter()
            .map(|p| format!("{p:?}").chars().take(60).collect::<String>())
            .collect::<Vec<_>>()
    );
    assert!(
        d.relay.stats().stale > 100,
        "{} pages dropped",
        d.relay.stats().stale
    );
}

#[test]
fn chat_goes_out_before_the_rest_of_a_join_storms_presence() {
    let mut d = Driver::new(roomy());
    let (members, before) = storm_under_way(&mut d);
    // A member speaks while the storm's presence goes out: the shell is told to end the turn
    // for it, and its fan-out leaves before the rest of the presence.
    let (alice, token) = members[0];
    let (_, datagrams) = sends(token, 1, &["chat first".to_owned()]);
    d.relay.handle(d.now, d.wall(), alice, &datagrams[0]);
    assert!(
        d.relay.chat_waiting(),
        "the shell ends the turn for the chat"
    );
    let after = finish(&mut d);
    let last_message = (after.iter())
        .rposition(|(_, p)| matches!(p, Packet::Messages { .. }))
        .expect("fanned out");
    let first_presence = (after.iter())
        .position(|(_, p)| matches!(p, Packet::Presence { .. }))
        .expect("the rest of the presence");
    assert!(
        last_message < first_presence,
        "the message's fan-out ends at {last_message}, the presence resumes at {first_presence}"
    );
    let heard = |to: SocketAddr| {
        (after.iter())
            .filter(|(a, p)| *a == to && matches!(p, Packet::Messages { .. }))
            .count()
    };
    assert!(members[1..].iter().all(|(m, _)| heard(*m) == 1));
    assert!((0..100).all(|k| heard(joiner(k)) == 1));
    // Nobody's presence was lost or doubled on the way: every member heard of the 100, once
    // each, in order.
    let everyone: Vec<String> = (0..100).map(|k| format!("j{k}")).collect();
    for (m, _) in &members {
        let heard: Vec<String> = (before.iter().chain(&after))
            .filter(|(to, _)| to == m)
            .filter_map(|(_, p)| match p {
                Packet::Presence { room: _, changes } => {
                    Some(changes.iter().map(|c| c.name.clone()))
                }
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(heard, everyone, "member {m}");
    }
}

#[test]
fn a_joiners_first_words_wait_for_the_news_of_its_arrival() {
    let mut d = Driver::new(roomy());
    let (members, before) = storm_under_way(&mut d);
    // The first joiner speaks while the news of its arrival is on its way: every member hears
    // of the arrival before the words.
    let token = (before.iter())
        .find_map(|(to, p)| match p {
            Packet::Welcome { token, .. } if *to == joiner(0) => Some(*token),
            _ => None,
        })
        .expect("welcomed");
    let (_, datagrams) = sends(token, 1, &["hello, I am new".to_owned()]);
    d.relay.handle(d.now, d.wall(), joiner(0), &datagrams[0]);
    let sent: Vec<Outgoing> = before.into_iter().chain(finish(&mut d)).collect();
    for (m, _) in &members {
        let kinds: Vec<&str> = (sent.iter())
            .filter(|(to, _)| to == m)
            .filter_map(|(_, p)| match p {
                Packet::Presence { room: _, changes } if changes.iter().any(|c| c.name == "j0") => {
                    Some("arrival")
                }
                Packet::Messages { .. } => Some("words"),
                _ => None,
            })
            .collect();
        assert_eq!(kinds, ["arrival", "words"], "member {m}");
    }
}

#[test]
fn retransmissions_due_together_travel_packed_and_are_stored_once_in_order() {
    let mut net = Net::new(7, Conditions::QUIET, roomy());
    let a = net.join("alice", 0);
    let b = net.join("bob", 0);
    net.run_until(secs(5), "both joined", |n| {
        n.nodes[a].client.is_joined() && n.nodes[b].client.is_joined()
    });
    // Alice types 100 lines while nothing she sends gets through: each leaves alone, as
    // typed, and is lost; their retransmissions fall due together.
    net.nodes[a].mute = true;
    for k in 0..100 {
        net.send(a, &format!("line {k:03}"));
    }
    net.run_for(ms(300));
    net.nodes[a].mute = false;
    net.run_until(secs(10), "all stored", |n| n.nodes[a].client.unacked() == 0);
    net.run_for(secs(1));
    net.check_store();
    net.check_sent_are_stored();
    net.check_live(b, 100);
    let sends: Vec<usize> = net.nodes[a]
        .reached_relay
        .iter()
        .filter_map(|(_, p)| match p {
            Packet::Send { messages, .. } => Some(messages.len()),
            _ => None,
        })
        .collect();
    assert!(sends.iter().sum::<usize>() >= 100, "{sends:?}");
    assert!(
        sends.len() <= 10,
        "{} SENDs reached the relay: {sends:?}",
        sends.len()
    );
}
