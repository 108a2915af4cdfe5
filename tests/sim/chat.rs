//! What the tests make the clients do: numbered lines to say, entering the room, running until
//! all is settled, chatting in bursts, and a log from before the simulation.

use std::ops::Range;
use std::time::Duration;

use urc::proto::message::{Message, Millis};
use uuid::Uuid;

use crate::net::{Conditions, Net, Restart, Rng, ms, secs};

/// A chat line with Chinese in it, unique per sender and number.
pub fn text(name: &str, k: usize) -> String {
    format!("{name} 的第 {k} 条消息：你好，世界 #{k}")
}

/// The lines numbered `numbers` that `name` says, as [`say`] sends them.
pub fn lines(name: &str, numbers: Range<usize>) -> Vec<String> {
    numbers.map(|k| text(name, k)).collect()
}

/// Client `i` sends its line number `k` (see [`text`]); returns the ids of its messages.
pub fn say(net: &mut Net, i: usize, k: usize) -> Vec<Uuid> {
    let name = net.nodes[i].client.name().to_owned();
    net.send(i, &text(&name, k))
}

/// Client `i` sends its lines numbered `numbers`, all at the same instant; returns their ids.
pub fn say_lines(net: &mut Net, i: usize, numbers: Range<usize>) -> Vec<Uuid> {
    numbers.flat_map(|k| say(net, i, k)).collect()
}

/// `n` messages stored before the simulation starts, each about `len` bytes of text.
pub fn old_log(n: u64, len: usize) -> Vec<Message> {
    (1..=n)
        .map(|seq| {
            let mut text = format!("旧消息 {seq} ");
            while text.len() + 3 <= len {
                text.push('话');
            }
            Message {
                seq,
                id: Uuid::new_v4(),
                from: "old".into(),
                text,
                time: Millis(1_700_000_000_000 + seq as i64),
            }
        })
        .collect()
}

/// Runs until client `i` is in the room, for 10 s of simulated time at most.
pub fn joined(net: &mut Net, i: usize) {
    let name = net.nodes[i].client.name().to_owned();
    net.run_until(secs(10), &format!("{name} joined"), |n| {
        n.nodes[i].client.is_joined()
    });
}

/// Runs until every running client is in the room, owes nothing and has shown everything.
pub fn settle(net: &mut Net) {
    net.run_until(secs(600), "settled", Net::settled);
}

/// Starts client `name`, without join history, and runs until it is in the room: it is there
/// before whoever joins next.
pub fn enter(net: &mut Net, name: &str) -> usize {
    let i = net.join(name, 0);
    joined(net, i);
    i
}

/// Starts a client for each of `names` at the same instant, without join history, then runs
/// until each, in turn, is in the room.
pub fn enter_all<const N: usize>(net: &mut Net, names: [&str; N]) -> [usize; N] {
    let clients = names.map(|name| net.join(name, 0));
    for i in clients {
        joined(net, i);
    }
    clients
}

/// Starts a client for each of `names` at the same instant, without join history, then runs
/// until every client is in the room, for 60 s of simulated time at most: over a lossy
/// network a join may take a few tries.
pub fn join_together(net: &mut Net, names: &[&str]) -> Vec<usize> {
    let clients = names.iter().map(|n| net.join(n, 0)).collect();
    net.run_until(secs(60), "all joined", Net::all_joined);
    clients
}

/// A quiet room with alice and bob in it, in which alice has said her lines `said` and
/// everyone has seen them: where many regressions start. Returns the net, alice and bob.
pub fn alice_and_bob(seed: u64, said: Range<usize>) -> (Net, usize, usize) {
    let mut net = Net::quiet(seed);
    let [a, b] = enter_all(&mut net, ["alice", "bob"]);
    say_lines(&mut net, a, said);
    settle(&mut net);
    (net, a, b)
}

/// Client `i` says its lines `numbers` while deaf, so that the relay stores them but their
/// acknowledgements are lost; once the log holds them (within `limit` of simulated time), the
/// relay restarts cleanly and `i` hears again. Returns the lines' ids.
pub fn say_unacknowledged_then_restart(
    net: &mut Net,
    i: usize,
    numbers: Range<usize>,
    limit: Duration,
) -> Vec<Uuid> {
    net.nodes[i].deaf = true;
    let ids = say_lines(net, i, numbers);
    let stored = net.store.len() + ids.len();
    net.run_until(limit, &format!("{stored} stored"), |n| {
        n.store.len() == stored
    });
    net.restart_relay(Restart::Clean);
    net.nodes[i].deaf = false;
    ids
}

/// Random conditions within the bounds of the lossy tests.
pub fn rough(rng: &mut Rng, loss: std::ops::RangeInclusive<u64>) -> Conditions {
    Conditions {
        delay: ms(rng.range(5, 50)),
        jitter: ms(rng.range(0, 100)),
        loss: rng.range(*loss.start(), *loss.end()) as u32,
        duplicate: 10,
    }
}

/// Each sender queues its messages numbered `numbers`, in bursts of 1 to 20, the senders
/// taking turns at random, with pauses of up to 1.5 s between bursts.
pub fn chat_in_bursts(net: &mut Net, rng: &mut Rng, senders: &[usize], numbers: Range<usize>) {
    let mut next = vec![numbers.start; senders.len()];
    while next.iter().any(|&n| n < numbers.end) {
        let k = rng.range(0, senders.len() as u64 - 1) as usize;
        let burst = (rng.range(1, 20) as usize).min(numbers.end - next[k]);
        say_lines(net, senders[k], next[k]..next[k] + burst);
        next[k] += burst;
        net.run_for(ms(rng.range(0, 1500)));
    }
}
