//! Through a real terminal: `urc join` runs in a pseudo-terminal and its output goes through a
//! terminal emulator (vt100), so the tests read the screen a person would see.
//!
//! Every wait polls the screen (or the other client's events) until a condition holds, up to a
//! deadline; nothing sleeps a fixed time to let something happen.

mod common;
#[path = "terminal/pty.rs"]
mod pty;

#[path = "terminal/attention.rs"]
mod attention;
#[path = "terminal/keys.rs"]
mod keys;
#[path = "terminal/screen.rs"]
mod screen;
#[path = "terminal/wrap.rs"]
mod wrap;

use common::{Client, Relay};
use pty::*;

#[test]
fn a_message_arriving_mid_line_leaves_the_typed_line_intact() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    alice.expect(|e| e["event"] == "joined" && e["name"] == "bob");

    bob.send("half typed 你好");
    bob.wait_for("half-typed line", |s| {
        cursor_row(s) == "bob #lobby> half typed 你好"
    });
    alice.say("hello from alice 🚄");
    bob.wait_for("message from alice above the intact line", |s| {
        let above = rows_above_cursor(s);
        let last_used = rows(s).iter().rposition(|r| !r.is_empty());
        above.iter().any(|r| r.ends_with(" alice: hello from alice 🚄"))
                && cursor_row(s) == "bob #lobby> half typed 你好"
                // The line being typed is the last one on the screen, the cursor at its end
                // ("你好" is two columns a character).
                && last_used == Some(usize::from(s.cursor_position().0))
                && s.cursor_position().1 == 27
    });
    // The editor still holds the line: typing goes on where it was, and Enter sends it whole.
    bob.send("!\r");
    assert_eq!(texts_from(&mut alice, "bob", 1), ["half typed 你好!"]);
    bob.wait_for("bob's own message", |s| {
        rows_above_cursor(s)
            .iter()
            .any(|r| r.ends_with(" bob: half typed 你好!"))
    });
    assert_eq!(
        logged(data.path(), 2),
        [
            ("alice".to_owned(), "hello from alice 🚄".to_owned()),
            ("bob".to_owned(), "half typed 你好!".to_owned()),
        ]
    );
    bob.quit();
    alice.finish();
}

#[test]
fn tab_completes_commands_and_names() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::Off);

    bob.send("/wh\t");
    bob.wait_for("/who completed", |s| cursor_row(s) == "bob #lobby> /who ");
    bob.send("\r");
    bob.wait_for("the answer to /who", |s| {
        screen_text(s)
            .matches("-- in the room (2): alice, bob")
            .count()
            == 2
            && cursor_row(s) == "bob #lobby> "
    });

    bob.send("hi al\t");
    bob.wait_for("alice completed", |s| {
        cursor_row(s) == "bob #lobby> hi alice "
    });
    bob.send("there\r");
    bob.wait_for("bob's message", |s| {
        rows_above_cursor(s)
            .iter()
            .any(|r| r.ends_with(" bob: hi alice there"))
    });
    // A name that starts the line gets ": ", as in IRC.
    bob.send("AL\t");
    bob.wait_for("alice completed at the start", |s| {
        cursor_row(s) == "bob #lobby> alice: "
    });
    bob.send("ok\r");
    assert_eq!(
        texts_from(&mut alice, "bob", 2),
        ["hi alice there", "alice: ok"]
    );
    bob.quit();
    alice.finish();
}

/// Starts a relay, alice and bob in a terminal; alice and bob each say a line; returns bob's
/// raw output, once his screen shows both lines.
fn chat_in_colour(colour: Colour) -> Vec<u8> {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", colour);
    alice.expect(|e| e["event"] == "joined" && e["name"] == "bob");
    alice.say("a line from alice");
    bob.send("a line from bob\r");
    bob.wait_for("both lines", |s| {
        let above = rows_above_cursor(s);
        above
            .iter()
            .any(|r| r.ends_with(" alice: a line from alice"))
            && above.iter().any(|r| r.ends_with(" bob: a line from bob"))
    });
    let raw = bob.raw();
    bob.quit();
    alice.finish();
    raw
}

