//! The raw loopback baseline: what this machine's UDP loopback carries without urc. One thread
//! sends datagrams of a fan-out datagram's size to as many sockets as the bench has clients,
//! round-robin; another reads them all, as the simulated clients read the relay's. The same
//! again with the relay's own ways of sending (a sendmmsg of 32, and runs of
//! [`RUN`] datagrams to one socket in one segmented send), and the data directory's disk's
//! flushes a second: the physical limits a run's figures are set beside.

use std::io::{self, Write as _};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use smol::Async;

use crate::serve::batch::Batch;

/// Datagrams to one socket in each segmented send of the baseline: about what a member gets
/// of W1's turn.
pub const RUN: usize = 8;
/// Flushes the disk's measure makes at most, and for how long at most: a rate, not a load.
const FLUSHES: u32 = 2000;
const FLUSH_BOUND: Duration = Duration::from_millis(200);

/// How the baseline's thread sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    /// One `sendto` a datagram.
    SendTo,
    /// The relay's [`Batch`]: 32 datagrams to as many sockets in one `sendmmsg`.
    Mmsg,
    /// The relay's [`Batch`]: runs of [`RUN`] datagrams to one socket, each in one segmented
    /// send (where the system segments; otherwise as `Mmsg`).
    Segmented,
}

/// How long the reader waits for stragglers once the sender is done.
const GRACE: Duration = Duration::from_millis(100);

/// What the baseline measured.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    /// Datagrams sent.
    pub sent: u64,
    /// How long sending took.
    pub send_time: Duration,
    /// Datagrams read by the receiving thread (the rest overflowed a socket's buffer).
    pub received: u64,
    /// From the first send to the last datagram read.
    pub receive_time: Duration,
}

impl Baseline {
    /// Datagrams sent a second by the one sending thread.
    pub fn sent_per_second(&self) -> f64 {
        self.sent as f64 / self.send_time.as_secs_f64().max(1e-9)
    }

    /// Datagrams read a second.
    pub fn received_per_second(&self) -> f64 {
        self.received as f64 / self.receive_time.as_secs_f64().max(1e-9)
    }
}

/// What the machine does at most beside the baseline: datagrams sent a second by the relay's
/// two ways of sending, and flushes of the data directory's disk a second.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Datagrams sent a second, 32 a `sendmmsg`.
    pub mmsg: f64,
    /// Datagrams sent a second, [`RUN`] a segmented send.
    pub segmented: f64,
    /// `fdatasync`s a second of a file appended to in the data directory, 1 KiB each.
    pub flushes: Option<f64>,
}

/// The sends of [`Limits`] as [`measure`] makes them, and the disk's flushes in `dir`.
///
/// # Errors
/// When a socket cannot be made or the reading thread fails.
pub(super) fn limits(
    sockets: usize,
    size: usize,
    count: u64,
    bound: Duration,
    dir: &Path,
) -> io::Result<Limits> {
    let mmsg = measure(sockets, size, count, bound, Sending::Mmsg)?;
    let segmented = measure(sockets, size, count, bound, Sending::Segmented)?;
    Ok(Limits {
        mmsg: mmsg.sent_per_second(),
        segmented: segmented.sent_per_second(),
        flushes: flushes(dir, bound.min(FLUSH_BOUND)).ok(),
    })
}

/// Flushes a second of a temporary file in `dir`, each after a 1 KiB append.
fn flushes(dir: &Path, bound: Duration) -> io::Result<f64> {
    let mut file = tempfile::tempfile_in(dir)?;
    let record = [b'x'; 1024];
    let start = Instant::now();
    let mut n = 0u32;
    while n < FLUSHES && start.elapsed() < bound {
        file.write_all(&record)?;
        file.sync_data()?;
        n += 1;
    }
    Ok(f64::from(n) / start.elapsed().as_secs_f64().max(1e-9))
}

