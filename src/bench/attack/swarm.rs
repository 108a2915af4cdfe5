//! The attackers and the silent members: thousands of sessions on one thread, each a socket
//! bound to a loopback address of its own choosing (all of 127.0.0.0/8 is loopback on Linux,
//! so every attack comes from the addresses it would in the wild), speaking raw datagrams.
//!
//! They are lean on purpose, so that the bench's own CPU does not starve the relay on two
//! cores: they join properly (each its own handshake, then the WELCOME's token; every packet
//! sealed) and then do only what their attack needs. Most never read what the relay sends
//! them: their receive buffers are small and the kernel drops the rest, which costs the relay
//! what sending costs it. Those whose answers are counted open them but do not decode them.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token as PollToken};
use uuid::Uuid;

use super::super::link::{Buffers, Opened, Sent as Gone};
use super::super::sim::text;
use super::bot::{Bot, State};
use super::schedule::{Action, Schedule};
use crate::proto::secure::keys::PublicKey;
use crate::proto::wire::{
    ErrorCode, MAX_DATAGRAM, Packet, SEND_HEADER, Sent, Token, pack, sent_len,
};

/// Sessions joining at once: each makes a handshake first (four Diffie-Hellman operations of
/// the relay's), within the relay's allowance of `--max-per-ip` at once from an address.
const JOIN_WAVE: usize = 128;
/// How long a JOIN waits for its answer (or a refused one for the allowance) before it goes
/// again (while the handshake is under way, its HELLO goes again every second).
const JOIN_RETRY: Duration = Duration::from_secs(1);
/// A joined session that has sent nothing for this long pings while the others join.
const KEEPALIVE: Duration = Duration::from_secs(5);
/// Most datagrams a session reads from its buffer before it sends.
const DRAIN_AT_MOST: usize = 64;
/// Type bytes of the relay's packets (opened) the swarm looks at without decoding.
const ERROR_TYPE: u8 = 0x82;
const ACK_TYPE: u8 = 0x83;
/// Most unacknowledged messages a sender sends again at once.
const RESEND_AT_MOST: u64 = 40;

/// What the swarm sent and was sent.
#[derive(Debug, Default, Clone)]
pub(super) struct Counts {
    /// Packets sent, sealed, joining included (not the handshakes' datagrams).
    pub(super) datagrams: u64,
    /// Requests (HISTORY, WHO) or new messages sent by the actions.
    pub(super) actions: u64,
    /// Datagrams read on the listening sessions, and their bytes (sealed, as sent).
    pub(super) answers: (u64, u64),
    /// The relay's ERRORs read, by code.
    pub(super) refused: [u64; 9],
    /// Messages the senders know stored (their highest acknowledged csns together).
    pub(super) acked: u64,
    /// Sessions the relay had dropped (ERROR NotJoined).
    pub(super) evicted: u64,
    /// Datagrams the socket would not take at once.
    pub(super) send_failures: u64,
}

/// The sessions and their poll.
#[derive(Debug)]
pub(super) struct Swarm {
    relay: SocketAddr,
    /// The relay's key, when it said it; the sessions learn it on first contact otherwise.
    key: Option<PublicKey>,
    bots: Vec<Bot>,
    poll: Poll,
    events: Events,
    buf: Vec<u8>,
    /// What every session seals into and opens into.
    bufs: Buffers,
    /// What was sent and received.
    pub(super) counts: Counts,
}

/// The `k`th address of a block of many: 127.`block`.x.y, skipping the .0 and .255 ends.
pub(super) fn block_ip(block: u8, k: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, block, 1 + (k / 250) as u8, 1 + (k % 250) as u8)
}

impl Swarm {
    /// An empty swarm for the relay at `relay`, whose key is `key` (learnt on first contact
    /// when `None`).
    ///
    /// # Errors
    /// When the poll cannot be made.
    pub(super) fn new(relay: SocketAddr, key: Option<PublicKey>) -> io::Result<Swarm> {
        Ok(Swarm {
            relay,
            key,
            bots: Vec::new(),
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            buf: vec![0; MAX_DATAGRAM + 1],
            bufs: Buffers::default(),
            counts: Counts::default(),
        })
    }

