//! Who is in each room as far as the client knows: each arrival and departure told once, and the
//! room asked for after every join, so that what a rejoin missed (who left, who came while the
//! client was away) is told too, and whenever the relay's count of members stays other than
//! the client's (a PRESENCE was lost).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::history::Who;
use super::{Client, Event, MAX_RTO, Phase};
use crate::proto::name::name_key;
use crate::proto::wire::{Change, LeaveReason, Packet};

/// How long after a rejoin the client waits before it asks who is in the room, on top of its
/// ping interval: the others need that long to notice a restarted relay and join it again.
const REJOIN_GRACE: Duration = Duration::from_secs(1);
/// Times the room is asked for in a row when no answer comes (WHO is not retransmitted).
const ASK_TRIES: u32 = 8;
/// The shortest wait for the answer before asking again.
const ANSWER_WAIT: Duration = Duration::from_secs(1);
/// How long the relay's count of members (in its PONGs) may stay the same and other than the
/// client's before it asks who is there: longer than a PRESENCE takes behind a PONG that
/// overtook it (the chat's lane goes first). While the count moves (a crowd joining or
/// leaving), nobody asks.
const MISCOUNT_WAIT: Duration = Duration::from_secs(3);

/// The others in the room, and the asking that keeps them true.
#[derive(Debug, Default)]
pub(super) struct Presence {
    /// The others in the room, by name key (case-insensitive), with their names as written.
    present: BTreeMap<String, String>,
    /// Whether `present` was ever set from the relay's list (until then, nobody is known to
    /// be absent).
    known: bool,
    /// When to ask the relay who is there.
    ask_at: Option<Instant>,
    /// The question on its way.
    asking: Option<Asking>,
    /// Questions in a row that got no answer.
    tries: u32,
    /// Since when, and at which count, the relay's PONGs have said another number of members
    /// than the client knows.
    miscount: Option<(Instant, u32)>,
}

/// A WHO the client asked for itself, and what changed since it was asked.
#[derive(Debug)]
struct Asking {
    who: Who,
    /// Names that arrived or left since the question left: PRESENCE told of them after the
    /// answer was made, so the answer says nothing new about them.
    changed: BTreeSet<String>,
}

impl Presence {
    /// True while `name` is known to be in the room.
    fn has(&self, key: &str) -> bool {
        self.present.contains_key(key)
    }

    /// How many others are known to be in the room.
    pub(super) fn count(&self) -> usize {
        self.present.len()
    }
}

impl Client {
    /// The others in the first room followed as the client knows them, sorted by name key.
    pub fn present(&self) -> Vec<String> {
        self.first().map_or_else(Vec::new, |r| self.present_of(r))
    }

    /// The others in the room `name` as the client knows them, sorted by name key.
    pub fn present_in(&self, name: &str) -> Vec<String> {
        self.channel(name)
            .map_or_else(Vec::new, |r| self.present_of(r))
    }

    fn present_of(&self, r: usize) -> Vec<String> {
        self.rooms[r].presence.present.values().cloned().collect()
    }

    /// After entering room `r`: asks who is in it, at once the first time (what is known then
    /// is the starting point, told to nobody) and after a grace on a rejoin (so that the
    /// others have rejoined a restarted relay by then).
    pub(super) fn ask_presence_after_entering(&mut self, now: Instant, r: usize, rejoin: bool) {
        if self.rooms[r].is_dm() {
            // A private conversation tells nobody who comes and goes: nothing to follow.
            return;
        }
        let at = if rejoin {
            now + self.ping_every + REJOIN_GRACE
        } else {
            now
        };
        let p = &mut self.rooms[r].presence;
        p.ask_at = Some(at);
        p.asking = None;
        p.tries = 0;
    }

    /// The PRESENCE changes of the relay about room `r`: told unless they are not news
    /// (someone already here joining is someone rejoining a restarted relay).
    pub(super) fn presence_changes(&mut self, r: usize, changes: Vec<Change>) {
        let room = self.rooms[r].name.clone();
        let p = &mut self.rooms[r].presence;
        for c in changes {
            let key = name_key(&c.name);
            if let Some(a) = &mut p.asking {
                a.changed.insert(key.clone());
            }
            if c.joined {
                if p.present.insert(key, c.name.clone()).is_none() {
                    self.events.push_back(Event::Joined {
                        room: room.clone(),
                        name: c.name,
                    });
                }
            } else if p.present.remove(&key).is_some() || !p.known {
                self.events.push_back(Event::Left {
                    room: room.clone(),
                    name: c.name,
                    reason: c.reason,
                    message: c.message,
                });
            }
        }
    }

    /// Someone who speaks live in room `r` is in it, as far as the client knows before the
    /// relay's first answer says who is. After it, PRESENCE and the answers say: a message
    /// that comes after its sender's leave (reordered) must not bring them back.
    pub(super) fn speaks(&mut self, r: usize, from: &str) {
        let key = name_key(from);
        let own = key == name_key(&self.config.name);
        let p = &mut self.rooms[r].presence;
        if !p.known && !own && !p.has(&key) {
            p.present.insert(key, from.to_owned());
        }
    }

