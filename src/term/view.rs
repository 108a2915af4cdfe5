//! What the user sees of the events, beyond one line each: the line that says the day changed,
//! messages that mention the user (highlighted, with the bell), and the room of what happens
//! outside the room typed lines go to (`#lunch 12:01 bob: …`), counted as unseen there.

use std::collections::BTreeMap;

use time::Date;

use crate::client::Event;
use crate::proto::message::Millis;
use crate::term::mention::mentions;
use crate::term::render::Renderer;
use crate::term::wrap::Line;

/// Events as the lines shown, remembering what the lines before them showed.
#[derive(Debug, Clone)]
pub struct View {
    /// Makes each line.
    renderer: Renderer,
    /// The user's name, for mentions.
    me: String,
    /// The day of the last message shown.
    last_day: Option<Date>,
    /// The day of the last live message shown while a `/history` answer shows, to go on
    /// from after it.
    live_day: Option<Date>,
    /// The room typed lines go to: what happens elsewhere shows its room.
    current: String,
    /// Live messages shown in each other room since the user was last in it, and how many of
    /// them mention the user.
    unseen: BTreeMap<String, Activity>,
}

/// What came in a room while the user was elsewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// Live messages.
    pub messages: usize,
    /// Of those, the ones that mention the user.
    pub mentions: usize,
}

const BELL: &str = "\u{7}";

impl View {
    /// A view for the user named `me`.
    pub fn new(renderer: Renderer, me: &str) -> Self {
        View {
            renderer,
            me: me.to_owned(),
            last_day: None,
            live_day: None,
            current: String::new(),
            unseen: BTreeMap::new(),
        }
    }

    /// Makes `room` the one typed lines go to: its events show without their room, and what
    /// came in it meanwhile counts as seen (returned).
    pub fn switch(&mut self, room: &str) -> Activity {
        self.current = room.to_owned();
        self.unseen.remove(room).unwrap_or_default()
    }

    /// The room typed lines go to.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// What came in each other room since the user was last in it.
    pub fn unseen(&self) -> &BTreeMap<String, Activity> {
        &self.unseen
    }

    /// Forgets what came in `room` (the user left it).
    pub fn forget(&mut self, room: &str) {
        self.unseen.remove(room);
    }

