//! What a simulated client's socket reads: with UDP GRO on (Linux), the kernel hands over
//! several of the relay's datagrams to it in one read, as the relay sent them in one
//! segmented send, with the datagrams' size; each read is cut back into its datagrams here.
//! Without GRO (another system, an older kernel) every read is one datagram, as before.
//!
//! A real network card does the same for the relay (it cuts a segmented send apart, so the
//! relay's CPU does not); on loopback, GRO on the receiving socket is what keeps that cost
//! off the relay's CPU too, and off the load's: one read, not one a datagram.

use std::io::{self, IoSliceMut};
use std::os::fd::AsRawFd as _;

use mio::net::UdpSocket;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};

/// Bytes a read may bring: the largest UDP datagram, which a coalesced read can fill.
const READ_BUFFER: usize = 1 << 16;

/// Asks the kernel to coalesce what `socket` receives (best effort: without it, reads are
/// one datagram each).
pub(super) fn coalesce(socket: &UdpSocket) {
    let _ = setsockopt(socket, sockopt::UdpGroSegment, &true);
}

/// Bytes of socket buffer a simulated client asks for: what a window of the longest messages
/// fanned out in one turn takes (256 datagrams, each charged about twice its size), where the
/// default (208 KiB) drops most of it; the kernel caps it at `net.core.rmem_max`.
const SOCKET_BUFFER: usize = 1 << 20;

/// Asks for a receive buffer of [`SOCKET_BUFFER`] bytes for `socket` (best effort).
pub(super) fn enlarge(socket: &UdpSocket) {
    let _ = socket2::SockRef::from(socket).set_recv_buffer_size(SOCKET_BUFFER);
}

/// A read's buffers, kept for every read of every client (no allocation a read).
#[derive(Debug)]
pub(super) struct Reader {
    buf: Vec<u8>,
    control: Vec<u8>,
}

impl Default for Reader {
    fn default() -> Self {
        Self {
            buf: vec![0; READ_BUFFER],
            control: nix::cmsg_space!(i32),
        }
    }
}

impl Reader {
    /// One read of `socket`: the datagrams it brought, in the order sent (an empty datagram
    /// brings none: no packet is empty).
    ///
    /// # Errors
    /// The socket's (`WouldBlock` when nothing waits).
    pub(super) fn read(&mut self, socket: &UdpSocket) -> io::Result<std::slice::Chunks<'_, u8>> {
        let (n, size) = {
            let mut iov = [IoSliceMut::new(&mut self.buf)];
            let msg = recvmsg::<()>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut self.control),
                MsgFlags::empty(),
            )
            .map_err(io::Error::from)?;
            // A read cut short (or its control message) is not cut apart: it reaches the
            // client as one datagram, which does not open, and is counted so.
            let whole = msg
                .flags
                .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
            let size = (msg.cmsgs().ok())
                .and_then(|mut c| {
                    c.find_map(|c| match c {
                        ControlMessageOwned::UdpGroSegments(s) => usize::try_from(s).ok(),
                        _ => None,
                    })
                })
                .filter(|&s| s > 0 && !whole);
            (msg.bytes, size)
        };
        Ok(self.buf[..n].chunks(size.unwrap_or(n.max(1))))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use smol::Async;

    use super::*;
    use crate::serve::batch::Batch;

    #[test]
    fn a_coalesced_read_is_cut_back_into_the_datagrams_sent() {
        // Blocking, with a bound on each read, for the test's sake (the load's are not).
        let blocking = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        blocking
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let socket = UdpSocket::from_std(blocking);
        coalesce(&socket);
        let to = socket.local_addr().unwrap();
        // Four of one size, then a shorter last: what the relay's fan-out to one member is.
        let sizes = [1100, 1100, 1100, 1100, 300, 20];
        let mut batch = Batch::default();
        for (i, &len) in sizes.iter().enumerate() {
            let buf = batch.next_buffer();
            buf.clear();
            buf.resize(len, i as u8);
            batch.push(to);
        }
        let sender = Async::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        smol::block_on(batch.send(&sender));
        let mut reader = Reader::default();
        let mut got: Vec<Vec<u8>> = Vec::new();
        while got.len() < sizes.len() {
            let datagrams = reader
                .read(&socket)
                .expect("the datagrams arrive within 5 s");
            got.extend(datagrams.map(<[u8]>::to_vec));
        }
        let lens: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(lens, sizes, "every datagram, whole, in order");
        for (i, d) in got.iter().enumerate() {
            assert!(
                d.iter().all(|&b| b == i as u8),
                "datagram {i} is its own bytes"
            );
        }
    }
}
