//! The relay → client packets (WELCOME, ERROR, ACK, MESSAGES, HISTORY_PAGE, PRESENCE, NAMES,
//! PONG, ENTERED, PARTED, NOT_ENTERED): their fields after the header, written and read in one file, in the same order, so
//! that the two stay in step.

use super::codec::{Reader, Writer};
use super::{Acked, Change, DecodeError, ErrorCode, Latest, LeaveReason, MAX_ROOMS, Packet, kind};
use crate::proto::message::Millis;

/// Where the room's number is in a MESSAGES, HISTORY_PAGE, PRESENCE, NAMES, ENTERED or PARTED
/// packet (right after the header), and in a PONG of one room (after its count): a packet
/// encoded once for a room's members gets each member's number there as it leaves.
pub const ROOM_AT: usize = 3;

/// Bytes of an `Ack` datagram before its entries.
pub const ACK_HEADER: usize = 3 + 1;
/// Bytes of a `Presence` datagram before its changes.
pub const PRESENCE_HEADER: usize = 3 + 2 + 1;
/// Bytes of a `Messages` datagram before its messages.
pub const MESSAGES_HEADER: usize = 3 + 2 + 1;
/// Bytes of a `HistoryPage` datagram before its messages.
pub const HISTORY_HEADER: usize = 3 + 2 + 4 + 8 + 8 + 1;
/// Bytes of a `Names` datagram before its names.
pub const NAMES_HEADER: usize = 3 + 2 + 4 + 2 + 1;

/// Bytes one entry takes inside an `Ack` datagram.
pub const ACKED_LEN: usize = 16 + 8 + 2 + 8 + 8;

/// Bytes one change takes inside a `Presence` datagram.
pub fn change_len(c: &Change) -> usize {
    1 + 1 + 1 + c.name.len() + said(c).map_or(0, |m| 1 + m.len())
}

/// The message a change carries on the wire: a quit's only.
fn said(c: &Change) -> Option<&str> {
    c.message
        .as_deref()
        .filter(|_| !c.joined && c.reason == LeaveReason::Quit)
}

/// The reason byte of a departure with a message: "quit", followed by the message.
const QUIT_SAYING: u8 = 2;

/// Writes the fields of a relay → client packet, after its header.
///
/// # Panics
/// If `packet` is a client → relay packet: [`Packet::encode`] sends those to `to_relay`.
pub(super) fn encode(packet: &Packet, w: &mut Writer) {
    match packet {
        Packet::Welcome {
            token,
            name,
            latest,
            timeout_ms,
        } => {
            w.token(token);
            w.str8(name);
            w.u64(*latest);
            w.u32(*timeout_ms);
        }
        Packet::Error { code, id, message } => {
            w.0.push(*code as u8);
            w.uuid(id);
            w.str16(message);
        }
        Packet::Ack { acks } => {
            w.u8_len(acks.len());
            for a in acks {
                w.uuid(&a.id);
                w.u64(a.csn);
                w.u16(a.room);
                w.u64(a.seq);
                w.i64(a.time.0);
            }
        }
        Packet::Messages { room, messages } => {
            w.u16(*room);
            w.messages(messages);
        }
        Packet::HistoryPage {
            room,
            req,
            first,
            last,
            messages,
        } => {
            w.u16(*room);
            w.u32(*req);
            w.u64(*first);
            w.u64(*last);
            w.messages(messages);
        }
        Packet::Presence { room, changes } => {
            w.u16(*room);
            w.u8_len(changes.len());
            for c in changes {
                w.0.push(u8::from(c.joined));
                match said(c) {
                    Some(message) => {
                        w.0.push(QUIT_SAYING);
                        w.str8(&c.name);
                        w.str8(message);
                    }
                    None => {
                        w.0.push(c.reason as u8);
                        w.str8(&c.name);
                    }
                }
            }
        }
        Packet::Names {
            room,
            req,
            total,
            names,
        } => {
            w.u16(*room);
            w.u32(*req);
            w.u16(*total);
            w.u8_len(names.len());
            for n in names {
                w.str8(n);
            }
        }
        Packet::Pong { rooms } => {
            w.u8_len(rooms.len());
            for l in rooms {
                w.u16(l.room);
                w.u64(l.latest);
                w.u32(l.members);
            }
        }
        Packet::Entered { room, name, latest } => {
            w.u16(*room);
            w.str8(name);
            w.u64(*latest);
        }
        Packet::Parted { room } => w.u16(*room),
        Packet::NotEntered {
            name,
            code,
            message,
        } => {
            w.str8(name);
            w.0.push(*code as u8);
            w.str16(message);
        }
        other => unreachable!("not a relay → client packet: {other:?}"),
    }
}

/// Reads the fields of the relay → client packet of type `kind`, after its header.
///
/// # Errors
/// When `kind` is no relay → client packet, or its fields are not valid.
pub(super) fn decode(kind: u8, r: &mut Reader) -> Result<Packet, DecodeError> {
    Ok(match kind {
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
                    room: r.u16()?,
                    seq: r.u64()?,
                    time: Millis(r.i64()?),
                })
            })?,
        },
        kind::MESSAGES => Packet::Messages {
            room: r.u16()?,
            messages: r.messages()?,
        },
        kind::HISTORY_PAGE => Packet::HistoryPage {
            room: r.u16()?,
            req: r.u32()?,
            first: r.u64()?,
            last: r.u64()?,
            messages: r.messages()?,
        },
        kind::PRESENCE => Packet::Presence {
            room: r.u16()?,
            changes: r.list(|r| {
                let joined = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError::Field("joined")),
                };
                let (reason, saying) = match r.u8()? {
                    0 => (LeaveReason::Quit, false),
                    1 => (LeaveReason::TimedOut, false),
                    QUIT_SAYING if !joined => (LeaveReason::Quit, true),
                    _ => return Err(DecodeError::Field("reason")),
                };
                let name = r.str8()?;
                let message = if saying { Some(r.str8()?) } else { None };
                Ok(Change {
                    joined,
                    reason,
                    name,
                    message,
                })
            })?,
        },
        kind::NAMES => {
            let room = r.u16()?;
            let req = r.u32()?;
            let total = r.u16()?;
            let n = r.u8()?;
            let names = (0..n).map(|_| r.str8()).collect::<Result<_, _>>()?;
            Packet::Names {
                room,
                req,
                total,
                names,
            }
        }
        kind::PONG => {
            let n = usize::from(r.u8()?);
            if n > MAX_ROOMS {
                return Err(DecodeError::Field("rooms"));
            }
            let rooms = (0..n)
                .map(|_| {
                    Ok(Latest {
                        room: r.u16()?,
                        latest: r.u64()?,
                        members: r.u32()?,
                    })
                })
                .collect::<Result<_, DecodeError>>()?;
            Packet::Pong { rooms }
        }
        kind::ENTERED => Packet::Entered {
            room: r.u16()?,
            name: r.str8()?,
            latest: r.u64()?,
        },
        kind::PARTED => Packet::Parted { room: r.u16()? },
        kind::NOT_ENTERED => Packet::NotEntered {
            name: r.str8()?,
            code: ErrorCode::from_u8(r.u8()?).ok_or(DecodeError::Field("code"))?,
            message: r.str16()?,
        },
        other => return Err(DecodeError::Kind(other)),
    })
}
