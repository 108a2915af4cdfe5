//! The two ordinary members who chat beside an attack: the real client ([`SecureClient`]: the
//! handshake, each with an identity of its own and the relay's key learnt on first contact,
//! then the join, the window, retransmission, ordered delivery with gap repair, the
//! keepalive) on a thread of their own, each sending 4 messages a second, each timing the
//! other's messages from the moment they were typed to the moment they were shown in order.
//!
//! They are what the attack must not hurt, so they are measured as a user would feel it: the
//! latency includes the client's retransmissions and repairs, and a message that never shows
//! is missing.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use crate::client::{Config, Event, SecureClient};
use crate::proto::message::Millis;
use crate::proto::secure::keys::Keypair;
use crate::proto::wire::{LeaveReason, MAX_DATAGRAM};

/// The address the ordinary members send from.
pub(super) const ORDINARY_IP: [u8; 4] = [127, 0, 0, 2];
/// The time between two messages of one member: 4 a second.
const EVERY: Duration = Duration::from_millis(250);
/// Longest the members wait to be welcomed, their handshakes included.
const JOIN_BOUND: Duration = Duration::from_secs(15);
/// Longest they wait, once told to stop, for what is still on its way.
const SETTLE_BOUND: Duration = Duration::from_secs(15);
/// Longest the loop sleeps: it looks for the bench's commands this often.
const NAP: Duration = Duration::from_millis(20);
/// The members' names; the first letter tags their texts.
const NAMES: [&str; 2] = ["alice-ordinary", "bob-ordinary"];

/// One message of one member shown by the other, in order.
#[derive(Debug, Clone, Copy)]
pub(super) struct Delivery {
    /// The member who sent it (0 or 1).
    pub(super) from: usize,
    /// When it was typed.
    pub(super) sent_at: Instant,
    /// When the other member showed it.
    pub(super) at: Instant,
    /// The time the relay gave it.
    pub(super) time: Millis,
    /// The receiver's wall clock when it was shown.
    pub(super) wall: Millis,
}

/// What the members saw.
#[derive(Debug, Default)]
pub(super) struct Books {
    /// Per member, when each of its messages was typed.
    pub(super) sent: [Vec<Instant>; 2],
    /// Every message of one shown by the other, in the order shown.
    pub(super) deliveries: Vec<Delivery>,
    /// Messages shown out of their sender's order (or twice).
    pub(super) misordered: u64,
    /// Departures "timed out" the first member was told of.
    pub(super) timed_out_seen: u64,
    /// Times a member found the relay had forgotten its session and joined again.
    pub(super) rejoins: u64,
    /// The relay's refusals and the client's errors, as told.
    pub(super) errors: Vec<String>,
}

impl Books {
    /// Messages of each member the other never showed.
    pub(super) fn missing(&self) -> u64 {
        let shown = |from| self.deliveries.iter().filter(|d| d.from == from).count() as u64;
        (0..2)
            .map(|m| (self.sent[m].len() as u64).saturating_sub(shown(m)))
            .sum()
    }
}

/// What the bench may ask of the members while they chat.
#[derive(Debug)]
pub(super) enum Ask {
    /// The room's names, as the first member's WHO shows them.
    Who(mpsc::Sender<Vec<String>>),
    /// Stop typing, wait for what is on its way, leave.
    Stop,
}

/// The members' thread.
#[derive(Debug)]
pub(super) struct Ordinary {
    ask: mpsc::Sender<Ask>,
    thread: JoinHandle<Result<Books, String>>,
}

impl Ordinary {
    /// Joins both members to the relay at `relay` and starts their chat; returns once both
    /// are in.
    ///
    /// # Errors
    /// When a socket cannot be made or they are not welcomed in time.
    pub(super) fn start(relay: SocketAddr) -> Result<Ordinary, String> {
        let (ask, asked) = mpsc::channel();
        let (joined, is_joined) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ordinary".into())
            .spawn(move || chat(relay, &asked, &joined).map_err(|e| e.to_string()))
            .map_err(|e| format!("cannot start the ordinary members' thread: {e}"))?;
        match is_joined.recv() {
            Ok(()) => Ok(Ordinary { ask, thread }),
            Err(_) => Err(match thread.join() {
                Ok(Err(e)) => e,
                _ => "the ordinary members' thread ended".into(),
            }),
        }
    }

    /// The room's names as the first member's WHO shows them (empty when no answer came).
    pub(super) fn who(&self) -> Vec<String> {
        let (tx, rx) = mpsc::channel();
        if self.ask.send(Ask::Who(tx)).is_err() {
            return Vec::new();
        }
        rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default()
    }

    /// Stops the chat, waits for what is on its way and returns what the members saw.
    ///
    /// # Errors
    /// When a socket failed or the thread panicked.
    pub(super) fn finish(self) -> Result<Books, String> {
        self.ask.send(Ask::Stop).ok();
        self.thread
            .join()
            .map_err(|_| "the ordinary members' thread panicked".to_owned())?
    }
}

/// One member: its client, its socket, and the next message it expects from the other.
struct Member {
    client: SecureClient,
    socket: UdpSocket,
    /// The index of the other member's next message.
    next_from_other: u64,
}