    /// Adds `count` sessions named `prefix`0, `prefix`1…, session `k` on the address
    /// `ip(k)`, with a small receive buffer unless `listening`; returns their range.
    ///
    /// # Errors
    /// When a socket cannot be made (the open files limit, say).
    pub(super) fn add(
        &mut self,
        count: usize,
        prefix: &str,
        ip: impl Fn(usize) -> Ipv4Addr,
        listening: bool,
    ) -> io::Result<Range<usize>> {
        let first = self.bots.len();
        let now = Instant::now();
        for k in 0..count {
            let name = format!("{prefix}{k}");
            let bot = Bot::new(ip(k), self.relay, self.key, name, listening, now)?;
            self.bots.push(bot);
        }
        Ok(first..self.bots.len())
    }

    /// Sessions of `range` the relay dropped.
    pub(super) fn evicted_in(&self, range: Range<usize>) -> usize {
        self.bots[range]
            .iter()
            .filter(|b| matches!(b.state, State::Evicted))
            .count()
    }

    /// Seals and sends `packet`; without a transport it is dropped (the JOIN goes again on
    /// its timer) and the handshake goes instead.
    fn transmit(&mut self, i: usize, packet: &Packet) {
        let bot = &mut self.bots[i];
        let now = Instant::now();
        bot.last_sent = now;
        let sent = bot
            .link
            .send(&bot.socket, now, &packet.encode(), &mut self.bufs.sealed);
        match sent {
            Gone::Sealed => self.counts.datagrams += 1,
            Gone::Refused(_) => {
                self.counts.datagrams += 1;
                self.counts.send_failures += 1;
            }
            Gone::Handshaking => {}
        }
    }

    fn send_join(&mut self, i: usize, now: Instant) {
        let bot = &mut self.bots[i];
        let State::Joining { retry_at } = &mut bot.state else {
            return;
        };
        *retry_at = now + JOIN_RETRY;
        let join = Packet::Join {
            room: "lobby".into(),
            name: bot.name.clone(),
            history: 0,
            instance: bot.instance,
        };
        self.transmit(i, &join);
    }

    /// Opens what session `i` received, `n` bytes in the buffer, into `bufs.opened`; a new
    /// transport of a joined session is confirmed with a PING at once.
    fn open(&mut self, i: usize, n: usize, now: Instant) -> Opened {
        let bot = &mut self.bots[i];
        let opened = bot
            .link
            .open(&bot.socket, now, &self.buf[..n], &mut self.bufs.opened);
        if let (Opened::Up, State::Joined { token }) = (&opened, &bot.state) {
            let token = *token;
            self.transmit(i, &Packet::Ping { token });
        }
        opened
    }

