//! The relay's rules without I/O: joins, sessions, ordering, acknowledgements, fan-out and history.
//!
//! [`secure::SecureRelay`] stands between it and the network: it answers handshakes, opens
//! each datagram and seals each packet. The shell feeds a turn's datagrams to it, ends the
//! turn with
//! [`Relay::end_turn`] (also when [`Relay::poll_timeout`]'s time comes), persists what
//! [`Relay::appends`] hands out, then calls [`Relay::commit`] (or [`Relay::abort`]), answers
//! [`Relay::poll_read`] with [`Relay::serve_read`], and sends what [`Relay::poll_transmit`]
//! yields. Nothing that depends on a message (its acknowledgement, its fan-out) leaves before
//! the message is committed.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | the driver's surface: [`Relay`], packets in, polls |
//! | `dispatch.rs` | a packet decoded and handed to its rule; PING answered, a leaving message checked |
//! | `secure.rs` | [`secure::SecureRelay`]: the relay behind its secure channel, what the shell drives |
//! | `channels.rs` | the secure channel's transports: HELLO answered after a cookie, DATA opened, packets sealed |
//! | `commit.rs` | what the log takes, and what may leave once it holds it: commit and abort |
//! | `shared.rs` | a log other relays write too: commits with the store's seqs, the others' messages followed in the room's order |
//! | `cluster.rs` | presence across the relays of a shared log: this relay's told to the others, theirs taken in, one session a name in the cluster |
//! | `elsewhere.rs` | a room's members through other relays, sorted, and those handed over held for a grace |
//! | `turn.rs` | the end of a turn and the relay's clock: the tick (timeouts counted in time the relay ran), then fair shares and answers |
//! | `config.rs` | the relay's settings and their defaults |
//! | `join.rs` | JOIN and sessions: names, presence, leaving, per-IP limits, tokens |
//! | `session.rs` | [`Session`]: a joined client's name, token, csns, waiting messages, rates, rooms, answers |
//! | `send.rs` | SEND: csn order, the reorder buffer, `base`, the message rate, dedup, acks |
//! | `requests.rs` | HISTORY and WHO: the request rate, the range asked, the cache of recent messages |
//! | `pages.rs` | an answer's pages: history messages and WHO names in as few datagrams as hold them |
//! | `answers.rs` | answers page by page, charged in bytes per session, address, /48 and relay |
//! | `intake.rs` | a turn's room for new messages, and the fair queue of those over it |
//! | `fair.rs` | deficit round robin across addresses (IPv6: /48s), round robin across sessions |
//! | `parked.rs` | the memory of waiting messages, by the whole record, bounded |
//! | `room.rs` | a room's order and members: its seqs, the cache of its recent messages, the latest a heartbeat told, its names |
//! | `dm.rs` | private conversations: `@name` resolved to the two names' conversation, the other let in when a message comes, a joining session let in to its recent ones |
//! | `rooms.rs` | the relay's rooms: found by name, made on first use, entered and left, a number per member |
//! | `roster.rs` | names, sorted: one client a name on the relay, a room's WHO read off in order |
//! | `owners.rs` | who owns each name: the key that first joined under it |
//! | `departed.rs` | clients that left, so that a JOIN of theirs held back by the network brings no ghost |
//! | `stats.rs` | [`Stats`]: the counts of what the relay saw, for its logs |
//! | `origin.rs` | where a client comes from: its IPv4 address, IPv6 /64 or /48 |
//! | `outgoing.rs` | how datagrams leave: replies within an address's budget, broadcasts, fan-out; chat first, then presence, then answers |
//! | `give_back.rs` | maps and queues a crowd grew give back their room once it is gone |
//! | `cookie.rs` | address validation without per-address state: stateless challenge cookies |
//! | `limit.rs` | token buckets: rates with a burst allowance, on the caller's clock |

