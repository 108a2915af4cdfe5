//! Sending: the window of messages in flight, retransmission and its backoff, acknowledgements,
//! and the round-trip time that sets the timeouts.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Client, INITIAL_RTO, MAX_RTO, MIN_RTO, Phase, WINDOW};
use crate::message::Message;
use crate::wire::{Packet, Token};

/// A message typed but not yet acknowledged.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub(super) id: Uuid,
    pub(super) text: String,
    /// Its number in the current session, 0 until first sent in it.
    pub(super) csn: u64,
    /// Times sent in the current session.
    pub(super) sends: u32,
    /// When it was last sent.
    pub(super) sent_at: Option<Instant>,
    /// When to send it again.
    pub(super) resend_at: Option<Instant>,
}

/// Smoothed round-trip time and the retransmission timeout it gives, as in RFC 6298.
#[derive(Debug, Clone, Default)]
pub struct Rtt {
    srtt: Option<Duration>,
    rttvar: Duration,
}

impl Rtt {
    /// Takes one round-trip sample (of a datagram that was not retransmitted: Karn's rule).
    pub fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(s) => {
                let diff = s.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((s * 7 + r) / 8);
            }
        }
    }

    /// The retransmission timeout: [`INITIAL_RTO`] before any sample, then SRTT + 4 RTTVAR,
    /// between [`MIN_RTO`] and [`MAX_RTO`].
    pub fn rto(&self) -> Duration {
        match self.srtt {
            None => INITIAL_RTO,
            Some(s) => (s + self.rttvar * 4).clamp(MIN_RTO, MAX_RTO),
        }
    }
}

impl Client {
    pub(super) fn acked(&mut self, now: Instant, id: Uuid, seq: u64, time: crate::message::Millis) {
        let Some(i) = self.outbox.iter().position(|o| o.id == id) else {
            return;
        };
        // An acknowledgement means the message is stored, whichever session it answers (a
        // late one from a relay that restarted since, say): it leaves the outbox, and the
        // `base` of our next SEND tells the relay not to wait for its csn.
        let Some(o) = self.outbox.remove(i) else {
            return;
        };
        if o.sends == 1
            && let Some(sent) = o.sent_at
        {
            self.rtt.sample(now.saturating_duration_since(sent));
        }
        let message = Message {
            seq,
            id,
            from: self.config.name.clone(),
            text: o.text,
            time,
        };
        self.arrived(message);
        self.drain(now);
        self.pump(now);
    }

    /// Sends what the window allows.
    pub(super) fn pump(&mut self, now: Instant) {
        let Phase::Joined { token } = self.phase else {
            return;
        };
        for i in 0..self.outbox.len().min(WINDOW) {
            if self.outbox[i].sends == 0 {
                self.send_one(now, token, i);
            }
        }
    }

    pub(super) fn send_one(&mut self, now: Instant, token: Token, i: usize) {
        if self.outbox[i].csn == 0 {
            self.outbox[i].csn = self.next_csn;
            self.next_csn += 1;
        }
        let rto = self.rtt.rto();
        // Everything below the oldest unacknowledged csn of this session is stored: the relay
        // need not wait for any of it (some may have been acknowledged by an earlier session).
        let base = self
            .outbox
            .iter()
            .map(|o| o.csn)
            .find(|&c| c != 0)
            .unwrap_or(self.next_csn);
        let o = &mut self.outbox[i];
        o.sends += 1;
        o.sent_at = Some(now);
        o.resend_at = Some(now + (rto * 2u32.saturating_pow(o.sends - 1)).min(MAX_RTO));
        let packet = Packet::Send {
            token,
            csn: o.csn,
            base,
            id: o.id,
            text: o.text.clone(),
        };
        self.transmit(now, &packet);
    }
}