    /// The room an event happened in, when it is not the current one (and the text view
    /// shows it).
    fn elsewhere<'e>(&self, event: &'e Event) -> Option<&'e str> {
        let room = match event {
            Event::Message { room, .. }
            | Event::Joined { room, .. }
            | Event::Left { room, .. }
            | Event::Who { room, .. }
            | Event::HistoryStart { room, .. }
            | Event::HistoryEnd { room }
            | Event::Missed { room, .. } => room,
            _ => return None,
        };
        (*room != self.current && !self.renderer.json()).then_some(room.as_str())
    }

    /// The lines that show `event`, `now` being the time it is shown.
    pub fn show(&mut self, event: &Event, now: Millis) -> Vec<Line> {
        let elsewhere = self.elsewhere(event).map(str::to_owned);
        let mut lines = self.lines(event, now);
        if let Some(room) = elsewhere {
            let tag = format!("{} ", crate::proto::dm::label(&room));
            for line in &mut lines {
                *line = std::mem::replace(line, Line::new("", "")).after(&tag);
            }
        }
        lines
    }

    fn lines(&mut self, event: &Event, now: Millis) -> Vec<Line> {
        let mut lines = Vec::new();
        let mut mention = false;
        match event {
            Event::Message {
                room,
                message,
                own,
                history,
            } => {
                mention = !own && mentions(&message.text, &self.me);
                if !history && !own && *room != self.current {
                    let a = self.unseen.entry(room.clone()).or_default();
                    a.messages += 1;
                    a.mentions += usize::from(mention);
                }
                let day = self.renderer.date(message.time);
                // A day line between two messages of different days, and before the first
                // message shown when it is not of today (a replay of older messages).
                let changed = match self.last_day {
                    Some(last) => last != day,
                    None => day != self.renderer.date(now),
                };
                if changed && !self.renderer.json() {
                    lines.push(self.renderer.day(day));
                }
                self.last_day = Some(day);
                let line = self.renderer.line_with(event, mention);
                // History is read, not news: only live mentions ring.
                if mention && !history && self.renderer.bell() {
                    lines.push(line.after(BELL));
                    return lines;
                }
                lines.push(line);
                return lines;
            }
            // Inside the frame the first message shows its date unless it is today's; after
            // it, live messages go on from the last live one.
            Event::HistoryStart { .. } => self.live_day = self.last_day.take(),
            Event::HistoryEnd { .. } => self.last_day = self.live_day.take(),
            // Its date too when it is not today's.
            Event::Missed { count, since, .. } if !self.renderer.json() => {
                lines.push(self.renderer.missed(*count, *since, Some(now)));
                return lines;
            }
            _ => {}
        }
        lines.push(self.renderer.line_with(event, mention));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::message::Message;
    use time::UtcOffset;
    use uuid::Uuid;

    /// 2026-12-01 (a Tuesday) 23:30 UTC.
    const TUESDAY_2330: i64 = 1_796_167_800_000;
    const HOUR: i64 = 3_600_000;

    fn message(from: &str, text: &str, at: i64, history: bool) -> Event {
        Event::Message {
            room: "lobby".into(),
            message: Message {
                seq: 1,
                id: Uuid::nil(),
                from: from.into(),
                text: text.into(),
                time: Millis(at),
            },
            history,
            own: from == "bob",
        }
    }

    fn view(offset_hours: i8) -> View {
        let offset = UtcOffset::from_hms(offset_hours, 0, 0).unwrap();
        let mut v = View::new(Renderer::new(offset, false).with_bell(true), "bob");
        v.switch("lobby");
        v
    }

    #[test]
    fn what_was_missed_since_another_day_says_the_day() {
        let mut v = view(0);
        let missed = |since: i64| Event::Missed {
            room: "lobby".into(),
            count: 3,
            since: Millis(since),
        };
        let now = Millis(TUESDAY_2330 + HOUR);
        assert_eq!(
            v.show(&missed(TUESDAY_2330), now),
            ["— 3 new messages since Tuesday 1 December 23:30 —"]
        );
        assert_eq!(
            v.show(&missed(TUESDAY_2330 + HOUR / 2), now),
            ["— 3 new messages since 00:00 —"]
        );
    }

    #[test]
    fn what_happens_in_another_room_shows_its_room_and_counts_as_unseen_there() {
        let mut v = view(0);
        let now = Millis(TUESDAY_2330);
        let in_room = |room: &str, text: &str| {
            let Event::Message { message, .. } = message("alice", text, TUESDAY_2330, false) else {
                unreachable!()
            };
            Event::Message {
                room: room.into(),
                message,
                history: false,
                own: false,
            }
        };
        assert_eq!(
            v.show(&in_room("lobby", "here"), now),
            ["23:30 alice: here"]
        );
        assert_eq!(
            v.show(&in_room("lunch", "pizza?"), now),
            ["#lunch 23:30 alice: pizza?"]
        );
        let rung = v.show(&in_room("lunch", "bob: pizza?"), now);
        assert_eq!(rung[0].whole(), "#lunch \u{7}23:30 alice: bob: pizza?");
        let joined = Event::Joined {
            room: "lunch".into(),
            name: "carol".into(),
        };
        assert_eq!(v.show(&joined, now)[0].whole(), "#lunch -- carol joined");
        assert_eq!(
            v.unseen().get("lunch"),
            Some(&Activity {
                messages: 2,
                mentions: 1
            })
        );
        // Switching there sees them, and the lobby's lines show their room from then on.
        assert_eq!(v.switch("lunch").messages, 2);
        assert!(v.unseen().is_empty());
        assert_eq!(
            v.show(&in_room("lobby", "back"), now),
            ["#lobby 23:30 alice: back"]
        );
    }

    #[test]
    fn a_day_line_when_the_day_changes() {
        let mut v = view(0);
        let now = Millis(TUESDAY_2330 + HOUR);
        // Today's first message: no date.
        let today = message("alice", "hi", TUESDAY_2330 + HOUR, false);
        assert_eq!(v.show(&today, now), ["00:30 alice: hi"]);
        let mut v = view(0);
        let lines = v.show(&message("alice", "late", TUESDAY_2330, true), now);
        assert_eq!(
            lines,
            ["-- Tuesday, 1 December 2026 --", "23:30 alice: late"]
        );
        assert_eq!(
            v.show(
                &message("alice", "same day", TUESDAY_2330 + 60_000, true),
                now
            ),
            ["23:31 alice: same day"]
        );
        let lines = v.show(&message("alice", "early", TUESDAY_2330 + HOUR, false), now);
        assert_eq!(
            lines,
            ["-- Wednesday, 2 December 2026 --", "00:30 alice: early"]
        );
    }

    #[test]
    fn days_are_local() {
        // 23:30 UTC is 07:30 the next day at UTC+8, and 18:30 the same day at UTC-5.
        let now = Millis(TUESDAY_2330);
        let mut east = view(8);
        assert_eq!(
            east.show(&message("alice", "x", TUESDAY_2330, false), now),
            ["07:30 alice: x"]
        );
        let lines = east.show(&message("alice", "y", TUESDAY_2330 - 8 * HOUR, true), now);
        assert_eq!(lines, ["-- Tuesday, 1 December 2026 --", "23:30 alice: y"]);
        let mut west = view(-5);
        let lines = west.show(&message("alice", "z", TUESDAY_2330 - 24 * HOUR, true), now);
        assert_eq!(lines, ["-- Monday, 30 November 2026 --", "18:30 alice: z"]);
    }

    #[test]
    fn a_history_answer_shows_its_dates_and_live_chat_goes_on() {
        let mut v = view(0);
        let now = Millis(TUESDAY_2330);
        v.show(&message("alice", "live", TUESDAY_2330, false), now);
        assert_eq!(
            v.show(
                &Event::HistoryStart {
                    room: "lobby".into(),
                    count: 1
                },
                now
            ),
            ["-- history: the last message --"]
        );
        let old = message("alice", "old", TUESDAY_2330 - 48 * HOUR, true);
        assert_eq!(
            v.show(&old, now),
            ["-- Sunday, 29 November 2026 --", "23:30 alice: old"]
        );
        assert_eq!(
            v.show(
                &Event::HistoryEnd {
                    room: "lobby".into()
                },
                now
            ),
            ["-- end of history --"]
        );
        let live = message("alice", "live again", TUESDAY_2330 + 60_000, false);
        assert_eq!(v.show(&live, now), ["23:31 alice: live again"]);
    }

    #[test]
    fn mentions_ring_when_live_and_never_for_own_messages() {
        let mut v = view(0);
        let now = Millis(TUESDAY_2330);
        let lines = v.show(&message("alice", "hi Bob!", TUESDAY_2330, false), now);
        assert_eq!(lines, ["\u{7}23:30 alice: hi Bob!"]);
        let lines = v.show(&message("alice", "hi bob", TUESDAY_2330, true), now);
        assert_eq!(lines, ["23:30 alice: hi bob"]);
        let lines = v.show(&message("bob", "I am bob", TUESDAY_2330, false), now);
        assert_eq!(lines, ["23:30 bob: I am bob"]);
        let quiet = Renderer::new(UtcOffset::UTC, false).with_bell(false);
        let mut v = View::new(quiet.with_color(true), "bob");
        v.switch("lobby");
        let line = v.show(&message("alice", "bob?", TUESDAY_2330, false), now);
        assert_eq!(
            line,
            ["\u{1b}[2m23:30\u{1b}[0m \u{1b}[7malice\u{1b}[0m: \u{1b}[1mbob?\u{1b}[0m"]
        );
        let json = Renderer::new(UtcOffset::UTC, true).with_bell(true);
        let mut v = View::new(json, "bob");
        let line = v.show(&message("alice", "bob?", TUESDAY_2330, false), now)[0].whole();
        assert!(line.contains(r#""mention":true"#), "{line}");
        assert!(!line.contains('\u{7}'));
        let line = v.show(&message("bob", "bob", TUESDAY_2330, false), now)[0].whole();
        assert!(line.contains(r#""mention":false"#), "{line}");
    }
}
