//! The protocol's codes and its decoder's refusals: why the relay refused something
//! ([`ErrorCode`]), why someone left a room ([`LeaveReason`]), why a datagram could not be
//! decoded ([`DecodeError`]).

use std::fmt;

use super::MAX_PACKET;

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
    /// The relay is stopping (told to every session as it shuts down): join again later.
    Stopping = 9,
    /// The relay admits only the keys it lists (`urc serve --allow`), and not this client's.
    NotAllowed = 10,
    /// The room's name breaks the rules of room names.
    BadRoom = 11,
    /// The session is in [`MAX_ROOMS`](super::MAX_ROOMS) rooms already, or the relay has as many rooms as it
    /// may (`urc serve --max-rooms`).
    TooManyRooms = 12,
}

impl ErrorCode {
    pub(super) fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => ErrorCode::Malformed,
            2 => ErrorCode::NameTaken,
            3 => ErrorCode::BadName,
            4 => ErrorCode::NotJoined,
            5 => ErrorCode::BadText,
            6 => ErrorCode::Storage,
            7 => ErrorCode::Full,
            8 => ErrorCode::RateLimited,
            9 => ErrorCode::Stopping,
            10 => ErrorCode::NotAllowed,
            11 => ErrorCode::BadRoom,
            12 => ErrorCode::TooManyRooms,
            _ => return None,
        })
    }
}

/// Why someone left a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LeaveReason {
    /// They said goodbye.
    Quit = 0,
    /// The relay heard nothing from them for too long.
    TimedOut = 1,
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
    /// Over [`MAX_PACKET`] bytes.
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
            DecodeError::TooLong => write!(f, "packet longer than {MAX_PACKET} bytes"),
        }
    }
}
