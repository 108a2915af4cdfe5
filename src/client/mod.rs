//! The client's rules without I/O: joining, retransmission, ordered gap-free delivery, history.
//!
//! The shell feeds it the relay's datagrams with [`Client::handle`] and the clock with
//! [`Client::handle_timeout`] (when [`Client::poll_timeout`] says), sends what
//! [`Client::poll_transmit`] yields, and shows what [`Client::poll_event`] yields.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | the driver's surface: [`Client`], settings, packets in, the clock |
//! | `secure.rs` | [`SecureClient`]: the client behind its secure channel, what the shell drives |
//! | `tunnel.rs` | the secure channel: the handshake, the relay's key learnt or pinned, sealing, rekeying |
//! | `event.rs` | what the client has to show: [`Event`] |
//! | `session.rs` | the session with the relay: joining, the welcome, rejoining, its errors |
//! | `outbox.rs` | sending: the window, retransmission and its backoff, acks, the round-trip time |
//! | `delivery.rs` | ordered gap-free delivery: messages held ahead of a gap, gap repair |
//! | `leaving.rs` | leaving: the LEAVE, sent again until the relay says the session is gone |
//! | `history.rs` | history and who requests: asking, asking again for what is missing, showing |
//! | `presence.rs` | who is in a room: arrivals and departures told once, reconciled after a rejoin |
//! | `receive.rs` | a packet of the relay's taken and handed to the rule that answers it |
//! | `room.rs` | the rooms followed: each one's number in the session, entering and parting, its own delivery state |
//! | `answered.rs` | the relay's answers about the rooms: ENTERED (asked for or not), PARTED, NOT_ENTERED |
//! | `timers.rs` | the clock: when to be woken next, and what is due then |
//! | `relays.rs` | the relays of the list: the one in use, and moving to the next when it does not answer |

mod answered;
mod delivery;
mod event;
mod history;
mod leaving;
mod outbox;
mod presence;
mod receive;
mod relays;
mod room;
mod secure;
mod session;
mod timers;
pub mod tunnel;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::proto::message::{Invalid, MAX_TEXT_BYTES, check_text, split_text};
use crate::proto::room::DEFAULT_ROOM;
use crate::proto::wire::{MAX_HISTORY_REQUEST, Packet, Token};

pub use event::Event;
use history::{Purpose, Request, Who};
pub use leaving::LEAVE_WAIT;
use outbox::Outgoing;
pub use outbox::Rtt;
pub use relays::MOVE_AFTER;
use relays::Relays;
use room::Channel;
pub use room::{EnterError, RoomInfo};
pub use secure::SecureClient;

/// First retransmission timeout, before any round trip was measured.
pub const INITIAL_RTO: Duration = Duration::from_millis(200);
/// Shortest retransmission timeout.
pub const MIN_RTO: Duration = Duration::from_millis(50);
/// Longest wait between two retransmissions (the backoff's bound).
pub const MAX_RTO: Duration = Duration::from_secs(4);
/// Shortest wait at a gap before what is missing is asked for.
pub const MIN_GAP_WAIT: Duration = Duration::from_millis(20);
/// Longest wait between two keepalives.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
/// Shortest wait between two keepalives, whatever timeout the relay announces.
pub const MIN_PING_INTERVAL: Duration = Duration::from_millis(500);
/// Silence from the relay, while it owes an answer, after which the user is told.
pub const SILENT_AFTER: Duration = Duration::from_secs(3);
/// Messages in flight at once.
pub const WINDOW: usize = 256;
/// Copies of LEAVE sent at once, back to back: the others see the leave at once (and the name
/// is free) unless all are lost, and the copies after the first earn the NotJoined that tells
/// the client its session is gone (else the LEAVE goes again, see `leaving.rs`).
pub const LEAVE_COPIES: usize = 3;

