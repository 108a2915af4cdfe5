//! One simulated client, lean enough that one thread drives thousands: the real protocol
//! (the handshake, then JOIN, WELCOME; SEND with csn and base inside a window; ACK; MESSAGES
//! delivered in order with gaps repaired by HISTORY; PING), every packet sealed, over a real
//! socket.
//!
//! It mirrors the rules of [`crate::client`] where they shape the load on the relay (the
//! window counted from the oldest unacknowledged message, retransmission on the round-trip
//! time with backoff, the wait before a gap is repaired, the keepalive), and leaves out what
//! a person needs and a benchmark does not (events, names, rejoining, who).

mod order;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use uuid::Uuid;

use super::ledger::Ledger;
use super::link::{Buffers, Link, Opened, Sent as Gone};
use super::outbox::{InFlight, Outbox};
use crate::client::{PING_INTERVAL, Rtt};
use crate::proto::secure::keys::PublicKey;
use crate::proto::wire::{
    self, MAX_HISTORY_REQUEST, Packet, SEND_HEADER, Sent, Token, pack, sent_len,
};

/// How long a JOIN waits for its answer before it is sent again (while the handshake is
/// under way, its HELLO goes again every second).
const JOIN_RETRY: Duration = Duration::from_millis(500);
/// How long a gap repair waits for its answer before it is asked again.
const REPAIR_RETRY: Duration = Duration::from_millis(500);

/// Where the client is with the relay.
#[derive(Debug)]
enum State {
    /// Asking to join (the handshake first): when to ask again.
    Joining { retry_at: Instant },
    /// In the room.
    Joined { token: Token },
}

/// A message held for in-order delivery.
#[derive(Debug, Clone, Copy)]
enum Held {
    /// One of ours: its place is passed, nothing is delivered.
    Own,
    /// Another sender's message with that index.
    Other { sender: u32, index: u64 },
}

/// The text of message `index`: "hello world message 000123", cut or padded to `size` bytes.
pub(super) fn text(index: u64, size: usize) -> String {
    let mut t = format!("hello world message {index:06}");
    t.truncate(size);
    while t.len() < size {
        t.push('.');
    }
    t
}

/// One simulated client.
#[derive(Debug)]
pub(super) struct Sim {
    /// Its socket, connected to the relay.
    pub(super) socket: UdpSocket,
    /// Its secure channel: every packet it sends is sealed, every datagram opened.
    link: Link,
    /// The number of its relay among the run's relays.
    relay: usize,
    /// Its name in the room.
    name: String,
    /// The room it joins (the JOIN's room).
    room: String,
    /// Random per client, as the client's instance.
    instance: Uuid,
    state: State,
    /// When it last sent the relay anything (for the keepalive).
    last_sent: Instant,
    /// Its sending side, if it sends.
    outbox: Option<Outbox>,
    /// The next sequence number to deliver.
    next_seq: u64,
    /// Messages received (or own ones acknowledged) ahead of `next_seq`.
    ahead: BTreeMap<u64, Held>,
    /// The highest sequence number heard of.
    latest: u64,
    /// Since when delivery has waited at a gap.
    gap_since: Option<Instant>,
    /// The gap repair in flight: its request number and when to ask again.
    repair: Option<(u32, Instant)>,
    next_req: u32,
    /// The number of the first sender of its room (their numbers are consecutive).
    first_sender: u32,
    /// Per sender of its room, from the first: the index of the next message expected from
    /// it (each sender's messages are stored, and so delivered, in the order sent). Only the
    /// room's: 10,000 clients each keeping a slot for 10,000 senders took 800 MB.
    next_index: Vec<u64>,
    /// Messages delivered in order.
    pub(super) delivered: u64,
    /// Messages it must deliver: everyone's but its own.
    pub(super) expected: u64,
}

impl Sim {
    /// A client on a fresh socket connected to `relay` (the run's relay number `at`), whose
    /// key is `key` (learnt on first contact when `None`), not yet joining;
    /// `senders` are the numbers of the senders in its room.
    ///
    /// # Errors
    /// When the socket cannot be made.
    pub(super) fn new(
        (relay, at): (SocketAddr, usize),
        key: Option<PublicKey>,
        (name, room): (String, String),
        senders: Range<u32>,
        expected: u64,
        now: Instant,
    ) -> io::Result<Sim> {
        let socket = UdpSocket::bind("127.0.0.1:0".parse().expect("an address"))?;
        socket.connect(relay)?;
        super::receive::coalesce(&socket);
        super::receive::enlarge(&socket);
        Ok(Sim {
            socket,
            link: Link::new(key),
            relay: at,
            name,
            room,
            instance: Uuid::new_v4(),
            state: State::Joining { retry_at: now },
            last_sent: now,
            outbox: None,
            next_seq: 1,
            ahead: BTreeMap::new(),
            latest: 0,
            gap_since: None,
            repair: None,
            next_req: 1,
            next_index: vec![0; senders.len()],
            first_sender: senders.start,
            delivered: 0,
            expected,
        })
    }

