//! Sending: the window of messages in flight, retransmission and its backoff, acknowledgements,
//! and the round-trip time that sets the timeouts.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Client, INITIAL_RTO, MAX_RTO, MIN_GAP_WAIT, MIN_RTO, Phase, WINDOW};
use crate::proto::message::Message;
use crate::proto::wire::{Acked, Packet, SEND_HEADER, Sent, pack, sent_len};

/// A message typed but not yet acknowledged.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub(super) id: Uuid,
    /// The room it is for (its place among the client's rooms).
    pub(super) room: usize,
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

    /// How long to wait before sending again what was sent `n + 1` times unanswered: the
    /// timeout doubled `n` times, at most [`MAX_RTO`].
    pub fn backoff(&self, n: u32) -> Duration {
        (self.rto() * 2u32.saturating_pow(n)).min(MAX_RTO)
    }

    /// How long delivery waits at a gap for a reordered datagram before asking for what is
    /// missing: half the timeout, at least [`MIN_GAP_WAIT`] (long enough for a reordered
    /// datagram to arrive, short enough not to be seen).
    pub fn gap_wait(&self) -> Duration {
        (self.rto() / 2).max(MIN_GAP_WAIT)
    }
}

impl Client {
    /// Takes the acknowledgements of one ACK datagram.
    /// (`Client::handle` then sends what the freed window allows.)
    pub(super) fn acked(&mut self, now: Instant, acks: Vec<Acked>) {
        for a in acks {
            self.take_ack(now, a);
        }
        for r in 0..self.rooms.len() {
            self.drain(now, r);
        }
    }

    fn take_ack(&mut self, now: Instant, a: Acked) {
        let Some(i) = self.outbox.iter().position(|o| o.id == a.id) else {
            return;
        };
        // An acknowledgement means the message is stored, whichever session it answers (a
        // late one from a relay that restarted since, say): it leaves the outbox, and the
        // `base` of our next SEND tells the relay not to wait for its csn.
        let Some(o) = self.outbox.remove(i) else {
            return;
        };
        self.stored(o.room, a.seq);
        if o.sends == 1
            && let Some(sent) = o.sent_at
        {
            self.rtt.sample(now.saturating_duration_since(sent));
        }
        let message = Message {
            seq: a.seq,
            id: a.id,
            from: self.config.name.clone(),
            text: o.text,
            time: a.time,
        };
        self.arrived(o.room, message);
    }

    /// How many of the outbox's first messages may have been sent: the window's. A message
    /// is first sent within it, and only moves nearer the front, so the rest were never sent
    /// (none of them is stored, and none has a timer).
    pub(super) fn sendable(&self) -> usize {
        self.outbox.len().min(WINDOW)
    }

    /// Sends what the window allows.
    pub(super) fn pump(&mut self, now: Instant) {
        let fresh: Vec<usize> = (0..self.sendable())
            .filter(|&i| self.outbox[i].sends == 0)
            .collect();
        self.send_these(now, &fresh);
    }

    /// Sends (or sends again) the messages at `indices` of the outbox, in as few SEND
    /// datagrams as hold them; those for a room not entered in this session (yet) wait.
    pub(super) fn send_these(&mut self, now: Instant, indices: &[usize]) {
        let Phase::Joined { token } = self.phase else {
            return;
        };
        let indices: Vec<usize> = (indices.iter().copied())
            .filter(|&i| self.rooms[self.outbox[i].room].number.is_some())
            .collect();
        if indices.is_empty() {
            return;
        }
        for &i in &indices {
            if self.outbox[i].csn == 0 {
                self.outbox[i].csn = self.next_csn;
                self.next_csn += 1;
            }
        }
        // Everything below the oldest unacknowledged csn of this session is stored: the relay
        // need not wait for any of it (some may have been acknowledged by an earlier session).
        // (The lowest of the outbox's: a message waiting for its room to be entered gets its
        // csn after later ones to rooms entered already, so the outbox's order is not the
        // csns'. Only the window's messages were ever sent.)
        let base = (self.outbox.iter().take(self.sendable()))
            .map(|o| o.csn)
            .filter(|&c| c != 0)
            .min()
            .unwrap_or(self.next_csn);
        let mut sent = Vec::with_capacity(indices.len());
        for &i in &indices {
            let o = &mut self.outbox[i];
            o.sends += 1;
            o.sent_at = Some(now);
            o.resend_at = Some(now + self.rtt.backoff(o.sends - 1));
            sent.push(Sent {
                csn: o.csn,
                room: self.rooms[o.room].number.unwrap_or(0),
                id: o.id,
                text: o.text.clone(),
            });
        }
        for run in pack(&sent, SEND_HEADER, sent_len) {
            let packet = Packet::Send {
                token,
                base,
                messages: run.to_vec(),
            };
            self.transmit(now, &packet);
        }
    }
}