    /// Joins the sessions of `range`, a wave at a time, the joined ones pinging meanwhile.
    ///
    /// # Errors
    /// When a socket fails, the relay refuses a session for good, or `deadline` comes first.
    pub(super) fn join(&mut self, range: Range<usize>, deadline: Instant) -> Result<(), String> {
        let io = |e: io::Error| format!("an attacking session's socket failed: {e}");
        let (mut started, mut joining, mut joined) = (range.start, 0, 0);
        let mut next_scan = Instant::now();
        while joined < range.len() {
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "{joined} of {} sessions joined in time",
                    range.len()
                ));
            }
            while joining < JOIN_WAVE && started < range.end {
                let bot = &mut self.bots[started];
                self.poll
                    .registry()
                    .register(&mut bot.socket, PollToken(started), Interest::READABLE)
                    .map_err(io)?;
                self.send_join(started, now);
                started += 1;
                joining += 1;
            }
            if now >= next_scan {
                for i in range.start..started {
                    if let Some(why) = self.bots[i].link.stuck(now) {
                        return Err(format!("{}: {why}", self.bots[i].name));
                    }
                    match self.bots[i].state {
                        State::Joining { retry_at, .. } if now >= retry_at => {
                            self.send_join(i, now)
                        }
                        State::Joined { token } if now >= self.bots[i].last_sent + KEEPALIVE => {
                            self.transmit(i, &Packet::Ping { token });
                        }
                        _ => {}
                    }
                }
                next_scan = now + Duration::from_millis(100);
            }
            self.poll
                .poll(&mut self.events, Some(Duration::from_millis(10)))
                .map_err(io)?;
            let ready: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
            for i in ready {
                if !matches!(self.bots[i].state, State::Joining { .. }) {
                    continue;
                }
                self.answer_join(i)?;
                if let State::Joined { .. } = self.bots[i].state {
                    // What comes next is the presence of those joining after it: left to the
                    // kernel to drop, not read by the thread that has joins to make.
                    let bot = &mut self.bots[i];
                    self.poll
                        .registry()
                        .deregister(&mut bot.socket)
                        .map_err(io)?;
                    joining -= 1;
                    joined += 1;
                }
            }
        }
        Ok(())
    }

    /// Reads what came for joining session `i`: the handshake's steps are answered, the
    /// JOIN goes once it is done, a welcome is kept.
    fn answer_join(&mut self, i: usize) -> Result<(), String> {
        let now = Instant::now();
        loop {
            let n = match self.bots[i].socket.recv(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(format!("an attacking session's socket failed: {e}")),
            };
            match self.open(i, n, now) {
                Opened::Packet => {}
                Opened::Up => {
                    self.send_join(i, now);
                    continue;
                }
                Opened::Nothing => continue,
            }
            let bot = &mut self.bots[i];
            match Packet::decode(&self.bufs.opened) {
                Ok(Packet::Welcome { token, .. }) => {
                    bot.state = State::Joined { token };
                    return Ok(());
                }
                Ok(Packet::Error { code, message, .. }) => match code {
                    // The IP's join allowance: it refills at the request rate.
                    ErrorCode::RateLimited => {}
                    _ => return Err(format!("the relay refused {}: {message}", bot.name)),
                },
                _ => {}
            }
        }
    }

    /// Starts reading the answers of the sessions of `range` (what waited is thrown away).
    ///
    /// # Errors
    /// When a socket fails.
    pub(super) fn listen(&mut self, range: Range<usize>) -> io::Result<()> {
        for i in range {
            while self.bots[i].socket.recv(&mut self.buf).is_ok() {}
            let bot = &mut self.bots[i];
            bot.listening = true;
            self.poll
                .registry()
                .register(&mut bot.socket, PollToken(i), Interest::READABLE)?;
        }
        Ok(())
    }

    /// Runs `schedules` until `until`, reading the listening sessions' answers.
    ///
    /// # Errors
    /// When a socket or the poll fails.
    pub(super) fn run(&mut self, schedules: &mut [Schedule], until: Instant) -> io::Result<()> {
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            let mut wake = until.min(now + Duration::from_millis(50));
            for s in schedules.iter_mut() {
                while let Some(due) = s.due() {
                    if due > now {
                        wake = wake.min(due);
                        break;
                    }
                    let bot = s.advance();
                    self.act(bot, s.action(), now);
                }
            }
            self.poll
                .poll(&mut self.events, Some(wake.saturating_duration_since(now)))?;
            let ready: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
            for i in ready {
                self.read_answers(i)?;
            }
        }
    }

    fn read_answers(&mut self, i: usize) -> io::Result<()> {
        let now = Instant::now();
        loop {
            match self.bots[i].socket.recv(&mut self.buf) {
                Ok(n) => {
                    self.counts.answers.0 += 1;
                    self.counts.answers.1 += n as u64;
                    self.look_at(i, n, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// What a session learns from a datagram of `n` bytes in the buffer, opened, by its
    /// packet's type byte: an ERROR's code (NotJoined: it was dropped), an ACK's csns.
    fn look_at(&mut self, i: usize, n: usize, now: Instant) {
        if self.open(i, n, now) != Opened::Packet {
            return;
        }
        let packet = &self.bufs.opened;
        match packet.get(2) {
            Some(&ERROR_TYPE) if packet.len() > 11 => {
                let code = usize::from(packet[11]);
                if let Some(c) = self.counts.refused.get_mut(code) {
                    *c += 1;
                }
                if code == ErrorCode::NotJoined as usize
                    && matches!(self.bots[i].state, State::Joined { .. })
                {
                    self.bots[i].state = State::Evicted;
                    self.counts.evicted += 1;
                }
            }
            Some(&ACK_TYPE) => {
                if let Ok(Packet::Ack { acks }) = Packet::decode(packet) {
                    let bot = &mut self.bots[i];
                    let top = acks.iter().map(|a| a.csn).max().unwrap_or(0);
                    if top > bot.acked {
                        self.counts.acked += top - bot.acked;
                        bot.acked = top;
                        bot.progress_at = Instant::now();
                    }
                }
            }
            _ => {}
        }
    }

    /// Reads what waits on session `i`'s socket (a few datagrams: its buffer is small).
    fn drain(&mut self, i: usize, now: Instant) {
        for _ in 0..DRAIN_AT_MOST {
            match self.bots[i].socket.recv(&mut self.buf) {
                Ok(n) => self.look_at(i, n, now),
                Err(_) => return,
            }
        }
    }

    fn act(&mut self, i: usize, action: Action, now: Instant) {
        if !self.bots[i].listening {
            self.drain(i, now);
        }
        let State::Joined { token } = self.bots[i].state else {
            return;
        };
        let req = self.counts.actions as u32;
        match action {
            Action::Ping => self.transmit(i, &Packet::Ping { token }),
            Action::History { count } => {
                self.counts.actions += 1;
                let history = Packet::History {
                    room: 0,
                    token,
                    req,
                    from: 0,
                    count,
                };
                self.transmit(i, &history);
            }
            Action::Who => {
                self.counts.actions += 1;
                self.transmit(
                    i,
                    &Packet::Who {
                        room: 0,
                        token,
                        req,
                    },
                );
            }
            Action::Send { size } => self.send_next(i, token, size, now),
            Action::Park { from, to } => {
                let messages: Vec<Sent> = (from..=to)
                    .map(|csn| Sent {
                        room: 0,
                        csn,
                        id: Uuid::new_v4(),
                        text: "x".into(),
                    })
                    .collect();
                self.counts.actions += messages.len() as u64;
                self.send_packed(i, token, 1, &messages);
            }
            Action::Leave => {
                self.transmit(
                    i,
                    &Packet::Leave {
                        token,
                        message: String::new(),
                    },
                );
                self.bots[i].state = State::Left;
            }
        }
    }

    /// A sender's turn: its next message if the relay's window of 256 has room; and, when
    /// nothing was acknowledged for a second (an ACK the kernel dropped, or a SEND the relay
    /// could not take), the oldest unacknowledged ones again.
    fn send_next(&mut self, i: usize, token: Token, size: usize, now: Instant) {
        let bot = &mut self.bots[i];
        let base = bot.acked + 1;
        let mut csns = Vec::new();
        if now >= bot.progress_at + Duration::from_secs(1) && bot.next_csn > base {
            bot.progress_at = now;
            csns.extend(base..bot.next_csn.min(base + RESEND_AT_MOST));
        }
        if bot.next_csn < base + 256 {
            csns.push(bot.next_csn);
            bot.next_csn += 1;
            self.counts.actions += 1;
        }
        if csns.is_empty() {
            return;
        }
        let messages: Vec<Sent> = csns
            .into_iter()
            .map(|csn| Sent {
                room: 0,
                csn,
                // One id a session and csn, so that a retransmission is known as one.
                id: Uuid::from_u64_pair(i as u64, csn),
                text: text(csn, size),
            })
            .collect();
        self.send_packed(i, token, base, &messages);
    }

    /// Sends `messages` in as few SENDs as hold them.
    fn send_packed(&mut self, i: usize, token: Token, base: u64, messages: &[Sent]) {
        for run in pack(messages, SEND_HEADER, sent_len) {
            let send = Packet::Send {
                token,
                base,
                messages: run.to_vec(),
            };
            self.transmit(i, &send);
        }
    }
}
