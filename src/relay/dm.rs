//! Private conversations on the relay: an ENTER of `@name` resolved to the conversation of the two names, the other person let in when a message comes for them, and a joining session let in to its recent ones.

use std::net::SocketAddr;
use std::time::Instant;

use super::Relay;
use super::rooms::{Membership, RoomId};
use crate::proto::dm::{DM_MARK, dm_key};
use crate::proto::name::{check_name, name_key};
use crate::proto::wire::{ErrorCode, MAX_ROOMS, Packet};

/// Private conversations a session may open (enter while not in them) in a minute.
pub const DMS_PER_MINUTE: u32 = 10;
/// The most private conversations a joining session is let in to unasked: the latest
/// written to.
pub const DMS_ON_JOIN: usize = 16;
/// A session in this many rooms or more is let in to no more conversations unasked: those it
/// has left are its own to enter.
pub const UNASKED_BELOW: usize = MAX_ROOMS - 16;

impl Relay {
    /// ENTER of `@name` (`target`): the session at `from` enters its private conversation
    /// with `name`, made if need be (the first one between them): someone who is here, or
    /// whose name belongs to a key.
    pub(super) fn enter_dm(
        &mut self,
        now: Instant,
        from: SocketAddr,
        target: String,
        history: u16,
    ) {
        let name = &target[DM_MARK.len_utf8()..];
        if let Err(e) = check_name(name) {
            self.stats.refused += 1;
            let message = format!("not a name to write to: {e}");
            return self.not_entered(from, target, ErrorCode::BadName, message);
        }
        let Some(own) = self.clients.get(&from).map(|s| name_key(&s.name)) else {
            return;
        };
        let other = name_key(name);
        if other == own {
            self.stats.refused += 1;
            let message = "that is your own name: /msg writes to someone else".to_owned();
            return self.not_entered(from, target, ErrorCode::BadName, message);
        }
        let key = dm_key(&own, &other);
        let known = self.rooms.find(&key).is_some()
            || self.roster.get(&other).is_some()
            || self.owners.get(&other).is_some();
        if !known {
            self.stats.refused += 1;
            let message = format!(
                "nobody called {name} has joined this relay: check the name (/who lists who is here)"
            );
            return self.not_entered(from, target, ErrorCode::BadName, message);
        }
        let opening = self.room_in(from, &key).is_none();
        if opening {
            let allowed = (self.clients.get(&from)).is_some_and(|s| s.dms.level(now) >= 1.0);
            if !allowed {
                self.stats.refused += 1;
                let message = format!(
                    "you opened {DMS_PER_MINUTE} private conversations in the last minute, the most a session may: wait a minute"
                );
                return self.not_entered(from, target, ErrorCode::TooManyRooms, message);
            }
        }
        self.enter_key(from, target, &key, history);
        if opening && self.room_in(from, &key).is_some() {
            // Only a conversation opened counts against the allowance, not a refused ENTER.
            if let Some(mut s) = self.clients.get_mut(&from) {
                s.dms.take(now);
            }
        }
    }

    /// The name the session at `to` sees the private conversation `room` under: `@` and the
    /// other person's name, as they spell it (here now, or when they first took it).
    pub(super) fn dm_name(&self, to: SocketAddr, room: RoomId) -> String {
        let Some(other) = self.other_party(to, room) else {
            return self.rooms[room].name.clone();
        };
        let spelt = (self.roster.get(&other))
            .and_then(|addr| self.clients.get(&addr).map(|s| s.name.clone()))
            .or_else(|| self.owners.get(&other).map(|(name, _)| name.to_owned()))
            .unwrap_or(other);
        format!("{DM_MARK}{spelt}")
    }

    /// The key of the name in the private conversation `room` that is not the name of the
    /// session at `of`; `None` for a room.
    fn other_party(&self, of: SocketAddr, room: RoomId) -> Option<String> {
        let (a, b) = self.rooms[room].dm.as_ref()?;
        let own = self.clients.get(&of).map(|s| name_key(&s.name));
        Some(
            if own.as_deref() == Some(a.as_str()) {
                b
            } else {
                a
            }
            .clone(),
        )
    }

