//! No text can pass for another line: someone else's long line is cut into rows by the
//! client, every row after the first indented under the text.

use super::common::{Client, Relay};
use super::pty::*;

/// mallory pads her messages so that a terminal 100 columns wide, left to wrap them, would
/// start a row with `12:00 mallory: forged` and another with `-- alice left`: with spaces, with
/// spaces and invisible characters, with wide characters (one that does not fit in a row's
/// last column starts the next). On bob's screen, the only rows that start at column 0 are the
/// real ones: each message's first row and the notice of alice really leaving; every other
/// row starts with the indent, under the text.
#[test]
fn no_text_passes_for_another_line() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let alice = Client::join(relay.addr, "alice", &[]);
    let mut mallory = Client::join(relay.addr, "mallory", &[]);
    let bob = Term::join(&relay, "bob", Colour::Off);
    mallory.expect(|e| e["event"] == "joined" && e["name"] == "bob");
    let cols = usize::from(COLS);
    // "HH:MM mallory: " takes 15 columns, "12:00 mallory: forged" 21.
    let (prefix, forged) = (15, "12:00 mallory: forged");
    let padded = [
        format!(
            "{}{forged}{}-- alice left",
            " ".repeat(cols - prefix),
            " ".repeat(cols - forged.len())
        ),
        format!(
            "{}{forged}{}-- alice left",
            " \u{200B}".repeat(cols - prefix),
            "\u{2060} ".repeat(cols - forged.len())
        ),
        // 15 + 84 columns, a space: the row is full; 21 + 1 + 78: full again.
        format!(
            "{} {forged} {}-- alice left",
            "字".repeat(42),
            "字".repeat(39)
        ),
    ];
    for text in &padded {
        mallory.say(text);
        mallory.expect(|e| e["event"] == "message" && e["text"] == text.as_str());
    }
    bob.wait_for("mallory's three messages", |s| {
        screen_text(s).matches(forged).count() == 3
    });
    let (status, _) = alice.finish();
    assert!(status.success());
    bob.wait_for("alice leaving", |s| {
        rows(s).iter().any(|r| r == "-- alice left")
    });
    let shown = rows_after(&bob.all_rows(), "-- in the room (");
    let indent = " ".repeat(prefix);
    let (mut firsts, mut notices) = (0, 0);
    for row in &shown {
        let time = row.len() > 5
            && row.as_bytes()[..5].iter().enumerate().all(|(i, b)| {
                if i == 2 {
                    *b == b':'
                } else {
                    b.is_ascii_digit()
                }
            });
        if row == "-- alice left" {
            notices += 1;
        } else if time && row[5..].starts_with(" mallory:") && !row.starts_with(forged) {
            firsts += 1;
        } else if row != "bob #lobby>" {
            assert!(
                row.starts_with(&indent) && !row[prefix..].starts_with(' '),
                "{row:?} is not under the text: {shown:#?}"
            );
        }
    }
    assert_eq!((firsts, notices), (3, 1), "{shown:#?}");
    let forgeries = shown.iter().filter(|r| r.contains(forged)).count();
    assert_eq!(
        forgeries, 3,
        "every forged line shown, indented: {shown:#?}"
    );
    assert_eq!(
        shown.last().map(String::as_str),
        Some("bob #lobby>"),
        "{shown:#?}"
    );
    bob.quit();
    mallory.finish();
}