    /// The relay says room `r` has `members` sessions (this one included): when it says so,
    /// unchanged, for [`MISCOUNT_WAIT`] while the client knows of another number, a PRESENCE
    /// was lost, and the client asks who is there.
    pub(super) fn count_members(&mut self, now: Instant, r: usize, members: u32) {
        let joined = matches!(self.phase, Phase::Joined { .. });
        let p = &mut self.rooms[r].presence;
        let settled = joined && p.known && p.asking.is_none() && p.ask_at.is_none();
        let ours = u32::try_from(p.present.len() + 1).unwrap_or(u32::MAX);
        if !settled || members == ours {
            p.miscount = None;
            return;
        }
        match p.miscount {
            Some((since, count))
                if count == members && now.saturating_duration_since(since) >= MISCOUNT_WAIT =>
            {
                p.miscount = None;
                p.tries = 0;
                p.ask_at = Some(now);
            }
            Some((_, count)) if count == members => {}
            _ => p.miscount = Some((now, members)),
        }
    }

    /// When the presence of the rooms wants to be woken.
    pub(super) fn presence_timeout(&self) -> Option<Instant> {
        (self.rooms.iter())
            .filter(|c| c.is_in())
            .filter_map(|c| match &c.presence.asking {
                Some(a) => Some(a.who.deadline),
                None => c.presence.ask_at,
            })
            .min()
    }

    /// Asks who is in each room when it is time; gives up waiting for an answer at its
    /// deadline.
    pub(super) fn presence_due(&mut self, now: Instant) {
        let Phase::Joined { token } = self.phase else {
            return;
        };
        for r in 0..self.rooms.len() {
            let Some(room) = self.rooms[r].number.filter(|_| self.rooms[r].wanted) else {
                continue;
            };
            let p = &mut self.rooms[r].presence;
            if let Some(deadline) = p.asking.as_ref().map(|a| a.who.deadline)
                && now >= deadline
            {
                // Only a whole answer says who is not there: with a page lost, everyone on it
                // would be told leaving (and their real leaving later told to nobody). Ask
                // again.
                p.asking = None;
                if p.tries < ASK_TRIES {
                    p.ask_at = Some(now);
                }
            }
            if p.ask_at.is_some_and(|t| now >= t) {
                p.ask_at = None;
                p.tries += 1;
                let tries = p.tries;
                let req = self.take_req();
                // WHO is not retransmitted: a lost question or answer is asked again after a
                // few round trips, then less and less often.
                let wait = (self.rtt.rto() * 4 * tries).clamp(ANSWER_WAIT, MAX_RTO);
                self.rooms[r].presence.asking = Some(Asking {
                    who: Who::new(req, r, 0, now + wait),
                    changed: BTreeSet::new(),
                });
                self.transmit(now, &Packet::Who { token, req, room });
            }
        }
    }

    /// Takes a page of NAMES of room `r` if it answers the client's own question; false if
    /// it does not.
    pub(super) fn presence_page(
        &mut self,
        r: usize,
        req: u32,
        total: u16,
        names: &[String],
    ) -> bool {
        let p = &mut self.rooms[r].presence;
        let Some(a) = p.asking.as_mut().filter(|a| a.who.req == req) else {
            return false;
        };
        if a.who.take_page(total, names) {
            let a = p.asking.take().expect("asking");
            self.reconcile(r, a);
        }
        true
    }

    /// Tells every difference between what the client knew of room `r` and the relay's
    /// answer: who left while it was away, who came. The first answer is the starting point:
    /// it tells no arrival (those already there were never told), only the leaving of someone
    /// told arriving.
    fn reconcile(&mut self, r: usize, a: Asking) {
        let own = name_key(&self.config.name);
        let room = self.rooms[r].name.clone();
        let p = &mut self.rooms[r].presence;
        p.tries = 0;
        let answer: BTreeMap<String, String> = a
            .who
            .into_names()
            .into_iter()
            .filter(|(k, _)| *k != own && !a.changed.contains(k))
            .collect();
        let gone: Vec<String> = (p.present.keys())
            .filter(|k| !answer.contains_key(*k) && !a.changed.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(name) = p.present.remove(&k) {
                self.events.push_back(Event::Left {
                    room: room.clone(),
                    name,
                    reason: LeaveReason::Quit,
                    message: None,
                });
            }
        }
        let starting = !std::mem::replace(&mut p.known, true);
        for (k, name) in answer {
            if !p.has(&k) {
                p.present.insert(k, name.clone());
                if !starting {
                    self.events.push_back(Event::Joined {
                        room: room.clone(),
                        name,
                    });
                }
            }
        }
    }
}
