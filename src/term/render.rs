//! Events as terminal lines or JSON objects, with text from others made harmless to show.
//! A terminal line is a prefix (the time and the name, the `--` of a notice) and a text, so
//! that its rows after the first can be indented under the text (see [`crate::term::wrap`]).

use std::fmt::Write as _;

use time::{Date, UtcOffset};

use crate::client::Event;
use crate::proto::dm::{is_dm, label};
use crate::proto::message::{Millis, is_bidi_control};
use crate::proto::wire::LeaveReason;
use crate::term::wrap::Line;

/// Turns events into the lines `urc join` prints.
#[derive(Debug, Clone, Copy)]
pub struct Renderer {
    /// The local time zone, for HH:MM.
    offset: UtcOffset,
    /// One JSON object a line instead of text.
    json: bool,
    /// ANSI colours: names in their own colour, times dim, notices and errors set apart.
    color: bool,
    /// Ring the terminal's bell when a message mentions the user.
    bell: bool,
}

/// Text that starts a message shown as an action: `/me waves` shows as `* alice waves`.
pub const ACTION: &str = "/me ";

/// The colours names are drawn in, as indexes of the 16 basic colours, which every colour
/// terminal has (256-colour ones too) and which the user's theme keeps apart. Left out, as
/// unreadable on a dark or a light background or too close to ordinary text: black (0),
/// blue (4, dark on black), white (7), grey (8), bright yellow (11, pale on white) and bright
/// white (15). What is left is ten colours, five hues in two brightnesses.
const NAME_COLOURS: [u8; 10] = [1, 2, 3, 5, 6, 9, 10, 12, 13, 14];

/// The SGR sequence that draws text in basic colour `index` (0 to 15) as foreground.
fn foreground(index: u8) -> String {
    match index {
        0..=7 => format!("\x1b[{}m", 30 + index),
        _ => format!("\x1b[{}m", 90 + (index - 8)),
    }
}

impl Renderer {
    /// A renderer showing times at `offset`, as JSON when `json`, without colour.
    pub fn new(offset: UtcOffset, json: bool) -> Self {
        Renderer {
            offset,
            json,
            color: false,
            bell: false,
        }
    }

    /// The same renderer, ringing the bell for mentions when `bell` (never in JSON).
    pub fn with_bell(self, bell: bool) -> Self {
        Renderer {
            bell: bell && !self.json,
            ..self
        }
    }

    /// True when a mention rings the bell.
    pub fn bell(&self) -> bool {
        self.bell
    }

    /// True when lines are JSON objects.
    pub fn json(&self) -> bool {
        self.json
    }

    /// The same renderer, with colour when `color` (never in JSON).
    pub fn with_color(self, color: bool) -> Self {
        Renderer {
            color: color && !self.json,
            ..self
        }
    }

    /// True when lines carry colour.
    pub fn colored(&self) -> bool {
        self.color
    }

    /// The line for `event`, whole.
    pub fn event(&self, event: &Event) -> String {
        self.line(event).whole()
    }

    /// The line for `event`.
    pub fn line(&self, event: &Event) -> Line {
        self.line_with(event, false)
    }

