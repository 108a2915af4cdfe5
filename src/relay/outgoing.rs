//! How datagrams leave the relay: replies, errors,
//! broadcasts, the acknowledgements and presence of a turn, and the fan-out of committed
//! messages, packed several to a datagram.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use uuid::Uuid;

use super::intake::FANOUT_PER_TURN;
use super::rooms::RoomId;
use super::{Queued, Relay, Transmit};
use crate::proto::message::Message;
use crate::proto::secure::keys::PublicKey;
use crate::proto::wire::{
    ACK_HEADER, ACKED_LEN, Acked, Change, ErrorCode, MAX_PACKET, MESSAGES_HEADER, PRESENCE_HEADER,
    Packet, ROOM_AT, change_len, pack, paginate,
};

/// A member a room's packets go to: where, its number for the room, and from which of the
/// items it is told.
type Recipient = (SocketAddr, u16, usize);

impl Relay {
    /// Sends each member of each room of `batch` (messages, each with its room and its
    /// sender's address, if the sender is here) the messages of that room that it did not
    /// send itself.
    pub(super) fn fan_out(&mut self, batch: &[(RoomId, Option<SocketAddr>, &Message)]) {
        let mut rooms: Vec<RoomId> = batch.iter().map(|(room, _, _)| *room).collect();
        rooms.sort_unstable();
        rooms.dedup();
        for room in rooms {
            let items: Vec<(Option<SocketAddr>, &Message)> = (batch.iter())
                .filter(|(r, _, _)| *r == room)
                .map(|(_, sender, m)| (*sender, *m))
                .collect();
            let recipients = self.members_of(room, |_| 0);
            self.distribute(Lane::Chat, recipients, &items, encode_messages);
        }
    }

    /// The members of `room`, each told from the item `start` says (given its place in the
    /// room's presence changes).
    fn members_of(&self, room: RoomId, start: impl Fn(u64) -> usize) -> Vec<Recipient> {
        (self.rooms[room].members.iter())
            .map(|(&to, &number)| {
                let from = self.clients.get(&to).map_or(0, |s| {
                    (s.rooms.iter())
                        .find(|m| m.room == room)
                        .map_or(0, |m| start(m.presence_from))
                });
                (to, number, from)
            })
            .collect()
    }

    /// Tells every member of `room` but `except` of `change`, with the other changes of this
    /// turn (see [`Relay::flush`]).
    pub(super) fn announce(&mut self, room: RoomId, except: Option<SocketAddr>, change: Change) {
        if self.rooms[room].dm.is_some() {
            // A private conversation tells nobody who comes and goes.
            return;
        }
        if !self.tell_cluster(room, &change) {
            // Here now, from another relay: its members here knew it in already.
            return;
        }
        self.presence.push((room, except, change));
        self.rooms[room].announced += 1;
    }

    /// Acknowledges `acked` (of a message in `room`) to `to` once it is durable, with the
    /// other acknowledgements of this turn (see [`Relay::flush`]).
    pub(super) fn acknowledge(&mut self, to: SocketAddr, room: RoomId, acked: Acked) {
        self.held_acks.push((to, room, acked));
    }

    /// Sends what this turn gathered: acknowledgements, then presence changes.
    pub(super) fn flush(&mut self) {
        self.flush_acks();
        self.flush_presence();
    }