mod answers;
pub mod channels;
mod cluster;
mod commit;
mod config;
pub mod cookie;
mod departed;
mod dispatch;
pub mod dm;
mod elsewhere;
mod fair;
mod give_back;
mod intake;
mod join;
pub mod limit;
mod origin;
mod outgoing;
pub mod owners;
mod pages;
mod parked;
mod requests;
mod room;
mod rooms;
mod roster;
pub mod secure;
mod send;
mod session;
mod shared;
mod stats;
mod turn;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use uuid::Uuid;

use crate::proto::message::{Message, Millis};
use crate::proto::room::DEFAULT_ROOM;
use crate::proto::secure::keys::PublicKey;
use crate::proto::wire::{Acked, Change};
use crate::relay::limit::Bucket;
use owners::Owners;

use answers::Allowances;
pub use answers::MAX_ANSWERS;
pub use cluster::HANDOVER_GRACE;
pub use config::{Config, DEFAULT_TIMEOUT};
use fair::Rounds;
pub use intake::FANOUT_PER_TURN;
use join::Origin;
use parked::Parked;
pub use parked::{
    MAX_PARKED_BYTES, MAX_PARKED_PER_IP, MAX_PARKED_PER_NETWORK, PARK_OVERHEAD, parked_cost,
};
use rooms::{RoomId, Rooms};
use roster::Roster;
use send::Pending;
pub use session::Session;
pub use shared::{MAX_AHEAD, Stored};
pub use stats::Stats;
pub use turn::{QUIET, STALL, TICK};

/// Most csns a message may be ahead of the one its session expects and still wait for it.
pub const REORDER_WINDOW: u64 = 256;

/// A datagram to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Where to.
    pub to: SocketAddr,
    /// The whole packet.
    pub bytes: Arc<[u8]>,
}

/// A packet waiting to be sent: `bytes` (perhaps shared with other recipients) for the
/// session `session` at `to` (its [`Session::number`]; 0 for an address without one), which
/// must still be there when it leaves, and for the holder of `key`: the session's key, or,
/// for an answer to a datagram sealed by another key, that one.
#[derive(Debug)]
struct Queued {
    /// Where to.
    to: SocketAddr,
    /// The packet.
    bytes: Arc<[u8]>,
    /// The session it is for ([`Session::number`]), 0 for none.
    session: u64,
    /// The key it is to be sealed for.
    key: Option<PublicKey>,
    /// The recipient's number for the room the packet is about, and where in the packet it
    /// goes (`bytes` are shared by the room's members, who each have their own).
    room: Option<(usize, u16)>,
}

/// A history answer the relay's cache cannot give: the shell reads the log and calls
/// [`Relay::serve_read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    /// Who asked.
    pub to: SocketAddr,
    /// Their request number.
    pub req: u32,
    /// The room whose log to read (its key).
    pub room: String,
    /// First sequence number wanted.
    pub first: u64,
    /// Last sequence number wanted.
    pub last: u64,
}

/// What the relay last dropped or refused, and from whom, for its logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The sender.
    pub from: SocketAddr,
    /// Why.
    pub why: String,
}

