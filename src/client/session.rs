//! The session with the relay: joining, the welcome, rejoining, and what the
//! relay's errors mean for the client.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Client, Event, MIN_PING_INTERVAL, PING_INTERVAL, Phase, Purpose, Request};
use crate::proto::wire::{ErrorCode, MAX_HISTORY_REQUEST, Packet, Token};

impl Client {
    pub(super) fn try_join(&mut self, now: Instant) {
        let Phase::Joining { attempt, .. } = self.phase else {
            return;
        };
        // The JOIN enters the first room wanted, as the session's room 0; the others are
        // entered after the welcome.
        self.zero = self.first();
        // On a rejoin the gap is repaired from the log instead of replaying history; coming
        // back after a while, the client asks for what it missed itself once it knows the
        // latest seq (see `first_delivery`).
        let history = match self.zero.map(|r| &self.rooms[r]) {
            Some(c) if c.entered == 0 && c.since.is_none() => c.history,
            _ => 0,
        };
        let packet = Packet::Join {
            name: self.config.name.clone(),
            history,
            instance: self.instance,
            room: (self.zero).map_or_else(String::new, |r| self.rooms[r].name.clone()),
        };
        self.transmit(now, &packet);
        let wait = self.rtt.backoff(attempt);
        self.phase = Phase::Joining {
            attempt: attempt + 1,
            next_try: now + wait,
        };
    }

    pub(super) fn welcomed(
        &mut self,
        now: Instant,
        token: Token,
        name: String,
        latest: u64,
        timeout_ms: u32,
    ) {
        if let Phase::Joined { .. } = self.phase {
            // With this session's token, a retransmitted welcome. With another, a late one
            // answering a JOIN sent before a relay restart: taking it would renumber the
            // messages in flight against a session the relay does not have, and the rejoin
            // that follows would renumber them again against a relay that expects more.
            return;
        }
        // The token of the session we thought lost: the relay kept it, and the ERROR NotJoined
        // we rejoined on answered a datagram of an older session (sent before a restart, say).
        let same_session = self.session_token == Some(token);
        self.session_token = Some(token);
        self.phase = Phase::Joined { token };
        // Requests made while joining go out now (the join history's own entry comes below).
        for req in self.requests.values_mut() {
            req.retry_at = now;
        }
        // A quarter of the relay's timeout, but never so often that a relay announcing a
        // timeout of 0 makes the client ping without pause.
        self.ping_every = (Duration::from_millis(u64::from(timeout_ms)) / 4)
            .clamp(MIN_PING_INTERVAL, PING_INTERVAL);
        self.config.name = name.clone();
        if same_session {
            self.notice(&format!("rejoined as {name}"));
            // Carry on with it, its rooms and the csns it expects: numbered afresh from 1,
            // the messages in flight would be dropped as old by the relay, for ever.
            if let Some(r) = self.zero.filter(|&r| self.rooms[r].number == Some(0)) {
                self.learn_latest(now, r, latest);
            }
            self.send_who(now);
            self.room_requests_due(now);
            self.pump(now);
            return;
        }
        self.sessions += 1;
        self.notice(&if self.sessions == 1 {
            format!("joined as {name}")
        } else {
            format!("rejoined as {name}")
        });
        // A new session numbers its rooms afresh: room 0 is the JOIN's, the others are
        // entered again.
        self.early.clear();
        for c in &mut self.rooms {
            c.number = None;
            c.parted = None;
            c.tries = 0;
            c.retry_at = c.wanted.then_some(now);
        }
        // Everything unacknowledged is numbered afresh in this session and sent again.
        self.next_csn = 1;
        for o in &mut self.outbox {
            o.csn = 0;
            o.sends = 0;
            o.resend_at = None;
        }
        if let Some(r) = self.zero {
            self.rooms[r].number = Some(0);
            self.rooms[r].retry_at = None;
            self.in_room(now, r, latest);
        }
        self.send_who(now);
        self.room_requests_due(now);
        self.pump(now);
    }

