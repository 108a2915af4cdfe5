//! The simulated network and clock that `tests/sim.rs` drives one relay and its clients with.
//!
//! Datagrams in flight wait in a queue ordered by delivery time; time jumps from one event to
//! the next (an arrival, a client's timeout, the relay's tick, the relay's log flush). The relay's
//! log is a `Vec<Message>`. Clients can be frozen, made deaf or mute, moved to a new address
//! ([`Net::rebind`]) or replaced by a new process on theirs ([`Net::restart_client`]); forged
//! datagrams can be handed to a client ([`Net::inject`]) or to the relay
//! ([`Net::inject_to_relay`]), or anything at all from any address ([`Net::inject_raw`]: what
//! the relay answers an address that is no client's is counted in [`Net::strangers`]). The log
//! can fail for a while ([`Net::store_fails`]), and every datagram the relay sends is kept in
//! [`Net::from_relay`]. Everything random comes from one seed, each link drawing from its
//! own stream, so a failing run is repeated with `URC_SIM_SEED=<seed>`; the seed, the conditions
//! and the last datagrams are printed when a test fails, with `URC_SIM_DUMP=<client name>` all
//! that client received and showed, and with `URC_SIM_TRACE=1` every datagram as it goes.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use urc::client::{self, Client, Event};
use urc::proto::message::{MAX_TEXT_BYTES, Message, Millis, name_key, split_text};
use urc::proto::wire::{ErrorCode, MAX_DATAGRAM, Packet, Proof, Token};
use urc::relay::{self, Relay};
use uuid::Uuid;

/// How often the shell calls [`Relay::handle_tick`].
pub const TICK: Duration = Duration::from_secs(1);
/// Wall-clock time at the simulation's start (2026-11-25T08:00:00Z), for message timestamps.
const WALL_EPOCH: i64 = 1_795_593_600_000;
/// Datagrams kept for the report printed when a test fails.
const TRACE_LEN: usize = 60;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The seeds a test runs with: `default`, or those of `URC_SIM_SEED` when it is set, one seed
/// (`7`) or a range (`0..500`, to search further than the defaults do).
pub fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    let Ok(s) = std::env::var("URC_SIM_SEED") else {
        return default.collect();
    };
    let number = |s: &str| -> u64 { s.trim().parse().expect("URC_SIM_SEED is n or a..b") };
    match s.split_once("..") {
        Some((a, b)) => (number(a)..number(b)).collect(),
        None => vec![number(&s)],
    }
}

/// SplitMix64: tiny, and random enough to decide the fate of datagrams.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True `p` times in a hundred.
    pub fn percent(&mut self, p: u32) -> bool {
        self.next_u64() % 100 < u64::from(p)
    }

    /// Uniform in `0..=d`, to the microsecond.
    pub fn upto(&mut self, d: Duration) -> Duration {
        Duration::from_micros(self.range(0, d.as_micros() as u64))
    }
}

/// What the network does to every datagram, in both directions.
#[derive(Debug, Clone, Copy)]
pub struct Conditions {
    /// One-way delay every datagram takes at least (not zero).
    pub delay: Duration,
    /// Extra delay, uniform in `0..=jitter`: datagrams overtake each other.
    pub jitter: Duration,
    /// Percent of datagrams lost.
    pub loss: u32,
    /// Percent of datagrams delivered twice, the copy with a delay of its own.
    pub duplicate: u32,
}

impl Conditions {
    /// 10 ms each way, nothing lost, nothing reordered.
    pub const QUIET: Conditions = Conditions {
        delay: Duration::from_millis(10),
        jitter: Duration::ZERO,
        loss: 0,
        duplicate: 0,
    };
}

/// How the relay stops before it starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// It writes what it accepted, then stops.
    Clean,
    /// It dies before writing what it accepted (nothing of that was acknowledged).
    Crash,
}

/// One direction between a client and the relay.
#[derive(Debug)]
struct Link {
    /// Tie-breaker in the queue, so that equal delivery times keep a fixed order.
    id: usize,
    /// This link's own random stream: what happens on one link never shifts another's.
    rng: Rng,
    /// Datagrams put on the link so far.
    count: u64,
}

/// A simulated client and everything it showed and received.
#[derive(Debug)]
pub struct Node {
    pub client: Client,
    pub addr: SocketAddr,
    /// Driven; a frozen node neither hears, speaks, nor sees time pass.
    pub live: bool,
    /// What the client showed, with when.
    pub events: Vec<(Instant, Event)>,
    /// Every packet that reached it, with when.
    pub received: Vec<(Instant, Packet)>,
    /// The messages `send` queued: id and text, in order.
    pub sent: Vec<(Uuid, String)>,
    /// Deaf: everything the relay sends it is lost (it still speaks and sees time pass).
    pub deaf: bool,
    /// Mute: everything it sends the relay is lost (it still hears and sees time pass).
    pub mute: bool,
    /// How many of the next WELCOMEs to this node are lost.
    pub lose_welcomes: u32,
    /// Extra delay of the WELCOMEs to this node, so that what the relay sends after them
    /// overtakes them.
    pub welcome_delay: Duration,
    /// When a datagram of this node last reached the relay.
    pub last_heard_by_relay: Option<Instant>,
    /// Every packet of this node that reached the relay (injected ones included), with when.
    pub reached_relay: Vec<(Instant, Packet)>,
    up: Link,
    down: Link,
}

