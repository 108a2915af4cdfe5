//! A bench client's secure channel: its own [`Tunnel`] (an identity of its own, the relay's key
//! pinned or learnt), the handshake's datagrams sent on its socket, every packet sealed and
//! every datagram opened in buffers the caller keeps, so that a datagram costs no allocation.
//!
//! The simulated clients, the attackers and the large-log client all go through it: the relay
//! they measure sees what a real client sends.

use std::io;
use std::time::{Duration, Instant};

use crate::client::tunnel::{Received, Tunnel};
use crate::proto::secure::keys::{Keypair, PublicKey};

/// Longest a client waits for its handshake, from its first HELLO: the relay's cookie and
/// Noise reply take a millisecond on loopback, and a HELLO lost goes again every second
/// ([`crate::client::tunnel::HELLO_AGAIN`]).
pub(super) const HANDSHAKE_BOUND: Duration = Duration::from_secs(15);

/// A connected socket a link sends on.
pub(super) trait Socket {
    /// Sends one datagram to the relay.
    fn send_datagram(&self, bytes: &[u8]) -> io::Result<usize>;
}

impl Socket for mio::net::UdpSocket {
    fn send_datagram(&self, bytes: &[u8]) -> io::Result<usize> {
        self.send(bytes)
    }
}

impl Socket for std::net::UdpSocket {
    fn send_datagram(&self, bytes: &[u8]) -> io::Result<usize> {
        self.send(bytes)
    }
}

/// The buffers the clients of one thread share: the datagram being sealed and the packet
/// being opened.
#[derive(Debug, Default)]
pub(super) struct Buffers {
    /// What [`Link::send`] seals into.
    pub(super) sealed: Vec<u8>,
    /// What [`Link::open`] opens into.
    pub(super) opened: Vec<u8>,
}

/// What became of a packet given to [`Link::send`].
#[derive(Debug)]
pub(super) enum Sent {
    /// Sealed and sent.
    Sealed,
    /// Sealed, but the socket would not take it: lost, as on any network.
    Refused(io::Error),
    /// No transport yet: the packet is dropped (the caller's timers send it again) and the
    /// handshake's datagrams went instead.
    Handshaking,
}

/// What a datagram from the relay was, to the client.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Opened {
    /// A packet, in the caller's buffer.
    Packet,
    /// The handshake is done: what waited for it goes now (the JOIN).
    Up,
    /// Nothing for the client: a step of the handshake (answered at once), or dropped.
    Nothing,
}

/// One client's secure channel with the relay.
#[derive(Debug)]
pub(super) struct Link {
    tunnel: Tunnel,
    /// Since when a packet waits for a transport (`None` while one is up).
    waiting: Option<Instant>,
    /// True once the relay answered a HELLO with its CHALLENGE.
    challenged: bool,
}

impl Link {
    /// A link with an identity of its own, to the relay whose key is `relay` (pinned), or
    /// the one it offers (`None`).
    pub(super) fn new(relay: Option<PublicKey>) -> Self {
        Self {
            tunnel: Tunnel::new(Keypair::generate(), relay),
            waiting: None,
            challenged: false,
        }
    }

    /// Seals `packet` into `sealed` (cleared first) and sends it on `socket`; without a
    /// transport, starts the handshake (or sends its HELLO again when a second has passed).
    pub(super) fn send(
        &mut self,
        socket: &impl Socket,
        now: Instant,
        packet: &[u8],
        sealed: &mut Vec<u8>,
    ) -> Sent {
        sealed.clear();
        let sent = if self.tunnel.seal(now, packet, sealed) {
            match socket.send_datagram(sealed) {
                Ok(_) => Sent::Sealed,
                Err(e) => Sent::Refused(e),
            }
        } else {
            self.waiting.get_or_insert(now);
            Sent::Handshaking
        };
        // A HELLO to start or replace the keys.
        self.flush(socket);
        sent
    }

    /// Opens `datagram` from the relay, its packet into `opened` (cleared first); a step of
    /// the handshake is answered at once on `socket`.
    pub(super) fn open(
        &mut self,
        socket: &impl Socket,
        now: Instant,
        datagram: &[u8],
        opened: &mut Vec<u8>,
    ) -> Opened {
        opened.clear();
        let received = self.tunnel.receive(now, datagram, opened);
        self.flush(socket);
        match received {
            Received::Packet { .. } => Opened::Packet,
            Received::Up => {
                self.waiting = None;
                Opened::Up
            }
            Received::Challenged | Received::Learnt(_) => {
                self.challenged = true;
                Opened::Nothing
            }
            // What a lossy path makes: a second answer to a HELLO sent again, say. The
            // bench counts what is delivered, not what is dropped on the way.
            Received::Changed { .. } | Received::Lost | Received::Dropped(_) => Opened::Nothing,
        }
    }

    /// Why the handshake will not complete, once it is clear: the relay offered another key
    /// than the pinned one, or no transport came within [`HANDSHAKE_BOUND`].
    pub(super) fn stuck(&self, now: Instant) -> Option<String> {
        if self.tunnel.is_refused() {
            return Some(
                "the relay offered a key other than its own: the handshake was refused".into(),
            );
        }
        let since = self.waiting?;
        (now >= since + HANDSHAKE_BOUND).then(|| {
            format!(
                "no handshake with the relay within {} s ({})",
                HANDSHAKE_BOUND.as_secs(),
                if self.challenged {
                    "its cookie came, no REPLY"
                } else {
                    "no CHALLENGE to its HELLO"
                }
            )
        })
    }

    /// Sends the handshake's datagrams: lost ones go again with the next HELLO.
    fn flush(&mut self, socket: &impl Socket) {
        while let Some(frame) = self.tunnel.poll_transmit() {
            socket.send_datagram(&frame).ok();
        }
    }
}
