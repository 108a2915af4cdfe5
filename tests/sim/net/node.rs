//! A simulated client: what it showed and received, read back for the tests, and what the tests
//! make it do (join, send, ask, leave, stop, move, start again).

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use urc::client::{self, Client, Event};
use urc::proto::message::{MAX_TEXT_BYTES, Message, split_text};
use urc::proto::wire::{ErrorCode, MAX_DATAGRAM, Packet, Token};
use uuid::Uuid;

use super::Net;
use super::links::Link;

/// A simulated client and everything it showed and received.
#[derive(Debug)]
pub struct Node {
    pub client: Client,
    pub addr: SocketAddr,
    /// Driven; a frozen node neither hears, speaks, nor sees time pass.
    pub live: bool,
    /// What the client showed, with when.
    pub events: Vec<(Instant, Event)>,
    /// Every packet that reached it, with when.
    pub received: Vec<(Instant, Packet)>,
    /// The messages `send` queued: id and text, in order.
    pub sent: Vec<(Uuid, String)>,
    /// Deaf: everything the relay sends it is lost (it still speaks and sees time pass).
    pub deaf: bool,
    /// The latest relay process it heard from (see [`Net::relay_epoch`]).
    pub relay_epoch: u64,
    /// Mute: everything it sends the relay is lost (it still hears and sees time pass).
    pub mute: bool,
    /// How many of the next WELCOMEs to this node are lost.
    pub lose_welcomes: u32,
    /// Extra delay of the WELCOMEs to this node, so that what the relay sends after them
    /// overtakes them.
    pub welcome_delay: Duration,
    /// When a datagram of this node last reached the relay.
    pub last_heard_by_relay: Option<Instant>,
    /// Every packet of this node that reached the relay (injected ones included), with when.
    pub reached_relay: Vec<(Instant, Packet)>,
    pub(super) up: Link,
    pub(super) down: Link,
}

/// A chat message as a client showed it.
#[derive(Debug, Clone)]
pub struct Shown {
    pub at: Instant,
    pub room: String,
    pub message: Message,
    pub history: bool,
    pub own: bool,
}

impl Node {
    /// The chat messages shown, in the order shown.
    pub fn shown(&self) -> Vec<Shown> {
        self.events
            .iter()
            .filter_map(|(at, e)| match e {
                Event::Message {
                    room,
                    message,
                    history,
                    own,
                } => Some(Shown {
                    at: *at,
                    room: room.clone(),
                    message: message.clone(),
                    history: *history,
                    own: *own,
                }),
                _ => None,
            })
            .collect()
    }

    /// The live (not history) messages shown.
    pub fn live(&self) -> Vec<Shown> {
        self.shown().into_iter().filter(|s| !s.history).collect()
    }

    /// The history messages shown.
    pub fn history(&self) -> Vec<Shown> {
        self.shown().into_iter().filter(|s| s.history).collect()
    }

    /// The welcomes received: token and the room's latest seq then, duplicates included.
    pub fn welcomes(&self) -> Vec<(Token, u64)> {
        self.received
            .iter()
            .filter_map(|(_, p)| match p {
                Packet::Welcome { token, latest, .. } => Some((*token, *latest)),
                _ => None,
            })
            .collect()
    }

    /// The tokens of the sessions the relay welcomed this client into, each once: a WELCOME
    /// the network duplicated, or one that answers a rejoin into the same session, adds none.
    pub fn tokens(&self) -> HashSet<Token> {
        self.welcomes().iter().map(|(token, _)| *token).collect()
    }

