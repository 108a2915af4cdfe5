//! `urc join --json`: each event as one JSON object, the fields docs/client.md lists.

use serde_json::json;

use crate::client::Event;
use crate::proto::dm::DM_MARK;
use crate::proto::wire::LeaveReason;
use crate::term::render::SILENT;

/// `event` as its JSON object: a room as `"room":"ops"`, a private conversation as
/// `"dm":"bob"` (the other person's name) in its place.
pub(super) fn event(event: &Event, mention: bool) -> serde_json::Value {
    let value = fields(event, mention);
    let dm = (value.get("room").and_then(|r| r.as_str()))
        .and_then(|r| r.strip_prefix(DM_MARK))
        .map(str::to_owned);
    match (value, dm) {
        (serde_json::Value::Object(map), Some(person)) => (map.into_iter())
            .map(|(k, v)| match k.as_str() {
                "room" => ("dm".to_owned(), json!(person)),
                _ => (k, v),
            })
            .collect(),
        (value, _) => value,
    }
}

fn fields(event: &Event, mention: bool) -> serde_json::Value {
    match event {
        Event::Message {
            room,
            message,
            history,
            ..
        } => json!({
            "event": "message",
            "room": room,
            "seq": message.seq,
            "id": message.id,
            "from": message.from,
            "text": message.text,
            "time": message.time.to_rfc3339(),
            "history": history,
            "mention": mention,
        }),
        Event::HistoryStart { room, count } => {
            json!({"event": "history", "room": room, "count": count})
        }
        Event::HistoryEnd { room } => json!({"event": "history_end", "room": room}),
        Event::Joined { room, name } => json!({"event": "joined", "room": room, "name": name}),
        Event::Entered { room } => json!({"event": "entered", "room": room}),
        Event::Parted { room } => json!({"event": "parted", "room": room}),
        Event::Left {
            room,
            name,
            reason,
            message,
        } => json!({
            "event": "left",
            "room": room,
            "name": name,
            "reason": match reason { LeaveReason::Quit => "quit", LeaveReason::TimedOut => "timeout" },
            "message": message,
        }),
        Event::Who { room, names } => json!({"event": "who", "room": room, "names": names}),
        Event::Notice(message) => json!({"event": "notice", "message": message}),
        Event::Silent => json!({"event": "notice", "message": SILENT}),
        Event::Missed { room, count, since } => json!({
            "event": "missed",
            "room": room,
            "count": count,
            "since": since.to_rfc3339(),
        }),
        Event::Error(message) => json!({"event": "error", "message": message}),
        Event::NotEntered { room, message } => json!({
            "event": "error",
            "room": room,
            "message": format!("cannot enter {}: {message}", crate::proto::dm::label(room)),
        }),
        Event::RelayKeyLearnt { key } => json!({"event": "relay_key", "key": key.to_string()}),
        Event::RelayKeyChanged { pinned, offered } => json!({
            "event": "error",
            "message": format!("the relay offered the key {offered}, not the key {pinned} pinned for it"),
        }),
    }
}
