//! Window resizes in terminals that rewrap their lines to the new width (tmux, VTE, kitty,
//! iTerm2, Windows Terminal, …): what rustyline's redraw then breaks, put right.
//!
//! On SIGWINCH rustyline clears the rows it counted the line being typed to take at the old
//! width and draws it again. A terminal that rewraps has moved the line meanwhile: wider, it
//! takes fewer rows, and rustyline's clearing erases that many rows of messages above it;
//! narrower, it takes more, and its first rows stay behind as a copy of the prompt. Terminals
//! that keep their rows as they were (xterm) need nothing. So the size is watched, and after
//! rustyline's redraw the difference is made good through the editor's printer: the rows left
//! behind are erased, the rows of messages erased are printed again.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | [`Screen`], what a resize needs to know of the screen; [`watch`], the thread that watches the size and sends the repair |
//! | `damage.rs` | what rustyline's redraws did to the rows above the line typed, and what puts it right |

mod damage;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustyline::ExternalPrinter;

use crate::term::editor::{Hold, Why};
use crate::term::resume::Reading;
use damage::Damage;

/// Lines remembered, newest last: enough to fill any screen's worth of erased rows.
const KEPT: usize = 200;
/// How often the window's size is looked at (rustyline keeps SIGWINCH to itself while it
/// reads a line).
const EVERY: Duration = Duration::from_millis(10);
/// How long rustyline is given to draw its line again after a resize.
const SETTLES: Duration = Duration::from_millis(50);

/// What the terminal shows, as far as a resize needs to know: the last lines printed and the
/// line being typed.
#[derive(Debug, Clone, Default)]
pub struct Screen(Arc<Mutex<Shown>>);

#[derive(Debug, Default)]
struct Shown {
    /// The last lines printed above the line being typed.
    lines: VecDeque<String>,
    /// The prompt.
    prompt: String,
    /// The line being typed, and the cursor's byte offset in it.
    typed: (String, usize),
}

impl Screen {
    /// Records a line printed.
    pub fn printed(&self, line: &str) {
        let mut shown = self.lock();
        if shown.lines.len() == KEPT {
            shown.lines.pop_front();
        }
        shown.lines.push_back(line.to_owned());
    }

    /// Records the prompt the editor shows.
    pub fn prompt(&self, prompt: &str) {
        self.lock().prompt = prompt.to_owned();
    }

    /// Records the line being typed as the editor draws it, the cursor at byte `pos`.
    pub fn typed(&self, line: &str, pos: usize) {
        let mut shown = self.lock();
        if shown.typed.0 != line || shown.typed.1 != pos {
            shown.typed = (line.to_owned(), pos);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shown> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// True when the terminal is one known to rewrap its lines on a resize.
pub fn terminal_rewraps() -> bool {
    const REWRAPPING: [&str; 8] = [
        "TMUX",
        "VTE_VERSION",
        "KITTY_WINDOW_ID",
        "WT_SESSION",
        "ALACRITTY_WINDOW_ID",
        "WEZTERM_PANE",
        "KONSOLE_VERSION",
        "ITERM_SESSION_ID",
    ];
    REWRAPPING.iter().any(|v| std::env::var_os(v).is_some())
}

/// Watches the window's size on a thread of its own, for as long as the process lives, and
/// puts right what rustyline's redraw broke after each change while a line is read.
pub fn watch(
    mut printer: Box<dyn ExternalPrinter + Send>,
    screen: Screen,
    reading: Reading,
    hold: Hold,
) {
    if !terminal_rewraps() {
        return;
    }
    std::thread::spawn(move || {
        let mut cols = columns();
        loop {
            std::thread::sleep(EVERY);
            let mut now = columns();
            if now == cols || now.is_none() {
                continue;
            }
            if cols.is_none() {
                // The first width known: nothing drawn at another to put right.
                cols = now;
                continue;
            }
            // Nothing prints until the repair: it counts on the rows it mends being next to
            // the line typed.
            hold.set(Why::Resized, true);
            // What was typed, as it was before rustyline's redraw (which leaves it as it is).
            let (prompt, before) = {
                let shown = screen.lock();
                let (line, pos) = &shown.typed;
                (
                    shown.prompt.clone(),
                    line.get(..*pos).unwrap_or(line).to_owned(),
                )
            };
            // Every width the window goes through until it rests (dragging its edge), each
            // redrawn by rustyline in turn.
            let mut damage = Damage::default();
            let mut quiet = Duration::ZERO;
            while quiet < SETTLES {
                if let (Some(old), Some(new)) = (cols, now)
                    && old != new
                {
                    damage.resized(&prompt, &before, old, new);
                    cols = now;
                    quiet = Duration::ZERO;
                }
                std::thread::sleep(EVERY);
                quiet += EVERY;
                now = columns();
            }
            if reading.is_on()
                && let Some(cols) = cols
            {
                let lines: Vec<String> = screen.lock().lines.iter().cloned().collect();
                if let Some(fix) = damage.repair(&lines, cols) {
                    let _ = printer.print(fix);
                }
            }
            hold.set(Why::Resized, false);
        }
    });
}

/// The terminal's width, if it is one.
fn columns() -> Option<usize> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (size.ws_col > 0).then_some(usize::from(size.ws_col))
}
