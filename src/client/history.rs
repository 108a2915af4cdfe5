//! History and who requests, room by room: asking, asking again for what is missing, and showing the answer.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Client, Event, Phase};
use crate::proto::message::Message;
use crate::proto::name::{fold, name_key};
use crate::proto::wire::{MAX_HISTORY_REQUEST, Packet, Token};

/// Rounds in a row that bring nothing before what arrived of a history request is shown as
/// it is.
const HISTORY_TRIES: u32 = 5;
/// Most runs of missing messages asked for in one round.
const MAX_RUNS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// The history sent on joining: live messages wait until it is shown.
    Join,
    /// `/history`: shown as history.
    User,
    /// Filling a gap in the live stream.
    Repair,
}

/// A who request and what arrived for it.
#[derive(Debug)]
pub(super) struct Who {
    pub(super) req: u32,
    /// The room asked about.
    pub(super) room: usize,
    /// How many of the user's requests it answers (each gets the answer).
    asked: u32,
    /// How many names the answer holds, as the page that reaches furthest says.
    total: u16,
    /// The key of the last name of that page.
    furthest: Option<String>,
    /// The names that came, each once, in the room's order.
    names: BTreeMap<String, String>,
    /// When to show what came, if not all did.
    pub(super) deadline: Instant,
}

impl Who {
    pub(super) fn new(req: u32, room: usize, asked: u32, deadline: Instant) -> Self {
        Who {
            req,
            room,
            asked,
            total: 0,
            furthest: None,
            names: BTreeMap::new(),
            deadline,
        }
    }

    /// Takes one page of the answer; true once the answer is all there.
    pub(super) fn take_page(&mut self, total: u16, names: &[String]) -> bool {
        // The total that counts is the page's that reaches furthest in the room's order: it
        // knows the most of the answer (the last page's is exact), whatever order the pages
        // came in.
        let furthest = names.last().map(|n| name_key(n));
        if self.furthest.is_none() || furthest > self.furthest {
            self.total = total;
            self.furthest = furthest;
        }
        for n in names {
            self.names.insert(name_key(n), n.clone());
        }
        self.names.len() >= usize::from(self.total)
    }

    /// The names that came, by name key.
    pub(super) fn into_names(self) -> BTreeMap<String, String> {
        self.names
    }
}

/// A history request and what arrived for it.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) purpose: Purpose,
    /// What was asked (for asking again when nothing arrived).
    pub(super) from: u64,
    pub(super) count: u16,
    /// The answer's range, once a page told it.
    pub(super) range: Option<(u64, u64)>,
    pub(super) got: BTreeMap<u64, Message>,
    /// How many messages had arrived at the last round.
    pub(super) progress: usize,
    pub(super) tries: u32,
    pub(super) retry_at: Instant,
}

impl Client {
    pub(super) fn ask(
        &mut self,
        now: Instant,
        r: usize,
        purpose: Purpose,
        from: u64,
        count: u16,
    ) -> u32 {
        let req = self.take_req();
        self.requests.insert(
            (r, req),
            Request {
                purpose,
                from,
                count,
                range: None,
                got: BTreeMap::new(),
                progress: 0,
                tries: 0,
                retry_at: now,
            },
        );
        if let Phase::Joined { token } = self.phase {
            self.retry_requests(now, token);
        }
        req
    }

    pub(super) fn take_req(&mut self) -> u32 {
        let req = self.next_req;
        self.next_req = self.next_req.checked_add(1).unwrap_or(1);
        req
    }

    /// Asks again for what is missing of each request that is due.
    pub(super) fn retry_requests(&mut self, now: Instant, token: Token) {
        let mut give_up = Vec::new();
        let mut packets = Vec::new();
        for (&(room, req), r) in &mut self.requests {
            if r.retry_at > now {
                continue;
            }
            // Asked once the room is entered (in this session).
            let Some(number) = self.rooms[room].number else {
                continue;
            };
            if r.got.len() > r.progress {
                // Pages are arriving: only rounds that bring nothing count against the request.
                r.progress = r.got.len();
                r.tries = 0;
            }
            if r.tries >= HISTORY_TRIES {
                give_up.push((room, req));
                continue;
            }
            r.tries += 1;
            r.retry_at = now + self.rtt.backoff(r.tries);
            let Some((first, last)) = r.range else {
                // Nothing arrived, not even the answer's range: ask the same again.
                packets.push(Packet::History {
                    token,
                    req,
                    room: number,
                    from: r.from,
                    count: r.count,
                });
                continue;
            };
            // Ask for each run of missing messages, not for everything after the first gap.
            let mut runs: Vec<(u64, u64)> = Vec::new();
            for seq in (first..=last).filter(|s| !r.got.contains_key(s)) {
                match runs.last_mut() {
                    Some((_, end)) if *end + 1 == seq => *end = seq,
                    _ => {
                        if runs.len() == MAX_RUNS {
                            break;
                        }
                        runs.push((seq, seq));
                    }
                }
            }
            for (from, end) in runs {
                let count = u16::try_from(end - from + 1).unwrap_or(MAX_HISTORY_REQUEST);
                packets.push(Packet::History {
                    token,
                    req,
                    room: number,
                    from,
                    count,
                });
            }
        }
        for p in packets {
            self.transmit(now, &p);
        }
        for key in give_up {
            if let Some(r) = self.requests.remove(&key) {
                if r.purpose != Purpose::Repair {
                    self.notice("part of the history did not arrive: showing what did");
                }
                self.finish(now, key.0, r);
            }
        }
    }

