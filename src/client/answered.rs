//! The relay's answers about the client's rooms: ENTERED (asked for, or a private conversation someone wrote in), PARTED and NOT_ENTERED.

use std::collections::VecDeque;
use std::time::Instant;

use super::presence::Presence;
use super::room::Channel;
use super::{Client, Event, Phase};
use crate::proto::dm::{is_dm, label, target_key};
use crate::proto::wire::ErrorCode;

impl Client {
    /// ENTERED: the relay let us in `name` as `number`.
    pub(super) fn room_entered(&mut self, now: Instant, number: u16, name: &str, latest: u64) {
        if !matches!(self.phase, Phase::Joined { .. }) {
            // Ahead of its session's WELCOME (a conversation told unasked right after it): the
            // number is not this session's yet. The relay tells it again.
            return;
        }
        let r = match self.channel(name) {
            Some(r) => r,
            None if is_dm(name) => {
                // Someone wrote to us (now, or while we were away): a private conversation
                // is ours whoever opened it.
                let since = self.config.seen.get(&target_key(name)).copied();
                let mut c = Channel::new(name.to_owned(), self.config.history, since);
                c.unasked = true;
                self.rooms.push(c);
                self.rooms.len() - 1
            }
            // Never asked for (a room an earlier process of ours was in): the relay leaves it
            // for us unless we enter it again.
            None => return,
        };
        if self.rooms[r].number == Some(number) {
            // A retransmitted ENTERED; of a conversation, the relay's telling us again because
            // it has not seen that we know the number: we say so again.
            let c = &mut self.rooms[r];
            if c.wanted && c.is_dm() && !c.confirming {
                c.confirming = true;
                c.retry_at = Some(now);
                self.room_requests_due(now);
            }
            return;
        }
        let entering = std::mem::take(&mut self.rooms[r].entering);
        let newer = self.rooms[r].parted.is_none_or(|p| number > p);
        if !self.rooms[r].wanted && self.rooms[r].is_dm() && !entering && newer {
            // Someone wrote in a conversation we had closed: it opens again, as a query
            // window does.
            self.rooms[r].wanted = true;
        }
        if !self.rooms[r].wanted {
            if self.rooms[r].number.is_none() {
                self.rooms[r].number = Some(number);
                self.rooms[r].retry_at = Some(now);
                self.room_requests_due(now);
            }
            return;
        }
        for (k, c) in self.rooms.iter_mut().enumerate() {
            if k != r && c.number == Some(number) {
                // A number no longer that room's: it is entered again.
                c.number = None;
                c.retry_at = c.wanted.then_some(now);
            }
        }
        self.rooms[r].number = Some(number);
        self.rooms[r].retry_at = None;
        self.rooms[r].tries = 0;
        if self.rooms[r].is_dm() {
            // A conversation's ENTERED may be one we did not ask for (someone wrote; a new
            // session of ours): the relay is told we know the number.
            self.rooms[r].confirming = true;
            self.rooms[r].retry_at = Some(now);
        }
        // Requests about it waited for its number: they go now.
        for (_, req) in self.requests.range_mut((r, 0)..=(r, u32::MAX)) {
            req.retry_at = now;
        }
        self.in_room(now, r, latest);
        // Pages of its history that overtook the ENTERED.
        let (early, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.early)
            .into_iter()
            .partition(|p| p.0 == number);
        self.early = rest;
        for (_, first, last, messages) in early {
            self.page(now, r, 0, first, last, messages);
        }
        if let Phase::Joined { token } = self.phase {
            self.retry_requests(now, token);
        }
        self.send_who(now);
        self.room_requests_due(now);
    }

    /// The room `r` is entered in this session (by the WELCOME for room 0, else an
    /// ENTERED), with `latest` its latest seq: where its delivery starts, the first time, and
    /// its history; after a rejoin, what it missed meanwhile is repaired.
    pub(super) fn in_room(&mut self, now: Instant, r: usize, latest: u64) {
        self.rooms[r].entered += 1;
        let first = self.rooms[r].entered == 1;
        let rejoin = self.sessions > 1 || !first;
        self.ask_presence_after_entering(now, r, rejoin);
        if first {
            if !self.rooms[r].starts_quietly(latest) {
                self.events.push_back(Event::Entered {
                    room: self.rooms[r].name.clone(),
                });
            }
            self.first_delivery(now, r, latest);
        } else {
            let c = &mut self.rooms[r];
            if latest < c.delivered {
                c.delivered = latest;
                c.ahead.clear();
                let room = c.name.clone();
                self.events.push_back(Event::Notice(format!(
                    "the relay lost the recent messages of {} (its log was reset)",
                    label(&room)
                )));
            }
            self.learn_latest(now, r, latest);
        }
        self.pump(now);
        self.drain(now, r);
    }

    /// PARTED: the session is not (or no longer) in the room it called `number`.
    pub(super) fn room_parted(&mut self, now: Instant, number: u16) {
        let Some(r) = self.by_number(number) else {
            return;
        };
        let c = &mut self.rooms[r];
        c.parted = c.number;
        c.number = None;
        c.retry_at = None;
        c.tries = 0;
        c.confirming = false;
        if c.wanted {
            // The relay says we are not in it (a rejoin into a session that had parted it,
            // say): in again.
            c.retry_at = Some(now);
            self.room_requests_due(now);
        } else {
            let room = c.name.clone();
            c.presence = Presence::default();
            self.events.push_back(Event::Parted { room });
        }
    }

    /// NOT_ENTERED: the relay refused to let us in `name`.
    pub(super) fn room_refused(&mut self, name: &str, code: ErrorCode, message: String) {
        let Some(r) = self
            .channel(name)
            .filter(|&r| self.rooms[r].number.is_none())
        else {
            return;
        };
        if code == ErrorCode::RateLimited {
            // It goes again after its backoff.
            return;
        }
        let c = &mut self.rooms[r];
        c.wanted = false;
        c.entering = false;
        c.retry_at = None;
        let dropped = self.outbox.iter().filter(|o| o.room == r).count();
        self.outbox.retain(|o| o.room != r);
        let room = self.rooms[r].name.clone();
        let also = if dropped > 0 {
            format!(" ({dropped} message(s) to it not sent)")
        } else {
            String::new()
        };
        let message = format!("{message}{also}");
        self.events.push_back(Event::NotEntered { room, message });
    }
}