/// Sends up to `count` datagrams of `size` bytes, for at most `bound`, to `sockets` sockets,
/// the way `sending` says.
///
/// # Errors
/// When a socket cannot be made or the reading thread fails.
pub(super) fn measure(
    sockets: usize,
    size: usize,
    count: u64,
    bound: Duration,
    sending: Sending,
) -> io::Result<Baseline> {
    let mut receivers = Vec::with_capacity(sockets);
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(sockets);
    let poll = Poll::new()?;
    for i in 0..sockets {
        let mut s = mio::net::UdpSocket::bind("127.0.0.1:0".parse().expect("an address"))?;
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)?;
        addrs.push(s.local_addr()?);
        receivers.push(s);
    }
    let done = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let reader = {
        let done = Arc::clone(&done);
        std::thread::Builder::new()
            .name("urc-bench-baseline".into())
            .spawn(move || read(poll, receivers, &done))?
    };
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let payload = vec![b'x'; size];
    let sent = match sending {
        Sending::SendTo => send_each(&sender, &payload, &addrs, count, start + bound),
        Sending::Mmsg => send_batches(sender, &payload, &addrs, (count, start + bound), 1)?,
        Sending::Segmented => send_batches(sender, &payload, &addrs, (count, start + bound), RUN)?,
    };
    let send_time = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let (received, last) = reader
        .join()
        .map_err(|_| io::Error::other("the baseline's reader panicked"))??;
    Ok(Baseline {
        sent,
        send_time,
        received,
        receive_time: last.map_or(send_time, |t| t.saturating_duration_since(start)),
    })
}

/// Sends `payload` to `addrs` round-robin, one `sendto` each, until `count` are sent or
/// `until`: how many were.
fn send_each(
    sender: &UdpSocket,
    payload: &[u8],
    addrs: &[SocketAddr],
    count: u64,
    until: Instant,
) -> u64 {
    let mut sent = 0u64;
    'send: while sent < count {
        // The clock is read once per round of sockets, not per datagram.
        if Instant::now() >= until {
            break;
        }
        for to in addrs {
            if sent >= count {
                break 'send;
            }
            if sender.send_to(payload, to).is_ok() {
                sent += 1;
            }
        }
    }
    sent
}

/// Sends `payload` to `addrs` through the relay's [`Batch`], `run` datagrams to each socket
/// in turn, until `count` are sent or `until`: how many were.
fn send_batches(
    sender: UdpSocket,
    payload: &[u8],
    addrs: &[SocketAddr],
    (count, until): (u64, Instant),
    run: usize,
) -> io::Result<u64> {
    let sender = Async::new(sender)?;
    let mut batch = Batch::default();
    let (mut sent, mut next) = (0u64, 0usize);
    while sent < count && Instant::now() < until {
        while !batch.is_full() && sent + (batch.len() as u64) < count {
            let buf = batch.next_buffer();
            buf.clear();
            buf.extend_from_slice(payload);
            batch.push(addrs[(next / run) % addrs.len()]);
            next += 1;
        }
        sent += batch.len() as u64;
        smol::block_on(batch.send(&sender));
    }
    Ok(sent)
}

/// Reads every socket until the sender is done and nothing more came for [`GRACE`].
fn read(
    mut poll: Poll,
    mut sockets: Vec<mio::net::UdpSocket>,
    done: &AtomicBool,
) -> io::Result<(u64, Option<Instant>)> {
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 2048];
    let (mut received, mut last) = (0u64, None);
    loop {
        poll.poll(&mut events, Some(GRACE))?;
        if events.is_empty() && done.load(Ordering::Relaxed) {
            return Ok((received, last));
        }
        for event in &events {
            let socket = &mut sockets[event.token().0];
            loop {
                match socket.recv(&mut buf) {
                    Ok(_) => {
                        received += 1;
                        last = Some(Instant::now());
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_of_sending_delivers_each_datagram_once() {
        for sending in [Sending::SendTo, Sending::Mmsg, Sending::Segmented] {
            let b = measure(3, 100, 96, Duration::from_secs(5), sending).unwrap();
            assert_eq!(b.sent, 96, "{sending:?}");
            assert_eq!(
                b.received, 96,
                "{sending:?}: read one by one, none lost on loopback"
            );
        }
    }

    #[test]
    fn the_disk_flushes_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let f = flushes(dir.path(), Duration::from_millis(50)).unwrap();
        assert!(f > 0.0);
    }
}
