//! What the swarm's sessions do and when: an action each, at a steady pace, spread evenly
//! across each round so that thousands of sessions make a steady stream, not bursts.

use std::ops::Range;
use std::time::{Duration, Instant};

/// What a schedule makes each of its sessions do.
#[derive(Debug, Clone, Copy)]
pub(super) enum Action {
    /// Keepalive, after looking for an ERROR NotJoined in what waits on the socket.
    Ping,
    /// HISTORY for the latest `count` messages.
    History { count: u16 },
    /// WHO.
    Who,
    /// One new message of `size` bytes in turn (csn after csn, inside the relay's window of
    /// 256, the oldest unacknowledged sent again when nothing was acknowledged for a while).
    Send { size: usize },
    /// csn `from` to `to`, one-byte texts, as few datagrams as hold them, and never the csns
    /// before `from`: they wait in the relay for ever.
    Park { from: u64, to: u64 },
    /// LEAVE.
    Leave,
}

/// Sessions doing one action in turn at a steady pace: each of the `range` once a round, the
/// round every `every`, spread evenly across it.
#[derive(Debug)]
pub(super) struct Schedule {
    range: Range<usize>,
    every: Duration,
    action: Action,
    start: Instant,
    rounds: Option<u64>,
    round: u64,
    next: usize,
}

impl Schedule {
    /// Every session of `range` does `action` every `every`, from `start`.
    pub(super) fn every(range: Range<usize>, every: Duration, action: Action) -> Schedule {
        Schedule {
            range,
            every,
            action,
            start: Instant::now(),
            rounds: None,
            round: 0,
            next: 0,
        }
    }

    /// Every session of `range` does `action` once, spread over `over`.
    pub(super) fn once(range: Range<usize>, over: Duration, action: Action) -> Schedule {
        Schedule {
            rounds: Some(1),
            ..Schedule::every(range, over.max(Duration::from_millis(1)), action)
        }
    }

    /// When the next session's action is due; `None` once done.
    pub(super) fn due(&self) -> Option<Instant> {
        let n = self.range.len();
        if n == 0 || self.rounds.is_some_and(|r| self.round >= r) {
            return None;
        }
        let within = self.every.mul_f64(self.next as f64 / n as f64);
        Some(self.start + self.every * u32::try_from(self.round).unwrap_or(u32::MAX) + within)
    }

    /// The session whose action is due, and moves on to the next.
    pub(super) fn advance(&mut self) -> usize {
        let bot = self.range.start + self.next;
        self.next += 1;
        if self.next == self.range.len() {
            self.next = 0;
            self.round += 1;
        }
        bot
    }

    /// Its action.
    pub(super) fn action(&self) -> Action {
        self.action
    }

    /// True once a schedule of [`Schedule::once`] is done.
    pub(super) fn is_done(&self) -> bool {
        self.due().is_none()
    }
}
