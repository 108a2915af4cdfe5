//! The workload's client: a plain socket that waits for the relay to answer, makes its
//! handshake and joins, asks for history, and times each answer until it is whole; every
//! packet sealed, every datagram opened.

use std::collections::BTreeSet;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{JOIN_HISTORY, JOINS, REQUESTS, Request};
use crate::bench::link::{Buffers, Link, Opened, Sent};
use crate::bench::measure;
use crate::proto::message::Message;
use crate::proto::secure::keys::PublicKey;
use crate::proto::wire::{MAX_DATAGRAM, Packet, Token};

/// Longest wait for one whole answer.
const ANSWER_BOUND: Duration = Duration::from_secs(5);
/// How often a first HELLO is sent again while the relay does not answer yet.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// The relay's time to answer, its memory then (resident, peak), the joins' times and the
/// history requests.
pub(super) type Measured = (
    Duration,
    (Option<u64>, Option<u64>),
    Vec<Duration>,
    Vec<Request>,
);

/// Waits for the relay on a log of `messages` to answer, then times the joins and the history
/// requests; `key` is the relay's, `cache` how many recent messages it answers from memory.
pub(super) fn measure_relay(
    addr: SocketAddr,
    key: PublicKey,
    messages: u64,
    started: Instant,
    cache: u64,
) -> Result<Measured, String> {
    let ready = wait_ready(addr, key, started)?;
    let rss = (measure::Proc::Own.rss(), measure::Proc::Own.peak_rss());
    let mut joins = Vec::with_capacity(JOINS);
    let mut kept: Option<Session> = None;
    for i in 0..JOINS {
        let name = format!("j{i}");
        let (session, took) = Session::join(addr, key, &name, JOIN_HISTORY, messages)?;
        joins.push(took);
        match &kept {
            None => kept = Some(session),
            Some(_) => session.leave(),
        }
    }
    let mut session = kept.ok_or("no join was made")?;
    let middle = (messages / 2).max(1);
    let oldest_cached = messages.saturating_sub(cache) + 1;
    let mut requests = Vec::new();
    for (label, from, count) in [
        ("history_first", 1, 20),
        ("history_middle", middle, 20),
        ("history_middle_1000", middle, 1000),
    ] {
        let times = (0..REQUESTS)
            .map(|_| session.history(from, count, messages))
            .collect::<Result<Vec<_>, _>>()?;
        requests.push(Request {
            label,
            from,
            count,
            from_log: from < oldest_cached,
            times,
        });
    }
    session.leave();
    Ok((ready, rss, joins, requests))
}

/// Starts a handshake (a HELLO, each time a new one) until the relay answers it; the time
/// from `started` to the answer, its CHALLENGE.
fn wait_ready(addr: SocketAddr, key: PublicKey, started: Instant) -> Result<Duration, String> {
    let socket = connect(addr)?;
    let mut buf = [0u8; MAX_DATAGRAM + 1];
    let bound = started + ANSWER_BOUND * 12;
    loop {
        // A new link has no transport: nothing is sealed, its HELLO goes.
        let mut probe = Link::new(Some(key));
        send(&socket, &mut probe, &[], &mut Vec::new())?;
        let retry = (Instant::now() + PROBE_EVERY).min(bound);
        match recv(&socket, &mut buf, retry) {
            Ok(_) => return Ok(started.elapsed()),
            Err(_) if Instant::now() < bound => {}
            Err(e) => return Err(format!("the relay did not answer: {e}")),
        }
    }
}

/// A client on a plain socket, in the room.
#[derive(Debug)]
struct Session {
    socket: UdpSocket,
    link: Link,
    bufs: Buffers,
    token: Token,
    next_req: u32,
}

impl Session {
    /// Makes a handshake with the relay whose key is `key` and joins as `name`, asking for
    /// `history` messages of a room of `latest`; returns the session and the time from the
    /// first HELLO to the whole join history.
    fn join(
        addr: SocketAddr,
        key: PublicKey,
        name: &str,
        history: u16,
        latest: u64,
    ) -> Result<(Session, Duration), String> {
        let socket = connect(addr)?;
        // A client's identity is made once, before it joins.
        let mut link = Link::new(Some(key));
        let mut bufs = Buffers::default();
        let join = Packet::Join {
            room: "lobby".into(),
            name: name.to_owned(),
            history,
            instance: Uuid::new_v4(),
        }
        .encode();
        let started = Instant::now();
        let deadline = started + ANSWER_BOUND;
        send(&socket, &mut link, &join, &mut bufs.sealed)?;
        let mut token = None;
        let mut answer = Answer::default();
        loop {
            let packet = match receive(&socket, &mut link, &mut bufs, deadline)? {
                Got::Packet(packet) => packet,
                // The handshake is done: the JOIN goes now.
                Got::Up => {
                    send(&socket, &mut link, &join, &mut bufs.sealed)?;
                    continue;
                }
            };
            match packet {
                Packet::Welcome { token: t, .. } => token = Some(t),
                Packet::HistoryPage {
                    room: _,
                    req: 0,
                    first,
                    last,
                    messages,
                } => answer.add(first, last, &messages),
                Packet::Error { message, .. } => {
                    return Err(format!("the relay refused a join: {message}"));
                }
                _ => {}
            }
            if let Some(token) = token
                && answer.is_whole()
            {
                let took = started.elapsed();
                let n = u64::from(history).min(latest);
                answer.check(latest + 1 - n, latest, "the join history")?;
                let session = Session {
                    socket,
                    link,
                    bufs,
                    token,
                    next_req: 1,
                };
                return Ok((session, took));
            }
        }
    }

