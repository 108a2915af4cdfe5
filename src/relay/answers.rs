//! Answers to HISTORY and WHO, and the history a JOIN asks for, sent page by page as the turns
//! have room: each waits in its session as a cursor of a few bytes, never built whole; every
//! page is charged, in bytes, to the session, its address, its wider network and the relay; and
//! the sessions that wait are served in fair shares (see `fair.rs`), after the turn's chat.
//!
//! So a flood of requests, from any number of sessions within their limits, delays requests
//! (its own first), never chat, and costs the relay a few bytes a waiting answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::join::{Origin, network, origin};
use super::{LogRead, Relay};
use crate::proto::message::Message;
use crate::proto::wire::ErrorCode;
use crate::relay::limit::Bucket;

/// Most answers one session may have waiting; a request beyond them is refused.
pub const MAX_ANSWERS: usize = 16;
/// Messages of history put into pages at a time (one read of the log at most).
const CHUNK: u64 = 32;
/// Bytes of answers one turn sends at most, so that the loop is soon back at its socket.
const BULK_PER_TURN: i64 = 256 << 10;
/// Bytes an address is credited with when its turn in the round comes.
const BULK_QUANTUM: i64 = 8 << 10;
/// How soon a turn should come again while answers wait only for allowances to refill, and
/// how often those waiting are looked at again.
const BLOCKED_POLL: Duration = Duration::from_millis(10);
/// Bytes a read of the log is charged when it is asked for, before its pages are made (then
/// the difference is given back): the most a [`CHUNK`] of messages can take, so that the
/// sessions of one address cannot all start reads in one turn for nothing, and a turn's
/// answers stay within [`BULK_PER_TURN`] and one chunk.
const READ_ESTIMATE: i64 = CHUNK as i64 * 1240;

/// An answer on its way, as far as it got.
#[derive(Debug, Clone)]
pub(super) enum Answer {
    /// Messages `first..=last` of `room` (the session's `number`), sent up to `next`
    /// (exclusive).
    History {
        room: usize,
        number: u16,
        req: u32,
        first: u64,
        last: u64,
        next: u64,
    },
    /// The names of `room` (the session's `number`), sent up to the one with key `after`.
    Names {
        room: usize,
        number: u16,
        req: u32,
        /// Names sent so far.
        sent: usize,
        after: Option<String>,
    },
}

impl Answer {
    /// The room it is about, and the session's number for it.
    fn about(&self) -> (usize, u16) {
        match self {
            Answer::History { room, number, .. } | Answer::Names { room, number, .. } => {
                (*room, *number)
            }
        }
    }

    /// Whether `other` asks again for what this answer, still on its way, was asked for: the
    /// same req, a range within its range (what it sent already and the client lacks, the
    /// client asks for again once this answer is done, as for any page lost).
    fn covers(&self, other: &Answer) -> bool {
        match (self, other) {
            (
                Answer::History {
                    number,
                    req,
                    first,
                    last,
                    ..
                },
                Answer::History {
                    number: n,
                    req: r,
                    first: f,
                    last: l,
                    ..
                },
            ) => number == n && req == r && first <= f && l <= last,
            (
                Answer::Names {
                    number,
                    req,
                    sent: 0,
                    ..
                },
                Answer::Names {
                    number: n, req: r, ..
                },
            ) => number == n && req == r,
            _ => false,
        }
    }
}

/// The allowances for answers: per address, per wider network and for the relay.
#[derive(Debug)]
pub(super) struct Allowances {
    by_origin: HashMap<Origin, Bucket>,
    by_network: HashMap<Origin, Bucket>,
    /// The relay's bytes a second of answers.
    rate: f64,
    /// The relay's allowance (made at the first turn, on its clock).
    total: Option<Bucket>,
}

impl Allowances {
    pub(super) fn new(rate: f64) -> Self {
        Allowances {
            by_origin: HashMap::new(),
            by_network: HashMap::new(),
            rate,
            total: None,
        }
    }

    /// Gives back the memory of addresses gone, when most are.
    pub(super) fn shrink(&mut self) {
        if self.by_origin.capacity() > 4 * self.by_origin.len() + 64 {
            self.by_origin.shrink_to_fit();
            self.by_network.shrink_to_fit();
        }
    }

    fn total(&mut self, now: Instant) -> &mut Bucket {
        let rate = self.rate;
        self.total
            .get_or_insert_with(|| Bucket::new(rate, rate / 4.0, now))
    }

    /// Forgets the allowances that are whole again (they cost nothing to make anew); at the
    /// tick.
    pub(super) fn forget_full(&mut self, now: Instant) {
        self.by_origin.retain(|_, b| !b.is_full(now));
        self.by_network.retain(|_, b| !b.is_full(now));
    }
}

