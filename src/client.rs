//! The client's rules without I/O: joining, retransmission, ordered gap-free delivery, history.
//!
//! The shell feeds it the relay's datagrams with [`Client::handle`] and the clock with
//! [`Client::handle_timeout`] (when [`Client::poll_timeout`] says), sends what
//! [`Client::poll_transmit`] yields, and shows what [`Client::poll_event`] yields.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::message::{Invalid, MAX_TEXT_BYTES, Message, check_text, split_text};
use crate::wire::{ErrorCode, LeaveReason, MAX_HISTORY_REQUEST, Packet, Token};

/// First retransmission timeout, before any round trip was measured.
pub const INITIAL_RTO: Duration = Duration::from_millis(200);
/// Shortest retransmission timeout.
pub const MIN_RTO: Duration = Duration::from_millis(50);
/// Longest wait between two retransmissions (the backoff's bound).
pub const MAX_RTO: Duration = Duration::from_secs(4);
/// Longest wait between two keepalives.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
/// Silence from the relay, while it owes an answer, after which the user is told.
pub const SILENT_AFTER: Duration = Duration::from_secs(3);
/// Messages in flight at once.
pub const WINDOW: usize = 32;
/// Rounds in a row that bring nothing before what arrived of a history request is shown as
/// it is.
const HISTORY_TRIES: u32 = 5;
/// Most runs of missing messages asked for in one round.
const MAX_RUNS: usize = 8;

/// What the client has to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A chat message, in sequence order (or replayed history).
    Message {
        /// The message.
        message: Message,
        /// True when replayed as history (on join or on request).
        history: bool,
        /// True when the user sent it.
        own: bool,
    },
    /// Someone joined.
    Joined {
        /// Their name.
        name: String,
    },
    /// Someone left.
    Left {
        /// Their name.
        name: String,
        /// Why.
        reason: LeaveReason,
    },
    /// The room's names, answering a who request.
    Who {
        /// The names, sorted.
        names: Vec<String>,
    },
    /// Something the user should know about the connection or a request.
    Notice(String),
    /// Something went wrong with what the user asked.
    Error(String),
}

/// The client's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The name to join with.
    pub name: String,
    /// How many messages of history to receive on joining.
    pub history: u16,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for a welcome.
    Joining { attempt: u32, next_try: Instant },
    /// In the room.
    Joined { token: Token },
    /// The relay refused us for good, or we left.
    Closed,
}

/// A message typed but not yet acknowledged.
#[derive(Debug)]
struct Outgoing {
    id: Uuid,
    text: String,
    /// Its number in the current session, 0 until first sent in it.
    csn: u64,
    /// Times sent in the current session.
    sends: u32,
    /// When it was last sent.
    sent_at: Option<Instant>,
    /// When to send it again.
    resend_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The history sent on joining: live messages wait until it is shown.
    Join,
    /// `/history`: shown as history.
    User,
    /// Filling a gap in the live stream.
    Repair,
}

/// A history request and what arrived for it.
#[derive(Debug)]
struct Request {
    purpose: Purpose,
    /// What was asked (for asking again when nothing arrived).
    from: u64,
    count: u16,
    /// The answer's range, once a page told it.
    range: Option<(u64, u64)>,
    got: BTreeMap<u64, Message>,
    /// How many messages had arrived at the last round.
    progress: usize,
    tries: u32,
    retry_at: Instant,
}

/// Smoothed round-trip time, as in RFC 6298.
#[derive(Debug)]
struct Rtt {
    srtt: Option<Duration>,
    rttvar: Duration,
}

impl Rtt {
    fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(s) => {
                let diff = s.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((s * 7 + r) / 8);
            }
        }
    }

    fn rto(&self) -> Duration {
        match self.srtt {
            None => INITIAL_RTO,
            Some(s) => (s + self.rttvar * 4).clamp(MIN_RTO, MAX_RTO),
        }
    }
}

