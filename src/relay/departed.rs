//! Clients that said goodbye: a JOIN of theirs that arrives after their LEAVE (a duplicate the
//! network held back) is an echo of the past, not a client, and must not put a ghost in the
//! room. Remembered for a while, and at most so many.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// How long a departed client's JOINs are taken for echoes: far longer than any datagram
/// stays in flight between client and relay, and than the client's longest backoff.
pub const DEPARTED_FOR: Duration = Duration::from_secs(30);
/// Departed clients remembered at most (16 bytes each, and a time): when more leave within
/// [`DEPARTED_FOR`], the oldest are forgotten first.
pub const MAX_DEPARTED: usize = 4096;

/// The client instances that left, oldest first.
#[derive(Debug, Default)]
pub struct Departed {
    order: VecDeque<(Instant, Uuid)>,
    instances: HashSet<Uuid>,
}

impl Departed {
    /// Remembers that the client `instance` left at `now`.
    pub fn record(&mut self, now: Instant, instance: Uuid) {
        self.forget_old(now);
        if self.order.len() >= MAX_DEPARTED
            && let Some((_, oldest)) = self.order.pop_front()
        {
            self.instances.remove(&oldest);
        }
        if self.instances.insert(instance) {
            self.order.push_back((now, instance));
        }
    }

    /// True when `instance` left less than [`DEPARTED_FOR`] ago.
    pub fn has(&mut self, now: Instant, instance: &Uuid) -> bool {
        self.forget_old(now);
        self.instances.contains(instance)
    }

    /// How many are remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when none is.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn forget_old(&mut self, now: Instant) {
        while let Some(&(at, instance)) = self.order.front()
            && now.saturating_duration_since(at) >= DEPARTED_FOR
        {
            self.order.pop_front();
            self.instances.remove(&instance);
        }
        if self.order.capacity() > 2 * self.order.len().max(16) {
            self.order.shrink_to_fit();
            self.instances.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_for_a_while_and_at_most_so_many() {
        let t0 = Instant::now();
        let mut d = Departed::default();
        let a = Uuid::new_v4();
        d.record(t0, a);
        assert!(d.has(t0 + Duration::from_secs(29), &a));
        assert!(!d.has(t0 + DEPARTED_FOR, &a));
        assert!(d.is_empty());
        let many: Vec<Uuid> = (0..MAX_DEPARTED + 10).map(|_| Uuid::new_v4()).collect();
        for &i in &many {
            d.record(t0, i);
        }
        assert_eq!(d.len(), MAX_DEPARTED);
        assert!(!d.has(t0, &many[0]), "the oldest went first");
        assert!(d.has(t0, &many[MAX_DEPARTED + 9]));
    }
}
