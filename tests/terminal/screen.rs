//! What stays on the screen: the typed line once, a tall paste, resizes.

use std::num::NonZeroU16;
use std::time::{Duration, Instant};

use portable_pty::PtySize;

use super::common::{Client, Relay};
use super::pty::*;

/// The line typed shows once: after Enter it gives way to the message the relay stored, also
/// when it wrapped over rows (by display width: Chinese is two columns a character).
#[test]
fn the_typed_line_shows_once_as_the_message() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    bob.send("hello\r");
    // Shown before the next line is typed: a message printed while a wrapped line of wide
    // characters is being typed is another subject (rustyline redraws the line under it).
    bob.wait_for("bob's hello", |s| screen_text(s).contains("bob: hello"));
    // 70 Chinese characters after "bob #lobby> " wrap onto a second row.
    let long = "字".repeat(70);
    bob.send(&format!("{long}\r"));
    assert_eq!(texts_from(&mut alice, "bob", 2), ["hello", long.as_str()]);
    alice.say("after");
    bob.wait_for("alice's message after bob's", |s| {
        screen_text(s).contains("alice: after") && cursor_row(s) == "bob #lobby> "
    });
    let shown = rows_after(&bob.all_rows(), "-- in the room (");
    // The long message wraps at 100 columns: "HH:MM bob: " and 44 characters, then 26 under
    // the text.
    let expected_tail = [
        format!(" bob: {}", "字".repeat(44)),
        format!("{}{}", " ".repeat(11), "字".repeat(26)),
        " alice: after".to_owned(),
        "bob #lobby>".to_owned(),
    ];
    assert_eq!(shown.len(), 5, "{shown:#?}");
    assert!(shown[0].ends_with(" bob: hello"), "{shown:#?}");
    for (row, tail) in shown[1..].iter().zip(&expected_tail) {
        assert!(
            row.ends_with(tail.as_str()),
            "{row:?} is not {tail:?}: {shown:#?}"
        );
    }
    assert_eq!(shown[2], expected_tail[1], "the rest under the text");
    bob.quit();
    alice.finish();
}

/// A paste of 50 lines, taller than the screen, fills 50 lines: the messages, none of the
/// lines as typed (a terminal without bracketed paste sends the lines as typed, each ended
/// by a carriage return).
#[test]
fn a_paste_taller_than_the_screen_fills_as_many_lines() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    let lines: Vec<String> = (1..=50).map(|i| format!("pasted line {i}")).collect();
    let paste: String = lines.iter().map(|l| format!("{l}\r")).collect();
    bob.send(&paste);
    assert_eq!(texts_from(&mut alice, "bob", 50), lines);
    bob.wait_for("the last pasted line, shown", |s| {
        screen_text(s).contains("bob: pasted line 50") && cursor_row(s) == "bob #lobby> "
    });
    let shown = rows_after(&bob.all_rows(), "-- in the room (");
    assert_eq!(shown.len(), 51, "{shown:#?}");
    for (row, line) in shown.iter().zip(&lines) {
        assert!(
            row.ends_with(&format!(" bob: {line}")),
            "{row:?}: {shown:#?}"
        );
    }
    assert_eq!(shown[50], "bob #lobby>");
    bob.quit();
    alice.finish();
}

/// How a terminal treats its lines when its width changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resize {
    /// Rows stay as they were, cut or widened (xterm; vt100's own resize).
    Keep,
    /// Lines are wrapped again to the new width (tmux and most terminals of today).
    Rewrap,
}

/// The text of row `row` of `screen`, every cell of it when the row wraps onto the next (a
/// space at its end is part of the line), else without the blanks at its end.
fn row_text(screen: &vt100::Screen, row: u16) -> String {
    let cols = screen.size().1.get();
    let mut text = String::new();
    for col in 0..cols {
        match screen.cell(row, col) {
            Some(c) if c.is_wide_continuation() => {}
            Some(c) if c.has_contents() => text.push_str(c.contents()),
            _ => text.push(' '),
        }
    }
    if screen.row_wrapped(row) {
        text
    } else {
        text.trim_end().to_owned()
    }
}

/// The screen's rows as one text, the rows that wrap joined to the next.
fn joined(screen: &vt100::Screen) -> String {
    (0..screen.size().0.get())
        .map(|r| {
            let text = row_text(screen, r);
            if screen.row_wrapped(r) {
                text
            } else {
                text + "\n"
            }
        })
        .collect()
}

