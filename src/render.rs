//! Events as terminal lines or JSON objects, with text from others made harmless to show.

use std::fmt::Write as _;

use serde_json::json;
use time::UtcOffset;

use crate::client::Event;
use crate::message::{Millis, is_bidi_control};
use crate::wire::LeaveReason;

/// Turns events into the lines `urc join` prints.
#[derive(Debug, Clone, Copy)]
pub struct Renderer {
    /// The local time zone, for HH:MM.
    offset: UtcOffset,
    /// One JSON object a line instead of text.
    json: bool,
}

impl Renderer {
    /// A renderer showing times at `offset`, as JSON when `json`.
    pub fn new(offset: UtcOffset, json: bool) -> Self {
        Renderer { offset, json }
    }

    /// The line for `event`.
    pub fn event(&self, event: &Event) -> String {
        if self.json {
            return json_event(event).to_string();
        }
        match event {
            Event::Message { message, .. } => format!(
                "{} {}: {}",
                self.clock(message.time),
                sanitize(&message.from),
                sanitize(&message.text)
            ),
            Event::Joined { name } => format!("-- {} joined", sanitize(name)),
            Event::Left { name, reason } => match reason {
                LeaveReason::Quit => format!("-- {} left", sanitize(name)),
                LeaveReason::TimedOut => format!("-- {} left (timed out)", sanitize(name)),
            },
            Event::Who { names } => {
                let names: Vec<String> = names.iter().map(|n| sanitize(n)).collect();
                format!("-- in the room ({}): {}", names.len(), names.join(", "))
            }
            Event::Notice(text) => format!("-- {}", sanitize(text)),
            Event::Error(text) => format!("error: {}", sanitize(text)),
        }
    }

    /// HH:MM in local time.
    fn clock(&self, t: Millis) -> String {
        let local = t.to_datetime().to_offset(self.offset);
        format!("{:02}:{:02}", local.hour(), local.minute())
    }
}

fn json_event(event: &Event) -> serde_json::Value {
    match event {
        Event::Message {
            message, history, ..
        } => json!({
            "event": "message",
            "seq": message.seq,
            "id": message.id,
            "from": message.from,
            "text": message.text,
            "time": message.time.to_rfc3339(),
            "history": history,
        }),
        Event::Joined { name } => json!({"event": "joined", "name": name}),
        Event::Left { name, reason } => json!({
            "event": "left",
            "name": name,
            "reason": match reason { LeaveReason::Quit => "quit", LeaveReason::TimedOut => "timeout" },
        }),
        Event::Who { names } => json!({"event": "who", "names": names}),
        Event::Notice(message) => json!({"event": "notice", "message": message}),
        Event::Error(message) => json!({"event": "error", "message": message}),
    }
}

/// Makes untrusted text safe for a terminal: control characters (escape sequences included)
/// and invisible direction overrides are shown as visible codes, never interpreted.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' => out.push(' '),
            '\0'..='\x1f' => {
                out.push('^');
                out.push(char::from(c as u8 + 0x40));
            }
            '\x7f' => out.push_str("^?"),
            c if c.is_control() || is_bidi_control(c) => {
                let _ = write!(out, "<U+{:04X}>", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use uuid::Uuid;

    fn message(text: &str) -> Event {
        Event::Message {
            message: Message {
                seq: 7,
                id: Uuid::nil(),
                from: "alice".into(),
                text: text.into(),
                time: Millis(1_795_593_600_123),
            },
            history: false,
            own: false,
        }
    }

    #[test]
    fn escapes_are_shown_not_interpreted() {
        assert_eq!(sanitize("\u{1b}[2Jhi\u{7}"), "^[[2Jhi^G");
        assert_eq!(sanitize("a\u{9b}31m"), "a<U+009B>31m");
        assert_eq!(sanitize("abc\u{202E}fed"), "abc<U+202E>fed");
        assert_eq!(sanitize("你好 👋"), "你好 👋");
        assert!(!sanitize("\r\n\u{8}\u{7f}").chars().any(char::is_control));
    }

    #[test]
    fn text_lines() {
        let r = Renderer::new(UtcOffset::UTC, false);
        assert_eq!(r.event(&message("你好")), "08:00 alice: 你好");
        assert_eq!(
            r.event(&message("\u{1b}]0;pwned\u{7}")),
            "08:00 alice: ^[]0;pwned^G"
        );
        let east = Renderer::new(UtcOffset::from_hms(8, 0, 0).unwrap(), false);
        assert_eq!(east.event(&message("x")), "16:00 alice: x");
        let left = Event::Left {
            name: "bob".into(),
            reason: LeaveReason::TimedOut,
        };
        assert_eq!(r.event(&left), "-- bob left (timed out)");
    }

    #[test]
    fn json_lines() {
        let r = Renderer::new(UtcOffset::UTC, true);
        let line = r.event(&message("你好\u{1b}"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "message");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["text"], "你好\u{1b}");
        assert_eq!(v["time"], "2026-11-25T08:00:00.123Z");
        assert_eq!(v["history"], false);
        assert!(!line.contains('\u{1b}'), "json escapes control characters");
        let who = r.event(&Event::Who {
            names: vec!["a".into(), "b".into()],
        });
        assert_eq!(who, r#"{"event":"who","names":["a","b"]}"#);
    }
}
