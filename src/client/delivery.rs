//! Ordered gap-free delivery: messages held ahead of a gap, and the repair that fills it.

use std::time::{Duration, Instant};

use super::{Client, Event, Purpose};
use crate::proto::message::Message;
use crate::proto::wire::MAX_HISTORY_REQUEST;

impl Client {
    /// Files a message from the live stream (or a repair) for in-order delivery.
    pub(super) fn arrived(&mut self, m: Message) {
        if m.seq <= self.delivered {
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
            self.stored(m.seq);
        }
        self.known_latest = self.known_latest.max(m.seq);
        let own = m.from == self.config.name;
        self.ahead.entry(m.seq).or_insert((m, own));
    }

    pub(super) fn learn_latest(&mut self, now: Instant, latest: u64) {
        self.known_latest = self.known_latest.max(latest);
        self.drain(now);
    }

    /// Delivers what can be delivered in order; notes a gap.
    pub(super) fn drain(&mut self, now: Instant) {
        // Nothing is shown until the welcome says where delivery starts: fan-out that overtook
        // it was shown too early, and again after a rejoin's welcome took `delivered` back to
        // its `latest` (taken for a log reset).
        if !self.is_joined() || self.requests.values().any(|r| r.purpose == Purpose::Join) {
            return;
        }
        while let Some(entry) = self.ahead.first_entry() {
            if *entry.key() <= self.delivered {
                // Held before the welcome set where delivery starts (its join history covers
                // it): left in place it would block delivery for good.
                entry.remove();
                continue;
            }
            // Past the last seq there is nothing to deliver (only a relay that lies says so).
            if Some(*entry.key()) != self.delivered.checked_add(1) {
                break;
            }
            let (message, own) = entry.remove();
            self.delivered = message.seq;
            self.events.push_back(Event::Message {
                message,
                history: false,
                own,
            });
        }
        if self.known_latest > self.delivered {
            self.gap_since.get_or_insert(now);
        } else {
            self.gap_since = None;
        }
    }

    pub(super) fn gap_wait(&self) -> Duration {
        self.rtt.gap_wait()
    }

    pub(super) fn start_repair(&mut self, now: Instant) {
        self.gap_since = Some(now);
        if self.repair.is_some_and(|r| self.requests.contains_key(&r)) {
            return;
        }
        let Some(from) = self.delivered.checked_add(1) else {
            return;
        };
        let end = self
            .ahead
            .keys()
            .next()
            .map_or(self.known_latest, |&k| k - 1);
        if end < from {
            return;
        }
        let count = u16::try_from(end - from + 1)
            .unwrap_or(MAX_HISTORY_REQUEST)
            .min(MAX_HISTORY_REQUEST);
        self.repair = Some(self.ask(now, Purpose::Repair, from, count));
    }
}
