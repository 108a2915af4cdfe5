//! The datagram format: every packet of protocol version 2, encoded and decoded without I/O.
//!
//! docs/protocol.md is the reference for this folder; keep the two in step.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | the limits, the packets and their parts, the packet types; [`Packet::encode`] and [`Packet::decode`] do the header and hand the rest to the packet's direction |
//! | `codes.rs` | [`ErrorCode`], [`LeaveReason`], and the decoder's refusals, [`DecodeError`] |
//! | `to_relay.rs` | the client → relay packets: each one's fields written and read in the same order, and their sizes |
//! | `to_client.rs` | the relay → client packets: each one's fields written and read in the same order, and their sizes |
//! | `codec.rs` | what both directions write and read with: the header, integers, strings, lists, varints, a record's length |
//! | `records.rs` | the message records of MESSAGES and HISTORY_PAGE read where they lie ([`messages_in`]); the decoder reads them through it |
//! | `token.rs` | [`Token`], the session's secret in client → relay packets |
//! | `pack.rs` | [`pack`] and [`paginate`]: items into as few datagrams as they fit |
//! | `tests.rs` | round trips, header errors, pages, varints and records |

use uuid::Uuid;

use crate::proto::message::{Message, Millis};
use codec::{Reader, Writer};

mod codec;
mod codes;
mod pack;
mod records;
#[cfg(test)]
mod tests;
mod to_client;
mod to_relay;
mod token;

pub use codec::message_len;
pub use codes::{DecodeError, ErrorCode, LeaveReason};
pub use pack::{pack, paginate};
pub use records::{MessageRef, Records, messages_in};
pub use to_client::{
    ACK_HEADER, ACKED_LEN, HISTORY_HEADER, MESSAGES_HEADER, NAMES_HEADER, PRESENCE_HEADER, ROOM_AT,
    change_len,
};
pub use to_relay::{MAX_CSN, SEND_HEADER, sent_len};
pub use token::Token;

/// First byte of every datagram.
pub const MAGIC: u8 = 0x55;
/// The protocol version this build speaks.
pub const VERSION: u8 = 2;
/// Largest UDP payload urc ever sends or accepts.
pub const MAX_DATAGRAM: usize = 1200;
/// Largest packet: what a DATA frame seals within [`MAX_DATAGRAM`].
pub const MAX_PACKET: usize = crate::proto::secure::frame::MAX_SEALED_PACKET;
/// Most messages a history request may ask for at once.
pub const MAX_HISTORY_REQUEST: u16 = 1000;
/// Bytes of a valid name at most (32 characters of up to 4 bytes).
pub const MAX_NAME_BYTES: usize = 128;
/// Bytes of a leaving message at most (a LEAVE's or a PART's, carried in PRESENCE): it fits
/// a str8.
pub const MAX_LEAVE_BYTES: usize = 200;
/// Rooms a session may be in at once: a PONG of all of them fits one datagram.
pub const MAX_ROOMS: usize = 64;

