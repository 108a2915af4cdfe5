//! The load: every simulated client on one thread, driven by one poll loop over their sockets:
//! first the joins (each client's handshake, then its JOIN), a wave at a time, then the
//! measured phase. Both stop at the run's deadline; a handshake also at its own bound.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::ledger::Ledger;
use super::link::Buffers;
use super::plan::Plan;
use super::receive::Reader;
use super::sim::Sim;
use crate::proto::secure::keys::PublicKey;
use crate::proto::wire::MAX_DATAGRAM;

/// Most clients joining at once: the relay answers each JOIN with a presence datagram to
/// everyone already in the room, so a wave of joins makes a wave of datagrams; and each
/// joining client makes a handshake first, four Diffie-Hellman operations of the relay's.
const JOIN_WAVE: usize = 128;
/// How often the timers of a slice of the clients are looked at (retransmission, repair,
/// keepalive).
const SCAN_EVERY: Duration = Duration::from_millis(5);
/// Clients whose timers are looked at every [`SCAN_EVERY`]: all of them up to 1,000, each
/// every 50 ms with 10,000 (a client's timers are a retransmission timeout of at least
/// 200 ms, a gap's wait and a 5 s keepalive).
const SCAN_SLICE: usize = 1000;

/// Why the load stopped short.
#[derive(Debug)]
pub(super) enum Stop {
    /// A socket or the poll failed.
    Io(io::Error),
    /// The deadline came first: what was still missing.
    Deadline(String),
    /// A client's handshake with the relay did not complete: which, and why.
    Handshake(String),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

/// The simulated clients with their poll.
#[derive(Debug)]
pub(super) struct Load {
    sims: Vec<Sim>,
    poll: Poll,
    events: Events,
    buf: Vec<u8>,
    /// What every client's reads go into.
    reader: Reader,
    /// What every client seals into and opens into.
    bufs: Buffers,
}

impl Load {
    /// Makes the clients and joins each to its relay of `relays` ([`Plan::relay_of`]): its
    /// address and its key (when `None`, each client learns it on first contact).
    ///
    /// # Errors
    /// When a socket fails, a handshake does not complete, or the deadline comes before
    /// everyone is in.
    pub(super) fn join(
        relays: &[(SocketAddr, Option<PublicKey>)],
        plan: &Plan,
        ledger: &mut Ledger,
    ) -> Result<Load, Stop> {
        let now = Instant::now();
        let mut sims = Vec::with_capacity(plan.clients);
        for i in 0..plan.clients {
            let own = plan.per_sender.get(i).copied().unwrap_or(0);
            let (room, expected) = (plan.room_of(i), plan.expected(i));
            let senders = plan.senders_of(i);
            let name = format!("{}{i}", plan.names);
            let at = plan.relay_of(i).min(relays.len() - 1);
            let (relay, key) = relays[at];
            let mut sim = Sim::new((relay, at), key, (name, room), senders, expected, now)?;
            if i < plan.per_sender.len() {
                sim.make_sender(i as u32, own, plan.size, plan.window);
            }
            sims.push(sim);
        }
        let mut load = Load {
            sims,
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            buf: vec![0; MAX_DATAGRAM + 1],
            reader: Reader::default(),
            bufs: Buffers::default(),
        };
        load.join_in_waves(plan, ledger)?;
        Ok(load)
    }

