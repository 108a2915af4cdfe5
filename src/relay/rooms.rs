//! The relay's rooms: found by name, made on first use within `--max-rooms`, entered (ENTER, or the room a JOIN names) and left (PART, or the session's end), each member with a number of its own for each room it is in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::{Index, IndexMut};
use std::time::Instant;

use uuid::Uuid;

use super::Relay;
use super::room::Room;
use crate::proto::dm::{dm_parties, is_dm};
use crate::proto::name::name_key;
use crate::proto::room::{check_room, room_key};
use crate::proto::wire::{Change, ErrorCode, LeaveReason, MAX_ROOMS, Packet};

/// A room of the relay, by its place in [`Rooms`]. A room written to is never removed while
/// the relay runs; one entered and left without a message is, at the end of the turn it
/// emptied in, and its place given to the next new room.
pub(super) type RoomId = usize;

/// Every room the relay has: those with a log, and those entered since it started (and not
/// left empty without a message).
#[derive(Debug, Default)]
pub(super) struct Rooms {
    list: Vec<Room>,
    by_name: HashMap<String, RoomId>,
    /// The private conversations of each name's key.
    by_party: HashMap<String, Vec<RoomId>>,
    /// Places of rooms removed, for new rooms to take.
    free: Vec<RoomId>,
    /// Rooms whose last member left in this turn (or an earlier one, while presence about
    /// them waited): removed at the turn's end if still empty and never written to.
    emptied: Vec<RoomId>,
}

impl Rooms {
    /// The room whose key is `key`.
    pub(super) fn find(&self, key: &str) -> Option<RoomId> {
        self.by_name.get(key).copied()
    }

    /// Adds the room `key` (not there yet), empty.
    pub(super) fn add(&mut self, key: &str) -> RoomId {
        let id = match self.free.pop() {
            Some(id) => {
                self.list[id] = Room::new(key);
                id
            }
            None => {
                self.list.push(Room::new(key));
                self.list.len() - 1
            }
        };
        self.by_name.insert(key.to_owned(), id);
        if let Some((a, b)) = dm_parties(key) {
            self.by_party.entry(a).or_default().push(id);
            self.by_party.entry(b).or_default().push(id);
        }
        id
    }

    /// The room `key`, added if it is not there.
    pub(super) fn find_or_add(&mut self, key: &str) -> RoomId {
        self.find(key).unwrap_or_else(|| self.add(key))
    }

    /// The private conversations of the name whose key is `party`.
    pub(super) fn dms_of(&self, party: &str) -> &[RoomId] {
        self.by_party.get(party).map_or(&[], Vec::as_slice)
    }

    /// How many rooms there are.
    pub(super) fn len(&self) -> usize {
        self.list.len() - self.free.len()
    }

    /// How many places there are: every id is below it.
    pub(super) fn slots(&self) -> usize {
        self.list.len()
    }

    /// Every room, with its id.
    pub(super) fn iter(&self) -> impl Iterator<Item = (RoomId, &Room)> {
        (self.list.iter().enumerate()).filter(|(_, r)| !r.vacant)
    }

    /// Notes that `room` has no member now: see [`Rooms::remove_emptied`].
    pub(super) fn emptied(&mut self, room: RoomId) {
        let r = &self.list[room];
        if room != 0
            && r.members.is_empty()
            && r.elsewhere.is_empty()
            && r.never_written()
            && !self.emptied.contains(&room)
        {
            self.emptied.push(room);
        }
    }

    /// Removes the rooms emptied that are still empty and were never written to, unless
    /// `told(room)` (presence about them waits to be sent): they are kept for a later turn.
    pub(super) fn remove_emptied(&mut self, told: impl Fn(RoomId) -> bool) {
        for room in std::mem::take(&mut self.emptied) {
            let r = &self.list[room];
            if r.vacant || !r.members.is_empty() || !r.elsewhere.is_empty() || !r.never_written() {
                continue;
            }
            if told(room) {
                self.emptied.push(room);
                continue;
            }
            let name = r.name.clone();
            self.by_name.remove(&name);
            if let Some((a, b)) = dm_parties(&name) {
                for party in [a, b] {
                    if let Some(list) = self.by_party.get_mut(&party) {
                        list.retain(|&id| id != room);
                        if list.is_empty() {
                            self.by_party.remove(&party);
                        }
                    }
                }
            }
            self.list[room] = Room::new("");
            self.list[room].vacant = true;
            self.free.push(room);
        }
    }
}

