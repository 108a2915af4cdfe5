//! Who is in each room through the other relays, as the bucket `URC_PRESENCE` says it, without I/O: a member's entry names its relay, each relay renews a lease, and a relay whose lease stops has its members taken for gone ([`LEASE_EXPIRY`]); what changed handed to the relay as presence.
//!
//! A relay writes `m.<room>.<name's key in hex>` = `{"relay", "room", "name", "present":
//! true}` when one of its members enters a room, and the same with `"present": false` (and
//! `"timed_out"`, `"message"`) when it leaves, only if the entry is still its own (another
//! relay may have taken the name since: its client moved). Every [`LEASE_EVERY`] it writes
//! `r.<its id>`. A relay unheard of for [`LEASE_EXPIRY`] is taken for dead until its lease
//! comes again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::names::member_entry;
use crate::proto::message::check_text;
use crate::proto::name::{check_name, name_key};
use crate::proto::room::{check_room, room_key};
use crate::proto::wire::{Change, LeaveReason, MAX_LEAVE_BYTES};

/// How often a relay renews its lease.
pub const LEASE_EVERY: Duration = Duration::from_secs(5);
/// How long after a relay's last lease (or since this relay started, for one whose lease
/// it never saw) its members are taken for gone, timed out.
pub const LEASE_EXPIRY: Duration = Duration::from_secs(15);
/// How long entries nobody renews stay in the bucket (its `max_age`); a relay writes its
/// members' entries again well before ([`RENEW_EVERY`]).
pub const BUCKET_AGE: Duration = Duration::from_secs(3600);
/// How often a relay writes all its members' entries again.
pub const RENEW_EVERY: Duration = Duration::from_secs(1200);

/// A member's entry, as the bucket holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The relay the member is in through.
    pub relay: Uuid,
    /// The room's key.
    pub room: String,
    /// The name as spelt.
    pub name: String,
    /// False once it left.
    pub present: bool,
    /// It left because its relay stopped hearing from it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
    /// What it said as it left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Member {
    /// The entry of `change` in `room` made by the relay `relay`: its key and value.
    pub fn of(relay: Uuid, room: &str, change: &Change) -> (String, Member) {
        let member = Member {
            relay,
            room: room.to_owned(),
            name: change.name.clone(),
            present: change.joined,
            timed_out: !change.joined && change.reason == LeaveReason::TimedOut,
            message: change.message.clone(),
        };
        (member_entry(room, &name_key(&change.name)), member)
    }

    /// The value's bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a member serialises")
    }

    /// The member the entry `key` = `value` says, if it is a good one (a room's and a
    /// name's key that match the entry's, a name and a message by their rules; a bad
    /// message is left out).
    fn decode(key: &str, value: &[u8]) -> Option<Member> {
        let mut m: Member = serde_json::from_slice(value).ok()?;
        check_name(&m.name).ok()?;
        check_room(&m.room).ok()?;
        if room_key(&m.room) != m.room || member_entry(&m.room, &name_key(&m.name)) != key {
            return None;
        }
        if (m.message.as_ref()).is_some_and(|t| t.len() > MAX_LEAVE_BYTES || check_text(t).is_err())
        {
            m.message = None;
        }
        Some(m)
    }

    /// The change it tells: an arrival, or a departure (why, with its message).
    fn change(&self, joined: bool) -> Change {
        Change {
            joined,
            reason: if self.timed_out {
                LeaveReason::TimedOut
            } else {
                LeaveReason::Quit
            },
            name: self.name.clone(),
            message: if joined { None } else { self.message.clone() },
        }
    }
}

/// A relay of the cluster, as its leases say.
#[derive(Debug)]
struct Peer {
    /// When its latest lease was written (or its first entry this relay read, for one whose
    /// lease it never read).
    heard: Instant,
    /// False once its lease is [`LEASE_EXPIRY`] old.
    alive: bool,
}