    /// A message of the session at `from` is on its way to the private conversation `room`:
    /// the other person, if here and not in it, is let in first, so that the message reaches
    /// them.
    pub(super) fn reach_other(&mut self, from: SocketAddr, room: RoomId) {
        if let Some(to) = (self.other_party(from, room)).and_then(|other| self.roster.get(&other)) {
            self.let_in(to, room, true);
        }
    }

    /// Lets the session at `to` in the private conversation `room` unasked (unless it is in
    /// it, or in [`UNASKED_BELOW`] rooms or more), telling it with an ENTERED if `tell`.
    pub(super) fn let_in(&mut self, to: SocketAddr, room: RoomId, tell: bool) {
        let Some(count) = self.clients.get(&to).map(|s| s.rooms.len()) else {
            return;
        };
        if self.rooms[room].members.contains_key(&to) || count >= UNASKED_BELOW {
            return;
        }
        let committed = self.rooms[room].committed;
        let Some(number) = self.put_in(to, room, None, false) else {
            return;
        };
        let Some(m) = self.clients.get_mut(&to).and_then(|mut s| {
            let m = s.rooms.iter_mut().find(|m| m.number == number)?;
            m.confirmed = false;
            m.from_seq = committed;
            Some(*m)
        }) else {
            return;
        };
        if tell {
            self.tell_entered(to, m);
        }
    }

    /// Tells the session at `to` again of each private conversation its client has not shown
    /// it knows the number of (see [`Membership::confirmed`]): with every PONG.
    pub(super) fn tell_unconfirmed(&mut self, to: SocketAddr) {
        self.tell_dms(to, |m| !m.confirmed);
    }

    /// Tells the session at `to` of each private conversation it is in for which `which`.
    fn tell_dms(&mut self, to: SocketAddr, which: impl Fn(&Membership) -> bool) {
        let dms: Vec<Membership> = self.clients.get(&to).map_or_else(Vec::new, |s| {
            (s.rooms.iter())
                .filter(|m| self.rooms[m.room].dm.is_some() && which(m))
                .copied()
                .collect()
        });
        for m in dms {
            self.tell_entered(to, m);
        }
    }

    /// Tells each member of the private conversation `room` whose client has not shown it
    /// knows its number (see [`Membership::confirmed`]) again: at the room's heartbeat.
    pub(super) fn tell_unconfirmed_in(&mut self, room: RoomId) {
        let members: Vec<SocketAddr> = self.rooms[room].members.keys().copied().collect();
        for to in members {
            self.tell_dms(to, |m| m.room == room && !m.confirmed);
        }
    }

    /// Tells the session at `to` it is in the room of `m`, with its latest seq.
    pub(super) fn tell_entered(&mut self, to: SocketAddr, m: Membership) {
        let name = if self.rooms[m.room].dm.is_some() {
            self.dm_name(to, m.room)
        } else {
            self.rooms[m.room].name.clone()
        };
        let entered = Packet::Entered {
            room: m.number,
            name,
            latest: if m.confirmed {
                self.rooms[m.room].committed
            } else {
                m.from_seq
            },
        };
        self.reply(to, &entered);
    }

    /// A session was welcomed at `to` (`fresh` when it was opened now, not asked again or
    /// moved): it is let in to its [`DMS_ON_JOIN`] private conversations written to last, and
    /// told again of each it is in (their ENTERED may have been lost with the WELCOME, or
    /// belong to the process whose session this one took over).
    pub(super) fn dms_on_join(&mut self, to: SocketAddr, fresh: bool) {
        let Some(own) = self.clients.get(&to).map(|s| name_key(&s.name)) else {
            return;
        };
        if fresh {
            let mut mine: Vec<(crate::proto::message::Millis, RoomId)> = (self.rooms.dms_of(&own))
                .iter()
                .map(|&r| (self.rooms[r].last_time(), r))
                .collect();
            mine.sort_by(|x, y| y.cmp(x));
            for (_, room) in mine.into_iter().take(DMS_ON_JOIN) {
                self.let_in(to, room, false);
            }
        }
        self.tell_dms(to, |_| true);
    }
}