/// The client's state and rules.
#[derive(Debug)]
pub struct Client {
    config: Config,
    phase: Phase,
    /// Random, chosen once: the relay tells this client's JOINs from another's by it.
    instance: Uuid,
    /// The relay's last challenge cookie, echoed in JOIN to prove our address.
    cookie: Vec<u8>,
    /// Sessions welcomed so far (a second one means we rejoined).
    sessions: u32,
    /// The token of the latest session welcomed, kept while joining again: a WELCOME with it
    /// means the relay still has that session.
    session_token: Option<Token>,
    next_csn: u64,
    outbox: VecDeque<Outgoing>,
    rtt: Rtt,
    /// Highest sequence number delivered in order.
    delivered: u64,
    /// Highest sequence number the relay told of.
    known_latest: u64,
    /// Messages received ahead of a gap, and own acknowledged ones.
    ahead: BTreeMap<u64, (Message, bool)>,
    requests: BTreeMap<u32, Request>,
    next_req: u32,
    /// The request filling the current gap, if any.
    repair: Option<u32>,
    /// Since when the live stream has a gap.
    gap_since: Option<Instant>,
    who: Option<(u32, u16, Vec<String>, Instant)>,
    /// When the relay was last heard from.
    last_heard: Instant,
    /// When we last sent the relay anything.
    last_sent: Instant,
    /// Since when the relay owes an answer.
    owed_since: Option<Instant>,
    /// Whether the user was told the relay is silent.
    told_silent: bool,
    ping_every: Duration,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
}

impl Client {
    /// A client that starts joining at `now`.
    pub fn new(config: Config, now: Instant) -> Self {
        let mut client = Client {
            config,
            phase: Phase::Joining {
                attempt: 0,
                next_try: now,
            },
            instance: Uuid::new_v4(),
            cookie: Vec::new(),
            sessions: 0,
            session_token: None,
            next_csn: 1,
            outbox: VecDeque::new(),
            rtt: Rtt {
                srtt: None,
                rttvar: Duration::ZERO,
            },
            delivered: 0,
            known_latest: 0,
            ahead: BTreeMap::new(),
            requests: BTreeMap::new(),
            next_req: 1,
            repair: None,
            gap_since: None,
            who: None,
            last_heard: now,
            last_sent: now,
            owed_since: None,
            told_silent: false,
            ping_every: PING_INTERVAL,
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

    /// True when the relay refused the client for good or it left.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Messages typed but not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.outbox.len()
    }

    /// True when nothing is owed: every message acknowledged, every request answered.
    pub fn is_idle(&self) -> bool {
        self.outbox.is_empty() && self.requests.is_empty() && self.who.is_none()
    }

    /// Highest sequence number delivered in order.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Queues `text` to be sent, split into as many messages as its length needs.
    /// Returns the ids of the messages, in order.
    ///
    /// # Errors
    /// When the text is empty or has control characters other than tab.
    pub fn send(&mut self, now: Instant, text: &str) -> Result<Vec<Uuid>, Invalid> {
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

    /// Asks for the last `count` messages, shown as history.
    pub fn request_history(&mut self, now: Instant, count: u16) {
        let count = count.clamp(1, MAX_HISTORY_REQUEST);
        self.ask(now, Purpose::User, 0, count);
    }

    /// Asks who is in the room.
    pub fn request_who(&mut self, now: Instant) {
        let req = self.take_req();
        // Before the welcome the request waits for it (see `welcomed`).
        self.who = Some((req, 0, Vec::new(), now + MAX_RTO * 2));
        if let Phase::Joined { token } = self.phase {
            self.transmit(now, &Packet::Who { token, req });
        }
    }

    /// Leaves the room; the client is closed afterwards.
    pub fn leave(&mut self, now: Instant) {
        if let Phase::Joined { token } = self.phase {
            self.transmit(now, &Packet::Leave { token });
        }
        self.phase = Phase::Closed;
    }

    /// The next datagram to send to the relay.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next thing to show the user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        match self.phase {
            Phase::Closed => return None,
            Phase::Joining { next_try, .. } => at(next_try),
            Phase::Joined { .. } => {
                // Keepalive: only what the relay receives keeps the session alive, so a
                // client that only listens must still ping (docs/protocol.md, "Staying").
                at(self.last_sent + self.ping_every);
                self.outbox
                    .iter()
                    .filter_map(|o| o.resend_at)
                    .for_each(&mut at);
                self.requests.values().for_each(|r| at(r.retry_at));
                if let Some(since) = self.gap_since {
                    at(since + self.gap_wait());
                }
                if let Some((_, _, _, deadline)) = self.who {
                    at(deadline);
                }
            }
        }
        if let (Some(since), false) = (self.owed_since, self.told_silent) {
            at(since + SILENT_AFTER);
        }
        next
    }