/// A chat message as a client showed it.
#[derive(Debug, Clone)]
pub struct Shown {
    pub at: Instant,
    pub message: Message,
    pub history: bool,
    pub own: bool,
}

impl Node {
    /// The chat messages shown, in the order shown.
    pub fn shown(&self) -> Vec<Shown> {
        self.events
            .iter()
            .filter_map(|(at, e)| match e {
                Event::Message {
                    message,
                    history,
                    own,
                } => Some(Shown {
                    at: *at,
                    message: message.clone(),
                    history: *history,
                    own: *own,
                }),
                _ => None,
            })
            .collect()
    }

    /// The live (not history) messages shown.
    pub fn live(&self) -> Vec<Shown> {
        self.shown().into_iter().filter(|s| !s.history).collect()
    }

    /// The history messages shown.
    pub fn history(&self) -> Vec<Shown> {
        self.shown().into_iter().filter(|s| s.history).collect()
    }

    /// The instance id this client sends in its JOINs (the proof of answers to them).
    pub fn instance(&self) -> Uuid {
        self.reached_relay
            .iter()
            .find_map(|(_, p)| match p {
                Packet::Join { instance, .. } => Some(*instance),
                _ => None,
            })
            .expect("the client joined")
    }

    /// The welcomes received: token and the room's latest seq then, duplicates included.
    pub fn welcomes(&self) -> Vec<(Token, u64)> {
        self.received
            .iter()
            .filter_map(|(_, p)| match p {
                Packet::Welcome { token, latest, .. } => Some((*token, *latest)),
                _ => None,
            })
            .collect()
    }

    /// The tokens of the sessions the relay welcomed this client into, each once: a WELCOME
    /// the network duplicated, or one that answers a rejoin into the same session, adds none.
    pub fn tokens(&self) -> HashSet<Token> {
        self.welcomes().iter().map(|(token, _)| *token).collect()
    }

