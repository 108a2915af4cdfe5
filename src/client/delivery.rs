//! Ordered gap-free delivery, room by room: messages held ahead of a gap, and the repair that fills it.

use std::time::{Duration, Instant};

use super::{Client, Event, Purpose};
use crate::proto::message::Message;
use crate::proto::wire::MAX_HISTORY_REQUEST;

impl Client {
    /// Files a message of room `r` from the live stream (or a repair) for in-order delivery.
    pub(super) fn arrived(&mut self, r: usize, m: Message) {
        if m.seq <= self.rooms[r].delivered {
            return;
        }
        // A message of ours whose acknowledgement was lost: it is stored, so it leaves the
        // outbox (the `base` of our next SEND tells the relay not to wait for its csn).
        if let Some(i) = self
            .outbox
            .iter()
            .take(self.sendable())
            .position(|o| o.id == m.id)
        {
            self.outbox.remove(i);
            self.stored(r, m.seq);
        }
        let own = m.from == self.config.name;
        let c = &mut self.rooms[r];
        c.known_latest = c.known_latest.max(m.seq);
        c.ahead.entry(m.seq).or_insert((m, own));
    }

    pub(super) fn learn_latest(&mut self, now: Instant, r: usize, latest: u64) {
        let c = &mut self.rooms[r];
        c.known_latest = c.known_latest.max(latest);
        self.drain(now, r);
    }

    /// Delivers what can be delivered of room `r` in order; notes a gap.
    pub(super) fn drain(&mut self, now: Instant, r: usize) {
        // Nothing is shown until the welcome (or the room's ENTERED) says where delivery
        // starts: fan-out that overtook it was shown too early, and again after a rejoin's
        // welcome took `delivered` back to its `latest` (taken for a log reset).
        if !self.is_joined()
            || self.rooms[r].number.is_none()
            || self.requests.contains_key(&(r, 0))
        {
            return;
        }
        let c = &mut self.rooms[r];
        while let Some(entry) = c.ahead.first_entry() {
            if *entry.key() <= c.delivered {
                // Held before the welcome set where delivery starts (its join history covers
                // it): left in place it would block delivery for good.
                entry.remove();
                continue;
            }
            // Past the last seq there is nothing to deliver (only a relay that lies says so).
            if Some(*entry.key()) != c.delivered.checked_add(1) {
                break;
            }
            let (message, own) = entry.remove();
            c.delivered = message.seq;
            self.events.push_back(Event::Message {
                room: c.name.clone(),
                message,
                history: false,
                own,
            });
        }
        if c.known_latest > c.delivered {
            c.gap_since.get_or_insert(now);
        } else {
            c.gap_since = None;
        }
    }

    pub(super) fn gap_wait(&self) -> Duration {
        self.rtt.gap_wait()
    }

    pub(super) fn start_repair(&mut self, now: Instant, r: usize) {
        self.rooms[r].gap_since = Some(now);
        if (self.rooms[r].repair).is_some_and(|q| self.requests.contains_key(&(r, q))) {
            return;
        }
        let c = &self.rooms[r];
        let Some(from) = c.delivered.checked_add(1) else {
            return;
        };
        let end = c.ahead.keys().next().map_or(c.known_latest, |&k| k - 1);
        if end < from {
            return;
        }
        let count = u16::try_from(end - from + 1)
            .unwrap_or(MAX_HISTORY_REQUEST)
            .min(MAX_HISTORY_REQUEST);
        self.rooms[r].repair = Some(self.ask(now, r, Purpose::Repair, from, count));
    }
}
