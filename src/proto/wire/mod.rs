//! The datagram format: every packet of protocol version 1, encoded and decoded without I/O.
//!
//! docs/protocol.md is the reference for this file; keep the two in step.

use std::borrow::Borrow;
use std::fmt;

use uuid::Uuid;

use crate::proto::message::{Message, Millis};

/// First byte of every datagram.
pub const MAGIC: u8 = 0x55;
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Largest UDP payload urc ever sends or accepts.
pub const MAX_DATAGRAM: usize = 1200;
/// Most messages a history request may ask for at once.
pub const MAX_HISTORY_REQUEST: u16 = 1000;
/// Bytes of a valid name at most (32 characters of up to 4 bytes).
pub const MAX_NAME_BYTES: usize = 128;

/// A session token: proof that a datagram comes from the client the relay welcomed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(pub [u8; 16]);

impl Token {
    /// A fresh token of 122 random bits from the operating system's generator.
    pub fn random() -> Self {
        Token(*Uuid::new_v4().as_bytes())
    }

    /// Compares in time independent of where the tokens differ.
    pub fn matches(&self, other: &Token) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens are secrets: never print them.
        f.write_str("Token(..)")
    }
}

/// Why the relay refused something, as carried in an [`Packet::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorCode {
    /// The datagram could not be understood.
    Malformed = 1,
    /// The name is in use by another client.
    NameTaken = 2,
    /// The name breaks the naming rules.
    BadName = 3,
    /// The relay has no session for this address and token: join again.
    NotJoined = 4,
    /// The message text breaks the text rules.
    BadText = 5,
    /// The relay could not store the message: send it again later.
    Storage = 6,
    /// The relay has no room for another client.
    Full = 7,
    /// Too many datagrams: slow down.
    RateLimited = 8,
}

impl ErrorCode {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => ErrorCode::Malformed,
            2 => ErrorCode::NameTaken,
            3 => ErrorCode::BadName,
            4 => ErrorCode::NotJoined,
            5 => ErrorCode::BadText,
            6 => ErrorCode::Storage,
            7 => ErrorCode::Full,
            8 => ErrorCode::RateLimited,
            _ => return None,
        })
    }
}

/// Why someone left the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LeaveReason {
    /// They said goodbye.
    Quit = 0,
    /// The relay heard nothing from them for too long.
    TimedOut = 1,
}