impl Index<RoomId> for Rooms {
    type Output = Room;
    fn index(&self, id: RoomId) -> &Room {
        &self.list[id]
    }
}

impl IndexMut<RoomId> for Rooms {
    fn index_mut(&mut self, id: RoomId) -> &mut Room {
        &mut self.list[id]
    }
}

/// A session's place in one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Membership {
    /// The session's number for the room: in every packet about it.
    pub(super) number: u16,
    /// The room.
    pub(super) room: RoomId,
    /// How many presence changes the room had told when the session entered it: it is told
    /// of those after.
    pub(super) presence_from: u64,
    /// False for a room the session took over from an earlier process of its key, and for a
    /// private conversation it was let in to unasked, until its client shows it knows the
    /// number: an ENTER of it, or a HISTORY, WHO or SEND naming it (or, for a room, the JOIN
    /// naming it). Until then a conversation's ENTERED goes again at its heartbeats and with
    /// every PONG; a room is left once the grace for entering again is over
    /// ([`INHERIT_GRACE`](super::join::INHERIT_GRACE)). (A PART of either is taken: a client
    /// parts only numbers it was given.)
    pub(super) confirmed: bool,
    /// The room's latest seq when the session was let in to it unasked: what every ENTERED
    /// of it says until it is confirmed, so that a client told late repairs what came after
    /// (sent to it meanwhile, and dropped for a number it did not know) rather than skip it.
    pub(super) from_seq: u64,
}

impl Relay {
    /// ENTER: puts the session at `from` in the room `name` (made if need be) and sends it
    /// the room's number, then its last `history` messages; an ENTER of a room the session is
    /// in already is answered the same (its ENTERED was lost).
    pub(super) fn enter(&mut self, now: Instant, from: SocketAddr, name: String, history: u16) {
        if is_dm(&name) {
            return self.enter_dm(now, from, name, history);
        }
        if let Err(e) = check_room(&name) {
            self.stats.refused += 1;
            return self.not_entered(from, name, ErrorCode::BadRoom, e.to_string());
        }
        let key = room_key(&name);
        self.enter_key(from, name, &key, history);
    }

    /// Puts the session at `from` in the room (or private conversation) `key`, which it asked
    /// for as `name`, and sends it the room's number, then its last `history` messages.
    pub(super) fn enter_key(&mut self, from: SocketAddr, name: String, key: &str, history: u16) {
        let room = match self.room_in(from, key) {
            Some(mut m) => {
                // Asked for: the client knows the number now, if it did not.
                self.confirm(from, m.number);
                m.confirmed = true;
                m
            }
            None => {
                let count = self.clients.get(&from).map_or(0, |s| s.rooms.len());
                if count >= MAX_ROOMS {
                    self.stats.refused += 1;
                    let message = format!(
                        "you are in {MAX_ROOMS} rooms, the most a session may be in: /part one first"
                    );
                    return self.not_entered(from, name, ErrorCode::TooManyRooms, message);
                }
                let Some(room) = self.room_to_enter(key) else {
                    self.stats.refused += 1;
                    let message = format!(
                        "the relay has {} rooms, the most it may have (its --max-rooms): enter one of those",
                        self.rooms.len()
                    );
                    return self.not_entered(from, name, ErrorCode::TooManyRooms, message);
                };
                match self.put_in(from, room, None, true) {
                    Some(number) => Membership {
                        number,
                        room,
                        presence_from: 0,
                        confirmed: true,
                        from_seq: 0,
                    },
                    None => {
                        let message =
                            "this session entered as many rooms as it may: join again".to_owned();
                        return self.not_entered(from, name, ErrorCode::TooManyRooms, message);
                    }
                }
            }
        };
        self.tell_entered(from, room);
        self.history(from, 0, room.number, 0, history);
    }

