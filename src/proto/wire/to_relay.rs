//! The client → relay packets (JOIN, SEND, HISTORY, WHO, PING, LEAVE, ENTER, PART): their
//! fields after the header, written and read in one file, in the same order, so that the two stay in step.

use super::codec::{Reader, Writer};
use super::{DecodeError, Packet, Sent, kind};

/// The largest csn and base a SEND may carry, 2^63 − 1: a client counts from 1 and never gets
/// near it, and below it a session's next csn (one more than the last) is always a number.
pub const MAX_CSN: u64 = i64::MAX as u64;

/// Bytes of a `Send` datagram before its messages.
pub const SEND_HEADER: usize = 3 + 16 + 8 + 1;

/// Bytes one message takes inside a `Send` datagram.
pub fn sent_len(s: &Sent) -> usize {
    8 + 2 + 16 + 2 + s.text.len()
}

/// Writes the fields of a client → relay packet, after its header.
///
/// # Panics
/// If `packet` is a relay → client packet: [`Packet::encode`] sends those to `to_client`.
pub(super) fn encode(packet: &Packet, w: &mut Writer) {
    match packet {
        Packet::Join {
            name,
            history,
            instance,
            room,
        } => {
            w.str8(name);
            w.u16(*history);
            w.uuid(instance);
            w.str8(room);
        }
        Packet::Send {
            token,
            base,
            messages,
        } => {
            w.token(token);
            w.u64(*base);
            w.u8_len(messages.len());
            for m in messages {
                w.u64(m.csn);
                w.u16(m.room);
                w.uuid(&m.id);
                w.str16(&m.text);
            }
        }
        Packet::History {
            token,
            req,
            room,
            from,
            count,
        } => {
            w.token(token);
            w.u32(*req);
            w.u16(*room);
            w.u64(*from);
            w.u16(*count);
        }
        Packet::Who { token, req, room } => {
            w.token(token);
            w.u32(*req);
            w.u16(*room);
        }
        Packet::Ping { token } => w.token(token),
        Packet::Leave { token, message } => {
            w.token(token);
            w.str8(message);
        }
        Packet::Enter {
            token,
            room,
            history,
        } => {
            w.token(token);
            w.str8(room);
            w.u16(*history);
        }
        Packet::Part {
            token,
            room,
            message,
        } => {
            w.token(token);
            w.u16(*room);
            w.str8(message);
        }
        other => unreachable!("not a client → relay packet: {other:?}"),
    }
}

/// Reads the fields of the client → relay packet of type `kind`, after its header.
///
/// # Errors
/// When `kind` is no client → relay packet, or its fields are not valid.
pub(super) fn decode(kind: u8, r: &mut Reader) -> Result<Packet, DecodeError> {
    Ok(match kind {
        kind::JOIN => Packet::Join {
            name: r.str8()?,
            history: r.u16()?,
            instance: r.uuid()?,
            room: r.str8()?,
        },
        kind::SEND => Packet::Send {
            token: r.token()?,
            base: csn(r, "base")?,
            messages: r.list(|r| {
                Ok(Sent {
                    csn: csn(r, "csn")?,
                    room: r.u16()?,
                    id: r.uuid()?,
                    text: r.str16()?,
                })
            })?,
        },
        kind::HISTORY => Packet::History {
            token: r.token()?,
            req: r.u32()?,
            room: r.u16()?,
            from: r.u64()?,
            count: r.u16()?,
        },
        kind::WHO => Packet::Who {
            token: r.token()?,
            req: r.u32()?,
            room: r.u16()?,
        },
        kind::PING => Packet::Ping { token: r.token()? },
        kind::LEAVE => Packet::Leave {
            token: r.token()?,
            message: r.str8()?,
        },
        kind::ENTER => Packet::Enter {
            token: r.token()?,
            room: r.str8()?,
            history: r.u16()?,
        },
        kind::PART => Packet::Part {
            token: r.token()?,
            room: r.u16()?,
            message: r.str8()?,
        },
        other => return Err(DecodeError::Kind(other)),
    })
}

/// A csn or base: 1 to [`MAX_CSN`].
fn csn(r: &mut Reader, field: &'static str) -> Result<u64, DecodeError> {
    match r.u64()? {
        v @ 1..=MAX_CSN => Ok(v),
        _ => Err(DecodeError::Field(field)),
    }
}
