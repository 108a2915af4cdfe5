//! Several relays of one cluster: a client whose relay dies moves to the next address of its
//! list, rejoins, catches up and resends, losing nothing and showing nothing twice; a list whose
//! first relay never answers reaches the next; a list of relays all down is gone round quietly
//! until one answers.
//!
//! The cluster is modelled as one relay at a time over one log: the relay at one address dies
//! and the next one starts at another address from the log (the same rooms, the same seqs), as
//! relays sharing a replicated log would serve a client that moved.

use urc::client::MOVE_AFTER;
use urc::proto::wire::ErrorCode;

use crate::chat::{chat_in_bursts, join_together, rough, say_lines, settle};
use crate::checks::{check_everything, notices, settle_and_check, stored_texts};
use crate::net::{Net, Restart, Rng, relay_addr, secs, seeds};

#[test]
fn a_client_whose_relay_dies_moves_to_the_next_and_loses_nothing() {
    for seed in seeds(0..12) {
        let mut rng = Rng::new(seed ^ 0xfa11);
        let mut net = Net::under(seed, rough(&mut rng, 0..=10));
        net.flush_delay = crate::net::ms(5);
        let b = net.add_relay();
        let clients = join_together(&mut net, &["ann", "bo", "曹"]);
        let ann = clients[0];
        chat_in_bursts(&mut net, &mut rng, &clients, 0..10);
        settle(&mut net);
        // Ann's lines are stored but their acknowledgements lost: she must resend them to the
        // next relay, which stores each once. (Deaf for less than MOVE_AFTER: longer, and she
        // would move on the relay's silence.)
        net.nodes[ann].deaf = true;
        let unacked = say_lines(&mut net, ann, 10..15);
        let deaf_until = net.now + MOVE_AFTER - secs(1);
        let stored = |n: &Net| (n.store.iter()).filter(|m| unacked.contains(&m.id)).count();
        while stored(&net) < unacked.len() && net.now < deaf_until {
            net.step();
        }
        assert!(
            stored(&net) > 0,
            "some of ann's lines stored unacknowledged"
        );
        // Every client has a window of messages in flight when the relay goes.
        for &i in &clients {
            say_lines(&mut net, i, 15..40);
        }
        net.run_for(crate::net::ms(rng.range(0, 300)));
        // Stopped cleanly, the relay says so and the clients move at once; crashed, they move
        // once it has been silent for MOVE_AFTER.
        let how = if seed % 2 == 0 {
            Restart::Crash
        } else {
            Restart::Clean
        };
        let at = net.elapsed();
        net.fail_over(how, 1);
        net.nodes[ann].deaf = false;
        settle(&mut net);
        net.run_until(secs(60), "everyone at the second relay", |n| {
            n.settled() && (n.nodes.iter()).all(|c| n.relay_has(c.client.name()))
        });

        check_everything(&net);
        // 10 lines each in bursts, 5 more of ann's, then 25 more each.
        assert_eq!(net.relay.latest(), 110, "every line stored once");
        assert_eq!(stored_texts(&net, "ann").len(), 40);
        for &i in &clients {
            let node = &net.nodes[i];
            let name = node.client.name();
            // (Under loss a client may have moved before, its JOINs lost for MOVE_AFTER: to
            // the second address, where nobody was yet, and back.)
            assert_eq!(
                node.client.moves() % 2,
                1,
                "{name} moved to the second relay"
            );
            assert_eq!(
                node.client.relay(),
                Some(b),
                "{name} is at the second relay"
            );
            let notice = format!("moving to the relay at {b}: the relay at {}", relay_addr(0));
            assert!(notices(&net, i, &notice) >= 1, "{name} was told");
            assert!(node.tokens().len() >= 2, "{name} joined the second relay");
            // A client that heard the relay stop moved at once, and said why (the network may
            // have lost the Stopping of the others: they moved on its silence).
            let stopped = !node.errors_received(ErrorCode::Stopping).is_empty();
            assert_eq!(
                notices(&net, i, &format!("{notice} stopped")),
                usize::from(stopped),
                "{name}"
            );
        }
        // Nobody waited longer than the silence takes to be noticed, and a round trip or two.
        let moved = net.elapsed() - at;
        assert!(moved < MOVE_AFTER + secs(60), "{moved:?}");
    }
}

