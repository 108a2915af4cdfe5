//! Floods: a client sending far faster than the rate, a long paste, and a flood of history
//! requests are held to their rates, and the others go on unhindered.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use urc::client::Event;
use urc::proto::wire::{ErrorCode, Packet};
use urc::relay;
use uuid::Uuid;

use crate::chat::{enter_all, old_log, say, say_lines, settle};
use crate::checks::{notices, settle_and_check, stored_texts};
use crate::net::{Conditions, Net, Rng, ms, secs, seeds};

/// One client floods the relay with SENDs carrying its real token, one a millisecond for 10 s,
/// each with base = csn so that none waits for another, while alice and bob chat at a human
/// pace. The relay stores the flood at its rate (at most rate × duration + burst), tells the
/// flooder it is too fast, and alice's and bob's messages are acknowledged and shown to each
/// other as quickly as in a quiet room.
#[test]
fn a_flood_is_held_to_the_rate_and_others_go_on_unhindered() {
    let cond = Conditions::jittery(ms(20), ms(10));
    let config = relay::Config::default();
    let mut worst = Duration::ZERO;
    for seed in seeds(0..3) {
        let mut rng = Rng::new(seed ^ 0xf100d);
        let mut net = Net::new(seed, cond, config.clone());
        let [a, b, f] = enter_all(&mut net, ["alice", "bob", "flood"]);
        let token = net.nodes[f].first_token();
        let flood_addr = net.nodes[f].addr;
        let start = net.now;
        let duration = secs(10);
        let mut next = [a, b].map(|_| start + ms(rng.range(0, 1000)));
        let mut human: Vec<(Uuid, usize, Instant)> = Vec::new();
        let mut csn = 0;
        while net.now < start + duration {
            csn += 1;
            let send = Packet::send_one(token, csn, csn, Uuid::new_v4(), &format!("flood {csn}"));
            net.inject_to_relay(f, &send);
            for (k, &i) in [a, b].iter().enumerate() {
                if net.now >= next[k] {
                    let ids = say(&mut net, i, human.len());
                    human.push((ids[0], i, net.now));
                    next[k] = net.now + ms(rng.range(500, 2000));
                }
            }
            net.run_for(ms(1));
        }
        settle(&mut net);

        net.check_store();
        let latest = net.relay.latest();
        net.check_live(a, latest);
        net.check_live(b, latest);
        let flooded = net.store.iter().filter(|m| m.from == "flood").count() as f64;
        let bound = config.rate * duration.as_secs_f64() + config.burst;
        assert!(flooded <= bound, "{flooded} flood messages stored");
        assert!(
            flooded >= bound - 5.0,
            "only {flooded} flood messages stored"
        );
        for (id, i, at) in &human {
            let other = if *i == a { b } else { a };
            let acked = net.nodes[*i].ack_time(*id).expect("acknowledged");
            let shown = net.nodes[other]
                .shown_live_at(*id)
                .expect("shown to the other");
            worst = worst.max(acked - *at).max(shown - *at);
        }
        assert!(human.len() >= 10);
        assert_eq!(
            net.store.iter().filter(|m| m.from != "flood").count(),
            human.len()
        );
        // Told: one RATE LIMITED per episode of being too fast, shown once while the flood's
        // messages wait (a flood that never lets its outbox empty is one episode).
        let rate_limited = net.errors_sent_to(flood_addr, ErrorCode::RateLimited);
        let told = rate_limited.iter().filter(|id| !id.is_nil()).count();
        let shown = notices(&net, f, "too many messages");
        assert!(told >= 1 && shown == 1, "told {told}, shown {shown}");
        println!(
            "seed {seed}: {csn} sent, {flooded} stored, told {told} times; rate limited {}",
            net.relay.stats().rate_limited
        );
        assert!(told <= 3, "told {told} times in one flood");
    }
    println!("worst latency of a normal message during the flood: {worst:?}");
    assert!(worst <= secs(1), "{worst:?}");
}

