//! The room's vocabulary: a stored chat message, the rules for text, and timestamps (names have
//! their own module, [`name`](super::name)).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// Most bytes of UTF-8 a message's text may have, so that one message always fits a datagram.
pub const MAX_TEXT_BYTES: usize = 960;

/// A chat message as the relay stored it: its place in the room's order, who sent it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Place in the room's single order: 1, 2, 3… with no gaps.
    pub seq: u64,
    /// The sender's unique id for this message, so a retransmission is stored once.
    pub id: Uuid,
    /// The sender's name.
    pub from: String,
    /// The text, valid by [`check_text`].
    pub text: String,
    /// When the relay accepted it.
    #[serde(with = "rfc3339_millis")]
    pub time: Millis,
}

/// Bytes of a time as [`Millis::to_rfc3339`] writes it.
const RFC3339_LEN: usize = 24;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub i64);

impl Millis {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Millis((OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// As a date and time in UTC (the Unix epoch if out of range).
    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-25T08:00:00.123Z`.
    pub fn to_rfc3339(self) -> String {
        self.rfc3339_in(&mut [0; RFC3339_LEN]).to_owned()
    }

    /// [`Millis::to_rfc3339`] written into `buf` (the log writes one per message: no
    /// allocation, no formatting machinery).
    fn rfc3339_in(self, buf: &mut [u8; RFC3339_LEN]) -> &str {
        let t = self.to_datetime();
        // The Unix epoch's range for `to_datetime` keeps the year within 0..=9999.
        let year = u32::try_from(t.year()).unwrap_or(0).min(9999);
        let fields = [
            (year, 4),
            (u32::from(u8::from(t.month())), 2),
            (u32::from(t.day()), 2),
            (u32::from(t.hour()), 2),
            (u32::from(t.minute()), 2),
            (u32::from(t.second()), 2),
            (u32::from(t.millisecond()), 3),
        ];
        let mut at = 0;
        for ((value, digits), after) in fields.into_iter().zip(*b"--T::.Z") {
            let mut v = value;
            for k in (0..digits).rev() {
                buf[at + k] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            buf[at + digits] = after;
            at += digits + 1;
        }
        std::str::from_utf8(buf).expect("ascii digits and separators")
    }

    /// Parses RFC 3339 (any offset), keeping milliseconds.
    ///
    /// # Errors
    /// When `s` is not an RFC 3339 timestamp.
    pub fn parse_rfc3339(s: &str) -> Result<Self, time::error::Parse> {
        let t = OffsetDateTime::parse(s, &Rfc3339)?;
        Ok(Millis((t.unix_timestamp_nanos() / 1_000_000) as i64))
    }
}

/// Serde for [`Millis`] as RFC 3339 text with milliseconds (`#[serde(with = …)]`).
pub(crate) mod rfc3339_millis {
    use super::Millis;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.rfc3339_in(&mut [0; super::RFC3339_LEN]))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Millis::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// Why a text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// The text is empty.
    EmptyText,
    /// The text has more than [`MAX_TEXT_BYTES`] bytes.
    LongText,
    /// The text has a control character other than tab.
    TextControl,
    /// The room it is for is not one the client is in.
    NoRoom,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invalid::EmptyText => "the message is empty: type some text",
            Invalid::LongText => "the message is longer than 1000 bytes: split it",
            Invalid::TextControl => {
                "the message has control characters: remove them (tab is allowed)"
            }
            Invalid::NoRoom => "you are in no such room: /join it first",
        })
    }
}

impl std::error::Error for Invalid {}

/// The characters that change the direction text is drawn in ("Trojan Source").
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks a message text: 1 to 1000 bytes, no control characters but tab.
///
/// # Errors
/// The rule the text breaks.
pub fn check_text(text: &str) -> Result<(), Invalid> {
    if text.is_empty() {
        return Err(Invalid::EmptyText);
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(Invalid::LongText);
    }
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Invalid::TextControl);
    }
    Ok(())
}

