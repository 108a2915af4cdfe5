//! The raw loopback baseline: what this machine's UDP loopback carries without urc. One thread
//! sends datagrams of a fan-out datagram's size to as many sockets as the bench has clients,
//! round-robin; another reads them all, as the simulated clients read the relay's.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

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

/// Sends up to `count` datagrams of `size` bytes, for at most `bound`, to `sockets` sockets.
///
/// # Errors
/// When a socket cannot be made or the reading thread fails.
pub(super) fn measure(
    sockets: usize,
    size: usize,
    count: u64,
    bound: Duration,
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
    let mut sent = 0u64;
    'send: while sent < count {
        // The clock is read once per round of sockets, not per datagram.
        if start.elapsed() >= bound {
            break;
        }
        for to in &addrs {
            if sent >= count {
                break 'send;
            }
            if sender.send_to(&payload, to).is_ok() {
                sent += 1;
            }
        }
    }
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
