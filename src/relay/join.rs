//! JOIN and sessions: cookies checked, names claimed, presence told, leaving, per-IP limits,
//! and the token every later datagram must carry.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use uuid::Uuid;

pub(super) use super::origin::{Origin, network, origin, share};
use super::parked::parked_cost;
use super::rooms::{Membership, RoomId};
use super::{Relay, Session};
use crate::proto::name::{check_chars, check_key, name_key};
use crate::proto::room::{check_room, room_key};
use crate::proto::secure::keys::PublicKey;
use crate::proto::wire::{ErrorCode, LeaveReason, Packet, Token};
use crate::relay::dm::DMS_PER_MINUTE;
use crate::relay::limit::Bucket;

/// How long a session that took over an earlier process's has to enter again the rooms it
/// took over (see [`Session::inherited_until`]).
pub const INHERIT_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

impl Relay {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn join(
        &mut self,
        now: Instant,
        from: SocketAddr,
        name: String,
        history: u16,
        instance: Uuid,
        room: String,
        peer: Option<PublicKey>,
    ) {
        if let Some(allowed) = &self.config.allowed
            && !peer.is_some_and(|k| allowed.contains(&k))
        {
            self.stats.joins_refused += 1;
            let message = match peer {
                Some(k) => format!(
                    "this relay admits only the keys it lists, and not yours ({k}): ask its operator to add it"
                ),
                None => "this relay admits only the keys it lists".to_owned(),
            };
            return self.error(from, ErrorCode::NotAllowed, Uuid::nil(), message);
        }
        if self.clients.get(&from).is_some_and(|s| s.key != peer) {
            // Another key at the address of a session: someone else who receives there. Its
            // JOIN must not end the session of the key that holds it. (A new process with
            // another identity on the port of one that died gets in once the ghost session
            // times out: its JOIN is sent again until then.)
            self.stats.joins_refused += 1;
            return self.dropped(from, "a JOIN of another key at a session's address".into());
        }
        if let Err(e) = check_chars(&name) {
            self.stats.joins_refused += 1;
            return self.error(from, ErrorCode::BadName, Uuid::nil(), e.to_string());
        }
        if !room.is_empty()
            && let Err(e) = check_room(&room)
        {
            self.stats.joins_refused += 1;
            return self.error(from, ErrorCode::BadRoom, Uuid::nil(), e.to_string());
        }
        if !self.join_allowed(now, from) {
            return;
        }
        // The key only now, within the join allowance: the longest names' cost tens of µs.
        let key = name_key(&name);
        if let Err(e) = check_key(&key) {
            self.stats.joins_refused += 1;
            return self.error(from, ErrorCode::BadName, Uuid::nil(), e.to_string());
        }
        if self.departed.has(now, &instance) {
            // A JOIN the network held back past its client's LEAVE: nobody is there to let in.
            self.stats.joins_refused += 1;
            return self.dropped(from, "a JOIN of a client that left".into());
        }
        let here = self
            .clients
            .get(&from)
            .map(|s| s.instance == instance && s.name == name && s.key == peer);
        match here {
            // The same client asking again (its welcome was lost): the same session.
            Some(true) => {}
            // Another process of the same key on this address, or a new name: a new session.
            Some(false) => self.remove(from, LeaveReason::Quit),
            None => {}
        }
        let mut moved = false;
        if here != Some(true) {
            match self.roster.get(&key) {
                Some(old)
                    if self
                        .clients
                        .get(&old)
                        .is_some_and(|s| s.instance == instance && s.key == peer) =>
                {
                    // The same client from a new address (NAT rebinding, a new network): the
                    // session moves with it, token and csns included, if the new address's IP
                    // has room for one more.
                    if origin(old) != origin(from) && self.ip_is_full(from) {
                        return self.refuse_ip_full(from);
                    }
                    moved = true;
                    if let Some((_, mut session)) = self.clients.remove(&old) {
                        // Its answers and waiting messages go on from the new address (the
                        // rounds know the old one), counted there.
                        session.in_bulk = false;
                        session.queued = false;
                        let parked: usize =
                            session.ahead.values().map(|(_, _, t)| parked_cost(t)).sum();
                        self.parked.transfer(old, from, parked);
                        let rooms = session.rooms.clone();
                        self.clients.insert(from, session);
                        self.roster.insert(key.clone(), from);
                        self.move_rooms(old, from, &name, &rooms);
                        self.forget_ip(origin(old));
                        *self.per_ip.entry(origin(from)).or_default() += 1;
                        self.requeue_answers(from);
                        if (self.clients.get(&from))
                            .is_some_and(|s| s.ahead.contains_key(&s.next_csn))
                        {
                            self.queue_intake(from);
                        }
                    }
                    // Its messages waiting for the commit move too: left at the old address,
                    // their acks were lost there, the fan-out sent them back to their sender at
                    // the new one, and an abort could not rewind the session's csn (their
                    // resends were then taken for duplicates, and never stored).
                    let in_flight = self.in_flight.values_mut().flatten();
                    for p in (self.pending.iter_mut().chain(in_flight)).filter(|p| p.sender == old)
                    {
                        p.sender = from;
                    }
                    for (to, _, _) in self.held_acks.iter_mut().filter(|(to, ..)| *to == old) {
                        *to = from;
                    }
                    for (_, to, _) in
                        (self.presence.iter_mut()).filter(|(_, to, _)| *to == Some(old))
                    {
                        *to = Some(from);
                    }
                }
                Some(old)
                    if peer.is_some() && self.clients.get(&old).is_some_and(|s| s.key == peer) =>
                {
                    // The same key, another process: the client was killed or crashed and
                    // started again while its old session lingers. The new one takes its
                    // place at once, in its rooms, and the others see nothing: for them it
                    // never left. (A room the new process does not enter again within
                    // INHERIT_GRACE, it leaves then: see docs/protocol.md.)
                    let Some(room) = self.join_room(from, &room) else {
                        return;
                    };
                    let (rooms, next_room) = self.remove_quietly(old);
                    if self.ip_is_full(from) {
                        return self.refuse_ip_full(from);
                    }
                    self.open_session(now, from, &key, &name, instance, peer);
                    let mut rooms = rooms;
                    for m in &mut rooms {
                        // The new process knows none of these numbers: its private
                        // conversations are told to it (after the WELCOME) until it shows it
                        // knows them; the rooms it does not enter again within the grace, it
                        // leaves.
                        m.confirmed = false;
                        m.from_seq = self.rooms[m.room].committed;
                    }
                    if let Some(mut s) = self.clients.get_mut(&from) {
                        s.rooms = rooms.clone();
                        s.next_room = next_room;
                        s.inherited_until = Some(now + INHERIT_GRACE);
                    }
                    self.move_rooms(old, from, &name, &rooms);
                    if let Some(room) = room {
                        self.make_room_zero(from, room);
                    }
                }
                Some(old) => {
                    self.stats.joins_refused += 1;
                    let held =
                        (self.clients.get(&old)).map_or_else(|| name.clone(), |s| s.name.clone());
                    let message = if held == name {
                        format!("the name {name} is in use: choose another with --name")
                    } else {
                        format!(
                            "the name {name} looks like {held}, a name in use: choose another \
                             with --name"
                        )
                    };
                    return self.error(from, ErrorCode::NameTaken, Uuid::nil(), message);
                }
                None => {
                    if let (Some(peer), Some((held, owner))) = (peer, self.owners.get(&key))
                        && peer != owner
                    {
                        self.stats.joins_refused += 1;
                        let message = if held == name {
                            format!(
                                "the name {name} belongs to another key: choose another with \
                                 --name"
                            )
                        } else {
                            format!(
                                "the name {name} looks like {held}, which belongs to another \
                                 key: choose another with --name"
                            )
                        };
                        return self.error(from, ErrorCode::NameTaken, Uuid::nil(), message);
                    }
                    if self.clients.len() >= self.config.max_clients {
                        self.stats.joins_refused += 1;
                        let message = "the relay is full: try again later".to_owned();
                        return self.error(from, ErrorCode::Full, Uuid::nil(), message);
                    }
                    if self.ip_is_full(from) {
                        return self.refuse_ip_full(from);
                    }
                    let Some(room) = self.join_room(from, &room) else {
                        return;
                    };
                    self.open_session(now, from, &key, &name, instance, peer);
                    if let Some(room) = room {
                        self.put_in(from, room, Some(0), true);
                    }
                }
            }
        }
        if let Some(peer) = peer {
            self.owners.bind(&key, &name, peer);
        }
        // The name as the session has it (a moved session keeps its spelling).
        let Some((token, name)) = self.clients.get_mut(&from).map(|mut s| {
            s.last_heard = now;
            (s.token, s.name.clone())
        }) else {
            return;
        };
        let zero = self.room_of(from, 0);
        let fresh = here != Some(true) && !moved;
        let welcome = Packet::Welcome {
            token,
            name,
            latest: zero.map_or(0, |r| self.rooms[r].committed),
            timeout_ms: u32::try_from(self.config.timeout.as_millis()).unwrap_or(u32::MAX),
        };
        self.reply(from, &welcome);
        if zero.is_some() {
            self.history(from, 0, 0, 0, history);
        }
        self.dms_on_join(from, fresh);
    }

