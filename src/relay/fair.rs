//! Fair shares under load: deficit round robin (Shreedhar and Varghese, 1995) across where
//! clients come from (an IPv4 address, or an IPv6 /48: one holder of many /64s gets one
//! share), and round robin across the sessions from there.
//!
//! When more is asked of the relay in a turn than the turn's budget holds (messages to take
//! and fan out, pages of history and names to send), whoever asks from one address, with as
//! many sessions as it may have, gets the share of one address: the others are served as if it
//! were not there. Each address, when its turn in the round comes, is credited with a quantum
//! of cost; its sessions are served in turn, one unit each, for as long as the credit lasts,
//! and an address that spends more than its credit (a unit's cost is known only once it is
//! done) carries the debt into its next round.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

use super::join::{Origin, share};

/// The sessions that have something to be served, grouped by where they come from, in the
/// order they will be served.
#[derive(Debug, Default)]
pub(super) struct Rounds {
    /// The addresses with sessions waiting, the one being served first.
    order: VecDeque<Origin>,
    /// Each address's sessions and credit.
    queues: HashMap<Origin, Queue>,
    /// The sessions in the rounds, each once.
    members: HashSet<SocketAddr>,
}

/// One address's sessions waiting to be served.
#[derive(Debug, Default)]
struct Queue {
    /// Cost it may still spend in this round (negative: a debt carried into the next).
    deficit: i64,
    /// Whether this round's quantum was credited already.
    credited: bool,
    /// The sessions, the next to be served first.
    sessions: VecDeque<SocketAddr>,
}

impl Rounds {
    /// True when nobody waits.
    pub(super) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Gives back the memory of a crowd gone, when most of it is.
    pub(super) fn shrink(&mut self) {
        if self.members.capacity() > 4 * self.members.len() + 64 {
            self.members.shrink_to_fit();
            self.queues.shrink_to_fit();
            self.order.shrink_to_fit();
        }
    }

    /// Adds `addr` at the back of the sessions from where it comes, unless it is in already.
    pub(super) fn insert(&mut self, addr: SocketAddr) {
        if !self.members.insert(addr) {
            return;
        }
        let key = share(addr);
        let queue = self.queues.entry(key).or_insert_with(|| {
            self.order.push_back(key);
            Queue::default()
        });
        queue.sessions.push_back(addr);
    }

    /// The session to serve next, its address credited with `quantum` when the address's
    /// turn begins. Call [`Rounds::served`] for it before asking again.
    pub(super) fn next(&mut self, quantum: i64) -> Option<SocketAddr> {
        loop {
            let origin = *self.order.front()?;
            let queue = self
                .queues
                .get_mut(&origin)
                .expect("every address in order has a queue");
            if !queue.credited {
                queue.credited = true;
                queue.deficit = queue.deficit.min(0) + quantum;
            }
            if queue.deficit > 0 {
                return queue.sessions.front().copied();
            }
            // Its credit is spent: the next address's turn.
            queue.credited = false;
            self.order.rotate_left(1);
        }
    }

    /// The session [`Rounds::next`] gave was served at `cost` (0 when it had nothing it could
    /// be served now); it goes to the back of its address's sessions if `again`, and leaves
    /// the rounds if not.
    pub(super) fn served(&mut self, cost: i64, again: bool) {
        let Some(&origin) = self.order.front() else {
            return;
        };
        let queue = self
            .queues
            .get_mut(&origin)
            .expect("every address in order has a queue");
        queue.deficit -= cost;
        if let Some(addr) = queue.sessions.pop_front() {
            if again {
                queue.sessions.push_back(addr);
            } else {
                self.members.remove(&addr);
            }
        }
        if queue.sessions.is_empty() {
            // Nothing left to serve there: its credit (or debt) goes with it, as in DRR.
            self.queues.remove(&origin);
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Serves `rounds` until `budget` is spent, each session's units costing `cost`, and
    /// returns whom it served, in order.
    fn serve(
        rounds: &mut Rounds,
        quantum: i64,
        mut budget: i64,
        cost: impl Fn(SocketAddr) -> i64,
    ) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        while budget > 0 {
            let Some(a) = rounds.next(quantum) else { break };
            out.push(a);
            budget -= cost(a);
            rounds.served(cost(a), true);
        }
        out
    }

    #[test]
    fn an_address_with_many_sessions_gets_one_share() {
        let mut rounds = Rounds::default();
        // 64 sessions from one address, one from each of two others.
        let crowd: Vec<SocketAddr> = (0..64)
            .map(|p| addr(&format!("10.0.0.1:{}", 1000 + p)))
            .collect();
        for &a in &crowd {
            rounds.insert(a);
        }
        let (alice, bob) = (addr("10.0.0.2:1000"), addr("[2001:db8::1]:1000"));
        rounds.insert(alice);
        rounds.insert(bob);
        let served = serve(&mut rounds, 100, 3000, |_| 50);
        let count = |a: SocketAddr| served.iter().filter(|&&s| s == a).count();
        assert_eq!(served.len(), 60);
        assert_eq!((count(alice), count(bob)), (20, 20), "a third each");
        let crowd_total: usize = crowd.iter().map(|&a| count(a)).sum();
        assert_eq!(crowd_total, 20);
        // Within the crowd's share, its sessions take turns.
        assert!(crowd[..20].iter().all(|&a| count(a) == 1));
    }

    #[test]
    fn costs_above_the_quantum_are_carried_as_debt() {
        let mut rounds = Rounds::default();
        let (big, small) = (addr("10.0.0.1:1"), addr("10.0.0.2:1"));
        rounds.insert(big);
        rounds.insert(small);
        // The big one's units cost 4 quanta: it is served once for every 4 of the other's.
        let served = serve(&mut rounds, 100, 4000, |a| if a == big { 400 } else { 100 });
        let bigs = served.iter().filter(|&&a| a == big).count();
        let smalls = served.iter().filter(|&&a| a == small).count();
        assert!(
            (4 * bigs).abs_diff(smalls) <= 4,
            "{bigs} big, {smalls} small"
        );
    }

    #[test]
    fn who_has_nothing_more_leaves_and_comes_back_fresh() {
        let mut rounds = Rounds::default();
        let a = addr("10.0.0.1:1");
        rounds.insert(a);
        assert_eq!(rounds.next(10), Some(a));
        rounds.served(500, false);
        assert!(rounds.is_empty());
        assert_eq!(rounds.next(10), None);
        // Its debt went with it: back, it is served at once.
        rounds.insert(a);
        assert_eq!(rounds.next(10), Some(a));
    }
}