    /// The ids of the ERRORs with `code` that reached this client, in order (nil for an
    /// error about no message in particular).
    pub fn errors_received(&self, code: ErrorCode) -> Vec<Uuid> {
        self.received
            .iter()
            .filter_map(|(_, p)| match p {
                Packet::Error { code: c, id, .. } if *c == code => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// The seq the first welcome announced: live delivery starts after it.
    pub fn joined_at(&self) -> u64 {
        self.welcomes().first().expect("welcomed").1
    }

    /// When an acknowledgement of `id` first arrived.
    pub fn ack_time(&self, id: Uuid) -> Option<Instant> {
        self.received.iter().find_map(|(at, p)| match p {
            Packet::Ack { acks } if acks.iter().any(|a| a.id == id) => Some(*at),
            _ => None,
        })
    }
}

/// A datagram in flight.
#[derive(Debug)]
struct Flight {
    /// The client it goes to, or `None` for the relay.
    to: Option<usize>,
    /// The client it comes from, or `None` for the relay.
    from: Option<usize>,
    /// The client's end when it was sent: the source address of a datagram to the relay (what
    /// the relay sees, even if the client has moved since), the destination of one from it
    /// (whoever has that address when it arrives gets it, or nobody).
    addr: SocketAddr,
    bytes: Arc<[u8]>,
}

/// A datagram for the failure report.
#[derive(Debug)]
struct Traced {
    at: Instant,
    from: Option<usize>,
    to: Option<usize>,
    /// The address that is no client's at the end that `from` or `to` calls the relay's,
    /// and whether the datagram came from it (see [`Net::inject_raw`]).
    stranger: Option<(SocketAddr, bool)>,
    bytes: Arc<[u8]>,
    fate: &'static str,
}

/// What the relay and an address that is no client's exchanged (see [`Net::inject_raw`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes the relay received from the address.
    pub received: usize,
    /// Bytes the relay sent to it.
    pub sent: usize,
    /// Datagrams the relay sent to it.
    pub datagrams_sent: usize,
}

/// One relay, its log, its clients, the datagrams between them, and the clock.
#[derive(Debug)]
pub struct Net {
    pub seed: u64,
    pub cond: Conditions,
    /// Time zero: the one real clock read.
    epoch: Instant,
    pub now: Instant,
    pub relay: Relay,
    pub relay_config: relay::Config,
    /// The relay's log.
    pub store: Vec<Message>,
    /// Messages the log held before the simulation started.
    pub preloaded: usize,
    pub nodes: Vec<Node>,
    /// Which client has each address now.
    by_addr: HashMap<SocketAddr, usize>,
    /// Addresses clients left (see [`Net::rebind`]): what the relay sends there is lost.
    left_addrs: HashMap<SocketAddr, usize>,
    /// Datagrams the relay sent to an address nobody has any more.
    pub stale: u64,
    /// Datagrams in flight by (delivery time, link, count on the link).
    queue: BTreeMap<(Instant, usize, u64), Flight>,
    next_tick: Instant,
    /// How long accepted messages wait before the log is written and committed, like a shell
    /// that syncs the log in batches; zero commits at the end of every instant.
    pub flush_delay: Duration,
    next_flush: Option<Instant>,
    /// Seed of the next link's random stream.
    link_seeds: Rng,
    /// History answers served from the log rather than the relay's cache.
    pub log_reads: u64,
    /// Largest datagram the relay sent.
    pub largest_from_relay: usize,
    /// A hash of every datagram's fate (when, between whom, type, size): equal for equal runs.
    pub fingerprint: u64,
    /// Steps taken at the current instant, to catch a timeout that never moves on.
    spins: u32,
    trace: VecDeque<Traced>,
    /// Print every datagram as it goes (`URC_SIM_TRACE` set).
    print_trace: bool,
    /// While set, writing the log fails (a full disk): the relay's batch is aborted.
    pub store_fails: bool,
    /// Batches the relay aborted because the log could not be written.
    pub aborts: u64,
    /// Every datagram the relay sent, with when and to where, before the network's fate.
    pub from_relay: Vec<(Instant, SocketAddr, Packet)>,
    /// What the relay exchanged with addresses that are no client's (see [`Net::inject_raw`]).
    pub strangers: HashMap<SocketAddr, Traffic>,
}

impl Net {
    pub fn new(seed: u64, cond: Conditions, config: relay::Config) -> Self {
        Net::with_log(seed, cond, config, Vec::new())
    }

    /// A net that loses and reorders nothing ([`Conditions::QUIET`]), with a relay of the
    /// default configuration and an empty log: the room most regressions start from.
    pub fn quiet(seed: u64) -> Self {
        Net::new(seed, Conditions::QUIET, relay::Config::default())
    }

    /// A net whose relay starts from `log`, messages stored before the simulation.
    pub fn with_log(seed: u64, cond: Conditions, config: relay::Config, log: Vec<Message>) -> Self {
        assert!(cond.delay > Duration::ZERO, "a datagram takes time");
        let epoch = Instant::now();
        Net {
            seed,
            cond,
            epoch,
            now: epoch,
            relay: Relay::new(config.clone(), log.clone()),
            relay_config: config,
            preloaded: log.len(),
            store: log,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            left_addrs: HashMap::new(),
            stale: 0,
            queue: BTreeMap::new(),
            next_tick: epoch + TICK,
            flush_delay: Duration::ZERO,
            next_flush: None,
            link_seeds: Rng::new(seed),
            log_reads: 0,
            largest_from_relay: 0,
            fingerprint: 0xcbf2_9ce4_8422_2325,
            spins: 0,
            trace: VecDeque::new(),
            print_trace: std::env::var_os("URC_SIM_TRACE").is_some(),
            store_fails: false,
            aborts: 0,
            from_relay: Vec::new(),
            strangers: HashMap::new(),
        }
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.epoch
    }

    fn wall(&self) -> Millis {
        Millis(WALL_EPOCH + self.elapsed().as_millis() as i64)
    }

    fn link(&mut self, id: usize) -> Link {
        Link {
            id,
            rng: Rng::new(self.link_seeds.next_u64()),
            count: 0,
        }
    }

    /// A new client, at an address of its own, that starts joining now.
    pub fn join(&mut self, name: &str, history: u16) -> usize {
        let i = self.nodes.len();
        let addr = SocketAddr::from((
            Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250) as u8 + 1),
            4000,
        ));
        self.start_client(name, history, addr)
    }

    /// A new client at `addr` (nobody's yet; several clients behind one NAT share its IP),
    /// that starts joining now.
    pub fn join_at(&mut self, name: &str, history: u16, addr: SocketAddr) -> usize {
        assert!(
            !self.by_addr.contains_key(&addr) && !self.left_addrs.contains_key(&addr),
            "{addr} is taken"
        );
        self.start_client(name, history, addr)
    }

    /// Client `i`'s process dies (it is frozen, what it had in flight stays in flight) and a
    /// new one, with the same name and a new instance, starts at its address now; returns the
    /// new client. Datagrams to that address, late ones included, reach the new process.
    pub fn restart_client(&mut self, i: usize, history: u16) -> usize {
        self.freeze(i);
        let name = self.nodes[i].client.name().to_owned();
        let addr = self.nodes[i].addr;
        if self.print_trace {
            eprintln!("{:>10.3?} {name} restarts", self.elapsed());
        }
        self.start_client(&name, history, addr)
    }

