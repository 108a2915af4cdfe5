//! The client's side of the secure channel: the handshake with the relay (the relay's key pinned, or learnt on first contact), packets sealed and opened, keys replaced before they grow old.
//!
//! A handshake starts whenever there is something to seal and no transport to seal it
//! with, and when the transport wants replacing ([`REKEY_AFTER`](crate::proto::secure::REKEY_AFTER)):
//! a HELLO, a CHALLENGE with the cookie and the relay's key, the HELLO again with the cookie,
//! and the relay's REPLY. While the relay's key is not known, the first HELLO carries random
//! bytes and the CHALLENGE's key is taken (and reported, to be pinned); a CHALLENGE with a
//! key other than the pinned one stops the tunnel for good. A new transport replaces the
//! current one at once; the one before still opens what the relay sealed with it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::proto::secure::frame::{ECHO_LEN, Frame, HELLO_NOISE_LEN};
use crate::proto::secure::keys::{Keypair, PublicKey};
use crate::proto::secure::noise::Initiation;
use crate::proto::secure::transport::{Transport, Unopened};

/// How long a HELLO waits for its answer before it goes again (when there is something to
/// send).
pub const HELLO_AGAIN: Duration = Duration::from_secs(1);

/// What a datagram from the relay was.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A DATA opened: the packet is in the caller's buffer.
    Packet {
        /// It opened on the current keys, not on those before them.
        current: bool,
    },
    /// A handshake finished: what waited for a transport can go now.
    Up,
    /// A CHALLENGE taken: the HELLO goes again with its cookie ([`Tunnel::poll_transmit`]).
    Challenged,
    /// First contact: the relay's key, taken for this relay (to be pinned). The handshake
    /// goes on with it.
    Learnt(PublicKey),
    /// The relay offered a key other than the one pinned: nothing more is sent.
    Changed {
        /// The key pinned for this relay.
        pinned: PublicKey,
        /// The key offered.
        offered: PublicKey,
    },
    /// The relay has no transport for what the client sealed (it restarted, or the keys
    /// expired there): a new handshake starts with the next packet.
    Lost,
    /// Dropped, for this reason.
    Dropped(&'static str),
}

/// A handshake under way.
#[derive(Debug)]
struct Handshake {
    /// The client's index for the transport to be.
    local: u32,
    /// The Noise initiation, once the relay's key is known.
    init: Option<Initiation>,
    /// What goes in the HELLO: the initiation's message, or random bytes before the key.
    noise: [u8; HELLO_NOISE_LEN],
    sent_at: Option<Instant>,
}

/// A transport in use, and the index the relay writes on what it seals with it.
#[derive(Debug)]
struct Keys {
    local: u32,
    transport: Transport,
}

/// The client's secure channel with one relay.
#[derive(Debug)]
pub struct Tunnel {
    identity: Keypair,
    relay: Option<PublicKey>,
    cookie: Vec<u8>,
    /// Boxed: a handshake is under way for a moment now and then, and holds a kilobyte.
    handshake: Option<Box<Handshake>>,
    current: Option<Keys>,
    previous: Option<Keys>,
    /// The relay offered another key than the pinned one: the tunnel is closed.
    refused: bool,
    out: VecDeque<Vec<u8>>,
}

impl Tunnel {
    /// A tunnel for the client `identity` to a relay whose key is `relay` (pinned), or not
    /// known yet (`None`: the first CHALLENGE's is taken).
    pub fn new(identity: Keypair, relay: Option<PublicKey>) -> Self {
        Self {
            identity,
            relay,
            cookie: Vec::new(),
            handshake: None,
            current: None,
            previous: None,
            refused: false,
            out: VecDeque::new(),
        }
    }

    /// The client's public key.
    pub fn identity(&self) -> PublicKey {
        self.identity.public()
    }

    /// The relay's key, pinned or learnt.
    pub fn relay_key(&self) -> Option<PublicKey> {
        self.relay
    }

    /// True once the relay offered a key other than the pinned one.
    pub fn is_refused(&self) -> bool {
        self.refused
    }

    /// True when a packet sealed now goes out.
    pub fn is_up(&self, now: Instant) -> bool {
        self.current
            .as_ref()
            .is_some_and(|k| !k.transport.is_expired(now))
    }

    /// Seals `packet` into a DATA frame appended to `out`: false, with nothing written, when
    /// there is no transport yet (a handshake is started or sent again, see
    /// [`Tunnel::poll_transmit`]; the packet is the caller's to send again later).
    pub fn seal(&mut self, now: Instant, packet: &[u8], out: &mut Vec<u8>) -> bool {
        let sealed = match &mut self.current {
            Some(k) if !k.transport.is_expired(now) => {
                if k.transport.wants_rekey(now) {
                    self.hello(now);
                }
                self.current
                    .as_mut()
                    .is_some_and(|k| k.transport.seal_into(packet, out))
            }
            _ => false,
        };
        if !sealed {
            self.hello(now);
        }
        sealed
    }