    /// The line for `event`, a message marked as one that mentions the user when `mention`
    /// (highlighted; `"mention":true` in JSON, which is all text, without a prefix).
    pub fn line_with(&self, event: &Event, mention: bool) -> Line {
        if self.json {
            return Line::new("", super::json::event(event, mention).to_string());
        }
        match event {
            Event::Message { message, own, .. } => {
                let time = self.paint(DIM, &self.clock(message.time));
                let name = if *own {
                    self.paint(BOLD, &sanitize(&message.from))
                } else if mention {
                    self.paint(REVERSE, &sanitize(&message.from))
                } else {
                    self.name(&message.from)
                };
                let (action, text) = match message.text.strip_prefix(ACTION) {
                    Some(action) => (true, sanitize(action)),
                    None => (false, sanitize(&message.text)),
                };
                let text = if mention {
                    self.paint(BOLD, &text)
                } else {
                    text
                };
                if action {
                    Line::new(format!("{time} * {name} "), text)
                } else {
                    Line::new(format!("{time} {name}: "), text)
                }
            }
            Event::HistoryStart { count, .. } => self.notice(&match count {
                0 => "history: no messages --".to_owned(),
                1 => "history: the last message --".to_owned(),
                n => format!("history: the last {n} messages --"),
            }),
            Event::HistoryEnd { .. } => self.notice("end of history --"),
            Event::Joined { name, .. } => self.notice(&format!("{} joined", self.name(name))),
            Event::Entered { room } if is_dm(room) => self.notice(&format!(
                "you are in {room}: a private conversation, only the two of you see it"
            )),
            Event::Entered { room } => self.notice(&format!("you are in {}", label(room))),
            Event::Parted { room } => self.notice(&format!("you left {}", label(room))),
            Event::Left {
                name,
                reason,
                message,
                ..
            } => match (reason, message) {
                (LeaveReason::Quit, Some(said)) => {
                    self.notice(&format!("{} left ({})", self.name(name), sanitize(said)))
                }
                (LeaveReason::Quit, None) => self.notice(&format!("{} left", self.name(name))),
                (LeaveReason::TimedOut, _) => {
                    self.notice(&format!("{} left (timed out)", self.name(name)))
                }
            },
            Event::Who { names, .. } => {
                let names: Vec<String> = names.iter().map(|n| self.name(n)).collect();
                self.notice(&format!(
                    "in the room ({}): {}",
                    names.len(),
                    names.join(", ")
                ))
            }
            Event::Notice(text) => self.notice(&sanitize(text)),
            Event::Silent => self.notice(SILENT),
            Event::Missed { count, since, .. } => self.missed(*count, *since, None),
            Event::Error(text) => {
                Line::new(format!("{} ", self.paint(RED, "error:")), sanitize(text))
            }
            Event::NotEntered { room, message } => Line::new(
                format!("{} ", self.paint(RED, "error:")),
                format!("cannot enter {}: {}", label(room), sanitize(message)),
            ),
            Event::RelayKeyLearnt { key } => self.notice(&format!(
                "first contact with this relay: its key {key} is pinned"
            )),
            Event::RelayKeyChanged { pinned, offered } => Line::new(
                format!("{} ", self.paint(RED, "error:")),
                format!("the relay offered the key {offered}, not the key {pinned} pinned for it"),
            ),
        }
    }

    /// The line that says the day changed: `-- Tuesday, 1 December 2026 --`.
    pub fn day(&self, date: Date) -> Line {
        self.notice(&format!(
            "{}, {} {} {} --",
            date.weekday(),
            date.day(),
            date.month(),
            date.year()
        ))
    }

    /// The local date of `t`.
    pub fn date(&self, t: Millis) -> Date {
        t.to_datetime().to_offset(self.offset).date()
    }

    /// The line that says `count` messages came since `since`: its time of day, and its date
    /// too when it is not of the day of `now` (what came since yesterday).
    pub fn missed(&self, count: u64, since: Millis, now: Option<Millis>) -> Line {
        let when = match now {
            Some(now) if self.date(now) != self.date(since) => {
                let d = self.date(since);
                format!(
                    "{} {} {} {}",
                    d.weekday(),
                    d.day(),
                    d.month(),
                    self.clock(since)
                )
            }
            _ => self.clock(since),
        };
        let what = match count {
            0 => format!("no new messages since {when}"),
            1 => format!("1 new message since {when}"),
            n if n > u64::from(crate::proto::wire::MAX_HISTORY_REQUEST) => format!(
                "{n} new messages since {when} (the last {} follow)",
                crate::proto::wire::MAX_HISTORY_REQUEST
            ),
            n => format!("{n} new messages since {when}"),
        };
        if self.color {
            Line::new(format!("{CYAN}— "), format!("{what} —\x1b[0m"))
        } else {
            Line::new("— ", format!("{what} —"))
        }
    }

    /// A notice line: `-- text`, the dashes coloured.
    fn notice(&self, text: &str) -> Line {
        Line::new(format!("{} ", self.paint(CYAN, "--")), text)
    }

    /// A name, sanitised, in its own colour.
    fn name(&self, name: &str) -> String {
        let clean = sanitize(name);
        if !self.color {
            return clean;
        }
        // FNV-1a over the name without regard to case: the same name gets the same colour
        // everywhere, and a look-alike of another script (not in the room at the same time)
        // most likely another.
        let hash = crate::proto::name::fold(name)
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        let colour = NAME_COLOURS[(hash % NAME_COLOURS.len() as u64) as usize];
        format!("{}{clean}\x1b[0m", foreground(colour))
    }