    fn join_in_waves(&mut self, plan: &Plan, ledger: &mut Ledger) -> Result<(), Stop> {
        let (mut started, mut joining, mut joined) = (0, 0, 0);
        let mut next_scan = Instant::now();
        while joined < self.sims.len() {
            let now = Instant::now();
            if now >= plan.deadline {
                return Err(Stop::Deadline(format!(
                    "{joined} of {} clients joined",
                    self.sims.len()
                )));
            }
            while joining < JOIN_WAVE && started < self.sims.len() {
                let sim = &mut self.sims[started];
                self.poll.registry().register(
                    &mut sim.socket,
                    Token(started),
                    Interest::READABLE,
                )?;
                sim.tick(now, &mut self.bufs, ledger);
                started += 1;
                joining += 1;
            }
            if now >= next_scan {
                // JOINs whose answer was lost go again (or their handshake's HELLO); those
                // in keep alive.
                for sim in &mut self.sims[..started] {
                    if let Some(why) = sim.stuck(now) {
                        return Err(Stop::Handshake(why));
                    }
                    sim.tick(now, &mut self.bufs, ledger);
                }
                next_scan = now + SCAN_EVERY * 10;
            }
            self.poll
                .poll(&mut self.events, Some(Duration::from_millis(10)))?;
            for event in &self.events {
                let i = event.token().0;
                if self.sims[i].is_joined() {
                    continue;
                }
                read_all(&mut self.sims[i], &mut self.reader, &mut self.bufs, ledger)?;
                if self.sims[i].is_joined() {
                    // Until everyone is in, what a joined client receives is the presence of
                    // those joining after it: left to the kernel to drop once its buffer is
                    // full, rather than read by the thread that has joins to make.
                    self.poll.registry().deregister(&mut self.sims[i].socket)?;
                    joining -= 1;
                    joined += 1;
                }
            }
        }
        Ok(())
    }