    /// The first time room `r` is entered: delivery starts at `latest`, and what the user
    /// asked to see of it before (the last `history` messages, or what came since they were
    /// last there) is shown first, as history.
    pub(super) fn first_delivery(&mut self, now: Instant, r: usize, latest: u64) {
        let c = &mut self.rooms[r];
        c.delivered = latest;
        c.known_latest = latest;
        // Pages of the join history may have overtaken the welcome.
        let early = self.requests.remove(&(r, 0));
        let c = &mut self.rooms[r];
        let quiet = c.starts_quietly(latest);
        let wanted = match c.since {
            // Back after a while: what came since, instead of a fixed number of lines.
            Some(seen) => {
                let missed = latest.saturating_sub(seen.seq);
                // Said just before what was missed is shown (see `finish`).
                c.missed = (!quiet).then(|| Event::Missed {
                    room: c.name.clone(),
                    count: missed,
                    since: seen.at,
                });
                u16::try_from(missed).unwrap_or(u16::MAX)
            }
            None => c.history,
        };
        let asked_itself = c.since.is_some() || c.unasked;
        let count = wanted.min(MAX_HISTORY_REQUEST);
        let count = u16::try_from(latest.min(u64::from(count))).unwrap_or(count);
        if count > 0 {
            // The relay sends this history unasked, as request 0. It is the `count` messages
            // up to this welcome's latest, whatever pages say: pages answering an earlier JOIN
            // (whose welcome was lost) or a retry reach other seqs, and anything after
            // `latest` is live, so showing it as history would show it twice and taking an
            // earlier page's range would skip what lies between.
            let first = latest - u64::from(count) + 1;
            let mut got = early.map(|r| r.got).unwrap_or_default();
            got.retain(|seq, _| (first..=latest).contains(seq));
            self.requests.insert(
                (r, 0),
                Request {
                    purpose: Purpose::Join,
                    from: first,
                    count,
                    range: Some((first, latest)),
                    got,
                    progress: 0,
                    tries: 0,
                    // Asked for now when the JOIN (or ENTER) did not ask for it.
                    retry_at: if asked_itself {
                        now
                    } else {
                        now + self.rtt.rto() * 2
                    },
                },
            );
            self.complete_if_done(now, r, 0);
        }
        if !self.requests.contains_key(&(r, 0)) {
            // Nothing to show: say so now.
            self.events.extend(self.rooms[r].missed.take());
        }
    }

    pub(super) fn refused(&mut self, now: Instant, code: ErrorCode, id: Uuid, message: String) {
        match code {
            ErrorCode::NotJoined => {
                if matches!(self.phase, Phase::Joined { .. }) && self.refuses_ours(id) {
                    self.notice("the relay lost this connection (it restarted, or the network changed); rejoining");
                    self.phase = Phase::Joining {
                        attempt: 0,
                        next_try: now,
                    };
                    self.try_join(now);
                }
            }
            ErrorCode::Stopping => {
                if matches!(self.phase, Phase::Joined { .. }) && self.relays.several() {
                    // Another relay of the cluster has the rooms: no need to wait for this one.
                    self.move_on(now, super::relays::Why::Stopped);
                } else if matches!(self.phase, Phase::Joined { .. }) {
                    // Not an answer the relay owes: the JOINs that follow are, and their
                    // silence says so in time; the backoff spaces them while the relay is down.
                    self.notice("the relay stopped; trying to rejoin");
                    // Said: the silence that follows is no news (the prompt shows it), and the
                    // relay's first answer is ("the relay is answering again").
                    self.told_silent = true;
                    self.phase = Phase::Joining {
                        attempt: 0,
                        next_try: now,
                    };
                    self.try_join(now);
                }
            }
            ErrorCode::BadText | ErrorCode::BadRoom if !id.is_nil() => {
                if let Some(i) = self.outbox.iter().position(|o| o.id == id) {
                    self.outbox.remove(i);
                    self.events.push_back(Event::Error(message));
                    self.pump(now);
                }
            }
            ErrorCode::NameTaken
            | ErrorCode::BadName
            | ErrorCode::Full
            | ErrorCode::NotAllowed
            | ErrorCode::BadRoom
            | ErrorCode::TooManyRooms => {
                if matches!(self.phase, Phase::Joining { .. }) {
                    self.phase = Phase::Closed;
                    self.events.push_back(Event::Error(message));
                }
            }
            ErrorCode::BadText => {}
            // The message stays in the outbox and goes again after its backoff: said once an
            // episode, not at every retransmission.
            ErrorCode::Storage => {
                if self.told_storage.is_none() {
                    let room = (self.outbox.iter().find(|o| o.id == id)).map_or(0, |o| o.room);
                    let latest = self.rooms.get(room).map_or(0, |c| c.known_latest);
                    self.told_storage = Some((room, latest));
                    self.notice(
                        "the relay cannot store messages right now; yours will be sent again",
                    );
                }
            }
            ErrorCode::RateLimited if !id.is_nil() => {
                // The relay's words say its rate.
                if !std::mem::replace(&mut self.told_slow, true) {
                    self.notice(&message);
                }
            }
            ErrorCode::RateLimited => self.notice(&message),
            ErrorCode::Malformed => self.events.push_back(Event::Error(message)),
        }
    }
}
