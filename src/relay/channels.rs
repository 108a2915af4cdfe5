//! The relay's side of the secure channel: HELLOs answered (a cookie first, then the Noise handshake), the transports of every address, DATA opened and packets sealed, old keys retired.
//!
//! An address proves that it receives before the relay spends anything on it: a HELLO
//! without a good cookie gets a CHALLENGE (stateless, smaller than three HELLOs); only a
//! HELLO with one costs a handshake, and only as often as the caller allows. A handshake
//! makes a *pending* transport; the client's first DATA on it *confirms* it: it becomes the
//! address's current transport, the one of the same key before it stays to open what was
//! already on its way, and so does the newest of one other key (the session's, when another
//! key confirms at its address), until they are replaced or expire. A packet is sealed for
//! a key, with the newest of these that is that key's, never with another key's. A HELLO
//! sent again (its REPLY was lost) gets the same REPLY again, without a second handshake.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::proto::secure::frame::{ECHO_LEN, Frame, HELLO_NOISE_LEN};
use crate::proto::secure::keys::{Keypair, PublicKey};
use crate::proto::secure::noise::accept;
use crate::proto::secure::transport::{Transport, Unopened};
use crate::relay::cookie::Cookies;
use crate::relay::give_back::GiveBack;

/// How long a pending transport waits for the client's first DATA.
pub const PENDING_FOR: Duration = Duration::from_secs(10);

/// What a datagram was.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A DATA opened: the packet is in the caller's buffer; it came from the holder of `peer`.
    Packet {
        /// The client's static key.
        peer: PublicKey,
    },
    /// An answer to send back at once, as it is (CHALLENGE, REPLY or UNKNOWN).
    Answer(Vec<u8>),
    /// Nothing to do: the datagram was dropped, of this kind, for this reason.
    Dropped(Drop, &'static str),
}

/// What kind of datagram was dropped, for the relay's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// Not a frame of the protocol, or one only a relay sends.
    Malformed,
    /// A handshake or a DATA that does not authenticate, or a DATA opened before.
    Unopened,
    /// A handshake the relay has no room or allowance for now.
    Busy,
}

/// One transport and whose it is.
#[derive(Debug)]
struct Channel {
    addr: SocketAddr,
    peer: PublicKey,
    transport: Transport,
    /// The client sent DATA on it.
    confirmed: bool,
}

/// An address's transports, by the relay's index for them.
#[derive(Debug, Default)]
struct Ends {
    /// The one confirmed last.
    current: Option<u32>,
    /// The one of the same key confirmed before it.
    previous: Option<u32>,
    /// The one of another key confirmed last: someone else who receives at the address
    /// made a handshake there, and the key whose session is there keeps its transport.
    other: Option<u32>,
    pending: Option<u32>,
    /// The last handshake answered: its HELLO's Noise message and the REPLY sent.
    answered: Option<(Box<[u8; HELLO_NOISE_LEN]>, Vec<u8>)>,
}

/// Every address's transports.
#[derive(Debug)]
pub struct Channels {
    keypair: Keypair,
    by_index: HashMap<u32, Channel>,
    by_addr: HashMap<SocketAddr, Ends>,
    /// Transports at most: HELLOs beyond it are dropped until some expire.
    max: usize,
}

impl Channels {
    /// A relay with this static key pair, holding at most `max` transports.
    pub fn new(keypair: Keypair, max: usize) -> Self {
        Self {
            keypair,
            by_index: HashMap::new(),
            by_addr: HashMap::new(),
            max,
        }
    }

    /// The relay's public key.
    pub fn public(&self) -> PublicKey {
        self.keypair.public()
    }

    /// How many transports are held (pending ones included).
    pub fn len(&self) -> usize {
        self.by_index.len()
    }

    /// True when no transport is held.
    pub fn is_empty(&self) -> bool {
        self.by_index.is_empty()
    }