/// One datagram of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Client → relay: open a session as `name`, entering the room `room` (as the session's
    /// room 0; none when empty) and receiving its last `history` messages.
    Join {
        /// The name to be known by.
        name: String,
        /// How many recent messages of `room` to receive as history.
        history: u16,
        /// Random, chosen once per client process: a JOIN with the same instance is the same
        /// client asking again (its WELCOME was lost, or its address changed).
        instance: Uuid,
        /// The room to enter, by name (see [`check_room`](crate::proto::room::check_room));
        /// empty for none.
        room: String,
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
        /// The room, by the session's number for it.
        room: u16,
        /// First sequence number wanted, or 0 for "the latest `count`".
        from: u64,
        /// How many messages, at most [`MAX_HISTORY_REQUEST`].
        count: u16,
    },
    /// Client → relay: ask who is in a room.
    Who {
        /// The session's token.
        token: Token,
        /// A number the client chose, echoed in the answer.
        req: u32,
        /// The room, by the session's number for it.
        room: u16,
    },
    /// Client → relay: I am still here.
    Ping {
        /// The session's token.
        token: Token,
    },
    /// Client → relay: I leave the relay (every room I am in).
    Leave {
        /// The session's token.
        token: Token,
        /// What to tell the others with the leave; empty for nothing.
        message: String,
    },
    /// Client → relay: enter a room (made on first use) and receive its last `history`
    /// messages; answered by [`Packet::Entered`] or [`Packet::NotEntered`].
    Enter {
        /// The session's token.
        token: Token,
        /// The room, by name.
        room: String,
        /// How many recent messages to receive as history.
        history: u16,
    },
    /// Client → relay: leave one room; answered by [`Packet::Parted`].
    Part {
        /// The session's token.
        token: Token,
        /// The room, by the session's number for it.
        room: u16,
        /// What to tell the room's others with the leave; empty for nothing.
        message: String,
    },
    /// Relay → client: you are in.
    Welcome {
        /// Carry this in every later datagram.
        token: Token,
        /// The name, as the relay registered it.
        name: String,
        /// The latest sequence number of the JOIN's room, room 0 (0 when it is empty, or
        /// when the JOIN named none).
        latest: u64,
        /// Milliseconds of silence after which the relay drops a client.
        timeout_ms: u32,
    },
    /// Relay → client: a request was refused, or (unasked, [`ErrorCode::Stopping`]) the relay stops.
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
    /// Relay → client: new messages from others in one room, in sequence order.
    Messages {
        /// The room, by the session's number for it.
        room: u16,
        /// The messages.
        messages: Vec<Message>,
    },
    /// Relay → client: one page of an answer to a history request or of the history sent on
    /// entering a room.
    HistoryPage {
        /// The room, by the session's number for it.
        room: u16,
        /// The request it answers; 0 for the history sent on entering.
        req: u32,
        /// First sequence number of the whole answer (0 when the answer is empty).
        first: u64,
        /// Last sequence number of the whole answer (0 when the answer is empty).
        last: u64,
        /// The messages in this page, in order.
        messages: Vec<Message>,
    },
    /// Relay → client: people entered or left a room, in the order they did.
    Presence {
        /// The room, by the session's number for it.
        room: u16,
        /// The changes, 1 to 255.
        changes: Vec<Change>,
    },
    /// Relay → client: one page of a room's names.
    Names {
        /// The room, by the session's number for it.
        room: u16,
        /// The request it answers.
        req: u32,
        /// How many names there are in all pages.
        total: u16,
        /// The names in this page.
        names: Vec<String>,
    },
    /// Relay → client: the answer to a ping, with each room's latest sequence number and how
    /// many are in it (every room of the session's); unasked, the heartbeat of one room.
    Pong {
        /// The rooms, at most [`MAX_ROOMS`].
        rooms: Vec<Latest>,
    },
    /// Relay → client: you are in the room `name`, which this session calls `room`.
    Entered {
        /// The session's number for the room, in every later packet about it.
        room: u16,
        /// The room's name, as the relay keeps it (in lower case).
        name: String,
        /// The room's latest sequence number (0 when empty).
        latest: u64,
    },
    /// Relay → client: you are not (or no longer) in the room the session called `room`.
    Parted {
        /// The session's number for the room (never given to another room in the session).
        room: u16,
    },
    /// Relay → client: an ENTER was refused.
    NotEntered {
        /// The room's name, as the ENTER said it.
        name: String,
        /// Why: [`ErrorCode::BadRoom`] or [`ErrorCode::TooManyRooms`] (an ENTER over the
        /// request rate gets an [`Packet::Error`] RateLimited instead, and goes again).
        code: ErrorCode,
        /// A human-readable, one-line explanation.
        message: String,
    },
}

/// One room of a [`Packet::Pong`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latest {
    /// The room, by the session's number for it.
    pub room: u16,
    /// The room's latest sequence number.
    pub latest: u64,
    /// How many sessions the room has, the receiver's included: a client whose list of the
    /// others is not one less for a while lost a PRESENCE, and asks WHO.
    pub members: u32,
}

