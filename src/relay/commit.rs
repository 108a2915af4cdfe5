//! What the log takes, and what may leave once it holds it: the turn's accepted messages
//! handed to the shell, then acknowledged and fanned out ([`Relay::commit`]), or forgotten
//! and refused to their senders ([`Relay::abort`]) when they could not be written.

use std::collections::{HashMap, HashSet};

use super::Relay;
use super::send::Pending;
use crate::proto::message::Message;
use crate::proto::wire::{Acked, ErrorCode, Packet};

impl Relay {
    /// The messages accepted since the last commit, each with its room's name (its key), to
    /// be written to the rooms' logs now.
    pub fn appends(&self) -> impl ExactSizeIterator<Item = (&str, &Message)> {
        (self.pending.iter()).map(|p| (self.rooms[p.room].name.as_str(), &p.message))
    }

    /// True when messages wait to be persisted.
    pub fn has_appends(&self) -> bool {
        !self.pending.is_empty()
    }

    /// True when messages wait to be persisted while only presence and answers are left to
    /// send: the shell should end the turn (write, flush and fan them out) before sending
    /// more of those, so that a flood of presence or answers delays only itself, never chat.
    pub fn chat_waiting(&self) -> bool {
        self.has_appends() && self.transmits.is_empty()
    }

    /// True when chat (acknowledgements, fan-out, replies) waits to be sent, ahead of presence
    /// and answers.
    pub fn chat_queued(&self) -> bool {
        !self.transmits.is_empty()
    }

    /// True when messages wait to be written or datagrams to be sent: what the shell handed
    /// the relay while the last turn's datagrams went out (it read its socket meanwhile, which
    /// may now stay silent, the senders waiting for their acknowledgements). The shell takes
    /// its next turn at once, rather than waiting for a datagram or the tick.
    pub fn took_meanwhile(&self) -> bool {
        self.has_appends() || !self.transmits.is_empty()
    }

    /// The messages from [`Relay::appends`] are durable: acknowledge and fan them out.
    pub fn commit(&mut self) {
        let batch = std::mem::take(&mut self.pending);
        if batch.is_empty() {
            return;
        }
        self.stats.stored += batch.len() as u64;
        for p in &batch {
            let r = &mut self.rooms[p.room];
            r.committed = p.message.seq;
            r.stored_at = self.last_turn;
            // The room's heartbeat is due once it was quiet for QUIET after this turn (later,
            // if more come: see `turn.rs` `heartbeats`).
            if let Some(at) = self.last_turn {
                self.queue_heartbeat(p.room, at + super::QUIET);
            }
            let acked = Acked {
                id: p.message.id,
                csn: p.csn,
                room: p.number,
                seq: p.message.seq,
                time: p.message.time,
            };
            self.acknowledge(p.sender, p.room, acked);
        }
        // Acknowledgements, then the messages, then presence: chat does not wait behind a
        // storm of arrivals or departures; but someone's arrival comes before their first
        // words (unless a storm delays its notice past them).
        self.flush_acks();
        let speakers: HashSet<&str> = batch.iter().map(|p| p.message.from.as_str()).collect();
        if self.arrival_unsent(&speakers) {
            self.announce_first();
        }
        let items: Vec<_> = (batch.iter())
            .map(|p| (p.room, Some(p.sender), &p.message))
            .collect();
        self.fan_out(&items);
        self.flush_presence();
        for p in batch {
            self.cache(p.room, p.message);
        }
    }

    /// The messages from [`Relay::appends`] could not be persisted: forget them and tell
    /// their senders, who will send them again.
    pub fn abort(&mut self, why: &str) {
        let batch = std::mem::take(&mut self.pending);
        self.refuse(batch, why);
    }

    /// Forgets the messages of `batch`, which could not be persisted, and tells their
    /// senders, who will send them again.
    pub(super) fn refuse(&mut self, batch: Vec<Pending>, why: &str) {
        // Each room's first seq of the batch: its next seq again.
        let mut firsts: HashMap<usize, u64> = HashMap::new();
        for p in &batch {
            firsts.entry(p.room).or_insert(p.message.seq);
        }
        // Acknowledgements of earlier, durable messages still go; of these, none.
        // (Of a shared log, every message on its way has no seq yet: these are told by id.)
        let ids: HashSet<_> = batch.iter().map(|p| p.message.id).collect();
        let shared = self.config.shared;
        (self.held_acks).retain(|(_, room, a)| {
            (shared || firsts.get(room).is_none_or(|&f| a.seq < f)) && !ids.contains(&a.id)
        });
        if !self.config.shared {
            for (&room, &first) in &firsts {
                self.rooms[room].next_seq = first;
            }
        }
        for p in batch.iter().rev() {
            self.ids.remove(&p.message.id);
            if let Some(mut s) = self.clients.get_mut(&p.sender) {
                s.next_csn = s.next_csn.min(p.csn);
            }
        }
        self.id_order.retain(|id| self.ids.contains_key(id));
        for p in &batch {
            let err = Packet::Error {
                code: ErrorCode::Storage,
                id: p.message.id,
                message: format!(
                    "the relay could not store the message ({why}): it will be resent"
                ),
            };
            self.reply(p.sender, &err);
        }
    }
}