    /// The room a JOIN names, made if need be: `Some(None)` for none, `None` when the relay
    /// may not make it (the JOIN was refused).
    fn join_room(&mut self, from: SocketAddr, room: &str) -> Option<Option<RoomId>> {
        if room.is_empty() {
            return Some(None);
        }
        match self.room_to_enter(&room_key(room)) {
            Some(room) => Some(Some(room)),
            None => {
                self.stats.joins_refused += 1;
                let message = format!(
                    "the relay has {} rooms, the most it may have (its --max-rooms), and not {room}: join one of those",
                    self.rooms.len()
                );
                self.error(from, ErrorCode::TooManyRooms, Uuid::nil(), message);
                None
            }
        }
    }

    /// Takes one of the IP address's join tokens, or tells it to slow down (once an episode, as
    /// for messages: see `send`). A cookie is good for ten seconds: without this, one address
    /// could join again and again, with new instances or leaving in between, each JOIN a
    /// presence broadcast to the whole room and a join history of up to 1000 messages that no
    /// request rate limited (100 JOINs of 44 bytes made 9950 datagrams to a room of 50 and
    /// 48 MB of history for the address).
    fn join_allowed(&mut self, now: Instant, from: SocketAddr) -> bool {
        let (rate, burst) = (self.config.request_rate, self.config.max_per_ip as f64);
        let (bucket, told) = self
            .joins
            .entry(origin(from))
            .or_insert_with(|| (Bucket::new(rate, burst.max(1.0), now), false));
        if bucket.is_full(now) {
            *told = false;
        }
        if bucket.take(now) {
            return true;
        }
        let tell = !std::mem::replace(told, true);
        self.stats.rate_limited += 1;
        if tell {
            let message = format!("too many joins from {}: wait a moment", origin(from));
            self.error(from, ErrorCode::RateLimited, Uuid::nil(), message);
        } else {
            self.dropped(from, "too many joins".into());
        }
        false
    }

