//! The client's clock: when it next wants to be woken, and what is due then (retransmissions,
//! keepalives, retries of requests, the repair of a gap, the notice that the relay is silent,
//! the move to the next relay of the list).

use std::time::Instant;

use super::relays::Why;
use super::{Client, Event, MOVE_AFTER, Phase, SILENT_AFTER};
use crate::proto::wire::Packet;

impl Client {
    /// When [`Client::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        match self.phase {
            Phase::Closed => return None,
            Phase::Leaving { next, until, .. } => return Some(next.min(until)),
            Phase::Joining { next_try, .. } => at(next_try),
            Phase::Joined { .. } => {
                // Keepalive: only what the relay receives keeps the session alive, so a
                // client that only listens must still ping (docs/protocol.md, "Staying").
                at(self.next_ping());
                // What waits for its room to be entered (in this session) waits for the
                // ENTERED, not for a time.
                let entered = |room: usize| self.rooms[room].number.is_some();
                self.outbox
                    .iter()
                    .take(self.sendable())
                    .filter(|o| entered(o.room))
                    .filter_map(|o| o.resend_at)
                    .for_each(&mut at);
                (self.requests.iter())
                    .filter(|((room, _), _)| entered(*room))
                    .for_each(|(_, r)| at(r.retry_at));
                for c in &self.rooms {
                    if let Some(since) = c.gap_since {
                        at(since + self.gap_wait());
                    }
                    if let Some(t) = c.retry_at {
                        at(t);
                    }
                }
                if let Some(w) = &self.who {
                    at(w.deadline);
                }
                if let Some(t) = self.presence_timeout() {
                    at(t);
                }
            }
        }
        match self.owed_since {
            // With other relays to try, the silence moves the client on, told or not.
            Some(since) if self.relays.several() => at(since + MOVE_AFTER),
            Some(since) if !self.told_silent => at(since + SILENT_AFTER),
            _ => {}
        }
        next
    }

    /// When the next keepalive is due. With other relays to move to, a relay that owes an
    /// answer is asked again at the retransmission timeout (backed off), so that one lost
    /// PONG does not move the client: [`MOVE_AFTER`] is then several unanswered datagrams.
    fn next_ping(&self) -> Instant {
        match self.owed_since {
            Some(_) if self.relays.several() => self.last_sent + self.rtt.backoff(self.probes),
            _ => self.last_sent + self.ping_every,
        }
    }

    /// Does what is due at `now`: retransmissions, keepalives, retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Leaving { .. }) {
            return self.leaving_due(now);
        }
        match self.owed_since {
            Some(since)
                if self.relays.several()
                    && now >= since + MOVE_AFTER
                    && !matches!(self.phase, Phase::Closed) =>
            {
                self.move_on(now, Why::Silent);
            }
            Some(since)
                if !self.relays.several() && !self.told_silent && now >= since + SILENT_AFTER =>
            {
                self.told_silent = true;
                self.events.push_back(Event::Silent);
            }
            _ => {}
        }
        match self.phase {
            Phase::Closed | Phase::Leaving { .. } => {}
            Phase::Joining { next_try, .. } => {
                if now >= next_try {
                    self.try_join(now);
                }
            }
            Phase::Joined { token } => {
                let due: Vec<usize> = (0..self.sendable())
                    .filter(|&i| self.outbox[i].resend_at.is_some_and(|t| t <= now))
                    .filter(|&i| self.rooms[self.outbox[i].room].number.is_some())
                    .collect();
                self.send_these(now, &due);
                self.retry_requests(now, token);
                self.room_requests_due(now);
                for r in 0..self.rooms.len() {
                    if (self.rooms[r].gap_since).is_some_and(|s| now >= s + self.gap_wait()) {
                        self.start_repair(now, r);
                    }
                }
                if let Some(deadline) = self.who.as_ref().map(|w| w.deadline)
                    && now >= deadline
                {
                    self.finish_who(now);
                }
                self.presence_due(now);
                if now >= self.next_ping() {
                    if self.owed_since.is_some() {
                        self.probes += 1;
                    }
                    self.transmit(now, &Packet::Ping { token });
                }
            }
        }
    }
}