fn chat(
    relay: SocketAddr,
    asked: &mpsc::Receiver<Ask>,
    joined: &mpsc::Sender<()>,
) -> Result<Books, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut poll = Poll::new()?;
    let mut members = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let mut socket = UdpSocket::bind(SocketAddr::from((ORDINARY_IP, 0)))?;
        socket.connect(relay)?;
        poll.registry()
            .register(&mut socket, Token(i), Interest::READABLE)?;
        let config = Config {
            rooms: Vec::new(),
            name: (*name).into(),
            history: 0,
            since: None,
            seen: Default::default(),
            relays: Vec::new(),
        };
        members.push(Member {
            client: SecureClient::new(config, Keypair::generate(), None, start),
            socket,
            next_from_other: 0,
        });
    }
    let mut books = Books::default();
    let mut events = Events::with_capacity(64);
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut who: Option<mpsc::Sender<Vec<String>>> = None;
    // Until both are in, then the chat, then the wait for what is on its way.
    let mut chatting: Option<[Instant; 2]> = None;
    let mut settling: Option<Instant> = None;
    loop {
        let now = Instant::now();
        match (chatting, settling) {
            (None, _) if members.iter().all(|m| m.client.is_joined()) => {
                chatting = Some([now, now + EVERY / 2]);
                joined.send(()).ok();
            }
            (None, _) if now >= start + JOIN_BOUND => {
                let why = if members.iter().any(|m| m.client.relay_key().is_none()) {
                    "made no handshake with the relay"
                } else {
                    "were not welcomed"
                };
                return Err(format!(
                    "the ordinary members {why} within {} s",
                    JOIN_BOUND.as_secs()
                )
                .into());
            }
            (Some(_), Some(since)) => {
                let all_in = books.missing() == 0 && members.iter().all(|m| m.client.is_idle());
                if all_in || now >= since + SETTLE_BOUND {
                    break;
                }
            }
            _ => {}
        }
        match asked.try_recv() {
            Ok(Ask::Who(tx)) => {
                members[0].client.request_who(now);
                who = Some(tx);
            }
            Ok(Ask::Stop) | Err(mpsc::TryRecvError::Disconnected) => {
                settling.get_or_insert(now);
            }
            Err(mpsc::TryRecvError::Empty) => {}
        }
        if let (Some(next), None) = (&mut chatting, settling) {
            for (i, m) in members.iter_mut().enumerate() {
                while next[i] <= now {
                    let index = books.sent[i].len();
                    m.client.send(now, &format!("{}:{index}", &NAMES[i][..1]))?;
                    books.sent[i].push(now);
                    next[i] += EVERY;
                }
            }
        }
        for m in &mut members {
            if m.client.poll_timeout().is_some_and(|t| t <= now) {
                m.client.handle_timeout(now);
            }
        }
        for i in 0..members.len() {
            flush(&mut members[i])?;
            take_events(&mut members, i, &mut books, &mut who);
        }
        let mut wake = now + NAP;
        if let (Some(next), None) = (chatting, settling) {
            wake = wake.min(next[0]).min(next[1]);
        }
        for m in &members {
            if let Some(t) = m.client.poll_timeout() {
                wake = wake.min(t);
            }
        }
        poll.poll(
            &mut events,
            Some(wake.saturating_duration_since(Instant::now())),
        )?;
        for event in &events {
            let i = event.token().0;
            loop {
                match members[i].socket.recv(&mut buf) {
                    Ok(n) => members[i].client.handle(Instant::now(), &buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionRefused | io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            flush(&mut members[i])?;
            take_events(&mut members, i, &mut books, &mut who);
        }
    }
    let now = Instant::now();
    for m in &mut members {
        m.client.leave(now);
        flush(m)?;
    }
    Ok(books)
}

/// Sends what the member's client has to send, sealed (or its handshake).
fn flush(m: &mut Member) -> io::Result<()> {
    while let Some(datagram) = m.client.poll_transmit(Instant::now()) {
        match m.socket.send(&datagram) {
            Ok(_) => {}
            // Lost, as on any network: the client sends again.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Books what member `i` has to show.
fn take_events(
    members: &mut [Member],
    i: usize,
    books: &mut Books,
    who: &mut Option<mpsc::Sender<Vec<String>>>,
) {
    let other = 1 - i;
    while let Some(event) = members[i].client.poll_event() {
        match event {
            Event::Message {
                room: _,
                message,
                history: false,
                own: false,
            } => {
                let Some(index) = message
                    .text
                    .strip_prefix(&NAMES[other][..1])
                    .and_then(|t| t.strip_prefix(':'))
                    .and_then(|t| t.parse::<usize>().ok())
                    .filter(|_| message.from == NAMES[other])
                else {
                    // Someone else's (an attacker's): not what is measured.
                    continue;
                };
                if index as u64 != members[i].next_from_other {
                    books.misordered += 1;
                }
                members[i].next_from_other = index as u64 + 1;
                if let Some(&sent_at) = books.sent[other].get(index) {
                    books.deliveries.push(Delivery {
                        from: other,
                        sent_at,
                        at: Instant::now(),
                        time: message.time,
                        wall: Millis::now(),
                    });
                }
            }
            Event::Left {
                reason: LeaveReason::TimedOut,
                ..
            } if i == 0 => books.timed_out_seen += 1,
            Event::Notice(n) if n.starts_with("rejoined as") => books.rejoins += 1,
            Event::Error(e) => books.errors.push(format!("{}: {e}", NAMES[i])),
            Event::RelayKeyChanged { .. } => books
                .errors
                .push(format!("{}: the relay offered another key", NAMES[i])),
            Event::Who { names, .. } => {
                if let Some(tx) = who.take() {
                    tx.send(names).ok();
                }
            }
            _ => {}
        }
    }
}
