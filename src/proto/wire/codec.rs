//! The primitives every packet is written and read with: the header, integers, strings,
//! lists, varints, and the message records of MESSAGES and HISTORY_PAGE with their length.

use uuid::Uuid;

use super::records::Records;
use super::{DecodeError, MAGIC, Token, VERSION};
use crate::proto::message::Message;

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
pub(super) fn varint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).div_ceil(7).max(1)
}

/// A datagram being written: the packets' encoders append their fields to it in order.
pub(super) struct Writer(pub(super) Vec<u8>);

impl Writer {
    pub(super) fn head(&mut self, kind: u8) {
        self.0.extend_from_slice(&[MAGIC, VERSION, kind]);
    }
    pub(super) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(super) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(super) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(super) fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(super) fn token(&mut self, t: &Token) {
        self.0.extend_from_slice(&t.0);
    }
    pub(super) fn uuid(&mut self, id: &Uuid) {
        self.0.extend_from_slice(id.as_bytes());
    }
    pub(super) fn u8_len(&mut self, n: usize) {
        self.0.push(u8::try_from(n).expect("at most 255 items"));
    }
    pub(super) fn str8(&mut self, s: &str) {
        self.bytes8(s.as_bytes());
    }
    pub(super) fn bytes8(&mut self, b: &[u8]) {
        self.u8_len(b.len());
        self.0.extend_from_slice(b);
    }
    pub(super) fn str16(&mut self, s: &str) {
        self.u16(u16::try_from(s.len()).expect("at most 65535 bytes"));
        self.0.extend_from_slice(s.as_bytes());
    }
    pub(super) fn messages(&mut self, messages: &[Message]) {
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
    pub(super) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
}

/// The unread rest of a datagram: each read takes its field from the front, or fails
/// [`DecodeError::Truncated`] when the bytes run out first.
#[derive(Debug)]
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
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
    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(super) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(super) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(super) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    pub(super) fn token(&mut self) -> Result<Token, DecodeError> {
        Ok(Token(self.array()?))
    }
    pub(super) fn uuid(&mut self) -> Result<Uuid, DecodeError> {
        Ok(Uuid::from_bytes(self.array()?))
    }
    fn str_ref(&mut self, len: usize) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError::Utf8)
    }
    fn string(&mut self, len: usize) -> Result<String, DecodeError> {
        self.str_ref(len).map(str::to_owned)
    }
    pub(super) fn str8_ref(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.u8()?;
        self.str_ref(usize::from(len))
    }
    pub(super) fn str16_ref(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.u16()?;
        self.str_ref(usize::from(len))
    }
    // Lengths are checked by the rules that use the strings (names, texts), so that a
    // name or text that is too long gets an answer saying so rather than silence.
    pub(super) fn str8(&mut self) -> Result<String, DecodeError> {
        let len = self.u8()?;
        self.string(usize::from(len))
    }
    pub(super) fn str16(&mut self) -> Result<String, DecodeError> {
        let len = self.u16()?;
        self.string(usize::from(len))
    }
    pub(super) fn messages(&mut self) -> Result<Vec<Message>, DecodeError> {
        let mut records = Records::new(Reader(self.0), false)?;
        let messages = (records.by_ref())
            .map(|m| m.map(|m| m.to_message()))
            .collect::<Result<_, _>>()?;
        self.0 = records.reader.0;
        Ok(messages)
    }
    /// A varint in its shortest form: at most 10 bytes, no needless final zero byte.
    pub(super) fn varint(&mut self) -> Result<u64, DecodeError> {
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
    pub(super) fn list<T>(
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