#[test]
fn no_color_turns_colour_off() {
    let raw = chat_in_colour(Colour::Off);
    let mut lines = raw_lines_with(&raw, "a line from alice");
    lines.extend(raw_lines_with(&raw, ": a line from bob"));
    lines.extend(raw_lines_with(&raw, "-- joined as bob"));
    lines.extend(raw_lines_with(&raw, "-- in the room"));
    assert_eq!(lines.len(), 4, "{:?}", String::from_utf8_lossy(&raw));
    for line in lines {
        let shown = String::from_utf8_lossy(line);
        assert_eq!(sgr_codes(line), Vec::<String>::new(), "{shown:?}");
        assert!(find(line, b"\x1b[38;5").is_none(), "{shown:?}");
        assert!(find(line, b"\x1b[2m").is_none(), "{shown:?}");
    }
}

#[test]
fn colour_is_on_in_a_terminal_without_no_color() {
    let raw = chat_in_colour(Colour::On);
    let theirs = raw_lines_with(&raw, "a line from alice");
    let [theirs] = theirs[..] else {
        panic!("{theirs:?}")
    };
    let shown = String::from_utf8_lossy(theirs);
    // The time dim, the name in its own colour.
    assert!(find(theirs, b"\x1b[2m").is_some(), "{shown:?}");
    // One of the 16 basic colours, which 16-colour terminals have too.
    assert!(
        ["31", "32", "33", "35", "36", "91", "92", "94", "95", "96"]
            .iter()
            .any(|c| find(theirs, format!("\x1b[{c}malice\x1b[0m").as_bytes()).is_some()),
        "{shown:?}"
    );
    assert!(
        find(theirs, b"alice\x1b[0m: a line from alice").is_some(),
        "{shown:?}"
    );
    // Bob's own name is bold (the raw output has his typed line too: take the message's line).
    let own = raw_lines_with(&raw, "\x1b[1mbob\x1b[0m: a line from bob");
    assert_eq!(own.len(), 1, "{:?}", String::from_utf8_lossy(&raw));
    // Notices stand apart.
    let notice = raw_lines_with(&raw, "joined as bob");
    assert!(
        notice.iter().any(|l| find(l, b"\x1b[36m--").is_some()),
        "{notice:?}"
    );
}

#[test]
fn lines_typed_ahead_are_all_sent_in_order() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    bob.send("one\rtwo\rthree\r");
    assert_eq!(texts_from(&mut alice, "bob", 3), ["one", "two", "three"]);
    let bob_said = |t: &str| ("bob".to_owned(), t.to_owned());
    assert_eq!(
        logged(data.path(), 3),
        [bob_said("one"), bob_said("two"), bob_said("three")]
    );
    bob.quit();
    alice.finish();
}

#[test]
fn a_pasted_block_of_lines_sends_each_line() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    bob.send("\x1b[200~l1\nl2\x1b[201~\r");
    assert_eq!(texts_from(&mut alice, "bob", 2), ["l1", "l2"]);
    bob.wait_for("both pasted lines shown", |s| {
        let above = rows_above_cursor(s);
        above.iter().any(|r| r.ends_with(" bob: l1"))
            && above.iter().any(|r| r.ends_with(" bob: l2"))
    });
    bob.quit();
    alice.finish();
}

