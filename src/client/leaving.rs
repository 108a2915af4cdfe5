//! Leaving: the LEAVE goes at once (several copies, so that one is likely heard on a lossy
//! path) and again, with backoff, until the relay answers that the session is gone (ERROR
//! NotJoined, which every LEAVE after the first earns) or [`LEAVE_WAIT`] has passed.

use std::time::{Duration, Instant};

use super::{Client, LEAVE_COPIES, MAX_RTO, Phase};
use crate::proto::wire::{ErrorCode, Packet};

/// How long a leaving client waits at most for the relay to answer its LEAVE.
pub const LEAVE_WAIT: Duration = Duration::from_secs(2);

impl Client {
    /// Leaves the relay (every room); the client is closed once the relay said the session
    /// is gone.
    pub fn leave(&mut self, now: Instant) {
        self.leave_saying(now, "");
    }

    /// Leaves the relay, telling the others of every room `message` with the leave (empty:
    /// nothing). A message over [`MAX_LEAVE_BYTES`](crate::proto::wire::MAX_LEAVE_BYTES) is cut
    /// at a character boundary; one that breaks the
    /// text rules (a control character) is left out. The LEAVE goes [`LEAVE_COPIES`] times at
    /// once, and again after a round trip (then backing off) until the relay answers that the
    /// session is gone, for at most [`LEAVE_WAIT`]: drive the client (datagrams, timeouts)
    /// until [`Client::is_closed`]. A client not in the room, or whose relay is silent (there
    /// is nobody to tell), is closed at once.
    pub fn leave_saying(&mut self, now: Instant, message: &str) {
        let Phase::Joined { token } = self.phase else {
            self.phase = Phase::Closed;
            return;
        };
        let message = super::room::leaving_text(message);
        let leave = Packet::Leave { token, message };
        for _ in 0..LEAVE_COPIES {
            self.transmit(now, &leave);
        }
        self.phase = if self.told_silent {
            Phase::Closed
        } else {
            Phase::Leaving {
                leave: leave.encode(),
                next: now + self.rtt.rto(),
                tries: 0,
                until: now + LEAVE_WAIT,
            }
        };
    }

    /// A datagram from the relay while leaving: only the answer that the session is gone
    /// matters (the NotJoined a LEAVE after the first gets, naming our token).
    pub(super) fn while_leaving(&mut self, packet: &Packet) {
        if let Packet::Error {
            code: ErrorCode::NotJoined,
            id,
            ..
        } = packet
            && self.refuses_ours(*id)
        {
            self.phase = Phase::Closed;
        }
    }

    /// The LEAVE again, when due; closed once the wait is over.
    pub(super) fn leaving_due(&mut self, now: Instant) {
        let Phase::Leaving {
            leave,
            next,
            tries,
            until,
        } = &mut self.phase
        else {
            return;
        };
        if now >= *until {
            self.phase = Phase::Closed;
            return;
        }
        if now >= *next {
            *tries += 1;
            let backoff = (self.rtt.rto() * 2u32.saturating_pow(*tries)).min(MAX_RTO);
            *next = now + backoff;
            self.last_sent = now;
            self.transmits.push_back(leave.clone());
        }
    }
}