    /// Takes one datagram from `from`. An opened packet is appended to `out`. `allowed` is
    /// asked before a handshake is made (the relay's rate of handshakes per IP), `session`
    /// before a transport is confirmed (the key of the session at `from`, if any: its newest
    /// transport stays, whatever other keys confirm there).
    #[allow(clippy::too_many_arguments)]
    pub fn receive(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        cookies: &mut Cookies,
        allowed: impl FnOnce() -> bool,
        session: impl FnOnce() -> Option<PublicKey>,
        out: &mut Vec<u8>,
    ) -> Incoming {
        let Ok(frame) = Frame::decode(datagram) else {
            return Incoming::Dropped(Drop::Malformed, "not a frame of protocol version 2");
        };
        match frame {
            Frame::Hello {
                sender,
                cookie,
                noise,
            } => {
                if !cookies.check(now, from, cookie) {
                    let echo: [u8; ECHO_LEN] = noise[..ECHO_LEN].try_into().expect("8 bytes");
                    let cookie = cookies.mint(now, from);
                    return Incoming::Answer(
                        Frame::Challenge {
                            echo,
                            cookie: &cookie,
                            relay: self.public(),
                        }
                        .encode(),
                    );
                }
                self.hello(now, from, sender, noise, allowed)
            }
            Frame::Data {
                receiver,
                counter,
                sealed,
            } => self.data(now, from, receiver, counter, sealed, session, out),
            Frame::Challenge { .. } | Frame::Reply { .. } | Frame::Unknown { .. } => {
                Incoming::Dropped(Drop::Malformed, "a relay's frame sent to the relay")
            }
        }
    }

    fn hello(
        &mut self,
        now: Instant,
        from: SocketAddr,
        sender: u32,
        noise: &[u8; HELLO_NOISE_LEN],
        allowed: impl FnOnce() -> bool,
    ) -> Incoming {
        if let Some(ends) = self.by_addr.get(&from)
            && let Some((hello, reply)) = &ends.answered
            && **hello == *noise
        {
            // The same HELLO again: its REPLY was lost (or it is a replay, which learns
            // nothing new).
            return Incoming::Answer(reply.clone());
        }
        if self.by_index.len() >= self.max {
            self.sweep(now);
            if self.by_index.len() >= self.max {
                return Incoming::Dropped(Drop::Busy, "as many transports as the relay holds");
            }
        }
        if !allowed() {
            return Incoming::Dropped(Drop::Busy, "too many handshakes from this address");
        }
        let Ok(accepted) = accept(&self.keypair, noise) else {
            return Incoming::Dropped(Drop::Unopened, "a handshake that does not authenticate");
        };
        let index = self.free_index();
        let reply = Frame::Reply {
            sender: index,
            receiver: sender,
            noise: &accepted.reply,
        }
        .encode();
        self.by_index.insert(
            index,
            Channel {
                addr: from,
                peer: accepted.peer,
                transport: Transport::new(accepted.keys, sender, now),
                confirmed: false,
            },
        );
        let ends = self.by_addr.entry(from).or_default();
        if let Some(old) = ends.pending.replace(index) {
            self.by_index.remove(&old);
        }
        ends.answered = Some((Box::new(*noise), reply.clone()));
        Incoming::Answer(reply)
    }

    #[allow(clippy::too_many_arguments)]
    fn data(
        &mut self,
        now: Instant,
        from: SocketAddr,
        receiver: u32,
        counter: u64,
        sealed: &[u8],
        session: impl FnOnce() -> Option<PublicKey>,
        out: &mut Vec<u8>,
    ) -> Incoming {
        let unknown = || Incoming::Answer(Frame::Unknown { receiver, counter }.encode());
        let Some(channel) = self.by_index.get_mut(&receiver) else {
            return unknown();
        };
        if channel.addr != from || channel.transport.is_expired(now) {
            // Another address (the client's changed: it proves the new one with a new
            // handshake), or keys too old to use.
            return unknown();
        }
        match channel.transport.open_into(counter, sealed, out) {
            Ok(()) => {}
            Err(Unopened::Forged) => {
                return Incoming::Dropped(
                    Drop::Unopened,
                    "a sealed datagram that does not authenticate",
                );
            }
            Err(Unopened::Replayed) => {
                return Incoming::Dropped(Drop::Unopened, "a sealed datagram opened before");
            }
        }
        let peer = channel.peer;
        if !channel.confirmed {
            channel.confirmed = true;
            self.confirm(from, receiver, peer, session());
        }
        Incoming::Packet { peer }
    }

