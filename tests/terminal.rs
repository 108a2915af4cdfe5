//! Through a real terminal: `urc join` runs in a pseudo-terminal and its output goes through a
//! terminal emulator (vt100), so the tests read the screen a person would see.
//!
//! Every wait polls the screen (or the other client's events) until a condition holds, up to a
//! deadline; nothing sleeps a fixed time to let something happen.

mod common;

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Client, Relay, events};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use serde_json::Value;

/// The terminal's size.
const ROWS: u16 = 30;
const COLS: u16 = 100;

/// Rows the emulated terminal keeps above the screen.
const SCROLLBACK: usize = 1000;

/// The longest a wait on the screen may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// Colour settings of the terminal `urc join` runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Colour {
    /// `NO_COLOR=1`.
    Off,
    /// No `NO_COLOR`, `TERM=xterm-256color`.
    On,
}

/// What the terminal has shown so far.
struct Shown {
    /// The emulated screen.
    parser: vt100::Parser,
    /// Every byte written to the terminal, escapes included.
    raw: Vec<u8>,
}

/// `urc join` in a pseudo-terminal; killed when dropped if it did not quit.
struct Term {
    /// The name it joined with, for failure messages.
    name: String,
    /// The `urc join` process.
    child: Box<dyn portable_pty::Child + Send + Sync>,
    /// The keyboard side of the terminal.
    writer: Box<dyn Write + Send>,
    /// Filled by a thread that reads the terminal.
    shown: Arc<Mutex<Shown>>,
    /// Kept open: closing the master side hangs the terminal up.
    _master: Box<dyn portable_pty::MasterPty + Send>,
    /// HOME for the client, removed at the end (unless the test keeps it for another session).
    _home: Option<tempfile::TempDir>,
}

impl Term {
    /// Starts `urc join --name NAME` in a terminal and waits for its prompt.
    fn join(relay: &Relay, name: &str, colour: Colour) -> Term {
        let home = tempfile::tempdir().unwrap();
        let mut term = Term::join_in(relay, name, colour, home.path());
        term._home = Some(home);
        term
    }

    /// The same, with more arguments for `urc join`.
    fn join_with(relay: &Relay, name: &str, colour: Colour, args: &[&str]) -> Term {
        let home = tempfile::tempdir().unwrap();
        let mut term = Term::start(relay, name, colour, home.path(), args, &[]);
        term._home = Some(home);
        term
    }

    /// The same, with HOME (and the XDG directories under it) at `home`.
    fn join_in(relay: &Relay, name: &str, colour: Colour, home: &Path) -> Term {
        Term::start(relay, name, colour, home, &[], &[])
    }

    /// The same, with more variables in the environment of `urc join`.
    fn join_env(relay: &Relay, name: &str, colour: Colour, env: &[(&str, &str)]) -> Term {
        let home = tempfile::tempdir().unwrap();
        let mut term = Term::start(relay, name, colour, home.path(), &[], env);
        term._home = Some(home);
        term
    }

