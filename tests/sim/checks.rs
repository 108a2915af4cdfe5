//! What the tests read back from the clients and the relay (what a client showed, the log's
//! texts, the relay's sessions) and the checks many tests end with.

use urc::client::Event;

use crate::chat::settle;
use crate::net::Net;

/// The texts of `from`'s messages in the log, in the log's order.
pub fn stored_texts<'a>(net: &'a Net, from: &str) -> Vec<&'a str> {
    (net.store.iter())
        .filter(|m| m.from == from)
        .map(|m| m.text.as_str())
        .collect()
}

/// The joins and leaves client `i` showed, as `+name` and `-name Reason`, in order.
pub fn presence(net: &Net, i: usize) -> Vec<String> {
    net.nodes[i]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Joined { room: _, name } => Some(format!("+{name}")),
            Event::Left { name, reason, .. } => Some(format!("-{name} {reason:?}")),
            _ => None,
        })
        .collect()
}

/// The answers to WHO client `i` showed, in order.
pub fn who(net: &Net, i: usize) -> Vec<Vec<String>> {
    net.nodes[i]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Who { room: _, names } => Some(names.clone()),
            _ => None,
        })
        .collect()
}

/// The errors client `i` showed, in order.
pub fn errors(net: &Net, i: usize) -> Vec<String> {
    (net.nodes[i].events.iter())
        .filter_map(|(_, e)| match e {
            Event::Error(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// How many of the notices client `i` showed contain `part`.
pub fn notices(net: &Net, i: usize, part: &str) -> usize {
    (net.nodes[i].events.iter())
        .filter(|(_, e)| matches!(e, Event::Notice(n) if n.contains(part)))
        .count()
}

/// Everything the lossy tests promise, once settled.
pub fn check_everything(net: &Net) {
    net.check_store();
    net.check_sent_are_stored();
    let latest = net.relay.latest();
    for i in 0..net.nodes.len() {
        net.check_live(i, latest);
        let node = &net.nodes[i];
        let shown = errors(net, i);
        assert!(shown.is_empty(), "{}: {shown:?}", node.client.name());
        // Join history ends where live delivery starts: nothing is shown both ways.
        if let Some(h) = node.history().last() {
            assert!(
                h.message.seq <= node.joined_at(),
                "{} saw {} as history and live",
                node.client.name(),
                h.message.seq
            );
        }
    }
}

/// Runs until everything is acknowledged and shown, then checks everything the lossy tests
/// promise ([`check_everything`]) and that the room's latest seq is `latest`.
pub fn settle_and_check(net: &mut Net, latest: u64) {
    settle(net);
    check_everything(net);
    assert_eq!(net.relay.latest(), latest);
}

/// Checks that client `i` showed as join history the last `count` messages up to its
/// welcome's latest, in order, as stored; or some of them, and said that the rest is missing.
pub fn check_history_part(net: &Net, i: usize, count: u64) {
    let node = &net.nodes[i];
    let at = node.joined_at();
    let want: Vec<u64> = (at.saturating_sub(count - 1).max(1)..=at).collect();
    let history = node.history();
    let seqs: Vec<u64> = history.iter().map(|s| s.message.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, once each");
    assert!(
        seqs.iter().all(|s| want.contains(s)),
        "{seqs:?} within {want:?}"
    );
    for s in &history {
        assert_eq!(s.message, net.store[s.message.seq as usize - 1]);
    }
    if seqs != want {
        let told = notices(net, i, "history did not arrive");
        assert!(told > 0, "an incomplete history is announced");
    }
}

/// The names of the sessions the relay has, each with its address.
pub fn sessions(net: &Net) -> Vec<(String, std::net::SocketAddr)> {
    let mut all: Vec<_> = (net.relay.clients().iter())
        .map(|c| (c.name.clone(), *c.key()))
        .collect();
    all.sort();
    all
}
