//! A log that other relays write too (a replicated store, `--store nats://`): the turn's messages handed off ([`Relay::hand_off`], several turns' on their way at once) and committed with the seqs the store gave them as its answers come ([`Relay::commit_batch`]), what the store holds followed in each room's order ([`Relay::followed`]), and each room's messages passed on once all before them are here.
//!
//! With a log of its own, the relay gives each message its room's next seq as it takes it
//! (`send.rs`). A shared log's seqs are the store's: another relay may take the next one at
//! the same moment. So a message waits with no seq ([`UNSTORED`]) until the store answers;
//! its acknowledgement then goes at once (it is stored), but its fan-out waits for the room's
//! order to reach it here: every message of the room before it, whichever relay took it,
//! comes first, from the store's own order (the shell follows each room's stream).

use std::collections::HashMap;
use std::net::SocketAddr;

use super::Relay;
use super::rooms::RoomId;
use super::send::UNSTORED;
use crate::proto::message::{Message, Millis};
use crate::proto::name::name_key;
use crate::proto::secure::keys::PublicKey;
use crate::proto::wire::{Acked, LeaveReason};

/// Most messages a room keeps waiting for an earlier one: past them, the relay's own
/// messages wait no more here, since the store's order brings them again.
pub const MAX_AHEAD: usize = 4096;

/// What the shared store made of one message of [`Relay::appends`]: its seq in its room, and
/// its time (an earlier copy's, when the store had it already: a retransmission to another
/// relay, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Its place in the room's order, the store's.
    pub seq: u64,
    /// When it was taken (the first time).
    pub time: Millis,
}

impl Relay {
    /// The messages of [`Relay::appends`] are stored, each as `stored` says (in the same
    /// order): acknowledge them, and pass on those the room's order reached.
    pub fn commit_stored(&mut self, stored: &[Stored]) {
        let all: Vec<Option<Stored>> = stored.iter().copied().map(Some).collect();
        self.commit_some(&all, "");
    }

    /// The messages of [`Relay::appends`] are stored or not, each as `stored` says (in the
    /// same order): those stored are acknowledged and passed on as [`Relay::commit_stored`]
    /// does, the others refused to their senders, who will send them again, as
    /// [`Relay::abort`] does (`why` they were not).
    pub fn commit_some(&mut self, stored: &[Option<Stored>], why: &str) {
        let batch = self.hand_off();
        self.commit_batch(batch, stored, why);
    }

    /// Takes the messages of [`Relay::appends`] out, to be stored while the relay goes on
    /// (several turns' may be on their way at once): the batch's number, for
    /// [`Relay::commit_batch`] once the store answered.
    pub fn hand_off(&mut self) -> u64 {
        self.batches += 1;
        let taken = std::mem::take(&mut self.pending);
        self.in_flight.insert(self.batches, taken);
        self.batches
    }

    /// How many messages the batch `batch` of [`Relay::hand_off`] has (0 once answered).
    pub fn batch_len(&self, batch: u64) -> usize {
        self.in_flight.get(&batch).map_or(0, Vec::len)
    }

    /// How many batches [`Relay::hand_off`] gave that wait for their answer.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The store answered for the batch `batch` ([`Relay::hand_off`]'s appends, in order), each
    /// message stored or not as `stored` says: as [`Relay::commit_some`].
    pub fn commit_batch(&mut self, batch: u64, stored: &[Option<Stored>], why: &str) {
        debug_assert!(self.config.shared, "commit_batch is for a shared log");
        let taken = self.in_flight.remove(&batch).unwrap_or_default();
        debug_assert_eq!(taken.len(), stored.len(), "one answer a message");
        // A message the store's answer says was not stored (or not in time) that its stream
        // brought meanwhile is stored, with the stream's seq.
        let stored: Vec<Option<Stored>> = (taken.iter().zip(stored))
            .map(|(p, s)| {
                s.or_else(|| {
                    let &(seq, time, _) = self.ids.get(&p.message.id)?;
                    (seq != UNSTORED).then_some(Stored { seq, time })
                })
            })
            .collect();
        let stored = &stored[..];
        let (kept, failed): (Vec<_>, Vec<_>) = taken
            .into_iter()
            .zip(stored)
            .partition(|(_, s)| s.is_some());
        if !failed.is_empty() {
            self.refuse(failed.into_iter().map(|(p, _)| p).collect(), why);
        }
        let (batch, stored): (Vec<_>, Vec<Stored>) =
            kept.into_iter().map(|(p, s)| (p, s.expect("kept"))).unzip();
        let given: HashMap<_, _> = (batch.iter().zip(&stored))
            .map(|(p, s)| (p.message.id, *s))
            .collect();
        // The acknowledgements of retransmissions that came while these were pending.
        for (_, _, a) in &mut self.held_acks {
            if a.seq == UNSTORED
                && let Some(s) = given.get(&a.id)
            {
                a.seq = s.seq;
                a.time = s.time;
            }
        }
        let mut rooms = Vec::new();
        for (mut p, s) in batch.into_iter().zip(stored) {
            p.message.seq = s.seq;
            p.message.time = s.time;
            self.ids.insert(p.message.id, (s.seq, s.time, p.room));
            self.stats.stored += 1;
            let acked = Acked {
                id: p.message.id,
                csn: p.csn,
                room: p.number,
                seq: s.seq,
                time: s.time,
            };
            self.acknowledge(p.sender, p.room, acked);
            rooms.push(p.room);
            self.wait_in_order(p.room, Some(p.sender), p.message);
        }
        self.flush_acks();
        self.pass_on(rooms);
    }

