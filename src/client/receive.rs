//! Receiving: a packet of the relay's taken, the relay heard again, and each packet handed to the rule that answers it.

use std::time::Instant;

use uuid::Uuid;

use super::{Client, Phase, room};
use crate::proto::wire::Packet;

impl Client {
    /// Takes one packet from the relay (opened by [`SecureClient`]: only the relay could have
    /// sealed it).
    pub fn handle(&mut self, now: Instant, bytes: &[u8]) {
        let Ok(packet) = Packet::decode(bytes) else {
            // Not a packet of this version, or damaged: nothing to do with it.
            return;
        };
        if self.is_closed() {
            return;
        }
        if matches!(self.phase, Phase::Leaving { .. }) {
            return self.while_leaving(&packet);
        }
        if let Phase::Joining { attempt, next_try } = self.phase
            && matches!(
                packet,
                Packet::HistoryPage {
                    req: 0,
                    room: 0,
                    ..
                }
            )
        {
            // The relay took our JOIN (its join history came) but its WELCOME was lost or is
            // late: ask again after a round trip rather than after the backoff.
            let soon = now + self.rtt.rto();
            if soon < next_try {
                self.phase = Phase::Joining {
                    attempt,
                    next_try: soon,
                };
            }
        }
        self.last_heard = now;
        self.owed_since = None;
        self.relay_answered();
        self.take(now, packet);
        // Whatever was learnt may have freed room in the window (a repair that showed one of
        // our messages stored, say).
        self.pump(now);
    }

    /// Whether an ERROR NotJoined refusing `token` (its `id`) is about our session: one
    /// refusing a datagram of an older session, come late, is no news.
    pub(super) fn refuses_ours(&self, token: Uuid) -> bool {
        self.session_token.is_some_and(|t| t.0 == *token.as_bytes())
    }

    fn take(&mut self, now: Instant, packet: Packet) {
        let numbered = matches!(
            packet,
            Packet::Messages { .. }
                | Packet::HistoryPage { .. }
                | Packet::Presence { .. }
                | Packet::Names { .. }
                | Packet::Pong { .. }
                | Packet::Parted { .. }
        );
        if numbered && self.sessions > 0 && matches!(self.phase, Phase::Joining { .. }) {
            // Joining again, a room number may be the old session's or already the new one's
            // (whose WELCOME is late): which room it names is unknown until the WELCOME.
            // Dropped: what it held is repaired once the rooms are numbered.
            return;
        }
        match packet {
            Packet::Welcome {
                token,
                name,
                latest,
                timeout_ms,
            } => self.welcomed(now, token, name, latest, timeout_ms),
            Packet::Error { code, id, message } => self.refused(now, code, id, message),
            Packet::Ack { acks } => {
                self.acked(now, acks);
                if self.outbox.is_empty() {
                    self.told_slow = false;
                }
            }
            Packet::Entered { room, name, latest } => self.room_entered(now, room, &name, latest),
            Packet::Parted { room } => self.room_parted(now, room),
            Packet::NotEntered {
                name,
                code,
                message,
            } => self.room_refused(&name, code, message),
            Packet::Pong { rooms } => {
                for l in rooms {
                    // A number we were not given is dropped (see `room_entered`).
                    if let Some(r) = self.by_number(l.room) {
                        self.learn_latest(now, r, l.latest);
                        self.count_members(now, r, l.members);
                    }
                }
            }
            Packet::HistoryPage {
                room: 0,
                req: 0,
                first,
                last,
                messages,
            } if self.sessions == 0 => {
                // Join history that overtook the welcome (see `page`).
                if let Some(r) = self.zero {
                    self.page(now, r, 0, first, last, messages);
                }
            }
            Packet::HistoryPage {
                room,
                req: 0,
                first,
                last,
                messages,
            } if self.by_number(room).is_none() && self.is_moving() => {
                // The history of a room being entered, ahead of its ENTERED.
                if self.early.len() == room::EARLY_PAGES {
                    self.early.pop_front();
                }
                self.early.push_back((room, first, last, messages));
            }
            Packet::Messages { room, .. }
            | Packet::HistoryPage { room, .. }
            | Packet::Presence { room, .. }
            | Packet::Names { room, .. }
                if self.by_number(room).is_none() =>
            {
                // A room number we were not given: a room an earlier process of ours was in
                // (the relay leaves it for us unless we enter it again), or a conversation
                // whose ENTERED is late or lost (the relay tells it again). Dropped.
            }
            Packet::Messages { room, messages } => {
                let Some(r) = self.by_number(room) else {
                    return;
                };
                for m in messages {
                    self.speaks(r, &m.from);
                    self.arrived(r, m);
                }
                self.drain(now, r);
            }
            Packet::HistoryPage {
                room,
                req,
                first,
                last,
                messages,
            } => {
                let Some(r) = self.by_number(room) else {
                    return;
                };
                // A page about it: the relay took a request naming its number (ours that
                // says we know it, or another).
                let c = &mut self.rooms[r];
                if std::mem::take(&mut c.confirming) {
                    c.retry_at = None;
                    c.tries = 0;
                }
                self.page(now, r, req, first, last, messages);
            }
            Packet::Presence { room, changes } => {
                let Some(r) = self.by_number(room) else {
                    return;
                };
                self.presence_changes(r, changes);
            }
            Packet::Names {
                room,
                req,
                total,
                names,
            } => {
                let Some(r) = self.by_number(room) else {
                    return;
                };
                self.names_page(now, r, req, total, names);
            }
            // Client-to-relay packets: not for us.
            _ => {}
        }
    }
}