    /// Sends the acknowledgements of durable messages, as few ACK datagrams to each sender as
    /// hold them.
    pub(super) fn flush_acks(&mut self) {
        let rooms = &self.rooms;
        // Of a shared log, a message is stored once the store gave it a seq, whether or not
        // the room's order reached it here yet.
        let shared = self.config.shared;
        let (due, held): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held_acks)
            .into_iter()
            .partition(|(_, room, a)| {
                *room >= rooms.slots()
                    || a.seq <= rooms[*room].committed
                    || (shared && a.seq != super::send::UNSTORED)
            });
        self.held_acks = held;
        // One run of acks per sender, in the order the senders came.
        let mut by_sender: Vec<(SocketAddr, Vec<Acked>)> = Vec::new();
        let mut place: HashMap<SocketAddr, usize> = HashMap::new();
        for (to, _, acked) in due {
            let k = *place.entry(to).or_insert_with(|| {
                by_sender.push((to, Vec::new()));
                by_sender.len() - 1
            });
            by_sender[k].1.push(acked);
        }
        for (to, acks) in by_sender {
            for run in pack(&acks, ACK_HEADER, |_| ACKED_LEN) {
                self.reply(to, &Packet::Ack { acks: run.to_vec() });
            }
        }
    }

    /// Sends the turn's presence changes, as few PRESENCE datagrams to each client as hold them
    /// (a join storm costs a datagram per client per turn, not one per client per join), as
    /// many changes as a turn's share allows, once the last ones are out: presence goes after
    /// the chat, and a storm's notices are paced by what the chat leaves of the relay's time.
    pub(super) fn flush_presence(&mut self) {
        if self.presence.is_empty()
            || !self.presence_out.is_empty()
            || std::mem::replace(&mut self.presence_sent, true)
        {
            return;
        }
        self.send_presence(Lane::Presence);
    }

    /// Sends the presence changes on their way, then the turn's share of those waiting, in the
    /// chat's lane: before the messages of someone whose arrival they tell.
    pub(super) fn announce_first(&mut self) {
        self.changes_out = 0;
        self.transmits.extend(self.presence_out.drain(..));
        self.announcing.clear();
        if !self.presence.is_empty() {
            self.presence_sent = true;
            self.send_presence(Lane::Chat);
        }
    }

    /// Whether the arrival of one of `speakers` is waiting or on its way in the presence lane.
    pub(super) fn arrival_unsent(&mut self, speakers: &HashSet<&str>) -> bool {
        (self.presence.iter()).any(|(_, _, c)| c.joined && speakers.contains(c.name.as_str()))
            || self
                .announcing
                .iter()
                .any(|n| speakers.contains(n.as_str()))
    }

    /// Sends in `lane` as many of the presence changes as the turn's share allows; the others
    /// wait. A storm of arrivals or departures (10,000 sessions leaving at once) costs every
    /// member a datagram a turn, not the storm at once: the rest goes in the next turns, in
    /// order, and the chat of those turns is not kept waiting behind it.
    fn send_presence(&mut self, lane: Lane) {
        let share = self.presence_room();
        let mut used = 0;
        let now = (self.presence.iter())
            .take_while(|(_, _, c)| {
                used += change_len(c);
                used <= share
            })
            .count()
            .max(1);
        let mut presence = std::mem::take(&mut self.presence);
        let later = presence.split_off(now.min(presence.len()));
        let mut rooms: Vec<RoomId> = presence.iter().map(|(r, _, _)| *r).collect();
        rooms.sort_unstable();
        rooms.dedup();
        for room in rooms {
            let changes: Vec<(Option<SocketAddr>, &Change)> = (presence.iter())
                .filter(|(r, _, _)| *r == room)
                .map(|(_, except, c)| (*except, c))
                .collect();
            let left = later.iter().filter(|(r, _, _)| *r == room).count();
            // Who entered after a change hears only of what happened after it.
            let first = self.rooms[room].announced - (changes.len() + left) as u64;
            let start =
                |from: u64| usize::try_from(from.saturating_sub(first)).unwrap_or(usize::MAX);
            let recipients = self.members_of(room, start);
            self.distribute(lane, recipients, &changes, |changes| {
                encoded(pack(changes, PRESENCE_HEADER, |c| change_len(c)), |run| {
                    Packet::Presence {
                        room: 0,
                        changes: run.iter().map(|c| (*c).clone()).collect(),
                    }
                })
            });
        }
        if lane == Lane::Presence {
            self.announcing = (presence.iter())
                .filter(|(_, _, c)| c.joined)
                .map(|(_, _, c)| c.name.clone())
                .collect();
        }
        self.presence = later;
    }

    /// Bytes of presence changes a turn sends each member at most: its share of the turn's
    /// fan-out, and at least one full datagram.
    fn presence_room(&self) -> usize {
        let members = self.clients.len().max(1);
        (FANOUT_PER_TURN / members).max(MAX_PACKET - PRESENCE_HEADER)
    }

    /// Sends each of a room's `recipients`, packed into as few datagrams as hold them, the
    /// items from its start on that are not meant to skip it (`(Some(a), item)` skips `a`),
    /// each datagram with the recipient's number for the room. Recipients that see the same
    /// items share datagrams encoded once.
    fn distribute<T: Clone>(
        &mut self,
        lane: Lane,
        recipients: Vec<Recipient>,
        items: &[(Option<SocketAddr>, T)],
        encode: impl Fn(&[T]) -> Vec<Arc<[u8]>>,
    ) {
        let skipped: HashSet<SocketAddr> = items.iter().filter_map(|(a, _)| *a).collect();
        // Encodings shared by the clients that see everything from the same item on.
        let mut shared: HashMap<usize, Vec<Arc<[u8]>>> = HashMap::new();
        for (to, number, from) in recipients {
            let from = from.min(items.len());
            let seen = items[from..]
                .iter()
                .filter(|(a, _)| *a != Some(to))
                .map(|(_, item)| item.clone());
            let datagrams = if skipped.contains(&to) {
                encode(&seen.collect::<Vec<T>>())
            } else {
                shared
                    .entry(from)
                    .or_insert_with(|| encode(&seen.collect::<Vec<T>>()))
                    .clone()
            };
            for bytes in datagrams {
                self.enqueue(lane, to, bytes, Some((ROOM_AT, number)));
            }
        }
    }

    /// Sends `packet` (about one room, with room 0 where its number goes: at `at`) to each
    /// member of `room`, in `lane`, with its own number.
    pub(super) fn send_to_room(&mut self, lane: Lane, room: RoomId, at: usize, packet: &Packet) {
        let bytes: Arc<[u8]> = packet.encode().into();
        let members: Vec<(SocketAddr, u16)> = (self.rooms[room].members.iter())
            .map(|(a, n)| (*a, *n))
            .collect();
        for (to, number) in members {
            self.enqueue(lane, to, bytes.clone(), Some((at, number)));
        }
    }

    /// Tells every session that the relay is stopping (ERROR Stopping), so that clients say
    /// so at once and try again, rather than noticing the silence seconds later. The shell
    /// calls it once, at a clean shutdown, then sends what is queued.
    pub fn stopping(&mut self) {
        let packet = Packet::Error {
            code: ErrorCode::Stopping,
            id: Uuid::nil(),
            message: "the relay is stopping: join again later".to_owned(),
        };
        self.broadcast(Lane::Chat, None, &packet);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let mut bytes = Vec::new();
        let to = self.poll_transmit_into(&mut bytes)?;
        Some(Transmit {
            to,
            bytes: bytes.into(),
        })
    }

    /// The next datagram to send, written into `buf` (cleared first); where to send it.
    /// [`Relay::poll_transmit`] without an allocation per datagram.
    pub fn poll_transmit_into(&mut self, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        self.poll_transmit_for(buf).map(|(to, _)| to)
    }

    /// [`Relay::poll_transmit_into`], and the key the datagram is for (the one it is to be
    /// sealed for): its session's, or that of the datagram it answers.
    pub fn poll_transmit_for(
        &mut self,
        buf: &mut Vec<u8>,
    ) -> Option<(SocketAddr, Option<PublicKey>)> {
        let q = loop {
            let q = self.next_queued()?;
            // Queued for a session that has ended since (or was replaced by another at its
            // address, a new process of the client, say), or for an address without one that
            // has one now: what it says is not for whoever is there now (its answers' request
            // numbers are another's, its NotJoined is for a token already replaced).
            if self.session_of(q.to) == q.session {
                break q;
            }
            self.stats.stale += 1;
        };
        buf.clear();
        buf.extend_from_slice(&q.bytes);
        if let Some((at, number)) = q.room
            && let Some(place) = buf.get_mut(at..at + 2)
        {
            place.copy_from_slice(&number.to_be_bytes());
        }
        Some((q.to, q.key))
    }

    /// The next packet queued: the turn's chat first, then presence, then the pages of
    /// answers.
    fn next_queued(&mut self) -> Option<Queued> {
        if self.transmits.is_empty() {
            self.flush();
        }
        (self.transmits.pop_front())
            .or_else(|| {
                let q = self.presence_out.pop_front()?;
                self.changes_out = self.changes_out.saturating_sub(1);
                if self.changes_out == 0 {
                    // The arrivals it told are all out (what is left is heartbeats).
                    self.announcing.clear();
                }
                Some(q)
            })
            .or_else(|| self.bulk_out.pop_front())
    }

    /// Sends `packet` to every joined client but `except`, in `lane`.
    pub(super) fn broadcast(&mut self, lane: Lane, except: Option<SocketAddr>, packet: &Packet) {
        let bytes: Arc<[u8]> = packet.encode().into();
        let recipients: Vec<SocketAddr> = self
            .clients
            .iter()
            .map(|c| *c.key())
            .filter(|a| Some(*a) != except)
            .collect();
        for to in recipients {
            self.enqueue(lane, to, bytes.clone(), None);
        }
    }

    /// The number of the session at `to` ([`Session::number`](super::Session)), 0 if none.
    fn session_of(&self, to: SocketAddr) -> u64 {
        self.clients.get(&to).map_or(0, |s| s.number)
    }

    /// `bytes` to go to `to`, for the session there now and its key.
    pub(super) fn queued(&self, to: SocketAddr, bytes: Arc<[u8]>) -> Queued {
        let (session, key) = self
            .clients
            .get(&to)
            .map_or((0, None), |s| (s.number, s.key));
        Queued {
            to,
            bytes,
            session,
            key,
            room: None,
        }
    }

    /// Queues `bytes` (encoded once, maybe for many) to `to`'s session in `lane`, with its
    /// number for the room they are about at the place `room` says.
    fn enqueue(
        &mut self,
        lane: Lane,
        to: SocketAddr,
        bytes: Arc<[u8]>,
        room: Option<(usize, u16)>,
    ) {
        let mut queued = self.queued(to, bytes);
        queued.room = room;
        self.push(lane, queued);
    }

    /// Queues `queued` in `lane`.
    fn push(&mut self, lane: Lane, queued: Queued) {
        match lane {
            Lane::Chat => self.transmits.push_back(queued),
            Lane::Presence | Lane::Heartbeat => {
                self.presence_out.push_back(queued);
                if lane == Lane::Presence {
                    self.changes_out = self.presence_out.len();
                }
            }
        }
    }

    /// Queues `packet` to `to` in the chat's lane: for its session, or, while a datagram
    /// from `to` is handled, for the key that sealed that datagram (which is the session's
    /// but for someone else at the session's address: the answer goes to them, never the
    /// session's packets).
    pub(super) fn reply(&mut self, to: SocketAddr, packet: &Packet) {
        let mut queued = self.queued(to, packet.encode().into());
        if let Some((from, peer)) = self.handling
            && from == to
        {
            queued.key = peer;
        }
        self.push(Lane::Chat, queued);
    }

    pub(super) fn error(&mut self, to: SocketAddr, code: ErrorCode, id: Uuid, message: String) {
        self.reply(to, &Packet::Error { code, id, message });
    }
}

/// Which queue a datagram waits in: the chat (messages, acknowledgements, replies) goes
/// first, then presence and the heartbeat, then the pages of answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// Fan-out of messages, acknowledgements, replies to the datagram being handled.
    Chat,
    /// Presence changes: they may wait behind the chat.
    Presence,
    /// The heartbeat PONG: in the presence lane, after the changes queued before it.
    Heartbeat,
}

/// The datagrams carrying `messages` as live fan-out (room 0: each recipient's number is put
/// in as it leaves).
fn encode_messages(messages: &[&Message]) -> Vec<Arc<[u8]>> {
    encoded(paginate(messages, MESSAGES_HEADER), |page| {
        Packet::Messages {
            room: 0,
            messages: page.iter().map(|m| (*m).clone()).collect(),
        }
    })
}

/// One datagram for each run, made by `packet`.
fn encoded<T>(runs: Vec<&[T]>, packet: impl Fn(&[T]) -> Packet) -> Vec<Arc<[u8]>> {
    runs.into_iter()
        .map(|run| packet(run).encode().into())
        .collect()
}
