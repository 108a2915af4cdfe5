//! The harness of the terminal tests: `urc join` in a pseudo-terminal, its output read
//! through a terminal emulator (vt100), and what the tests ask of the screen.

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use serde_json::Value;

use super::common::{Client, Relay, events};

/// The terminal's size.
pub const ROWS: u16 = 30;
pub const COLS: u16 = 100;

/// Rows the emulated terminal keeps above the screen.
pub const SCROLLBACK: usize = 1000;

/// The longest a wait on the screen may take.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Colour settings of the terminal `urc join` runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// `NO_COLOR=1`.
    Off,
    /// No `NO_COLOR`, `TERM=xterm-256color`.
    On,
}

/// What the terminal has shown so far.
pub struct Shown {
    /// The emulated screen.
    pub parser: vt100::Parser,
    /// Every byte written to the terminal, escapes included.
    pub raw: Vec<u8>,
}

/// `urc join` in a pseudo-terminal; killed when dropped if it did not quit.
pub struct Term {
    /// The name it joined with, for failure messages.
    pub name: String,
    /// The `urc join` process.
    pub child: Box<dyn portable_pty::Child + Send + Sync>,
    /// The keyboard side of the terminal.
    pub writer: Box<dyn Write + Send>,
    /// Filled by a thread that reads the terminal.
    pub shown: Arc<Mutex<Shown>>,
    /// Kept open: closing the master side hangs the terminal up.
    pub _master: Box<dyn portable_pty::MasterPty + Send>,
    /// HOME for the client, removed at the end (unless the test keeps it for another session).
    pub _home: Option<tempfile::TempDir>,
}

impl Term {
    /// Starts `urc join --name NAME` in a terminal and waits for its prompt.
    pub fn join(relay: &Relay, name: &str, colour: Colour) -> Term {
        let home = tempfile::tempdir().unwrap();
        let mut term = Term::join_in(relay, name, colour, home.path());
        term._home = Some(home);
        term
    }

    /// The same, with more arguments for `urc join`.
    pub fn join_with(relay: &Relay, name: &str, colour: Colour, args: &[&str]) -> Term {
        let home = tempfile::tempdir().unwrap();
        let mut term = Term::start(relay, name, colour, home.path(), args, &[]);
        term._home = Some(home);
        term
    }

    /// The same, with HOME (and the XDG directories under it) at `home`.
    pub fn join_in(relay: &Relay, name: &str, colour: Colour, home: &Path) -> Term {
        Term::start(relay, name, colour, home, &[], &[])
    }

    /// The same, with more variables in the environment of `urc join`.
    pub fn join_env(relay: &Relay, name: &str, colour: Colour, env: &[(&str, &str)]) -> Term {
        let home = tempfile::tempdir().unwrap();
        let mut term = Term::start(relay, name, colour, home.path(), &[], env);
        term._home = Some(home);
        term
    }

    pub fn start(
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
        let prompt = format!("{name} #lobby> ");
        // rustyline draws the prompt once it has the terminal in its raw mode.
        term.wait_for("the prompt, after the list of who is in the room", |s| {
            screen_text(s).contains("-- in the room (") && cursor_row(s) == prompt
        });
        term
    }

    /// Writes `bytes` to the terminal, as typed (or pasted) in one go.
    pub fn send(&mut self, bytes: &str) {
        self.writer.write_all(bytes.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Polls the screen until `cond` holds; panics with the screen after [`DEADLINE`].
    pub fn wait_for(&self, what: &str, cond: impl Fn(&vt100::Screen) -> bool) {
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
    pub fn all_rows(&self) -> Vec<String> {
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
    pub fn raw(&self) -> Vec<u8> {
        self.shown.lock().unwrap().raw.clone()
    }

    /// Types `/quit` and waits for the client to exit (it waits for acknowledgements first);
    /// kills it if it does not exit in time.
    pub fn quit(mut self) {
        self.send("/quit\r");
        self.wait_exit();
    }

    /// Waits for the client to exit with success; kills it if it does not exit in time.
    pub fn wait_exit(&mut self) {
        let status = self.wait_status();
        assert!(status.success(), "{}: exited with {status:?}", self.name);
    }

    /// Waits for the client to exit, however it does; kills it if it does not exit in time.
    pub fn wait_status(&mut self) -> portable_pty::ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("{}: did not exit within {DEADLINE:?}", self.name);
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
pub fn rows(screen: &vt100::Screen) -> Vec<String> {
    screen
        .rows(0, screen.size().1.get())
        .map(|r| r.trim_end().to_owned())
        .collect()
}

/// The screen as text, one row a line.
pub fn screen_text(screen: &vt100::Screen) -> String {
    rows(screen).join("\n")
}

/// The screen with row numbers, for failure messages (the blank rows at the end left out).
pub fn numbered(screen: &vt100::Screen) -> String {
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
pub fn cursor_row(screen: &vt100::Screen) -> String {
    let (row, col) = screen.cursor_position();
    screen
        .rows(0, col)
        .nth(usize::from(row))
        .unwrap_or_default()
}

/// The cursor's row and the rows above it.
pub fn rows_above_cursor(screen: &vt100::Screen) -> Vec<String> {
    let (row, _) = screen.cursor_position();
    rows(screen)[..usize::from(row)].to_vec()
}

/// Waits until the relay's log holds `n` messages and returns them as (from, text).
pub fn logged(data: &Path, n: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let log =
            std::fs::read_to_string(data.join("rooms/lobby/messages.jsonl")).unwrap_or_default();
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

pub fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// Reads alice's events until `n` live messages from `from` arrived; returns their texts.
pub fn texts_from(client: &mut Client, from: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let e = client
                .expect(|e| e["event"] == "message" && e["history"] == false && e["from"] == from);
            str_of(&e["text"])
        })
        .collect()
}

/// The SGR sequences (`ESC [ … m`) in `bytes` that set something (not the plain reset).
pub fn sgr_codes(bytes: &[u8]) -> Vec<String> {
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

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The lines of raw terminal output that contain `text`.
pub fn raw_lines_with<'a>(raw: &'a [u8], text: &str) -> Vec<&'a [u8]> {
    raw.split(|b| *b == b'\n')
        .filter(|l| find(l, text.as_bytes()).is_some())
        .collect()
}

/// The rows of `all` that are not blank, after the last one that holds `mark`.
pub fn rows_after(all: &[String], mark: &str) -> Vec<String> {
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
