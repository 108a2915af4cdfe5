//! The rooms the client follows: each one's number in this session, entering (ENTER, sent again until ENTERED), confirming a number given unasked, and parting (PART, until PARTED), and its own delivery, history and presence; the relay's answers are `answered.rs`'s.

use std::collections::BTreeMap;
use std::time::Instant;

use super::presence::Presence;
use super::{Client, Event, Phase, Seen};
use crate::proto::dm::{TargetError, check_target, is_dm, label, target_key};
use crate::proto::message::{Message, check_text};
use crate::proto::room::room_key;
use crate::proto::wire::{MAX_LEAVE_BYTES, MAX_ROOMS, Packet};

/// Pages of entering history kept while they wait for their ENTERED.
pub(super) const EARLY_PAGES: usize = 64;

/// A room as the client follows it.
#[derive(Debug)]
pub(super) struct Channel {
    /// Its name as shown: a room's in lower case; a private conversation's `@` and the other
    /// person's name, as the relay spells it once it let us in.
    pub(super) name: String,
    /// What it is found by: its [`target_key`].
    pub(super) key: String,
    /// True when the relay let us in without our asking (a private conversation someone
    /// wrote to): its history is ours to ask for.
    pub(super) unasked: bool,
    /// True while the relay is to be told that we know its number (a HISTORY of nothing
    /// naming it, sent again until a page about it comes back): until then it tells us again.
    pub(super) confirming: bool,
    /// True while an ENTER of ours is on its way (sent, no ENTERED or refusal yet).
    pub(super) entering: bool,
    /// The number it had when it was last parted in this session: an ENTERED of that number
    /// or an older one, come late, is not someone writing (numbers only grow in a session).
    pub(super) parted: Option<u16>,
    /// The session's number for it, once the relay gave one (0 for the JOIN's room).
    pub(super) number: Option<u16>,
    /// Whether the user wants to be in it (false once they parted it).
    pub(super) wanted: bool,
    /// When to send the ENTER (or PART) again, while one is on its way.
    pub(super) retry_at: Option<Instant>,
    /// ENTERs (or PARTs) sent in a row without an answer.
    pub(super) tries: u32,
    /// What the PART says, while parting.
    pub(super) parting: String,
    /// Messages of history to show the first time it is entered.
    pub(super) history: u16,
    /// Where the user left off in it last time: the first time it is entered, what came
    /// since is shown instead of `history`.
    pub(super) since: Option<Seen>,
    /// Sessions in which it was entered (0: not yet).
    pub(super) entered: u32,
    /// Highest sequence number delivered in order.
    pub(super) delivered: u64,
    /// Highest sequence number the relay told of.
    pub(super) known_latest: u64,
    /// Messages received ahead of a gap, and own acknowledged ones.
    pub(super) ahead: BTreeMap<u64, (Message, bool)>,
    /// The request filling the current gap, if any.
    pub(super) repair: Option<u32>,
    /// Since when the live stream has a gap.
    pub(super) gap_since: Option<Instant>,
    /// Who is in it.
    pub(super) presence: Presence,
    /// What the user missed since last time, to say just before it is shown.
    pub(super) missed: Option<Event>,
}

impl Channel {
    pub(super) fn new(name: String, history: u16, since: Option<Seen>) -> Self {
        Channel {
            key: target_key(&name),
            unasked: false,
            confirming: false,
            entering: false,
            parted: None,
            name,
            number: None,
            wanted: true,
            retry_at: None,
            tries: 0,
            parting: String::new(),
            history,
            since,
            entered: 0,
            delivered: 0,
            known_latest: 0,
            ahead: BTreeMap::new(),
            repair: None,
            gap_since: None,
            presence: Presence::default(),
            missed: None,
        }
    }

    /// True for a conversation the relay let us in to (on joining) with nothing new since we
    /// were last in it, whose latest is `latest`: it comes quietly, with neither ENTERED's
    /// notice nor a "no new messages" line (a day's start would otherwise say so of each).
    pub(super) fn starts_quietly(&self, latest: u64) -> bool {
        self.unasked && self.since.is_some_and(|s| latest <= s.seq)
    }

    /// True for a private conversation.
    pub(super) fn is_dm(&self) -> bool {
        is_dm(&self.key)
    }

    /// True while it is entered in this session and wanted.
    pub(super) fn is_in(&self) -> bool {
        self.wanted && self.number.is_some()
    }
}

/// A room as the user sees it in [`Client::rooms`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// Its name: a room's in lower case, a private conversation's `@` and the other person's
    /// name.
    pub name: String,
    /// True once the relay let the client in (in this session).
    pub entered: bool,
    /// How many are in it as the client knows (itself included), once entered.
    pub members: usize,
    /// Highest sequence number delivered in order.
    pub delivered: u64,
}

