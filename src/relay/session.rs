//! A joined client's session: its name, token, csns, waiting messages, rates, rooms and answers.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use uuid::Uuid;

use super::answers::Answer;
use super::limit::Bucket;
use super::rooms::{Membership, RoomId};
use crate::proto::secure::keys::PublicKey;
use crate::proto::wire::Token;

/// A joined client.
#[derive(Debug)]
pub struct Session {
    /// The name it joined with.
    pub name: String,
    /// The secret it must carry in every datagram.
    pub(super) token: Token,
    /// Which session it is, from 1, in the order the relay opened them: what its packets
    /// queued to leave are checked against (a session keeps it when it moves address).
    pub(super) number: u64,
    /// Random, chosen by the client process: tells its JOINs from another's.
    pub(super) instance: Uuid,
    /// The csn its next new message must have.
    pub(super) next_csn: u64,
    /// Messages waiting for their turn, by csn (with the session's number of their room):
    /// ahead of a missing one, or (the next one in turn) for the message rate's allowance or a
    /// turn's room (see `parked.rs`).
    pub(super) ahead: BTreeMap<u64, (Uuid, u16, String)>,
    /// When it was last heard from.
    pub(super) last_heard: Instant,
    /// Its message rate.
    pub(super) messages: Bucket,
    /// Its history and who request rate.
    pub(super) requests: Bucket,
    /// Whether it was told it is sending messages too fast in this episode of doing so.
    pub(super) told_slow: bool,
    /// Whether it was told it makes requests too fast in this episode of doing so.
    pub(super) told_busy: bool,
    /// The rooms it is in, in the order it entered them.
    pub(super) rooms: Vec<Membership>,
    /// The number its next room gets (0 is the JOIN's room; numbers are not given twice).
    pub(super) next_room: u16,
    /// Answers to its requests on their way, the first being sent.
    pub(super) answers: VecDeque<Answer>,
    /// Its allowance of bytes of answers.
    pub(super) bulk: Bucket,
    /// Whether it is in the rounds of answers (or waits for its allowance, or for a read).
    pub(super) in_bulk: bool,
    /// Whether its message in turn waits in the fair queue for a turn's room.
    pub(super) queued: bool,
    /// The key its client proved it holds (none for a packet handed in without one).
    pub(super) key: Option<PublicKey>,
    /// Until when the rooms it took over from an earlier process of its key wait for its
    /// client to enter them again: those it has not entered by then, it leaves.
    pub(super) inherited_until: Option<Instant>,
    /// Its allowance of private conversations to open
    /// ([`DMS_PER_MINUTE`](super::dm::DMS_PER_MINUTE)).
    pub(super) dms: Bucket,
}

impl Session {
    /// The key its client proved it holds (none for packets handed in without one).
    pub fn key(&self) -> Option<PublicKey> {
        self.key
    }

    /// Messages waiting for their turn: at most [`REORDER_WINDOW`](super::REORDER_WINDOW)
    /// ahead of the one in turn, and that one if it waits for the message rate.
    pub fn waiting(&self) -> usize {
        self.ahead.len()
    }

    /// Answers to its requests still on their way: at most
    /// [`MAX_ANSWERS`](super::MAX_ANSWERS).
    pub fn answers_waiting(&self) -> usize {
        self.answers.len()
    }

    /// How many rooms it is in.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Notes that the client knows the number `number` (see [`Membership::confirmed`]).
    pub(super) fn confirm(&mut self, number: u16) {
        if let Some(m) = (self.rooms.iter_mut()).find(|m| m.number == number && !m.confirmed) {
            m.confirmed = true;
        }
    }

    /// The room it calls `number`, if it is in it.
    pub(super) fn room_of(&self, number: u16) -> Option<RoomId> {
        (self.rooms.iter())
            .find(|m| m.number == number)
            .map(|m| m.room)
    }
}
