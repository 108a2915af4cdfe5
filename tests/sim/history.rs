//! History: join history before the live stream and in order, long histories in pages (from
//! the log when the cache lacks them, and over loss), and history on request.

use urc::client::Event;
use urc::proto::wire::Packet;
use urc::relay;

use crate::chat::{enter, joined, old_log, say, say_lines, settle};
use crate::checks::check_history_part;
use crate::net::{Conditions, Net, ms, secs, seeds};

#[test]
fn join_history_comes_first_and_in_order() {
    // Jitter lets live messages overtake the pages of join history: they must wait.
    let cond = Conditions::jittery(ms(5), ms(40));
    for seed in seeds(0..8) {
        let mut net = Net::with_log(seed, cond, relay::Config::default(), old_log(30, 60));
        let zero = enter(&mut net, "zero");
        let twenty = net.join("twenty", 20);
        net.run_until(secs(5), "twenty has a session", |n| n.relay_has("twenty"));
        say_lines(&mut net, zero, 0..10);
        settle(&mut net);

        net.check_store();
        net.check_live(zero, 40);
        net.check_live(twenty, 40);
        assert!(net.nodes[zero].history().is_empty());
        let node = &net.nodes[twenty];
        assert_eq!(node.joined_at(), 30);
        let shown = node.shown();
        let history: Vec<u64> = shown
            .iter()
            .take(20)
            .filter(|s| s.history)
            .map(|s| s.message.seq)
            .collect();
        assert_eq!(
            history,
            (11..=30).collect::<Vec<_>>(),
            "history first, in order"
        );
        assert!(shown[20..].iter().all(|s| !s.history));
        for s in &shown[..20] {
            assert_eq!(s.message, net.store[s.message.seq as usize - 1]);
            assert!(!s.own);
        }
    }
}

#[test]
fn long_history_arrives_whole_in_pages() {
    // 200 messages of about 900 bytes: one a datagram. A small cache sends the relay to its log.
    let config = relay::Config {
        cache: 50,
        ..relay::Config::default()
    };
    for seed in seeds(0..1) {
        let mut net = Net::with_log(seed, Conditions::QUIET, config.clone(), old_log(200, 900));
        let all = net.join("all", 200);
        let more = net.join("more", 1000);
        let none = net.join("none", 0);
        settle(&mut net);
        for i in [all, more] {
            let history = net.nodes[i].history();
            assert_eq!(history.len(), 200);
            for (s, m) in history.iter().zip(&net.store) {
                assert_eq!(&s.message, m);
            }
            let pages = net.nodes[i]
                .received
                .iter()
                .filter(|(_, p)| matches!(p, Packet::HistoryPage { .. }))
                .count();
            assert_eq!(pages, 200, "one message a page at this size");
        }
        assert!(net.nodes[none].shown().is_empty());
        assert!(
            net.log_reads >= 2,
            "the relay read its log for what its cache lacks"
        );
        // (Every datagram's bound, 1200 bytes, is checked as it leaves the relay.)
        assert!(net.largest_from_relay > 900);
    }
}

#[test]
fn long_history_survives_loss() {
    let cond = Conditions::jittery(ms(20), ms(30))
        .losing(10)
        .duplicating(5);
    let runs = seeds(0..8);
    let mut complete = 0;
    for &seed in &runs {
        let mut net = Net::with_log(seed, cond, relay::Config::default(), old_log(200, 900));
        let all = net.join("all", 200);
        settle(&mut net);
        check_history_part(&net, all, 200);
        complete += usize::from(net.nodes[all].history().len() == 200);
        assert!(net.nodes[all].live().is_empty());
    }
    // Five requests, each for all that is missing, rarely all lose the same page.
    assert!(
        complete * 10 >= runs.len() * 9,
        "{complete} of {} complete",
        runs.len()
    );
}

#[test]
fn history_on_request() {
    for seed in seeds(0..1) {
        let mut net = Net::quiet(seed);
        let a = net.join("alice", 0);
        let b = net.join("bob", 5);
        joined(&mut net, a);
        joined(&mut net, b);
        for k in 0..25 {
            say(&mut net, a, k);
            net.run_for(ms(2));
        }
        settle(&mut net);
        assert_eq!(net.relay.latest(), 25);
        let before = net.nodes[b].events.len();
        net.request_history(b, 10);
        settle(&mut net);
        say(&mut net, a, 99);
        settle(&mut net);
        net.request_history(b, 100);
        settle(&mut net);

        net.check_live(b, 26);
        let asked: Vec<(u64, bool)> = net.nodes[b].events[before..]
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Message {
                    message, history, ..
                } => Some((message.seq, *history)),
                _ => None,
            })
            .collect();
        let history: Vec<u64> = asked.iter().filter(|(_, h)| *h).map(|(s, _)| *s).collect();
        let mut want: Vec<u64> = (16..=25).collect();
        want.extend(1..=26);
        assert_eq!(history, want, "the last 10, then all 26");
        assert_eq!(
            asked.iter().filter(|(_, h)| !*h).count(),
            1,
            "the live message, once"
        );
        for s in net.nodes[b].history() {
            assert_eq!(s.message, net.store[s.message.seq as usize - 1]);
        }
        // Each answer is framed: its start (saying how many follow), its messages, its end.
        let frames: Vec<String> = net.nodes[b].events[before..]
            .iter()
            .filter_map(|(_, e)| match e {
                Event::HistoryStart { room: _, count } => Some(format!("start {count}")),
                Event::Message { history: true, .. } => Some("m".to_owned()),
                Event::HistoryEnd { .. } => Some("end".to_owned()),
                _ => None,
            })
            .collect();
        let mut framed = vec!["start 10".to_owned()];
        framed.extend(std::iter::repeat_n("m".to_owned(), 10));
        framed.push("end".to_owned());
        framed.push("start 26".to_owned());
        framed.extend(std::iter::repeat_n("m".to_owned(), 26));
        framed.push("end".to_owned());
        assert_eq!(frames, framed);
    }
}