impl Client {
    /// The rooms the client is in or entering, in the order they were entered.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        (self.rooms.iter())
            .filter(|c| c.wanted)
            .map(|c| RoomInfo {
                name: c.name.clone(),
                entered: c.number.is_some(),
                members: c.presence.count() + usize::from(c.number.is_some()),
                delivered: c.delivered,
            })
            .collect()
    }

    /// The name the room or private conversation `target` (in any spelling: `OPS`, `@BOB`)
    /// shows as, if the client follows it.
    pub fn followed(&self, target: &str) -> Option<String> {
        let r = self.channel(target).filter(|&r| self.rooms[r].wanted)?;
        Some(self.rooms[r].name.clone())
    }

    /// The room `name`'s place among the rooms followed, if followed.
    pub(super) fn channel(&self, name: &str) -> Option<usize> {
        if let Some(r) = self.rooms.iter().position(|c| c.name == name) {
            return Some(r);
        }
        let key = target_key(name);
        self.rooms.iter().position(|c| c.key == key)
    }

    /// The room the relay calls `number` in this session.
    pub(super) fn by_number(&self, number: u16) -> Option<usize> {
        (self.rooms.iter()).position(|c| c.number == Some(number))
    }

    /// The first room wanted: where [`Client::send`] and the other calls without a room go.
    pub(super) fn first(&self) -> Option<usize> {
        self.rooms.iter().position(|c| c.wanted)
    }

    /// Enters the room `name` (made by the relay on first use), or the private conversation
    /// with someone (`@` and their name), with `history` messages of it shown (or what came
    /// since `since`); the relay's answer comes as [`Event::Entered`] or an
    /// [`Event::NotEntered`]. Entering a room the client is in already does nothing.
    ///
    /// # Errors
    /// When the name breaks the rules of room names (or of names, after `@`), or the client
    /// follows [`MAX_ROOMS`] rooms already.
    pub fn enter(
        &mut self,
        now: Instant,
        name: &str,
        history: u16,
        since: Option<Seen>,
    ) -> Result<(), EnterError> {
        check_target(name).map_err(EnterError::Name)?;
        let key = if is_dm(name) {
            name.to_owned()
        } else {
            room_key(name)
        };
        if let Some(r) = self.channel(&key) {
            if self.rooms[r].wanted {
                return Ok(());
            }
            // Parted and wanted again: entered anew.
            let c = &mut self.rooms[r];
            c.wanted = true;
            c.tries = 0;
            c.retry_at = Some(now);
            if c.number.is_some() {
                // The PART is on its way: once PARTED, the ENTER goes.
                return Ok(());
            }
        } else {
            if self.rooms.iter().filter(|c| c.wanted).count() >= MAX_ROOMS {
                return Err(EnterError::TooMany);
            }
            let mut c = Channel::new(key, history, since);
            c.retry_at = Some(now);
            self.rooms.push(c);
        }
        self.room_requests_due(now);
        Ok(())
    }

    /// Leaves the room `name`, telling its others `message` (cut and checked as for
    /// [`Client::leave_saying`]); its messages not yet sent are dropped, and said so.
    /// Returns false when the client does not follow it.
    pub fn part(&mut self, now: Instant, name: &str, message: &str) -> bool {
        let Some(r) = self.channel(name).filter(|&r| self.rooms[r].wanted) else {
            return false;
        };
        let dropped = self.outbox.iter().filter(|o| o.room == r).count();
        self.outbox.retain(|o| o.room != r);
        self.requests.retain(|(room, _), _| *room != r);
        if dropped > 0 {
            self.events.push_back(Event::Error(format!(
                "{dropped} message(s) to {} were not sent: you left it",
                label(&self.rooms[r].name)
            )));
        }
        let message = leaving_text(message);
        let c = &mut self.rooms[r];
        c.wanted = false;
        c.confirming = false;
        c.parting = message;
        c.tries = 0;
        c.retry_at = c.number.map(|_| now);
        if c.number.is_none() {
            // Never entered in this session: nothing to tell the relay (an ENTERED on its way
            // is parted when it comes).
            let name = c.name.clone();
            self.events.push_back(Event::Parted { room: name });
        }
        self.room_requests_due(now);
        true
    }

    /// Sends the ENTERs and PARTs that are due.
    pub(super) fn room_requests_due(&mut self, now: Instant) {
        let Phase::Joined { token } = self.phase else {
            return;
        };
        let mut packets = Vec::new();
        for c in &mut self.rooms {
            if c.retry_at.is_none_or(|t| t > now) {
                continue;
            }
            if let (true, true, Some(number)) = (c.confirming, c.wanted, c.number) {
                // That we know its number: a request naming it (for nothing: an empty page
                // answers), which cannot enter us anew as an ENTER would if we were out.
                packets.push(Packet::History {
                    token,
                    req: 0,
                    room: number,
                    from: 0,
                    count: 0,
                });
                c.tries += 1;
                c.retry_at = Some(now + self.rtt.backoff(c.tries));
                continue;
            }
            let packet = match (c.wanted, c.number) {
                (true, None) => {
                    c.entering = true;
                    Packet::Enter {
                        token,
                        room: c.name.clone(),
                        history: if c.entered == 0 && c.since.is_none() {
                            c.history
                        } else {
                            0
                        },
                    }
                }
                (false, Some(number)) => Packet::Part {
                    token,
                    room: number,
                    message: c.parting.clone(),
                },
                _ => {
                    c.retry_at = None;
                    continue;
                }
            };
            c.tries += 1;
            c.retry_at = Some(now + self.rtt.backoff(c.tries));
            packets.push(packet);
        }
        for p in packets {
            self.transmit(now, &p);
        }
    }
}

/// Why a room could not be entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnterError {
    /// The name breaks the rules.
    Name(TargetError),
    /// The client follows as many rooms as a session may be in.
    TooMany,
}

impl std::fmt::Display for EnterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnterError::Name(e) => e.fmt(f),
            EnterError::TooMany => write!(
                f,
                "you are in {MAX_ROOMS} rooms, the most a session may be in: /part one first"
            ),
        }
    }
}

impl std::error::Error for EnterError {}

/// What a LEAVE or PART says: cut to [`MAX_LEAVE_BYTES`] at a character boundary, nothing if
/// it breaks the text rules.
pub(super) fn leaving_text(message: &str) -> String {
    let mut cut = message.len().min(MAX_LEAVE_BYTES);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let message = &message[..cut];
    if check_text(message).is_ok() {
        message.to_owned()
    } else {
        String::new()
    }
}
