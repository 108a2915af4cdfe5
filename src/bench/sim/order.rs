//! A simulated client's books of order: its own messages acknowledged, each message of the
//! others delivered in its room's order (at once when it is next, as nearly everything is, or
//! held until the gap before it is filled), and what is out of order or another room's counted.

use std::time::Instant;

use uuid::Uuid;

use super::{Held, Sim};
use crate::bench::ledger::Ledger;

impl Sim {
    pub(super) fn acked(&mut self, now: Instant, csn: u64, seq: u64, ledger: &mut Ledger) {
        let Some(o) = &mut self.outbox else { return };
        let Some(i) = o.in_flight.iter().position(|m| m.csn == csn) else {
            return;
        };
        let m = o.in_flight.remove(i).expect("found");
        if m.sends == 1 {
            o.rtt.sample(now.saturating_duration_since(m.sent_at));
        }
        o.acked += 1;
        ledger.acked += 1;
        ledger.last_ack = Some(now);
        if seq >= self.next_seq {
            self.ahead.insert(seq, Held::Own);
        }
    }

    /// Delivers a message, or files it for in-order delivery; false when its place is passed
    /// or taken.
    pub(super) fn arrived(
        &mut self,
        now: Instant,
        seq: u64,
        id: Uuid,
        ledger: &mut Ledger,
    ) -> bool {
        if seq < self.next_seq || self.ahead.contains_key(&seq) {
            return false;
        }
        let held = match ledger.parse(id) {
            Some((sender, _)) if self.outbox.as_ref().is_some_and(|o| o.sender == sender) => {
                Held::Own
            }
            Some((sender, index)) => Held::Other { sender, index },
            None => {
                ledger.misordered += 1;
                Held::Own
            }
        };
        if seq == self.next_seq && self.ahead.is_empty() {
            // In order, as nearly everything is: delivered now, without the map.
            self.deliver(now, held, ledger);
        } else {
            self.ahead.insert(seq, held);
        }
        true
    }

    /// Delivers the message of `next_seq` (counted if it is another's) and moves past it.
    fn deliver(&mut self, now: Instant, held: Held, ledger: &mut Ledger) {
        if let Held::Other { sender, index } = held {
            let slot = sender.checked_sub(self.first_sender).map(|k| k as usize);
            match slot.and_then(|k| self.next_index.get_mut(k)) {
                Some(next) if *next == index => *next = index + 1,
                Some(next) => {
                    ledger.misordered += 1;
                    *next = index + 1;
                }
                // A sender of another room: a leak between rooms.
                None => ledger.misordered += 1,
            }
            self.delivered += 1;
            ledger.deliver(now, sender, index, self.relay);
        }
        self.latest = self.latest.max(self.next_seq);
        self.next_seq += 1;
    }

    /// Delivers what can be delivered in order; notes a gap.
    pub(super) fn drain(&mut self, now: Instant, ledger: &mut Ledger) {
        while let Some(entry) = self.ahead.first_entry() {
            if *entry.key() != self.next_seq {
                break;
            }
            let held = entry.remove();
            self.deliver(now, held, ledger);
        }
        if let Some((&last, _)) = self.ahead.last_key_value() {
            self.latest = self.latest.max(last);
        }
        if self.latest >= self.next_seq {
            self.gap_since.get_or_insert(now);
        } else {
            self.gap_since = None;
        }
    }
}