    /// `index`, of `peer`'s, becomes the current transport of `addr`; the confirming key
    /// keeps its transport before it, and one other key its newest: the key of the session at
    /// `addr` (`session`) if that is another, else the key confirmed last before. So another
    /// key's handshakes at an address never push out the transport of the one whose session
    /// is there.
    fn confirm(
        &mut self,
        addr: SocketAddr,
        index: u32,
        peer: PublicKey,
        session: Option<PublicKey>,
    ) {
        let by_index = &self.by_index;
        let peer_of = |i: u32| by_index.get(&i).map(|c| c.peer);
        // Newest first.
        let (current, previous, other) = (self.by_addr.get(&addr))
            .map_or((None, None, None), |e| (e.current, e.previous, e.other));
        let older: Vec<u32> = [current, other, previous].into_iter().flatten().collect();
        let newest_of = |key: PublicKey| older.iter().copied().find(|&i| peer_of(i) == Some(key));
        let before = newest_of(peer);
        let other = match session {
            Some(k) if k != peer => newest_of(k),
            _ => older
                .iter()
                .copied()
                .find(|&i| peer_of(i).is_some_and(|k| k != peer)),
        };
        let ends = self.by_addr.entry(addr).or_default();
        if ends.pending == Some(index) {
            ends.pending = None;
        }
        (ends.current, ends.previous, ends.other) = (Some(index), before, other);
        for i in older {
            if Some(i) != before && Some(i) != other {
                self.by_index.remove(&i);
            }
        }
    }

    /// Seals `packet` for the holder of `key` at `to`, with the newest confirmed transport
    /// of `to` that is theirs, appending the DATA frame to `out`: false when there is none
    /// (its keys expired, it never made a handshake, or the transports at `to` are another
    /// key's: someone else who receives at that address made a handshake there).
    pub fn seal(
        &mut self,
        now: Instant,
        to: SocketAddr,
        key: &PublicKey,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(ends) = self.by_addr.get(&to) else {
            return false;
        };
        // Newest first; one lookup a slot (this runs for every datagram the relay sends).
        for i in [ends.current, ends.previous, ends.other]
            .into_iter()
            .flatten()
        {
            if let Some(c) = self.by_index.get_mut(&i)
                && c.peer == *key
                && !c.transport.is_expired(now)
            {
                return c.transport.seal_into(packet, out);
            }
        }
        false
    }

    /// The static key of the transport confirmed last at `addr` (not necessarily the key of
    /// the session there: another key may have confirmed one since).
    pub fn last_confirmed(&self, addr: SocketAddr) -> Option<PublicKey> {
        let index = self.by_addr.get(&addr)?.current?;
        Some(self.by_index.get(&index)?.peer)
    }

    /// Forgets every transport of `addr` (its client left the room for good).
    pub fn forget(&mut self, addr: SocketAddr) {
        if let Some(ends) = self.by_addr.remove(&addr) {
            for index in [ends.current, ends.previous, ends.other, ends.pending]
                .into_iter()
                .flatten()
            {
                self.by_index.remove(&index);
            }
        }
    }

    /// Forgets expired transports, and pending ones never confirmed in time; gives back the
    /// room of those forgotten.
    pub fn sweep(&mut self, now: Instant) {
        self.by_index.retain(|_, c| {
            !c.transport.is_expired(now) && (c.confirmed || c.transport.age(now) < PENDING_FOR)
        });
        let by_index = &self.by_index;
        self.by_addr.retain(|_, e| {
            for slot in [
                &mut e.current,
                &mut e.previous,
                &mut e.other,
                &mut e.pending,
            ] {
                if slot.is_some_and(|i| !by_index.contains_key(&i)) {
                    *slot = None;
                }
            }
            if e.pending.is_none() {
                e.answered = None;
            }
            e.current.is_some() || e.previous.is_some() || e.other.is_some() || e.pending.is_some()
        });
        self.give_back();
    }

    /// Gives back the room of transports forgotten, when most of it is (a transport takes a
    /// kilobyte of it).
    pub fn give_back(&mut self) {
        self.by_index.give_back();
        self.by_addr.give_back();
    }

    /// An index no transport has: random, so that nobody off the path can guess it.
    fn free_index(&self) -> u32 {
        loop {
            let mut b = [0; 4];
            getrandom::fill(&mut b).expect("the operating system gives random bytes");
            let index = u32::from_be_bytes(b);
            if !self.by_index.contains_key(&index) {
                return index;
            }
        }
    }
}