/// One datagram of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Client → relay: enter the room as `name` and receive the last `history` messages.
    Join {
        /// The name to be known by.
        name: String,
        /// How many recent messages to receive as history.
        history: u16,
        /// Random, chosen once per client process: a JOIN with the same instance is the same
        /// client asking again (its WELCOME was lost, or its address changed).
        instance: Uuid,
        /// The cookie of the relay's last CHALLENGE to this address; empty at first.
        cookie: Vec<u8>,
    },
    /// Client → relay: one or more chat messages, taken in the order they come.
    Send {
        /// The session's token.
        token: Token,
        /// The lowest csn the client has not seen acknowledged (at most the first message's
        /// csn): everything below it is stored, so the relay need not wait for it.
        base: u64,
        /// The messages, 1 to 255.
        messages: Vec<Sent>,
    },
    /// Client → relay: ask for stored messages.
    History {
        /// The session's token.
        token: Token,
        /// A number the client chose, echoed in every page of the answer (0 is the join
        /// history's number: asking again for missing join history uses it).
        req: u32,
        /// First sequence number wanted, or 0 for "the latest `count`".
        from: u64,
        /// How many messages, at most [`MAX_HISTORY_REQUEST`].
        count: u16,
    },
    /// Client → relay: ask who is in the room.
    Who {
        /// The session's token.
        token: Token,
        /// A number the client chose, echoed in the answer.
        req: u32,
    },
    /// Client → relay: I am still here.
    Ping {
        /// The session's token.
        token: Token,
    },
    /// Client → relay: I leave the room.
    Leave {
        /// The session's token.
        token: Token,
    },
    /// Relay → client: you are in.
    Welcome {
        /// Carry this in every later datagram.
        token: Token,
        /// The name, as the relay registered it.
        name: String,
        /// The room's latest sequence number (0 when empty).
        latest: u64,
        /// Milliseconds of silence after which the relay drops a client.
        timeout_ms: u32,
    },
    /// Relay → client: a request was refused.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// The message it concerns (nil when none).
        id: Uuid,
        /// A human-readable, one-line explanation.
        message: String,
    },
    /// Relay → client: your messages are stored.
    Ack {
        /// The messages, 1 to 255.
        acks: Vec<Acked>,
    },
    /// Relay → client: new messages from others, in sequence order.
    Messages {
        /// The messages.
        messages: Vec<Message>,
    },
    /// Relay → client: one page of an answer to a history request or of the history sent on join.
    HistoryPage {
        /// The request it answers; 0 for the history sent on join.
        req: u32,
        /// First sequence number of the whole answer (0 when the answer is empty).
        first: u64,
        /// Last sequence number of the whole answer (0 when the answer is empty).
        last: u64,
        /// The messages in this page, in order.
        messages: Vec<Message>,
    },
    /// Relay → client: people joined or left, in the order they did.
    Presence {
        /// The changes, 1 to 255.
        changes: Vec<Change>,
    },
    /// Relay → client: one page of the room's names.
    Names {
        /// The request it answers.
        req: u32,
        /// How many names there are in all pages.
        total: u16,
        /// The names in this page.
        names: Vec<String>,
    },
    /// Relay → client: prove that you receive at this address: send your JOIN again with this
    /// cookie.
    Challenge {
        /// Opaque bytes, valid for a short time and for this address only.
        cookie: Vec<u8>,
    },
    /// Relay → client: the answer to a ping, with the room's latest sequence number.
    Pong {
        /// The room's latest sequence number.
        latest: u64,
    },
}

impl Packet {
    /// A SEND of one message: `csn`, `id` and `text`, with the session's `token` and `base`.
    pub fn send_one(token: Token, base: u64, csn: u64, id: Uuid, text: &str) -> Packet {
        Packet::Send {
            token,
            base,
            messages: vec![Sent {
                csn,
                id,
                text: text.to_owned(),
            }],
        }
    }
}

/// One message of a [`Packet::Send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The client's count of messages in this session, from 1: the relay stores them in this
    /// order.
    pub csn: u64,
    /// The message's unique id.
    pub id: Uuid,
    /// The text.
    pub text: String,
}

/// One acknowledged message of a [`Packet::Ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// The message's id.
    pub id: Uuid,
    /// The csn of the SEND this answers.
    pub csn: u64,
    /// Its place in the room's order.
    pub seq: u64,
    /// When the relay accepted it.
    pub time: Millis,
}

/// One arrival or departure of a [`Packet::Presence`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// True for joined, false for left.
    pub joined: bool,
    /// Why they left (ignored for joined).
    pub reason: LeaveReason,
    /// Their name.
    pub name: String,
}

mod kind {
    pub const JOIN: u8 = 0x01;
    pub const SEND: u8 = 0x02;
    pub const HISTORY: u8 = 0x03;
    pub const WHO: u8 = 0x04;
    pub const PING: u8 = 0x05;
    pub const LEAVE: u8 = 0x06;
    pub const WELCOME: u8 = 0x81;
    pub const ERROR: u8 = 0x82;
    pub const ACK: u8 = 0x83;
    pub const MESSAGES: u8 = 0x84;
    pub const HISTORY_PAGE: u8 = 0x85;
    pub const PRESENCE: u8 = 0x86;
    pub const NAMES: u8 = 0x87;
    pub const PONG: u8 = 0x88;
    pub const CHALLENGE: u8 = 0x89;
}

