//! A simulated sender's side: the messages it still has to send, those in flight, its window
//! and its pace, and the round-trip time its retransmissions follow.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::client::Rtt;
use crate::proto::message::MAX_TEXT_BYTES;

/// One message in flight.
#[derive(Debug)]
pub(super) struct InFlight {
    /// Its csn.
    pub(super) csn: u64,
    /// Times it was sent.
    pub(super) sends: u32,
    /// When it was last sent.
    pub(super) sent_at: Instant,
    /// When it goes again unless acknowledged.
    pub(super) resend_at: Instant,
}

/// A sender's side: the messages it still has to send and those in flight.
#[derive(Debug)]
pub(super) struct Outbox {
    /// Its number among the senders, in its messages' ids.
    pub(super) sender: u32,
    /// Messages to send in all.
    pub(super) total: u64,
    /// Messages sent at least once (the last one sent has csn `sent`).
    pub(super) sent: u64,
    /// Sent and not yet acknowledged, by csn.
    pub(super) in_flight: VecDeque<InFlight>,
    /// Messages acknowledged.
    pub(super) acked: u64,
    /// Most csns ahead of the oldest unacknowledged one that may be sent.
    pub(super) window: u64,
    /// When the first message may leave, and the interval between messages (`None`: as fast
    /// as the window allows).
    pub(super) pace: Option<(Instant, Duration)>,
    /// Bytes of text each message has.
    pub(super) size: usize,
    /// Round-trip time and retransmission timeout, as the client keeps them.
    pub(super) rtt: Rtt,
}

impl Outbox {
    /// The side of sender number `sender`, who sends `total` messages of `size` bytes, at
    /// most `window` csns ahead of the oldest unacknowledged one.
    pub(super) fn new(sender: u32, total: u64, size: usize, window: u64) -> Self {
        Outbox {
            sender,
            total,
            sent: 0,
            in_flight: VecDeque::new(),
            acked: 0,
            window,
            pace: None,
            size: size.clamp(1, MAX_TEXT_BYTES),
            rtt: Rtt::default(),
        }
    }

    /// The lowest csn not yet acknowledged.
    pub(super) fn base(&self) -> u64 {
        self.in_flight.front().map_or(self.sent + 1, |m| m.csn)
    }

    /// When the next new message may leave (`now` when it may leave at once), if one is left
    /// to send and the window has room.
    pub(super) fn next_due(&self, now: Instant) -> Option<Instant> {
        if self.sent >= self.total || self.sent + 1 >= self.base() + self.window {
            return None;
        }
        Some(match self.pace {
            None => now,
            Some((start, every)) => start + every * u32::try_from(self.sent).unwrap_or(u32::MAX),
        })
    }
}