/// Most entries a book keeps, and most relays: past them, new ones are left out (the bucket
/// is written by the relays alone; these bound what a wrong one costs).
pub const MAX_ENTRIES: usize = 200_000;
/// Most relays a book keeps.
pub const MAX_PEERS: usize = 256;
/// How often entries of the long dead and old departures are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// What the bucket says of the cluster, and what of it this relay's members are told.
#[derive(Debug)]
pub struct Book {
    /// This relay: its own entries are not told to it.
    me: Uuid,
    /// Every member's entry, by the entry's key, with its revision and when it came.
    entries: HashMap<String, (Member, u64, Instant)>,
    /// The other relays, by id.
    peers: HashMap<Uuid, Peer>,
    /// When entries were last forgotten.
    forgot: Option<Instant>,
    /// Whether entries or relays were left out, past the bounds (said once).
    full: bool,
}

/// A presence change for this relay's members: the room's key and what happened.
pub type Told = (String, Change);

/// An entry as the bucket holds it: its revision, and when it was written (by this relay's
/// clock: its age taken from the one the bucket gives).
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// Its revision in the bucket.
    pub revision: u64,
    /// When it was written.
    pub at: Instant,
}

impl Book {
    /// The book of the relay `me`, empty.
    pub fn new(me: Uuid) -> Self {
        Book {
            me,
            entries: HashMap::new(),
            peers: HashMap::new(),
            forgot: None,
            full: false,
        }
    }

    /// The entry `key` is now `value` (`None`: deleted), as `written`; what to tell at `now`.
    pub fn entry(
        &mut self,
        key: &str,
        value: Option<&[u8]>,
        written: Written,
        now: Instant,
    ) -> Vec<Told> {
        let new = match value {
            Some(v) => match Member::decode(key, v) {
                Some(m) => Some(m),
                None => return Vec::new(),
            },
            None => None,
        };
        if new.is_some() && !self.entries.contains_key(key) && self.entries.len() >= MAX_ENTRIES {
            self.left_out();
            return Vec::new();
        }
        let before = (self.entries.get(key))
            .filter(|(m, _, _)| self.visible(m))
            .map(|(m, _, _)| m.clone());
        if let Some(m) = &new {
            if m.relay != self.me && !self.meet(m.relay, written.at, now) {
                return Vec::new();
            }
            (self.entries).insert(key.to_owned(), (m.clone(), written.revision, written.at));
        } else {
            self.entries.remove(key);
        }
        let after = new.filter(|m| self.visible(m));
        match (before, after) {
            (None, Some(m)) => vec![(m.room.clone(), m.change(true))],
            (Some(old), None) => match self.entries.get(key) {
                // Its own relay's entry now (the name moved here: this relay knows it).
                Some((m, _, _)) if m.relay == self.me => Vec::new(),
                Some((m, _, _)) => vec![(m.room.clone(), m.change(false))],
                None => vec![(old.room.clone(), old.change(false))],
            },
            _ => Vec::new(),
        }
    }

    /// The lease of `relay` written at `at` came: what to tell at `now` (its members again,
    /// if it was taken for dead).
    pub fn lease(&mut self, relay: Uuid, at: Instant, now: Instant) -> Vec<Told> {
        if relay == self.me || !self.meet(relay, at, now) {
            return Vec::new();
        }
        let peer = self.peers.get_mut(&relay).expect("met");
        peer.heard = peer.heard.max(at);
        if peer.alive || now.saturating_duration_since(peer.heard) >= LEASE_EXPIRY {
            return Vec::new();
        }
        peer.alive = true;
        self.members_of(relay, true)
    }

    /// Every relay taken for alive counts as heard of at `now`: this relay could not read
    /// the bucket until now (NATS failed it), and their leases were not missed by them.
    pub fn heard_all(&mut self, now: Instant) {
        for p in self.peers.values_mut().filter(|p| p.alive) {
            p.heard = p.heard.max(now);
        }
    }

