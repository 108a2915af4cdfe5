//! A bare shell around one [`Relay`], for tests that talk to it datagram by datagram: a clock
//! moved by hand, a log that is a `Vec`, every datagram the relay sends kept with its
//! destination, and the bytes exchanged with each address counted.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use urc::proto::message::{Message, Millis};
use urc::proto::wire::{ErrorCode, Packet, Token};
use urc::relay::{Config, Relay, Stored};
use uuid::Uuid;

/// Wall-clock time at the start (2026-11-25T08:00:00Z), for message timestamps.
const WALL_EPOCH: i64 = 1_795_593_600_000;

/// The relay, its log and what went in and out.
#[derive(Debug)]
pub struct Driver {
    pub relay: Relay,
    /// Time zero.
    pub start: Instant,
    pub now: Instant,
    /// The relay's log of the lobby: what it committed there.
    pub log: Vec<Message>,
    /// The logs of the other rooms (and private conversations), by key.
    pub rooms: std::collections::HashMap<String, Vec<Message>>,
    /// Every datagram the relay sent: to whom and what.
    pub sent: Vec<(SocketAddr, Packet)>,
    /// The same datagrams as bytes, as they went out.
    pub sent_bytes: Vec<Vec<u8>>,
    /// Bytes the relay received from each address.
    pub bytes_in: HashMap<SocketAddr, usize>,
    /// Bytes the relay sent to each address.
    pub bytes_out: HashMap<SocketAddr, usize>,
    /// When set, only the datagrams to these addresses (and to one that is joining) are kept in
    /// `sent` (a flood's answers are only counted).
    pub watch: Option<HashSet<SocketAddr>>,
    /// The address joining now, whose answers are kept whatever `watch` says.
    joining: Option<SocketAddr>,
    /// Milliseconds added to the wall clock the relay is given (a clock stepped by hand).
    pub wall_offset: i64,
    /// Turns ended so far.
    pub turns: u64,
    /// The most datagrams one turn sent.
    pub most_in_a_turn: usize,
    /// The turn (of `turns`) each message of the log was written in, by seq.
    pub written_in: HashMap<u64, u64>,
    /// One turn of the relay a call, as when each turn takes real time: what waits for a
    /// turn's room waits for the next call, instead of turns following at the same instant
    /// until nothing waits.
    pub one_turn: bool,
    /// A log shared with other drivers' relays (a replicated store, as NATS JetStream is):
    /// when set, the relay is one of several (`Config::shared`), and its turns commit to it.
    pub shared: Option<Shared>,
    /// How far the relay followed each room of `shared`.
    followed: HashMap<String, u64>,
}

/// A store several relays write to, as JetStream's streams are: each room's messages in one
/// order, seqs given as they are stored, a message id stored once.
pub type Shared = std::rc::Rc<std::cell::RefCell<HashMap<String, Vec<Message>>>>;

/// What joining got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// Welcomed with this token.
    Welcome(Token),
    /// Refused with this code and message.
    Refused(ErrorCode, String),
}

impl Driver {
    pub fn new(config: Config) -> Self {
        let start = Instant::now();
        Driver {
            relay: Relay::new(config, Vec::new()),
            start,
            now: start,
            log: Vec::new(),
            rooms: std::collections::HashMap::new(),
            sent: Vec::new(),
            sent_bytes: Vec::new(),
            bytes_in: HashMap::new(),
            bytes_out: HashMap::new(),
            watch: None,
            joining: None,
            wall_offset: 0,
            turns: 0,
            most_in_a_turn: 0,
            written_in: HashMap::new(),
            one_turn: false,
            shared: None,
            followed: HashMap::new(),
        }
    }

    /// A relay that shares `store` with others.
    pub fn sharing(config: Config, store: &Shared) -> Self {
        let mut d = Driver::new(Config {
            shared: true,
            ..config
        });
        d.shared = Some(store.clone());
        d
    }

