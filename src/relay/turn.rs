//! The end of a turn of the shell's loop, and the relay's own clock: each room's heartbeat
//! once it is quiet, what the tick makes due (silent clients timed out, messages that waited
//! for their allowance), the answers sent in fair shares, and when the shell should come back
//! if no datagram comes.
//!
//! Silence is measured in time the relay was listening: a tick that comes much later than due
//! means the relay did not run (stopped with SIGSTOP, its disk stalled), and that time counts
//! as nobody's silence, so a member whose keepalive waited unread in the socket, or was dropped
//! there, is not timed out for it. (A machine suspended needs nothing of this: the steady
//! clock, which silence is measured in, stands still while it sleeps.)

use std::cmp::Reverse;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::Relay;
use super::give_back::{GiveBack, oversized};
use super::outgoing::Lane;
use super::rooms::RoomId;
use crate::proto::message::Millis;
use crate::proto::wire::{Latest, LeaveReason, Packet, ROOM_AT};

/// How often the relay looks for silent clients, takes messages that waited for their
/// sender's allowance, and tells a busy private conversation's unconfirmed ENTERED again
/// (each room's heartbeat has a time of its own: [`QUIET`]).
pub const TICK: Duration = Duration::from_secs(1);
/// How late a tick may come before the time beyond it counts as the relay not running.
pub const STALL: Duration = Duration::from_secs(2);
/// How long a room is quiet before its heartbeat goes: while its messages keep coming, each
/// fan-out tells its members the latest seq (a gap shows at the next), and a heartbeat would
/// only add a datagram per member per tick (10,000 a second at 1,000 busy rooms of 10). Each
/// room's is due on its own, so they do not all go at once (at 1,000 rooms, 2-3 ms of the
/// tick's turn building 5,000 PONGs, and their sending after).
pub const QUIET: Duration = Duration::from_millis(500);

impl Relay {
    /// Ends a turn: the datagrams of the turn are in (or none came, and
    /// [`Relay::poll_timeout`]'s time came). Does what the clock made due and sends the next
    /// pages of the answers that wait, within the turn's share; call it before
    /// [`Relay::appends`]. `wall` is the wall-clock time, for the messages it takes.
    ///
    /// A turn that comes more than [`STALL`] after the tick [`Relay::poll_timeout`] asked for
    /// means the relay did not run meanwhile: that time counts as nobody's silence.
    pub fn end_turn(&mut self, now: Instant, wall: Millis) {
        // The heartbeats first: a private conversation's ENTERED told again with its
        // heartbeat is not told again by the tick too.
        self.heartbeats(now);
        let due = *self.next_tick.get_or_insert(now + TICK);
        if now >= due {
            self.tick(now, wall, now.saturating_duration_since(due));
            self.next_tick = Some(now + TICK);
        }
        self.take_fairly(now, wall);
        self.serve_answers(now);
        let presence = &self.presence;
        (self.rooms).remove_emptied(|room| presence.iter().any(|(r, ..)| *r == room));
        self.presence_sent = false;
        self.last_turn = Some(now);
    }

    /// When [`Relay::end_turn`] must be called next if no datagram comes first (`None` before
    /// the first turn: at once). Messages that wait for a turn's room want the next turn at
    /// once, and so do answers with pages to send, presence changes left for later turns, and
    /// datagrams the shell left unsent to end a turn for the chat ([`Relay::chat_waiting`]).
    /// (What the shell handed it while the last turn's datagrams went out wants the next turn
    /// at once too: see [`Relay::took_meanwhile`].)
    pub fn poll_timeout(&self) -> Option<Instant> {
        let waiting = (!self.intake.is_empty()
            || !self.presence.is_empty()
            || !self.presence_out.is_empty()
            || !self.bulk_out.is_empty())
        .then_some(self.last_turn)
        .flatten();
        let heartbeat = self.heartbeats.peek().map(|&Reverse((due, _))| due);
        [self.next_tick, self.answers_due(), waiting, heartbeat]
            .into_iter()
            .flatten()
            .min()
    }

