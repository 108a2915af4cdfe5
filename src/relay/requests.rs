//! HISTORY and WHO: the request rate, the range asked, and the cache of recent messages that
//! spares reading the log; the answers go page by page (see `answers.rs`).

use std::net::SocketAddr;
use std::time::Instant;

use uuid::Uuid;

use super::Relay;
use super::answers::Answer;
use crate::proto::wire::{ErrorCode, MAX_HISTORY_REQUEST, Packet};

impl Relay {
    /// Takes one of the session's request tokens, or tells it to slow down (once an episode,
    /// as for messages: see `send`).
    pub(super) fn request_allowed(&mut self, now: Instant, from: SocketAddr) -> bool {
        let Some(mut s) = self.clients.get_mut(&from) else {
            return false;
        };
        if s.requests.is_full(now) {
            s.told_busy = false;
        }
        if s.requests.take(now) {
            return true;
        }
        // Told for every refused request, a flood of requests had one ERROR back each, larger
        // than the request: the rate bounded the answers but not what the relay sent.
        let tell = !std::mem::replace(&mut s.told_busy, true);
        drop(s);
        self.stats.rate_limited += 1;
        if tell {
            let message = "too many requests: wait a moment".to_owned();
            self.error(from, ErrorCode::RateLimited, Uuid::nil(), message);
        }
        false
    }

    /// Answers a history request about the room the session calls `number`: the range it
    /// asks for, as the room has it, queued to go page by page (an empty answer goes at once,
    /// and so does the answer about a room the session is not in).
    pub(super) fn history(&mut self, to: SocketAddr, req: u32, number: u16, from: u64, count: u16) {
        let count = u64::from(count.min(MAX_HISTORY_REQUEST));
        let Some(room) = self.room_of(to, number) else {
            return self.reply(to, &Packet::Parted { room: number });
        };
        let (first, last) = self.rooms[room].range(from, count);
        if first == 0 {
            let page = Packet::HistoryPage {
                room: number,
                req,
                first: 0,
                last: 0,
                messages: Vec::new(),
            };
            return self.reply(to, &page);
        }
        let answer = Answer::History {
            room,
            number,
            req,
            first,
            last,
            next: first,
        };
        self.queue_answer(to, answer);
    }

    /// Answers a WHO about the room the session calls `number`: its names in order, queued
    /// to go page by page.
    pub(super) fn who(&mut self, to: SocketAddr, req: u32, number: u16) {
        let Some(room) = self.room_of(to, number) else {
            return self.reply(to, &Packet::Parted { room: number });
        };
        let answer = Answer::Names {
            room,
            number,
            req,
            sent: 0,
            after: None,
        };
        self.queue_answer(to, answer);
    }
}