/// Splits `text` into pieces of at most `max` bytes: after the last space that fits when there
/// is one (the space ends its piece), else, for a word longer than a piece, at the last
/// character that fits; never inside a UTF-8 character. The pieces put together are `text`.
///
/// # Panics
/// If `max` is smaller than 4 (one character might not fit).
pub fn split_text(text: &str, max: usize) -> Vec<&str> {
    assert!(max >= 4, "a piece must hold any one character");
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        // After the last space that fits, unless only a leading space does: then the word
        // after it is longer than a piece by itself.
        if let Some((at, space)) = rest[..cut]
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .filter(|(at, _)| *at > 0)
        {
            cut = at + space.len_utf8();
        }
        let (head, tail) = rest.split_at(cut);
        pieces.push(head);
        rest = tail;
    }
    if !rest.is_empty() {
        pieces.push(rest);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        assert_eq!(check_text("你好，世界"), Ok(()));
        assert_eq!(check_text("a\tb"), Ok(()));
        assert_eq!(check_text(""), Err(Invalid::EmptyText));
        assert_eq!(check_text("a\nb"), Err(Invalid::TextControl));
        assert_eq!(check_text("\u{1b}[2J"), Err(Invalid::TextControl));
        assert_eq!(check_text(&"x".repeat(1001)), Err(Invalid::LongText));
    }

    #[test]
    fn split_keeps_characters_whole() {
        let text = "你好".repeat(400); // 2400 bytes, 3 bytes a character
        let pieces = split_text(&text, MAX_TEXT_BYTES);
        assert_eq!(pieces.concat(), text);
        assert_eq!(pieces.len(), 3);
        assert!(
            pieces
                .iter()
                .all(|p| p.len() <= MAX_TEXT_BYTES && !p.is_empty())
        );
        assert_eq!(
            pieces[0].len(),
            MAX_TEXT_BYTES,
            "960 bytes: 320 whole characters"
        );
        assert_eq!(split_text("", 10), Vec::<&str>::new());
        assert_eq!(split_text("abc", 10), vec!["abc"]);
    }

    #[test]
    fn split_after_the_last_space_that_fits() {
        assert_eq!(split_text("aaaa bbbb cccc", 9), vec!["aaaa ", "bbbb cccc"]);
        assert_eq!(
            split_text("aaaa bbbb cccc", 8),
            vec!["aaaa ", "bbbb ", "cccc"]
        );
        assert_eq!(split_text("aaaa bbbb", 9), vec!["aaaa bbbb"]);
        // A word longer than a piece is cut where it must be, and the rest starts the next.
        assert_eq!(
            split_text("ab cdefghijkl", 5),
            vec!["ab ", "cdefg", "hijkl"]
        );
        assert_eq!(split_text(" abcdefgh", 5), vec![" abcd", "efgh"]);
        // Other spaces count too (U+3000, the ideographic space, is 3 bytes).
        assert_eq!(
            split_text("你好\u{3000}世界", 12),
            vec!["你好\u{3000}", "世界"]
        );
        let text = format!("{} {}", "x".repeat(600), "y".repeat(600));
        let pieces = split_text(&text, MAX_TEXT_BYTES);
        assert_eq!(pieces, vec![&text[..601], &text[601..]]);
    }

    #[test]
    fn time_round_trips_through_rfc3339() {
        let t = Millis(1_795_593_600_123);
        let s = t.to_rfc3339();
        assert_eq!(s, "2026-11-25T08:00:00.123Z");
        assert_eq!(Millis::parse_rfc3339(&s).unwrap(), t);
        // Every year from 0 to 9999, and the ends of days and seconds, round-trip too.
        let step = 253_402_300_799_999 / 5000;
        let mut times: Vec<i64> = (-1226..5000).map(|k| k * step + k % 1000).collect();
        times.extend([
            0,
            999,
            1000,
            86_399_999,
            -62_167_219_200_000,
            253_402_300_799_999,
        ]);
        for ms in times {
            let t = Millis(ms);
            let s = t.to_rfc3339();
            assert_eq!(s.len(), 24, "{ms}: {s}");
            assert_eq!(Millis::parse_rfc3339(&s).unwrap(), t, "{ms}: {s}");
        }
    }

    #[test]
    fn log_record_shape() {
        let m = Message {
            seq: 1,
            id: Uuid::nil(),
            from: "alice".into(),
            text: "你好".into(),
            time: Millis(1_795_593_600_123),
        };
        let line = serde_json::to_string(&m).unwrap();
        assert_eq!(
            line,
            r#"{"seq":1,"id":"00000000-0000-0000-0000-000000000000","from":"alice","text":"你好","time":"2026-11-25T08:00:00.123Z"}"#
        );
        assert_eq!(serde_json::from_str::<Message>(&line).unwrap(), m);
    }
}