    /// Shrinks the maps that an attack (10,000 sessions come and gone) grew and that stay
    /// their largest size otherwise.
    fn give_back_memory(&mut self) {
        // Shared with the shell: shrunk in place.
        if oversized(self.clients.len(), self.clients.capacity()) {
            self.clients.shrink_to_fit();
        }
        self.per_ip.give_back();
        self.joins.give_back();
        self.bulk_blocked.give_back();
        self.announcing.give_back();
        self.transmits.give_back();
        self.presence_out.give_back();
        self.bulk_out.give_back();
        self.roster.shrink();
        self.intake.shrink();
        self.bulk.shrink();
        self.parked.shrink();
        self.allowances.shrink();
    }

    /// The tick's work; `late` is how long after its time it came.
    fn tick(&mut self, now: Instant, wall: Millis, late: Duration) {
        if late > STALL {
            // The relay did not run for about that long: nobody was heard, through no fault of
            // theirs. Silence is counted from where it would have been.
            self.stats.stalls += 1;
            self.stats.stalled += late;
            for mut s in self.clients.iter_mut() {
                s.last_heard = (s.last_heard + late).min(now);
            }
        }
        self.joins.retain(|_, (bucket, _)| !bucket.is_full(now));
        self.allowances.forget_full(now);
        self.give_back_memory();
        let timeout = self.config.timeout;
        let silent: Vec<SocketAddr> = self
            .clients
            .iter()
            .filter(|c| now.saturating_duration_since(c.last_heard) > timeout)
            .map(|c| *c.key())
            .collect();
        for addr in silent {
            self.stats.timed_out += 1;
            self.remove(addr, LeaveReason::TimedOut);
        }
        self.leave_rooms_not_taken_back(now);
        self.expire_handed_over(now);
        let waiting: Vec<SocketAddr> = self
            .clients
            .iter()
            .filter(|c| c.ahead.contains_key(&c.next_csn))
            .map(|c| *c.key())
            .collect();
        for addr in waiting {
            self.take_waiting(now, wall, addr);
        }
        // Someone let in unasked to a busy private conversation, whose client has not shown
        // it knows the number (its ENTERED lost or overtaken), is told again now, not at the
        // conversation's heartbeat (which waits for it to be quiet) nor at the next PING: its
        // client drops the conversation's messages till then. And a room with news that has
        // no heartbeat queued (committed outside a turn) gets one.
        let news: Vec<(RoomId, bool)> = (self.rooms.iter())
            .filter(|(_, r)| r.committed > r.heartbeat_seq)
            .map(|(id, r)| (id, r.heartbeat_queued))
            .collect();
        for (room, queued) in news {
            let r = &self.rooms[room];
            if !queued {
                self.queue_heartbeat(room, now);
            } else if r.dm.is_some() && r.stored_at.is_some_and(|t| t + QUIET > now) {
                self.tell_unconfirmed_in(room);
            }
        }
    }

    /// Puts `room`'s heartbeat in the queue of those due, at `due`, unless it is there.
    pub(super) fn queue_heartbeat(&mut self, room: RoomId, due: Instant) {
        let r = &mut self.rooms[room];
        if !r.heartbeat_queued {
            r.heartbeat_queued = true;
            self.heartbeats.push(Reverse((due, room)));
        }
    }

    /// Sends the heartbeats due: a room quiet for [`QUIET`] since its last message tells every
    /// member its latest sequence number, so one that lost the last fan-out datagram notices
    /// and repairs the gap (in a private conversation, a member held unconfirmed is told its
    /// ENTERED again too).
    fn heartbeats(&mut self, now: Instant) {
        while let Some(&Reverse((due, room))) = self.heartbeats.peek() {
            if due > now {
                break;
            }
            self.heartbeats.pop();
            let r = &mut self.rooms[room];
            r.heartbeat_queued = false;
            // One told already, or removed and its place taken by another, has nothing to
            // tell; one written to since is due later.
            if r.vacant || r.committed <= r.heartbeat_seq {
                continue;
            }
            if let Some(later) = (r.stored_at).map(|t| t + QUIET).filter(|&d| d > now) {
                self.queue_heartbeat(room, later);
                continue;
            }
            r.heartbeat_seq = r.committed;
            let pong = Packet::Pong {
                rooms: vec![Latest {
                    room: 0,
                    latest: r.committed,
                    members: r.count(),
                }],
            };
            // The room's number is the first entry's, after the count.
            self.send_to_room(Lane::Heartbeat, room, ROOM_AT + 1, &pong);
            if self.rooms[room].dm.is_some() {
                self.tell_unconfirmed_in(room);
            }
        }
    }
}