/// Bytes of a `Send` datagram before its messages.
pub const SEND_HEADER: usize = 3 + 16 + 8 + 1;
/// Bytes of an `Ack` datagram before its entries.
pub const ACK_HEADER: usize = 3 + PROOF_LEN + 1;
/// Bytes of a `Presence` datagram before its changes.
pub const PRESENCE_HEADER: usize = 3 + PROOF_LEN + 1;
/// Bytes of a `Messages` datagram before its messages.
pub const MESSAGES_HEADER: usize = 3 + PROOF_LEN + 1;
/// Bytes of a `HistoryPage` datagram before its messages.
pub const HISTORY_HEADER: usize = 3 + PROOF_LEN + 4 + 8 + 8 + 1;
/// Bytes of a `Names` datagram before its names.
pub const NAMES_HEADER: usize = 3 + PROOF_LEN + 4 + 2 + 1;

/// Bytes of the proof that follows the header of every relay → client datagram.
pub const PROOF_LEN: usize = 8;

/// The proof a relay → client datagram carries: the first bytes of the session's token, or
/// of the client's instance id in answers to a JOIN, so that a client takes from the relay
/// only what someone who knows them sent. A NotJoined to an address without a session carries
/// the token of the datagram it refuses.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Proof(pub [u8; PROOF_LEN]);

impl Proof {
    /// The proof of a session.
    pub fn of_token(token: &Token) -> Self {
        let mut p = [0u8; PROOF_LEN];
        p.copy_from_slice(&token.0[..PROOF_LEN]);
        Proof(p)
    }

    /// The proof of a client instance (in answers to its JOIN).
    pub fn of_instance(instance: &Uuid) -> Self {
        let mut p = [0u8; PROOF_LEN];
        p.copy_from_slice(&instance.as_bytes()[..PROOF_LEN]);
        Proof(p)
    }

    /// The proof a datagram carries, if it is a relay → client datagram long enough to.
    pub fn read(datagram: &[u8]) -> Option<Proof> {
        match datagram {
            [MAGIC, VERSION, kind, rest @ ..]
                if is_relay_kind(*kind) && rest.len() >= PROOF_LEN =>
            {
                let mut p = [0u8; PROOF_LEN];
                p.copy_from_slice(&rest[..PROOF_LEN]);
                Some(Proof(p))
            }
            _ => None,
        }
    }

    /// Writes this proof into an encoded relay → client datagram.
    ///
    /// # Panics
    /// If `datagram` is not an encoded relay → client datagram.
    pub fn write(&self, datagram: &mut [u8]) {
        assert!(Proof::read(datagram).is_some(), "not a relay datagram");
        datagram[3..3 + PROOF_LEN].copy_from_slice(&self.0);
    }
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Part of a secret: never printed.
        f.write_str("Proof(..)")
    }
}

/// Relay → client packet types have the high bit set.
fn is_relay_kind(kind: u8) -> bool {
    kind & 0x80 != 0
}

/// Bytes one message takes inside a `Messages` or `HistoryPage` datagram after `prev` (the
/// record before it in the same datagram, `None` for the first): its seq and time are written
/// as differences from the previous record's.
pub fn message_len(m: &Message, prev: Option<&Message>) -> usize {
    let (seq, time) = deltas(m, prev);
    varint_len(seq) + varint_len(time) + 16 + 1 + m.from.len() + 2 + m.text.len()
}

/// A record's seq and time as written: the differences from the previous record's (from 0
/// for the first), the seq's as an unsigned number and the time's zigzag-encoded (so a small
/// step back is small too), both wrapping.
fn deltas(m: &Message, prev: Option<&Message>) -> (u64, u64) {
    let (seq, time) = prev.map_or((0, 0), |p| (p.seq, p.time.0));
    let step = m.time.0.wrapping_sub(time);
    (m.seq.wrapping_sub(seq), ((step << 1) ^ (step >> 63)) as u64)
}

/// Bytes of `v` as a varint: 7 bits a byte, least significant first.
fn varint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).div_ceil(7).max(1)
}

/// Bytes one message takes inside a `Send` datagram.
pub fn sent_len(s: &Sent) -> usize {
    8 + 16 + 2 + s.text.len()
}

/// Bytes one entry takes inside an `Ack` datagram.
pub const ACKED_LEN: usize = 16 + 8 + 8 + 8;