/// The client's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The name to join with.
    pub name: String,
    /// How many messages of history to receive on entering a room (when it has no `since`).
    pub history: u16,
    /// Where the user left off in the default room last time, when `rooms` is empty: on
    /// joining, the messages after it are shown (the last 1000 at most) instead of `history`.
    pub since: Option<Seen>,
    /// The rooms to enter, by name (checked with
    /// [`check_room`](crate::proto::room::check_room)), each with where the user left off in
    /// it; none: the default room, [`DEFAULT_ROOM`], with `since`.
    pub rooms: Vec<(String, Option<Seen>)>,
    /// Where the user left off in each private conversation, by its
    /// [`target_key`](crate::proto::dm::target_key) (`@` and the name's key): one the relay
    /// lets us in unasked shows what came since.
    pub seen: std::collections::HashMap<String, Seen>,
    /// The relays' addresses, tried in turn: relays of one cluster, sharing one key and the
    /// same rooms. The first is used first; the client moves to the next (round robin) when
    /// the one in use stops answering ([`MOVE_AFTER`]). Empty: the one relay the shell talks
    /// to, never left.
    pub relays: Vec<std::net::SocketAddr>,
}

/// The last message a user saw of a relay, and when they left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    /// The last sequence number shown.
    pub seq: u64,
    /// When the user left.
    #[serde(with = "crate::proto::message::rfc3339_millis")]
    pub at: crate::proto::message::Millis,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for a welcome.
    Joining { attempt: u32, next_try: Instant },
    /// In the room.
    Joined { token: Token },
    /// Saying goodbye: the LEAVE goes again until the relay answers that the session is gone.
    Leaving {
        /// The LEAVE, as sent.
        leave: Vec<u8>,
        /// When to send it again.
        next: Instant,
        /// Copies sent again so far.
        tries: u32,
        /// When to stop waiting for the answer.
        until: Instant,
    },
    /// The relay refused us for good, or we left.
    Closed,
}

/// The client's state and rules.
#[derive(Debug)]
pub struct Client {
    config: Config,
    phase: Phase,
    /// Random, chosen once: the relay tells this client's JOINs from another's by it.
    instance: Uuid,
    /// Sessions welcomed so far (a second one means we rejoined).
    sessions: u32,
    /// The token of the latest session welcomed, kept while joining again: a WELCOME with it
    /// means the relay still has that session.
    session_token: Option<Token>,
    next_csn: u64,
    outbox: VecDeque<Outgoing>,
    rtt: Rtt,
    /// The rooms followed, in the order they were first entered (never removed: a room
    /// parted stays, not wanted, and keeps its place).
    rooms: Vec<Channel>,
    /// The room the JOIN of this session entered, as its room 0.
    zero: Option<usize>,
    /// Pages of the history of entering a room that came before its ENTERED (by the room's
    /// number, with their range and messages): taken once it comes.
    early: VecDeque<(u16, u64, u64, Vec<crate::proto::message::Message>)>,
    /// History requests by room and request number (0: the history of entering the room).
    requests: BTreeMap<(usize, u32), Request>,
    next_req: u32,
    who: Option<Who>,
    /// Who requests made while `who` was on its way: asked together once it is answered.
    who_waiting: u32,
    /// The room of the latest of those.
    who_next: Option<usize>,
    /// When the relay was last heard from.
    last_heard: Instant,
    /// When we last sent the relay anything.
    last_sent: Instant,
    /// Since when the relay owes an answer.
    owed_since: Option<Instant>,
    /// Whether the user was told the relay is silent.
    told_silent: bool,
    /// Keepalives sent since the relay owes an answer (see `next_ping`).
    probes: u32,
    /// Since the user was told the relay cannot store messages: in which room, and its latest
    /// seq known then (a message of ours stored after it says the relay stores again).
    told_storage: Option<(usize, u64)>,
    /// Whether the user was told they send faster than the relay takes (until all is acked).
    told_slow: bool,
    ping_every: Duration,
    /// The relays of the list, and the one in use.
    relays: Relays,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
}