    /// Does what is due at `now`: retransmissions, keepalives, retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let (Some(since), false) = (self.owed_since, self.told_silent)
            && now >= since + SILENT_AFTER
        {
            self.told_silent = true;
            self.notice("the relay is not answering: still trying");
        }
        match self.phase {
            Phase::Closed => {}
            Phase::Joining { next_try, .. } => {
                if now >= next_try {
                    self.try_join(now);
                }
            }
            Phase::Joined { token } => {
                let due: Vec<usize> = (0..self.outbox.len())
                    .filter(|&i| self.outbox[i].resend_at.is_some_and(|t| t <= now))
                    .collect();
                for i in due {
                    self.send_one(now, token, i);
                }
                self.retry_requests(now, token);
                if self.gap_since.is_some_and(|s| now >= s + self.gap_wait()) {
                    self.start_repair(now);
                }
                if let Some((_, _, _, deadline)) = self.who
                    && now >= deadline
                {
                    self.finish_who();
                }
                if now >= self.last_sent + self.ping_every {
                    self.transmit(now, &Packet::Ping { token });
                }
            }
        }
    }

    /// Takes one datagram from the relay.
    pub fn handle(&mut self, now: Instant, bytes: &[u8]) {
        let Ok(packet) = Packet::decode(bytes) else {
            // Not from a urc relay, or damaged: nothing to do with it.
            return;
        };
        if self.is_closed() {
            return;
        }
        self.last_heard = now;
        self.owed_since = None;
        if self.told_silent {
            self.told_silent = false;
            self.notice("the relay is answering again");
        }
        self.take(now, packet);
        // Whatever was learnt may have freed room in the window (a repair that showed one of
        // our messages stored, say).
        self.pump(now);
    }

    fn take(&mut self, now: Instant, packet: Packet) {
        match packet {
            Packet::Welcome {
                token,
                name,
                latest,
                timeout_ms,
            } => self.welcomed(now, token, name, latest, timeout_ms),
            Packet::Error { code, id, message } => self.refused(now, code, id, message),
            Packet::Ack { id, seq, time, .. } => self.acked(now, id, seq, time),
            Packet::Messages { messages } => {
                for m in messages {
                    self.arrived(m);
                }
                self.drain(now);
            }
            Packet::HistoryPage {
                req,
                first,
                last,
                messages,
            } => self.page(now, req, first, last, messages),
            Packet::Presence {
                joined,
                reason,
                name,
            } => {
                if joined {
                    self.events.push_back(Event::Joined { name });
                } else {
                    self.events.push_back(Event::Left { name, reason });
                }
            }
            Packet::Names { req, total, names } => {
                if let Some((want, t, got, _)) = &mut self.who
                    && *want == req
                {
                    *t = total;
                    got.extend(names);
                    if got.len() >= usize::from(*t) {
                        self.finish_who();
                    }
                }
            }
            Packet::Pong { latest } => {
                self.learn_latest(now, latest);
            }
            Packet::Challenge { cookie } => {
                if let Phase::Joining { attempt, .. } = self.phase {
                    // The relay wants proof that we receive at our address: echo at once,
                    // unless challenges keep coming (a cookie that never passes, say): then
                    // the JOIN waits for its backoff like any retry.
                    self.cookie = cookie;
                    if attempt <= 3 {
                        self.phase = Phase::Joining {
                            attempt,
                            next_try: now,
                        };
                        self.try_join(now);
                    }
                }
            }
            // Client-to-relay packets: not for us.
            _ => {}
        }
    }

    fn try_join(&mut self, now: Instant) {
        let Phase::Joining { attempt, .. } = self.phase else {
            return;
        };
        // On a rejoin the gap is repaired from the log instead of replaying history.
        let history = if self.sessions == 0 {
            self.config.history
        } else {
            0
        };
        let packet = Packet::Join {
            name: self.config.name.clone(),
            history,
            instance: self.instance,
            cookie: self.cookie.clone(),
        };
        self.transmit(now, &packet);
        let wait = (self.rtt.rto() * 2u32.saturating_pow(attempt)).min(MAX_RTO);
        self.phase = Phase::Joining {
            attempt: attempt + 1,
            next_try: now + wait,
        };
    }

    fn welcomed(&mut self, now: Instant, token: Token, name: String, latest: u64, timeout_ms: u32) {
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
        if let Some((req, _, _, _)) = self.who {
            self.transmit(now, &Packet::Who { token, req });
        }
        self.ping_every = (Duration::from_millis(u64::from(timeout_ms)) / 4).min(PING_INTERVAL);
        self.config.name = name.clone();
        if same_session {
            // Carry on with it and with the csns it expects: numbered afresh from 1, the
            // messages in flight would be dropped as old by the relay, for ever.
            self.learn_latest(now, latest);
            self.pump(now);
            return;
        }
        self.sessions += 1;
        if self.sessions == 1 {
            self.delivered = latest;
            self.known_latest = latest;
            // Pages of the join history may have overtaken the welcome.
            let early = self.requests.remove(&0);
            let count = self.config.history.min(MAX_HISTORY_REQUEST);
            let count = u16::try_from(latest.min(u64::from(count))).unwrap_or(count);
            if count > 0 {
                // The relay sends this history unasked, as request 0. It is the `count`
                // messages up to this welcome's latest, whatever pages say: pages answering
                // an earlier JOIN (whose welcome was lost) or a retry reach other seqs, and
                // anything after `latest` is live, so showing it as history would show it twice
                // and taking an earlier page's range would skip what lies between.
                let first = latest - u64::from(count) + 1;
                let mut got = early.map(|r| r.got).unwrap_or_default();
                got.retain(|seq, _| (first..=latest).contains(seq));
                self.requests.insert(
                    0,
                    Request {
                        purpose: Purpose::Join,
                        from: first,
                        count,
                        range: Some((first, latest)),
                        got,
                        progress: 0,
                        tries: 0,
                        retry_at: now + self.rtt.rto() * 2,
                    },
                );
                self.complete_if_done(now, 0);
            }
            self.notice(&format!("joined as {name}"));
        } else {
            self.notice(&format!("rejoined as {name}"));
            if latest < self.delivered {
                self.notice("the relay has fewer messages than were shown: its log was reset");
                self.delivered = latest;
                self.ahead.clear();
            }
            self.learn_latest(now, latest);
        }
        // Everything unacknowledged is numbered afresh in this session and sent again.
        self.next_csn = 1;
        for o in &mut self.outbox {
            o.csn = 0;
            o.sends = 0;
            o.resend_at = None;
        }
        self.pump(now);
        // Live messages that overtook the welcome were held (see `drain`).
        self.drain(now);
    }

    fn refused(&mut self, now: Instant, code: ErrorCode, id: Uuid, message: String) {
        match code {
            ErrorCode::NotJoined => {
                if matches!(self.phase, Phase::Joined { .. }) {
                    self.notice("the relay forgot this session: joining again");
                    self.phase = Phase::Joining {
                        attempt: 0,
                        next_try: now,
                    };
                    self.try_join(now);
                }
            }
            ErrorCode::NameTaken | ErrorCode::BadName | ErrorCode::Full => {
                if matches!(self.phase, Phase::Joining { .. }) {
                    self.phase = Phase::Closed;
                    self.events.push_back(Event::Error(message));
                }
            }
            ErrorCode::BadText => {
                if let Some(i) = self.outbox.iter().position(|o| o.id == id) {
                    self.outbox.remove(i);
                    self.events.push_back(Event::Error(message));
                    self.pump(now);
                }
            }
            ErrorCode::Storage | ErrorCode::RateLimited => {
                // The message stays in the outbox and goes again after its backoff.
                self.notice(&message);
            }
            ErrorCode::Malformed => self.events.push_back(Event::Error(message)),
        }
    }

    fn acked(&mut self, now: Instant, id: Uuid, seq: u64, time: crate::message::Millis) {
        let Some(i) = self.outbox.iter().position(|o| o.id == id) else {
            return;
        };
        // An acknowledgement means the message is stored, whichever session it answers (a
        // late one from a relay that restarted since, say): it leaves the outbox, and the
        // `base` of our next SEND tells the relay not to wait for its csn.
        let Some(o) = self.outbox.remove(i) else {
            return;
        };
        if o.sends == 1
            && let Some(sent) = o.sent_at
        {
            self.rtt.sample(now.saturating_duration_since(sent));
        }
        let message = Message {
            seq,
            id,
            from: self.config.name.clone(),
            text: o.text,
            time,
        };
        self.arrived(message);
        self.drain(now);
        self.pump(now);
    }

    /// Files a message from the live stream (or a repair) for in-order delivery.
    fn arrived(&mut self, m: Message) {
        if m.seq <= self.delivered {
            return;
        }
        // A message of ours whose acknowledgement was lost: it is stored, so it leaves the
        // outbox (the `base` of our next SEND tells the relay not to wait for its csn).
        if let Some(i) = self.outbox.iter().position(|o| o.id == m.id) {
            self.outbox.remove(i);
        }
        self.known_latest = self.known_latest.max(m.seq);
        let own = m.from == self.config.name;
        self.ahead.entry(m.seq).or_insert((m, own));
    }

    fn learn_latest(&mut self, now: Instant, latest: u64) {
        self.known_latest = self.known_latest.max(latest);
        self.drain(now);
    }

    /// Delivers what can be delivered in order; notes a gap.
    fn drain(&mut self, now: Instant) {
        // Nothing is shown until the welcome says where delivery starts: fan-out that overtook
        // it was shown too early, and again after a rejoin's welcome took `delivered` back to
        // its `latest` (taken for a log reset).
        if !self.is_joined() || self.requests.values().any(|r| r.purpose == Purpose::Join) {
            return;
        }
        while let Some(entry) = self.ahead.first_entry() {
            if *entry.key() <= self.delivered {
                // Held before the welcome set where delivery starts (its join history covers
                // it): left in place it would block delivery for good.
                entry.remove();
                continue;
            }
            if *entry.key() != self.delivered + 1 {
                break;
            }
            let (message, own) = entry.remove();
            self.delivered = message.seq;
            self.events.push_back(Event::Message {
                message,
                history: false,
                own,
            });
        }
        if self.known_latest > self.delivered {
            self.gap_since.get_or_insert(now);
        } else {
            self.gap_since = None;
        }
    }

    fn gap_wait(&self) -> Duration {
        // Long enough for a reordered datagram to arrive, short enough not to be seen.
        (self.rtt.rto() / 2).max(Duration::from_millis(20))
    }

    fn start_repair(&mut self, now: Instant) {
        self.gap_since = Some(now);
        if self.repair.is_some_and(|r| self.requests.contains_key(&r)) {
            return;
        }
        let from = self.delivered + 1;
        let end = self
            .ahead
            .keys()
            .next()
            .map_or(self.known_latest, |&k| k - 1);
        if end < from {
            return;
        }
        let count = u16::try_from(end - from + 1)
            .unwrap_or(MAX_HISTORY_REQUEST)
            .min(MAX_HISTORY_REQUEST);
        self.repair = Some(self.ask(now, Purpose::Repair, from, count));
    }

    fn ask(&mut self, now: Instant, purpose: Purpose, from: u64, count: u16) -> u32 {
        let req = self.take_req();
        self.requests.insert(
            req,
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

    fn take_req(&mut self) -> u32 {
        let req = self.next_req;
        self.next_req = self.next_req.checked_add(1).unwrap_or(1);
        req
    }

    /// Asks again for what is missing of each request that is due.
    fn retry_requests(&mut self, now: Instant, token: Token) {
        let rto = self.rtt.rto();
        let mut give_up = Vec::new();
        let mut packets = Vec::new();
        for (&req, r) in &mut self.requests {
            if r.retry_at > now {
                continue;
            }
            if r.got.len() > r.progress {
                // Pages are arriving: only rounds that bring nothing count against the request.
                r.progress = r.got.len();
                r.tries = 0;
            }
            if r.tries >= HISTORY_TRIES {
                give_up.push(req);
                continue;
            }
            r.tries += 1;
            r.retry_at = now + (rto * 2u32.pow(r.tries)).min(MAX_RTO);
            let Some((first, last)) = r.range else {
                // Nothing arrived, not even the answer's range: ask the same again.
                packets.push(Packet::History {
                    token,
                    req,
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
                    from,
                    count,
                });
            }
        }
        for p in packets {
            self.transmit(now, &p);
        }
        for req in give_up {
            if let Some(r) = self.requests.remove(&req) {
                if r.purpose != Purpose::Repair {
                    self.notice("part of the history did not arrive: showing what did");
                }
                self.finish(now, r);
            }
        }
    }

    fn page(&mut self, now: Instant, req: u32, first: u64, last: u64, messages: Vec<Message>) {
        if req == 0 && self.sessions == 0 {
            // Join history that overtook the welcome: keep it for when it comes, which says
            // what the join history is (see `welcomed`). Completing it here, once its pages
            // were all in, showed it before the welcome and then asked for it again.
            let r = self.requests.entry(0).or_insert_with(|| Request {
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
        let Some(r) = self.requests.get_mut(&req) else {
            return;
        };
        let (first, last) = *r.range.get_or_insert((first, last));
        for m in messages {
            if first <= m.seq && m.seq <= last {
                r.got.insert(m.seq, m);
            }
        }
        self.complete_if_done(now, req);
    }

    fn complete_if_done(&mut self, now: Instant, req: u32) {
        let done = self.requests.get(&req).is_some_and(|r| match r.range {
            Some((first, last)) => first == 0 || r.got.len() as u64 == last - first + 1,
            None => false,
        });
        if done && let Some(r) = self.requests.remove(&req) {
            self.finish(now, r);
        }
    }

    /// Shows what a finished (or abandoned) history request brought.
    fn finish(&mut self, now: Instant, r: Request) {
        match r.purpose {
            Purpose::Join | Purpose::User => {
                for (_, message) in r.got {
                    let own = message.from == self.config.name;
                    self.events.push_back(Event::Message {
                        message,
                        history: true,
                        own,
                    });
                }
            }
            Purpose::Repair => {
                for (_, m) in r.got {
                    self.arrived(m);
                }
                if let Some((_, last)) = r.range
                    && last == 0
                {
                    // The relay has nothing there: what we were told of is not there.
                    self.known_latest = self
                        .delivered
                        .max(self.ahead.keys().next_back().copied().unwrap_or(0));
                }
            }
        }
        self.drain(now);
        if self.gap_since.is_some() {
            self.start_repair(now);
        }
    }

    fn finish_who(&mut self) {
        if let Some((_, _, mut names, _)) = self.who.take() {
            if names.is_empty() {
                // We are in the room, so an empty list means the answer never came.
                let message = "the relay did not answer /who: try again".to_owned();
                return self.events.push_back(Event::Error(message));
            }
            names.sort_by_key(|n| crate::message::name_key(n));
            names.dedup();
            self.events.push_back(Event::Who { names });
        }
    }

    /// Sends what the window allows.
    fn pump(&mut self, now: Instant) {
        let Phase::Joined { token } = self.phase else {
            return;
        };
        for i in 0..self.outbox.len().min(WINDOW) {
            if self.outbox[i].sends == 0 {
                self.send_one(now, token, i);
            }
        }
    }

    fn send_one(&mut self, now: Instant, token: Token, i: usize) {
        if self.outbox[i].csn == 0 {
            self.outbox[i].csn = self.next_csn;
            self.next_csn += 1;
        }
        let rto = self.rtt.rto();
        // Everything below the oldest unacknowledged csn of this session is stored: the relay
        // need not wait for any of it (some may have been acknowledged by an earlier session).
        let base = self
            .outbox
            .iter()
            .map(|o| o.csn)
            .find(|&c| c != 0)
            .unwrap_or(self.next_csn);
        let o = &mut self.outbox[i];
        o.sends += 1;
        o.sent_at = Some(now);
        o.resend_at = Some(now + (rto * 2u32.saturating_pow(o.sends - 1)).min(MAX_RTO));
        let packet = Packet::Send {
            token,
            csn: o.csn,
            base,
            id: o.id,
            text: o.text.clone(),
        };
        self.transmit(now, &packet);
    }

    fn transmit(&mut self, now: Instant, packet: &Packet) {
        self.last_sent = now;
        if !matches!(packet, Packet::Leave { .. }) {
            self.owed_since.get_or_insert(now);
        }
        self.transmits.push_back(packet.encode());
    }

    fn notice(&mut self, text: &str) {
        self.events.push_back(Event::Notice(text.to_owned()));
    }
}