    fn paint(&self, style: &str, text: &str) -> String {
        if self.color {
            format!("{style}{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// HH:MM in local time.
    fn clock(&self, t: Millis) -> String {
        let local = t.to_datetime().to_offset(self.offset);
        format!("{:02}:{:02}", local.hour(), local.minute())
    }
}

/// What [`Event::Silent`] says when the shell does not name the relay.
pub(super) const SILENT: &str = "the relay is not answering: still trying";

const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const REVERSE: &str = "\x1b[7m";
const RED: &str = "\x1b[31m";
const CYAN: &str = "\x1b[36m";

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
    use crate::proto::message::Message;
    use uuid::Uuid;

    fn message(text: &str) -> Event {
        Event::Message {
            room: "lobby".into(),
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
            room: "lobby".into(),
            name: "bob".into(),
            reason: LeaveReason::TimedOut,
            message: None,
        };
        assert_eq!(r.event(&left), "-- bob left (timed out)");
        let said = Event::Left {
            room: "lobby".into(),
            name: "bob".into(),
            reason: LeaveReason::Quit,
            message: Some("gone \u{1b}[2Jhome".into()),
        };
        assert_eq!(r.event(&said), "-- bob left (gone ^[[2Jhome)");
        let json = Renderer::new(UtcOffset::UTC, true).event(&said);
        assert!(json.contains(r#""message":"gone \u001b[2Jhome""#), "{json}");
        // The prefix, which the rows after the first are indented under.
        let line = r.line(&message("hi"));
        assert_eq!(
            (line.prefix.as_str(), line.text.as_str()),
            ("08:00 alice: ", "hi")
        );
        assert_eq!(r.line(&message("/me waves")).prefix, "08:00 * alice ");
        assert_eq!(r.line(&left).prefix, "-- ");
        assert_eq!(Renderer::new(UtcOffset::UTC, true).line(&said).prefix, "");
    }

    #[test]
    fn actions_and_colours() {
        let plain = Renderer::new(UtcOffset::UTC, false);
        assert_eq!(plain.event(&message("/me waves")), "08:00 * alice waves");
        let colour = plain.with_color(true);
        let line = colour.event(&message("hi"));
        assert!(line.contains("\x1b[2m08:00\x1b[0m"), "{line:?}");
        assert!(line.contains("alice\x1b[0m: hi"), "{line:?}");
        // The same name, the same colour; escapes only from us, never from the text.
        assert_eq!(colour.event(&message("hi")), line);
        let hostile = colour.event(&message("\u{1b}[31mred"));
        assert!(hostile.ends_with(": ^[[31mred"), "{hostile:?}");
        // No colour in JSON, whatever is asked.
        let json = Renderer::new(UtcOffset::UTC, true).with_color(true);
        assert!(!json.event(&message("hi")).contains('\x1b'));
        assert!(!plain.event(&message("hi")).contains('\x1b'));
    }

    #[test]
    fn name_colours_are_distinct_and_readable() {
        let mut seen = std::collections::BTreeSet::new();
        for c in NAME_COLOURS {
            assert!(seen.insert(c), "colour {c} is in the palette twice");
            // Black, dark blue, white, grey, bright yellow, bright white: unreadable on one
            // background or the other; above 15, a 256-colour index 16-colour terminals lack.
            assert!(![0, 4, 7, 8, 11, 15].contains(&c) && c < 16, "colour {c}");
        }
        let codes: std::collections::BTreeSet<String> =
            NAME_COLOURS.iter().map(|c| foreground(*c)).collect();
        assert_eq!(codes.len(), NAME_COLOURS.len());
        assert_eq!(foreground(1), "\x1b[31m");
        assert_eq!(foreground(12), "\x1b[94m");
        // Names spread over the palette: a dozen names get more than a few colours.
        let r = Renderer::new(UtcOffset::UTC, false).with_color(true);
        let names = [
            "alice", "bob", "carol", "dave", "erin", "frank", "小明", "grace",
        ];
        let used: std::collections::BTreeSet<String> =
            names.iter().map(|n| r.name(n)[..5].to_owned()).collect();
        assert!(used.len() >= 4, "{used:?}");
    }

    #[test]
    fn what_was_missed() {
        let r = Renderer::new(UtcOffset::UTC, false);
        let missed = |count| Event::Missed {
            room: "lobby".into(),
            count,
            since: Millis(1_795_593_600_123),
        };
        assert_eq!(r.event(&missed(37)), "— 37 new messages since 08:00 —");
        assert_eq!(r.event(&missed(0)), "— no new messages since 08:00 —");
        assert_eq!(
            r.event(&missed(1234)),
            "— 1234 new messages since 08:00 (the last 1000 follow) —"
        );
        let json = Renderer::new(UtcOffset::UTC, true).event(&missed(2));
        assert_eq!(
            json,
            r#"{"event":"missed","room":"lobby","count":2,"since":"2026-11-25T08:00:00.123Z"}"#
        );
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
            room: "lobby".into(),
            names: vec!["a".into(), "b".into()],
        });
        assert_eq!(who, r#"{"event":"who","room":"lobby","names":["a","b"]}"#);
    }
}