    /// Checks that `from` has a session, that `token` is its token and that `peer` is its
    /// key (the one its client proved it holds at the join); refreshes it if so.
    pub(super) fn authorise(
        &mut self,
        now: Instant,
        from: SocketAddr,
        token: &Token,
        peer: Option<PublicKey>,
    ) -> bool {
        if let Some(mut s) = self.clients.get_mut(&from)
            && s.token.matches(token)
            && s.key == peer
        {
            s.last_heard = now;
            return true;
        }
        self.stats.unauthorised += 1;
        if self.clients.get(&from).is_some_and(|s| s.key == peer) {
            // The address has a session of this key and this is not its token: a late
            // datagram of the key's session before this one. Its client, which holds this
            // session's token, has nothing to learn from it.
            self.dropped(from, "wrong session token".into());
            return false;
        }
        // No session at the address, or one of another key (which this one is not told of:
        // the answer is sealed for the sender's key, and names only the token it sent).
        // It names the token it refuses (in the place of a message's id): a client takes it
        // only for its current session's, not for a datagram of an older session that came
        // late.
        let refused = Uuid::from_bytes(token.0);
        let message = "not joined: join again".to_owned();
        self.error(from, ErrorCode::NotJoined, refused, message);
        false
    }

    /// A new session at `from` for `name` (whose look-alike key is `key`), in no room yet.
    fn open_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        key: &str,
        name: &str,
        instance: Uuid,
        peer: Option<PublicKey>,
    ) {
        *self.per_ip.entry(origin(from)).or_default() += 1;
        self.roster.insert(key.to_owned(), from);
        let bulk = self.config.bulk_rate;
        self.opened += 1;
        self.clients.insert(
            from,
            Session {
                name: name.to_owned(),
                token: Token::random(),
                number: self.opened,
                instance,
                next_csn: 1,
                ahead: BTreeMap::new(),
                last_heard: now,
                messages: Bucket::new(self.config.rate, self.config.burst, now),
                requests: Bucket::new(
                    self.config.request_rate,
                    2.0 * self.config.request_rate,
                    now,
                ),
                told_slow: false,
                told_busy: false,
                rooms: Vec::new(),
                next_room: 1,
                answers: VecDeque::new(),
                bulk: Bucket::new(bulk, bulk / 4.0, now),
                in_bulk: false,
                queued: false,
                key: peer,
                inherited_until: None,
                dms: Bucket::new(
                    f64::from(DMS_PER_MINUTE) / 60.0,
                    f64::from(DMS_PER_MINUTE),
                    now,
                ),
            },
        );
    }

    /// Ends the session at `addr` without telling anyone: another session of its key takes its
    /// place, and its rooms (returned, with the number its next room would have had).
    pub(super) fn remove_quietly(&mut self, addr: SocketAddr) -> (Vec<Membership>, u16) {
        let Some((_, session)) = self.clients.remove(&addr) else {
            return (Vec::new(), 1);
        };
        self.roster.remove(&name_key(&session.name));
        self.forget_ip(origin(addr));
        let parked = session.ahead.values().map(|(_, _, t)| parked_cost(t)).sum();
        self.parked.release(addr, parked);
        self.leave_rooms(addr, &session.name, &session.rooms, None);
        (session.rooms, session.next_room)
    }

    /// Ends the session at `addr`, telling the others why.
    pub(super) fn remove(&mut self, addr: SocketAddr, reason: LeaveReason) {
        self.remove_saying(addr, reason, None);
    }

    /// Ends the session at `addr`, telling the others why, and what its client said as it
    /// left.
    pub(super) fn remove_saying(
        &mut self,
        addr: SocketAddr,
        reason: LeaveReason,
        message: Option<String>,
    ) {
        if let Some((_, session)) = self.clients.remove(&addr) {
            self.roster.remove(&name_key(&session.name));
            self.forget_ip(origin(addr));
            let parked = session.ahead.values().map(|(_, _, t)| parked_cost(t)).sum();
            self.parked.release(addr, parked);
            let told = Some((reason, message));
            self.leave_rooms(addr, &session.name, &session.rooms, told);
        }
    }

    /// Whether `from`'s IP address (or IPv6 network) has as many sessions as one may have.
    fn ip_is_full(&self, from: SocketAddr) -> bool {
        self.per_ip.get(&origin(from)).copied().unwrap_or(0) >= self.config.max_per_ip
    }

    /// Refuses one more client from `from`'s IP address.
    fn refuse_ip_full(&mut self, from: SocketAddr) {
        self.stats.joins_refused += 1;
        let message = format!(
            "too many clients from {}: at most {} (the relay's --max-per-ip)",
            origin(from),
            self.config.max_per_ip
        );
        self.error(from, ErrorCode::Full, Uuid::nil(), message);
    }

    fn forget_ip(&mut self, ip: Origin) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}