impl Client {
    /// A client that starts joining at `now`.
    pub fn new(config: Config, now: Instant) -> Self {
        let rooms = if config.rooms.is_empty() {
            vec![(DEFAULT_ROOM.to_owned(), config.since)]
        } else {
            config.rooms.clone()
        };
        let history = config.history;
        let rooms = (rooms.into_iter())
            .map(|(name, since)| Channel::new(crate::proto::room::room_key(&name), history, since))
            .collect();
        let relays = Relays::new(config.relays.clone());
        let mut client = Client {
            config,
            phase: Phase::Joining {
                attempt: 0,
                next_try: now,
            },
            instance: Uuid::new_v4(),
            sessions: 0,
            session_token: None,
            next_csn: 1,
            outbox: VecDeque::new(),
            rtt: Rtt::default(),
            rooms,
            zero: None,
            early: VecDeque::new(),
            requests: BTreeMap::new(),
            next_req: 1,
            who: None,
            who_waiting: 0,
            who_next: None,
            last_heard: now,
            last_sent: now,
            owed_since: None,
            told_silent: false,
            probes: 0,
            told_storage: None,
            told_slow: false,
            ping_every: PING_INTERVAL,
            relays,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        client.try_join(now);
        client
    }

    /// The name this client joins with.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// True once welcomed and until leaving or being dropped.
    pub fn is_joined(&self) -> bool {
        matches!(self.phase, Phase::Joined { .. })
    }

    /// How many sessions the relay opened for this client: one more each time it joined
    /// afresh (a rejoin into the session the relay kept counts none).
    pub fn sessions(&self) -> u32 {
        self.sessions
    }

    /// True when the relay refused the client for good or it left.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// True while the history shown on entering a room is still on its way.
    pub fn is_catching_up(&self) -> bool {
        self.requests.values().any(|r| r.purpose == Purpose::Join)
    }

    /// True while a room is being entered or parted (its ENTER or PART unanswered).
    pub fn is_moving(&self) -> bool {
        (self.rooms.iter()).any(|c| c.wanted != c.number.is_some())
    }

    /// True from the notice that the relay is not answering until it answers again.
    pub fn relay_silent(&self) -> bool {
        self.told_silent
    }

    /// Messages typed but not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.outbox.len()
    }

    /// The texts of the messages typed but not yet acknowledged, in the order typed.
    pub fn unacked_texts(&self) -> Vec<String> {
        self.outbox.iter().map(|o| o.text.clone()).collect()
    }

    /// True once the relay has welcomed this client (in any session so far).
    pub fn was_welcomed(&self) -> bool {
        self.sessions > 0
    }

    /// Own messages the relay acknowledged that are not shown yet: they wait in their room's
    /// order behind messages that have not arrived (a gap being repaired).
    pub fn undelivered(&self) -> usize {
        (self.rooms.iter())
            .map(|c| c.ahead.values().filter(|(_, own)| *own).count())
            .sum()
    }

    /// True when nothing is owed: no JOIN on its way (the relay may let us in after we went,
    /// so leaving waits for the welcome to say goodbye; a rejoin is not waited for once the
    /// relay is known to be silent: then nobody would welcome us), every message acknowledged
    /// and shown in the room's order, every request answered.
    pub fn is_idle(&self) -> bool {
        let joining = matches!(self.phase, Phase::Joining { .. });
        !(joining && (self.sessions == 0 || !self.told_silent))
            && self.outbox.is_empty()
            && self.requests.is_empty()
            && self.who.is_none()
            && self.who_waiting == 0
            && self.undelivered() == 0
            && !(self.is_joined() && self.is_moving())
    }

    /// Highest sequence number delivered in order in the first room followed.
    pub fn delivered(&self) -> u64 {
        self.first().map_or(0, |r| self.rooms[r].delivered)
    }

    /// Highest sequence number delivered in order in the room `name`.
    pub fn delivered_in(&self, name: &str) -> u64 {
        self.channel(name).map_or(0, |r| self.rooms[r].delivered)
    }

    /// Queues `text` to be sent to the first room followed: see [`Client::send_to`].
    ///
    /// # Errors
    /// When the text is empty or has control characters other than tab, or no room is
    /// followed.
    pub fn send(&mut self, now: Instant, text: &str) -> Result<Vec<Uuid>, Invalid> {
        let room = self.first().map(|r| self.rooms[r].name.clone());
        self.send_to(now, room.as_deref().unwrap_or(DEFAULT_ROOM), text)
    }

    /// Queues `text` to be sent to the room `room` (one the client follows), split into as
    /// many messages as its length needs. Returns the ids of the messages, in order.
    ///
    /// # Errors
    /// When the text is empty or has control characters other than tab, or the client does
    /// not follow the room.
    pub fn send_to(&mut self, now: Instant, room: &str, text: &str) -> Result<Vec<Uuid>, Invalid> {
        let Some(r) = self.channel(room).filter(|&r| self.rooms[r].wanted) else {
            return Err(Invalid::NoRoom);
        };
        if text.is_empty() {
            return Err(Invalid::EmptyText);
        }
        let pieces = split_text(text, MAX_TEXT_BYTES);
        for piece in &pieces {
            check_text(piece)?;
        }
        let ids: Vec<Uuid> = pieces
            .into_iter()
            .map(|piece| {
                let id = Uuid::new_v4();
                self.outbox.push_back(Outgoing {
                    id,
                    room: r,
                    text: piece.to_owned(),
                    csn: 0,
                    sends: 0,
                    sent_at: None,
                    resend_at: None,
                });
                id
            })
            .collect();
        self.pump(now);
        Ok(ids)
    }

