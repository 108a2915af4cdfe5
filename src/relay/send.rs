//! SEND: messages taken in csn order, the reorder buffer, `base`, the message rate, dedup of
//! retransmissions, and the acknowledgements they earn.

use std::net::SocketAddr;
use std::time::Instant;

use uuid::Uuid;

use super::{REORDER_WINDOW, Relay};
use crate::proto::message::{MAX_TEXT_BYTES, Message, Millis, check_text};
use crate::proto::wire::{Acked, ErrorCode};

/// Most bytes of text waiting ahead of gaps, all sessions together.
pub const MAX_AHEAD_BYTES: usize = 8 << 20;
/// The seq remembered for a message id that was refused.
const REFUSED: u64 = 0;

/// A message accepted but not yet durable.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) message: Message,
    pub(super) sender: SocketAddr,
    pub(super) csn: u64,
}

impl Relay {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send(
        &mut self,
        now: Instant,
        wall: Millis,
        from: SocketAddr,
        csn: u64,
        base: u64,
        id: Uuid,
        text: String,
    ) {
        if base <= csn {
            self.skip_to(from, base);
        }
        let Some(expected) = self.clients.get(&from).map(|s| s.next_csn) else {
            return;
        };
        if csn > expected {
            // An earlier message of this sender is missing, or waits for the sender's
            // allowance: this one waits behind it (within the window, and while the relay's
            // memory for waiting messages lasts); if it cannot wait, it is dropped and comes
            // again.
            let (again, behind_the_rate) = self.clients.get(&from).map_or((false, false), |s| {
                (s.ahead.contains_key(&csn), s.ahead.contains_key(&expected))
            });
            if again {
                // A retransmission of a message that waits already.
                self.stats.duplicates += 1;
                return;
            }
            if behind_the_rate {
                self.stats.rate_limited += 1;
            } else {
                self.stats.out_of_order += 1;
            }
            if csn - expected <= REORDER_WINDOW {
                self.park(from, csn, id, text);
            }
            return;
        }
        if csn < expected {
            // A retransmission of a message this session already handed in.
            self.stats.duplicates += 1;
            if let Some(&(seq, time)) = self.ids.get(&id) {
                self.ack_again(from, id, csn, seq, time);
            }
            return;
        }
        let Some((allowed, again)) = self.clients.get_mut(&from).map(|mut s| {
            // An episode of sending too fast ends when the sender has kept to the rate long
            // enough to have its whole burst again. (Ended by any message taken, it was told
            // again after every message taken at the rate: 20 ERRORs a second under a steady
            // flood, and a notice each for the user of a client pasting a long text.)
            if s.messages.is_full(now) {
                s.told_slow = false;
            }
            // A copy of this message may wait already (put there when the rate stopped it):
            // this one takes its place.
            let copy = s.ahead.remove(&csn);
            (s.messages.take(now), copy)
        }) else {
            return;
        };
        if let Some((_, copy)) = &again {
            self.ahead_bytes -= copy.len();
        }
        if allowed {
            self.take_in_turn(wall, from, csn, id, text);
            self.take_waiting(now, wall, from);
            return;
        }
        // Too fast: it waits for the allowance to refill.
        self.park(from, csn, id, text);
        // Counted once a message, not at each of its retransmissions while it waits.
        if again.is_some() {
            self.stats.duplicates += 1;
        } else {
            self.stats.rate_limited += 1;
        }
        self.take_waiting(now, wall, from);
    }