    /// Hands the relay what `shared` holds that it did not follow yet (what other relays
    /// stored, and its own messages again), as its shell's followers do, and collects what it
    /// sends; how many datagrams it sent.
    pub fn follow(&mut self) -> usize {
        let Some(store) = self.shared.clone() else {
            return 0;
        };
        let rooms: Vec<(String, Vec<Message>)> = store
            .borrow()
            .iter()
            .map(|(room, log)| {
                let from = self.followed.get(room).copied().unwrap_or(0) as usize;
                (room.clone(), log[from..].to_vec())
            })
            .filter(|(_, new)| !new.is_empty())
            .collect();
        for (room, new) in rooms {
            self.followed
                .insert(room.clone(), new.last().map_or(0, |m| m.seq));
            self.relay.followed(&room, new);
        }
        self.drain()
    }

    /// A relay on a log of `n` messages from `r1`, keeping the last `config.cache` in memory.
    pub fn with_log(config: Config, n: u64) -> Self {
        Driver::with_log_of(config, n, 0)
    }

    /// [`Driver::with_log`] with texts of `len` bytes (the usual short ones for 0).
    pub fn with_log_of(config: Config, n: u64, len: usize) -> Self {
        let log: Vec<Message> = (1..=n)
            .map(|seq| Message {
                seq,
                id: Uuid::from_u128(u128::from(seq)),
                from: "r1".into(),
                text: match len {
                    0 => format!("hello world message {seq:06}"),
                    len => "x".repeat(len),
                },
                time: Millis(WALL_EPOCH),
            })
            .collect();
        let keep = config.cache.max(config.dedup);
        let tail = log[log.len().saturating_sub(keep)..].to_vec();
        let mut d = Driver::new(config.clone());
        d.relay = Relay::new(config, tail);
        d.log = log;
        d
    }

    pub fn wall(&self) -> Millis {
        Millis(WALL_EPOCH + (self.now - self.start).as_millis() as i64 + self.wall_offset)
    }