    /// Makes this client send `total` messages of `size` bytes as sender number `sender`,
    /// at most `window` csns ahead of the oldest unacknowledged one.
    pub(super) fn make_sender(&mut self, sender: u32, total: u64, size: usize, window: u64) {
        self.outbox = Some(Outbox::new(sender, total, size, window));
    }

    /// Starts the sender's clock: the first message may leave at `start`, then one every
    /// `every` (or as fast as the window allows when `every` is `None`).
    pub(super) fn start_sending(&mut self, start: Instant, every: Option<Duration>) {
        if let Some(o) = &mut self.outbox {
            o.pace = every.map(|e| (start, e));
        }
    }

    /// True once welcomed.
    pub(super) fn is_joined(&self) -> bool {
        matches!(self.state, State::Joined { .. })
    }

    /// True when it has nothing left to send and everything it sent is acknowledged.
    pub(super) fn all_acked(&self) -> bool {
        self.outbox.as_ref().is_none_or(|o| o.acked == o.total)
    }

    /// Its name, for reports.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// The next sequence number it waits for, for reports.
    pub(super) fn waiting_for(&self) -> u64 {
        self.next_seq
    }

    /// Why its handshake will not complete, once that is clear.
    pub(super) fn stuck(&self, now: Instant) -> Option<String> {
        let why = self.link.stuck(now)?;
        Some(format!("{}: {why}", self.name))
    }

    /// Seals and sends `packet`; without a transport it is dropped (the timers send what
    /// matters again) and the handshake goes instead.
    fn transmit(&mut self, now: Instant, packet: &Packet, bufs: &mut Buffers, ledger: &mut Ledger) {
        self.last_sent = now;
        let sent = self
            .link
            .send(&self.socket, now, &packet.encode(), &mut bufs.sealed);
        if let Gone::Refused(_) = sent {
            ledger.send_errors += 1;
        }
    }

    fn send_join(&mut self, now: Instant, bufs: &mut Buffers, ledger: &mut Ledger) {
        let State::Joining { retry_at } = &mut self.state else {
            return;
        };
        *retry_at = now + JOIN_RETRY;
        let join = Packet::Join {
            room: self.room.clone(),
            name: self.name.clone(),
            history: 0,
            instance: self.instance,
        };
        self.transmit(now, &join, bufs, ledger);
    }

    /// When it next wants to send a new message, if it does.
    pub(super) fn next_due(&self, now: Instant) -> Option<Instant> {
        match self.state {
            State::Joined { .. } => self.outbox.as_ref()?.next_due(now),
            State::Joining { .. } => None,
        }
    }

    /// Sends the new messages the window and the pace allow.
    pub(super) fn pump(&mut self, now: Instant, bufs: &mut Buffers, ledger: &mut Ledger) {
        let State::Joined { token } = self.state else {
            return;
        };
        let Some(o) = &mut self.outbox else { return };
        let mut fresh = Vec::new();
        while o.next_due(now).is_some_and(|due| due <= now) {
            let index = o.sent;
            o.sent += 1;
            let csn = o.sent;
            o.in_flight.push_back(InFlight {
                csn,
                sends: 1,
                sent_at: now,
                resend_at: now + o.rtt.rto(),
            });
            ledger.sent(now, o.sender, index);
            fresh.push(csn);
        }
        self.send_messages(now, token, &fresh, bufs, ledger);
    }

    /// Sends the messages with csns `csns` in as few SEND datagrams as hold them.
    fn send_messages(
        &mut self,
        now: Instant,
        token: Token,
        csns: &[u64],
        bufs: &mut Buffers,
        ledger: &mut Ledger,
    ) {
        let Some(o) = &self.outbox else { return };
        let (base, sender, size) = (o.base(), o.sender, o.size);
        let sent: Vec<Sent> = csns
            .iter()
            .map(|&csn| Sent {
                room: 0,
                csn,
                id: ledger.id(sender, csn - 1),
                text: text(csn - 1, size),
            })
            .collect();
        for run in pack(&sent, SEND_HEADER, sent_len) {
            let packet = Packet::Send {
                token,
                base,
                messages: run.to_vec(),
            };
            self.transmit(now, &packet, bufs, ledger);
        }
    }