    /// Throws away what the clients received while others joined and starts listening to
    /// them all.
    ///
    /// # Errors
    /// When a socket fails.
    pub(super) fn prepare(&mut self) -> io::Result<()> {
        for (i, sim) in self.sims.iter_mut().enumerate() {
            loop {
                match sim.socket.recv(&mut self.buf) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            self.poll
                .registry()
                .register(&mut sim.socket, Token(i), Interest::READABLE)?;
        }
        Ok(())
    }

    /// Sends the messages and waits until every client delivered every message of the
    /// others, in order. Returns when it started.
    ///
    /// A loop costs what happened in it, not the number of clients: a sender is looked at when
    /// its next message is due (a queue of due times) or when a datagram came for it (an ACK
    /// may open its window); the timers (retransmission, gap repair, keepalive) are looked at
    /// for [`SCAN_SLICE`] clients every [`SCAN_EVERY`], in turn.
    ///
    /// # Errors
    /// When a socket fails or the deadline comes first.
    pub(super) fn run(&mut self, plan: &Plan, ledger: &mut Ledger) -> Result<Instant, Stop> {
        let senders = plan.per_sender.len();
        let (messages, deliveries) = (plan.messages(), plan.deliveries());
        let start = Instant::now();
        let mut due = Due::new(senders);
        for (i, sim) in self.sims[..senders].iter_mut().enumerate() {
            // Paced senders take turns, so that together they offer a steady rate rather than
            // bursts of one message each.
            let offset = plan
                .every
                .map_or(Duration::ZERO, |e| e * i as u32 / senders as u32);
            sim.start_sending(start + offset, plan.every);
            due.schedule(i, sim.next_due(start));
        }
        let (mut next_scan, mut cursor) = (start, 0);
        loop {
            let now = Instant::now();
            if ledger.delivered >= deliveries && ledger.acked >= messages {
                break;
            }
            if now >= plan.deadline {
                return Err(Stop::Deadline(self.progress(plan, ledger)));
            }
            while let Some(i) = due.pop(now) {
                let sim = &mut self.sims[i];
                sim.pump(now, &mut self.bufs, ledger);
                due.schedule(i, sim.next_due(now));
            }
            if now >= next_scan {
                let n = self.sims.len();
                for k in 0..SCAN_SLICE.min(n) {
                    let i = (cursor + k) % n;
                    let sim = &mut self.sims[i];
                    // Keys replaced every two minutes: a handshake may fail here too.
                    if let Some(why) = sim.stuck(now) {
                        return Err(Stop::Handshake(why));
                    }
                    sim.tick(now, &mut self.bufs, ledger);
                }
                cursor = (cursor + SCAN_SLICE) % n.max(1);
                next_scan = now + SCAN_EVERY;
            }
            let wake = due.next().map_or(next_scan, |d| d.min(next_scan));
            let timeout = wake.min(plan.deadline).saturating_duration_since(now);
            self.poll.poll(&mut self.events, Some(timeout))?;
            for event in &self.events {
                let i = event.token().0;
                let sim = &mut self.sims[i];
                read_all(sim, &mut self.reader, &mut self.bufs, ledger)?;
                if i < senders {
                    let now = Instant::now();
                    sim.pump(now, &mut self.bufs, ledger);
                    due.schedule(i, sim.next_due(now));
                }
            }
        }
        Ok(start)
    }

    /// Each receiver that did not deliver exactly what it should, described; empty when all
    /// did.
    pub(super) fn shortfalls(&self) -> Vec<String> {
        self.sims
            .iter()
            .filter(|s| s.delivered != s.expected || !s.all_acked())
            .map(|s| {
                format!(
                    "{} delivered {} of {} in order (waits for seq {}){}",
                    s.name(),
                    s.delivered,
                    s.expected,
                    s.waiting_for(),
                    if s.all_acked() {
                        ""
                    } else {
                        ", and some of its messages were never acknowledged"
                    }
                )
            })
            .collect()
    }

    fn progress(&self, plan: &Plan, ledger: &Ledger) -> String {
        let short = self.shortfalls();
        let worst = short.first().map(String::as_str).unwrap_or("none");
        format!(
            "{} of {} deliveries, {} of {} messages acknowledged; {} clients short (first: {worst})",
            ledger.delivered,
            plan.deliveries(),
            ledger.acked,
            plan.messages(),
            short.len()
        )
    }
}

/// Hands a client everything waiting on its socket (the poll is edge-triggered).
fn read_all(
    sim: &mut Sim,
    reader: &mut Reader,
    bufs: &mut Buffers,
    ledger: &mut Ledger,
) -> io::Result<()> {
    loop {
        match reader.read(&sim.socket) {
            Ok(datagrams) => {
                let now = Instant::now();
                for datagram in datagrams {
                    sim.handle(now, datagram, bufs, ledger);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            // An ICMP answer to an earlier send, say: the socket works on.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
}

/// When each sender's next message is due, soonest first. A sender is queued once, at its
/// earliest time; an entry whose time is no longer its sender's is skipped when it comes up.
#[derive(Debug)]
struct Due {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Per sender, the time it is queued at.
    queued: Vec<Option<Instant>>,
}

impl Due {
    fn new(senders: usize) -> Self {
        Due {
            heap: BinaryHeap::with_capacity(senders),
            queued: vec![None; senders],
        }
    }

    /// Queues sender `i` at `at`, unless it is queued earlier already.
    fn schedule(&mut self, i: usize, at: Option<Instant>) {
        let Some(at) = at else { return };
        if self.queued[i].is_none_or(|q| at < q) {
            self.queued[i] = Some(at);
            self.heap.push(Reverse((at, i)));
        }
    }

    /// The next sender due by `now`, taken off the queue.
    fn pop(&mut self, now: Instant) -> Option<usize> {
        while let Some(&Reverse((at, i))) = self.heap.peek() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if self.queued[i] == Some(at) {
                self.queued[i] = None;
                return Some(i);
            }
        }
        None
    }

    /// When the soonest sender is due.
    fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_come_up_once_at_their_earliest_time() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut due = Due::new(3);
        due.schedule(0, Some(t + ms(20)));
        due.schedule(1, Some(t + ms(10)));
        due.schedule(0, Some(t + ms(5)));
        due.schedule(0, Some(t + ms(30)));
        due.schedule(2, None);
        assert_eq!(due.next(), Some(t + ms(5)));
        assert_eq!(due.pop(t), None);
        assert_eq!(due.pop(t + ms(50)), Some(0));
        assert_eq!(due.pop(t + ms(50)), Some(1));
        // Sender 0's later entry is stale: it was taken at its earliest.
        assert_eq!(due.pop(t + ms(50)), None);
        assert_eq!(due.next(), None);
    }
}
