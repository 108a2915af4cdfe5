//! Datagrams sent many to a system call: the relay's fan-out leaves in batches, each run of
//! datagrams to one address in one send with UDP segmentation offload (GSO: the kernel, or
//! the network card, cuts them apart, so that they cross the stack once), the others many to
//! a sendmmsg.

use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sockopt};

use rustix::io::Errno;
use rustix::net::addr::SocketAddrArg;
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
use smol::Async;

use crate::proto::wire::MAX_DATAGRAM;

/// Datagrams a batch holds: one system call sends up to this many.
pub const BATCH_SEND: usize = 32;

/// Bytes one segmented send carries at most (a UDP datagram's 65,507, with room to spare).
const MAX_SEGMENTED: usize = 60_000;

/// Segmented sends refused in a row (by the system, not for one destination: those are sent
/// one by one and the next run tries again) after which the relay sends no more of them.
const REFUSALS: u32 = 64;

/// Whether segmented sends are tried: not known until the first send asks the socket (a
/// kernel before 4.18 knows no `UDP_SEGMENT`, and would ignore the control message rather
/// than refuse it), then on, or off for good.
static SEGMENTS: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;
/// Segmented sends refused since the last one that went.
static REFUSED: AtomicU32 = AtomicU32::new(0);

/// Whether segmented sends are tried on `socket` (asked the first time).
fn segments(socket: &UdpSocket) -> bool {
    match SEGMENTS.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => {
            let on = cfg!(target_os = "linux")
                && nix::sys::socket::getsockopt(socket, sockopt::UdpGsoSegment).is_ok();
            if !on {
                tracing::debug!(
                    "this system does not segment UDP sends: every datagram goes on its own"
                );
            }
            SEGMENTS.store(if on { ON } else { OFF }, Ordering::Relaxed);
            on
        }
    }
}