    /// Client `i`'s datagrams come from a new address from now on (a NAT rebinding, a new
    /// network), the client none the wiser; returns the address. What the relay sends to the
    /// old address is lost, datagrams already in flight to it included; those already in
    /// flight from it reach the relay from it.
    pub fn rebind(&mut self, i: usize) -> SocketAddr {
        let old = self.nodes[i].addr;
        let port = 4001 + u16::try_from(self.left_addrs.len()).expect("few rebindings");
        let new = SocketAddr::new(old.ip(), port);
        if self.print_trace {
            eprintln!(
                "{:>10.3?} {} moves to {new}",
                self.elapsed(),
                self.end_name(Some(i))
            );
        }
        self.by_addr.remove(&old);
        self.left_addrs.insert(old, i);
        self.by_addr.insert(new, i);
        self.nodes[i].addr = new;
        new
    }

    fn start_client(&mut self, name: &str, history: u16, addr: SocketAddr) -> usize {
        let i = self.nodes.len();
        let config = client::Config {
            name: name.to_owned(),
            history,
            since: None,
        };
        let up = self.link(2 * i);
        let down = self.link(2 * i + 1);
        self.nodes.push(Node {
            client: Client::new(config, self.now),
            addr,
            live: true,
            events: Vec::new(),
            received: Vec::new(),
            sent: Vec::new(),
            last_heard_by_relay: None,
            reached_relay: Vec::new(),
            deaf: false,
            mute: false,
            lose_welcomes: 0,
            welcome_delay: Duration::ZERO,
            up,
            down,
        });
        self.by_addr.insert(addr, i);
        self.drain_client(i);
        i
    }

    /// Queues `text` at client `i`; returns the ids of its messages.
    pub fn send(&mut self, i: usize, text: &str) -> Vec<Uuid> {
        let now = self.now;
        let node = &mut self.nodes[i];
        let ids = node.client.send(now, text).expect("valid text");
        let pieces = split_text(text, MAX_TEXT_BYTES);
        assert_eq!(ids.len(), pieces.len());
        node.sent
            .extend(ids.iter().zip(pieces).map(|(id, p)| (*id, p.to_owned())));
        self.drain_client(i);
        ids
    }

    pub fn request_history(&mut self, i: usize, count: u16) {
        self.nodes[i].client.request_history(self.now, count);
        self.drain_client(i);
    }

    pub fn request_who(&mut self, i: usize) {
        self.nodes[i].client.request_who(self.now);
        self.drain_client(i);
    }

    pub fn leave(&mut self, i: usize) {
        self.nodes[i].client.leave(self.now);
        self.drain_client(i);
    }

    /// Hands client `i` a datagram as if from the relay, now: a late or forged one.
    pub fn inject(&mut self, i: usize, packet: &Packet, proof: Proof) {
        // Stamped as the relay would (see `Proof`): without it the client drops the datagram
        // and the test would exercise nothing.
        let mut bytes = packet.encode();
        proof.write(&mut bytes);
        let bytes: Arc<[u8]> = bytes.into();
        self.record(None, Some(i), &bytes, "injected");
        let node = &mut self.nodes[i];
        node.received.push((self.now, packet.clone()));
        node.client.handle(self.now, &bytes);
        self.drain_client(i);
    }

    /// Hands the relay a datagram as if from client `i`'s address, now: a forged one, or one
    /// no client of this crate sends.
    pub fn inject_to_relay(&mut self, i: usize, packet: &Packet) {
        let bytes: Arc<[u8]> = packet.encode().into();
        let addr = self.nodes[i].addr;
        self.relay_receive(i, addr, &bytes, "injected");
        self.drain_relay();
    }

    /// Hands the relay `bytes` from `from`, now: anything at all (garbage, a forged packet), from
    /// any address, a client's or not. What the relay sends back to an address that is no
    /// client's goes nowhere and is counted, with what came from there, in [`Net::strangers`].
    pub fn inject_raw(&mut self, from: SocketAddr, bytes: &[u8]) {
        let bytes: Arc<[u8]> = bytes.into();
        match self.by_addr.get(&from).copied() {
            Some(i) => self.record(Some(i), None, &bytes, "forged"),
            None => {
                self.strangers.entry(from).or_default().received += bytes.len();
                self.record_stranger(from, true, &bytes, "forged");
            }
        }
        self.relay.handle(self.now, self.wall(), from, &bytes);
        if self.relay.has_appends() && self.next_flush.is_none() {
            self.next_flush = Some(self.now + self.flush_delay);
        }
        self.drain_relay();
    }

    /// Client `i` stops: it hears nothing, sends nothing and sees no time pass.
    pub fn freeze(&mut self, i: usize) {
        self.nodes[i].live = false;
    }

