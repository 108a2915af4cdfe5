//! One session of the swarm: a socket bound to a loopback address of its own, its secure
//! channel (an identity of its own, every packet sealed), and where it is with the relay.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use mio::net::UdpSocket;
use socket2::{Domain, Protocol, Socket, Type};
use uuid::Uuid;

use super::super::link::Link;
use crate::proto::secure::keys::PublicKey;
use crate::proto::wire::Token;

/// The receive buffer asked for the sessions that do not read (the kernel doubles it).
const SMALL_BUFFER: usize = 4096;

/// Where a session is with the relay.
#[derive(Debug)]
pub(super) enum State {
    /// Its handshake, then its JOIN: when the JOIN goes again.
    Joining {
        /// When the JOIN (or the HELLO) goes again.
        retry_at: Instant,
    },
    /// Welcomed.
    Joined {
        /// The session's token.
        token: Token,
    },
    /// The relay answered ERROR NotJoined: it had dropped the session.
    Evicted,
    /// It left (LEAVE).
    Left,
}

/// One session.
#[derive(Debug)]
pub(super) struct Bot {
    /// Its socket, connected to the relay from its own loopback address.
    pub(super) socket: UdpSocket,
    /// Its secure channel with the relay.
    pub(super) link: Link,
    /// Its name in the room.
    pub(super) name: String,
    /// Random per session, as a client's instance.
    pub(super) instance: Uuid,
    /// Where it is with the relay.
    pub(super) state: State,
    /// When it last sent anything (for the keepalive while others join).
    pub(super) last_sent: Instant,
    /// The next csn it sends (a sender).
    pub(super) next_csn: u64,
    /// The highest csn acknowledged (a sender).
    pub(super) acked: u64,
    /// When `acked` last moved, or the last retransmission went (a sender).
    pub(super) progress_at: Instant,
    /// Whether its answers are read and counted.
    pub(super) listening: bool,
}

impl Bot {
    /// A session named `name` on `ip`, connected to `relay` whose key is `key` (learnt on
    /// first contact when `None`), with a small receive buffer unless `listening`.
    ///
    /// # Errors
    /// When its socket cannot be made (the open files limit, say).
    pub(super) fn new(
        ip: Ipv4Addr,
        relay: SocketAddr,
        key: Option<PublicKey>,
        name: String,
        listening: bool,
        now: Instant,
    ) -> io::Result<Bot> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        if !listening {
            socket.set_recv_buffer_size(SMALL_BUFFER)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddr::from((ip, 0)).into())?;
        socket.connect(&relay.into())?;
        Ok(Bot {
            socket: UdpSocket::from_std(socket.into()),
            link: Link::new(key),
            name,
            instance: Uuid::new_v4(),
            state: State::Joining { retry_at: now },
            last_sent: now,
            next_csn: 1,
            acked: 0,
            progress_at: now,
            listening,
        })
    }
}
