//! The memory of messages waiting in sessions (ahead of a missing one, or for their sender's
//! allowance), counted by the whole record, not its text alone, and bounded per address and
//! for the relay.
//!
//! Counted by text, 10,000 sessions each parking 255 empty texts counted 0 bytes and held
//! about 240 MB. A record here costs its text and [`PARK_OVERHEAD`] for the rest: its csn, id
//! and the string's own header and allocation, and its share of the map's nodes (measured:
//! 4,000 maps of 255 one-byte texts grew a process by 126 bytes a record).

use std::collections::HashMap;

use super::join::Origin;

/// Bytes a waiting message costs besides its text.
pub const PARK_OVERHEAD: usize = 128;
/// Most bytes of waiting messages in all sessions together.
pub const MAX_PARKED_BYTES: usize = 16 << 20;
/// Most bytes of waiting messages of the sessions of one address (IPv6: one /64).
pub const MAX_PARKED_PER_IP: usize = 1 << 20;

/// What a waiting message with this text costs.
pub fn parked_cost(text: &str) -> usize {
    PARK_OVERHEAD + text.len()
}

/// The bytes of waiting messages, in all and per address.
#[derive(Debug, Default)]
pub(super) struct Parked {
    total: usize,
    by_origin: HashMap<Origin, usize>,
}

impl Parked {
    /// Counts `cost` more for `origin` if both bounds allow it; false if not.
    pub(super) fn admit(&mut self, origin: Origin, cost: usize) -> bool {
        let here = self.by_origin.get(&origin).copied().unwrap_or(0);
        if self.total + cost > MAX_PARKED_BYTES || here + cost > MAX_PARKED_PER_IP {
            return false;
        }
        self.total += cost;
        *self.by_origin.entry(origin).or_default() += cost;
        true
    }

    /// Counts `cost` less for `origin` (the message was taken, dropped or moved).
    pub(super) fn release(&mut self, origin: Origin, cost: usize) {
        self.total = self.total.saturating_sub(cost);
        if let Some(n) = self.by_origin.get_mut(&origin) {
            *n = n.saturating_sub(cost);
            if *n == 0 {
                self.by_origin.remove(&origin);
            }
        }
    }

    /// Moves `cost` from `from` to `to` (a session that moved address), over the bound if it
    /// must: what already waits is not dropped.
    pub(super) fn transfer(&mut self, from: Origin, to: Origin, cost: usize) {
        self.release(from, cost);
        self.total += cost;
        *self.by_origin.entry(to).or_default() += cost;
    }

    /// Bytes waiting in all.
    pub(super) fn total(&self) -> usize {
        self.total
    }
}