    pub(super) fn page(
        &mut self,
        now: Instant,
        room: usize,
        req: u32,
        first: u64,
        last: u64,
        messages: Vec<Message>,
    ) {
        // An answer is empty (0, 0) or a range of at most what may be asked: anything else is
        // no answer of a relay's (and a range of 2^64 seqs would have the retries walk it).
        let empty = (first, last) == (0, 0);
        if !empty && (first == 0 || first > last || last - first >= u64::from(MAX_HISTORY_REQUEST))
        {
            return;
        }
        if req == 0 && self.sessions == 0 {
            // Join history that overtook the welcome: keep it for when it comes, which says
            // what the join history is (see `welcomed`). Completing it here, once its pages
            // were all in, showed it before the welcome and then asked for it again.
            let r = self.requests.entry((room, 0)).or_insert_with(|| Request {
                purpose: Purpose::Join,
                from: 0,
                count: self.config.history,
                range: Some((first, last)),
                got: BTreeMap::new(),
                progress: 0,
                tries: 0,
                retry_at: now + self.rtt.rto() * 2,
            });
            r.got.extend(messages.into_iter().map(|m| (m.seq, m)));
            return;
        }
        let Some(r) = self.requests.get_mut(&(room, req)) else {
            return;
        };
        let (first, last) = *r.range.get_or_insert((first, last));
        for m in messages {
            if first <= m.seq && m.seq <= last {
                r.got.insert(m.seq, m);
            }
        }
        self.complete_if_done(now, room, req);
    }

    pub(super) fn complete_if_done(&mut self, now: Instant, room: usize, req: u32) {
        let done = (self.requests.get(&(room, req))).is_some_and(|r| match r.range {
            Some((first, last)) => first == 0 || r.got.len() as u64 == last - first + 1,
            None => false,
        });
        if done && let Some(r) = self.requests.remove(&(room, req)) {
            self.finish(now, room, r);
        }
    }

    /// Shows what a finished (or abandoned) history request of room `room` brought.
    fn finish(&mut self, now: Instant, room: usize, r: Request) {
        let name = self.rooms[room].name.clone();
        match r.purpose {
            Purpose::Join | Purpose::User => {
                let framed = r.purpose == Purpose::User;
                if framed {
                    let count = r.got.len();
                    self.events.push_back(Event::HistoryStart {
                        room: name.clone(),
                        count,
                    });
                } else {
                    self.events.extend(self.rooms[room].missed.take());
                }
                for (_, message) in r.got {
                    let own = message.from == self.config.name;
                    self.events.push_back(Event::Message {
                        room: name.clone(),
                        message,
                        history: true,
                        own,
                    });
                }
                if framed {
                    self.events.push_back(Event::HistoryEnd { room: name });
                }
            }
            Purpose::Repair => {
                for (_, m) in r.got {
                    self.arrived(room, m);
                }
                if let Some((_, last)) = r.range
                    && last == 0
                {
                    // The relay has nothing there: what we were told of is not there.
                    let c = &mut self.rooms[room];
                    c.known_latest = c
                        .delivered
                        .max(c.ahead.keys().next_back().copied().unwrap_or(0));
                }
            }
        }
        self.drain(now, room);
        if self.rooms[room].gap_since.is_some() {
            self.start_repair(now, room);
        }
    }

    /// Takes one page of the names of room `room` answering a WHO.
    pub(super) fn names_page(
        &mut self,
        now: Instant,
        room: usize,
        req: u32,
        total: u16,
        names: Vec<String>,
    ) {
        if self.presence_page(room, req, total, &names) {
            return;
        }
        let Some(w) = (self.who.as_mut()).filter(|w| w.req == req && w.room == room) else {
            return;
        };
        if w.take_page(total, &names) {
            self.finish_who(now);
        }
    }

    pub(super) fn finish_who(&mut self, now: Instant) {
        let mut last_room = None;
        if let Some(w) = self.who.take() {
            let room = self.rooms[w.room].name.clone();
            last_room = Some(w.room);
            let event = if w.names.is_empty() {
                // We are in the room, so an empty list means the answer never came.
                Event::Error(format!(
                    "the relay did not answer /who {}: try again",
                    crate::proto::dm::label(&room)
                ))
            } else {
                // Shown in the order of their letters (the keys' order is the confusable
                // data's: `a022` before `a000`).
                let mut names: Vec<String> = w.names.into_values().collect();
                names.sort_by_cached_key(|n| (fold(n), n.clone()));
                Event::Who { room, names }
            };
            for _ in 0..w.asked {
                self.events.push_back(event.clone());
            }
        }
        if self.who_waiting > 0 {
            let asked = std::mem::take(&mut self.who_waiting);
            let room = self.who_next.take().or(last_room).unwrap_or(0);
            self.ask_who(now, room, asked);
        }
    }
}
