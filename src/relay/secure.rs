//! The relay behind its secure channel: what the shell drives. Each datagram is a handshake (answered by [`Channels`]) or a DATA opened for [`Relay`]; each packet the relay sends is sealed for its recipient.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::join::{Origin, origin};
use super::limit::Bucket;
use super::{Relay, Transmit};
use crate::proto::message::Millis;
use crate::proto::secure::frame::{CHALLENGE, Frame, HELLO, UNKNOWN};
use crate::proto::secure::keys::{Keypair, PublicKey};
use crate::relay::channels::{Channels, Drop, Incoming};
use crate::relay::cookie::Cookies;
use crate::relay::give_back::GiveBack;

/// Handshakes the relay may hold waiting for their client's first DATA, beyond three
/// transports for each client it may have.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;
/// Handshakes made at the end of a turn at least, after the turn's chat: each costs about
/// [`HANDSHAKE_COST`], so a turn's batch of HELLOs (a crowd joining, an attacker's thousands
/// of sessions) never holds ordinary chat back for long.
pub const HANDSHAKES_PER_TURN: usize = 16;
/// Handshakes made at the end of a turn at most (about 13 ms of them).
pub const MAX_HANDSHAKES_PER_TURN: usize = 64;
/// What a handshake costs the relay, about: four X25519 operations and their hashing.
pub const HANDSHAKE_COST: std::time::Duration = std::time::Duration::from_micros(200);
/// How long the transports of a client that left stay, for the answers to its LEAVE's copies
/// (they come back within a round trip; a copy after that finds no transport, is answered
/// UNKNOWN, and the client, which gives up its LEAVE after 2 s anyway, closes).
pub const LEFT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// HELLOs with a good cookie waiting for their handshake at most; beyond, they are dropped
/// (their clients send them again after a second).
pub const MAX_WAITING_HELLOS: usize = 4096;

/// The relay and its secure channel.
#[derive(Debug)]
pub struct SecureRelay {
    relay: Relay,
    channels: Channels,
    /// Mints and checks the handshake's cookies (made at the first datagram, on its clock).
    cookies: Option<Cookies>,
    /// Handshakes per IP address, at the request rate (each costs the relay four
    /// Diffie-Hellman operations).
    handshakes: HashMap<Origin, Bucket>,
    /// Handshake answers to send, as they are, before the relay's packets.
    answers: VecDeque<(SocketAddr, Vec<u8>)>,
    /// The time of the latest datagram or turn: what packets are sealed at.
    clock: Option<Instant>,
    /// When the last turn ended, and how many handshakes it made.
    last_turn: Option<Instant>,
    last_handshakes: u32,
    /// When transports were last swept.
    swept: Option<Instant>,
    /// The packet of the datagram being handled, opened.
    opened: Vec<u8>,
    /// A polled packet, before it is sealed.
    sealing: Vec<u8>,
    /// HELLOs with a good cookie, waiting for their handshake (see [`HANDSHAKES_PER_TURN`]).
    hellos: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Addresses whose client left the room, and when their transports go (see
    /// [`LEFT_GRACE`]): ten thousand sessions that came and went leave no transports behind.
    left: VecDeque<(SocketAddr, Instant)>,
}

impl SecureRelay {
    /// `relay`, with the static key pair `keypair` (its identity, which clients pin).
    pub fn new(relay: Relay, keypair: Keypair) -> Self {
        let max = 3 * relay.config.max_clients + MAX_PENDING_HANDSHAKES;
        Self {
            relay,
            channels: Channels::new(keypair, max),
            cookies: None,
            handshakes: HashMap::new(),
            answers: VecDeque::new(),
            clock: None,
            last_turn: None,
            last_handshakes: 0,
            swept: None,
            opened: Vec::new(),
            sealing: Vec::new(),
            hellos: VecDeque::new(),
            left: VecDeque::new(),
        }
    }

