//! The relay's rules without I/O: joins, sessions, ordering, acknowledgements, fan-out and history.
//!
//! The shell feeds it datagrams with [`Relay::handle`] and the clock with [`Relay::handle_tick`],
//! persists what [`Relay::take_appends`] hands out, then calls [`Relay::commit`] (or
//! [`Relay::abort`]) and sends what [`Relay::poll_transmit`] yields. Nothing that depends on a
//! message (its acknowledgement, its fan-out) leaves before the message is committed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use uuid::Uuid;

use crate::cookie::Cookies;
use crate::limit::Bucket;
use crate::message::{Message, Millis, check_name, check_text, name_key};
use crate::wire::{
    ErrorCode, HISTORY_HEADER, LeaveReason, MAX_HISTORY_REQUEST, MESSAGES_HEADER, NAMES_HEADER,
    Packet, Token, paginate,
};

/// Seconds of silence after which the relay drops a client, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Most csns a message may be ahead of the one its session expects and still wait for it.
pub const REORDER_WINDOW: u64 = 32;
/// Most bytes of text waiting ahead of gaps, all sessions together.
const MAX_AHEAD_BYTES: usize = 8 << 20;
/// The seq remembered for a message id that was refused.
const REFUSED: u64 = 0;

/// The relay's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Silence after which a client is dropped.
    pub timeout: Duration,
    /// Most clients joined at once.
    pub max_clients: usize,
    /// Recent messages kept in memory to answer history without reading the log.
    pub cache: usize,
    /// Recent message ids remembered so that a retransmission is stored once.
    pub dedup: usize,
    /// Most clients joined from one IP address at once.
    pub max_per_ip: usize,
    /// Messages a second a client may send on average.
    pub rate: f64,
    /// Messages a client may send at once, above the rate.
    pub burst: f64,
    /// History and who requests a second a client may make on average (twice that at once).
    pub request_rate: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: DEFAULT_TIMEOUT,
            max_clients: 10_000,
            cache: 10_000,
            dedup: 100_000,
            max_per_ip: 64,
            rate: 20.0,
            burst: 100.0,
            request_rate: 5.0,
        }
    }
}

/// A joined client.
#[derive(Debug)]
pub struct Session {
    /// The name it joined with.
    pub name: String,
    /// The secret it must carry in every datagram.
    token: Token,
    /// Random, chosen by the client process: tells its JOINs from another's.
    instance: Uuid,
    /// The csn its next new message must have.
    next_csn: u64,
    /// Messages that arrived ahead of a missing one, by csn, waiting for it.
    ahead: BTreeMap<u64, (Uuid, String)>,
    /// When it was last heard from.
    last_heard: Instant,
    /// Its message rate.
    messages: Bucket,
    /// Its history and who request rate.
    requests: Bucket,
    /// Whether it was told it is sending messages too fast in this episode of doing so.
    told_slow: bool,
    /// Whether it was told it makes requests too fast in this episode of doing so.
    told_busy: bool,
}

impl Session {
    /// Messages that arrived ahead of a missing one and wait for it: at most
    /// [`REORDER_WINDOW`].
    pub fn waiting(&self) -> usize {
        self.ahead.len()
    }
}

/// A datagram to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Where to.
    pub to: SocketAddr,
    /// The payload, shared between recipients of the same fan-out.
    pub bytes: Arc<[u8]>,
}

/// A history answer the relay's cache cannot give: the shell reads the log and calls
/// [`Relay::serve_read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    /// Who asked.
    pub to: SocketAddr,
    /// Their request number.
    pub req: u32,
    /// First sequence number wanted.
    pub first: u64,
    /// Last sequence number wanted.
    pub last: u64,
}