/// The relay's state and rules.
#[derive(Debug)]
pub struct Relay {
    config: Config,
    clients: Arc<DashMap<SocketAddr, Session>>,
    /// Who is on the relay by name, so a name is used by one client at a time.
    roster: Roster,
    /// Clients that left a moment ago: their late JOINs are ignored.
    departed: departed::Departed,
    /// The rooms: each one's order, recent messages and members.
    rooms: Rooms,
    /// Recent message ids → (seq, time, room), pending ones included.
    ids: HashMap<Uuid, (u64, Millis, RoomId)>,
    /// The ids in `ids`, oldest first, to forget the oldest.
    id_order: VecDeque<Uuid>,
    pending: Vec<Pending>,
    /// Of a shared store: batches of [`Relay::hand_off`] the store has not answered yet, by
    /// number.
    in_flight: HashMap<u64, Vec<Pending>>,
    /// The number of the last batch handed off.
    batches: u64,
    /// Acknowledgements of this turn (of messages in which room), sent once their messages
    /// are durable.
    held_acks: Vec<(SocketAddr, RoomId, Acked)>,
    /// Presence changes of this turn, in which room, and whom each is not for.
    presence: Vec<(RoomId, Option<SocketAddr>, Change)>,
    /// The names whose arrival `presence_out` tells, while it holds any.
    announcing: HashSet<String>,
    /// Datagrams to take from `presence_out` until the last presence change (not a
    /// heartbeat) in it is out.
    changes_out: usize,
    /// Whether this turn sent its share of presence changes already.
    presence_sent: bool,
    /// Packets to send, each checked against its session only when it is polled: a turn's
    /// fan-out to a large room is many packets sharing a few pages.
    transmits: VecDeque<Queued>,
    /// Presence changes and heartbeats to send once the chat is sent; the next presence
    /// changes wait until these are out.
    presence_out: VecDeque<Queued>,
    /// Pages of answers to send once the chat of the turn is sent.
    bulk_out: VecDeque<Queued>,
    /// The sessions with answers to send, in fair shares.
    bulk: Rounds,
    /// Sessions with answers that wait for their allowance (or their address's) to refill.
    bulk_blocked: HashSet<SocketAddr>,
    /// When the sessions of `bulk_blocked` were last looked at.
    blocked_looked: Option<Instant>,
    /// The allowances for answers of addresses, networks and the relay.
    allowances: Allowances,
    reads: VecDeque<LogRead>,
    /// When the next tick is due (set at the first turn).
    next_tick: Option<Instant>,
    /// When the last turn ended.
    last_turn: Option<Instant>,
    /// Rooms whose heartbeat is due, with when, soonest first: one entry a room with
    /// messages its members were not told of by a heartbeat (see `turn.rs` `heartbeats`).
    heartbeats: BinaryHeap<Reverse<(Instant, RoomId)>>,
    /// The memory of the messages waiting in sessions.
    parked: Parked,
    /// Sessions whose message in turn waits for the turn's room, in fair shares.
    intake: Rounds,
    /// What is left of this turn's room for new messages, in bytes of fan-out.
    intake_left: i64,
    /// Sessions per IP address (IPv6: per /64, see [`join::Origin`]).
    per_ip: HashMap<Origin, usize>,
    /// JOINs with a good cookie per IP address, at the request rate and as many at once as
    /// sessions may share an address, and whether the address was told it joins too fast; an
    /// entry goes once its bucket is full again.
    joins: HashMap<Origin, (Bucket, bool)>,
    /// Sessions opened since the relay started: the last one's [`Session::number`].
    opened: u64,
    /// The address and key of the datagram being handled: a reply to that address meanwhile
    /// answers it, and goes to that key.
    handling: Option<(SocketAddr, Option<PublicKey>)>,
    last_dropped: Option<Dropped>,
    stats: Stats,
    /// Who owns each name.
    owners: Owners,
    /// Bytes of the rooms' caches of recent messages.
    cached_bytes: usize,
    /// Of a shared store: presence changes here since [`Relay::take_presence`], for the
    /// other relays, each with its room's key.
    cluster_out: Vec<(String, Change)>,
    /// Rooms holding names whose session here moved to another relay (see `cluster.rs`).
    holding: HashSet<RoomId>,
}