    /// The ids of the ERRORs with `code` that reached this client, in order (nil for an
    /// error about no message in particular).
    pub fn errors_received(&self, code: ErrorCode) -> Vec<Uuid> {
        self.received
            .iter()
            .filter_map(|(_, p)| match p {
                Packet::Error { code: c, id, .. } if *c == code => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// The token of the first session the relay welcomed this client into: what the tests
    /// forge or hand-write its datagrams with.
    pub fn first_token(&self) -> Token {
        self.welcomes().first().expect("welcomed").0
    }

    /// The seq the first welcome announced: live delivery starts after it.
    pub fn joined_at(&self) -> u64 {
        self.welcomes().first().expect("welcomed").1
    }

    /// The latest seq of `room` when this client first entered it (by an ENTERED; the JOIN's
    /// room, its first, by the first WELCOME).
    pub fn entered_at(&self, room: &str) -> u64 {
        if self.client.rooms().first().is_some_and(|r| r.name == room) {
            return self.joined_at();
        }
        (self.received.iter())
            .find_map(|(_, p)| match p {
                Packet::Entered { name, latest, .. } if name == room => Some(*latest),
                _ => None,
            })
            .expect("entered")
    }

    /// When this client showed message `id` live, if it did.
    pub fn shown_live_at(&self, id: Uuid) -> Option<Instant> {
        (self.live().iter())
            .find(|s| s.message.id == id)
            .map(|s| s.at)
    }

    /// How many SENDs of this client reached the relay, retransmissions included.
    pub fn sends(&self) -> usize {
        (self.reached_relay.iter())
            .filter(|(_, p)| matches!(p, Packet::Send { .. }))
            .count()
    }

    /// When an acknowledgement of `id` first arrived.
    pub fn ack_time(&self, id: Uuid) -> Option<Instant> {
        self.received.iter().find_map(|(at, p)| match p {
            Packet::Ack { acks } if acks.iter().any(|a| a.id == id) => Some(*at),
            _ => None,
        })
    }
}

impl Net {
    /// A new client, at an address of its own, that starts joining now.
    pub fn join(&mut self, name: &str, history: u16) -> usize {
        let i = self.nodes.len();
        let addr = SocketAddr::from((
            Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250) as u8 + 1),
            4000,
        ));
        self.start_client(name, history, addr)
    }

    /// A new client at `addr` (nobody's yet; several clients behind one NAT share its IP),
    /// that starts joining now.
    pub fn join_at(&mut self, name: &str, history: u16, addr: SocketAddr) -> usize {
        assert!(
            !self.by_addr.contains_key(&addr) && !self.left_addrs.contains_key(&addr),
            "{addr} is taken"
        );
        self.start_client(name, history, addr)
    }

    /// Client `i`'s process dies (it is frozen, what it had in flight stays in flight) and a
    /// new one, with the same name and a new instance, starts at its address now; returns the
    /// new client. Datagrams to that address, late ones included, reach the new process.
    pub fn restart_client(&mut self, i: usize, history: u16) -> usize {
        self.freeze(i);
        let name = self.nodes[i].client.name().to_owned();
        let addr = self.nodes[i].addr;
        if self.print_trace {
            eprintln!("{:>10.3?} {name} restarts", self.elapsed());
        }
        self.start_client(&name, history, addr)
    }

    /// Client `i`'s datagrams come from a new address from now on (a NAT rebinding, a new
    /// network), the client none the wiser; returns the address. What the relay sends to the
    /// old address is lost, datagrams already in flight to it included; those already in
    /// flight from it reach the relay from it.
    pub fn rebind(&mut self, i: usize) -> SocketAddr {
        let old = self.nodes[i].addr;
        let port = 4001 + u16::try_from(self.left_addrs.len()).expect("few rebindings");
        let new = SocketAddr::new(old.ip(), port);
        if self.print_trace {
            eprintln!(
                "{:>10.3?} {} moves to {new}",
                self.elapsed(),
                self.end_name(Some(i))
            );
        }
        self.by_addr.remove(&old);
        self.left_addrs.insert(old, i);
        self.by_addr.insert(new, i);
        self.nodes[i].addr = new;
        new
    }

    fn start_client(&mut self, name: &str, history: u16, addr: SocketAddr) -> usize {
        self.start_client_in(name, history, addr, &[], HashMap::new())
    }

    /// A new client at an address of its own that joins and enters `rooms` (the first as
    /// the JOIN's room, the session's room 0).
    pub fn join_rooms(&mut self, name: &str, history: u16, rooms: &[&str]) -> usize {
        let i = self.nodes.len();
        let addr = SocketAddr::from((
            Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250) as u8 + 1),
            4000,
        ));
        self.start_client_in(name, history, addr, rooms, HashMap::new())
    }

    /// As [`Net::join_rooms`], for a user who left off in private conversations where `seen`
    /// says (by `@` and the other's name's key, as [`client::Config::seen`]).
    pub fn join_rooms_seen(
        &mut self,
        name: &str,
        history: u16,
        rooms: &[&str],
        seen: HashMap<String, client::Seen>,
    ) -> usize {
        let i = self.nodes.len();
        let addr = SocketAddr::from((
            Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250) as u8 + 1),
            4000,
        ));
        self.start_client_in(name, history, addr, rooms, seen)
    }

    fn start_client_in(
        &mut self,
        name: &str,
        history: u16,
        addr: SocketAddr,
        rooms: &[&str],
        seen: HashMap<String, client::Seen>,
    ) -> usize {
        let i = self.nodes.len();
        let config = client::Config {
            rooms: rooms.iter().map(|r| (r.to_string(), None)).collect(),
            name: name.to_owned(),
            history,
            since: None,
            seen,
            relays: self.relay_addrs.clone(),
        };
        let up = self.link(2 * i);
        let down = self.link(2 * i + 1);
        self.nodes.push(Node {
            client: Client::new(config, self.now),
            addr,
            live: true,
            events: Vec::new(),
            received: Vec::new(),
            sent: Vec::new(),
            last_heard_by_relay: None,
            reached_relay: Vec::new(),
            deaf: false,
            relay_epoch: 0,
            mute: false,
            lose_welcomes: 0,
            welcome_delay: Duration::ZERO,
            up,
            down,
        });
        self.by_addr.insert(addr, i);
        self.drain_client(i);
        i
    }

    /// Queues `text` at client `i`; returns the ids of its messages.
    pub fn send(&mut self, i: usize, text: &str) -> Vec<Uuid> {
        let ids = self.nodes[i]
            .client
            .send(self.now, text)
            .expect("valid text");
        self.sent(i, text, ids)
    }

    /// Notes that client `i` sent `text` as the messages `ids`, and lets them go.
    fn sent(&mut self, i: usize, text: &str, ids: Vec<Uuid>) -> Vec<Uuid> {
        let pieces = split_text(text, MAX_TEXT_BYTES);
        assert_eq!(ids.len(), pieces.len());
        (self.nodes[i].sent).extend(ids.iter().zip(pieces).map(|(id, p)| (*id, p.to_owned())));
        self.drain_client(i);
        ids
    }

    /// Queues `text` at client `i` for `room`; returns the ids of its messages.
    pub fn send_to(&mut self, i: usize, room: &str, text: &str) -> Vec<Uuid> {
        let ids = (self.nodes[i].client.send_to(self.now, room, text))
            .expect("valid text, a room followed");
        self.sent(i, text, ids)
    }

    /// Client `i` enters `room` (with `history` messages of it).
    pub fn enter(&mut self, i: usize, room: &str, history: u16) {
        let now = self.now;
        (self.nodes[i].client.enter(now, room, history, None)).expect("a room that may be entered");
        self.drain_client(i);
    }

    /// Client `i` parts `room`.
    pub fn part(&mut self, i: usize, room: &str) {
        let now = self.now;
        assert!(self.nodes[i].client.part(now, room, ""), "a room followed");
        self.drain_client(i);
    }

    pub fn request_history(&mut self, i: usize, count: u16) {
        self.nodes[i].client.request_history(self.now, count);
        self.drain_client(i);
    }

    pub fn request_who(&mut self, i: usize) {
        self.nodes[i].client.request_who(self.now);
        self.drain_client(i);
    }

    pub fn leave(&mut self, i: usize) {
        self.leave_saying(i, "");
    }

    /// Client `i` leaves, telling the others `message` (`/quit MESSAGE`).
    pub fn leave_saying(&mut self, i: usize, message: &str) {
        self.nodes[i].client.leave_saying(self.now, message);
        self.drain_client(i);
    }

    /// Hands client `i` a packet as if from the relay, now: a late one (the simulated network
    /// has no secure channel: a forged one would not open).
    pub fn inject(&mut self, i: usize, packet: &Packet) {
        let bytes: Arc<[u8]> = packet.encode().into();
        self.record(None, Some(i), &bytes, "injected");
        let node = &mut self.nodes[i];
        node.received.push((self.now, packet.clone()));
        node.client.handle(self.now, &bytes);
        self.drain_client(i);
    }

    /// Client `i` stops: it hears nothing, sends nothing and sees no time pass.
    pub fn freeze(&mut self, i: usize) {
        self.nodes[i].live = false;
    }

    /// Puts what client `i` sends on its link (each datagram within the bound and valid) and
    /// keeps what it showed.
    pub(super) fn drain_client(&mut self, i: usize) {
        let now = self.now;
        while let Some(bytes) = self.nodes[i].client.poll_transmit() {
            assert!(
                bytes.len() <= MAX_DATAGRAM,
                "a client sent {} bytes",
                bytes.len()
            );
            Packet::decode(&bytes).expect("clients send valid datagrams");
            self.put(Some(i), None, bytes.into(), Duration::ZERO);
        }
        let node = &mut self.nodes[i];
        while let Some(e) = node.client.poll_event() {
            node.events.push((now, e));
        }
    }
}
