//! The socket to the relay in use: connected to it (so that only it is heard, and the system says when nothing listens there), made anew when the client moves to another relay of its list.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use smol::Async;

use crate::client::{Event, SecureClient};
use crate::term::output::Output;
use crate::term::render::Renderer;

/// The socket, the relay it is connected to, and whether the user was told nothing listens
/// there.
#[derive(Debug)]
pub(super) struct Link {
    socket: Async<UdpSocket>,
    /// The relay the socket is connected to.
    at: SocketAddr,
    /// Whether "no relay at" was said since the relay last answered (once an episode).
    told_refused: bool,
}

/// Bytes of receive buffer the client asks for: a busy room's turn of the longest messages
/// (up to a window of 256 datagrams, each charged about twice its size) fits, where the
/// kernel's default (208 KiB) drops most of it and the client must ask for it again. The
/// kernel caps it at `net.core.rmem_max`; best effort.
const RECEIVE_BUFFER: usize = 1 << 20;

/// A socket of `to`'s family, connected to it: it hears nobody else.
fn connect(to: SocketAddr) -> io::Result<Async<UdpSocket>> {
    let local: SocketAddr = if to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = Async::<UdpSocket>::bind(local)?;
    let _ = socket2::SockRef::from(socket.get_ref()).set_recv_buffer_size(RECEIVE_BUFFER);
    socket.get_ref().connect(to)?;
    Ok(socket)
}

impl Link {
    /// A socket to the relay `client` uses first.
    ///
    /// # Errors
    /// When the socket cannot be made or connected.
    pub(super) fn open(client: &SecureClient) -> io::Result<Link> {
        let at = (client.relay()).ok_or_else(|| io::Error::other("no relay to join"))?;
        Ok(Link {
            socket: connect(at)?,
            at,
            told_refused: false,
        })
    }

    /// The socket, connected to the relay in use.
    pub(super) fn socket(&self) -> &Async<UdpSocket> {
        &self.socket
    }

    /// Whether the user was told that nothing listens at the relay's address.
    pub(super) fn told_refused(&self) -> bool {
        self.told_refused
    }

    /// The relay answered.
    pub(super) fn heard(&mut self) {
        self.told_refused = false;
    }

    /// Sends what the client has for its relay, through a new socket when it moved to another
    /// one since (its datagrams for the last are dropped with the old socket).
    ///
    /// # Errors
    /// When a new socket cannot be made.
    pub(super) async fn send_all(
        &mut self,
        client: &mut SecureClient,
        output: &mut Output,
        renderer: Renderer,
    ) -> io::Result<()> {
        loop {
            if let Some(to) = client.relay().filter(|&to| to != self.at) {
                self.socket = connect(to)?;
                self.at = to;
                self.told_refused = false;
            }
            let mut moved = false;
            while let Some(bytes) = client.poll_transmit(Instant::now()) {
                // Refused sends (the relay is down) are retried by the client's own timers.
                if let Err(e) = self.socket.send(&bytes).await {
                    moved = self.failed(&e, client, output, renderer);
                    if moved {
                        break;
                    }
                }
            }
            if !moved {
                return Ok(());
            }
        }
    }

    /// What the system said of a datagram sent or to receive: an ICMP port unreachable, which a
    /// connected socket reports as a refused connection, means nothing listens at the relay's
    /// address. With other relays to try, the client moves to the next (true); else the user
    /// is told at once, once until the relay answers again (and not when its silence or its
    /// stop was said). The client's timers go on trying.
    pub(super) fn failed(
        &mut self,
        e: &io::Error,
        client: &mut SecureClient,
        output: &mut Output,
        renderer: Renderer,
    ) -> bool {
        if e.kind() != io::ErrorKind::ConnectionRefused {
            return false;
        }
        if client.unreachable(Instant::now()) {
            return true;
        }
        self.told_refused |= client.relay_silent();
        if !std::mem::replace(&mut self.told_refused, true) {
            let notice = Event::Notice(format!("no relay at {}: still trying", self.at));
            output.line(renderer.line(&notice));
        }
        false
    }
}