    /// The next handshake datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// Starts a handshake, or sends its HELLO again when [`HELLO_AGAIN`] has passed.
    fn hello(&mut self, now: Instant) {
        if self.refused {
            return;
        }
        if self.handshake.is_none() {
            self.handshake = Some(Box::new(self.start()));
        }
        let h = self.handshake.as_mut().expect("just made");
        if h.sent_at
            .is_some_and(|t| now.saturating_duration_since(t) < HELLO_AGAIN)
        {
            return;
        }
        h.sent_at = Some(now);
        let hello = Frame::Hello {
            sender: h.local,
            cookie: &self.cookie,
            noise: &h.noise,
        }
        .encode();
        self.out.push_back(hello);
    }

    fn start(&self) -> Handshake {
        let local = random_index();
        match &self.relay {
            Some(key) => {
                let init = Initiation::new(&self.identity, key);
                let noise = *init.message();
                Handshake {
                    local,
                    init: Some(init),
                    noise,
                    sent_at: None,
                }
            }
            None => {
                let mut noise = [0; HELLO_NOISE_LEN];
                getrandom::fill(&mut noise).expect("the operating system gives random bytes");
                Handshake {
                    local,
                    init: None,
                    noise,
                    sent_at: None,
                }
            }
        }
    }

    /// Takes one datagram from the relay. An opened packet is appended to `out`.
    pub fn receive(&mut self, now: Instant, datagram: &[u8], out: &mut Vec<u8>) -> Received {
        let Ok(frame) = Frame::decode(datagram) else {
            return Received::Dropped("not a frame of protocol version 2");
        };
        match frame {
            Frame::Challenge {
                echo,
                cookie,
                relay,
            } => self.challenge(now, echo, cookie, relay),
            Frame::Reply {
                sender,
                receiver,
                noise,
            } => {
                let Some(h) = self
                    .handshake
                    .take_if(|h| h.local == receiver && h.init.is_some())
                else {
                    return Received::Dropped("a REPLY to no handshake of ours");
                };
                let init = h.init.expect("checked");
                match init.finish(noise) {
                    Ok(keys) => {
                        let keys = Keys {
                            local: h.local,
                            transport: Transport::new(keys, sender, now),
                        };
                        self.previous = self.current.replace(keys);
                        Received::Up
                    }
                    // Forged, or for another handshake: the next packet starts a new one.
                    Err(_) => Received::Dropped("a REPLY that does not authenticate"),
                }
            }
            Frame::Data {
                receiver,
                counter,
                sealed,
            } => {
                let current = self.current.as_ref().is_some_and(|k| k.local == receiver);
                let keys = [&mut self.current, &mut self.previous]
                    .into_iter()
                    .flatten()
                    .find(|k| k.local == receiver);
                let Some(keys) = keys else {
                    return Received::Dropped("a DATA for no transport of ours");
                };
                if keys.transport.is_expired(now) {
                    return Received::Dropped("a DATA for expired keys");
                }
                match keys.transport.open_into(counter, sealed, out) {
                    Ok(()) => Received::Packet { current },
                    Err(Unopened::Forged) => Received::Dropped("a DATA that does not authenticate"),
                    Err(Unopened::Replayed) => Received::Dropped("a DATA opened before"),
                }
            }
            Frame::Unknown { receiver, counter } => {
                // Only for what this client sealed with its current keys: nobody off the path
                // knows the relay's index, nor which counters were used.
                let ours = self.current.as_ref().is_some_and(|k| {
                    k.transport.remote() == receiver && counter < k.transport.sealed()
                });
                if !ours {
                    return Received::Dropped("an UNKNOWN for nothing we sent");
                }
                self.current = None;
                self.previous = None;
                Received::Lost
            }
            Frame::Hello { .. } => Received::Dropped("a client's frame sent to a client"),
        }
    }

    /// Starts afresh with another relay of the same key (another address of the cluster):
    /// the handshake under way, the transports and the cookie are the last relay's, and go;
    /// the next packet starts a handshake with the new one, which must offer the same key.
    pub fn restart(&mut self) {
        self.handshake = None;
        self.current = None;
        self.previous = None;
        self.cookie.clear();
        self.out.clear();
    }

    /// Forgets the keys before the current ones: what they open from now on is dropped.
    pub fn forget_previous(&mut self) {
        self.previous = None;
    }

    fn challenge(
        &mut self,
        now: Instant,
        echo: [u8; ECHO_LEN],
        cookie: &[u8],
        offered: PublicKey,
    ) -> Received {
        let Some(h) = &self.handshake else {
            return Received::Dropped("a CHALLENGE to no handshake of ours");
        };
        if h.noise[..ECHO_LEN] != echo {
            return Received::Dropped("a CHALLENGE to another HELLO");
        }
        self.cookie = cookie.to_vec();
        let learnt = match self.relay {
            Some(pinned) if pinned != offered => {
                self.refused = true;
                self.handshake = None;
                return Received::Changed { pinned, offered };
            }
            Some(_) => None,
            None => {
                self.relay = Some(offered);
                // The handshake starts again, with the key now known.
                self.handshake = None;
                Some(offered)
            }
        };
        // Answered: the HELLO goes again at once, with the cookie.
        if let Some(h) = &mut self.handshake {
            h.sent_at = None;
        }
        self.hello(now);
        match learnt {
            Some(key) => Received::Learnt(key),
            None => Received::Challenged,
        }
    }
}

/// A random index for a transport, so that nobody off the path can guess it.
fn random_index() -> u32 {
    let mut b = [0; 4];
    getrandom::fill(&mut b).expect("the operating system gives random bytes");
    u32::from_be_bytes(b)
}