    /// The relay's rules.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// The relay's rules, to drive (its turns, its log).
    pub fn relay_mut(&mut self) -> &mut Relay {
        &mut self.relay
    }

    /// The relay's public key: its fingerprint.
    pub fn public_key(&self) -> PublicKey {
        self.channels.public()
    }

    /// How many transports the relay holds.
    pub fn transports(&self) -> usize {
        self.channels.len()
    }

    /// The client key of the transport confirmed last at `addr`, if any.
    pub fn last_confirmed(&self, addr: SocketAddr) -> Option<PublicKey> {
        self.channels.last_confirmed(addr)
    }

    /// Takes one datagram from `from`, received at `now` (wall-clock time `wall`). A HELLO
    /// with a good cookie waits for the end of the turn, when its handshake is made.
    pub fn handle(&mut self, now: Instant, wall: Millis, from: SocketAddr, datagram: &[u8]) {
        self.clock = Some(now);
        // Only a HELLO is looked at twice (here, and by the channels when its turn comes):
        // every DATA goes straight on.
        if datagram.get(2) == Some(&HELLO)
            && let Ok(Frame::Hello { cookie, .. }) = Frame::decode(datagram)
            && self
                .cookies
                .get_or_insert_with(|| Cookies::new(now))
                .check(now, from, cookie)
        {
            if self.hellos.len() < MAX_WAITING_HELLOS {
                self.hellos.push_back((from, datagram.to_vec()));
            } else {
                self.relay
                    .note_dropped(from, "as many HELLOs waiting as the relay holds");
            }
            return;
        }
        self.take(now, wall, from, datagram);
    }

    /// Takes one datagram now.
    fn take(&mut self, now: Instant, wall: Millis, from: SocketAddr, datagram: &[u8]) {
        let mut packet = std::mem::take(&mut self.opened);
        packet.clear();
        let cookies = self.cookies.get_or_insert_with(|| Cookies::new(now));
        let rate = self.relay.config.request_rate;
        let burst = self.relay.config.max_per_ip.max(1) as f64;
        let handshakes = &mut self.handshakes;
        let mut asked = false;
        let allowed = || {
            asked = true;
            handshakes
                .entry(origin(from))
                .or_insert_with(|| Bucket::new(rate, burst, now))
                .take(now)
        };
        let clients = self.relay.clients();
        let session = || clients.get(&from).and_then(|s| s.value().key());
        let incoming =
            self.channels
                .receive(now, from, datagram, cookies, allowed, session, &mut packet);
        match incoming {
            Incoming::Packet { peer } => {
                let member = self.relay.clients().contains_key(&from);
                self.relay.handle_as(now, wall, from, &packet, Some(peer));
                if member && !self.relay.clients().contains_key(&from) {
                    self.left.push_back((from, now + LEFT_GRACE));
                }
            }
            Incoming::Answer(frame) => {
                let stats = self.relay.stats_mut();
                if frame.get(2) == Some(&CHALLENGE) {
                    stats.challenges += 1;
                } else if frame.get(2) == Some(&UNKNOWN) {
                    stats.unknown += 1;
                } else if asked {
                    stats.handshakes += 1;
                }
                // An address not yet proved gets at most three times what it sent (RFC 9000,
                // section 8): every answer is smaller than what it answers, by design.
                if frame.len() <= 3 * datagram.len() {
                    self.answers.push_back((from, frame));
                } else {
                    stats.over_budget += 1;
                }
            }
            Incoming::Dropped(kind, why) => {
                let stats = self.relay.stats_mut();
                match kind {
                    Drop::Malformed => stats.malformed += 1,
                    Drop::Unopened => stats.unsealed += 1,
                    Drop::Busy => stats.rate_limited += 1,
                }
                self.relay.note_dropped(from, why);
            }
        }
        self.opened = packet;
    }

    /// [`Relay::chat_waiting`]: messages wait for the turn's end while only presence and
    /// answers are left to send.
    pub fn chat_waiting(&self) -> bool {
        self.answers.is_empty() && self.relay.chat_waiting()
    }