    /// `messages` of the room `room` (its key), in its order, as the shared store holds them
    /// (another relay's, or this one's again): those not seen yet are passed on in the
    /// room's order, and their ids remembered, so that a retransmission here is stored once.
    pub fn followed(&mut self, room: &str, messages: Vec<Message>) {
        let room = self.rooms.find_or_add(room);
        if self.rooms[room].dm.is_some() {
            // The two people of a private conversation here are let in to it, as for a
            // message sent here (`reach_other`).
            self.let_parties_in(room);
        }
        for m in messages {
            if m.seq <= self.rooms[room].committed {
                continue;
            }
            match self.ids.get_mut(&m.id) {
                None if !m.id.is_nil() => self.remember(m.id, m.seq, m.time, room),
                // One of this relay's, on its way: the stream's copy came before the store's
                // answer. Its seq is known now (a resend is acknowledged with it, and the
                // answer, even if late or failed, cannot refuse what is stored).
                Some(known) if known.0 == UNSTORED => {
                    *known = (m.seq, m.time, room);
                    for (_, _, a) in &mut self.held_acks {
                        if a.id == m.id && a.seq == UNSTORED {
                            a.seq = m.seq;
                            a.time = m.time;
                        }
                    }
                }
                _ => {}
            }
            self.wait_in_order(room, None, m);
        }
        self.pass_on([room]);
    }

    /// The shared store says the name `name` belongs to `key` (another relay bound it first,
    /// or bound it at all): the relay's owners follow, and a session here under that name
    /// with another key is ended (its client's next datagram is told NotJoined; its JOIN
    /// again is refused, the name belonging to another key).
    pub fn owner_learnt(&mut self, name: &str, key: PublicKey) {
        let k = name_key(name);
        self.owners.learn(&k, name, key);
        if let Some(addr) = self.roster.get(&k)
            && self.clients.get(&addr).is_some_and(|s| s.key != Some(key))
        {
            tracing::warn!(
                name,
                "a name taken here belongs to another key, which another relay of the cluster bound first: its session here is ended"
            );
            self.remove(addr, LeaveReason::Quit);
        }
    }

    /// The shared log of `room` (its key) begins at `first`, not 1: the room's order here
    /// starts there (a room new here; one that has messages already keeps its order).
    pub fn room_starts(&mut self, room: &str, first: u64) {
        let room = self.rooms.find_or_add(room);
        let r = &mut self.rooms[room];
        if r.committed == 0 && first > 1 {
            r.committed = first - 1;
            r.heartbeat_seq = r.committed;
            r.log_start = first;
        }
        self.pass_on([room]);
    }

    /// Lets the parties of the private conversation `room` who are here in to it.
    fn let_parties_in(&mut self, room: RoomId) {
        let Some((a, b)) = self.rooms[room].dm.clone() else {
            return;
        };
        for party in [a, b] {
            if let Some(to) = self.roster.get(&party) {
                self.let_in(to, room, true);
            }
        }
    }

    /// Files `m` of `room` (sent by the session at `sender`, if here) to be passed on once
    /// the room's order reaches it.
    fn wait_in_order(&mut self, room: RoomId, sender: Option<SocketAddr>, m: Message) {
        let r = &mut self.rooms[room];
        if m.seq <= r.committed || (r.ahead.len() >= MAX_AHEAD && sender.is_some()) {
            return;
        }
        r.ahead.entry(m.seq).or_insert((sender, m));
    }

    /// Passes on the messages of `rooms` that follow their room's latest without a gap: the
    /// room's order, as [`Relay::commit`] passes on those of a log of its own.
    fn pass_on(&mut self, rooms: impl IntoIterator<Item = RoomId>) {
        let mut batch: Vec<(RoomId, Option<SocketAddr>, Message)> = Vec::new();
        let mut seen = Vec::new();
        for room in rooms {
            if seen.contains(&room) {
                continue;
            }
            seen.push(room);
            let before = batch.len();
            let r = &mut self.rooms[room];
            while let Some((sender, m)) = r.ahead.remove(&(r.committed + 1)) {
                r.committed = m.seq;
                r.stored_at = self.last_turn;
                batch.push((room, sender, m));
            }
            if batch.len() > before
                && let Some(at) = self.last_turn
            {
                self.queue_heartbeat(room, at + super::QUIET);
            }
        }
        if batch.is_empty() {
            return;
        }
        let speakers: std::collections::HashSet<&str> =
            batch.iter().map(|(_, _, m)| m.from.as_str()).collect();
        if self.arrival_unsent(&speakers) {
            self.announce_first();
        }
        let items: Vec<_> = batch.iter().map(|(room, s, m)| (*room, *s, m)).collect();
        self.fan_out(&items);
        self.flush_presence();
        for (room, _, m) in batch {
            self.cache(room, m);
        }
    }
}