impl Packet {
    /// A SEND of one message to room 0: `csn`, `id` and `text`, with the session's `token`
    /// and `base`.
    pub fn send_one(token: Token, base: u64, csn: u64, id: Uuid, text: &str) -> Packet {
        Packet::Send {
            token,
            base,
            messages: vec![Sent {
                csn,
                room: 0,
                id,
                text: text.to_owned(),
            }],
        }
    }
}

/// One message of a [`Packet::Send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The client's count of messages in this session, from 1, across its rooms: the relay
    /// takes them in this order.
    pub csn: u64,
    /// The room, by the session's number for it.
    pub room: u16,
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
    /// The room, by the session's number for it.
    pub room: u16,
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
    /// What they said as they left (a LEAVE's message); `None` for an arrival or a leave
    /// without one.
    pub message: Option<String>,
}

mod kind {
    pub const JOIN: u8 = 0x01;
    pub const SEND: u8 = 0x02;
    pub const HISTORY: u8 = 0x03;
    pub const WHO: u8 = 0x04;
    pub const PING: u8 = 0x05;
    pub const LEAVE: u8 = 0x06;
    pub const ENTER: u8 = 0x07;
    pub const PART: u8 = 0x08;
    pub const WELCOME: u8 = 0x81;
    pub const ERROR: u8 = 0x82;
    pub const ACK: u8 = 0x83;
    pub const MESSAGES: u8 = 0x84;
    pub const HISTORY_PAGE: u8 = 0x85;
    pub const PRESENCE: u8 = 0x86;
    pub const NAMES: u8 = 0x87;
    pub const PONG: u8 = 0x88;
    pub const ENTERED: u8 = 0x8a;
    pub const PARTED: u8 = 0x8b;
    pub const NOT_ENTERED: u8 = 0x8c;
}

/// Relay → client packet types have the high bit set.
fn is_relay_kind(kind: u8) -> bool {
    kind & 0x80 != 0
}

impl Packet {
    /// Encodes the packet. Fields longer than the format allows are the caller's bug.
    ///
    /// # Panics
    /// If a string or a list is longer than its length prefix can say.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64));
        let kind = self.kind();
        w.head(kind);
        if is_relay_kind(kind) {
            to_client::encode(self, &mut w);
        } else {
            to_relay::encode(self, &mut w);
        }
        w.0
    }

    /// Decodes one datagram.
    ///
    /// # Errors
    /// When the bytes are not exactly one valid packet.
    pub fn decode(bytes: &[u8]) -> Result<Packet, DecodeError> {
        if bytes.len() > MAX_PACKET {
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
        let packet = if is_relay_kind(kind) {
            to_client::decode(kind, &mut r)?
        } else {
            to_relay::decode(kind, &mut r)?
        };
        if !r.0.is_empty() {
            return Err(DecodeError::Trailing);
        }
        Ok(packet)
    }

    /// The packet's type, the third byte of its datagram.
    fn kind(&self) -> u8 {
        match self {
            Packet::Join { .. } => kind::JOIN,
            Packet::Send { .. } => kind::SEND,
            Packet::History { .. } => kind::HISTORY,
            Packet::Who { .. } => kind::WHO,
            Packet::Ping { .. } => kind::PING,
            Packet::Leave { .. } => kind::LEAVE,
            Packet::Enter { .. } => kind::ENTER,
            Packet::Part { .. } => kind::PART,
            Packet::Welcome { .. } => kind::WELCOME,
            Packet::Error { .. } => kind::ERROR,
            Packet::Ack { .. } => kind::ACK,
            Packet::Messages { .. } => kind::MESSAGES,
            Packet::HistoryPage { .. } => kind::HISTORY_PAGE,
            Packet::Presence { .. } => kind::PRESENCE,
            Packet::Names { .. } => kind::NAMES,
            Packet::Pong { .. } => kind::PONG,
            Packet::Entered { .. } => kind::ENTERED,
            Packet::Parted { .. } => kind::PARTED,
            Packet::NotEntered { .. } => kind::NOT_ENTERED,
        }
    }
}