    /// The relays whose lease is [`LEASE_EXPIRY`] old by `now` are taken for dead: their
    /// members leave, timed out. Entries of the long dead and old departures are forgotten
    /// now and then.
    pub fn sweep(&mut self, now: Instant) -> Vec<Told> {
        let expired: Vec<Uuid> = (self.peers.iter())
            .filter(|(_, p)| p.alive && now.saturating_duration_since(p.heard) >= LEASE_EXPIRY)
            .map(|(id, _)| *id)
            .collect();
        let mut told = Vec::new();
        for relay in expired {
            tracing::warn!(%relay, "a relay of the cluster renewed no lease for {} s: its members are taken for gone", LEASE_EXPIRY.as_secs());
            if let Some(p) = self.peers.get_mut(&relay) {
                p.alive = false;
            }
            told.extend(
                self.members_of(relay, false)
                    .into_iter()
                    .map(|(room, mut c)| {
                        c.reason = LeaveReason::TimedOut;
                        c.message = None;
                        (room, c)
                    }),
            );
        }
        if self
            .forgot
            .is_none_or(|t| now.saturating_duration_since(t) >= FORGET_EVERY)
        {
            self.forgot = Some(now);
            let old = |at: Instant| now.saturating_duration_since(at) >= BUCKET_AGE;
            let peers = &self.peers;
            self.entries.retain(|_, (m, _, at)| {
                let dead = peers
                    .get(&m.relay)
                    .is_some_and(|p| !p.alive && old(p.heard));
                !(dead || (!m.present && old(*at)))
            });
            self.peers.retain(|_, p| p.alive || !old(p.heard));
        }
        told
    }

    /// This relay's own members' entries the bucket holds: each one's key, value and
    /// revision.
    pub fn mine(&self) -> impl Iterator<Item = (&str, &Member, u64)> {
        (self.entries.iter())
            .filter(|(_, (m, _, _))| m.relay == self.me && m.present)
            .map(|(k, (m, revision, _))| (k.as_str(), m, *revision))
    }

    /// Who holds the entry `key` now, and at which revision.
    pub fn holder(&self, key: &str) -> Option<(Uuid, u64)> {
        self.entries
            .get(key)
            .map(|(m, revision, _)| (m.relay, *revision))
    }

    /// Knows of the relay `relay`, heard of at `at` (taken for dead if that is a lease's
    /// time ago already); false if it is not known and the book has as many as it keeps.
    fn meet(&mut self, relay: Uuid, at: Instant, now: Instant) -> bool {
        if self.peers.contains_key(&relay) {
            return true;
        }
        if self.peers.len() >= MAX_PEERS {
            self.left_out();
            return false;
        }
        let alive = now.saturating_duration_since(at) < LEASE_EXPIRY;
        self.peers.insert(relay, Peer { heard: at, alive });
        true
    }

    fn left_out(&mut self) {
        if !std::mem::replace(&mut self.full, true) {
            tracing::warn!(
                "the presence bucket holds more than {MAX_ENTRIES} entries or {MAX_PEERS} relays: the rest are left out (is something else writing to it?)"
            );
        }
    }

    /// The members in through `relay`, as arrivals (`joined`) or departures.
    fn members_of(&self, relay: Uuid, joined: bool) -> Vec<Told> {
        let mut told: Vec<Told> = (self.entries.values())
            .filter(|(m, _, _)| m.relay == relay && m.present)
            .map(|(m, _, _)| (m.room.clone(), m.change(joined)))
            .collect();
        told.sort_by(|a, b| (&a.0, &a.1.name).cmp(&(&b.0, &b.1.name)));
        told
    }

