//! The turn's room for new messages, and the fair queue of those over it.
//!
//! A turn takes at most about [`FANOUT_PER_TURN`] bytes of fan-out: each message it takes,
//! times the members of its room it goes to (so a message costs its sender what it costs the
//! relay: a room of 1,000 is charged 100 times a room of 10). While there is room and nobody waits, a message in its
//! sender's turn is taken at once; past it, messages wait in their sessions, and at the end of
//! the turn the room is shared by deficit round robin across the addresses senders come from,
//! then round robin across each address's sessions (`fair.rs`). So many senders, each at its
//! own rate, share the relay's capacity as equals per address, and the members who chat at an
//! ordinary pace see their messages taken within a turn or two, whatever the others send.

use std::net::SocketAddr;
use std::time::Instant;

use super::Relay;
use super::rooms::RoomId;
use crate::proto::message::Millis;
use crate::proto::wire::MAX_PACKET;

/// Bytes of fan-out a turn takes at most: a few thousand full datagrams, some milliseconds of
/// sending, so that the loop is soon back at its socket.
pub const FANOUT_PER_TURN: usize = 4 << 20;
/// Bytes of messages an address is credited with when its turn in the round comes, for each
/// member of the largest room they go to.
const INTAKE_QUANTUM: i64 = 256;
/// Full datagrams to each member a turn may take at least: a turn costs the relay something
/// for every member (its datagrams queued, each checked against its session as it leaves),
/// so a turn to a large room must carry enough to be worth it (with 10,000 members and one
/// datagram each, W3 delivered 40% less).
const DATAGRAMS_PER_MEMBER: usize = 8;

/// The bytes a message of `name` with `text` takes in a fan-out datagram (with the small
/// varints of consecutive records).
pub(super) fn fanout_cost_of(name: &str, text: &str) -> i64 {
    (16 + 1 + name.len() + 2 + text.len() + 4) as i64
}

impl Relay {
    /// What a message of `from` with `text` to the room it calls `number` costs the turn's
    /// room: its record for each member it goes to (nothing for a room it is not in: it is
    /// refused).
    pub(super) fn fanout_cost(&self, from: SocketAddr, number: u16, text: &str) -> i64 {
        self.clients.get(&from).map_or(0, |s| {
            s.room_of(number)
                .map_or(0, |room| self.cost_in(room, &s.name, text))
        })
    }

    /// What a message of `name` with `text` costs in `room`.
    pub(super) fn cost_in(&self, room: RoomId, name: &str, text: &str) -> i64 {
        let audience = self.rooms[room].members.len().saturating_sub(1).max(1);
        fanout_cost_of(name, text) * audience as i64
    }

    /// What the message of `from` in turn (waiting) costs, if one waits.
    pub(super) fn waiting_cost(&self, from: SocketAddr) -> Option<i64> {
        let s = self.clients.get(&from)?;
        let (_, number, text) = s.ahead.get(&s.next_csn)?;
        let cost = s
            .room_of(*number)
            .map_or(0, |room| self.cost_in(room, &s.name, text));
        Some(cost)
    }

    /// The most members a message goes to: those of the largest room but one.
    fn audience(&self) -> usize {
        (self.rooms.iter())
            .map(|(_, r)| r.members.len())
            .max()
            .unwrap_or(0)
            .saturating_sub(1)
            .max(1)
    }

    /// Whether a message of `cost` may be taken at once: the turn has room and nobody waits
    /// for theirs.
    pub(super) fn has_room(&self, cost: i64) -> bool {
        self.intake.is_empty() && self.intake_left >= cost
    }

    /// Counts a message taken against the turn's room.
    pub(super) fn use_room(&mut self, cost: i64) {
        self.intake_left -= cost;
    }

    /// Puts `from`, whose message in turn waits for room, in the fair queue (once).
    pub(super) fn queue_intake(&mut self, from: SocketAddr) {
        let queued = self
            .clients
            .get_mut(&from)
            .is_some_and(|mut s| !std::mem::replace(&mut s.queued, true));
        if queued {
            self.intake.insert(from);
        }
    }

    /// Shares what is left of the turn's room among the sessions whose messages wait for it,
    /// then opens the next turn's room.
    pub(super) fn take_fairly(&mut self, now: Instant, wall: Millis) {
        // Memberships do not change while messages are taken: one look at the rooms a turn.
        let audience = self.audience();
        let quantum = INTAKE_QUANTUM * audience as i64;
        while self.intake_left > 0 {
            let Some(from) = self.intake.next(quantum) else {
                break;
            };
            let before = self.intake_left;
            let more = match self.take_next(now, wall, from) {
                Some(true) => self
                    .clients
                    .get(&from)
                    .is_some_and(|s| s.ahead.contains_key(&s.next_csn)),
                Some(false) => {
                    // Over its own rate: it waits for its allowance (the tick comes back).
                    self.tell_slow(from);
                    false
                }
                None => false,
            };
            self.intake.served(before - self.intake_left, more);
            if !more && let Some(mut s) = self.clients.get_mut(&from) {
                s.queued = false;
            }
        }
        self.intake_left = turn_room(audience);
    }
}

/// The room of a turn, in bytes of fan-out: [`FANOUT_PER_TURN`], and at least
/// [`DATAGRAMS_PER_MEMBER`] full datagrams to each of the `audience` a message of the largest
/// room goes to.
fn turn_room(audience: usize) -> i64 {
    FANOUT_PER_TURN.max(DATAGRAMS_PER_MEMBER * MAX_PACKET * audience) as i64
}