    /// The room `key`, made if it is not there and the relay may have one more.
    pub(super) fn room_to_enter(&mut self, key: &str) -> Option<usize> {
        match self.rooms.find(key) {
            Some(room) => Some(room),
            None if self.rooms.len() >= self.config.max_rooms => None,
            None => {
                let room = self.rooms.add(key);
                // Removed at the turn's end unless someone is in it by then.
                self.rooms.emptied(room);
                Some(room)
            }
        }
    }

    pub(super) fn not_entered(
        &mut self,
        to: SocketAddr,
        name: String,
        code: ErrorCode,
        message: String,
    ) {
        self.dropped(to, message.clone());
        self.reply(
            to,
            &Packet::NotEntered {
                name,
                code,
                message,
            },
        );
    }

    /// Notes that the client at `from` knows its room `number` (see
    /// [`Membership::confirmed`]).
    pub(super) fn confirm(&self, from: SocketAddr, number: u16) {
        if let Some(mut s) = self.clients.get_mut(&from) {
            s.confirm(number);
        }
    }

    /// The session at `from`'s place in the room `key`, if it is in it.
    pub(super) fn room_in(&self, from: SocketAddr, key: &str) -> Option<Membership> {
        let room = self.rooms.find(key)?;
        self.clients
            .get(&from)?
            .rooms
            .iter()
            .find(|m| m.room == room)
            .copied()
    }

    /// The room the session at `from` calls `number`, if it is in it.
    pub(super) fn room_of(&self, from: SocketAddr, number: u16) -> Option<usize> {
        self.clients.get(&from)?.room_of(number)
    }

    /// Puts the session at `from` in `room` as `number` (the session's next number if
    /// `None`), told to the room's others when `announce`; its number (`None` when the
    /// session has none left to give, or is gone).
    pub(super) fn put_in(
        &mut self,
        from: SocketAddr,
        room: RoomId,
        number: Option<u16>,
        announce: bool,
    ) -> Option<u16> {
        let presence_from = self.rooms[room].announced;
        let (name, number) = {
            let mut s = self.clients.get_mut(&from)?;
            let number = match number {
                Some(n) => n,
                None => {
                    let n = s.next_room;
                    s.next_room = n.checked_add(1)?;
                    n
                }
            };
            s.rooms.push(Membership {
                number,
                room,
                presence_from,
                confirmed: true,
                from_seq: 0,
            });
            (s.name.clone(), number)
        };
        let r = &mut self.rooms[room];
        r.members.insert(from, number);
        r.roster.insert(name_key(&name), from);
        if announce {
            let change = Change {
                joined: true,
                reason: LeaveReason::Quit,
                name,
                message: None,
            };
            self.announce(room, Some(from), change);
        }
        Some(number)
    }

    /// PART: takes the session at `from` out of the room it calls `number`, telling the
    /// room's others (with `message`, if any); answered PARTED whether it was in it or not
    /// (its PARTED was lost, or it parted before).
    pub(super) fn part(&mut self, from: SocketAddr, number: u16, message: Option<String>) {
        self.leave_one(from, number, message);
        self.reply(from, &Packet::Parted { room: number });
    }

    /// Takes the session at `from` out of the room it calls `number`, if it is in it, telling
    /// the room's others (with `message`, if any).
    fn leave_one(&mut self, from: SocketAddr, number: u16, message: Option<String>) {
        let taken = self.clients.get_mut(&from).and_then(|mut s| {
            let i = s.rooms.iter().position(|m| m.number == number)?;
            Some((s.rooms.remove(i), s.name.clone()))
        });
        if let Some((m, name)) = taken {
            self.take_out(from, m.room, &name);
            let change = Change {
                joined: false,
                reason: LeaveReason::Quit,
                name,
                message,
            };
            self.announce(m.room, Some(from), change);
        }
    }