/// Back in the room, the terminal client shows what came since the user left (not a fixed
/// number of lines), after a separator that says how many.
#[test]
fn back_after_a_while_shows_what_came_since() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let home = tempfile::tempdir().unwrap();
    let bob = Term::join_in(&relay, "bob", Colour::Off, home.path());
    alice.say("before bob left");
    bob.wait_for("alice's first line", |s| {
        screen_text(s).contains("alice: before bob left")
    });
    bob.quit();
    alice.say("while bob was away 1");
    alice.say("while bob was away 2");
    alice.expect(|e| e["event"] == "message" && e["text"] == "while bob was away 2");
    let bob = Term::join_in(&relay, "bob", Colour::Off, home.path());
    bob.wait_for("what came since", |s| {
        let text = screen_text(s);
        let mark = text.find("— 2 new messages since ");
        let first = text.find("alice: while bob was away 1");
        let second = text.find("alice: while bob was away 2");
        matches!((mark, first, second), (Some(m), Some(a), Some(b)) if m < a && a < b)
            && !text.contains("before bob left")
    });
    bob.quit();
    // With nothing new, it says so.
    let bob = Term::join_in(&relay, "bob", Colour::Off, home.path());
    bob.wait_for("nothing new", |s| {
        screen_text(s).contains("— no new messages since ")
    });
    bob.quit();
}

/// When the relay stops answering, a notice says so and the prompt shows it (`bob #lobby! `); when
/// it is back, a notice says so and the prompt is `bob #lobby> ` again.
#[test]
fn the_prompt_shows_when_the_relay_is_not_answering() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let addr = relay.addr;
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    assert!(relay.stop().success());
    bob.send("anyone there?\r");
    bob.wait_for("the relay stopped, in a notice and the prompt", |s| {
        screen_text(s).contains("-- the relay stopped; trying to rejoin")
            && cursor_row(s) == "bob #lobby! "
    });
    let relay = Relay::start_at(&addr.to_string(), data.path(), &[]);
    bob.wait_for("the relay is back, in a notice and the prompt", |s| {
        let text = screen_text(s);
        text.contains("-- the relay is answering again")
            && text.contains("bob: anyone there?")
            && cursor_row(s) == "bob #lobby> "
    });
    bob.quit();
    drop(relay);
}

/// A relay restarted with another key, while the editor is up: the client stops, and its last
/// words, printed once the editor is gone (a line handed to the editor just before it goes may
/// never be drawn), name both keys and how to accept the new one.
#[test]
fn a_changed_relay_key_is_explained_in_the_last_words() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let pinned = common::fingerprint(data.path());
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    bob.wait_for("bob in the room", |s| {
        screen_text(s).contains("-- in the room (1): bob")
    });
    let (relay, offered) = relay.restart_with_a_new_key(data.path());
    assert_ne!(offered, pinned);
    bob.send("anyone?\r");
    let status = bob.wait_status();
    assert!(!status.success(), "a refused key is a failure");
    let raw = String::from_utf8_lossy(&bob.raw()).into_owned();
    let last = &raw[raw.rfind("urc: ").expect("last words")..];
    for said in [pinned.as_str(), offered.as_str(), "--relay-key"] {
        assert!(last.contains(said), "{said} not in {last:?}");
    }
    drop(relay);
}

/// After a relay restart everyone rejoins; in a terminal the people already in the room are
/// not announced again ("-- bob joined" for each of them would bury the conversation), while
/// someone new still is.
#[test]
fn a_relay_restart_does_not_announce_everyone_again() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let addr = relay.addr;
    let mut bob = Client::join(addr, "bob", &[]);
    let mut alice = Term::join(&relay, "alice", Colour::Off);
    alice.wait_for("who is in the room", |s| {
        screen_text(s).contains("-- in the room (2): alice, bob")
    });
    // bob is frozen through the restart, so that alice rejoins first and sees him come
    // back (whoever rejoins first hears of the other: the order decides what is tested).
    bob.pause();
    assert!(relay.stop().success());
    let relay = Relay::start_at(&addr.to_string(), data.path(), &[]);
    alice.send("anyone?\r");
    alice.wait_for("alice rejoined", |s| {
        screen_text(s).contains("-- rejoined as alice")
    });
    bob.resume();
    // Saying something makes bob find out at once that the relay forgot him.
    bob.say("back again");
    bob.expect(|e| e["event"] == "notice" && e["message"] == "rejoined as bob");
    let carol = Client::join(addr, "carol", &[]);
    alice.wait_for("bob's message and carol's arrival", |s| {
        let text = screen_text(s);
        text.contains("bob: back again") && text.contains("-- carol joined")
    });
    // The raw output, not the screen: nothing may have been printed and scrolled away.
    let raw = String::from_utf8_lossy(&alice.raw()).into_owned();
    let after = &raw[raw.find("-- rejoined as alice").expect("rejoined")..];
    assert!(!after.contains("-- bob joined"), "{after}");
    drop((bob, carol));
    alice.quit();
    drop(relay);
}