impl Relay {
    /// A relay whose room [`DEFAULT_ROOM`] continues after `tail`, the last messages of its
    /// log (oldest first); other rooms are added with [`Relay::restore_room`].
    pub fn new(config: Config, tail: Vec<Message>) -> Self {
        let mut relay = Relay {
            clients: Arc::new(DashMap::new()),
            roster: Roster::default(),
            departed: departed::Departed::default(),
            rooms: Rooms::default(),
            ids: HashMap::new(),
            id_order: VecDeque::new(),
            pending: Vec::new(),
            in_flight: HashMap::new(),
            batches: 0,
            held_acks: Vec::new(),
            presence: Vec::new(),
            announcing: HashSet::new(),
            changes_out: 0,
            presence_sent: false,
            transmits: VecDeque::new(),
            presence_out: VecDeque::new(),
            bulk_out: VecDeque::new(),
            bulk: Rounds::default(),
            bulk_blocked: HashSet::new(),
            blocked_looked: None,
            allowances: Allowances::new(config.bulk_rate_total),
            reads: VecDeque::new(),
            next_tick: None,
            last_turn: None,
            heartbeats: BinaryHeap::new(),
            parked: Parked::default(),
            intake: Rounds::default(),
            intake_left: FANOUT_PER_TURN as i64,
            per_ip: HashMap::new(),
            joins: HashMap::new(),
            opened: 0,
            handling: None,
            last_dropped: None,
            owners: Owners::default(),
            cached_bytes: 0,
            cluster_out: Vec::new(),
            holding: HashSet::new(),
            stats: Stats::default(),
            config,
        };
        relay.restore_room(DEFAULT_ROOM, tail, 1);
        relay
    }

    /// Adds the room `name` (a room key), whose log holds the messages from `log_start` on
    /// and ends with `tail` (oldest first); or, if it is there already, gives it those.
    pub fn restore_room(&mut self, name: &str, tail: Vec<Message>, log_start: u64) {
        self.restore_rooms(vec![(name.to_owned(), tail, log_start)]);
    }

    /// [`Relay::restore_room`] for each of `rooms` (a name, a tail, the first seq of its log):
    /// the ids of their messages remembered in the order they were written, across rooms, so
    /// that the latest [`Config::dedup`] are kept whichever room they are of.
    pub fn restore_rooms(&mut self, rooms: Vec<(String, Vec<Message>, u64)>) {
        let mut ids = Vec::new();
        for (name, tail, log_start) in rooms {
            let room = self.rooms.find_or_add(&name);
            for m in tail {
                // A placeholder for a damaged record (see `repair`) has the nil id: no
                // client's message is ever a retransmission of it.
                if !m.id.is_nil() {
                    ids.push((m.time, room, m.seq, m.id));
                }
                let grown = self.rooms[room].restore(m, self.config.cache);
                self.count_cached(grown);
            }
            self.rooms[room].log_start = log_start.max(1);
            let r = &mut self.rooms[room];
            if self.config.shared && r.committed + 1 < r.log_start {
                // A shared log whose messages were all archived or purged: the room's order
                // goes on from its first seq.
                r.committed = r.log_start - 1;
                r.heartbeat_seq = r.committed;
            }
        }
        ids.sort_unstable();
        for (time, room, seq, id) in ids {
            self.remember(id, seq, time, room);
        }
        self.fit_cache(None);
    }

    /// Takes `m`, committed in `room`, into the room's cache, within the relay's
    /// [`Config::cache_bytes`].
    fn cache(&mut self, room: RoomId, m: Message) {
        let grown = self.rooms[room].keep(m, self.config.cache);
        self.count_cached(grown);
        self.fit_cache(Some(room));
    }

    /// Counts what a room's cache took in and let go (`keep`'s answer).
    fn count_cached(&mut self, (added, freed): (usize, usize)) {
        self.cached_bytes = self.cached_bytes + added - freed;
    }

    /// Past [`Config::cache_bytes`], the cache of `room` gives back its oldest messages down to
    /// its share (the budget over the rooms); past a quarter more (rooms that grew before
    /// the relay had as many rooms), every room's does.
    fn fit_cache(&mut self, room: Option<RoomId>) {
        let budget = self.config.cache_bytes;
        if self.cached_bytes <= budget {
            return;
        }
        let share = budget / self.rooms.len().max(1);
        if let Some(room) = room {
            self.cached_bytes -= self.rooms[room].trim_to(share);
        }
        if room.is_none() || self.cached_bytes > budget + budget / 4 {
            for r in 0..self.rooms.slots() {
                self.cached_bytes -= self.rooms[r].trim_to(share);
            }
        }
    }