    /// Asks for the last `count` messages of the first room followed, shown as history.
    pub fn request_history(&mut self, now: Instant, count: u16) {
        if let Some(r) = self.first() {
            self.history_of(now, r, count);
        }
    }

    /// Asks for the last `count` messages of the room `name`, shown as history; false when
    /// the client does not follow it.
    pub fn request_history_in(&mut self, now: Instant, name: &str, count: u16) -> bool {
        let Some(r) = self.channel(name).filter(|&r| self.rooms[r].wanted) else {
            return false;
        };
        self.history_of(now, r, count);
        true
    }

    fn history_of(&mut self, now: Instant, r: usize, count: u16) {
        let count = count.clamp(1, MAX_HISTORY_REQUEST);
        self.ask(now, r, Purpose::User, 0, count);
    }

    /// Asks who is in the first room followed.
    pub fn request_who(&mut self, now: Instant) {
        if let Some(r) = self.first() {
            self.who_of(now, r);
        }
    }

    /// Asks who is in the room `name`; false when the client does not follow it.
    pub fn request_who_in(&mut self, now: Instant, name: &str) -> bool {
        let Some(r) = self.channel(name).filter(|&r| self.rooms[r].wanted) else {
            return false;
        };
        self.who_of(now, r);
        true
    }

    fn who_of(&mut self, now: Instant, r: usize) {
        if self.who.is_some() {
            // Answered by a request of its own once the one on its way is (see `finish_who`):
            // each /who gets an answer given after it was asked.
            self.who_waiting += 1;
            self.who_next = Some(r);
            return;
        }
        self.ask_who(now, r, 1);
    }

    /// Sends a who request about room `r` that answers `asked` of the user's.
    fn ask_who(&mut self, now: Instant, r: usize, asked: u32) {
        let req = self.take_req();
        // Before the welcome (or the room's ENTERED) the request waits for it.
        self.who = Some(Who::new(req, r, asked, now + MAX_RTO * 2));
        self.send_who(now);
    }

    /// Sends the who request on its way, if its room is entered.
    pub(super) fn send_who(&mut self, now: Instant) {
        let Phase::Joined { token } = self.phase else {
            return;
        };
        let Some((req, r)) = self.who.as_ref().map(|w| (w.req, w.room)) else {
            return;
        };
        if let Some(room) = self.rooms[r].number {
            self.transmit(now, &Packet::Who { token, req, room });
        }
    }

    /// The secure channel has a new transport: what waits for one goes now (the JOIN at
    /// once), or a PING, whose arrival on the new keys tells the relay to use them.
    pub fn transport_ready(&mut self, now: Instant) {
        match &self.phase {
            Phase::Joining { attempt, .. } => {
                self.phase = Phase::Joining {
                    attempt: *attempt,
                    next_try: now,
                };
                self.try_join(now);
            }
            Phase::Joined { token } => {
                let token = *token;
                self.transmit(now, &Packet::Ping { token });
            }
            Phase::Leaving { leave, .. } => {
                let leave = leave.clone();
                self.last_sent = now;
                self.transmits.push_back(leave);
            }
            Phase::Closed => {}
        }
    }

    /// The next packet to send to the relay (sealed by [`SecureClient`]).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next thing to show the user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn transmit(&mut self, now: Instant, packet: &Packet) {
        self.last_sent = now;
        if !matches!(packet, Packet::Leave { .. }) {
            self.owed_since.get_or_insert(now);
        }
        self.transmits.push_back(packet.encode());
    }

    /// A message of ours at `seq` of room `r` is stored: if the relay could not store, it can
    /// again.
    fn stored(&mut self, r: usize, seq: u64) {
        if (self.told_storage).is_some_and(|(room, then)| room != r || seq > then) {
            self.told_storage = None;
            self.notice("the relay stores messages again");
        }
    }

    fn notice(&mut self, text: &str) {
        self.events.push_back(Event::Notice(text.to_owned()));
    }
}