    /// Does what is due at `now`: JOINs again, retransmissions, gap repairs, the keepalive.
    pub(super) fn tick(&mut self, now: Instant, bufs: &mut Buffers, ledger: &mut Ledger) {
        let token = match self.state {
            State::Joining { retry_at } => {
                if now >= retry_at {
                    self.send_join(now, bufs, ledger);
                }
                return;
            }
            State::Joined { token } => token,
        };
        self.retransmit(now, token, bufs, ledger);
        if let Some(since) = self.gap_since
            && now >= since + self.gap_wait()
            && self.repair.is_none_or(|(_, retry)| now >= retry)
        {
            self.start_repair(now, token, bufs, ledger);
        }
        if now >= self.last_sent + PING_INTERVAL {
            self.transmit(now, &Packet::Ping { token }, bufs, ledger);
        }
    }

    fn retransmit(&mut self, now: Instant, token: Token, bufs: &mut Buffers, ledger: &mut Ledger) {
        let Some(o) = &mut self.outbox else { return };
        let mut again = Vec::new();
        for m in o.in_flight.iter_mut().filter(|m| m.resend_at <= now) {
            m.sends += 1;
            m.sent_at = now;
            m.resend_at = now + o.rtt.backoff(m.sends - 1);
            again.push(m.csn);
        }
        ledger.retransmits += again.len() as u64;
        self.send_messages(now, token, &again, bufs, ledger);
    }

    fn gap_wait(&self) -> Duration {
        self.outbox
            .as_ref()
            .map_or_else(|| Rtt::default().gap_wait(), |o| o.rtt.gap_wait())
    }

    fn start_repair(
        &mut self,
        now: Instant,
        token: Token,
        bufs: &mut Buffers,
        ledger: &mut Ledger,
    ) {
        let from = self.next_seq;
        let end = self
            .ahead
            .keys()
            .next()
            .map_or(self.latest, |&k| k.saturating_sub(1));
        if end < from {
            return;
        }
        let count = u16::try_from(end - from + 1)
            .unwrap_or(MAX_HISTORY_REQUEST)
            .min(MAX_HISTORY_REQUEST);
        let req = self.next_req;
        self.next_req += 1;
        self.repair = Some((req, now + REPAIR_RETRY));
        ledger.repairs += 1;
        let packet = Packet::History {
            room: 0,
            token,
            req,
            from,
            count,
        };
        self.transmit(now, &packet, bufs, ledger);
    }

    /// Takes one datagram from the relay.
    pub(super) fn handle(
        &mut self,
        now: Instant,
        datagram: &[u8],
        bufs: &mut Buffers,
        ledger: &mut Ledger,
    ) {
        match self
            .link
            .open(&self.socket, now, datagram, &mut bufs.opened)
        {
            Opened::Packet => {}
            Opened::Up => return self.transport_ready(now, bufs, ledger),
            Opened::Nothing => return,
        }
        // The fan-out, most of what arrives: read where it lies, nothing allocated. A record
        // that does not decode ends the packet (those before it are taken) and fails the run.
        if let Some((_, records)) = wire::messages_in(&bufs.opened) {
            for m in records {
                match m {
                    Ok(m) if !self.arrived(now, m.seq, m.id, ledger) => ledger.duplicates += 1,
                    Ok(_) => {}
                    Err(e) => {
                        ledger.error(format!("a MESSAGES packet the bench could not decode: {e}"))
                    }
                }
            }
            return self.drain(now, ledger);
        }
        let Ok(packet) = Packet::decode(&bufs.opened) else {
            ledger.error("a packet the bench could not decode".into());
            return;
        };
        match packet {
            Packet::Welcome { token, latest, .. } if !self.is_joined() => {
                self.state = State::Joined { token };
                self.next_seq = latest + 1;
                self.latest = latest;
            }
            Packet::Ack { acks } => {
                for a in acks {
                    self.acked(now, a.csn, a.seq, ledger);
                }
                self.drain(now, ledger);
            }
            Packet::HistoryPage { req, messages, .. } => {
                if self.repair.is_some_and(|(r, _)| r == req) {
                    self.repair = None;
                }
                for m in &messages {
                    self.arrived(now, m.seq, m.id, ledger);
                }
                self.drain(now, ledger);
            }
            Packet::Pong { rooms } => {
                let latest = rooms.iter().map(|l| l.latest).max().unwrap_or(0);
                self.latest = self.latest.max(latest);
                self.drain(now, ledger);
            }
            Packet::Error { message, .. } => ledger.error(format!("{}: {message}", self.name)),
            _ => {}
        }
    }

    /// A new transport: the JOIN goes at once, or a PING, whose arrival on the new keys
    /// tells the relay to use them.
    fn transport_ready(&mut self, now: Instant, bufs: &mut Buffers, ledger: &mut Ledger) {
        match self.state {
            State::Joining { .. } => self.send_join(now, bufs, ledger),
            State::Joined { token } => self.transmit(now, &Packet::Ping { token }, bufs, ledger),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_have_the_size_asked() {
        assert_eq!(text(123, 26), "hello world message 000123");
        assert_eq!(text(7, 5), "hello");
        assert_eq!(text(7, 30), "hello world message 000007....");
    }
}