    /// Whether `m` is a member this relay's members are told of: present, through another
    /// relay, alive.
    fn visible(&self, m: &Member) -> bool {
        m.present && m.relay != self.me && self.peers.get(&m.relay).is_some_and(|p| p.alive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(joined: bool, name: &str) -> Change {
        Change {
            joined,
            reason: LeaveReason::Quit,
            name: name.to_owned(),
            message: None,
        }
    }

    fn put(book: &mut Book, relay: Uuid, room: &str, c: &Change, now: Instant) -> Vec<Told> {
        let (key, m) = Member::of(relay, room, c);
        book.entry(&key, Some(&m.encode()), at(now), now)
    }

    fn at(now: Instant) -> Written {
        Written {
            revision: 1,
            at: now,
        }
    }

    #[test]
    fn others_members_are_told_and_those_of_a_silent_relay_time_out() {
        let (me, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let t0 = Instant::now();
        let mut book = Book::new(me);
        assert_eq!(
            put(&mut book, b, "ops", &change(true, "Bob"), t0),
            [("ops".to_owned(), change(true, "Bob"))]
        );
        assert!(
            put(&mut book, me, "ops", &change(true, "Al"), t0).is_empty(),
            "my own"
        );
        assert_eq!(book.mine().count(), 1);
        put(&mut book, c, "dev", &change(true, "Cy"), t0);
        // Bob moves to C: still in, nobody told.
        assert!(put(&mut book, c, "ops", &change(true, "Bob"), t0).is_empty());
        // Cy leaves with a word; B renews, C does not.
        let mut bye = change(false, "Cy");
        bye.message = Some("later".into());
        assert_eq!(
            put(&mut book, c, "dev", &bye, t0),
            [("dev".to_owned(), bye)]
        );
        put(&mut book, b, "dev", &change(true, "Di"), t0);
        let t1 = t0 + LEASE_EXPIRY - Duration::from_secs(1);
        assert!(book.lease(b, t1, t1).is_empty());
        assert!(book.sweep(t1).is_empty());
        let t2 = t0 + LEASE_EXPIRY;
        let mut gone = change(false, "Bob");
        gone.reason = LeaveReason::TimedOut;
        assert_eq!(book.sweep(t2), [("ops".to_owned(), gone)], "C's members");
        // C's lease again: its members are back.
        assert_eq!(
            book.lease(c, t2, t2),
            [("ops".to_owned(), change(true, "Bob"))]
        );
        // Bob comes here: no departure told (this relay knows him in).
        assert!(put(&mut book, me, "ops", &change(true, "Bob"), t2).is_empty());
    }

    #[test]
    fn an_entry_that_does_not_match_its_key_or_rules_is_ignored() {
        let (me, b) = (Uuid::new_v4(), Uuid::new_v4());
        let t0 = Instant::now();
        let mut book = Book::new(me);
        let (key, m) = Member::of(b, "ops", &change(true, "Bob"));
        let mut wrong = m.clone();
        wrong.name = "Eve".into();
        assert!(
            book.entry(&key, Some(&wrong.encode()), at(t0), t0)
                .is_empty(),
            "another key's name"
        );
        let mut bad = m.clone();
        bad.name = "a\u{7}b".into();
        let bad_key = member_entry("ops", &name_key(&bad.name));
        assert!(
            book.entry(&bad_key, Some(&bad.encode()), at(t0), t0)
                .is_empty()
        );
        assert!(book.entry(&key, Some(b"not json"), at(t0), t0).is_empty());
        let mut rude = m.clone();
        rude.present = false;
        rude.message = Some("\u{1b}[2J".into());
        book.entry(&key, Some(&m.encode()), at(t0), t0);
        let told = book.entry(&key, Some(&rude.encode()), at(t0), t0);
        assert_eq!(told.len(), 1);
        assert_eq!(
            told[0].1.message, None,
            "a message breaking the rules is left out"
        );
    }
}

#[cfg(test)]
mod replayed {
    use super::*;

    #[test]
    fn a_relay_whose_last_lease_is_old_is_dead_from_the_start_and_brings_no_ghost() {
        let (me, old, live) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let now = Instant::now() + Duration::from_secs(3600);
        let mut book = Book::new(me);
        let long_ago = Written {
            revision: 1,
            at: now - Duration::from_secs(600),
        };
        assert!(book.lease(old, long_ago.at, now).is_empty());
        let joined = |name: &str| Change {
            joined: true,
            reason: LeaveReason::Quit,
            name: name.to_owned(),
            message: None,
        };
        let (key, m) = Member::of(old, "ops", &joined("Ghost"));
        assert!(
            book.entry(&key, Some(&m.encode()), long_ago, now)
                .is_empty(),
            "a member of a relay dead for ten minutes is not told"
        );
        assert!(book.sweep(now).is_empty(), "nor told gone");
        let recent = Written {
            revision: 2,
            at: now - Duration::from_secs(3),
        };
        book.lease(live, recent.at, now);
        let (key, m) = Member::of(live, "ops", &joined("Bob"));
        assert_eq!(
            book.entry(&key, Some(&m.encode()), recent, now),
            [("ops".to_owned(), joined("Bob"))]
        );
        assert_eq!(book.holder(&key), Some((live, 2)));
        // Its lease 15 s after the last one it wrote, not after this relay read it.
        assert!(book.sweep(now + Duration::from_secs(11)).is_empty());
        assert_eq!(book.sweep(now + Duration::from_secs(12)).len(), 1);
    }
}
