//! SEND: messages taken in csn order, the reorder buffer, `base`, the message rate, dedup of
//! retransmissions, and the acknowledgements they earn. (The turn's room for new messages,
//! and the fair queue of those over it, are in `intake.rs`.)

use std::net::SocketAddr;
use std::time::Instant;

use uuid::Uuid;

use super::parked::parked_cost;
use super::rooms::RoomId;
use super::{REORDER_WINDOW, Relay};
use crate::proto::message::{MAX_TEXT_BYTES, Message, Millis, check_text};
use crate::proto::wire::{Acked, ErrorCode};

/// The seq remembered for a message id that was refused.
const REFUSED: u64 = 0;
/// The seq remembered for a message id refused for naming a room its session was not in: a
/// retransmission of it (its ERROR lost) is refused again.
const NOT_IN_ROOM: u64 = u64::MAX;
/// The seq of a message taken for a shared log until the store gives it one (see
/// `shared.rs`): it is no seq, and an acknowledgement that names it waits.
pub(super) const UNSTORED: u64 = u64::MAX - 1;
/// The room remembered for a message id that was refused: none.
const NO_ROOM: RoomId = RoomId::MAX;

/// A message accepted but not yet durable.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) message: Message,
    pub(super) sender: SocketAddr,
    pub(super) csn: u64,
    /// Its room.
    pub(super) room: RoomId,
    /// The sender's number for the room.
    pub(super) number: u16,
}