/// Bytes one change takes inside a `Presence` datagram.
pub fn change_len(c: &Change) -> usize {
    1 + 1 + 1 + c.name.len()
}

/// Why a datagram could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its fields say.
    Truncated,
    /// Bytes left over after the last field.
    Trailing,
    /// Not urc (wrong first byte).
    BadMagic,
    /// A protocol version this build does not speak.
    Version(u8),
    /// An unknown packet type.
    Kind(u8),
    /// A string that is not UTF-8.
    Utf8,
    /// A field out of its range.
    Field(&'static str),
    /// Over [`MAX_DATAGRAM`] bytes.
    TooLong,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("datagram truncated"),
            DecodeError::Trailing => f.write_str("datagram has trailing bytes"),
            DecodeError::BadMagic => f.write_str("not a urc datagram"),
            DecodeError::Version(v) => write!(f, "unsupported protocol version {v}"),
            DecodeError::Kind(k) => write!(f, "unknown packet type 0x{k:02x}"),
            DecodeError::Utf8 => f.write_str("string is not valid utf-8"),
            DecodeError::Field(name) => write!(f, "field {name} out of range"),
            DecodeError::TooLong => write!(f, "datagram longer than {MAX_DATAGRAM} bytes"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl Packet {
    /// Encodes the packet. Fields longer than the format allows are the caller's bug.
    ///
    /// # Panics
    /// If a string or a list is longer than its length prefix can say.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64));
        match self {
            Packet::Join {
                name,
                history,
                instance,
                cookie,
            } => {
                w.head(kind::JOIN);
                w.str8(name);
                w.u16(*history);
                w.uuid(instance);
                w.bytes8(cookie);
            }
            Packet::Send {
                token,
                base,
                messages,
            } => {
                w.head(kind::SEND);
                w.token(token);
                w.u64(*base);
                w.u8_len(messages.len());
                for m in messages {
                    w.u64(m.csn);
                    w.uuid(&m.id);
                    w.str16(&m.text);
                }
            }
            Packet::History {
                token,
                req,
                from,
                count,
            } => {
                w.head(kind::HISTORY);
                w.token(token);
                w.u32(*req);
                w.u64(*from);
                w.u16(*count);
            }
            Packet::Who { token, req } => {
                w.head(kind::WHO);
                w.token(token);
                w.u32(*req);
            }
            Packet::Ping { token } => {
                w.head(kind::PING);
                w.token(token);
            }
            Packet::Leave { token } => {
                w.head(kind::LEAVE);
                w.token(token);
            }
            Packet::Welcome {
                token,
                name,
                latest,
                timeout_ms,
            } => {
                w.head(kind::WELCOME);
                w.token(token);
                w.str8(name);
                w.u64(*latest);
                w.u32(*timeout_ms);
            }
            Packet::Error { code, id, message } => {
                w.head(kind::ERROR);
                w.0.push(*code as u8);
                w.uuid(id);
                w.str16(message);
            }
            Packet::Ack { acks } => {
                w.head(kind::ACK);
                w.u8_len(acks.len());
                for a in acks {
                    w.uuid(&a.id);
                    w.u64(a.csn);
                    w.u64(a.seq);
                    w.i64(a.time.0);
                }
            }
            Packet::Messages { messages } => {
                w.head(kind::MESSAGES);
                w.messages(messages);
            }
            Packet::HistoryPage {
                req,
                first,
                last,
                messages,
            } => {
                w.head(kind::HISTORY_PAGE);
                w.u32(*req);
                w.u64(*first);
                w.u64(*last);
                w.messages(messages);
            }
            Packet::Presence { changes } => {
                w.head(kind::PRESENCE);
                w.u8_len(changes.len());
                for c in changes {
                    w.0.push(u8::from(c.joined));
                    w.0.push(c.reason as u8);
                    w.str8(&c.name);
                }
            }
            Packet::Names { req, total, names } => {
                w.head(kind::NAMES);
                w.u32(*req);
                w.u16(*total);
                w.u8_len(names.len());
                for n in names {
                    w.str8(n);
                }
            }
            Packet::Pong { latest } => {
                w.head(kind::PONG);
                w.u64(*latest);
            }
            Packet::Challenge { cookie } => {
                w.head(kind::CHALLENGE);
                w.bytes8(cookie);
            }
        }
        w.0
    }

    /// Decodes one datagram.
    ///
    /// # Errors
    /// When the bytes are not exactly one valid packet.
    pub fn decode(bytes: &[u8]) -> Result<Packet, DecodeError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(DecodeError::TooLong);
        }
        let mut r = Reader(bytes);
        if r.u8()? != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let kind = r.u8()?;
        if is_relay_kind(kind) {
            // The proof is checked by the client against what it knows (see `Proof::read`).
            r.take(PROOF_LEN)?;
        }
        let packet = match kind {
            kind::JOIN => Packet::Join {
                name: r.str8()?,
                history: r.u16()?,
                instance: r.uuid()?,
                cookie: r.bytes8()?,
            },
            kind::SEND => Packet::Send {
                token: r.token()?,
                base: r.u64()?,
                messages: r.list(|r| {
                    Ok(Sent {
                        csn: r.u64()?,
                        id: r.uuid()?,
                        text: r.str16()?,
                    })
                })?,
            },
            kind::HISTORY => Packet::History {
                token: r.token()?,
                req: r.u32()?,
                from: r.u64()?,
                count: r.u16()?,
            },
            kind::WHO => Packet::Who {
                token: r.token()?,
                req: r.u32()?,
            },
            kind::PING => Packet::Ping { token: r.token()? },
            kind::LEAVE => Packet::Leave { token: r.token()? },
            kind::WELCOME => Packet::Welcome {
                token: r.token()?,
                name: r.str8()?,
                latest: r.u64()?,
                timeout_ms: r.u32()?,
            },
            kind::ERROR => Packet::Error {
                code: ErrorCode::from_u8(r.u8()?).ok_or(DecodeError::Field("code"))?,
                id: r.uuid()?,
                message: r.str16()?,
            },
            kind::ACK => Packet::Ack {
                acks: r.list(|r| {
                    Ok(Acked {
                        id: r.uuid()?,
                        csn: r.u64()?,
                        seq: r.u64()?,
                        time: Millis(r.i64()?),
                    })
                })?,
            },
            kind::MESSAGES => Packet::Messages {
                messages: r.messages()?,
            },
            kind::HISTORY_PAGE => Packet::HistoryPage {
                req: r.u32()?,
                first: r.u64()?,
                last: r.u64()?,
                messages: r.messages()?,
            },
            kind::PRESENCE => Packet::Presence {
                changes: r.list(|r| {
                    let joined = match r.u8()? {
                        0 => false,
                        1 => true,
                        _ => return Err(DecodeError::Field("joined")),
                    };
                    let reason = match r.u8()? {
                        0 => LeaveReason::Quit,
                        1 => LeaveReason::TimedOut,
                        _ => return Err(DecodeError::Field("reason")),
                    };
                    Ok(Change {
                        joined,
                        reason,
                        name: r.str8()?,
                    })
                })?,
            },
            kind::NAMES => {
                let req = r.u32()?;
                let total = r.u16()?;
                let n = r.u8()?;
                let names = (0..n).map(|_| r.str8()).collect::<Result<_, _>>()?;
                Packet::Names { req, total, names }
            }
            kind::PONG => Packet::Pong { latest: r.u64()? },
            kind::CHALLENGE => Packet::Challenge {
                cookie: r.bytes8()?,
            },
            other => return Err(DecodeError::Kind(other)),
        };
        if !r.0.is_empty() {
            return Err(DecodeError::Trailing);
        }
        Ok(packet)
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn head(&mut self, kind: u8) {
        self.0.extend_from_slice(&[MAGIC, VERSION, kind]);
        if is_relay_kind(kind) {
            // The proof, written by whoever sends the datagram (see `Proof::write`).
            self.0.extend_from_slice(&[0; PROOF_LEN]);
        }
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn token(&mut self, t: &Token) {
        self.0.extend_from_slice(&t.0);
    }
    fn uuid(&mut self, id: &Uuid) {
        self.0.extend_from_slice(id.as_bytes());
    }
    fn u8_len(&mut self, n: usize) {
        self.0.push(u8::try_from(n).expect("at most 255 items"));
    }
    fn str8(&mut self, s: &str) {
        self.bytes8(s.as_bytes());
    }
    fn bytes8(&mut self, b: &[u8]) {
        self.u8_len(b.len());
        self.0.extend_from_slice(b);
    }
    fn str16(&mut self, s: &str) {
        self.u16(u16::try_from(s.len()).expect("at most 65535 bytes"));
        self.0.extend_from_slice(s.as_bytes());
    }
    fn messages(&mut self, messages: &[Message]) {
        self.u8_len(messages.len());
        let mut prev = None;
        for m in messages {
            let (seq, time) = deltas(m, prev);
            self.varint(seq);
            self.varint(time);
            self.uuid(&m.id);
            self.str8(&m.from);
            self.str16(&m.text);
            prev = Some(m);
        }
    }
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn token(&mut self) -> Result<Token, DecodeError> {
        Ok(Token(self.array()?))
    }
    fn uuid(&mut self) -> Result<Uuid, DecodeError> {
        Ok(Uuid::from_bytes(self.array()?))
    }
    fn string(&mut self, len: usize) -> Result<String, DecodeError> {
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Utf8)
    }
    // Lengths are checked by the rules that use the strings (names, texts), so that a
    // name or text that is too long gets an answer saying so rather than silence.
    fn bytes8(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = self.u8()?;
        Ok(self.take(usize::from(len))?.to_vec())
    }
    fn str8(&mut self) -> Result<String, DecodeError> {
        let len = self.u8()?;
        self.string(usize::from(len))
    }
    fn str16(&mut self) -> Result<String, DecodeError> {
        let len = self.u16()?;
        self.string(usize::from(len))
    }
    fn messages(&mut self) -> Result<Vec<Message>, DecodeError> {
        let n = self.u8()?;
        let (mut seq, mut time) = (0u64, 0i64);
        (0..n)
            .map(|_| {
                seq = seq.wrapping_add(self.varint()?);
                let step = self.varint()?;
                time = time.wrapping_add((step >> 1) as i64 ^ -((step & 1) as i64));
                Ok(Message {
                    seq,
                    time: Millis(time),
                    id: self.uuid()?,
                    from: self.str8()?,
                    text: self.str16()?,
                })
            })
            .collect()
    }
    /// A varint in its shortest form: at most 10 bytes, no needless final zero byte.
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return Err(DecodeError::Field("varint"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(DecodeError::Field("varint"));
                }
                return Ok(v);
            }
        }
        Err(DecodeError::Field("varint"))
    }
    /// A count (1 to 255: an empty list says nothing and is refused) and that many items.
    fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.u8()?;
        if n == 0 {
            return Err(DecodeError::Field("count"));
        }
        (0..n).map(|_| item(self)).collect()
    }
}