/// Someone bob knows only from the history he was shown, and who has left, is news when they
/// come back: their arrival is shown.
#[test]
fn someone_seen_only_in_history_is_announced_when_they_come() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    alice.say("said before bob came");
    alice.expect_text("said before bob came");
    let (status, _) = alice.finish();
    assert!(status.success());
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    bob.wait_for("bob alone in the room", |s| {
        screen_text(s).contains("-- in the room (1): bob")
    });
    // Asked for after who is here was shown: the history's author is not in the room.
    bob.send("/history 1\r");
    bob.wait_for("alice's line as history", |s| {
        rows_above_cursor(s)
            .iter()
            .any(|r| r.ends_with("alice: said before bob came"))
            && cursor_row(s) == "bob #lobby> "
    });
    let _alice = Client::join(relay.addr, "alice", &[]);
    bob.wait_for("alice's arrival", |s| {
        screen_text(s).contains("-- alice joined")
    });
    bob.quit();
}

/// Wide text: Chinese and emoji are edited by display width (arrows and Backspace move and
/// delete whole characters), and a line wider than the terminal wraps onto the next row.
#[test]
fn wide_text_is_edited_and_wrapped_by_display_width() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    // Three Left arrows pass "abc", Backspace deletes the emoji (two columns, one character).
    bob.send("你好世界🙂abc\x1b[D\x1b[D\x1b[D\x7f\r");
    assert_eq!(texts_from(&mut alice, "bob", 1), ["你好世界abc"]);
    // 60 Chinese characters are 120 columns: "bob #lobby> " and 44 characters fill the first
    // row of 100 (12 + 88 columns), the other 16 wrap.
    let long = "字".repeat(60);
    bob.send(&long);
    bob.wait_for("the long line, wrapped by width", |s| {
        let rows = rows(s);
        rows.iter()
            .any(|r| *r == format!("bob #lobby> {}", "字".repeat(44)))
            && rows.iter().any(|r| *r == "字".repeat(16))
    });
    bob.send("\r");
    assert_eq!(texts_from(&mut alice, "bob", 1), [long]);
    bob.quit();
}

/// Two rooms in a terminal: the prompt names the room typed lines go to, a line of the other
/// room shows that room before it, /rooms says what is unseen where (a mention counts), and
/// switching there says what came meanwhile and sends the next line there.
#[test]
fn the_prompt_names_the_room_and_other_rooms_lines_show_theirs() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let (mut alice, mut bob) = in_lunch(&relay);
    alice.expect(|e| e["event"] == "joined" && e["name"] == "bob" && e["room"] == "lunch");
    bob.send("/switch lobby\r");
    bob.wait_for("the prompt back in the lobby", |s| {
        cursor_row(s) == "bob #lobby> " && screen_text(s).contains("-- typing to #lobby")
    });
    alice.say("pizza at noon, bob?");
    bob.wait_for("lunch's line, with its room", |s| {
        rows(s)
            .iter()
            .any(|r| r.starts_with("#lunch ") && r.ends_with(" alice: pizza at noon, bob?"))
            && cursor_row(s) == "bob #lobby> "
    });
    bob.send("/rooms\r");
    bob.wait_for("the rooms, with what is unseen", |s| {
        let text = screen_text(s);
        text.contains("-- 1. #lobby (1), typing here")
            && text.contains("-- 2. #lunch (2), 1 unseen, 1 mentioning you")
    });
    bob.send("/2\r");
    bob.wait_for("what came in lunch, and its prompt", |s| {
        screen_text(s)
            .contains("-- typing to #lunch: 1 new since you were last here, 1 mentioning you")
            && cursor_row(s) == "bob #lunch> "
    });
    bob.send("me too\r");
    let m = alice.expect(|e| e["event"] == "message" && e["text"] == "me too");
    assert_eq!(m["room"], "lunch");
    bob.quit();
    alice.finish();
}