    /// Takes, in csn order, the messages of `from` that wait for their turn, as long as the
    /// rate allows; a message the rate stops stays waiting, and the sender is told once an
    /// episode.
    pub(super) fn take_waiting(&mut self, now: Instant, wall: Millis, from: SocketAddr) {
        loop {
            let next = self.clients.get_mut(&from).and_then(|mut s| {
                let next = s.next_csn;
                let id = s.ahead.get(&next)?.0;
                if !s.messages.take(now) {
                    return Some(Err(id));
                }
                s.ahead.remove(&next).map(|(id, text)| Ok((next, id, text)))
            });
            match next {
                None => return,
                Some(Ok((csn, id, text))) => {
                    self.ahead_bytes -= text.len();
                    self.take_in_turn(wall, from, csn, id, text);
                }
                Some(Err(id)) => {
                    // Too fast: the message waits, and is taken as the allowance refills (at
                    // the relay's tick, or when the sender's next datagram comes).
                    let tell = self
                        .clients
                        .get_mut(&from)
                        .is_some_and(|mut s| !std::mem::replace(&mut s.told_slow, true));
                    if tell {
                        let message = format!(
                            "too many messages: the relay takes {} a second ({} at once); the rest wait",
                            self.config.rate, self.config.burst
                        );
                        self.error(from, ErrorCode::RateLimited, id, message);
                    }
                    return;
                }
            }
        }
    }

    /// Keeps a message of `from` waiting for its turn, if the relay has the memory (if not, it
    /// is dropped and comes again).
    fn park(&mut self, from: SocketAddr, csn: u64, id: Uuid, text: String) {
        if self.ahead_bytes + text.len() <= MAX_AHEAD_BYTES
            && let Some(mut s) = self.clients.get_mut(&from)
        {
            self.ahead_bytes += text.len();
            s.ahead.insert(csn, (id, text));
        }
    }

    /// The client saw every csn below `base` acknowledged: whatever the session still waits
    /// for below it is stored (perhaps in an earlier session), so it waits no more.
    fn skip_to(&mut self, from: SocketAddr, base: u64) {
        if let Some(mut s) = self.clients.get_mut(&from)
            && base > s.next_csn
        {
            s.next_csn = base;
            let keep = s.ahead.split_off(&base);
            let freed: usize = s.ahead.values().map(|(_, t)| t.len()).sum();
            s.ahead = keep;
            self.ahead_bytes -= freed;
        }
    }

    /// Takes the message with the csn the session expects.
    fn take_in_turn(&mut self, wall: Millis, from: SocketAddr, csn: u64, id: Uuid, text: String) {
        let Some(sender) = self.clients.get_mut(&from).map(|mut s| {
            s.next_csn += 1;
            s.name.clone()
        }) else {
            return;
        };
        if let Some(&(seq, time)) = self.ids.get(&id) {
            // Stored before (in an earlier session, say): acknowledged again, stored once.
            self.stats.duplicates += 1;
            return self.ack_again(from, id, csn, seq, time);
        }
        if let Err(e) = check_text(&text) {
            self.stats.refused += 1;
            self.remember(id, REFUSED, Millis(0));
            return self.error(from, ErrorCode::BadText, id, e.to_string());
        }
        // The wall clock as it is: the room's order is the seq's alone, so a clock stepped
        // back costs nothing but odd-looking times, and one stepped forward and back again
        // freezes nothing (clamped to the last time, every later time stuck at the future).
        let time = wall;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.remember(id, seq, time);
        self.pending.push(Pending {
            message: Message {
                seq,
                id,
                from: sender,
                text,
                time,
            },
            sender: from,
            csn,
        });
    }

    /// Answers a retransmission of a message handled before: its acknowledgement (after the
    /// commit, if it is not durable yet), or its refusal.
    fn ack_again(&mut self, to: SocketAddr, id: Uuid, csn: u64, seq: u64, time: Millis) {
        if seq == REFUSED {
            let message = format!(
                "the message was refused: 1 to {MAX_TEXT_BYTES} bytes, no control characters but tab"
            );
            return self.error(to, ErrorCode::BadText, id, message);
        }
        self.acknowledge(to, Acked { id, csn, seq, time });
    }

    pub(super) fn remember(&mut self, id: Uuid, seq: u64, time: Millis) {
        self.ids.insert(id, (seq, time));
        self.id_order.push_back(id);
        while self.id_order.len() > self.config.dedup {
            if let Some(old) = self.id_order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }
}