    /// Bytes of recent messages the rooms' caches hold (at most about
    /// [`Config::cache_bytes`]).
    pub fn cached_bytes(&self) -> usize {
        self.cached_bytes
    }

    /// Tells the relay that the log of the room [`DEFAULT_ROOM`] begins at `seq` (after an
    /// archived part): history reaches back no further.
    pub fn set_log_start(&mut self, seq: u64) {
        self.rooms[0].log_start = seq.max(1);
    }

    /// The registry of joined clients, keyed by address.
    pub fn clients(&self) -> &Arc<DashMap<SocketAddr, Session>> {
        &self.clients
    }

    /// The latest committed sequence number of the room [`DEFAULT_ROOM`].
    pub fn latest(&self) -> u64 {
        self.rooms[0].committed
    }

    /// The latest committed sequence number of the room `name` (a room key), if the relay has
    /// it.
    pub fn latest_in(&self, name: &str) -> Option<u64> {
        self.rooms.find(name).map(|r| self.rooms[r].committed)
    }

    /// Every room's name (its key) and latest committed sequence number.
    pub fn room_latest(&self) -> impl Iterator<Item = (&str, u64)> {
        self.rooms
            .iter()
            .map(|(_, r)| (r.name.as_str(), r.committed))
    }

    /// How many rooms the relay has.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// How many sessions are in the room `name` (a room key).
    pub fn members_in(&self, name: &str) -> usize {
        self.rooms
            .find(name)
            .map_or(0, |r| self.rooms[r].members.len())
    }

    /// Bytes of the messages waiting in sessions (counted by the whole record: see
    /// [`parked_cost`]).
    pub fn parked_bytes(&self) -> usize {
        self.parked.total()
    }

    /// What the relay has seen so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// What the relay last dropped or refused, if anything.
    pub fn last_dropped(&self) -> Option<&Dropped> {
        self.last_dropped.as_ref()
    }

    /// The counts, for the secure channel to add to.
    pub(crate) fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// Notes what was dropped from `from`, and why.
    pub(crate) fn note_dropped(&mut self, from: SocketAddr, why: &str) {
        self.dropped(from, why.to_owned());
    }

    /// What the relay last dropped or refused, forgotten once told (for periodic reports).
    pub fn take_last_dropped(&mut self) -> Option<Dropped> {
        self.last_dropped.take()
    }

    /// Takes one packet from `from`, received at `now` (wall-clock time `wall`): opened by
    /// the secure channel ([`secure::SecureRelay`]), which proved the address first.
    pub fn handle(&mut self, now: Instant, wall: Millis, from: SocketAddr, bytes: &[u8]) {
        self.handle_as(now, wall, from, bytes, None);
    }

    /// [`Relay::handle`] for a packet whose sender proved it holds `peer`'s key: a name it
    /// joins under belongs to that key from then on.
    pub fn handle_as(
        &mut self,
        now: Instant,
        wall: Millis,
        from: SocketAddr,
        bytes: &[u8],
        peer: Option<PublicKey>,
    ) {
        self.handling = Some((from, peer));
        self.dispatch(now, wall, from, bytes, peer);
        self.handling = None;
    }

    /// Who owns each name.
    pub fn owners(&self) -> &Owners {
        &self.owners
    }

    /// Who owns each name, to load at start and to note once written.
    pub fn owners_mut(&mut self) -> &mut Owners {
        &mut self.owners
    }

    fn dropped(&mut self, from: SocketAddr, why: String) {
        tracing::trace!(%from, %why, "dropped a datagram");
        self.last_dropped = Some(Dropped { from, why });
    }

    /// The next history answer that needs the log.
    pub fn poll_read(&mut self) -> Option<LogRead> {
        self.reads.pop_front()
    }
}
