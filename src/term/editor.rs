//! The terminal editor's helper: Tab completion, a prompt that shows when the relay is not
//! answering (`alice! ` in red instead of `alice> `), and the hold on printing while a line
//! is accepted.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rustyline::completion::Completer;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

use crate::term::complete::Names;
use crate::term::resize::Screen;

/// The room typed lines go to, set by the session and shown by the prompt (`alice #ops> `),
/// with a way for the editor to wait until a command that may change it was handled.
#[derive(Debug, Clone, Default)]
pub struct Target(Arc<(Mutex<(String, u64)>, Condvar)>);

impl Target {
    /// Makes `room` the room typed lines go to ("" for none).
    pub fn set(&self, room: &str) {
        let mut t = self.lock();
        t.0 = room.to_owned();
    }

    /// Says that the `handled`th line was handled.
    pub fn handled(&self, handled: u64) {
        self.lock().1 = handled;
        self.0.1.notify_all();
    }

    /// The room typed lines go to, once the `line`th line was handled (or `wait` passed).
    pub fn after(&self, line: u64, wait: std::time::Duration) -> String {
        let t = self.lock();
        let (t, _) = (self.0.1)
            .wait_timeout_while(t, wait, |t| t.1 < line)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        t.0.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (String, u64)> {
        (self.0.0)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The prompt for `name` typing to `room`: `alice #ops> `, or `alice> ` in no room.
pub fn prompt(name: &str, room: &str) -> String {
    let name = crate::term::render::sanitize(name);
    if room.is_empty() {
        format!("{name}> ")
    } else {
        format!("{name} {}> ", crate::proto::dm::label(room))
    }
}

/// Whether the relay is answering, set by the session and shown by the prompt.
#[derive(Debug, Clone, Default)]
pub struct Connection(Arc<AtomicBool>);

impl Connection {
    /// Records that the relay stopped answering (`true`) or answers again (`false`).
    pub fn set_silent(&self, silent: bool) {
        self.0.store(silent, Ordering::Relaxed);
    }

    /// True while the relay is not answering.
    pub fn is_silent(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Whether lines may print now: from the moment the editor accepts a line until the rows it
/// took are erased, they wait (the editor gives the terminal back meanwhile, and a line
/// printed then would be where the erasing counts the typed line to be); and from a resize
/// until what it broke is put right. Turning it on and printing while it is off exclude each
/// other ([`Hold::while_off`]): a line looked at just before the editor accepted one, and
/// printed just after, was written where the typed line was to be erased, and the erasing took
/// the message away instead (seen once in a pty test of a 50-line paste).
#[derive(Debug, Clone, Default)]
pub struct Hold(Arc<(AtomicU8, Mutex<()>)>);

/// Longest the hold waits for a print under way before it goes on (see [`Hold::set`]).
const GATE_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Why lines wait.
#[derive(Debug, Clone, Copy)]
pub enum Why {
    /// A line was accepted.
    Accepted = 1,
    /// The window was resized.
    Resized = 2,
}

impl Hold {
    /// Holds lines back (`true`) or lets them print (`false`), for `why`.
    pub fn set(&self, why: Why, on: bool) {
        if !on {
            self.0.0.fetch_and(!(why as u8), Ordering::SeqCst);
            return;
        }
        // A print under way finishes first. It may wait itself for the editor's thread, this
        // one, to take what it queued (rustyline queues one line at a time while it reads):
        // past [`GATE_WAIT`] that is so, and its line is queued, shown at the next read, after
        // the erasing; the hold goes on without the gate.
        let until = std::time::Instant::now() + GATE_WAIT;
        let gate = loop {
            match self.0.1.try_lock() {
                Ok(gate) => break Some(gate),
                Err(std::sync::TryLockError::Poisoned(p)) => break Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(std::sync::TryLockError::WouldBlock) => break None,
            }
        };
        self.0.0.fetch_or(why as u8, Ordering::SeqCst);
        drop(gate);
    }

    /// True while lines wait.
    pub fn is_on(&self) -> bool {
        self.0.0.load(Ordering::SeqCst) != 0
    }

    /// Runs `print` unless lines wait, the hold kept from turning on until it is done; true
    /// when it ran.
    pub fn while_off(&self, print: impl FnOnce()) -> bool {
        let _gate = self
            .0
            .1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.is_on() {
            return false;
        }
        print();
        true
    }
}

/// What rustyline asks of the client's editor.
#[derive(Debug)]
pub struct Assist {
    /// The names Tab offers.
    pub names: Names,
    /// Drawn into the prompt.
    pub connection: Connection,
    /// Colour allowed.
    pub color: bool,
    /// Set when a line is accepted.
    pub hold: Hold,
    /// Told the line being typed, for what a resize breaks.
    pub screen: Screen,
    /// The room typed lines go to, for the prompt.
    pub target: Target,
}

impl Completer for Assist {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(self.names.complete(line, pos))
    }
}

impl Highlighter for Assist {
    /// Asked before every draw of the line: at every change of the line or of the cursor,
    /// and as the line is drawn again after a resize. The draw is noted, with where the line
    /// stands (a resize's repair waits for the redraw), and the line is always drawn whole.
    /// (Drawn a character at a time, a line that once ended at the terminal's last column
    /// keeps the newline rustyline wrote there, and a terminal that rewraps its lines on a
    /// resize then cuts the line in two.)
    fn highlight_char(&self, line: &str, pos: usize, _: CmdKind) -> bool {
        self.screen.drawn(line, pos);
        true
    }

    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _: bool) -> Cow<'b, str> {
        if !self.connection.is_silent() {
            return Cow::Borrowed(prompt);
        }
        // The same width as the prompt it stands for, so the cursor stays where it belongs.
        let offline = match prompt.strip_suffix("> ") {
            Some(name) => format!("{name}! "),
            None => return Cow::Borrowed(prompt),
        };
        if self.color {
            Cow::Owned(format!("\x1b[1;31m{offline}\x1b[0m"))
        } else {
            Cow::Owned(offline)
        }
    }
}

impl Hinter for Assist {
    type Hint = String;
}

impl Validator for Assist {
    /// Every line is valid; asked as the line is accepted, while the editor still has the
    /// terminal, which is the moment printing must wait from.
    fn validate(&self, _: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        self.hold.set(Why::Accepted, true);
        Ok(ValidationResult::Valid(None))
    }
}

impl Helper for Assist {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_print_runs_only_while_the_hold_is_off_and_finishes_before_it_goes_on() {
        let hold = Hold::default();
        let mut printed = 0;
        assert!(hold.while_off(|| printed += 1));
        hold.set(Why::Accepted, true);
        assert!(!hold.while_off(|| printed += 1));
        hold.set(Why::Accepted, false);
        assert!(hold.while_off(|| printed += 1));
        assert_eq!(printed, 2);
        // A print under way holds the hold back until it is done.
        let (started, go) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                hold.while_off(|| {
                    started.wait();
                    go.wait();
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    done.store(true, Ordering::SeqCst);
                })
            });
            started.wait();
            go.wait();
            hold.set(Why::Accepted, true);
            assert!(
                done.load(Ordering::SeqCst),
                "the hold went on during the print"
            );
        });
        assert!(hold.is_on());
    }

    #[test]
    fn the_prompt_shows_a_silent_relay_at_the_same_width() {
        let connection = Connection::default();
        let plain = Assist {
            target: Default::default(),
            names: Names::default(),
            connection: connection.clone(),
            color: false,
            hold: Hold::default(),
            screen: Screen::default(),
        };
        assert_eq!(plain.highlight_prompt("小明> ", true), "小明> ");
        connection.set_silent(true);
        assert_eq!(plain.highlight_prompt("小明> ", true), "小明! ");
        let colour = Assist {
            color: true,
            ..plain
        };
        assert_eq!(
            colour.highlight_prompt("bob> ", true),
            "\x1b[1;31mbob! \x1b[0m"
        );
        connection.set_silent(false);
        assert_eq!(colour.highlight_prompt("bob> ", true), "bob> ");
    }
}