    /// [`Relay::chat_queued`], or handshake answers wait to be sent.
    pub fn chat_queued(&self) -> bool {
        !self.answers.is_empty() || self.relay.chat_queued()
    }

    /// [`Relay::took_meanwhile`], or handshake answers wait to be sent.
    pub fn took_meanwhile(&self) -> bool {
        !self.answers.is_empty() || self.relay.took_meanwhile()
    }

    /// When [`SecureRelay::end_turn`] must be called next: [`Relay::poll_timeout`], or at
    /// once while HELLOs wait for their handshake.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.hellos.is_empty(), self.clock) {
            (false, Some(now)) => Some(now),
            _ => self.relay.poll_timeout(),
        }
    }

    /// Ends a turn ([`Relay::end_turn`]), then makes the handshakes of waiting HELLOs, as many
    /// as take a quarter of the time since the last turn ended, less the last turn's own
    /// handshakes (a long turn, a fan-out to 10,000 members, makes room for more: a crowd
    /// joins in seconds, and chat waits at most a quarter longer), [`HANDSHAKES_PER_TURN`] to
    /// [`MAX_HANDSHAKES_PER_TURN`]; forgets expired transports once a tick.
    pub fn end_turn(&mut self, now: Instant, wall: Millis) {
        self.clock = Some(now);
        self.relay.end_turn(now, wall);
        let since = (self.last_turn).map_or(std::time::Duration::ZERO, |t| {
            now.saturating_duration_since(t)
        });
        let since = since.saturating_sub(HANDSHAKE_COST * self.last_handshakes);
        self.last_turn = Some(now);
        self.last_handshakes = 0;
        let budget = usize::try_from((since / 4).as_micros() / HANDSHAKE_COST.as_micros())
            .unwrap_or(usize::MAX)
            .clamp(HANDSHAKES_PER_TURN, MAX_HANDSHAKES_PER_TURN);
        for _ in 0..budget {
            let Some((from, hello)) = self.hellos.pop_front() else {
                break;
            };
            self.take(now, wall, from, &hello);
            self.last_handshakes += 1;
        }
        let mut forgot = false;
        while let Some(&(addr, at)) = self.left.front()
            && at <= now
        {
            self.left.pop_front();
            // Unless it came back meanwhile.
            if !self.relay.clients().contains_key(&addr) {
                self.channels.forget(addr);
                forgot = true;
            }
        }
        if forgot {
            // Ten thousand sessions gone at once give their room back now, not at the sweep.
            self.channels.give_back();
        }
        if self.swept.is_none_or(|t| now >= t + super::TICK) {
            self.swept = Some(now);
            self.channels.sweep(now);
            self.handshakes.retain(|_, b| !b.is_full(now));
            self.handshakes.give_back();
            self.hellos.give_back();
            self.answers.give_back();
            self.left.give_back();
        }
    }

    /// The next datagram to send, written into `buf` (cleared first); where to send it.
    pub fn poll_transmit_into(&mut self, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        buf.clear();
        if let Some((to, frame)) = self.answers.pop_front() {
            buf.extend_from_slice(&frame);
            return Some(to);
        }
        loop {
            let (to, key) = self.relay.poll_transmit_for(&mut self.sealing)?;
            // Every packet the relay is handed here came sealed by a key, and what it sends
            // is for a key: its session's, or that of the datagram it answers.
            if let (Some(now), Some(key)) = (self.clock, key)
                && self.channels.seal(now, to, &key, &self.sealing, buf)
            {
                return Some(to);
            }
            // Its transport expired, or it never had one: nobody could read it.
            self.relay.stats_mut().unsealable += 1;
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let mut bytes = Vec::new();
        let to = self.poll_transmit_into(&mut bytes)?;
        Some(Transmit {
            to,
            bytes: Arc::from(bytes),
        })
    }
}