    /// The relay process restarts: a new relay from the log's tail; what was in flight stays
    /// in flight, the clients keep running.
    pub fn restart_relay(&mut self, how: Restart) {
        match how {
            Restart::Clean => self.commit(),
            Restart::Crash => self.next_flush = None,
        }
        if self.print_trace {
            eprintln!("{:>10.3?} relay restarts ({how:?})", self.elapsed());
        }
        let keep = self.relay_config.dedup.max(self.relay_config.cache);
        let tail = self.store[self.store.len().saturating_sub(keep)..].to_vec();
        self.relay = Relay::new(self.relay_config.clone(), tail);
    }

    /// Whether the relay has a session named `name`.
    pub fn relay_has(&self, name: &str) -> bool {
        self.relay.clients().iter().any(|c| c.name == name)
    }

    /// Every client, running or not, is in the room.
    pub fn all_joined(&self) -> bool {
        self.nodes.iter().all(|n| n.client.is_joined())
    }

    /// The ids of the ERRORs with `code` the relay sent to `to`, in order, whatever the network
    /// did with them then (nil for an error about no message in particular).
    pub fn errors_sent_to(&self, to: SocketAddr, code: ErrorCode) -> Vec<Uuid> {
        self.from_relay
            .iter()
            .filter_map(|(_, addr, p)| match p {
                Packet::Error { code: c, id, .. } if *addr == to && *c == code => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// Every running client is in the room, owes nothing, waits for nothing and has shown
    /// everything the relay stored.
    pub fn settled(&self) -> bool {
        self.next_flush.is_none()
            && self
                .nodes
                .iter()
                .filter(|n| n.live && !n.client.is_closed())
                .all(|n| {
                    n.client.is_joined()
                        && n.client.is_idle()
                        && n.client.delivered() == self.relay.latest()
                })
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.next_event() <= end {
            self.step();
        }
        self.now = self.now.max(end);
    }

    /// Runs until `done`; fails if that takes longer than `limit` of simulated time.
    pub fn run_until(&mut self, limit: Duration, what: &str, done: impl Fn(&Net) -> bool) {
        let end = self.now + limit;
        while !done(self) {
            assert!(
                self.next_event() <= end,
                "not {what} after {limit:?} (at {:?}); {}",
                self.elapsed(),
                self.status()
            );
            self.step();
        }
    }

    /// One line: the relay's counts, then where each client stands.
    pub fn status(&self) -> String {
        let mut s = format!(
            "relay latest {} clients {} stats {:?};",
            self.relay.latest(),
            self.relay.clients().len(),
            self.relay.stats()
        );
        for n in &self.nodes {
            s += &format!(
                " [{} live={} joined={} closed={} unacked={} delivered={}]",
                n.client.name(),
                n.live,
                n.client.is_joined(),
                n.client.is_closed(),
                n.client.unacked(),
                n.client.delivered()
            );
        }
        s
    }

    fn next_event(&self) -> Instant {
        let mut t = self.next_tick;
        if let Some((k, _)) = self.queue.first_key_value() {
            t = t.min(k.0);
        }
        if let Some(f) = self.next_flush {
            t = t.min(f);
        }
        for n in self.nodes.iter().filter(|n| n.live) {
            if let Some(x) = n.client.poll_timeout() {
                t = t.min(x);
            }
        }
        t
    }

    /// Advances to the next event and does everything due then.
    pub fn step(&mut self) {
        let t = self.next_event().max(self.now);
        if t == self.now {
            self.spins += 1;
            assert!(
                self.spins < 10_000,
                "stuck at {:?}: {}",
                self.elapsed(),
                self.status()
            );
        } else {
            self.spins = 0;
        }
        self.now = t;
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > t {
                break;
            }
            let flight = entry.remove();
            self.deliver(flight);
        }
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            if node.live && node.client.poll_timeout().is_some_and(|x| x <= t) {
                node.client.handle_timeout(t);
                self.drain_client(i);
            }
        }
        if t >= self.next_tick {
            self.relay.handle_tick(t, self.wall());
            self.next_tick += TICK;
            // The tick may take messages that waited for their sender's allowance.
            if self.relay.has_appends() && self.next_flush.is_none() {
                self.next_flush = Some(t + self.flush_delay);
            }
        }
        if self.next_flush.is_some_and(|f| f <= t) {
            self.commit();
        }
        self.drain_relay();
    }

    fn relay_receive(&mut self, i: usize, from: SocketAddr, bytes: &Arc<[u8]>, fate: &'static str) {
        self.record(Some(i), None, bytes, fate);
        let node = &mut self.nodes[i];
        node.last_heard_by_relay = Some(self.now);
        let packet = Packet::decode(bytes).expect("a valid datagram");
        node.reached_relay.push((self.now, packet));
        self.relay.handle(self.now, self.wall(), from, bytes);
        if self.relay.has_appends() && self.next_flush.is_none() {
            self.next_flush = Some(self.now + self.flush_delay);
        }
    }

    fn deliver(&mut self, f: Flight) {
        match f.to {
            None => {
                let i = f.from.expect("from a client");
                self.relay_receive(i, f.addr, &f.bytes, "delivered");
            }
            Some(_) => {
                let Some(&i) = self.by_addr.get(&f.addr) else {
                    // The client left the address while the datagram was on its way.
                    self.stale += 1;
                    let gone = self.left_addrs.get(&f.addr).copied();
                    return self.record(None, gone, &f.bytes, "lost: stale address");
                };
                if !self.nodes[i].live {
                    return self.record(None, Some(i), &f.bytes, "unheard");
                }
                self.record(None, Some(i), &f.bytes, "delivered");
                let packet = Packet::decode(&f.bytes).expect("the relay sends valid datagrams");
                let node = &mut self.nodes[i];
                node.received.push((self.now, packet));
                node.client.handle(self.now, &f.bytes);
                self.drain_client(i);
            }
        }
    }

    /// Writes what the relay accepted to the log and commits it.
    fn commit(&mut self) {
        self.next_flush = None;
        if self.store_fails {
            self.aborts += 1;
            return self.relay.abort("No space left on device (os error 28)");
        }
        let appends: Vec<Message> = self.relay.appends().cloned().collect();
        for (k, m) in appends.iter().enumerate() {
            let want = (self.store.len() + k) as u64 + 1;
            assert_eq!(m.seq, want, "the relay appends in order");
        }
        self.store.extend(appends);
        self.relay.commit();
    }

    fn drain_relay(&mut self) {
        loop {
            if let Some(read) = self.relay.poll_read() {
                self.log_reads += 1;
                let messages: Vec<Message> = self
                    .store
                    .iter()
                    .filter(|m| read.first <= m.seq && m.seq <= read.last)
                    .cloned()
                    .collect();
                self.relay.serve_read(&read, &messages);
                continue;
            }
            let Some(t) = self.relay.poll_transmit() else {
                break;
            };
            assert!(
                t.bytes.len() <= MAX_DATAGRAM,
                "the relay sent {} bytes",
                t.bytes.len()
            );
            self.largest_from_relay = self.largest_from_relay.max(t.bytes.len());
            let packet = Packet::decode(&t.bytes).expect("the relay sends valid datagrams");
            self.from_relay.push((self.now, t.to, packet.clone()));
            let Some(&i) = self.by_addr.get(&t.to) else {
                if let Some(traffic) = self.strangers.get_mut(&t.to) {
                    traffic.sent += t.bytes.len();
                    traffic.datagrams_sent += 1;
                    self.record_stranger(t.to, false, &t.bytes, "sent to a stranger");
                    continue;
                }
                let gone = *self
                    .left_addrs
                    .get(&t.to)
                    .expect("the relay sends to clients and to who wrote to it only");
                self.stale += 1;
                self.record(None, Some(gone), &t.bytes, "lost: stale address");
                continue;
            };
            if let Packet::Messages { messages } = &packet {
                let me = name_key(self.nodes[i].client.name());
                for m in messages {
                    assert_ne!(
                        name_key(&m.from),
                        me,
                        "the relay sent {} its own message {} as fan-out",
                        self.nodes[i].client.name(),
                        m.seq
                    );
                }
            }
            let node = &mut self.nodes[i];
            let extra = match packet {
                Packet::Welcome { .. } if node.lose_welcomes > 0 => {
                    node.lose_welcomes -= 1;
                    self.record(None, Some(i), &t.bytes, "lost");
                    continue;
                }
                Packet::Welcome { .. } => node.welcome_delay,
                _ => Duration::ZERO,
            };
            self.put(None, Some(i), t.bytes, extra);
        }
    }

    fn drain_client(&mut self, i: usize) {
        let now = self.now;
        while let Some(bytes) = self.nodes[i].client.poll_transmit() {
            assert!(
                bytes.len() <= MAX_DATAGRAM,
                "a client sent {} bytes",
                bytes.len()
            );
            Packet::decode(&bytes).expect("clients send valid datagrams");
            self.put(Some(i), None, bytes.into(), Duration::ZERO);
        }
        let node = &mut self.nodes[i];
        while let Some(e) = node.client.poll_event() {
            node.events.push((now, e));
        }
    }

    /// Puts a datagram on the link between the relay and a client, to meet its fate.
    fn put(&mut self, from: Option<usize>, to: Option<usize>, bytes: Arc<[u8]>, extra: Duration) {
        let i = from.or(to).expect("one end is a client");
        let cond = self.cond;
        let now = self.now;
        let node = &mut self.nodes[i];
        let addr = node.addr;
        if from.is_some() && !node.live {
            return;
        }
        if to.is_some() && node.deaf {
            return self.record(from, to, &bytes, "unheard");
        }
        if from.is_some() && node.mute {
            return self.record(from, to, &bytes, "lost");
        }
        let link = if from.is_some() {
            &mut node.up
        } else {
            &mut node.down
        };
        if link.rng.percent(cond.loss) {
            return self.record(from, to, &bytes, "lost");
        }
        let copies = if link.rng.percent(cond.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = now + cond.delay + extra + link.rng.upto(cond.jitter);
            link.count += 1;
            let flight = Flight {
                to,
                from,
                addr,
                bytes: bytes.clone(),
            };
            self.queue.insert((at, link.id, link.count), flight);
        }
    }

    fn record(
        &mut self,
        from: Option<usize>,
        to: Option<usize>,
        bytes: &Arc<[u8]>,
        fate: &'static str,
    ) {
        self.record_with(from, to, None, bytes, fate);
    }

    /// Records a datagram between the relay and `addr`, an address that is no client's.
    fn record_stranger(
        &mut self,
        addr: SocketAddr,
        inbound: bool,
        bytes: &Arc<[u8]>,
        fate: &'static str,
    ) {
        self.record_with(None, None, Some((addr, inbound)), bytes, fate);
    }

    fn record_with(
        &mut self,
        from: Option<usize>,
        to: Option<usize>,
        stranger: Option<(SocketAddr, bool)>,
        bytes: &Arc<[u8]>,
        fate: &'static str,
    ) {
        let at = (self.now - self.epoch).as_nanos() as u64;
        let ends = (from.map_or(0, |i| i + 1) as u64) << 32 | to.map_or(0, |i| i + 1) as u64;
        let kind = u64::from(bytes.get(2).copied().unwrap_or(0));
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for word in [at, ends, kind, bytes.len() as u64, fate.len() as u64] {
            // FNV-1a over the words.
            h = (h ^ word).wrapping_mul(0x100_0000_01b3);
        }
        // A sum, so that the relay's fan-out order (its client map's order, which differs from
        // run to run) does not count: each link's datagrams meet the same fates regardless.
        self.fingerprint = self.fingerprint.wrapping_add(h);
        if self.print_trace {
            let what = Packet::decode(bytes).map_or_else(|e| e.to_string(), |p| summary(&p));
            let (from, to) = self.ends(from, to, stranger);
            eprintln!(
                "{:>10.3?} {from} -> {to} {fate}: {what}",
                self.now - self.epoch,
            );
        }
        if self.trace.len() == TRACE_LEN {
            self.trace.pop_front();
        }
        self.trace.push_back(Traced {
            at: self.now,
            from,
            to,
            stranger,
            bytes: bytes.clone(),
            fate,
        });
    }

    fn end_name(&self, end: Option<usize>) -> String {
        end.map_or("relay".to_owned(), |i| {
            self.nodes[i].client.name().to_owned()
        })
    }

    /// The names of a datagram's sender and receiver.
    fn ends(
        &self,
        from: Option<usize>,
        to: Option<usize>,
        stranger: Option<(SocketAddr, bool)>,
    ) -> (String, String) {
        match stranger {
            Some((addr, true)) => (format!("stranger {addr}"), "relay".to_owned()),
            Some((addr, false)) => ("relay".to_owned(), format!("stranger {addr}")),
            None => (self.end_name(from), self.end_name(to)),
        }
    }

    /// Checks the log: seqs 1, 2, 3… without a gap, each id once, times never going back.
    pub fn check_store(&self) {
        let mut ids = HashSet::new();
        for (k, m) in self.store.iter().enumerate() {
            assert_eq!(m.seq, k as u64 + 1, "the log's seqs have a gap");
            assert!(
                ids.insert(m.id),
                "message {} is stored twice (again as {})",
                m.id,
                m.seq
            );
        }
        assert!(
            self.store.windows(2).all(|w| w[0].time <= w[1].time),
            "times go back"
        );
    }

    /// Checks that client `i` showed the live stream from its joining through `through`, each
    /// message once, as stored, marked own exactly when it sent it.
    pub fn check_live(&self, i: usize, through: u64) {
        let node = &self.nodes[i];
        let name = node.client.name();
        let live = node.live();
        let from = node.joined_at() + 1;
        let seqs: Vec<u64> = live.iter().map(|s| s.message.seq).collect();
        let want: Vec<u64> = (from..=through).collect();
        if seqs != want {
            let dup = seqs.windows(2).find(|w| w[1] <= w[0]);
            let gap = seqs.windows(2).find(|w| w[1] > w[0] + 1);
            panic!(
                "{name} showed {} live messages where {from}..={through} was due; first repeat {dup:?}, first gap {gap:?}, first {:?}, last {:?}",
                seqs.len(),
                seqs.first(),
                seqs.last()
            );
        }
        let sent: HashSet<Uuid> = node.sent.iter().map(|(id, _)| *id).collect();
        for s in &live {
            let stored = &self.store[s.message.seq as usize - 1];
            assert_eq!(
                &s.message, stored,
                "{name} showed a message unlike the stored one"
            );
            assert_eq!(
                s.own,
                sent.contains(&s.message.id),
                "{name}: own flag of {}",
                s.message.seq
            );
        }
    }

    /// Checks, once every outbox is empty, that every message sent is stored once, with its
    /// text and its sender's name, in the order its sender sent it, and that the log holds
    /// nothing else. A stopped client (frozen, or replaced by [`Net::restart_client`]) may
    /// have taken what was never acknowledged to it down with it.
    pub fn check_sent_are_stored(&self) {
        let by_id: HashMap<Uuid, &Message> = self.store.iter().map(|m| (m.id, m)).collect();
        let mut sent_count = 0;
        for node in &self.nodes {
            let name = node.client.name();
            if node.live {
                assert_eq!(
                    node.client.unacked(),
                    0,
                    "{name} still has messages to send"
                );
            }
            let mut last_seq = 0;
            for (id, text) in &node.sent {
                let Some(m) = by_id.get(id) else {
                    assert!(
                        !node.live && node.ack_time(*id).is_none(),
                        "{name}'s acknowledged message {id} is not stored"
                    );
                    continue;
                };
                assert_eq!(&m.text, text);
                assert_eq!(&m.from, name);
                assert!(
                    m.seq > last_seq,
                    "{name}'s messages are stored out of order"
                );
                last_seq = m.seq;
                sent_count += 1;
            }
        }
        assert_eq!(
            self.store.len() - self.preloaded,
            sent_count,
            "the log holds messages nobody sent (or sent ones twice)"
        );
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        eprintln!(
            "\n=== simulation failed: seed {} (rerun with URC_SIM_SEED={}), at {:?}, {:?}",
            self.seed,
            self.seed,
            self.elapsed(),
            self.cond
        );
        eprintln!("{}", self.status());
        if let Ok(who) = std::env::var("URC_SIM_DUMP") {
            for n in self.nodes.iter().filter(|n| n.client.name() == who) {
                eprintln!("{who} received:");
                for (at, p) in &n.received {
                    eprintln!("  {:>10.3?} {}", *at - self.epoch, summary(p));
                }
                eprintln!("{who} showed:");
                for (at, e) in &n.events {
                    let e = match e {
                        Event::Message {
                            message,
                            history,
                            own,
                        } => format!("message {} history={history} own={own}", message.seq),
                        other => format!("{other:?}"),
                    };
                    eprintln!("  {:>10.3?} {e}", *at - self.epoch);
                }
            }
        }
        eprintln!("last datagrams:");
        for t in &self.trace {
            let what = match Packet::decode(&t.bytes) {
                Ok(p) => summary(&p),
                Err(e) => format!("undecodable: {e}"),
            };
            let (from, to) = self.ends(t.from, t.to, t.stranger);
            eprintln!(
                "  {:>10.3?} {from} -> {to} {}: {what}",
                t.at - self.epoch,
                t.fate
            );
        }
    }
}

/// A packet in one short line.
fn summary(p: &Packet) -> String {
    let seqs = |ms: &[Message]| {
        ms.iter()
            .map(|m| m.seq.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    match p {
        Packet::Join {
            name,
            history,
            cookie,
            ..
        } => format!("Join {name} history {history} cookie {}", cookie.len()),
        Packet::Send { base, messages, .. } => {
            let each: Vec<String> = messages
                .iter()
                .map(|m| format!("csn {} id {}", m.csn, &m.id.to_string()[..8]))
                .collect();
            format!("Send base {base} [{}]", each.join(", "))
        }
        Packet::History {
            req, from, count, ..
        } => format!("History req {req} from {from} count {count}"),
        Packet::Who { req, .. } => format!("Who req {req}"),
        Packet::Ping { .. } => "Ping".into(),
        Packet::Leave { .. } => "Leave".into(),
        Packet::Welcome { name, latest, .. } => format!("Welcome {name} latest {latest}"),
        Packet::Error { code, id, .. } => format!("Error {code:?} id {}", &id.to_string()[..8]),
        Packet::Ack { acks } => {
            let each: Vec<String> = acks
                .iter()
                .map(|a| format!("csn {} seq {} id {}", a.csn, a.seq, &a.id.to_string()[..8]))
                .collect();
            format!("Ack [{}]", each.join(", "))
        }
        Packet::Messages { messages } => format!("Messages [{}]", seqs(messages)),
        Packet::HistoryPage {
            req,
            first,
            last,
            messages,
        } => format!(
            "HistoryPage req {req} {first}..={last} [{}]",
            seqs(messages)
        ),
        Packet::Presence { changes } => {
            let each: Vec<String> = changes
                .iter()
                .map(|c| format!("{} joined={} {:?}", c.name, c.joined, c.reason))
                .collect();
            format!("Presence [{}]", each.join(", "))
        }
        Packet::Names { req, total, names } => format!("Names req {req} total {total} {names:?}"),
        Packet::Pong { latest } => format!("Pong latest {latest}"),
        Packet::Challenge { cookie } => format!("Challenge ({} bytes)", cookie.len()),
    }
}
