//! The client behind its secure channel: what the shell drives. Every packet the client sends is sealed by the [`Tunnel`] (a handshake first, when there is no transport), and every datagram from the relay is opened before the client sees it.

use std::collections::VecDeque;
use std::time::Instant;

use super::tunnel::{Received, Tunnel};
use super::{Client, Config, Event};
use crate::proto::secure::keys::{Keypair, PublicKey};

/// The client and its secure channel.
#[derive(Debug)]
pub struct SecureClient {
    client: Client,
    tunnel: Tunnel,
    /// What the tunnel has to tell, before the client's events.
    events: VecDeque<Event>,
    /// The packet of the datagram being handled, opened.
    opened: Vec<u8>,
    /// The client's moves to another relay the tunnel has followed: at each, it starts afresh.
    moves: u32,
}

impl SecureClient {
    /// A client that starts joining at `now` as `identity`, with the relay whose key is
    /// `relay_key` (`None`: the one it offers on first contact, told as
    /// [`Event::RelayKeyLearnt`]).
    pub fn new(
        config: Config,
        identity: Keypair,
        relay_key: Option<PublicKey>,
        now: Instant,
    ) -> Self {
        Self {
            client: Client::new(config, now),
            tunnel: Tunnel::new(identity, relay_key),
            events: VecDeque::new(),
            opened: Vec::new(),
            moves: 0,
        }
    }

    /// The client's rules.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The client's rules, to drive (what the user sends, the clock, leaving).
    pub fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The user's public key.
    pub fn identity(&self) -> PublicKey {
        self.tunnel.identity()
    }

    /// The relay's key, pinned or learnt on first contact.
    pub fn relay_key(&self) -> Option<PublicKey> {
        self.tunnel.relay_key()
    }

    /// True once the client is done: it left, was refused, or the relay offered a key other
    /// than the pinned one.
    pub fn is_closed(&self) -> bool {
        self.tunnel.is_refused() || self.client.is_closed()
    }

    /// True once the relay offered a key other than the pinned one: nothing more is sent.
    pub fn key_refused(&self) -> bool {
        self.tunnel.is_refused()
    }

    /// The client moved to another relay of its list (see [`Client::relay`]): the tunnel
    /// starts afresh with it, the pinned key (or the one learnt) the same.
    fn follow_moves(&mut self) {
        if self.client.moves() != self.moves {
            self.moves = self.client.moves();
            self.tunnel.restart();
        }
    }

    /// Takes one datagram from the relay in use ([`Client::relay`]).
    pub fn handle(&mut self, now: Instant, datagram: &[u8]) {
        if self.is_closed() {
            return;
        }
        self.follow_moves();
        let mut packet = std::mem::take(&mut self.opened);
        packet.clear();
        match self.tunnel.receive(now, datagram, &mut packet) {
            Received::Packet { current } => {
                let sessions = self.client.sessions();
                self.client.handle(now, &packet);
                if current && self.client.sessions() != sessions {
                    // A new session, welcomed on the current keys: the relay lost the last
                    // one (it restarted, or forgot a silent client). What the keys before
                    // still bring is of that session (of a relay process gone, maybe): nothing
                    // to take. (A WELCOME on the keys before the current ones came from the
                    // process that has the new session, which still seals with them until
                    // the client's first DATA on the new ones: they stay.)
                    self.tunnel.forget_previous();
                }
            }
            Received::Up => self.client.transport_ready(now),
            Received::Learnt(key) => self.events.push_back(Event::RelayKeyLearnt { key }),
            Received::Changed { pinned, offered } => {
                self.events
                    .push_back(Event::RelayKeyChanged { pinned, offered });
            }
            // A new handshake starts with the next packet.
            Received::Challenged | Received::Lost | Received::Dropped(_) => {}
        }
        self.opened = packet;
    }

    /// The next datagram to send to the relay in use ([`Client::relay`]), sealed at `now`. A
    /// packet that finds no transport is dropped (what matters goes again on the client's
    /// timers, and the JOIN at once when the handshake is done) and the handshake's datagrams
    /// go instead.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        self.follow_moves();
        loop {
            if let Some(frame) = self.tunnel.poll_transmit() {
                return Some(frame);
            }
            if self.tunnel.is_refused() {
                return None;
            }
            let packet = self.client.poll_transmit()?;
            let mut datagram = Vec::new();
            if self.tunnel.seal(now, &packet, &mut datagram) {
                return Some(datagram);
            }
        }
    }

    /// The next thing to show the user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front().or_else(|| self.client.poll_event())
    }
}

/// The client's rules are reached through the secure client ([`Client::send`],
/// [`Client::handle_timeout`], [`Client::leave`]…); only what crosses the network is the
/// secure client's own: [`SecureClient::handle`], [`SecureClient::poll_transmit`], and what
/// it tells ([`SecureClient::poll_event`], [`SecureClient::is_closed`]).
impl std::ops::Deref for SecureClient {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for SecureClient {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}
