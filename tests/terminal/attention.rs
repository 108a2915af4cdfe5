//! Time and attention: mentions, the framed `/history`, the day-change lines.

use std::path::Path;

use super::common::{Client, Relay};
use super::pty::*;

/// A message that says bob's name (as a word, in any case) is highlighted and rings the bell;
/// one that does not, or bob's own, does neither; `--no-bell` keeps the highlight, not the bell.
#[test]
fn a_mention_is_highlighted_and_rings_the_bell() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::On);
    let carol = Term::join_with(&relay, "carol", Colour::On, &["--no-bell"]);
    alice.say("nothing for you");
    alice.say("hey BOB, and Carol: look");
    bob.send("bob here\r");
    for t in [&bob, &carol] {
        t.wait_for("the three lines", |s| {
            let text = screen_text(s);
            text.contains("alice: hey BOB, and Carol: look") && text.contains("bob: bob here")
        });
    }
    let raw = bob.raw();
    let line = |raw: &[u8], text: &str| {
        let found = raw_lines_with(raw, text);
        assert_eq!(found.len(), 1, "{text}: {:?}", String::from_utf8_lossy(raw));
        found[0].to_vec()
    };
    let plain = line(&raw, "nothing for you");
    assert!(
        !plain.contains(&b'\x07'),
        "{:?}",
        String::from_utf8_lossy(&plain)
    );
    let mention = line(&raw, "and Carol: look");
    let shown = String::from_utf8_lossy(&mention);
    assert!(mention.contains(&b'\x07'), "no bell: {shown:?}");
    assert!(
        find(&mention, b"\x1b[7malice\x1b[0m").is_some(),
        "{shown:?}"
    );
    assert!(find(&mention, b"\x1b[1mhey BOB").is_some(), "{shown:?}");
    let own = line(&raw, ": bob here");
    assert!(
        !own.contains(&b'\x07'),
        "{:?}",
        String::from_utf8_lossy(&own)
    );
    let raw = carol.raw();
    let mention = line(&raw, "and Carol: look");
    let shown = String::from_utf8_lossy(&mention);
    assert!(!mention.contains(&b'\x07'), "--no-bell rang: {shown:?}");
    assert!(
        find(&mention, b"\x1b[7malice\x1b[0m").is_some(),
        "{shown:?}"
    );
    carol.quit();
    bob.quit();
    alice.finish();
}

/// `/history` comes between a header that says what it is and an end line.
#[test]
fn history_asked_for_is_framed() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    alice.say("first");
    alice.say("second");
    bob.wait_for("alice's lines", |s| {
        screen_text(s).contains("alice: second")
    });
    bob.send("/history 2\r");
    bob.wait_for("the framed history", |s| {
        let rows = rows(s);
        let at = |text: &str| rows.iter().rposition(|r| r.ends_with(text));
        let header = at("-- history: the last 2 messages --");
        let first = at("alice: first");
        let second = at("alice: second");
        let end = at("-- end of history --");
        matches!((header, first, second, end),
            (Some(h), Some(a), Some(b), Some(e)) if h + 1 == a && a + 1 == b && b + 1 == e)
            && cursor_row(s) == "bob #lobby> "
    });
    bob.quit();
    alice.finish();
}

/// Writes a log of messages from alice at the given times, for a relay to start on.
fn write_log(data: &Path, messages: &[(&str, time::OffsetDateTime)]) {
    let mut log = String::new();
    for (seq, (text, at)) in messages.iter().enumerate() {
        let time = at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let id = uuid::Uuid::from_u128(seq as u128 + 1);
        log.push_str(&format!(
            "{{\"seq\":{},\"id\":\"{id}\",\"from\":\"alice\",\"text\":\"{text}\",\"time\":\"{time}\"}}\n",
            seq + 1
        ));
    }
    let room = data.join("rooms/lobby");
    std::fs::create_dir_all(&room).unwrap();
    std::fs::write(room.join("messages.jsonl"), log).unwrap();
}

/// "-- Tuesday, 1 December 2026 --" for `date`.
fn day_line(date: time::Date) -> String {
    format!(
        "-- {}, {} {} {} --",
        date.weekday(),
        date.day(),
        date.month(),
        date.year()
    )
}

/// A replay of older messages shows their dates, and the day changes between two shown
/// messages get a line, in history and live.
#[test]
fn day_changes_are_shown() {
    let data = tempfile::tempdir().unwrap();
    let today = time::OffsetDateTime::now_utc().date();
    let noon = |days_ago: i64| {
        (today - time::Duration::days(days_ago))
            .with_hms(12, 0, 0)
            .unwrap()
            .assume_utc()
    };
    write_log(
        data.path(),
        &[
            ("two days ago", noon(2)),
            ("two days ago too", noon(2)),
            ("yesterday", noon(1)),
        ],
    );
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let bob = Term::join(&relay, "bob", Colour::Off);
    alice.say("today");
    let before = day_line(today - time::Duration::days(2));
    let yesterday = day_line(today - time::Duration::days(1));
    let now = day_line(today);
    bob.wait_for("the days between the messages", |s| {
        let rows = rows(s);
        let at = |text: &str| rows.iter().position(|r| r.ends_with(text));
        let seq = [
            at(&before),
            at("alice: two days ago"),
            at("alice: two days ago too"),
            at(&yesterday),
            at("alice: yesterday"),
            at(&now),
            at("alice: today"),
        ];
        // In this order, each day line just above its first message ("in the room" comes
        // between the replay and live chat).
        let seq: Option<Vec<usize>> = seq.into_iter().collect();
        seq.is_some_and(|p| {
            p.windows(2).all(|w| w[0] < w[1])
                && p[0] + 1 == p[1]
                && p[3] + 1 == p[4]
                && p[5] + 1 == p[6]
        })
    });
    bob.quit();
    alice.finish();
}