#[test]
fn a_relay_that_stops_sends_its_clients_to_the_next_at_once() {
    for seed in seeds(0..4) {
        let mut net = Net::quiet(seed);
        let b = net.add_relay();
        let clients = join_together(&mut net, &["alice", "bob"]);
        say_lines(&mut net, clients[0], 0..3);
        settle(&mut net);
        let at = net.elapsed();
        net.fail_over(Restart::Clean, 1);
        say_lines(&mut net, clients[1], 0..3);
        net.run_until(secs(2), "both at the second relay", |n| {
            n.relay_has("alice") && n.relay_has("bob") && n.settled()
        });
        let took = net.elapsed() - at;
        assert!(
            took < crate::net::ms(500),
            "at once, not after MOVE_AFTER: {took:?}"
        );
        for i in clients {
            let said = format!(
                "moving to the relay at {b}: the relay at {} stopped",
                relay_addr(0)
            );
            assert_eq!(notices(&net, i, &said), 1);
            assert_eq!(net.nodes[i].client.moves(), 1);
            // The move's notice said where; the rejoin follows, and nothing more is told.
            assert_eq!(notices(&net, i, "answering"), 0);
            assert_eq!(notices(&net, i, "rejoined as"), 1);
        }
        settle_and_check(&mut net, 6);
    }
}

#[test]
fn a_list_whose_first_relay_never_answers_reaches_the_next() {
    for seed in seeds(0..4) {
        // A machine that is down says nothing; a relay process that is gone, through the
        // system, that nothing listens there.
        for refused in [false, true] {
            let mut net = Net::quiet(seed);
            net.refuse_unserved = refused;
            let b = net.add_relay();
            net.serving = Some(1);
            let alice = net.join("alice", 0);
            say_lines(&mut net, alice, 0..5);
            net.run_until(secs(10), "alice joined", |n| {
                n.nodes[alice].client.is_joined()
            });
            let took = net.elapsed();
            let why = if refused {
                format!("no relay at {}", relay_addr(0))
            } else {
                format!("the relay at {} is not answering", relay_addr(0))
            };
            let said = format!("moving to the relay at {b}: {why}");
            assert_eq!(notices(&net, alice, &said), 1, "refused={refused}");
            if refused {
                assert!(took < crate::net::ms(500), "at once: {took:?}");
            } else {
                assert!(
                    took >= MOVE_AFTER && took < MOVE_AFTER + secs(1),
                    "{took:?}"
                );
            }
            let bob = net.join("bob", 0);
            say_lines(&mut net, bob, 0..5);
            settle_and_check(&mut net, 10);
            assert_eq!(net.nodes[alice].client.moves(), 1);
            assert_eq!(notices(&net, alice, "joined as alice"), 1, "one session");
        }
    }
}

#[test]
fn a_list_of_relays_all_down_is_gone_round_quietly_until_one_answers() {
    for seed in seeds(0..4) {
        let mut net = Net::quiet(seed);
        net.add_relay();
        let c = net.add_relay();
        net.serving = None;
        let alice = net.join("alice", 0);
        say_lines(&mut net, alice, 0..3);
        net.run_for(secs(30));
        let client = &net.nodes[alice].client;
        assert!(!client.is_joined() && client.relay_silent());
        // Once round the list, then on every MOVE_AFTER.
        let moves = client.moves();
        let rounds = (secs(30).as_millis() / MOVE_AFTER.as_millis()) as u32;
        assert!((rounds - 1..=rounds).contains(&moves), "{moves} moves");
        assert_eq!(
            notices(&net, alice, "moving to the relay at"),
            2,
            "told of a round"
        );
        let silent = (net.nodes[alice].events.iter())
            .filter(|(_, e)| matches!(e, urc::client::Event::Silent))
            .count();
        assert_eq!(silent, 1, "told once that none answers");
        net.serving = Some(2);
        net.run_until(MOVE_AFTER * 4, "alice joined", |n| {
            n.nodes[alice].client.is_joined()
        });
        assert_eq!(
            notices(&net, alice, &format!("the relay at {c} is answering")),
            1
        );
        settle_and_check(&mut net, 3);
    }
}