/// A private conversation in a terminal: `/query` makes it the prompt's target, its lines show
/// as they would in a room when it is the target and with `@alice ` in front when it is not,
/// `/rooms` counts what is unseen there, and the next day (a new process) shows only what came
/// since, with a line saying how much.
#[test]
fn a_private_conversation_has_its_prompt_its_prefix_and_its_since_last_here() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let home = tempfile::tempdir().unwrap();
    let mut bob = Term::join_in(&relay, "bob", Colour::Off, home.path());
    bob.send("/query alice\r");
    bob.wait_for("the prompt of the conversation", |s| {
        cursor_row(s) == "bob @alice> "
            && screen_text(s).contains("you are in @alice: a private conversation")
    });
    bob.send("hello alice\r");
    let m = alice.expect(|e| e["event"] == "message" && e["text"] == "hello alice");
    assert_eq!(m["dm"], "bob");
    alice.say("/msg bob are you there?");
    bob.wait_for("alice's answer, as in a room", |s| {
        rows(s)
            .iter()
            .any(|r| r.ends_with(" alice: are you there?") && !r.starts_with('@'))
    });
    bob.send("/switch lobby\r");
    bob.wait_for("the lobby's prompt", |s| cursor_row(s) == "bob #lobby> ");
    alice.say("/msg bob bob, still there?");
    bob.wait_for("the conversation's line, with its name", |s| {
        rows(s)
            .iter()
            .any(|r| r.starts_with("@alice ") && r.ends_with(" alice: bob, still there?"))
            && cursor_row(s) == "bob #lobby> "
    });
    bob.send("/rooms\r");
    bob.wait_for("the conversation listed, with what is unseen", |s| {
        screen_text(s).contains("-- 2. @alice, 1 unseen, 1 mentioning you")
    });
    bob.quit();
    alice.say("/msg bob see you tomorrow");
    alice.expect(|e| e["event"] == "message" && e["text"] == "see you tomorrow");
    let bob = Term::join_in(&relay, "bob", Colour::Off, home.path());
    bob.wait_for("only what came since, said so", |s| {
        (rows(s).iter()).any(|r| r.starts_with("@alice ") && r.contains("1 new message since"))
            && rows(s)
                .iter()
                .any(|r| r.starts_with("@alice ") && r.ends_with(" alice: see you tomorrow"))
    });
    let all = bob.all_rows().join("\n");
    assert!(!all.contains("are you there?"), "{all}");
    bob.quit();
    // With nothing new in it, the conversation comes quietly, and is there.
    let mut bob = Term::join_in(&relay, "bob", Colour::Off, home.path());
    bob.send("/rooms\r");
    bob.wait_for("the rooms", |s| screen_text(s).contains("-- 2. @alice"));
    let all = bob.all_rows().join("\n");
    assert!(
        !all.contains("you are in @alice") && !all.contains("@alice — no new messages"),
        "{all}"
    );
    // And Tab knows it.
    bob.send("/switch @a\t");
    bob.wait_for("completed", |s| {
        cursor_row(s) == "bob #lobby> /switch @alice "
    });
    bob.send("\r");
    bob.wait_for("its prompt", |s| cursor_row(s) == "bob @alice> ");
    bob.quit();
    alice.finish();
}

/// alice, in lunch (and the lobby), and bob in a terminal who joins lunch too: his prompt
/// names it.
fn in_lunch(relay: &Relay) -> (Client, Term) {
    let alice = Client::join(relay.addr, "alice", &["--room", "lunch"]);
    let mut bob = Term::join(relay, "bob", Colour::Off);
    bob.send("/join #lunch\r");
    bob.wait_for("the prompt in lunch", |s| cursor_row(s) == "bob #lunch> ");
    (alice, bob)
}
