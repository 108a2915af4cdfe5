//! A message as a JetStream stream holds it: one JSON object, the log's record without its seq (the stream's sequence is the seq), published with the message's id as `Nats-Msg-Id`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::proto::message::{Message, Millis, check_text};
use crate::proto::name::check_name;

/// Most bytes of one record in a stream (the streams' `max_msg_size`): a message's record is
/// under 1,300 bytes.
pub const MAX_RECORD: i32 = 4096;

/// The record, as JSON.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    id: Uuid,
    from: String,
    text: String,
    #[serde(with = "crate::proto::message::rfc3339_millis")]
    time: Millis,
}

/// The record of `m` (its seq left out).
pub fn encode(m: &Message) -> Vec<u8> {
    let record = Record {
        id: m.id,
        from: m.from.clone(),
        text: m.text.clone(),
        time: m.time,
    };
    serde_json::to_vec(&record).expect("a record always serialises")
}

/// The message whose record, at `seq` of its stream, is `bytes`.
///
/// # Errors
/// A one-line explanation when `bytes` is not a record urc wrote (or its text is not one a
/// client may be shown).
pub fn decode(seq: u64, bytes: &[u8]) -> Result<Message, String> {
    let r: Record =
        serde_json::from_slice(bytes).map_err(|e| format!("not a message's record: {e}"))?;
    check_text(&r.text).map_err(|e| format!("a record whose text is refused: {e}"))?;
    // What a client may send as its name, or the relay's own (a placeholder's): anything
    // else would reach the members' terminals, or not fit a datagram's name.
    if r.from != crate::serve::repair::PLACEHOLDER_FROM {
        check_name(&r.from).map_err(|e| format!("a record whose sender's name is refused: {e}"))?;
    }
    Ok(Message {
        seq,
        id: r.id,
        from: r.from,
        text: r.text,
        time: r.time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_with_the_streams_seq() {
        let m = Message {
            seq: 0,
            id: Uuid::new_v4(),
            from: "小明".into(),
            text: "你好 \"world\"".into(),
            time: Millis(1_700_000_000_123),
        };
        let bytes = encode(&m);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains("seq"), "{text}");
        assert!(
            text.contains("\"time\":\"2023-11-14T22:13:20.123Z\""),
            "{text}"
        );
        assert_eq!(decode(42, &bytes), Ok(Message { seq: 42, ..m }));
        assert!(decode(1, b"{\"id\":1}").is_err());
        let control = br#"{"id":"00000000-0000-0000-0000-000000000001","from":"a","text":"\u001b[2J","time":"2023-11-14T22:13:20.123Z"}"#;
        assert!(decode(1, control).unwrap_err().contains("refused"));
        let long = format!(
            r#"{{"id":"00000000-0000-0000-0000-000000000001","from":"{}","text":"hi","time":"2023-11-14T22:13:20.123Z"}}"#,
            "a".repeat(300)
        );
        assert!(
            decode(1, long.as_bytes()).unwrap_err().contains("name"),
            "a name too long for a datagram"
        );
        let escape = br#"{"id":"00000000-0000-0000-0000-000000000001","from":"ab","text":"hi","time":"2023-11-14T22:13:20.123Z"}"#;
        assert!(decode(1, escape).is_err());
    }
}
