//! The memory of messages waiting in sessions (ahead of a missing one, for their sender's
//! allowance, or for a turn's room), counted by the whole record, not its text alone, and
//! bounded per address, per IPv6 /48 and for the relay.
//!
//! Counted by text, 10,000 sessions each parking 255 empty texts counted 0 bytes and held
//! about 240 MB. A record here costs its text and [`PARK_OVERHEAD`] for the rest: its csn, id
//! and the string's own header and allocation, and its share of the map's nodes (measured:
//! 4,000 maps of 255 one-byte texts grew a process by 126 bytes a record).
//!
//! The bounds are for messages that may wait: those ahead of a missing csn, which come again
//! if dropped. A session's message *in turn* (its next csn, waiting for the rate or for a
//! turn's room) always may wait, past the bounds: one a session, so at most the number of
//! sessions times a record; without it, others filling the memory would keep a member's
//! message from ever waiting for its fair turn.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::join::{Origin, network, origin};

/// Bytes a waiting message costs besides its text.
pub const PARK_OVERHEAD: usize = 128;
/// Most bytes of waiting messages in all sessions together.
pub const MAX_PARKED_BYTES: usize = 16 << 20;
/// Most bytes of waiting messages of the sessions of one address (IPv6: one /64).
pub const MAX_PARKED_PER_IP: usize = 1 << 20;
/// Most bytes of waiting messages of the sessions of one IPv6 /48.
pub const MAX_PARKED_PER_NETWORK: usize = 2 << 20;

/// What a waiting message with this text costs.
pub fn parked_cost(text: &str) -> usize {
    PARK_OVERHEAD + text.len()
}

/// The bytes of waiting messages, in all, per address and per IPv6 /48.
#[derive(Debug, Default)]
pub(super) struct Parked {
    total: usize,
    by_origin: HashMap<Origin, usize>,
    by_network: HashMap<Origin, usize>,
}

impl Parked {
    /// Counts `cost` more for `addr` if the bounds allow it; false if not.
    pub(super) fn admit(&mut self, addr: SocketAddr, cost: usize) -> bool {
        let here = |map: &HashMap<Origin, usize>, key: Option<Origin>| {
            key.and_then(|k| map.get(&k)).copied().unwrap_or(0)
        };
        if self.total + cost > MAX_PARKED_BYTES
            || here(&self.by_origin, Some(origin(addr))) + cost > MAX_PARKED_PER_IP
            || here(&self.by_network, network(addr)) + cost > MAX_PARKED_PER_NETWORK
        {
            return false;
        }
        self.force(addr, cost);
        true
    }

    /// Counts `cost` more for `addr`, past the bounds if it must (a message in turn, or
    /// messages that moved with their session).
    pub(super) fn force(&mut self, addr: SocketAddr, cost: usize) {
        self.total += cost;
        *self.by_origin.entry(origin(addr)).or_default() += cost;
        if let Some(n) = network(addr) {
            *self.by_network.entry(n).or_default() += cost;
        }
    }

    /// Counts `cost` less for `addr` (the message was taken, dropped or moved).
    pub(super) fn release(&mut self, addr: SocketAddr, cost: usize) {
        self.total = self.total.saturating_sub(cost);
        let less = |map: &mut HashMap<Origin, usize>, key: Origin| {
            if let Some(n) = map.get_mut(&key) {
                *n = n.saturating_sub(cost);
                if *n == 0 {
                    map.remove(&key);
                }
            }
        };
        less(&mut self.by_origin, origin(addr));
        if let Some(n) = network(addr) {
            less(&mut self.by_network, n);
        }
    }

    /// Moves `cost` from `from` to `to` (a session that moved address).
    pub(super) fn transfer(&mut self, from: SocketAddr, to: SocketAddr, cost: usize) {
        self.release(from, cost);
        self.force(to, cost);
    }

    /// Gives back the memory of addresses gone, when most are.
    pub(super) fn shrink(&mut self) {
        if self.by_origin.capacity() > 4 * self.by_origin.len() + 64 {
            self.by_origin.shrink_to_fit();
            self.by_network.shrink_to_fit();
        }
    }

    /// Bytes waiting in all.
    pub(super) fn total(&self) -> usize {
        self.total
    }
}
