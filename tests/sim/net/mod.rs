//! The simulated network and clock that the `sim` tests (and `batching.rs`) drive one relay and
//! its clients with: the [`Net`], its conditions, and time moving from event to event.
//!
//! Datagrams in flight wait in a queue ordered by delivery time; time jumps from one event to
//! the next (an arrival, a client's timeout, the relay's tick, the relay's log flush). The relay's
//! log is a `Vec<Message>`. Clients can be frozen, made deaf or mute, moved to a new address
//! ([`Net::rebind`]) or replaced by a new process on theirs ([`Net::restart_client`]); forged
//! datagrams can be handed to a client ([`Net::inject`]) or to the relay
//! ([`Net::inject_to_relay`]), or anything at all from any address ([`Net::inject_raw`]: what
//! the relay answers an address that is no client's is counted in [`Net::strangers`]). The log
//! can fail for a while ([`Net::store_fails`]), and every datagram the relay sends is kept in
//! [`Net::from_relay`]. The relay has an address among several of one cluster
//! ([`Net::add_relay`]): clients are given them all, and it can die at one and start again at
//! another from the log, the cluster's ([`Net::fail_over`]), or be at none for a while
//! ([`Net::serving`]). Everything random comes from one seed, each link drawing from its
//! own stream, so a failing run is repeated with `URC_SIM_SEED=<seed>`; the seed, the conditions
//! and the last datagrams are printed when a test fails, with `URC_SIM_DUMP=<client name>` all
//! that client received and showed, and with `URC_SIM_TRACE=1` every datagram as it goes.
//!
//! The net is one type whose methods are kept by role:
//!
//! - `mod.rs` (here): the net, its conditions and its clock ([`Net::step`], [`Net::run_until`]).
//! - `seed.rs`: the seeds a test runs with and the random streams drawn from them.
//! - `node.rs`: a client and what it showed and received, and what the tests make it do.
//! - `links.rs`: the datagrams in flight, and the fate each link deals them.
//! - `shell.rs`: the relay's side, doing what `urc serve` does around the core: it hands it
//!   datagrams, writes its log (which can fail), serves its reads and restarts it.
//! - `trace.rs`: the record of every datagram, the run's fingerprint and the failure report.
//! - `check.rs`: the invariants the tests check once the net has settled.

mod check;
mod links;
mod node;
mod seed;
mod shell;
mod trace;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use urc::proto::message::{Message, Millis};
use urc::proto::name::name_key;
use urc::proto::wire::{ErrorCode, Packet};
use urc::relay::{self, Relay};
use uuid::Uuid;

use links::Flight;
pub use node::Node;
pub use seed::{Rng, seeds};
pub use shell::Traffic;
use trace::Traced;

/// The relay's key of the room a client named `me` calls `room`: a room's own name, or for a
/// private conversation (`@bob`) the conversation's key (`@alice+bob`, see
/// [`dm_key`](urc::proto::dm::dm_key)).
pub fn relay_room(me: &str, room: &str) -> String {
    match room.strip_prefix(urc::proto::dm::DM_MARK) {
        Some(other) => urc::proto::dm::dm_key(&name_key(me), &name_key(other)),
        None => room.to_owned(),
    }
}

/// How often the relay ticks (it asks for its turns through `Relay::poll_timeout`).
pub const TICK: Duration = urc::relay::TICK;
/// Wall-clock time at the simulation's start (2026-11-25T08:00:00Z), for message timestamps.
const WALL_EPOCH: i64 = 1_795_593_600_000;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
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

    /// `delay` each way and up to `jitter` more, so that datagrams overtake each other; none
    /// lost or doubled (see [`Conditions::losing`], [`Conditions::duplicating`]).
    pub const fn jittery(delay: Duration, jitter: Duration) -> Conditions {
        Conditions {
            delay,
            jitter,
            loss: 0,
            duplicate: 0,
        }
    }

    /// These conditions, losing `percent` of the datagrams.
    pub const fn losing(self, percent: u32) -> Conditions {
        Conditions {
            loss: percent,
            ..self
        }
    }

    /// These conditions, delivering `percent` of the datagrams twice.
    pub const fn duplicating(self, percent: u32) -> Conditions {
        Conditions {
            duplicate: percent,
            ..self
        }
    }
}

/// How the relay stops before it starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// It writes what it accepted, tells every session it stops, then stops.
    Clean,
    /// It dies before writing what it accepted (nothing of that was acknowledged).
    Crash,
}

/// The address of the `k`th relay of the cluster (see [`Net::add_relay`]).
pub fn relay_addr(k: usize) -> SocketAddr {
    SocketAddr::from((
        [192, 0, 2, 100 + u8::try_from(k).expect("few relays")],
        7707,
    ))
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
    /// The logs of the rooms other than the lobby (whose log is `store`), by room.
    pub rooms: BTreeMap<String, Vec<Message>>,
    /// Messages the log held before the simulation started.
    pub preloaded: usize,
    /// The addresses of the cluster's relays, which clients started from now on are given,
    /// in order ([`relay_addr`]).
    pub relay_addrs: Vec<SocketAddr>,
    /// Which of them the relay process is at; `None`: at none (what is sent to any is lost).
    pub serving: Option<usize>,
    /// Whether an address with no relay says so, as the system does with an ICMP port
    /// unreachable (the client is told, [`Client::unreachable`](urc::client::Client::unreachable));
    /// else it is silent, as a machine that is down.
    pub refuse_unserved: bool,
    pub nodes: Vec<Node>,
    /// Which client has each address now.
    by_addr: HashMap<SocketAddr, usize>,
    /// Addresses clients left (see [`Net::rebind`]): what the relay sends there is lost.
    left_addrs: HashMap<SocketAddr, usize>,
    /// Datagrams the relay sent to an address nobody has any more.
    pub stale: u64,
    /// How many times the relay process started again: a datagram of an earlier process that
    /// arrives after the client heard from a later one is dropped, as the secure channel
    /// drops what was sealed for a session the client has replaced.
    pub relay_epoch: u64,
    /// Datagrams in flight by (delivery time, link, count on the link).
    queue: BTreeMap<(Instant, usize, u64), Flight>,
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

    /// A net over `cond`, with a relay of the default configuration and an empty log.
    pub fn under(seed: u64, cond: Conditions) -> Self {
        Net::new(seed, cond, relay::Config::default())
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
            relay_addrs: vec![relay_addr(0)],
            serving: Some(0),
            refuse_unserved: false,
            store: log,
            rooms: BTreeMap::new(),
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            left_addrs: HashMap::new(),
            stale: 0,
            relay_epoch: 0,
            queue: BTreeMap::new(),
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
                        && (n.client.rooms().iter()).all(|r| {
                            let key = relay_room(n.client.name(), &r.name);
                            r.entered && Some(r.delivered) == self.relay.latest_in(&key)
                        })
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
        // The relay's own clock: before its first turn it wants one at once.
        let mut t = self.relay.poll_timeout().unwrap_or(self.now);
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
        if self.relay.poll_timeout().is_none_or(|x| x <= t) {
            self.relay.end_turn(t, self.wall());
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
}