/// Datagrams waiting to be sent together, each with its address.
#[derive(Debug)]
pub struct Batch {
    datagrams: Vec<Vec<u8>>,
    addrs: Vec<SocketAddrAny>,
    /// The same addresses, to tell runs to one address apart.
    tos: Vec<SocketAddr>,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            datagrams: (0..BATCH_SEND)
                .map(|_| Vec::with_capacity(MAX_DATAGRAM))
                .collect(),
            addrs: Vec::with_capacity(BATCH_SEND),
            tos: Vec::with_capacity(BATCH_SEND),
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
        self.tos.push(to);
    }

    /// How many datagrams it holds.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// True when no more datagram fits.
    pub fn is_full(&self) -> bool {
        self.addrs.len() == BATCH_SEND
    }

    /// Forgets every datagram it holds, unsent.
    pub fn clear(&mut self) {
        self.addrs.clear();
        self.tos.clear();
    }

    /// True when it holds no datagram.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Sends every datagram it holds, waiting while the socket's buffer is full, and empties
    /// it. A datagram the system refuses (its address unreachable, say) is skipped: UDP is
    /// best-effort, and the clients' retransmission and gap repair recover what is lost.
    pub async fn send(&mut self, socket: &Async<UdpSocket>) {
        let segments = segments(socket.get_ref());
        let mut first = 0;
        while first < self.addrs.len() {
            let run = self.run_at(first, segments);
            let sent = if run > 1 {
                self.send_segmented(socket, first, run)
            } else {
                self.send_from(socket, first, self.singles_from(first, segments))
            };
            match sent {
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
        self.clear();
    }

    /// How many datagrams from `first` on one segmented send can carry: those to the same
    /// address, each as long as the first but the last, which may be shorter (what the kernel
    /// cuts apart again at the first's length). 1 when segmenting is off, or for an empty
    /// datagram (a segment size of 0 is no segmenting).
    fn run_at(&self, first: usize, segments: bool) -> usize {
        let size = self.datagrams[first].len();
        if !segments || size == 0 {
            return 1;
        }
        let mut n = 1;
        let mut bytes = size;
        while let (Some(to), Some(d)) = (self.tos.get(first + n), self.datagrams.get(first + n)) {
            if *to != self.tos[first] || d.len() > size || bytes + d.len() > MAX_SEGMENTED {
                break;
            }
            n += 1;
            bytes += d.len();
            if d.len() < size {
                break;
            }
        }
        n
    }

    /// How many datagrams from `first` on go to a sendmmsg, one by one: up to the next run
    /// that one segmented send carries.
    fn singles_from(&self, first: usize, segments: bool) -> usize {
        (first + 1..self.addrs.len())
            .find(|&i| self.run_at(i, segments) > 1)
            .unwrap_or(self.addrs.len())
            - first
    }

    /// One send of `n` datagrams from `first` on, all to one address, segmented at the
    /// first's length: how many left. When it is refused (for that destination: a path MTU
    /// below the datagrams', a route through IPsec; or by the system), the run goes by
    /// sendmmsg, each datagram's error its own; [`REFUSALS`] refusals in a row turn
    /// segmenting off.
    fn send_segmented(
        &self,
        socket: &Async<UdpSocket>,
        first: usize,
        n: usize,
    ) -> Result<usize, Errno> {
        let slices: Vec<IoSlice<'_>> = (self.datagrams[first..first + n].iter())
            .map(|d| IoSlice::new(d))
            .collect();
        let size = u16::try_from(self.datagrams[first].len()).unwrap_or(u16::MAX);
        let to = SockaddrStorage::from(self.tos[first]);
        match nix::sys::socket::sendmsg(
            socket.get_ref().as_raw_fd(),
            &slices,
            &[ControlMessage::UdpGsoSegments(&size)],
            MsgFlags::MSG_DONTWAIT,
            Some(&to),
        ) {
            Ok(_) => {
                REFUSED.store(0, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => match Errno::from_raw_os_error(e as i32) {
                e @ (Errno::AGAIN | Errno::INTR) => Err(e),
                e => {
                    tracing::debug!(to = %self.tos[first], error = %e, "segmented send refused; its datagrams go one by one");
                    if REFUSED.fetch_add(1, Ordering::Relaxed) + 1 == REFUSALS {
                        SEGMENTS.store(OFF, Ordering::Relaxed);
                        tracing::warn!(error = %e, "{REFUSALS} segmented sends were refused in a row: the relay sends every datagram on its own from now on");
                    }
                    self.send_from(socket, first, n)
                }
            },
        }
    }

    /// One sendmmsg of `n` datagrams from `first` on: how many left.
    fn send_from(&self, socket: &Async<UdpSocket>, first: usize, n: usize) -> Result<usize, Errno> {
        let slices: Vec<[IoSlice<'_>; 1]> = (self.datagrams[first..first + n].iter())
            .map(|d| [IoSlice::new(d)])
            .collect();
        let mut control: Vec<SendAncillaryBuffer<'_, '_, '_>> =
            (0..n).map(|_| SendAncillaryBuffer::default()).collect();
        let mut headers: Vec<MMsgHdr<'_>> = (self.addrs[first..first + n].iter())
            .zip(&slices)
            .zip(control.iter_mut())
            .map(|((addr, slice), control)| MMsgHdr::new_with_addr(addr, slice, control))
            .collect();
        sendmmsg(socket.get_ref(), &mut headers, SendFlags::DONTWAIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(datagrams: &[(SocketAddr, usize)]) -> Batch {
        let mut b = Batch::default();
        for (i, &(to, len)) in datagrams.iter().enumerate() {
            let buf = b.next_buffer();
            buf.clear();
            buf.resize(len, i as u8);
            b.push(to);
        }
        b
    }

    #[test]
    fn a_run_is_one_address_at_one_length_but_its_last() {
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        let batch = batch(&[
            (a, 100),
            (a, 100),
            (a, 60),
            (a, 60),
            (b, 50),
            (a, 70),
            (a, 80),
        ]);
        // The shorter third ends the first run; the fourth starts one of its own.
        assert_eq!(batch.run_at(0, true), 3);
        assert_eq!(batch.run_at(3, true), 1);
        // Longer than the first: not in its run.
        assert_eq!(batch.run_at(5, true), 1);
        assert_eq!(batch.singles_from(3, true), 4);
        assert_eq!(batch.singles_from(4, true), 3);
        // Empty datagrams are never segmented (a segment size of 0 means none).
        assert_eq!(super::tests::batch(&[(a, 0), (a, 0)]).run_at(0, true), 1);
        // Off: every datagram on its own.
        assert_eq!(batch.run_at(0, false), 1);
        assert_eq!(batch.singles_from(0, false), 7);
    }

    #[test]
    fn datagrams_sent_in_runs_arrive_whole_and_in_order() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (to, elsewhere) = (receiver.local_addr().unwrap(), other.local_addr().unwrap());
        let plan = [
            (to, 1200),
            (to, 1200),
            (to, 1200),
            (to, 700),
            (elsewhere, 10),
            (to, 1),
            (to, 1),
            (to, 900),
        ];
        let mut b = batch(&plan);
        let socket = Async::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        smol::block_on(b.send(&socket));
        assert!(b.is_empty());
        let mut buf = [0u8; 2000];
        for (i, &(at, len)) in plan.iter().enumerate() {
            if at != to {
                continue;
            }
            let n = receiver.recv(&mut buf).expect("each datagram arrives");
            assert_eq!(n, len, "datagram {i} arrives at its own length");
            assert!(buf[..n].iter().all(|&x| x == i as u8), "datagram {i} whole");
        }
        other
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(other.recv(&mut buf).unwrap(), 10);
    }
}