impl Relay {
    /// Takes one message of a SEND; false when it could not wait for want of room (then
    /// those after it in the datagram cannot either).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send(
        &mut self,
        now: Instant,
        wall: Millis,
        from: SocketAddr,
        csn: u64,
        base: u64,
        number: u16,
        id: Uuid,
        text: String,
    ) -> bool {
        if base <= csn {
            self.skip_to(from, base);
        }
        let Some(expected) = self.clients.get(&from).map(|s| s.next_csn) else {
            return false;
        };
        if csn > expected {
            // An earlier message of this sender is missing, or waits for the sender's
            // allowance or the turn's room: this one waits behind it (within the window, and
            // while the relay's memory for waiting messages lasts); if it cannot wait, it is
            // dropped and comes again.
            let (again, behind_the_rate) = self.clients.get(&from).map_or((false, false), |s| {
                (s.ahead.contains_key(&csn), s.ahead.contains_key(&expected))
            });
            if again {
                // A retransmission of a message that waits already.
                self.stats.duplicates += 1;
                return true;
            }
            if behind_the_rate {
                self.stats.rate_limited += 1;
            } else {
                self.stats.out_of_order += 1;
            }
            if csn - expected > REORDER_WINDOW {
                return false;
            }
            if let Err(e) = check_text(&text) {
                // Refused before it may wait (an empty text cost the relay nothing to count, and
                // its memory to keep), and at once: its sender drops it, and its next `base`
                // skips its csn. An id the relay knows is left as it is: it names a message
                // handled before (perhaps another's, seen in a fan-out).
                if self.ids.contains_key(&id) {
                    return true;
                }
                self.stats.refused += 1;
                self.remember(id, REFUSED, Millis(0), NO_ROOM);
                self.error(from, ErrorCode::BadText, id, e.to_string());
                return true;
            }
            return self.park(from, csn, id, number, text);
        }
        if csn < expected {
            // A retransmission of a message this session already handed in.
            self.stats.duplicates += 1;
            if let Some(&stored) = self.ids.get(&id) {
                self.ack_again(from, id, csn, number, stored);
            }
            return true;
        }
        // A copy of this message may wait already (put there when the rate or the turn's room
        // stopped it): this one takes its place.
        let copy = self.unpark(from, csn);
        if check_text(&text).is_err() {
            // Refused now, whatever the rate or the room (it costs neither: nothing is
            // stored); those waiting behind it may go on.
            self.take_in_turn(wall, from, csn, id, number, text);
            self.take_waiting(now, wall, from);
            return true;
        }
        if !self.has_room(self.fanout_cost(from, number, &text)) {
            // Over the turn's room, or others wait for theirs: it waits its fair turn.
            self.park(from, csn, id, number, text);
            self.queue_intake(from);
            return true;
        }
        let Some(allowed) = self.clients.get_mut(&from).map(|mut s| {
            // An episode of sending too fast ends when the sender has kept to the rate long
            // enough to have its whole burst again. (Ended by any message taken, it was told
            // again after every message taken at the rate: 20 ERRORs a second under a steady
            // flood, and a notice each for the user of a client pasting a long text.)
            if s.messages.is_full(now) {
                s.told_slow = false;
            }
            s.messages.take(now)
        }) else {
            return false;
        };
        if allowed {
            self.take_in_turn(wall, from, csn, id, number, text);
            self.take_waiting(now, wall, from);
            return true;
        }
        // Too fast: it waits for the allowance to refill.
        self.park(from, csn, id, number, text);
        // Counted once a message, not at each of its retransmissions while it waits.
        if copy.is_some() {
            self.stats.duplicates += 1;
        } else {
            self.stats.rate_limited += 1;
        }
        self.take_waiting(now, wall, from);
        true
    }

    /// Takes, in csn order, the messages of `from` that wait for their turn, as long as the
    /// rate and the turn's room allow; a message the rate stops stays waiting, and the sender
    /// is told once an episode; one the room stops waits its fair turn (see `intake.rs`).
    pub(super) fn take_waiting(&mut self, now: Instant, wall: Millis, from: SocketAddr) {
        loop {
            let Some(cost) = self.waiting_cost(from) else {
                return;
            };
            if !self.has_room(cost) {
                return self.queue_intake(from);
            }
            match self.take_next(now, wall, from) {
                Some(true) => {}
                Some(false) => {
                    self.tell_slow(from);
                    return;
                }
                None => return,
            }
        }
    }

    /// Takes the message of `from` that waits with the csn in turn, if the rate allows: `None`
    /// when none waits, `Some(false)` when the rate stops it.
    pub(super) fn take_next(
        &mut self,
        now: Instant,
        wall: Millis,
        from: SocketAddr,
    ) -> Option<bool> {
        let next = self.clients.get_mut(&from).and_then(|mut s| {
            let next = s.next_csn;
            s.ahead.get(&next)?;
            if s.messages.is_full(now) {
                s.told_slow = false;
            }
            Some(s.messages.take(now).then_some(next))
        })?;
        let Some(csn) = next else {
            return Some(false);
        };
        let (id, number, text) = self.unpark(from, csn)?;
        self.take_in_turn(wall, from, csn, id, number, text);
        Some(true)
    }

    /// Tells `from`, once an episode, that its messages wait for its allowance.
    pub(super) fn tell_slow(&mut self, from: SocketAddr) {
        let waiting = self.clients.get_mut(&from).and_then(|mut s| {
            let id = s.ahead.get(&s.next_csn)?.0;
            (!std::mem::replace(&mut s.told_slow, true)).then_some(id)
        });
        if let Some(id) = waiting {
            // Too fast: the message waits, and is taken as the allowance refills (at the
            // relay's tick, or when the sender's next datagram comes).
            let message = format!(
                "too many messages: the relay takes {} a second ({} at once); the rest wait",
                self.config.rate, self.config.burst
            );
            self.error(from, ErrorCode::RateLimited, id, message);
        }
    }

    /// Keeps a message of `from` waiting for its turn: the one in turn always, one ahead of a
    /// missing csn if the relay has the memory (if not, it is dropped and comes again, and
    /// this is false).
    fn park(&mut self, from: SocketAddr, csn: u64, id: Uuid, number: u16, text: String) -> bool {
        let Some(in_turn) = self.clients.get(&from).map(|s| s.next_csn == csn) else {
            return false;
        };
        let cost = parked_cost(&text);
        if in_turn {
            self.parked.force(from, cost);
        } else if !self.parked.admit(from, cost) {
            return false;
        }
        if let Some(mut s) = self.clients.get_mut(&from)
            && let Some((_, _, old)) = s.ahead.insert(csn, (id, number, text))
        {
            drop(s);
            self.parked.release(from, parked_cost(&old));
        }
        true
    }

    /// Takes the message with `csn` out of `from`'s waiting ones, if it waits there.
    fn unpark(&mut self, from: SocketAddr, csn: u64) -> Option<(Uuid, u16, String)> {
        let taken = self.clients.get_mut(&from)?.ahead.remove(&csn)?;
        self.parked.release(from, parked_cost(&taken.2));
        Some(taken)
    }

    /// The client saw every csn below `base` acknowledged: whatever the session still waits
    /// for below it is stored (perhaps in an earlier session), so it waits no more.
    fn skip_to(&mut self, from: SocketAddr, base: u64) {
        let freed = self.clients.get_mut(&from).and_then(|mut s| {
            (base > s.next_csn).then(|| {
                s.next_csn = base;
                let keep = s.ahead.split_off(&base);
                let dropped = std::mem::replace(&mut s.ahead, keep);
                dropped
                    .values()
                    .map(|(_, _, t)| parked_cost(t))
                    .sum::<usize>()
            })
        });
        if let Some(freed) = freed {
            self.parked.release(from, freed);
        }
    }

    /// Takes the message with the csn the session expects, for the room it calls `number`.
    fn take_in_turn(
        &mut self,
        wall: Millis,
        from: SocketAddr,
        csn: u64,
        id: Uuid,
        number: u16,
        text: String,
    ) {
        let Some((sender, room)) = self.clients.get_mut(&from).map(|mut s| {
            s.next_csn += 1;
            s.confirm(number);
            (s.name.clone(), s.room_of(number))
        }) else {
            return;
        };
        if let Some(&stored) = self.ids.get(&id) {
            // Stored before (in an earlier session, say): acknowledged again, stored once.
            self.stats.duplicates += 1;
            return self.ack_again(from, id, csn, number, stored);
        }
        let Some(room) = room else {
            // Sent to a room the session left (or never entered): its client drops it.
            self.remember(id, NOT_IN_ROOM, Millis(0), NO_ROOM);
            return self.not_in_room(from, id, number);
        };
        if let Err(e) = check_text(&text) {
            self.stats.refused += 1;
            self.remember(id, REFUSED, Millis(0), NO_ROOM);
            return self.error(from, ErrorCode::BadText, id, e.to_string());
        }
        // The wall clock as it is: the room's order is the seq's alone, so a clock stepped
        // back costs nothing but odd-looking times, and one stepped forward and back again
        // freezes nothing (clamped to the last time, every later time stuck at the future).
        let time = wall;
        self.use_room(self.cost_in(room, &sender, &text));
        if self.rooms[room].dm.is_some() {
            // The other person is let in before the fan-out counts the room's members.
            self.reach_other(from, room);
        }
        // A shared log's seq is the store's; the room's own count still moves, so that a room
        // with a message on its way is not taken for one never written to (and removed).
        let seq = self.rooms[room].take_seq();
        let seq = if self.config.shared { UNSTORED } else { seq };
        self.remember(id, seq, time, room);
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
            room,
            number,
        });
    }

    /// Answers a retransmission of a message handled before, `stored` as its (seq, time,
    /// room): its acknowledgement (after the commit, if it is not durable yet), or its
    /// refusal. The acknowledgement names the room by the session's number for it (a new
    /// session numbers its rooms afresh), or, if the session is not in it, by the number the
    /// retransmission said.
    fn ack_again(
        &mut self,
        to: SocketAddr,
        id: Uuid,
        csn: u64,
        number: u16,
        (seq, time, room): (u64, Millis, RoomId),
    ) {
        if seq == NOT_IN_ROOM {
            return self.not_in_room(to, id, number);
        }
        if seq == REFUSED {
            let message = format!(
                "the message was refused: 1 to {MAX_TEXT_BYTES} bytes, no control characters but tab"
            );
            return self.error(to, ErrorCode::BadText, id, message);
        }
        let number = (self.clients.get(&to))
            .and_then(|s| s.rooms.iter().find(|m| m.room == room).map(|m| m.number))
            .unwrap_or(number);
        let acked = Acked {
            id,
            csn,
            room: number,
            seq,
            time,
        };
        // Held until its room commits it, if it is pending.
        self.acknowledge(to, room, acked);
    }

    /// Remembers that the message `id` is `seq` of `room`, taken at `time` (or refused), so
    /// that a retransmission of it is stored once.
    pub(super) fn remember(&mut self, id: Uuid, seq: u64, time: Millis, room: RoomId) {
        self.ids.insert(id, (seq, time, room));
        self.id_order.push_back(id);
        while self.id_order.len() > self.config.dedup {
            if let Some(old) = self.id_order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }
}