/// Counts of what the relay saw, for its logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams that could not be decoded.
    pub malformed: u64,
    /// Datagrams with a missing session or a wrong token.
    pub unauthorised: u64,
    /// Messages stored.
    pub stored: u64,
    /// Retransmitted messages recognised and not stored again.
    pub duplicates: u64,
    /// Messages that arrived ahead of an earlier one of the same sender (they wait for it, or
    /// are dropped when they cannot).
    pub out_of_order: u64,
    /// Messages refused for their text.
    pub refused: u64,
    /// Joins refused.
    pub joins_refused: u64,
    /// Clients dropped for silence.
    pub timed_out: u64,
    /// Challenges sent to addresses that asked to join.
    pub challenges: u64,
    /// Replies not sent to an unvalidated address because they would have exceeded three
    /// times what it sent.
    pub over_budget: u64,
    /// Messages, requests and joins refused for coming too fast.
    pub rate_limited: u64,
}

/// What the relay last dropped or refused, and from whom, for its logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The sender.
    pub from: SocketAddr,
    /// Why.
    pub why: String,
}

/// A message accepted but not yet durable.
#[derive(Debug)]
struct Pending {
    message: Message,
    sender: SocketAddr,
    csn: u64,
}

/// The relay's state and rules.
#[derive(Debug)]
pub struct Relay {
    config: Config,
    clients: Arc<DashMap<SocketAddr, Session>>,
    /// Name key → address, so a name is used by one client at a time.
    names: HashMap<String, SocketAddr>,
    /// Latest committed sequence number.
    committed: u64,
    /// Sequence number the next accepted message gets.
    next_seq: u64,
    /// Recently committed messages, oldest first.
    recent: VecDeque<Message>,
    /// Recent message ids → (seq, time), pending ones included.
    ids: HashMap<Uuid, (u64, Millis)>,
    /// The ids in `ids`, oldest first, to forget the oldest.
    id_order: VecDeque<Uuid>,
    pending: Vec<Pending>,
    /// Acknowledgements of retransmitted pending messages, sent on commit.
    held_acks: Vec<(SocketAddr, Packet)>,
    transmits: VecDeque<Transmit>,
    reads: VecDeque<LogRead>,
    /// Timestamp of the last accepted message: times never go backwards.
    last_time: Millis,
    /// The latest sequence number the last heartbeat announced.
    heartbeat_seq: u64,
    /// Bytes of text in the sessions' `ahead` buffers.
    ahead_bytes: usize,
    /// Sessions per IP address.
    per_ip: HashMap<IpAddr, usize>,
    /// JOINs with a good cookie per IP address, at the request rate and as many at once as
    /// sessions may share an address, and whether the address was told it joins too fast; an
    /// entry goes once its bucket is full again.
    joins: HashMap<IpAddr, (Bucket, bool)>,
    /// Mints and checks challenge cookies (made at the first datagram, on its clock).
    cookies: Option<Cookies>,
    /// While handling a datagram from an unvalidated address: that address and how many
    /// bytes may still be sent to it (three times what it sent).
    budget: Option<(SocketAddr, usize)>,
    last_dropped: Option<Dropped>,
    stats: Stats,
}

impl Relay {
    /// A relay that continues after `tail`, the last messages of its log (oldest first).
    pub fn new(config: Config, tail: Vec<Message>) -> Self {
        let mut relay = Relay {
            clients: Arc::new(DashMap::new()),
            names: HashMap::new(),
            committed: 0,
            next_seq: 1,
            recent: VecDeque::new(),
            ids: HashMap::new(),
            id_order: VecDeque::new(),
            pending: Vec::new(),
            held_acks: Vec::new(),
            transmits: VecDeque::new(),
            reads: VecDeque::new(),
            last_time: Millis(i64::MIN),
            heartbeat_seq: 0,
            ahead_bytes: 0,
            per_ip: HashMap::new(),
            joins: HashMap::new(),
            cookies: None,
            budget: None,
            last_dropped: None,
            stats: Stats::default(),
            config,
        };
        for m in tail {
            relay.committed = m.seq;
            relay.heartbeat_seq = m.seq;
            relay.next_seq = m.seq + 1;
            relay.last_time = m.time;
            relay.remember(m.id, m.seq, m.time);
            relay.keep(m);
        }
        relay
    }

    /// The registry of joined clients, keyed by address.
    pub fn clients(&self) -> &Arc<DashMap<SocketAddr, Session>> {
        &self.clients
    }

