//! Presence across the relays of a shared store: what this relay's members do told to the others ([`Relay::take_presence`]), theirs taken in ([`Relay::presence_elsewhere`]) so that WHO, PONG's `members` and PRESENCE show every relay's, and one session a name in the whole cluster.
//!
//! A name that enters a room through another relay while it has a session here (its client
//! moved, or another process of its key joined there) ends the session here without a
//! word: the name is still in its rooms, through the other relay. Its other rooms keep the
//! name for [`HANDOVER_GRACE`], time for its client to enter them again there; a room it
//! does not enter again by then is told it left.

use std::time::{Duration, Instant};

use super::Relay;
use super::rooms::RoomId;
use crate::proto::name::name_key;
use crate::proto::wire::{Change, LeaveReason};

/// How long a name whose session here moved to another relay stays in the rooms that relay
/// has not said it entered yet.
pub const HANDOVER_GRACE: Duration = Duration::from_secs(5);

impl Relay {
    /// What this relay's members did since the last call, for the other relays of the
    /// shared store: each change with its room's key, in order (private conversations have
    /// none).
    pub fn take_presence(&mut self) -> Vec<(String, Change)> {
        std::mem::take(&mut self.cluster_out)
    }

    /// `change` happened in the room `room` (its key) through another relay of the shared
    /// store: its members here are told, unless they knew already; and a session here of a
    /// name that entered there ends (one session a name in the cluster).
    pub fn presence_elsewhere(&mut self, room: &str, change: Change, now: Instant) {
        if !self.config.shared || crate::proto::dm::dm_parties(room).is_some() {
            return;
        }
        // A room with members only on other relays counts as one of this relay's.
        let Some(room) = self.room_to_enter(room) else {
            self.stats.presence_dropped += 1;
            return;
        };
        let key = name_key(&change.name);
        if change.joined {
            let was_here = self.rooms[room].roster.get(&key).is_some();
            if let Some(addr) = self.roster.get(&key) {
                self.hand_over(addr, room, now);
            }
            match self.rooms[room].elsewhere.enter(&key, &change.name, None) {
                None if !was_here => self.tell_here(room, change),
                // A name handed over, in a room it entered there too: this relay's entry of
                // it is let go (the other relay wrote its own over it).
                Some(before) if before.held_until.is_some() => {
                    self.let_go(room, &change.name);
                }
                _ => {}
            }
        } else if self.rooms[room].elsewhere.leave(&key)
            && self.rooms[room].roster.get(&key).is_none()
        {
            self.tell_here(room, change);
            self.rooms.emptied(room);
        }
    }

    /// Tells this relay's members of `change` in `room`, and the other relays (see
    /// [`Relay::announce`]): `false` for a name that enters here after it was in the room
    /// through another relay, whose members here are not told again.
    pub(super) fn tell_cluster(&mut self, room: RoomId, change: &Change) -> bool {
        if !self.config.shared || self.rooms[room].dm.is_some() {
            return true;
        }
        self.cluster_out
            .push((self.rooms[room].name.clone(), change.clone()));
        let key = name_key(&change.name);
        !(change.joined && self.rooms[room].elsewhere.leave(&key))
    }

    /// The rooms' names held since their session here moved to another relay that did not
    /// say it entered them within [`HANDOVER_GRACE`] leave them, told.
    pub(super) fn expire_handed_over(&mut self, now: Instant) {
        let rooms: Vec<RoomId> = self.holding.iter().copied().collect();
        for room in rooms {
            for name in self.rooms[room].elsewhere.expire(now) {
                // Told here, and written over this relay's entry if it still is one.
                self.let_go(room, &name);
                let change = Change {
                    joined: false,
                    reason: LeaveReason::Quit,
                    name,
                    message: None,
                };
                self.tell_here(room, change);
            }
            if !self.rooms[room].elsewhere.holds_any() {
                self.holding.remove(&room);
                self.rooms.emptied(room);
            }
        }
    }

    /// The session at `addr` moved to another relay, which said it entered `room`: it ends
    /// here untold, its name held in its other rooms for the grace.
    fn hand_over(&mut self, addr: std::net::SocketAddr, room: RoomId, now: Instant) {
        let Some((name, rooms)) = (self.clients.get(&addr)).map(|s| {
            (
                s.name.clone(),
                s.rooms.iter().map(|m| m.room).collect::<Vec<_>>(),
            )
        }) else {
            return;
        };
        let key = name_key(&name);
        let until = now + HANDOVER_GRACE;
        self.let_go(room, &name);
        for other in rooms {
            let r = &mut self.rooms[other];
            if other != room && r.dm.is_none() && !r.elsewhere.has(&key) {
                r.elsewhere.enter(&key, &name, Some(until));
                self.holding.insert(other);
            }
        }
        tracing::info!(
            name,
            "a session here moved to another relay of the cluster: it ends here"
        );
        self.remove_quietly(addr);
    }

    /// Lets the other relays know `name` is no longer in `room` through this one: written
    /// only over an entry of this relay's (the shell's compare-and-set), so a relay that took
    /// the name over keeps it.
    fn let_go(&mut self, room: RoomId, name: &str) {
        let change = Change {
            joined: false,
            reason: LeaveReason::Quit,
            name: name.to_owned(),
            message: None,
        };
        self.cluster_out
            .push((self.rooms[room].name.clone(), change));
    }

    /// Tells this relay's members of `room` of `change`, which happened through another relay.
    fn tell_here(&mut self, room: RoomId, change: Change) {
        self.presence.push((room, None, change));
        self.rooms[room].announced += 1;
    }
}
