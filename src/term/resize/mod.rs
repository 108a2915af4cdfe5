//! Window resizes in terminals that rewrap their lines to the new width (tmux, VTE, kitty,
//! iTerm2, Windows Terminal, …): what rustyline's redraw then breaks, put right.
//!
//! On SIGWINCH rustyline clears the rows it counted the line being typed to take at the old
//! width and draws it again. A terminal that rewraps has moved the line meanwhile: wider, it
//! takes fewer rows, and rustyline's clearing erases that many rows of messages above it;
//! narrower, it takes more, and its first rows stay behind as a copy of the prompt. Terminals
//! that keep their rows as they were (xterm) need nothing. So the size is watched, and after
//! rustyline's redraw the difference is made good through the editor's printer: the rows left
//! behind are erased, the rows of messages erased are printed again. The repair waits for that
//! redraw, which the editor's helper tells of: made after it, the redraw would break it again.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | [`Screen`], what a resize needs to know of the screen; [`watch`], the thread that watches the size and sends the repair |
//! | `damage.rs` | what rustyline's redraws did to the rows above the line typed, and what puts it right |
//! | `redraw.rs` | when the repair may go: the window at rest, rustyline's redraw at the new width made |

mod damage;
mod redraw;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustyline::ExternalPrinter;

use crate::term::editor::{Hold, Why};
use crate::term::output::columns;
use crate::term::resume::Reading;
use redraw::{Redraws, Resizing};

/// Lines remembered, newest last: enough to fill any screen's worth of erased rows.
const KEPT: usize = 200;
/// How often the window's size is looked at (rustyline keeps SIGWINCH to itself while it
/// reads a line).
const EVERY: Duration = Duration::from_millis(10);

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
    /// The editor's draws that left the line being typed as it was.
    redraws: Redraws,
    /// The width the watch last saw the window rest at (none without a watch).
    rests_at: Option<usize>,
}

impl Screen {
    /// Records a line printed: in a terminal, a row of a line the client cut (see
    /// [`crate::term::wrap`]), which a terminal that rewraps cuts again when it gets narrower.
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

    /// Records that the editor draws the line being typed, the cursor at byte `pos`, in the
    /// terminal as wide as it is now.
    pub fn drawn(&self, line: &str, pos: usize) {
        self.draw(line, pos, columns());
    }

    /// The same, the terminal `cols` wide: a draw of the line and the cursor as they were is
    /// a redraw (as after a resize), any other is of a change.
    fn draw(&self, line: &str, pos: usize, cols: Option<usize>) {
        let mut shown = self.lock();
        if shown.typed.0 == line && shown.typed.1 == pos {
            shown.redraws = Redraws {
                count: shown.redraws.count + 1,
                cols,
            };
        } else {
            shown.typed = (line.to_owned(), pos);
        }
    }

    /// The editor's redraws so far.
    fn redraws(&self) -> Redraws {
        self.lock().redraws
    }

    /// True while the window is not as wide as the watch last saw it rest: a resize it has
    /// not seen yet, or not put right.
    pub fn resizing(&self) -> bool {
        let rests_at = self.lock().rests_at;
        rests_at.is_some_and(|cols| columns().is_some_and(|now| now != cols))
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
    // Looked at before the editor draws: the thread may be slow to start on a loaded machine.
    // The redraws counted before the last look that saw the width as it is: any after the
    // width is seen to change may be rustyline's at the new one.
    let mut counted = screen.redraws().count;
    let mut cols = columns();
    screen.lock().rests_at = cols;
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(EVERY);
            let before_look = screen.redraws().count;
            let now = columns();
            let (Some(old), Some(new)) = (cols, now) else {
                // The first width known: nothing drawn at another to put right.
                cols = cols.or(now);
                screen.lock().rests_at = cols;
                counted = before_look;
                continue;
            };
            if new == old {
                counted = before_look;
                continue;
            }
            // Nothing prints until the repair: it counts on the rows it mends being next to
            // the line typed.
            hold.set(Why::Resized, true);
            // What was typed, as it was before rustyline's redraw (which leaves it as it is).
            let mut resizing = {
                let shown = screen.lock();
                let (line, pos) = &shown.typed;
                Resizing::new(&shown.prompt, (line, *pos), old, counted, Instant::now())
            };
            resizing.seen(new, Instant::now());
            while reading.is_on() && !resizing.due(screen.redraws(), Instant::now()) {
                std::thread::sleep(EVERY);
                counted = screen.redraws().count;
                if let Some(now) = columns() {
                    resizing.seen(now, Instant::now());
                }
            }
            cols = Some(resizing.cols());
            if reading.is_on() {
                let lines: Vec<String> = screen.lock().lines.iter().cloned().collect();
                if let Some(fix) = resizing.damage().repair(&lines, resizing.cols()) {
                    let _ = printer.print(fix);
                }
            }
            screen.lock().rests_at = cols;
            hold.set(Why::Resized, false);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draw_of_the_line_as_it_was_is_a_redraw() {
        let screen = Screen::default();
        screen.draw("hel", 3, Some(100));
        screen.draw("hell", 4, Some(100));
        assert_eq!(screen.redraws(), Redraws::default(), "keys typed");
        assert_eq!(screen.lock().typed, ("hell".to_owned(), 4));
        screen.draw("hell", 4, Some(60));
        assert_eq!(
            screen.redraws(),
            Redraws {
                count: 1,
                cols: Some(60)
            }
        );
        screen.draw("hell", 2, Some(60));
        screen.draw("hell", 2, Some(130));
        assert_eq!(
            screen.redraws(),
            Redraws {
                count: 2,
                cols: Some(130)
            },
            "the cursor moved, then a redraw"
        );
    }
}