    fn start(
        relay: &Relay,
        name: &str,
        colour: Colour,
        home: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Term {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pseudo-terminal");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_urc"));
        cmd.args(["join", "--server", &relay.addr.to_string(), "--name", name]);
        cmd.args(args);
        // Days and times as the tests compute them.
        cmd.env("TZ", "UTC");
        cmd.cwd(home);
        cmd.env("HOME", home);
        for dir in [
            "XDG_DATA_HOME",
            "XDG_CONFIG_HOME",
            "XDG_STATE_HOME",
            "XDG_CACHE_HOME",
        ] {
            cmd.env(dir, home.join(dir));
        }
        cmd.env("TERM", "xterm-256color");
        cmd.env("LANG", "C.UTF-8");
        for var in ["URC_SERVER", "URC_NAME", "NO_COLOR", "RUST_LOG"] {
            cmd.env_remove(var);
        }
        if colour == Colour::Off {
            cmd.env("NO_COLOR", "1");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pair.slave.spawn_command(cmd).expect("start urc join");
        // Only the child holds the terminal's other side now: when it exits, reads end.
        drop(pair.slave);
        let writer = pair.master.take_writer().unwrap();
        let rows = NonZeroU16::new(ROWS).unwrap();
        let cols = NonZeroU16::new(COLS).unwrap();
        let shown = Arc::new(Mutex::new(Shown {
            parser: vt100::Parser::new(rows, cols, SCROLLBACK),
            raw: Vec::new(),
        }));
        let mut reader = pair.master.try_clone_reader().unwrap();
        let sink = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                let mut shown = sink.lock().unwrap();
                shown.raw.extend_from_slice(&buf[..n]);
                shown.parser.process(&buf[..n]);
            }
        });
        let term = Term {
            name: name.to_owned(),
            child,
            writer,
            shown,
            _master: pair.master,
            _home: None,
        };
        let prompt = format!("{name}> ");
        // rustyline draws the prompt once it has the terminal in its raw mode.
        term.wait_for("the prompt, after the list of who is in the room", |s| {
            screen_text(s).contains("-- in the room (") && cursor_row(s) == prompt
        });
        term
    }

    /// Writes `bytes` to the terminal, as typed (or pasted) in one go.
    fn send(&mut self, bytes: &str) {
        self.writer.write_all(bytes.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Polls the screen until `cond` holds; panics with the screen after [`DEADLINE`].
    fn wait_for(&self, what: &str, cond: impl Fn(&vt100::Screen) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            {
                let shown = self.shown.lock().unwrap();
                let screen = shown.parser.screen();
                if cond(screen) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "{}: {what}: not on the screen in time; the screen (cursor at {:?}):\n{}",
                    self.name,
                    screen.cursor_position(),
                    numbered(screen)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every row the terminal shows or keeps above the screen (its scrollback), right-trimmed:
    /// what scrolling back up would show.
    fn all_rows(&self) -> Vec<String> {
        let mut shown = self.shown.lock().unwrap();
        let screen = shown.parser.screen_mut();
        screen.set_scrollback(usize::MAX);
        let above = screen.scrollback();
        let mut all = Vec::new();
        for offset in (1..=above).rev() {
            screen.set_scrollback(offset);
            let cols = screen.size().1.get();
            all.push(screen.rows(0, cols).next().unwrap().trim_end().to_owned());
        }
        screen.set_scrollback(0);
        all.extend(rows(screen));
        all
    }

    /// Every byte the terminal received so far.
    fn raw(&self) -> Vec<u8> {
        self.shown.lock().unwrap().raw.clone()
    }

    /// Types `/quit` and waits for the client to exit (it waits for acknowledgements first);
    /// kills it if it does not exit in time.
    fn quit(mut self) {
        self.send("/quit\r");
        self.wait_exit();
    }

    /// Waits for the client to exit with success; kills it if it does not exit in time.
    fn wait_exit(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{}: exited with {status:?}", self.name);
                return;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("{}: did not exit within {DEADLINE:?} of /quit", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The screen's rows, right-trimmed.
fn rows(screen: &vt100::Screen) -> Vec<String> {
    screen
        .rows(0, screen.size().1.get())
        .map(|r| r.trim_end().to_owned())
        .collect()
}

/// The screen as text, one row a line.
fn screen_text(screen: &vt100::Screen) -> String {
    rows(screen).join("\n")
}

/// The screen with row numbers, for failure messages (the blank rows at the end left out).
fn numbered(screen: &vt100::Screen) -> String {
    let rows = rows(screen);
    let used = rows
        .iter()
        .rposition(|r| !r.is_empty())
        .map_or(0, |i| i + 1);
    rows[..used]
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{i:2}|{r}\n"))
        .collect()
}

/// The row the cursor is on, up to the cursor (so a typed trailing space counts).
fn cursor_row(screen: &vt100::Screen) -> String {
    let (row, col) = screen.cursor_position();
    screen
        .rows(0, col)
        .nth(usize::from(row))
        .unwrap_or_default()
}

/// The cursor's row and the rows above it.
fn rows_above_cursor(screen: &vt100::Screen) -> Vec<String> {
    let (row, _) = screen.cursor_position();
    rows(screen)[..usize::from(row)].to_vec()
}

/// Waits until the relay's log holds `n` messages and returns them as (from, text).
fn logged(data: &Path, n: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let log = std::fs::read_to_string(data.join("messages.jsonl")).unwrap_or_default();
        // Only whole lines: the relay may be writing the next one.
        let whole = &log[..log.rfind('\n').map_or(0, |i| i + 1)];
        let records: Vec<(String, String)> = events(whole)
            .iter()
            .map(|r| (str_of(&r["from"]), str_of(&r["text"])))
            .collect();
        if records.len() >= n {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "the log holds {records:?}, not {n} messages"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// Reads alice's events until `n` live messages from `from` arrived; returns their texts.
fn texts_from(client: &mut Client, from: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let e = client
                .expect(|e| e["event"] == "message" && e["history"] == false && e["from"] == from);
            str_of(&e["text"])
        })
        .collect()
}

/// The SGR sequences (`ESC [ … m`) in `bytes` that set something (not the plain reset).
fn sgr_codes(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(start) = find(&bytes[i..], b"\x1b[").map(|j| i + j) {
        let params_at = start + 2;
        let len = bytes[params_at..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b';')
            .count();
        let end = params_at + len;
        if bytes.get(end) == Some(&b'm') {
            let params = String::from_utf8_lossy(&bytes[params_at..end]).into_owned();
            if !params.is_empty() && params != "0" {
                found.push(params);
            }
        }
        i = params_at;
    }
    found
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The lines of raw terminal output that contain `text`.
fn raw_lines_with<'a>(raw: &'a [u8], text: &str) -> Vec<&'a [u8]> {
    raw.split(|b| *b == b'\n')
        .filter(|l| find(l, text.as_bytes()).is_some())
        .collect()
}

#[test]
fn a_message_arriving_mid_line_leaves_the_typed_line_intact() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    alice.expect(|e| e["event"] == "joined" && e["name"] == "bob");

    bob.send("half typed 你好");
    bob.wait_for("half-typed line", |s| {
        cursor_row(s) == "bob> half typed 你好"
    });
    alice.say("hello from alice 🚄");
    bob.wait_for("message from alice above the intact line", |s| {
        let above = rows_above_cursor(s);
        let last_used = rows(s).iter().rposition(|r| !r.is_empty());
        above.iter().any(|r| r.ends_with(" alice: hello from alice 🚄"))
                && cursor_row(s) == "bob> half typed 你好"
                // The line being typed is the last one on the screen, the cursor at its end
                // ("你好" is two columns a character).
                && last_used == Some(usize::from(s.cursor_position().0))
                && s.cursor_position().1 == 20
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
    bob.wait_for("/who completed", |s| cursor_row(s) == "bob> /who ");
    bob.send("\r");
    bob.wait_for("the answer to /who", |s| {
        screen_text(s)
            .matches("-- in the room (2): alice, bob")
            .count()
            == 2
            && cursor_row(s) == "bob> "
    });

    bob.send("hi al\t");
    bob.wait_for("alice completed", |s| cursor_row(s) == "bob> hi alice ");
    bob.send("there\r");
    bob.wait_for("bob's message", |s| {
        rows_above_cursor(s)
            .iter()
            .any(|r| r.ends_with(" bob: hi alice there"))
    });
    // A name that starts the line gets ": ", as in IRC.
    bob.send("AL\t");
    bob.wait_for("alice completed at the start", |s| {
        cursor_row(s) == "bob> alice: "
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

/// When the relay stops answering, a notice says so and the prompt shows it (`bob! `); when
/// it is back, a notice says so and the prompt is `bob> ` again.
#[test]
fn the_prompt_shows_when_the_relay_is_not_answering() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let addr = relay.addr;
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    assert!(relay.stop().success());
    bob.send("anyone there?\r");
    bob.wait_for(
        "the relay is not answering, in a notice and the prompt",
        |s| {
            screen_text(s).contains("-- the relay is not answering: still trying")
                && cursor_row(s) == "bob! "
        },
    );
    let relay = Relay::start_at(&addr.to_string(), data.path(), &[]);
    bob.wait_for("the relay is back, in a notice and the prompt", |s| {
        let text = screen_text(s);
        text.contains("-- the relay is answering again")
            && text.contains("bob: anyone there?")
            && cursor_row(s) == "bob> "
    });
    bob.quit();
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
            && cursor_row(s) == "bob> "
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
    // 60 Chinese characters are 120 columns: "bob> " and 47 characters fill the first row of
    // 100 (94 + 5 columns; the 48th would need 2 and only 1 is left), the rest wrap.
    let long = "字".repeat(60);
    bob.send(&long);
    bob.wait_for("the long line, wrapped by width", |s| {
        let rows = rows(s);
        rows.iter()
            .any(|r| *r == format!("bob> {}", "字".repeat(47)))
            && rows.iter().any(|r| *r == "字".repeat(13))
    });
    bob.send("\r");
    assert_eq!(texts_from(&mut alice, "bob", 1), [long]);
    bob.quit();
}

/// Ctrl-C clears the line being typed, as in readline: nothing is sent and the client stays;
/// Ctrl-D on an empty line leaves.
#[test]
fn ctrl_c_clears_the_line_and_ctrl_d_leaves() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    bob.send("never sent");
    bob.wait_for("the half-typed line", |s| {
        cursor_row(s) == "bob> never sent"
    });
    bob.send("\x03");
    bob.wait_for("an empty prompt after Ctrl-C", |s| cursor_row(s) == "bob> ");
    bob.send("sent\r");
    assert_eq!(texts_from(&mut alice, "bob", 1), ["sent"]);
    bob.wait_for("bob's message", |s| screen_text(s).contains("bob: sent"));
    assert!(
        bob.child.try_wait().unwrap().is_none(),
        "Ctrl-C ended the client"
    );
    bob.send("\x04");
    bob.wait_exit();
    alice.expect(|e| e["event"] == "left" && e["name"] == "bob");
    assert_eq!(
        logged(data.path(), 1),
        [("bob".to_owned(), "sent".to_owned())]
    );
    alice.finish();
}

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
            && cursor_row(s) == "bob> "
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
    std::fs::write(data.join("messages.jsonl"), log).unwrap();
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

/// The rows of `all` that are not blank, after the last one that holds `mark`.
fn rows_after(all: &[String], mark: &str) -> Vec<String> {
    let from = all
        .iter()
        .rposition(|r| r.contains(mark))
        .map_or(0, |i| i + 1);
    all[from..]
        .iter()
        .filter(|r| !r.is_empty())
        .cloned()
        .collect()
}

/// The line typed shows once: after Enter it gives way to the message the relay stored, also
/// when it wrapped over rows (by display width: Chinese is two columns a character).
#[test]
fn the_typed_line_shows_once_as_the_message() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    bob.send("hello\r");
    // 70 Chinese characters after "bob> " wrap onto a second row.
    let long = "字".repeat(70);
    bob.send(&format!("{long}\r"));
    assert_eq!(texts_from(&mut alice, "bob", 2), ["hello", long.as_str()]);
    alice.say("after");
    bob.wait_for("alice's message after bob's", |s| {
        screen_text(s).contains("alice: after") && cursor_row(s) == "bob> "
    });
    let shown = rows_after(&bob.all_rows(), "-- in the room (");
    // The long message wraps at 100 columns: "HH:MM bob: " and 44 characters, then 26.
    let expected_tail = [
        format!(" bob: {}", "字".repeat(44)),
        "字".repeat(26),
        " alice: after".to_owned(),
        "bob>".to_owned(),
    ];
    assert_eq!(shown.len(), 5, "{shown:#?}");
    assert!(shown[0].ends_with(" bob: hello"), "{shown:#?}");
    for (row, tail) in shown[1..].iter().zip(&expected_tail) {
        assert!(
            row.ends_with(tail.as_str()),
            "{row:?} is not {tail:?}: {shown:#?}"
        );
    }
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
        screen_text(s).contains("bob: pasted line 50") && cursor_row(s) == "bob> "
    });
    let shown = rows_after(&bob.all_rows(), "-- in the room (");
    assert_eq!(shown.len(), 51, "{shown:#?}");
    for (row, line) in shown.iter().zip(&lines) {
        assert!(
            row.ends_with(&format!(" bob: {line}")),
            "{row:?}: {shown:#?}"
        );
    }
    assert_eq!(shown[50], "bob>");
    bob.quit();
    alice.finish();
}

/// The process state letter of `pid` (`T` when stopped), from /proc.
fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // "pid (comm) S ...": the state follows the command's closing parenthesis.
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .unwrap_or('?')
}

/// Sets the terminal to the line mode a shell gives it (echo, lines, signals from keys).
fn shell_mode(master: &dyn portable_pty::MasterPty) {
    let fd = master.as_raw_fd().expect("the terminal's descriptor");
    // SAFETY: a termios filled by tcgetattr for an open descriptor, written back to it.
    unsafe {
        let mut mode: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(fd, &mut mode), 0);
        mode.c_lflag |= libc::ECHO | libc::ICANON | libc::ISIG | libc::IEXTEN;
        mode.c_iflag |= libc::ICRNL;
        assert_eq!(libc::tcsetattr(fd, libc::TCSANOW, &mode), 0);
    }
}

/// Stopped (as by Ctrl-Z in a shell, or `kill -TSTP`) and continued (`fg`) while a line is
/// half typed, after the shell set the terminal to its line mode and wrote its lines: the
/// prompt and line are drawn again, keys edit the line, and what is sent is what is shown.
#[test]
fn stopped_and_continued_the_editor_works_again() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    let pid = bob.child.process_id().expect("the client's pid");
    bob.send("abc");
    bob.wait_for("the half-typed line", |s| cursor_row(s) == "bob> abc");
    let signal = |sig: libc::c_int| {
        // SAFETY: a signal to our own child.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
    };
    // SIGSTOP, not SIGTSTP: the client leads a session of its own here, a process group
    // without a shell, where the kernel ignores SIGTSTP's stop.
    signal(libc::SIGSTOP);
    let deadline = Instant::now() + DEADLINE;
    while process_state(pid) != 'T' {
        assert!(Instant::now() < deadline, "the client did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    // What a shell does meanwhile: its own terminal mode, its lines.
    shell_mode(&*bob._master);
    bob.shown
        .lock()
        .unwrap()
        .parser
        .process(b"\r\n[1]+  Stopped   urc join\r\n$ fg\r\nurc join\r\n");
    signal(libc::SIGCONT);
    bob.wait_for("the line drawn again", |s| {
        cursor_row(s) == "bob> abc" && rows_above_cursor(s).last().is_some_and(|r| r == "urc join")
    });
    // Two Left arrows, then X: the line is edited, not echoed as typed.
    bob.send("\x1b[D\x1b[DX");
    bob.wait_for("the line edited", |s| cursor_row(s) == "bob> aX");
    bob.send("\r");
    assert_eq!(texts_from(&mut alice, "bob", 1), ["aXbc"]);
    bob.wait_for("bob's message", |s| screen_text(s).contains("bob: aXbc"));
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
/// width (bob, in "tmux"), as in one that keeps its rows as they were (carol).
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
    let long: String = (0..30).map(|i| format!("word{i} ")).collect();
    let long = long.trim_end().to_owned();
    for (mut term, how) in [(bob, Resize::Rewrap), (carol, Resize::Keep)] {
        let name = term.name.clone();
        let prompt = format!("{name}> ");
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
                    shown.iter().filter(|r| r.ends_with(&text)).count() == 1
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
            let text = format!("message {i} for {name}");
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
            let count = shown.iter().filter(|r| r.ends_with(&text)).count();
            assert_eq!(count, 1, "{name}: {text:?} shown {count} times: {shown:#?}");
        }
        let copies = shown.iter().filter(|r| r.starts_with(&prompt)).count();
        assert_eq!(copies, 0, "{name}: copies of the prompt: {shown:#?}");
        assert_eq!(
            shown.last(),
            Some(&prompt.trim_end().to_owned()),
            "{shown:#?}"
        );
        term.quit();
    }
    alice.finish();
}
