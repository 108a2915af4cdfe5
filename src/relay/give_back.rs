//! Giving back the room a crowd grew: a map or a queue keeps its largest size once its entries are gone, so ten thousand sessions come and gone would keep theirs for good.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};

/// A collection that can give back the room of entries it no longer holds.
pub(crate) trait GiveBack {
    /// Shrinks to fit when most of the room is empty (more than four times what is held,
    /// beyond a little): cheap to call every tick. A map of steady size never shrinks and
    /// regrows; a queue emptied every turn does, once a tick (an allocation a second).
    fn give_back(&mut self);
}

/// True when `capacity` is mostly room nothing uses.
pub(crate) fn oversized(len: usize, capacity: usize) -> bool {
    capacity > 4 * len + 64
}

impl<K: Eq + Hash, V, S: BuildHasher> GiveBack for HashMap<K, V, S> {
    fn give_back(&mut self) {
        if oversized(self.len(), self.capacity()) {
            self.shrink_to_fit();
        }
    }
}

impl<T: Eq + Hash, S: BuildHasher> GiveBack for HashSet<T, S> {
    fn give_back(&mut self) {
        if oversized(self.len(), self.capacity()) {
            self.shrink_to_fit();
        }
    }
}

impl<T> GiveBack for VecDeque<T> {
    fn give_back(&mut self) {
        if oversized(self.len(), self.capacity()) {
            self.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_mostly_empty_shrinks_and_a_full_one_does_not() {
        let mut map: HashMap<u32, [u8; 64]> = (0..10_000).map(|i| (i, [0; 64])).collect();
        let full = map.capacity();
        map.give_back();
        assert_eq!(map.capacity(), full, "a full map keeps its room");
        map.retain(|k, _| *k < 10);
        map.give_back();
        assert!(map.capacity() < 100, "room for {} kept", map.capacity());
        assert_eq!(map.len(), 10);
    }

    #[test]
    fn a_queue_mostly_empty_shrinks() {
        let mut queue: VecDeque<u64> = (0..10_000).collect();
        queue.drain(..9_990);
        queue.give_back();
        assert!(queue.capacity() < 100, "room for {} kept", queue.capacity());
        assert_eq!(queue.front(), Some(&9_990));
    }
}