/// What serving a session's answers came to.
enum After {
    /// More to send, and allowed.
    More,
    /// More to send, once its allowance refills.
    Blocked,
    /// Waiting for a read of the log ([`Relay::serve_read`] goes on).
    Reading,
    /// Nothing more.
    Done,
}

impl Relay {
    /// Queues `answer` for `to`, or refuses it when the session has as many waiting as it may.
    pub(super) fn queue_answer(&mut self, to: SocketAddr, answer: Answer) {
        let Some(mut s) = self.clients.get_mut(&to) else {
            return;
        };
        if s.answers.iter().any(|waiting| waiting.covers(&answer)) {
            // Asked again (a client's retry of what has not arrived yet): the answer on its way
            // brings it.
            return;
        }
        if s.answers.len() >= MAX_ANSWERS {
            let tell = !std::mem::replace(&mut s.told_busy, true);
            drop(s);
            self.stats.rate_limited += 1;
            if tell {
                let message = "too many requests waiting for their answers: wait for them".into();
                self.error(to, ErrorCode::RateLimited, Uuid::nil(), message);
            }
            return;
        }
        s.answers.push_back(answer);
        if !std::mem::replace(&mut s.in_bulk, true) {
            drop(s);
            self.bulk.insert(to);
        }
    }

    /// Puts a session that has answers waiting back in the rounds (after it moved address).
    pub(super) fn requeue_answers(&mut self, to: SocketAddr) {
        if let Some(mut s) = self.clients.get_mut(&to)
            && !s.answers.is_empty()
        {
            s.in_bulk = true;
            drop(s);
            self.bulk.insert(to);
        }
    }

    /// Sends, in fair shares and within the allowances, the next pages of the answers that
    /// wait: at most [`BULK_PER_TURN`] bytes a turn, and none while the last turn's pages are
    /// still to go (steady chat may leave them little room: they wait, not pile up).
    pub(super) fn serve_answers(&mut self, now: Instant) {
        if !self.bulk_out.is_empty() {
            return;
        }
        if self.blocked_looked.is_none_or(|t| now >= t + BLOCKED_POLL) {
            self.blocked_looked = Some(now);
            for to in std::mem::take(&mut self.bulk_blocked) {
                let waiting = self.clients.get(&to).is_some_and(|s| s.in_bulk);
                if !waiting {
                    continue;
                }
                if self.bulk_allowed(now, to) {
                    self.bulk.insert(to);
                } else {
                    self.bulk_blocked.insert(to);
                }
            }
        }
        let mut budget = BULK_PER_TURN;
        while budget > 0 && self.allowances.total(now).allows(now) {
            let Some(to) = self.bulk.next(BULK_QUANTUM) else {
                break;
            };
            let (bytes, after) = self.answer_some(now, to);
            budget -= bytes;
            self.bulk.served(bytes, matches!(after, After::More));
            self.after_answering(to, after);
        }
    }

    /// When a turn should come for the answers that wait, if any do.
    pub(super) fn answers_due(&self) -> Option<Instant> {
        let at = self.last_turn?;
        if !self.bulk.is_empty() {
            let wait =
                (self.allowances.total.as_ref()).map_or(Duration::ZERO, |b| b.until_allowed(at));
            return Some(at + wait);
        }
        (!self.bulk_blocked.is_empty()).then_some(at + BLOCKED_POLL)
    }

    /// Answers `read` with `messages`, the log's records from `read.first` to `read.last`
    /// (fewer, or none, if the log could not give them: the client asks again for what is
    /// missing).
    pub fn serve_read(&mut self, read: &LogRead, messages: &[Message]) {
        // Reads are made by a turn, and answered before the next: its time is theirs.
        let Some(now) = self.last_turn else {
            return;
        };
        if self.drop_stale(read.to) {
            // The read was for a room the session left meanwhile: its other answers go on.
            match self.what_next(now, read.to) {
                After::More => self.bulk.insert(read.to),
                other => self.after_answering(read.to, other),
            }
            return;
        }
        let Some(Answer::History {
            room,
            number,
            req,
            first,
            last,
            next,
        }) = self.front(read.to)
        else {
            return;
        };
        if req != read.req || next != read.first || self.rooms[room].name != read.room {
            return;
        }
        let bytes = self.history_pages(read.to, number, req, (first, last), messages);
        self.charge(now, read.to, bytes - READ_ESTIMATE);
        let after = self.advance_history(now, read.to, read.last + 1);
        match after {
            After::More => self.bulk.insert(read.to),
            other => self.after_answering(read.to, other),
        }
    }

