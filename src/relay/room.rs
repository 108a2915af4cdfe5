//! A room's own order and members: its sequence numbers (the next to give, the latest committed, the first its log holds), the cache of its recent messages, the latest a heartbeat told, who is in it and the presence changes it told.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use super::elsewhere::Elsewhere;
use super::roster::Roster;
use crate::proto::message::{Message, Millis};

/// One room's order, recent messages and members.
#[derive(Debug)]
pub(super) struct Room {
    /// Its name, in lower case (its key: see [`room_key`](crate::proto::room::room_key)), or
    /// the key of a private conversation ([`dm_key`](crate::proto::dm::dm_key)).
    pub(super) name: String,
    /// The keys of the two names of a private conversation; none for a room.
    pub(super) dm: Option<(String, String)>,
    /// The sessions in it, by address, each with its number for the room.
    pub(super) members: HashMap<SocketAddr, u16>,
    /// The names of its members, sorted, for WHO.
    pub(super) roster: Roster,
    /// Of a shared store: its members through other relays (none of them here).
    pub(super) elsewhere: Elsewhere,
    /// Presence changes told in it since the relay started.
    pub(super) announced: u64,
    /// Latest committed sequence number.
    pub(super) committed: u64,
    /// The sequence number of the log's first record (1 unless it was rotated).
    pub(super) log_start: u64,
    /// Sequence number the next accepted message gets.
    pub(super) next_seq: u64,
    /// Recently committed messages, oldest first.
    recent: VecDeque<Message>,
    /// Their bytes, as [`cost`] counts them.
    recent_bytes: usize,
    /// When its latest message was written (0: it has none).
    latest_time: Millis,
    /// The latest sequence number the last heartbeat announced.
    pub(super) heartbeat_seq: u64,
    /// When the turn that committed its latest message ended (the relay's `last_turn`: a
    /// turn's commit follows its `end_turn`); none since the relay started.
    pub(super) stored_at: Option<Instant>,
    /// True while its heartbeat is in the relay's queue of those due.
    pub(super) heartbeat_queued: bool,
    /// True for the place of a room removed (see [`Rooms`](super::rooms::Rooms)).
    pub(super) vacant: bool,
    /// Of a shared log: messages stored past `committed + 1`, by seq, each with its sender
    /// here (none: another relay's), waiting for those before them (see `shared.rs`).
    pub(super) ahead: BTreeMap<u64, (Option<SocketAddr>, Message)>,
}

impl Room {
    /// The room `name` (a room key), whose log is empty.
    pub(super) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            dm: crate::proto::dm::dm_parties(name),
            members: HashMap::new(),
            roster: Roster::default(),
            elsewhere: Elsewhere::default(),
            announced: 0,
            committed: 0,
            log_start: 1,
            next_seq: 1,
            recent: VecDeque::new(),
            recent_bytes: 0,
            latest_time: Millis(0),
            heartbeat_seq: 0,
            stored_at: None,
            heartbeat_queued: false,
            vacant: false,
            ahead: BTreeMap::new(),
        }
    }

    /// Takes `m`, read back from the log at start, as the latest message committed and told
    /// (by a heartbeat: nobody needs telling of it), into the cache of at most `cache`.
    pub(super) fn restore(&mut self, m: Message, cache: usize) -> (usize, usize) {
        self.committed = m.seq;
        self.heartbeat_seq = m.seq;
        self.next_seq = m.seq + 1;
        self.keep(m, cache)
    }

    /// Takes `m`, committed, into the cache of at most `cache` messages; the bytes the cache
    /// grew by and those it let go.
    pub(super) fn keep(&mut self, m: Message, cache: usize) -> (usize, usize) {
        self.latest_time = m.time;
        let added = cost(&m);
        self.recent_bytes += added;
        self.recent.push_back(m);
        let mut freed = 0;
        while self.recent.len() > cache {
            freed += self.pop_oldest();
        }
        (added, freed)
    }

    /// Lets the oldest messages of the cache go until it holds at most `bytes`; the bytes let
    /// go. (History reaches them in the log.)
    pub(super) fn trim_to(&mut self, bytes: usize) -> usize {
        let mut freed = 0;
        while self.recent_bytes > bytes && !self.recent.is_empty() {
            freed += self.pop_oldest();
        }
        freed
    }

    fn pop_oldest(&mut self) -> usize {
        let gone = self.recent.pop_front().map_or(0, |m| cost(&m));
        self.recent_bytes -= gone;
        gone
    }

    /// When its latest message was written (0 when it has none).
    pub(super) fn last_time(&self) -> Millis {
        self.latest_time
    }

    /// True when no message was ever taken in it (nor read back from its log).
    pub(super) fn never_written(&self) -> bool {
        self.next_seq == 1 && self.committed == 0
    }

    /// How many sessions it has, as a PONG says it: here, and through other relays.
    pub(super) fn count(&self) -> u32 {
        u32::try_from(self.members.len() + self.elsewhere.len()).unwrap_or(u32::MAX)
    }

    /// Gives out the next sequence number.
    pub(super) fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// The range `from..` of at most `count` messages that a history request asks for, as the
    /// room has it (`from` 0: the latest `count`): `(0, 0)` when it has none of them.
    pub(super) fn range(&self, from: u64, count: u64) -> (u64, u64) {
        let committed = self.committed;
        let (first, last) = if count == 0 || committed == 0 {
            (0, 0)
        } else if from == 0 {
            (committed.saturating_sub(count - 1).max(1), committed)
        } else if from > committed {
            (0, 0)
        } else {
            (from, committed.min(from.saturating_add(count - 1)))
        };
        // Nothing before the log's first record is kept (a rotated log: the rest is archived).
        match (first.max(self.log_start), last) {
            (_, 0) => (0, 0),
            (first, last) if first > last => (0, 0),
            range => range,
        }
    }

    /// The committed messages `first..=last` from the cache, if it holds them all.
    pub(super) fn cached(&self, first: u64, last: u64) -> Option<Vec<Message>> {
        let oldest = self.recent.front()?.seq;
        if first < oldest || last > self.committed {
            return None;
        }
        let start = usize::try_from(first - oldest).ok()?;
        let end = usize::try_from(last - oldest).ok()?;
        Some(self.recent.range(start..=end).cloned().collect())
    }
}

/// What a cached message costs the relay's memory: its text and name, and the record.
pub(super) fn cost(m: &Message) -> usize {
    std::mem::size_of::<Message>() + m.text.len() + m.from.len()
}