/// Packs messages into as few pages as fit [`MAX_DATAGRAM`] with `header` bytes each,
/// keeping their order; each page holds at most 255 messages.
pub fn paginate<M: Borrow<Message>>(messages: &[M], header: usize) -> Vec<&[M]> {
    runs(messages, header, |m, prev| {
        message_len(m.borrow(), prev.map(Borrow::borrow))
    })
}

/// Packs items of `len(item)` bytes each into as few runs as fit [`MAX_DATAGRAM`] with
/// `header` bytes each, keeping their order; each run holds at most 255 items.
pub fn pack<T>(items: &[T], header: usize, len: impl Fn(&T) -> usize) -> Vec<&[T]> {
    runs(items, header, |item, _| len(item))
}

/// [`pack`] for items whose length depends on the item before them in the same run
/// (`None` for a run's first).
fn runs<T>(items: &[T], header: usize, len: impl Fn(&T, Option<&T>) -> usize) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut used = header;
    for (i, item) in items.iter().enumerate() {
        let prev = (i > start).then(|| &items[i - 1]);
        let mut bytes = len(item, prev);
        if prev.is_some() && (used + bytes > MAX_DATAGRAM || i - start == 255) {
            runs.push(&items[start..i]);
            start = i;
            used = header;
            bytes = len(item, None);
        }
        used += bytes;
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, text: &str) -> Message {
        Message {
            seq,
            id: Uuid::new_v4(),
            from: "小明".into(),
            text: text.into(),
            time: Millis(1_795_593_600_123),
        }
    }

    #[test]
    fn every_packet_round_trips() {
        let token = Token::random();
        let packets = vec![
            Packet::Join {
                name: "alice".into(),
                history: 20,
                instance: Uuid::new_v4(),
                cookie: vec![1, 2, 3],
            },
            Packet::Send {
                token,
                base: 5,
                messages: vec![
                    Sent {
                        csn: 7,
                        id: Uuid::new_v4(),
                        text: "你好".into(),
                    },
                    Sent {
                        csn: 8,
                        id: Uuid::new_v4(),
                        text: String::new(),
                    },
                ],
            },
            Packet::History {
                token,
                req: 3,
                from: 0,
                count: 20,
            },
            Packet::Who { token, req: 9 },
            Packet::Ping { token },
            Packet::Leave { token },
            Packet::Welcome {
                token,
                name: "alice".into(),
                latest: 42,
                timeout_ms: 30_000,
            },
            Packet::Error {
                code: ErrorCode::NameTaken,
                id: Uuid::nil(),
                message: "the name alice is taken".into(),
            },
            Packet::Ack {
                acks: vec![Acked {
                    id: Uuid::new_v4(),
                    csn: 1,
                    seq: 43,
                    time: Millis(5),
                }],
            },
            Packet::Messages {
                messages: vec![msg(1, "a"), msg(2, "你好")],
            },
            Packet::HistoryPage {
                req: 0,
                first: 1,
                last: 2,
                messages: vec![msg(1, "a")],
            },
            Packet::Presence {
                changes: vec![
                    Change {
                        joined: false,
                        reason: LeaveReason::TimedOut,
                        name: "bob".into(),
                    },
                    Change {
                        joined: true,
                        reason: LeaveReason::Quit,
                        name: "小明".into(),
                    },
                ],
            },
            Packet::Names {
                req: 1,
                total: 2,
                names: vec!["alice".into(), "bob".into()],
            },
            Packet::Pong { latest: 9 },
            Packet::Challenge {
                cookie: vec![9; 20],
            },
        ];
        for p in packets {
            let bytes = p.encode();
            assert!(bytes.len() <= MAX_DATAGRAM);
            assert_eq!(Packet::decode(&bytes), Ok(p.clone()), "{p:?}");
            // Every strict prefix is truncated, never a panic or a different packet.
            for cut in 0..bytes.len() {
                assert!(Packet::decode(&bytes[..cut]).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(Packet::decode(&longer), Err(DecodeError::Trailing));
        }
    }

    #[test]
    fn header_errors() {
        assert_eq!(Packet::decode(&[]), Err(DecodeError::Truncated));
        assert_eq!(Packet::decode(b"hello"), Err(DecodeError::BadMagic));
        assert_eq!(
            Packet::decode(&[MAGIC, 2, kind::PING]),
            Err(DecodeError::Version(2))
        );
        assert_eq!(
            Packet::decode(&[MAGIC, VERSION, 0x7f]),
            Err(DecodeError::Kind(0x7f))
        );
        assert_eq!(
            Packet::decode(&vec![MAGIC; MAX_DATAGRAM + 1]),
            Err(DecodeError::TooLong)
        );
        let mut bad_utf8 = vec![MAGIC, VERSION, kind::JOIN, 2, 0xff, 0xfe, 0, 20];
        bad_utf8.extend_from_slice(&[7; 16]);
        bad_utf8.push(0);
        assert_eq!(Packet::decode(&bad_utf8), Err(DecodeError::Utf8));
        bad_utf8[4] = b'a';
        bad_utf8[5] = b'b';
        assert!(Packet::decode(&bad_utf8).is_ok());
    }

    #[test]
    fn the_largest_message_fits_one_page() {
        let big = Message {
            seq: u64::MAX,
            id: Uuid::new_v4(),
            from: "𝄞".repeat(32),
            text: "界".repeat(333),
            time: Millis(i64::MAX),
        };
        assert_eq!(big.from.len(), MAX_NAME_BYTES);
        let page = Packet::HistoryPage {
            req: u32::MAX,
            first: 1,
            last: u64::MAX,
            messages: vec![big],
        };
        assert!(page.encode().len() <= MAX_DATAGRAM);
    }

    #[test]
    fn pages_hold_whole_messages_within_the_limit() {
        let messages: Vec<Message> = (1..=300)
            .map(|i| msg(i, &"话".repeat(i as usize % 300)))
            .collect();
        let pages = paginate(&messages, HISTORY_HEADER);
        let flat: Vec<Message> = pages.iter().flat_map(|p| p.iter().cloned()).collect();
        assert_eq!(flat, messages);
        for page in pages {
            let p = Packet::HistoryPage {
                req: 1,
                first: 1,
                last: 300,
                messages: page.to_vec(),
            };
            assert!(p.encode().len() <= MAX_DATAGRAM);
        }
        let short: Vec<Message> = (1..=600).map(|i| msg(i, "")).collect();
        assert!(
            paginate(&short, MESSAGES_HEADER)
                .iter()
                .all(|p| p.len() <= 255)
        );
    }

    #[test]
    fn varints_are_shortest_and_strict() {
        for v in [0, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
            let mut w = Writer(Vec::new());
            w.varint(v);
            assert_eq!(w.0.len(), varint_len(v), "{v}");
            assert_eq!(Reader(&w.0).varint(), Ok(v));
        }
        // A needless final zero, an eleventh byte, a tenth byte past 64 bits.
        for bad in [
            &[0x80, 0x00][..],
            &[0xff; 11],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        ] {
            assert_eq!(
                Reader(bad).varint(),
                Err(DecodeError::Field("varint")),
                "{bad:?}"
            );
        }
        assert_eq!(Reader(&[0x80]).varint(), Err(DecodeError::Truncated));
    }

    #[test]
    fn records_in_any_order_round_trip_and_those_in_order_are_short() {
        let mut messages = vec![msg(5, "a"), msg(3, "b"), msg(u64::MAX, "c"), msg(1, "d")];
        messages[1].time = Millis(i64::MIN);
        messages[2].time = Millis(i64::MAX);
        let p = Packet::Messages { messages };
        assert_eq!(Packet::decode(&p.encode()), Ok(p));

        // The fan-out of a busy room: consecutive seqs, the same millisecond or the next.
        let room: Vec<Message> = (1_000_000..1_000_100)
            .map(|seq| Message {
                seq,
                id: Uuid::new_v4(),
                from: "c0".into(),
                text: "hello world message 000123".into(),
                time: Millis(1_795_593_600_123 + seq as i64 / 3),
            })
            .collect();
        assert_eq!(message_len(&room[1], Some(&room[0])), 49);
        let pages = paginate(&room, MESSAGES_HEADER);
        assert_eq!(pages[0].len(), 24, "24 such messages to a datagram");
        for page in pages {
            let p = Packet::Messages {
                messages: page.to_vec(),
            };
            let bytes = p.encode();
            assert!(bytes.len() <= MAX_DATAGRAM);
            assert_eq!(
                bytes.len(),
                MESSAGES_HEADER
                    + (page.iter().enumerate())
                        .map(|(k, m)| message_len(m, k.checked_sub(1).map(|j| &page[j])))
                        .sum::<usize>()
            );
            assert_eq!(Packet::decode(&bytes), Ok(p));
        }
    }
}
