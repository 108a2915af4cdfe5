//! Datagrams sent many to a system call (sendmmsg): the relay's fan-out leaves in batches.

use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};

use rustix::io::Errno;
use rustix::net::addr::SocketAddrArg;
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
use smol::Async;

use crate::proto::wire::MAX_DATAGRAM;

/// Datagrams a batch holds: one system call sends up to this many.
pub const BATCH_SEND: usize = 32;

/// Datagrams waiting to be sent together, each with its address.
#[derive(Debug)]
pub struct Batch {
    datagrams: Vec<Vec<u8>>,
    addrs: Vec<SocketAddrAny>,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            datagrams: (0..BATCH_SEND)
                .map(|_| Vec::with_capacity(MAX_DATAGRAM))
                .collect(),
            addrs: Vec::with_capacity(BATCH_SEND),
        }
    }
}

impl Batch {
    /// The buffer of the next datagram, to write it into; [`Batch::push`] takes it.
    pub fn next_buffer(&mut self) -> &mut Vec<u8> {
        &mut self.datagrams[self.addrs.len()]
    }

    /// Takes the datagram written into [`Batch::next_buffer`], for `to`.
    pub fn push(&mut self, to: SocketAddr) {
        self.addrs.push(to.as_any());
    }

    /// How many datagrams it holds.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// True when no more datagram fits.
    pub fn is_full(&self) -> bool {
        self.addrs.len() == BATCH_SEND
    }

    /// True when it holds no datagram.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Sends every datagram it holds, waiting while the socket's buffer is full, and empties
    /// it. A datagram the system refuses (its address unreachable, say) is skipped: UDP is
    /// best-effort, and the clients' retransmission and gap repair recover what is lost.
    pub async fn send(&mut self, socket: &Async<UdpSocket>) {
        let mut first = 0;
        while first < self.addrs.len() {
            match self.send_from(socket, first) {
                Ok(n) => first += n.max(1),
                Err(Errno::AGAIN) => {
                    if socket.writable().await.is_err() {
                        // The socket is broken for good: what is left is lost like the rest.
                        break;
                    }
                }
                Err(Errno::INTR) => {}
                Err(e) => {
                    tracing::debug!(to = ?self.addrs[first], error = %e, "send failed");
                    first += 1;
                }
            }
        }
        self.addrs.clear();
    }

    /// One sendmmsg of the datagrams from `first` on: how many left.
    fn send_from(&self, socket: &Async<UdpSocket>, first: usize) -> Result<usize, Errno> {
        let n = self.addrs.len() - first;
        let slices: Vec<[IoSlice<'_>; 1]> = (self.datagrams[first..first + n].iter())
            .map(|d| [IoSlice::new(d)])
            .collect();
        let mut control: Vec<SendAncillaryBuffer<'_, '_, '_>> =
            (0..n).map(|_| SendAncillaryBuffer::default()).collect();
        let mut headers: Vec<MMsgHdr<'_>> = (self.addrs[first..].iter())
            .zip(&slices)
            .zip(control.iter_mut())
            .map(|((addr, slice), control)| MMsgHdr::new_with_addr(addr, slice, control))
            .collect();
        sendmmsg(socket.get_ref(), &mut headers, SendFlags::DONTWAIT)
    }
}
