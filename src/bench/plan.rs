//! What the bench's load is: its clients, senders, rooms and relays, and who sends to whom.

use std::ops::Range;
use std::time::{Duration, Instant};

/// What the load is.
#[derive(Debug)]
pub(super) struct Plan {
    /// Simulated clients.
    pub(super) clients: usize,
    /// Messages each sender sends; the first `per_sender.len()` clients send.
    pub(super) per_sender: Vec<u64>,
    /// Bytes of text a message.
    pub(super) size: usize,
    /// Most csns a sender may be ahead of its oldest unacknowledged message.
    pub(super) window: u64,
    /// Interval between two messages of one sender (`None`: as fast as the window allows).
    pub(super) every: Option<Duration>,
    /// Clients in each room, in the order of their numbers (0: all in one room).
    pub(super) room: usize,
    /// Relays the clients are shared among, in the order of their numbers (the senders, the
    /// first clients, on the first).
    pub(super) relays: usize,
    /// When the run is given up.
    pub(super) deadline: Instant,
    /// What the clients' names begin with, before their numbers: `c`, or a run's own
    /// beginning against a relay that outlives the run (a name belongs to the first key that
    /// took it).
    pub(super) names: String,
}

impl Plan {
    /// Messages sent in all.
    pub(super) fn messages(&self) -> u64 {
        self.per_sender.iter().sum()
    }

    /// Deliveries expected in all: each message reaches every client of its room but its
    /// sender.
    pub(super) fn deliveries(&self) -> u64 {
        (0..self.clients).map(|i| self.expected(i)).sum()
    }

    /// How many rooms the clients are in.
    pub(super) fn rooms(&self) -> usize {
        match self.room {
            0 => 1,
            n => room_count(self.clients, n),
        }
    }

    /// The number of the relay client `i` joins: an equal share of the clients on each.
    pub(super) fn relay_of(&self, i: usize) -> usize {
        i * self.relays.max(1) / self.clients.max(1)
    }

    /// The room client `i` is in: the lobby when all are in one.
    pub(super) fn room_of(&self, i: usize) -> String {
        match self.room {
            0 => crate::proto::room::DEFAULT_ROOM.to_owned(),
            n => room_name(i / n),
        }
    }

    /// The numbers of the senders in client `i`'s room: consecutive, as the rooms are.
    pub(super) fn senders_of(&self, i: usize) -> Range<u32> {
        let senders = self.per_sender.len();
        let (first, end) = match self.room {
            0 => (0, senders),
            n => ((i / n * n).min(senders), ((i / n + 1) * n).min(senders)),
        };
        u32::try_from(first).unwrap_or(u32::MAX)..u32::try_from(end).unwrap_or(u32::MAX)
    }

    /// Messages client `i` is to deliver: those of the other senders of its room.
    pub(super) fn expected(&self, i: usize) -> u64 {
        let r = self.senders_of(i);
        (r.start as usize..r.end as usize)
            .filter(|&j| j != i)
            .map(|j| self.per_sender[j])
            .sum()
    }
}

/// The name of the bench's `k`th room (of rooms of `--room` clients each).
fn room_name(k: usize) -> String {
    format!("r{k}")
}

/// The names of the rooms of `clients` in rooms of `room` each (none when all are in the
/// lobby, `room` 0).
pub(super) fn room_names(clients: usize, room: usize) -> Vec<String> {
    match room {
        0 => Vec::new(),
        n => (0..room_count(clients, n)).map(room_name).collect(),
    }
}

/// How many rooms of `room` clients each (`room` not 0) `clients` fill.
fn room_count(clients: usize, room: usize) -> usize {
    clients.div_ceil(room)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_have_consecutive_senders() {
        let plan = Plan {
            clients: 25,
            per_sender: vec![1; 12],
            size: 26,
            window: 1,
            every: None,
            room: 10,
            relays: 1,
            deadline: Instant::now(),
            names: "c".into(),
        };
        assert_eq!(plan.senders_of(3), 0..10);
        assert_eq!(plan.senders_of(15), 10..12);
        assert_eq!(plan.senders_of(24), 12..12);
        assert_eq!(plan.expected(3), 9);
        assert_eq!(plan.expected(15), 2);
        assert_eq!(plan.expected(10), 1);
        assert_eq!(plan.expected(24), 0);
        assert_eq!(Plan { room: 0, ..plan }.expected(20), 12);
    }

    #[test]
    fn clients_are_shared_equally_among_the_relays_the_senders_first() {
        let plan = Plan {
            clients: 60,
            per_sender: vec![1],
            size: 26,
            window: 1,
            every: None,
            room: 0,
            relays: 3,
            deadline: Instant::now(),
            names: "c".into(),
        };
        let on = |r: usize| (0..60).filter(|&i| plan.relay_of(i) == r).count();
        assert_eq!((on(0), on(1), on(2)), (20, 20, 20));
        assert_eq!(
            (plan.relay_of(0), plan.relay_of(19), plan.relay_of(20)),
            (0, 0, 1)
        );
        assert_eq!(plan.relay_of(59), 2);
        assert_eq!(Plan { relays: 1, ..plan }.relay_of(59), 0);
    }
}