/// A client that pastes 600 lines at once sends them as fast as its window lets it; the relay
/// takes a burst and then its rate, and the rest come again after their timeouts. Everything is
/// stored once, in order, at close to the rate (measured over seeds 0..100: 25.1 to 29.4 s,
/// where the rate allows 25 s), the sender is told it is too fast once, and alice, chatting all
/// the while, is not held up.
#[test]
fn a_long_paste_is_taken_at_the_rate_in_order() {
    let cond = Conditions::jittery(ms(20), ms(10)).losing(2);
    let config = relay::Config::default();
    for seed in seeds(0..2) {
        let mut rng = Rng::new(seed ^ 0x9a57e);
        let mut net = Net::new(seed, cond, config.clone());
        let [a, p] = enter_all(&mut net, ["alice", "paster"]);
        let lines = 600;
        let start = net.now;
        say_lines(&mut net, p, 0..lines);
        let mut human = Vec::new();
        while net.nodes[p].client.unacked() > 0 {
            let ids = say(&mut net, a, human.len());
            human.push((ids[0], net.now));
            net.run_for(ms(rng.range(500, 2000)));
            assert!(net.now < start + secs(300), "{}", net.status());
        }
        let took = net.now - start;
        settle_and_check(&mut net, (lines + human.len()) as u64);
        assert_eq!(stored_texts(&net, "paster").len(), lines);
        let ideal = (lines as f64 - config.burst) / config.rate;
        let sends = net.nodes[p].sends();
        // Told once, as one episode of sending too fast (the ERROR may be lost on its way).
        let paster = net.nodes[p].addr;
        let relay_told = net.errors_sent_to(paster, ErrorCode::RateLimited).len();
        let told = notices(&net, p, "too many messages");
        assert_eq!(relay_told, 1);
        assert!(told <= relay_told);
        // When alice showed her own message: once acknowledged (or, the ACK lost, once the
        // gap it left in her stream was repaired).
        let worst = (human.iter())
            .map(|(id, at)| net.nodes[a].shown_live_at(*id).expect("shown") - *at)
            .max()
            .unwrap();
        println!(
            "seed {seed}: {lines} lines stored in {took:?} (at the rate: {ideal:.0} s), {sends} SENDs, told {told} times, alice's worst ack {worst:?}"
        );
        assert!(took.as_secs_f64() <= 1.2 * ideal, "{took:?}");
        assert!(worst <= secs(1), "{worst:?}");
    }
}

/// A client floods the relay with HISTORY requests for 1000 messages, with its real token, one
/// a millisecond for 5 s: the relay answers at its request rate (at most request_rate ×
/// duration + its burst of twice the rate), tells it to slow down, and alice's own requests
/// are answered at once all the while.
#[test]
fn a_request_flood_is_answered_at_the_request_rate() {
    let config = relay::Config::default();
    for seed in seeds(0..1) {
        let mut net = Net::with_log(seed, Conditions::QUIET, config.clone(), old_log(200, 100));
        let [a, f] = enter_all(&mut net, ["alice", "asker"]);
        let token = net.nodes[f].first_token();
        let flood_addr = net.nodes[f].addr;
        let start = net.now;
        let duration = secs(5);
        let first_req = 1_000_000;
        let mut req = first_req;
        let mut asked = Vec::new();
        while net.now < start + duration {
            req += 1;
            let history = Packet::History {
                room: 0,
                token,
                req,
                from: 0,
                count: 1000,
            };
            net.inject_to_relay(f, &history);
            if (req - first_req) % 1000 == 500 {
                asked.push((net.now, net.nodes[a].history().len()));
                net.request_history(a, 50);
            }
            net.run_for(ms(1));
        }
        settle(&mut net);

        let to_flooder: Vec<&Packet> = (net.from_relay.iter())
            .filter(|(at, to, _)| *to == flood_addr && *at >= start)
            .map(|(_, _, p)| p)
            .collect();
        let answered: HashSet<u32> = (to_flooder.iter())
            .filter_map(|p| match p {
                Packet::HistoryPage { req, .. } if *req > first_req => Some(*req),
                _ => None,
            })
            .collect();
        let bound = config.request_rate * duration.as_secs_f64() + 2.0 * config.request_rate;
        assert!(
            answered.len() as f64 <= bound,
            "{} requests answered",
            answered.len()
        );
        assert!(answered.len() as f64 >= bound - 3.0);
        let told = (to_flooder.iter())
            .filter(|p| {
                matches!(
                    p,
                    Packet::Error {
                        code: ErrorCode::RateLimited,
                        ..
                    }
                )
            })
            .count();
        let bytes: usize = to_flooder.iter().map(|p| p.encode().len()).sum();
        println!(
            "{} requests, {} answered, told {told} times, {bytes} bytes to the asker",
            req - first_req,
            answered.len()
        );
        assert!((1..=3).contains(&told), "told {told} times");
        // Alice asked five times during the flood: each answered whole within a round trip.
        assert_eq!(net.nodes[a].history().len(), 5 * 50);
        for (at, before) in asked {
            let answered = net.nodes[a].events.iter().filter(|(t, e)| {
                *t <= at + ms(25) && matches!(e, Event::Message { history: true, .. })
            });
            assert_eq!(answered.count(), before + 50);
        }
    }
}