    /// Moves the clock on by `d` and gives the relay its turn (it ticks when a tick is due).
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.end_turn();
    }

    /// Hands the relay `bytes` from `from`, writes what it accepted to the log, commits, and
    /// collects what it sends; returns how many datagrams it sent.
    pub fn raw(&mut self, from: SocketAddr, bytes: &[u8]) -> usize {
        self.turn(&[(from, bytes.to_vec())])
    }

    /// One turn of the relay's loop: hands it every datagram of `datagrams`, writes what it
    /// accepted to the log, commits once, and collects what it sends; returns how many
    /// datagrams it sent.
    pub fn turn(&mut self, datagrams: &[(SocketAddr, Vec<u8>)]) -> usize {
        for (from, bytes) in datagrams {
            *self.bytes_in.entry(*from).or_default() += bytes.len();
            self.relay.handle(self.now, self.wall(), *from, bytes);
        }
        self.end_turn()
    }

    /// Ends the relay's turn as the shell does: persists, commits, sends; then, while the relay
    /// wants another turn at once (answers going page by page), gives it one. Returns how many
    /// datagrams it sent.
    fn end_turn(&mut self) -> usize {
        let mut n = 0;
        loop {
            self.relay.end_turn(self.now, self.wall());
            self.turns += 1;
            self.persist();
            let sent = self.drain();
            self.most_in_a_turn = self.most_in_a_turn.max(sent);
            n += sent;
            if self.one_turn || self.relay.poll_timeout().is_some_and(|t| t > self.now) {
                return n;
            }
        }
    }

    /// Hands `other` the presence changes of this relay's members since the last call, as the
    /// presence bucket of a shared store does, and gives it its turn; how many datagrams it
    /// sent.
    pub fn tell_presence(&mut self, other: &mut Driver) -> usize {
        for (room, change) in self.relay.take_presence() {
            other.relay.presence_elsewhere(&room, change, other.now);
        }
        other.end_turn()
    }

    /// Writes what the relay accepted to the log and commits it.
    fn persist(&mut self) {
        if let Some(store) = &self.shared {
            if !self.relay.has_appends() {
                return;
            }
            let mut store = store.borrow_mut();
            let stored: Vec<Stored> = (self.relay.appends())
                .map(|(room, m)| {
                    let log = store.entry(room.to_owned()).or_default();
                    match log.iter().find(|old| old.id == m.id) {
                        Some(old) => Stored {
                            seq: old.seq,
                            time: old.time,
                        },
                        None => {
                            let seq = log.len() as u64 + 1;
                            log.push(Message { seq, ..m.clone() });
                            Stored { seq, time: m.time }
                        }
                    }
                })
                .collect();
            drop(store);
            return self.relay.commit_stored(&stored);
        }
        if self.relay.has_appends() {
            let appends: Vec<(String, Message)> = (self.relay.appends())
                .map(|(room, m)| (room.to_owned(), m.clone()))
                .collect();
            for (room, m) in appends {
                let log = match room.as_str() {
                    "lobby" => {
                        self.written_in.insert(m.seq, self.turns);
                        &mut self.log
                    }
                    _ => self.rooms.entry(room).or_default(),
                };
                assert_eq!(m.seq, log.len() as u64 + 1, "appended in order");
                log.push(m);
            }
            self.relay.commit();
        }
    }

    /// Sends `packet` from `from`; returns how many datagrams the relay sent.
    pub fn packet(&mut self, from: SocketAddr, packet: &Packet) -> usize {
        self.raw(from, &packet.encode())
    }

    fn drain(&mut self) -> usize {
        let mut n = 0;
        loop {
            if let Some(read) = self.relay.poll_read() {
                let none = Vec::new();
                let shared = self.shared.as_ref().map(|s| s.borrow());
                let log = match (&shared, read.room.as_str()) {
                    (Some(store), room) => store.get(room).unwrap_or(&none),
                    (None, "lobby") => &self.log,
                    (None, room) => self.rooms.get(room).unwrap_or(&none),
                };
                let messages: Vec<Message> = (log.iter())
                    .filter(|m| read.first <= m.seq && m.seq <= read.last)
                    .cloned()
                    .collect();
                drop(shared);
                self.relay.serve_read(&read, &messages);
                continue;
            }
            let Some(t) = self.relay.poll_transmit() else {
                return n;
            };
            n += 1;
            *self.bytes_out.entry(t.to).or_default() += t.bytes.len();
            if self.joining != Some(t.to) && self.watch.as_ref().is_some_and(|w| !w.contains(&t.to))
            {
                continue;
            }
            let packet = Packet::decode(&t.bytes).expect("the relay sends valid datagrams");
            self.sent.push((t.to, packet));
            self.sent_bytes.push(t.bytes.to_vec());
        }
    }

    /// The datagrams the relay sent to `addr`.
    pub fn sent_to(&self, addr: SocketAddr) -> Vec<&Packet> {
        (self.sent.iter())
            .filter(|(to, _)| *to == addr)
            .map(|(_, p)| p)
            .collect()
    }

    /// Joins as `name` from `addr` the way a client does, behind the secure channel that
    /// proved its address: a JOIN.
    pub fn join(&mut self, addr: SocketAddr, name: &str) -> Joined {
        self.join_instance(addr, name, Uuid::new_v4())
    }

    /// Joins as `name` from `addr` as the client process `instance` (the same instance from
    /// another address is the same client, moved).
    pub fn join_instance(&mut self, addr: SocketAddr, name: &str, instance: Uuid) -> Joined {
        let join = Packet::Join {
            room: "lobby".into(),
            name: name.to_owned(),
            history: 0,
            instance,
        };
        self.joining = Some(addr);
        let before = self.sent.len();
        self.packet(addr, &join);
        self.joining = None;
        let answer = self.sent[before..].iter().find_map(|(to, p)| match p {
            Packet::Welcome { token, .. } if *to == addr => Some(Joined::Welcome(*token)),
            Packet::Error { code, message, .. } if *to == addr => {
                Some(Joined::Refused(*code, message.clone()))
            }
            _ => None,
        });
        answer.expect("welcomed or refused")
    }

    /// Joins and expects a welcome.
    pub fn member(&mut self, addr: SocketAddr, name: &str) -> Token {
        match self.join(addr, name) {
            Joined::Welcome(token) => token,
            refused => panic!("{name} at {addr} was refused: {refused:?}"),
        }
    }
}
