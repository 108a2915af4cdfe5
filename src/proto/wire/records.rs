//! The message records of a MESSAGES packet read where they lie in the datagram, one by one,
//! their names and texts borrowed: what a reader that must not allocate a message (the
//! bench's simulated clients, thousands on one thread) takes instead of [`Packet::decode`].
//! The rules are the decoder's own: [`Packet::decode`] reads its records through this.
//!
//! [`Packet::decode`]: super::Packet::decode

use uuid::Uuid;

use super::codec::Reader;
use super::{DecodeError, MAGIC, MAX_PACKET, VERSION, kind};
use crate::proto::message::{Message, Millis};

/// One message record, borrowed from its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'a> {
    /// Its room's sequence number.
    pub seq: u64,
    /// When the relay stored it.
    pub time: Millis,
    /// The id its sender gave it.
    pub id: Uuid,
    /// Who sent it.
    pub from: &'a str,
    /// What it says.
    pub text: &'a str,
}

impl MessageRef<'_> {
    /// The message, owned.
    pub fn to_message(&self) -> Message {
        Message {
            seq: self.seq,
            time: self.time,
            id: self.id,
            from: self.from.to_owned(),
            text: self.text.to_owned(),
        }
    }
}

/// A list's records, read in order; after the last, the rest of the datagram must be empty
/// when it is the packet's end ([`messages_in`]).
#[derive(Debug)]
pub struct Records<'a> {
    pub(super) reader: Reader<'a>,
    left: u8,
    seq: u64,
    time: i64,
    /// Whether the records end the packet (nothing may follow them).
    last: bool,
}

impl<'a> Records<'a> {
    /// The records of the list at the front of `reader`: its count, then the records.
    pub(super) fn new(mut reader: Reader<'a>, last: bool) -> Result<Self, DecodeError> {
        let left = reader.u8()?;
        Ok(Self {
            reader,
            left,
            seq: 0,
            time: 0,
            last,
        })
    }

    fn record(&mut self) -> Result<MessageRef<'a>, DecodeError> {
        let r = &mut self.reader;
        self.seq = self.seq.wrapping_add(r.varint()?);
        let step = r.varint()?;
        self.time = (self.time).wrapping_add((step >> 1) as i64 ^ -((step & 1) as i64));
        let id = r.uuid()?;
        let from = r.str8_ref()?;
        let text = r.str16_ref()?;
        Ok(MessageRef {
            seq: self.seq,
            time: Millis(self.time),
            id,
            from,
            text,
        })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<MessageRef<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            if self.last && !self.reader.0.is_empty() {
                self.reader.0 = &[];
                return Some(Err(DecodeError::Trailing));
            }
            return None;
        }
        self.left -= 1;
        let record = self.record();
        if record.is_err() {
            // Nothing is read past a record that does not decode.
            self.left = 0;
            self.last = false;
        }
        Some(record)
    }
}

/// The room and the records of `packet` when it is a MESSAGES packet (`None` when it is
/// another, or not a packet); each record, or the error that ends them, as it is read.
pub fn messages_in(packet: &[u8]) -> Option<(u16, Records<'_>)> {
    if packet.len() > MAX_PACKET {
        return None;
    }
    let mut r = Reader(packet);
    if r.u8().ok()? != MAGIC || r.u8().ok()? != VERSION || r.u8().ok()? != kind::MESSAGES {
        return None;
    }
    let room = r.u16().ok()?;
    Some((room, Records::new(r, true).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::Packet;

    fn message(seq: u64, time: i64, from: &str, text: &str) -> Message {
        Message {
            seq,
            time: Millis(time),
            id: Uuid::from_u128(u128::from(seq) * 7919),
            from: from.into(),
            text: text.into(),
        }
    }

    #[test]
    fn the_records_read_in_place_are_the_decoders_messages() {
        let messages = vec![
            message(41, 1_700_000_000_000, "alice", "hello"),
            message(42, 1_699_999_999_990, "bob", "你好，世界"),
            message(50, 1_700_000_000_500, "carol", ""),
        ];
        let bytes = Packet::Messages {
            room: 3,
            messages: messages.clone(),
        }
        .encode();
        let (room, records) = messages_in(&bytes).expect("a MESSAGES packet");
        assert_eq!(room, 3);
        let read: Vec<Message> = records.map(|m| m.unwrap().to_message()).collect();
        assert_eq!(read, messages);
        let Ok(Packet::Messages {
            messages: decoded, ..
        }) = Packet::decode(&bytes)
        else {
            panic!("decodes");
        };
        assert_eq!(decoded, messages);
    }

    #[test]
    fn trailing_bytes_and_cut_records_end_the_records_with_an_error() {
        let bytes = Packet::Messages {
            room: 0,
            messages: vec![message(1, 5, "a", "x"), message(2, 6, "b", "y")],
        }
        .encode();
        let mut longer = bytes.clone();
        longer.push(0);
        let results: Vec<_> = messages_in(&longer).unwrap().1.collect();
        assert_eq!(results.len(), 3);
        assert_eq!(results[2], Err(DecodeError::Trailing));
        assert_eq!(Packet::decode(&longer).err(), Some(DecodeError::Trailing));

        let cut = &bytes[..bytes.len() - 1];
        let results: Vec<_> = messages_in(cut).unwrap().1.collect();
        assert!(results[0].is_ok());
        assert_eq!(results[1], Err(DecodeError::Truncated));
        assert_eq!(results.len(), 2, "nothing read past the error");
    }

    #[test]
    fn other_packets_are_not_messages() {
        let ping = Packet::Ping {
            token: crate::proto::wire::Token([7; 16]),
        }
        .encode();
        assert!(messages_in(&ping).is_none());
        assert!(messages_in(&[]).is_none());
    }
}
