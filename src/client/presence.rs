//! Who is in the room as far as the client knows: each arrival and departure told once, and the
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
}

impl Client {
    /// The others in the room as the client knows them, sorted by name key.
    pub fn present(&self) -> Vec<String> {
        self.presence.present.values().cloned().collect()
    }

    /// After a welcome: asks who is in the room, at once on the first join (what is known
    /// then is the starting point, told to nobody) and after a grace on a rejoin (so that the
    /// others have rejoined a restarted relay by then).
    pub(super) fn ask_presence_after_welcome(&mut self, now: Instant, rejoin: bool) {
        let at = if rejoin {
            now + self.ping_every + REJOIN_GRACE
        } else {
            now
        };
        self.presence.ask_at = Some(at);
        self.presence.asking = None;
        self.presence.tries = 0;
    }

    /// The PRESENCE changes of the relay: told unless they are not news (someone already
    /// here joining is someone rejoining a restarted relay).
    pub(super) fn presence_changes(&mut self, changes: Vec<Change>) {
        for c in changes {
            let key = name_key(&c.name);
            if let Some(a) = &mut self.presence.asking {
                a.changed.insert(key.clone());
            }
            if c.joined {
                if self.presence.present.insert(key, c.name.clone()).is_none() {
                    self.events.push_back(Event::Joined { name: c.name });
                }
            } else if self.presence.present.remove(&key).is_some() || !self.presence.known {
                self.events.push_back(Event::Left {
                    name: c.name,
                    reason: c.reason,
                    message: c.message,
                });
            }
        }
    }

    /// Someone who speaks live is in the room, as far as the client knows before the relay's
    /// first answer says who is. After it, PRESENCE and the answers say: a message that comes
    /// after its sender's leave (reordered) must not bring them back.
    pub(super) fn speaks(&mut self, from: &str) {
        let key = name_key(from);
        if !self.presence.known && key != name_key(&self.config.name) && !self.presence.has(&key) {
            self.presence.present.insert(key, from.to_owned());
        }
    }

    /// The relay says the room has `members` sessions (this one included): when it says so,
    /// unchanged, for [`MISCOUNT_WAIT`] while the client knows of another number, a PRESENCE
    /// was lost, and the client asks who is there.
    pub(super) fn count_members(&mut self, now: Instant, members: u32) {
        let p = &mut self.presence;
        let settled = matches!(self.phase, Phase::Joined { .. })
            && p.known
            && p.asking.is_none()
            && p.ask_at.is_none();
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

    /// When the presence wants to be woken.
    pub(super) fn presence_timeout(&self) -> Option<Instant> {
        match &self.presence.asking {
            Some(a) => Some(a.who.deadline),
            None => self.presence.ask_at,
        }
    }

    /// Asks who is in the room when it is time; gives up waiting for an answer at its deadline.
    pub(super) fn presence_due(&mut self, now: Instant) {
        let Phase::Joined { token } = self.phase else {
            return;
        };
        if let Some(deadline) = self.presence.asking.as_ref().map(|a| a.who.deadline)
            && now >= deadline
        {
            // Only a whole answer says who is not there: with a page lost, everyone on it would
            // be told leaving (and their real leaving later told to nobody). Ask again.
            self.presence.asking = None;
            if self.presence.tries < ASK_TRIES {
                self.presence.ask_at = Some(now);
            }
        }
        if self.presence.ask_at.is_some_and(|t| now >= t) {
            self.presence.ask_at = None;
            self.presence.tries += 1;
            let req = self.take_req();
            // WHO is not retransmitted: a lost question or answer is asked again after a few
            // round trips, then less and less often.
            let wait = (self.rtt.rto() * 4 * self.presence.tries).clamp(ANSWER_WAIT, MAX_RTO);
            self.presence.asking = Some(Asking {
                who: Who::new(req, 0, now + wait),
                changed: BTreeSet::new(),
            });
            self.transmit(now, &Packet::Who { token, req });
        }
    }

    /// Takes a page of NAMES if it answers the client's own question; false if it does not.
    pub(super) fn presence_page(&mut self, req: u32, total: u16, names: &[String]) -> bool {
        let Some(a) = self.presence.asking.as_mut().filter(|a| a.who.req == req) else {
            return false;
        };
        if a.who.take_page(total, names) {
            let a = self.presence.asking.take().expect("asking");
            self.reconcile(a);
        }
        true
    }

    /// Tells every difference between what the client knew and the relay's answer: who left
    /// while it was away, who came. The first answer is the starting point: it tells no
    /// arrival (those already there were never told), only the leaving of someone told
    /// arriving.
    fn reconcile(&mut self, a: Asking) {
        self.presence.tries = 0;
        let own = name_key(&self.config.name);
        let answer: BTreeMap<String, String> = a
            .who
            .into_names()
            .into_iter()
            .filter(|(k, _)| *k != own && !a.changed.contains(k))
            .collect();
        let gone: Vec<String> = (self.presence.present.keys())
            .filter(|k| !answer.contains_key(*k) && !a.changed.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(name) = self.presence.present.remove(&k) {
                self.events.push_back(Event::Left {
                    name,
                    reason: LeaveReason::Quit,
                    message: None,
                });
            }
        }
        let starting = !std::mem::replace(&mut self.presence.known, true);
        for (k, name) in answer {
            if !self.presence.has(&k) {
                self.presence.present.insert(k, name.clone());
                if !starting {
                    self.events.push_back(Event::Joined { name });
                }
            }
        }
    }
}