/// Resizes the terminal to `cols` columns: the emulated screen first, then the terminal
/// itself (which sends the client SIGWINCH). `Rewrap` does what tmux does: every line (rows
/// joined where they wrapped), the scrollback's too, is wrapped again at the new width, and
/// the cursor keeps its place in its line.
fn resize(term: &Term, cols: u16, how: Resize) {
    let mut shown = term.shown.lock().unwrap();
    let size = |n| NonZeroU16::new(n).unwrap();
    if how == Resize::Keep {
        shown.parser.screen_mut().set_size(size(ROWS), size(cols));
    } else {
        let screen = shown.parser.screen_mut();
        screen.set_scrollback(usize::MAX);
        let above = screen.scrollback();
        let mut rows: Vec<(String, bool)> = Vec::new();
        for offset in (1..=above).rev() {
            screen.set_scrollback(offset);
            rows.push((row_text(screen, 0), screen.row_wrapped(0)));
        }
        screen.set_scrollback(0);
        let (cursor_row, cursor_col) = screen.cursor_position();
        let cursor_at = above + usize::from(cursor_row);
        // The lines up to the cursor's, and where the cursor is in its line.
        let mut lines = vec![String::new()];
        let mut cursor = (0, 0);
        for row in 0..=cursor_row {
            rows.push((row_text(screen, row), screen.row_wrapped(row)));
        }
        for (i, (text, wrapped)) in rows.iter().enumerate() {
            let index = lines.len() - 1;
            let line = lines.last_mut().unwrap();
            if i == cursor_at {
                let upto: String = text.chars().take(usize::from(cursor_col)).collect();
                cursor = (index, line.len() + upto.len());
            }
            line.push_str(text);
            if !wrapped && i < cursor_at {
                lines.push(String::new());
            }
        }
        let mut parser = vt100::Parser::new(size(ROWS), size(cols), SCROLLBACK);
        let (at_line, at) = cursor;
        for (i, line) in lines.iter().enumerate() {
            if i == at_line {
                let (before, after) = line.split_at(at.min(line.len()));
                // Written as typed: before the cursor, then what follows it, back again.
                parser.process(before.as_bytes());
                parser.process(b"\x1b7");
                parser.process(after.trim_end().as_bytes());
                parser.process(b"\x1b8");
                break;
            }
            parser.process(line.as_bytes());
            parser.process(b"\r\n");
        }
        shown.parser = parser;
    }
    term._master
        .resize(PtySize {
            rows: ROWS,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
}

/// Resizing the window, wider and narrower, several times, while messages arrive and a long
/// line is half typed, hides no message and leaves no copy of the prompt: every message shows
/// once, and the line typed is sent whole. In a terminal that wraps its lines again at the new
/// width (bob, in "tmux"), as in one that keeps its rows as they were (carol). Every other
/// message to bob is longer than a row: the rows a repair prints again are rows of lines the
/// client cut (which the terminal cuts again when it gets narrower: a message is told by its
/// first row).
#[test]
fn resizing_loses_no_line_and_leaves_no_prompt_behind() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let bob = Term::join_env(
        &relay,
        "bob",
        Colour::Off,
        &[("TMUX", "/tmp/tmux-0/default,1,0")],
    );
    let carol = Term::join(&relay, "carol", Colour::Off);
    // Carol's arrival shows on bob's screen before the resizes: the messages come between
    // them, when the test sends them.
    bob.wait_for("carol's arrival", |s| {
        screen_text(s).contains("-- carol joined")
    });
    let long: String = (0..30).map(|i| format!("word{i} ")).collect();
    let long = long.trim_end().to_owned();
    for (mut term, how) in [(bob, Resize::Rewrap), (carol, Resize::Keep)] {
        let name = term.name.clone();
        let prompt = format!("{name} #lobby> ");
        term.send(&long);
        // Spaces aside: the editor ends a row with a newline of its own when the line ends
        // at its last column.
        let whole = |s: &vt100::Screen| {
            let bare = |t: &str| t.replace([' ', '\n'], "");
            bare(&joined(s)).contains(&bare(&format!("{prompt}{long}")))
        };
        term.wait_for("the long line", whole);
        let widths = [60, 130, 45, 100, 70, 100];
        // Every message so far once, the line typed whole under them, no prompt left
        // behind, in the screen and its scrollback.
        let settled = |term: &Term, messages: usize, what: &str| {
            let deadline = Instant::now() + DEADLINE;
            loop {
                let all = term.all_rows();
                let shown = rows_after(&all, "-- in the room (");
                let once = (0..messages).all(|j| {
                    let text = format!("alice: message {j} for {name}");
                    shown.iter().filter(|r| r.contains(&text)).count() == 1
                });
                let copies = shown.iter().filter(|r| r.starts_with(&prompt)).count();
                let typed = whole(term.shown.lock().unwrap().parser.screen());
                if once && copies == 1 && typed {
                    return;
                }
                assert!(Instant::now() < deadline, "{name}: {what}: {shown:#?}");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        for (i, cols) in widths.iter().enumerate() {
            // The editor draws the line again once it hears of the resize: then what that
            // broke is put right.
            let before = term.raw().len();
            resize(&term, *cols, how);
            let deadline = Instant::now() + DEADLINE;
            while term.raw().len() == before {
                assert!(Instant::now() < deadline, "{name}: no redraw at {cols}");
                std::thread::sleep(Duration::from_millis(10));
            }
            settled(&term, i, &format!("after the resize to {cols}"));
            let text = match how {
                Resize::Rewrap if i % 2 == 1 => {
                    format!("message {i} for {name} {}", ["la"; 60].join(" "))
                }
                _ => format!("message {i} for {name}"),
            };
            alice.say(&text);
            alice.expect(|e| e["event"] == "message" && e["text"] == text);
            settled(&term, i + 1, &format!("after {text:?} at {cols}"));
        }
        term.send("!\r");
        assert_eq!(texts_from(&mut alice, &name, 1), [format!("{long}!")]);
        term.wait_for("the line, sent", |s| cursor_row(s) == prompt);
        let all = term.all_rows();
        let shown = rows_after(&all, "-- in the room (");
        for i in 0..widths.len() {
            let text = format!("alice: message {i} for {name}");
            let count = shown.iter().filter(|r| r.contains(&text)).count();
            assert_eq!(count, 1, "{name}: {text:?} shown {count} times: {shown:#?}");
        }
        let copies = shown.iter().filter(|r| r.starts_with(&prompt)).count();
        assert_eq!(copies, 0, "{name}: copies of the prompt: {shown:#?}");
        // Nothing of the long messages lost or shown twice (the rows the terminal cut
        // joined again).
        if how == Resize::Rewrap {
            let screen = joined(term.shown.lock().unwrap().parser.screen());
            let las = screen.split_whitespace().filter(|w| *w == "la").count();
            assert_eq!(las, 60 * widths.len() / 2, "{name}: {screen}");
        }
        assert_eq!(
            shown.last(),
            Some(&prompt.trim_end().to_owned()),
            "{shown:#?}"
        );
        term.quit();
    }
    alice.finish();
}

/// A message arrives while a long line of wide characters is half typed, wrapped over two
/// rows: it prints above the line, and the line is left whole below it, once.
#[test]
fn a_message_above_a_wrapped_wide_line_leaves_no_rows_behind() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    let long = "字".repeat(70);
    bob.send(&long);
    bob.wait_for("the typed line", |s| {
        screen_text(s).contains(&"字".repeat(20))
    });
    alice.say("while you type");
    bob.wait_for("alice's message", |s| {
        screen_text(s).contains("alice: while you type")
    });
    // The line is drawn again below the message: its prompt after it.
    bob.wait_for("the line below the message", |s| {
        let text = screen_text(s);
        text.find("alice: while you type")
            .is_some_and(|at| text[at..].contains("bob #lobby> 字"))
    });
    let rows = rows_after(&bob.all_rows(), "-- in the room (");
    let wide: Vec<&String> = rows.iter().filter(|r| r.contains('字')).collect();
    assert_eq!(wide.len(), 2, "{rows:#?}");
    assert!(wide[0].starts_with("bob #lobby> "), "{rows:#?}");
    let at = rows
        .iter()
        .position(|r| r.contains("alice: while you type"))
        .unwrap();
    assert!(rows[at + 1].starts_with("bob #lobby> "), "{rows:#?}");
    alice.finish();
}
