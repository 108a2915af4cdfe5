//! Loss: over a network that loses, duplicates and reorders, and while the log cannot be
//! written, nothing acknowledged is lost and nothing is stored twice; a seed replays its run;
//! the heartbeat that tells a room's latest seq once the room is quiet.

use urc::proto::wire::{ErrorCode, Packet};

use crate::chat::{chat_in_bursts, join_together, lines, rough, settle};
use crate::checks::{check_history_part, notices, settle_and_check, stored_texts};
use crate::net::{Conditions, Net, Rng, ms, secs, seeds};

/// Four clients, two or three of them sending 50 messages each in bursts, one joining late
/// with 10 messages of history, over a network losing up to 30% and reordering; run until
/// everything is acknowledged and shown.
fn lossy_run(seed: u64) -> Net {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let cond = rough(&mut rng, 0..=30);
    let mut net = Net::under(seed, cond);
    // Half the runs write the log in batches, so retransmissions meet uncommitted messages.
    net.flush_delay = ms(rng.range(0, 1) * 5);
    let names = ["ann", "张伟", "cat", "dan"];
    let clients = join_together(&mut net, &names[..3]);
    let senders = &clients[..rng.range(2, 3) as usize];
    chat_in_bursts(&mut net, &mut rng, senders, 0..15);
    let late = net.join(names[3], 10);
    chat_in_bursts(&mut net, &mut rng, senders, 15..50);

    settle_and_check(&mut net, 50 * senders.len() as u64);
    // The join history is the 10 messages up to the welcome's latest, or, when one part of it
    // was lost five times over (at 30% loss, a few runs in a hundred), the parts that came.
    check_history_part(&net, late, 10);
    net
}

#[test]
fn lossy_network_loses_nothing_acknowledged() {
    for seed in seeds(0..20) {
        lossy_run(seed);
    }
}

#[test]
fn a_seed_replays_the_same_run() {
    for seed in seeds(100..102) {
        let first = lossy_run(seed);
        let second = lossy_run(seed);
        assert_eq!(first.fingerprint, second.fingerprint);
        assert_eq!(first.elapsed(), second.elapsed());
    }
}

/// The log cannot be written for a while (a full disk): every batch is aborted, so nothing is
/// acknowledged or fanned out, and the senders are told and keep their messages; once the disk
/// works again everything is stored exactly once, in the order each sender typed it, and shown
/// to everyone once, over a network that loses, duplicates and reorders.
#[test]
fn while_the_log_cannot_be_written_nothing_is_acknowledged_and_then_all_is() {
    let cond = Conditions::jittery(ms(15), ms(25))
        .losing(10)
        .duplicating(5);
    for seed in seeds(0..6) {
        let mut rng = Rng::new(seed ^ 0xd15c);
        let mut net = Net::under(seed, cond);
        net.flush_delay = ms(seed % 2 * 5);
        let clients = join_together(&mut net, &["ann", "bo", "曹"]);
        let senders = &clients[..2];
        chat_in_bursts(&mut net, &mut rng, senders, 0..10);
        settle(&mut net);
        let stored = net.store.len();
        assert_eq!(stored, 20);

        net.store_fails = true;
        let failed_at = net.now;
        chat_in_bursts(&mut net, &mut rng, senders, 10..25);
        // Retransmissions meet the failing disk too.
        net.run_for(secs(3));
        let healed_at = net.now;
        net.store_fails = false;
        assert_eq!(net.store.len(), stored);
        assert!(net.aborts > 0);
        let during =
            (net.from_relay.iter()).filter(|(at, _, _)| failed_at <= *at && *at < healed_at);
        for (at, to, p) in during {
            // Only what was stored before may be acknowledged (again: a retransmission whose
            // first acknowledgement was lost); nothing new is fanned out.
            let new = match p {
                Packet::Ack { acks } => acks.iter().any(|a| a.seq > stored as u64),
                Packet::Messages { .. } => true,
                _ => false,
            };
            assert!(
                !new,
                "{p:?} to {to} at {:?} while the log failed",
                *at - failed_at
            );
        }
        for &i in senders {
            let node = &net.nodes[i];
            let told = (node.errors_received(ErrorCode::Storage).iter())
                .any(|id| node.sent.iter().any(|(sent, _)| sent == id));
            assert!(told, "{} got ERROR Storage", node.client.name());
            // Once for the episode, however many retransmissions met the failing disk.
            let errors = node.errors_received(ErrorCode::Storage).len();
            assert!(
                errors > 1,
                "{} met the failing disk {errors} times",
                node.client.name()
            );
            assert_eq!(notices(&net, i, "cannot store messages right now"), 1);
            assert_eq!(notices(&net, i, "stores messages again"), 0);
        }

        settle_and_check(&mut net, 50);
        for &i in senders {
            assert_eq!(notices(&net, i, "cannot store messages right now"), 1);
            assert_eq!(
                notices(&net, i, "stores messages again"),
                1,
                "told once it healed"
            );
        }
        assert_eq!(net.relay.stats().stored, 50);
        for &i in senders {
            let name = net.nodes[i].client.name();
            assert_eq!(stored_texts(&net, name), lines(name, 0..25));
        }
    }
}

/// The PONGs the relay sent `to` in `window` that answered no PING of client `i` (each PING
/// that reached the relay in it takes one): its heartbeats.
fn heartbeats(net: &Net, i: usize, window: std::ops::Range<std::time::Instant>) -> usize {
    let to = net.nodes[i].addr;
    let pongs = (net.from_relay.iter())
        .filter(|(at, addr, p)| {
            window.contains(at) && *addr == to && matches!(p, Packet::Pong { .. })
        })
        .count();
    let pings = (net.nodes[i].reached_relay.iter())
        .filter(|(at, p)| window.contains(at) && matches!(p, Packet::Ping { .. }))
        .count();
    pongs.saturating_sub(pings)
}

/// A room's heartbeat goes once the room is quiet: while its messages keep coming (each
/// fan-out tells the latest seq, so a gap shows at the next), none; half a second after the
/// last, one. A member that lost that last message learns of it so, and
/// fetches it.
#[test]
fn a_busy_room_gets_its_heartbeat_once_it_is_quiet() {
    for seed in seeds(0..4) {
        let mut net = Net::under(seed, Conditions::jittery(ms(10), ms(5)));
        let [a, b] = crate::chat::enter_all(&mut net, ["alice", "bob"]);
        crate::chat::say(&mut net, a, 0);
        settle(&mut net);
        let busy = net.now;
        // A message every 200 ms for 3.8 s: never quiet for half a second.
        for k in 1..20 {
            crate::chat::say(&mut net, a, k);
            net.run_for(ms(200));
        }
        assert_eq!(
            heartbeats(&net, b, busy..net.now),
            0,
            "seed {seed}: a heartbeat while the room was busy"
        );
        // The last message's fan-out to bob is lost: only the heartbeat tells him of it.
        net.nodes[b].deaf = true;
        crate::chat::say(&mut net, a, 20);
        net.run_for(ms(50));
        net.nodes[b].deaf = false;
        let quiet = net.now;
        net.run_until(secs(3), "bob shows alice's last line", |n| {
            (n.nodes[b].shown().iter()).any(|s| s.message.text == crate::chat::text("alice", 20))
        });
        // Half a second after the turn that stored it (50 ms ago), a few network delays more.
        let soon = quiet + ms(450) + ms(100);
        assert!(
            heartbeats(&net, b, quiet..soon) >= 1,
            "seed {seed}: no heartbeat half a second after the last message"
        );
    }
}