    /// Sends the next pages of `to`'s first answer; the bytes sent and what is left.
    fn answer_some(&mut self, now: Instant, to: SocketAddr) -> (i64, After) {
        if !self.bulk_allowed(now, to) {
            return (0, After::Blocked);
        }
        self.drop_stale(to);
        let Some(front) = self.front(to) else {
            return (0, After::Done);
        };
        match front {
            Answer::History {
                room,
                number,
                req,
                first,
                last,
                next,
            } => {
                let end = last.min(next.saturating_add(CHUNK - 1));
                let Some(cached) = self.rooms[room].cached(next, end) else {
                    self.reads.push_back(LogRead {
                        to,
                        req,
                        room: self.rooms[room].name.clone(),
                        first: next,
                        last: end,
                    });
                    self.charge(now, to, READ_ESTIMATE);
                    return (READ_ESTIMATE, After::Reading);
                };
                let bytes = self.history_pages(to, number, req, (first, last), &cached);
                self.charge(now, to, bytes);
                (bytes, self.advance_history(now, to, end + 1))
            }
            Answer::Names {
                room,
                number,
                req,
                sent,
                after,
            } => {
                let bytes = self.names_page(to, (room, number), req, sent, after);
                self.charge(now, to, bytes);
                (bytes, self.what_next(now, to))
            }
        }
    }

    /// Drops the answers at the front of `to`'s that are about a room it is no longer in (it
    /// parted it, and the room may be gone); true if it dropped any.
    fn drop_stale(&mut self, to: SocketAddr) -> bool {
        let Some(mut s) = self.clients.get_mut(&to) else {
            return false;
        };
        let mut dropped = false;
        while let Some((room, number)) = s.answers.front().map(Answer::about) {
            if s.rooms.iter().any(|m| m.room == room && m.number == number) {
                break;
            }
            s.answers.pop_front();
            dropped = true;
        }
        dropped
    }

    /// Where `to`'s first answer stands, copied out of the session (making its pages borrows
    /// the relay).
    fn front(&self, to: SocketAddr) -> Option<Answer> {
        self.clients.get(&to)?.answers.front().cloned()
    }

    /// Moves `to`'s history answer on to `next`, finishing it past its last message.
    fn advance_history(&mut self, now: Instant, to: SocketAddr, next_seq: u64) -> After {
        if let Some(mut s) = self.clients.get_mut(&to)
            && let Some(Answer::History { last, next, .. }) = s.answers.front_mut()
        {
            if next_seq > *last {
                s.answers.pop_front();
            } else {
                *next = next_seq;
            }
        }
        self.what_next(now, to)
    }

    /// What is left of `to`'s answers, and whether its allowances let them go on now.
    fn what_next(&self, now: Instant, to: SocketAddr) -> After {
        match self.clients.get(&to) {
            Some(s) if !s.answers.is_empty() => {
                drop(s);
                if self.bulk_allowed(now, to) {
                    After::More
                } else {
                    After::Blocked
                }
            }
            _ => After::Done,
        }
    }

    /// Files `to` where it belongs after being served: waiting for its allowance, or out of
    /// the rounds (done, or reading: [`Relay::serve_read`] puts it back).
    fn after_answering(&mut self, to: SocketAddr, after: After) {
        match after {
            After::More | After::Reading => {}
            After::Blocked => {
                self.bulk_blocked.insert(to);
            }
            After::Done => {
                if let Some(mut s) = self.clients.get_mut(&to) {
                    s.in_bulk = false;
                }
            }
        }
    }

    /// Whether `to`, its address and its wider network may be sent more answers now.
    fn bulk_allowed(&self, now: Instant, to: SocketAddr) -> bool {
        let session = self.clients.get(&to).is_some_and(|s| s.bulk.allows(now));
        let allowed = |map: &HashMap<Origin, Bucket>, key: Option<Origin>| {
            key.and_then(|k| map.get(&k)).is_none_or(|b| b.allows(now))
        };
        session
            && allowed(&self.allowances.by_origin, Some(origin(to)))
            && allowed(&self.allowances.by_network, network(to))
    }

    /// Charges `bytes` sent to `to` to its allowances and the relay's.
    fn charge(&mut self, now: Instant, to: SocketAddr, bytes: i64) {
        let amount = bytes as f64;
        if let Some(mut s) = self.clients.get_mut(&to) {
            s.bulk.charge(now, amount);
        }
        let (ip, wide) = (
            self.config.bulk_rate_per_ip,
            self.config.bulk_rate_per_network,
        );
        let bucket = |rate: f64| Bucket::new(rate, rate / 4.0, now);
        (self.allowances.by_origin.entry(origin(to)))
            .or_insert_with(|| bucket(ip))
            .charge(now, amount);
        if let Some(n) = network(to) {
            (self.allowances.by_network.entry(n))
                .or_insert_with(|| bucket(wide))
                .charge(now, amount);
        }
        self.allowances.total(now).charge(now, amount);
    }

    /// Queues a page of an answer, after the turn's chat; its size.
    pub(super) fn send_bulk(&mut self, to: SocketAddr, bytes: Vec<u8>) -> i64 {
        let len = bytes.len() as i64;
        let queued = self.queued(to, Arc::from(bytes));
        self.bulk_out.push_back(queued);
        len
    }
}