    /// The latest committed sequence number.
    pub fn latest(&self) -> u64 {
        self.committed
    }

    /// What the relay has seen so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// What the relay last dropped or refused, if anything.
    pub fn last_dropped(&self) -> Option<&Dropped> {
        self.last_dropped.as_ref()
    }

    /// Takes one datagram from `from`, received at `now` (wall-clock time `wall`).
    pub fn handle(&mut self, now: Instant, wall: Millis, from: SocketAddr, bytes: &[u8]) {
        // An address without a session is not validated: it gets at most three times the
        // bytes it sent (RFC 9000, section 8), so a spoofed source gains nothing.
        self.budget = if self.clients.contains_key(&from) {
            None
        } else {
            Some((from, 3 * bytes.len()))
        };
        self.dispatch(now, wall, from, bytes);
        self.budget = None;
    }

    fn dispatch(&mut self, now: Instant, wall: Millis, from: SocketAddr, bytes: &[u8]) {
        let packet = match Packet::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed += 1;
                return self.dropped(from, e.to_string());
            }
        };
        match packet {
            Packet::Join {
                name,
                history,
                instance,
                cookie,
            } => {
                let cookies = self.cookies.get_or_insert_with(|| Cookies::new(now));
                if !cookies.check(now, from, &cookie) {
                    // Prove the address first: only who receives there can echo the cookie.
                    let cookie = cookies.mint(now, from);
                    self.stats.challenges += 1;
                    return self.reply(from, &Packet::Challenge { cookie });
                }
                self.budget = None;
                self.join(now, from, name, history, instance);
            }
            Packet::Send {
                token,
                csn,
                base,
                id,
                text,
            } => {
                if self.authorise(now, from, &token, id) {
                    self.send(now, wall, from, csn, base, id, text);
                }
            }
            Packet::History {
                token,
                req,
                from: first,
                count,
            } => {
                if self.authorise(now, from, &token, Uuid::nil()) && self.request_allowed(now, from)
                {
                    self.history(from, req, first, count);
                }
            }
            Packet::Who { token, req } => {
                if self.authorise(now, from, &token, Uuid::nil()) && self.request_allowed(now, from)
                {
                    self.who(from, req);
                }
            }
            Packet::Ping { token } => {
                if self.authorise(now, from, &token, Uuid::nil()) {
                    self.reply(
                        from,
                        &Packet::Pong {
                            latest: self.committed,
                        },
                    );
                }
            }
            Packet::Leave { token } => {
                if self.authorise(now, from, &token, Uuid::nil()) {
                    self.remove(from, LeaveReason::Quit);
                }
            }
            other => {
                // A relay-to-client packet sent to the relay: nobody's client sends that.
                self.stats.malformed += 1;
                self.dropped(
                    from,
                    format!("a relay's packet sent to the relay: {other:?}"),
                );
            }
        }
    }

    fn dropped(&mut self, from: SocketAddr, why: String) {
        tracing::trace!(%from, %why, "dropped a datagram");
        self.last_dropped = Some(Dropped { from, why });
    }

    /// Takes one of the session's request tokens, or tells it to slow down (once an episode,
    /// as for messages: see `send`).
    fn request_allowed(&mut self, now: Instant, from: SocketAddr) -> bool {
        let Some(mut s) = self.clients.get_mut(&from) else {
            return false;
        };
        if s.requests.is_full(now) {
            s.told_busy = false;
        }
        if s.requests.take(now) {
            return true;
        }
        // Told for every refused request, a flood of requests had one ERROR back each, larger
        // than the request: the rate bounded the answers but not what the relay sent.
        let tell = !std::mem::replace(&mut s.told_busy, true);
        drop(s);
        self.stats.rate_limited += 1;
        if tell {
            let message = "too many requests: wait a moment".to_owned();
            self.error(from, ErrorCode::RateLimited, Uuid::nil(), message);
        }
        false
    }

    /// Drops the clients silent for longer than the timeout. Call it about once a second.
    pub fn handle_tick(&mut self, now: Instant) {
        self.joins.retain(|_, (bucket, _)| !bucket.is_full(now));
        let timeout = self.config.timeout;
        let silent: Vec<SocketAddr> = self
            .clients
            .iter()
            .filter(|c| now.saturating_duration_since(c.last_heard) > timeout)
            .map(|c| *c.key())
            .collect();
        for addr in silent {
            self.stats.timed_out += 1;
            self.remove(addr, LeaveReason::TimedOut);
        }
        // A heartbeat after new messages tells every client the latest sequence number, so
        // one that lost the last fan-out datagram notices within a tick and repairs the gap.
        if self.committed > self.heartbeat_seq {
            self.heartbeat_seq = self.committed;
            let latest = self.committed;
            self.broadcast(None, &Packet::Pong { latest });
        }
    }

    /// The messages accepted since the last commit, to be written to the log now.
    pub fn take_appends(&self) -> Vec<Message> {
        self.pending.iter().map(|p| p.message.clone()).collect()
    }

    /// True when messages wait to be persisted.
    pub fn has_appends(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The messages from [`Relay::take_appends`] are durable: acknowledge and fan them out.
    pub fn commit(&mut self) {
        let batch = std::mem::take(&mut self.pending);
        let Some(last) = batch.last() else { return };
        self.committed = last.message.seq;
        self.stats.stored += batch.len() as u64;
        for p in &batch {
            let ack = Packet::Ack {
                id: p.message.id,
                csn: p.csn,
                seq: p.message.seq,
                time: p.message.time,
            };
            self.reply(p.sender, &ack);
        }
        for (to, ack) in std::mem::take(&mut self.held_acks) {
            self.reply(to, &ack);
        }
        self.fan_out(&batch);
        for p in batch {
            self.keep(p.message);
        }
    }

    /// The messages from [`Relay::take_appends`] could not be persisted: forget them and tell
    /// their senders, who will send them again.
    pub fn abort(&mut self, why: &str) {
        let batch = std::mem::take(&mut self.pending);
        self.held_acks.clear();
        let Some(first) = batch.first() else { return };
        self.next_seq = first.message.seq;
        for p in batch.iter().rev() {
            self.ids.remove(&p.message.id);
            if let Some(mut s) = self.clients.get_mut(&p.sender) {
                s.next_csn = s.next_csn.min(p.csn);
            }
        }
        self.id_order.retain(|id| self.ids.contains_key(id));
        for p in &batch {
            let err = Packet::Error {
                code: ErrorCode::Storage,
                id: p.message.id,
                message: format!(
                    "the relay could not store the message ({why}): it will be resent"
                ),
            };
            self.reply(p.sender, &err);
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next history answer that needs the log.
    pub fn poll_read(&mut self) -> Option<LogRead> {
        self.reads.pop_front()
    }

    /// Answers `read` with `messages`, the log's records from `read.first` to `read.last`.
    pub fn serve_read(&mut self, read: &LogRead, messages: &[Message]) {
        self.send_pages(read.to, read.req, read.first, read.last, messages);
    }

    fn join(&mut self, now: Instant, from: SocketAddr, name: String, history: u16, instance: Uuid) {
        if let Err(e) = check_name(&name) {
            self.stats.joins_refused += 1;
            let message = e.to_string();
            return self.error(from, ErrorCode::BadName, Uuid::nil(), message);
        }
        if !self.join_allowed(now, from) {
            return;
        }
        let here = self
            .clients
            .get(&from)
            .map(|s| s.instance == instance && s.name == name);
        match here {
            // The same client asking again (its welcome was lost): the same session.
            Some(true) => {}
            // Another client on this address (a new process), or a new name: a new session.
            Some(false) => self.remove(from, LeaveReason::Quit),
            None => {}
        }
        let key = name_key(&name);
        if here != Some(true) {
            match self.names.get(&key).copied() {
                Some(old)
                    if self
                        .clients
                        .get(&old)
                        .is_some_and(|s| s.instance == instance) =>
                {
                    // The same client from a new address (NAT rebinding, a new network): the
                    // session moves with it, token and csns included.
                    if let Some((_, session)) = self.clients.remove(&old) {
                        self.clients.insert(from, session);
                        self.names.insert(key, from);
                        self.forget_ip(old.ip());
                        *self.per_ip.entry(from.ip()).or_default() += 1;
                    }
                    // Its messages waiting for the commit move too: left at the old address,
                    // their acks were lost there, the fan-out sent them back to their sender at
                    // the new one, and an abort could not rewind the session's csn (their
                    // resends were then taken for duplicates, and never stored).
                    for p in self.pending.iter_mut().filter(|p| p.sender == old) {
                        p.sender = from;
                    }
                    for (to, _) in self.held_acks.iter_mut().filter(|(to, _)| *to == old) {
                        *to = from;
                    }
                }
                Some(_) => {
                    self.stats.joins_refused += 1;
                    let message = format!("the name {name} is in use: choose another with --name");
                    return self.error(from, ErrorCode::NameTaken, Uuid::nil(), message);
                }
                None => {
                    if self.clients.len() >= self.config.max_clients {
                        self.stats.joins_refused += 1;
                        let message = "the room is full: try again later".to_owned();
                        return self.error(from, ErrorCode::Full, Uuid::nil(), message);
                    }
                    let ip = self.per_ip.get(&from.ip()).copied().unwrap_or(0);
                    if ip >= self.config.max_per_ip {
                        self.stats.joins_refused += 1;
                        let message = format!(
                            "too many clients from {}: at most {} (the relay's --max-per-ip)",
                            from.ip(),
                            self.config.max_per_ip
                        );
                        return self.error(from, ErrorCode::Full, Uuid::nil(), message);
                    }
                    self.per_ip.insert(from.ip(), ip + 1);
                    self.names.insert(key, from);
                    self.clients.insert(
                        from,
                        Session {
                            name: name.clone(),
                            token: Token::random(),
                            instance,
                            next_csn: 1,
                            ahead: BTreeMap::new(),
                            last_heard: now,
                            messages: Bucket::new(self.config.rate, self.config.burst, now),
                            requests: Bucket::new(
                                self.config.request_rate,
                                2.0 * self.config.request_rate,
                                now,
                            ),
                            told_slow: false,
                            told_busy: false,
                        },
                    );
                    let presence = Packet::Presence {
                        joined: true,
                        reason: LeaveReason::Quit,
                        name: name.clone(),
                    };
                    self.broadcast(Some(from), &presence);
                }
            }
        }
        // The name as the session has it (a moved session keeps its spelling).
        let Some((token, name)) = self.clients.get_mut(&from).map(|mut s| {
            s.last_heard = now;
            (s.token, s.name.clone())
        }) else {
            return;
        };
        let welcome = Packet::Welcome {
            token,
            name,
            latest: self.committed,
            timeout_ms: u32::try_from(self.config.timeout.as_millis()).unwrap_or(u32::MAX),
        };
        self.reply(from, &welcome);
        self.history(from, 0, 0, history);
    }

    /// Takes one of the IP address's join tokens, or tells it to slow down (once an episode, as
    /// for messages: see `send`). A cookie is good for ten seconds: without this, one address
    /// could join again and again, with new instances or leaving in between, each JOIN a
    /// presence broadcast to the whole room and a join history of up to 1000 messages that no
    /// request rate limited (100 JOINs of 44 bytes made 9950 datagrams to a room of 50 and
    /// 48 MB of history for the address).
    fn join_allowed(&mut self, now: Instant, from: SocketAddr) -> bool {
        let (rate, burst) = (self.config.request_rate, self.config.max_per_ip as f64);
        let (bucket, told) = self
            .joins
            .entry(from.ip())
            .or_insert_with(|| (Bucket::new(rate, burst.max(1.0), now), false));
        if bucket.is_full(now) {
            *told = false;
        }
        if bucket.take(now) {
            return true;
        }
        let tell = !std::mem::replace(told, true);
        self.stats.rate_limited += 1;
        if tell {
            let message = format!("too many joins from {}: wait a moment", from.ip());
            self.error(from, ErrorCode::RateLimited, Uuid::nil(), message);
        } else {
            self.dropped(from, "too many joins".into());
        }
        false
    }

    /// Checks that `from` has a session and `token` is its token; refreshes it if so.
    fn authorise(&mut self, now: Instant, from: SocketAddr, token: &Token, id: Uuid) -> bool {
        if let Some(mut s) = self.clients.get_mut(&from)
            && s.token.matches(token)
        {
            s.last_heard = now;
            return true;
        }
        self.stats.unauthorised += 1;
        if self.clients.contains_key(&from) {
            // The address has a session and this is not its token: someone else wrote it
            // (a spoofed source). The client itself has nothing to learn from it.
            self.dropped(from, "wrong session token".into());
            return false;
        }
        let message = "not joined: join again".to_owned();
        self.error(from, ErrorCode::NotJoined, id, message);
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        now: Instant,
        wall: Millis,
        from: SocketAddr,
        csn: u64,
        base: u64,
        id: Uuid,
        text: String,
    ) {
        if base <= csn {
            self.skip_to(from, base);
        }
        let Some(expected) = self.clients.get(&from).map(|s| s.next_csn) else {
            return;
        };
        if csn > expected {
            // An earlier message of this sender is missing: this one waits for it (within
            // the window, and while the relay's memory for waiting messages lasts); if it
            // cannot wait, it is dropped and comes again.
            self.stats.out_of_order += 1;
            if csn - expected <= REORDER_WINDOW
                && self.ahead_bytes + text.len() <= MAX_AHEAD_BYTES
                && let Some(mut s) = self.clients.get_mut(&from)
                && !s.ahead.contains_key(&csn)
            {
                self.ahead_bytes += text.len();
                s.ahead.insert(csn, (id, text));
            }
            return;
        }
        if csn < expected {
            // A retransmission of a message this session already handed in.
            self.stats.duplicates += 1;
            if let Some(&(seq, time)) = self.ids.get(&id) {
                self.ack_again(from, id, csn, seq, time);
            }
            return;
        }
        // A copy of this message may wait in the buffer, put back there when the rate stopped
        // it: this one takes its turn, so the copy goes (left, it stayed there for good).
        if let Some(mut s) = self.clients.get_mut(&from)
            && let Some((_, copy)) = s.ahead.remove(&csn)
        {
            self.ahead_bytes -= copy.len();
        }
        let (mut csn, mut id, mut text) = (csn, id, text);
        let mut first = true;
        // An episode of sending too fast ends when the sender has kept to the rate long enough
        // to have its whole burst again. (Ended by any message taken, it was told again after
        // every message taken at the rate: 20 ERRORs a second under a steady flood, and a
        // notice each for the user of a client pasting a long text.)
        if let Some(mut s) = self.clients.get_mut(&from)
            && s.messages.is_full(now)
        {
            s.told_slow = false;
        }
        loop {
            let allowed = self
                .clients
                .get_mut(&from)
                .is_some_and(|mut s| s.messages.take(now));
            if !allowed {
                // Too fast: the message waits (or, just arrived, comes again later) and the
                // sender is told once an episode.
                self.stats.rate_limited += 1;
                let tell = self
                    .clients
                    .get_mut(&from)
                    .is_some_and(|mut s| !std::mem::replace(&mut s.told_slow, true));
                if tell {
                    let message = format!(
                        "too many messages: the relay takes {} a second ({} at once); the rest wait",
                        self.config.rate, self.config.burst
                    );
                    self.error(from, ErrorCode::RateLimited, id, message);
                }
                if !first && let Some(mut s) = self.clients.get_mut(&from) {
                    self.ahead_bytes += text.len();
                    s.ahead.insert(csn, (id, text));
                }
                break;
            }
            first = false;
            self.take_in_turn(wall, from, csn, id, text);
            // Messages that arrived ahead of this one and waited for it follow it now.
            let next = self.clients.get_mut(&from).and_then(|mut s| {
                let next = s.next_csn;
                s.ahead.remove(&next).map(|(id, text)| (next, id, text))
            });
            let Some(next) = next else { break };
            self.ahead_bytes -= next.2.len();
            (csn, id, text) = next;
        }
    }

    /// The client saw every csn below `base` acknowledged: whatever the session still waits
    /// for below it is stored (perhaps in an earlier session), so it waits no more.
    fn skip_to(&mut self, from: SocketAddr, base: u64) {
        if let Some(mut s) = self.clients.get_mut(&from)
            && base > s.next_csn
        {
            s.next_csn = base;
            let keep = s.ahead.split_off(&base);
            let freed: usize = s.ahead.values().map(|(_, t)| t.len()).sum();
            s.ahead = keep;
            self.ahead_bytes -= freed;
        }
    }

    /// Takes the message with the csn the session expects.
    fn take_in_turn(&mut self, wall: Millis, from: SocketAddr, csn: u64, id: Uuid, text: String) {
        let Some(sender) = self.clients.get_mut(&from).map(|mut s| {
            s.next_csn += 1;
            s.name.clone()
        }) else {
            return;
        };
        if let Some(&(seq, time)) = self.ids.get(&id) {
            // Stored before (in an earlier session, say): acknowledged again, stored once.
            self.stats.duplicates += 1;
            return self.ack_again(from, id, csn, seq, time);
        }
        if let Err(e) = check_text(&text) {
            self.stats.refused += 1;
            self.remember(id, REFUSED, Millis(0));
            return self.error(from, ErrorCode::BadText, id, e.to_string());
        }
        let time = wall.max(self.last_time);
        self.last_time = time;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.remember(id, seq, time);
        self.pending.push(Pending {
            message: Message {
                seq,
                id,
                from: sender,
                text,
                time,
            },
            sender: from,
            csn,
        });
    }

    /// Answers a retransmission of a message handled before: its acknowledgement (after the
    /// commit, if it is not durable yet), or its refusal.
    fn ack_again(&mut self, to: SocketAddr, id: Uuid, csn: u64, seq: u64, time: Millis) {
        if seq == REFUSED {
            let message = "the message was refused: 1 to 1000 bytes, no control characters but tab";
            return self.error(to, ErrorCode::BadText, id, message.to_owned());
        }
        let ack = Packet::Ack { id, csn, seq, time };
        if seq > self.committed {
            self.held_acks.push((to, ack));
        } else {
            self.reply(to, &ack);
        }
    }

    fn history(&mut self, to: SocketAddr, req: u32, from: u64, count: u16) {
        let count = u64::from(count.min(MAX_HISTORY_REQUEST));
        let (first, last) = if count == 0 || self.committed == 0 {
            (0, 0)
        } else if from == 0 {
            (
                self.committed.saturating_sub(count - 1).max(1),
                self.committed,
            )
        } else if from > self.committed {
            (0, 0)
        } else {
            (from, self.committed.min(from + count - 1))
        };
        if first == 0 {
            return self.send_pages(to, req, 0, 0, &[]);
        }
        match self.recent.front() {
            Some(oldest) if oldest.seq <= first => {
                let start = (first - oldest.seq) as usize;
                let end = (last - oldest.seq) as usize;
                let messages: Vec<Message> = self.recent.range(start..=end).cloned().collect();
                self.send_pages(to, req, first, last, &messages);
            }
            _ => self.reads.push_back(LogRead {
                to,
                req,
                first,
                last,
            }),
        }
    }

    fn send_pages(&mut self, to: SocketAddr, req: u32, first: u64, last: u64, all: &[Message]) {
        let pages = paginate(all, HISTORY_HEADER);
        if pages.is_empty() {
            let page = Packet::HistoryPage {
                req,
                first,
                last,
                messages: Vec::new(),
            };
            return self.reply(to, &page);
        }
        for messages in pages {
            let page = Packet::HistoryPage {
                req,
                first,
                last,
                messages: messages.to_vec(),
            };
            self.reply(to, &page);
        }
    }

    fn who(&mut self, to: SocketAddr, req: u32) {
        let mut names: Vec<String> = self.clients.iter().map(|c| c.name.clone()).collect();
        names.sort_by_key(|n| name_key(n));
        let total = u16::try_from(names.len()).unwrap_or(u16::MAX);
        let mut page: Vec<String> = Vec::new();
        let mut used = NAMES_HEADER;
        for name in names.into_iter().take(usize::from(total)) {
            if !page.is_empty()
                && (used + 1 + name.len() > crate::wire::MAX_DATAGRAM || page.len() == 255)
            {
                let names = std::mem::take(&mut page);
                self.reply(to, &Packet::Names { req, total, names });
                used = NAMES_HEADER;
            }
            used += 1 + name.len();
            page.push(name);
        }
        self.reply(
            to,
            &Packet::Names {
                req,
                total,
                names: page,
            },
        );
    }

    fn remove(&mut self, addr: SocketAddr, reason: LeaveReason) {
        if let Some((_, session)) = self.clients.remove(&addr) {
            self.names.remove(&name_key(&session.name));
            self.forget_ip(addr.ip());
            self.ahead_bytes -= session.ahead.values().map(|(_, t)| t.len()).sum::<usize>();
            let presence = Packet::Presence {
                joined: false,
                reason,
                name: session.name,
            };
            self.broadcast(Some(addr), &presence);
        }
    }

    fn forget_ip(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Sends each joined client the messages of `batch` that it did not send itself.
    fn fan_out(&mut self, batch: &[Pending]) {
        let senders: Vec<SocketAddr> = batch.iter().map(|p| p.sender).collect();
        let everyone: Vec<Message> = batch.iter().map(|p| p.message.clone()).collect();
        // Encoded once for every recipient that sent nothing in this batch.
        let shared = encode_messages(&everyone);
        let recipients: Vec<SocketAddr> = self.clients.iter().map(|c| *c.key()).collect();
        for to in recipients {
            if senders.contains(&to) {
                let others: Vec<Message> = batch
                    .iter()
                    .filter(|p| p.sender != to)
                    .map(|p| p.message.clone())
                    .collect();
                for bytes in encode_messages(&others) {
                    self.transmits.push_back(Transmit { to, bytes });
                }
            } else {
                for bytes in &shared {
                    self.transmits.push_back(Transmit {
                        to,
                        bytes: bytes.clone(),
                    });
                }
            }
        }
    }

    /// Sends `packet` to every joined client but `except`.
    fn broadcast(&mut self, except: Option<SocketAddr>, packet: &Packet) {
        let bytes: Arc<[u8]> = packet.encode().into();
        let recipients: Vec<SocketAddr> = self
            .clients
            .iter()
            .map(|c| *c.key())
            .filter(|a| Some(*a) != except)
            .collect();
        for to in recipients {
            self.transmits.push_back(Transmit {
                to,
                bytes: bytes.clone(),
            });
        }
    }

    fn reply(&mut self, to: SocketAddr, packet: &Packet) {
        let bytes = packet.encode();
        if let Some((addr, left)) = &mut self.budget
            && *addr == to
        {
            if bytes.len() > *left {
                self.stats.over_budget += 1;
                return;
            }
            *left -= bytes.len();
        }
        self.transmits.push_back(Transmit {
            to,
            bytes: bytes.into(),
        });
    }

    fn error(&mut self, to: SocketAddr, code: ErrorCode, id: Uuid, message: String) {
        self.reply(to, &Packet::Error { code, id, message });
    }

    fn remember(&mut self, id: Uuid, seq: u64, time: Millis) {
        self.ids.insert(id, (seq, time));
        self.id_order.push_back(id);
        while self.id_order.len() > self.config.dedup {
            if let Some(old) = self.id_order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }

    fn keep(&mut self, m: Message) {
        self.recent.push_back(m);
        while self.recent.len() > self.config.cache {
            self.recent.pop_front();
        }
    }
}

/// The datagrams carrying `messages` as live fan-out.
fn encode_messages(messages: &[Message]) -> Vec<Arc<[u8]>> {
    paginate(messages, MESSAGES_HEADER)
        .into_iter()
        .map(|page| {
            Packet::Messages {
                messages: page.to_vec(),
            }
            .encode()
            .into()
        })
        .collect()
}