    /// The sessions whose grace for entering again the rooms they took over is past leave
    /// those they did not enter again (told to the rooms' others, as a PART of theirs is).
    pub(super) fn leave_rooms_not_taken_back(&mut self, now: Instant) {
        let due: Vec<(SocketAddr, Vec<u16>)> = (self.clients.iter())
            .filter(|s| s.inherited_until.is_some_and(|t| t <= now))
            .map(|s| {
                let rooms = &self.rooms;
                let left = (s.rooms.iter())
                    .filter(|m| !m.confirmed && rooms[m.room].dm.is_none())
                    .map(|m| m.number)
                    .collect();
                (*s.key(), left)
            })
            .collect();
        for (addr, numbers) in due {
            if let Some(mut s) = self.clients.get_mut(&addr) {
                s.inherited_until = None;
            }
            for number in numbers {
                self.leave_one(addr, number, None);
            }
        }
    }

    /// Takes `addr` (whose name is `name`) out of `room`'s members.
    fn take_out(&mut self, addr: SocketAddr, room: RoomId, name: &str) {
        let r = &mut self.rooms[room];
        r.members.remove(&addr);
        r.roster.remove(&name_key(name));
        self.rooms.emptied(room);
    }

    /// The session at `addr` (named `name`), which ended, leaves each of `rooms`: told to
    /// their others as leaving for `reason` (with `message`), or not told (`None`).
    pub(super) fn leave_rooms(
        &mut self,
        addr: SocketAddr,
        name: &str,
        rooms: &[Membership],
        told: Option<(LeaveReason, Option<String>)>,
    ) {
        for m in rooms {
            self.take_out(addr, m.room, name);
            if let Some((reason, message)) = &told {
                let change = Change {
                    joined: false,
                    reason: *reason,
                    name: name.to_owned(),
                    message: message.clone(),
                };
                self.announce(m.room, Some(addr), change);
            }
        }
    }

    /// The session of `name` in `rooms` moved from `old` to `new`: its rooms know it there.
    pub(super) fn move_rooms(
        &mut self,
        old: SocketAddr,
        new: SocketAddr,
        name: &str,
        rooms: &[Membership],
    ) {
        let key = name_key(name);
        for m in rooms {
            let r = &mut self.rooms[m.room];
            r.members.remove(&old);
            r.members.insert(new, m.number);
            r.roster.insert(key.clone(), new);
        }
    }

    /// The session at `from`, which took the place of another session of its key (and its
    /// rooms), enters `room` (the JOIN's) as its room 0: renumbered if it was in it, entered
    /// now (told to the room's others) if not. Another room that had the number 0 is left,
    /// told, and so is the last room if the session is in as many as it may be: the new
    /// process enters again those it wants.
    pub(super) fn make_room_zero(&mut self, from: SocketAddr, room: RoomId) {
        let Some((held, mut leave)) = self.clients.get(&from).map(|s| {
            let held = s.rooms.iter().find(|m| m.room == room).map(|m| m.number);
            let zero = (s.rooms.iter()).find(|m| m.number == 0 && m.room != room);
            let mut leave: Vec<u16> = zero.map(|m| m.number).into_iter().collect();
            if held.is_none() && s.rooms.len() - leave.len() >= MAX_ROOMS {
                leave.extend(
                    (s.rooms.iter().rev())
                        .find(|m| m.number != 0)
                        .map(|m| m.number),
                );
            }
            (held, leave)
        }) else {
            return;
        };
        if held == Some(0) {
            return self.confirm(from, 0);
        }
        for number in leave.drain(..) {
            self.leave_one(from, number, None);
        }
        match held {
            Some(_) => {
                if let Some(mut s) = self.clients.get_mut(&from) {
                    for m in s.rooms.iter_mut().filter(|m| m.room == room) {
                        m.number = 0;
                        m.confirmed = true;
                    }
                }
                self.rooms[room].members.insert(from, 0);
            }
            None => {
                self.put_in(from, room, Some(0), true);
            }
        }
    }

    /// Refuses the message `id` to `to`: it names a room (`number`) the session is not in.
    pub(super) fn not_in_room(&mut self, to: SocketAddr, id: Uuid, number: u16) {
        self.stats.refused += 1;
        let message = format!("not sent: this session is in no room {number} (enter it first)");
        self.error(to, ErrorCode::BadRoom, id, message);
    }
}