    /// Asks for `count` messages from `from` of a room of `latest`; the time until the whole
    /// answer arrived.
    fn history(&mut self, from: u64, count: u16, latest: u64) -> Result<Duration, String> {
        let req = self.next_req;
        self.next_req += 1;
        let ask = Packet::History {
            room: 0,
            token: self.token,
            req,
            from,
            count,
        };
        let started = Instant::now();
        let deadline = started + ANSWER_BOUND;
        self.send(&ask)?;
        let mut answer = Answer::default();
        while !answer.is_whole() {
            let Got::Packet(packet) =
                receive(&self.socket, &mut self.link, &mut self.bufs, deadline)?
            else {
                continue;
            };
            match packet {
                Packet::HistoryPage {
                    room: _,
                    req: r,
                    first,
                    last,
                    messages,
                } if r == req => answer.add(first, last, &messages),
                Packet::Error { message, .. } => {
                    return Err(format!("the relay refused a history request: {message}"));
                }
                _ => {}
            }
        }
        let took = started.elapsed();
        let last = (from + u64::from(count) - 1).min(latest);
        answer.check(from, last, &format!("history from {from}"))?;
        Ok(took)
    }

    fn send(&mut self, packet: &Packet) -> Result<(), String> {
        send(
            &self.socket,
            &mut self.link,
            &packet.encode(),
            &mut self.bufs.sealed,
        )
    }

    fn leave(mut self) {
        // Best effort: the relay drops a silent client anyway.
        let leave = Packet::Leave {
            token: self.token,
            message: String::new(),
        };
        self.send(&leave).ok();
    }
}

/// The pages of one history answer.
#[derive(Debug, Default)]
struct Answer {
    range: Option<(u64, u64)>,
    got: BTreeSet<u64>,
}

impl Answer {
    fn add(&mut self, first: u64, last: u64, messages: &[Message]) {
        self.range = Some((first, last));
        self.got.extend(messages.iter().map(|m| m.seq));
    }

    fn is_whole(&self) -> bool {
        match self.range {
            None => false,
            Some((0, _)) => true,
            Some((first, last)) => (first..=last).all(|s| self.got.contains(&s)),
        }
    }

    /// Fails unless the answer is exactly `first..=last`.
    fn check(&self, first: u64, last: u64, what: &str) -> Result<(), String> {
        let got = (
            self.got.first().copied(),
            self.got.last().copied(),
            self.got.len(),
        );
        let want = (Some(first), Some(last), (last + 1 - first) as usize);
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "{what} was not seqs {first} to {last}: {} messages, {:?} to {:?}",
                got.2, got.0, got.1
            ))
        }
    }
}

fn connect(addr: SocketAddr) -> Result<UdpSocket, String> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.connect(addr).map(|()| s))
        .map_err(|e| format!("cannot open a client socket: {e}"))?;
    Ok(socket)
}

/// Seals `packet` and sends it (without a transport: the handshake's HELLO instead).
fn send(
    socket: &UdpSocket,
    link: &mut Link,
    packet: &[u8],
    sealed: &mut Vec<u8>,
) -> Result<(), String> {
    match link.send(socket, Instant::now(), packet, sealed) {
        Sent::Sealed | Sent::Handshaking => Ok(()),
        Sent::Refused(e) => Err(format!("cannot send to the relay: {e}")),
    }
}

/// What came from the relay.
enum Got {
    /// A packet.
    Packet(Packet),
    /// The handshake is done.
    Up,
}

/// The next packet the relay sends that opens and decodes, or the end of the handshake,
/// waiting until `deadline` at most; the handshake's other steps are answered on the way.
fn receive(
    socket: &UdpSocket,
    link: &mut Link,
    bufs: &mut Buffers,
    deadline: Instant,
) -> Result<Got, String> {
    let mut buf = [0u8; MAX_DATAGRAM + 1];
    loop {
        let n = recv(socket, &mut buf, deadline)?;
        match link.open(socket, Instant::now(), &buf[..n], &mut bufs.opened) {
            Opened::Packet => {
                if let Ok(packet) = Packet::decode(&bufs.opened) {
                    return Ok(Got::Packet(packet));
                }
            }
            Opened::Up => return Ok(Got::Up),
            Opened::Nothing => {}
        }
    }
}

/// The next datagram, waiting until `deadline` at most.
fn recv(socket: &UdpSocket, buf: &mut [u8], deadline: Instant) -> Result<usize, String> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no whole answer from the relay within {} s",
                ANSWER_BOUND.as_secs()
            ));
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| format!("cannot wait on a client socket: {e}"))?;
        match socket.recv(buf) {
            Ok(n) => return Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("cannot receive from the relay: {e}")),
        }
    }
}
