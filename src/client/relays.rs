//! The relays of one cluster the client may use, tried in turn: the one in use, and when the client leaves it for the next (round robin), as a chat client goes down its server list.
//!
//! The relays of a list share one key and the same rooms with the same seqs (docs/client.md,
//! "Several relays"), so a move is a rejoin: the handshake again with the same pinned key (the
//! [`SecureClient`](super::SecureClient) starts its tunnel afresh), the JOIN with the same
//! instance, the rooms entered again, what was missed fetched from each room's last delivered
//! seq, and the outbox resent with the same message ids (the relays store an id once). The
//! client moves when the relay in use has owed it an answer for [`MOVE_AFTER`], at once when
//! it said it stops, and at once when the shell finds nothing listening at its address, the
//! first time round the list.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Client, Event, Phase, Rtt, SILENT_AFTER};

/// Silence of the relay in use, while it owes an answer, after which the client moves to the
/// next relay of its list: the time the silence takes to be told to the user, who is told of
/// the move instead. Retransmissions back off from 200 ms, so about four JOINs or SENDs (and
/// a keepalive's answer at most [`PING_INTERVAL`](super::PING_INTERVAL) in) went unanswered.
pub const MOVE_AFTER: Duration = SILENT_AFTER;

/// Why the client leaves the relay in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// It owed an answer for [`MOVE_AFTER`].
    Silent,
    /// It said it stops (ERROR Stopping).
    Stopped,
    /// Nothing listens at its address (the shell was told so by the system).
    Unreachable,
}

/// The relays' addresses and the one in use.
#[derive(Debug, Clone)]
pub(super) struct Relays {
    /// In the order given; empty when the shell talks to one relay it did not name.
    addrs: Vec<SocketAddr>,
    /// The one in use.
    current: usize,
    /// Moves so far: the secure client starts its tunnel afresh at each.
    moves: u32,
    /// Moves since a relay last answered: a whole round of them means none answers.
    unanswered: usize,
}

impl Relays {
    pub(super) fn new(addrs: Vec<SocketAddr>) -> Self {
        Relays {
            addrs,
            current: 0,
            moves: 0,
            unanswered: 0,
        }
    }

    /// More than one: the client moves when the one in use does not answer.
    pub(super) fn several(&self) -> bool {
        self.addrs.len() > 1
    }
}

impl Client {
    /// The address of the relay in use (`None` when the client was given none: the shell's).
    pub fn relay(&self) -> Option<SocketAddr> {
        self.relays.addrs.get(self.relays.current).copied()
    }

    /// The relays' addresses, in the order they are tried.
    pub fn relays(&self) -> &[SocketAddr] {
        &self.relays.addrs
    }

    /// How many times the client moved to another relay.
    pub fn moves(&self) -> u32 {
        self.relays.moves
    }

    /// The shell was told that nothing listens at the relay's address (an ICMP port
    /// unreachable): with other relays to try, the client moves to the next at once and
    /// returns true. Only once round the list since a relay last answered: then each is given
    /// [`MOVE_AFTER`], so that a list of relays all down is not gone round without pause.
    pub fn unreachable(&mut self, now: Instant) -> bool {
        let quick = self.relays.several()
            && self.relays.unanswered < self.relays.addrs.len()
            && matches!(self.phase, Phase::Joining { .. } | Phase::Joined { .. });
        if quick {
            self.move_on(now, Why::Unreachable);
        }
        quick
    }

    /// A relay answered: the next silence starts a new round.
    pub(super) fn relay_answered(&mut self) {
        if std::mem::take(&mut self.told_silent) {
            if self.relays.unanswered >= self.relays.addrs.len() && self.relays.several() {
                // Told that none answers: which one does now.
                let at = self.relay().map(|a| a.to_string()).unwrap_or_default();
                self.notice(&format!("the relay at {at} is answering"));
            } else if self.relays.unanswered == 0 {
                self.notice("the relay is answering again");
            }
            // (Else the move's notice named the relay, and the rejoin follows.)
        }
        self.relays.unanswered = 0;
        self.probes = 0;
    }

    /// Moves to the next relay of the list and joins it: what was owed to the last one is
    /// asked of this one (the rejoin enters the rooms again, fetches what each missed, and
    /// resends the outbox).
    pub(super) fn move_on(&mut self, now: Instant, why: Why) {
        let from = self.relay().map(|a| a.to_string()).unwrap_or_default();
        let r = &mut self.relays;
        r.current = (r.current + 1) % r.addrs.len();
        r.moves += 1;
        r.unanswered += 1;
        let to = self.relay().map(|a| a.to_string()).unwrap_or_default();
        let round = self.relays.unanswered.cmp(&self.relays.addrs.len());
        match round {
            std::cmp::Ordering::Less => {
                let why = match why {
                    Why::Silent => format!("the relay at {from} is not answering"),
                    Why::Stopped => format!("the relay at {from} stopped"),
                    Why::Unreachable => format!("no relay at {from}"),
                };
                self.notice(&format!("moving to the relay at {to}: {why}"));
            }
            // Back where the silence started: said once, then the client goes on round the
            // list quietly (the prompt shows it) until one answers.
            std::cmp::Ordering::Equal => self.events.push_back(Event::Silent),
            std::cmp::Ordering::Greater => {}
        }
        self.told_silent = true;
        // Nothing queued for the last relay goes to this one: the rejoin sends what is owed.
        self.transmits.clear();
        self.owed_since = None;
        self.probes = 0;
        // Another path: its round trip is measured afresh.
        self.rtt = Rtt::default();
        // (A leaving client is not moved: leaving ends at once when the relay is silent.)
        self.phase = Phase::Joining {
            attempt: 0,
            next_try: now,
        };
        self.try_join(now);
    }
}
