//! Where `urc join` prints what it shows: stdout, or above the line being typed through the
//! editor's printer, holding lines back while the editor needs the terminal to itself. In a
//! terminal, each line is cut into rows at its width as it is printed (see [`wrap`]).

use std::io::{self, Write};
use std::time::{Duration, Instant};

use rustyline::ExternalPrinter;

use crate::term::editor::Hold;
use crate::term::resize::Screen;
use crate::term::wrap::{self, Line};

/// Where event lines go.
/// Each row printed is noted in its `Screen`, for what a resize breaks.
pub(super) enum Output {
    /// Straight to stdout: cut into rows when `wrap` (a terminal, not JSON), else whole.
    Stdout { screen: Screen, wrap: bool },
    /// Above the line being typed; lines wait in `held` while `hold` is on (a line accepted,
    /// its rows not yet erased; a resize, not yet put right).
    Printer {
        printer: Box<dyn ExternalPrinter + Send>,
        hold: Hold,
        held: Vec<Line>,
        screen: Screen,
    },
    /// The editor is drawing its first prompt: lines wait until `at` (rustyline writes what
    /// comes before its terminal is set up straight out, over the prompt it is drawing).
    Starting {
        printer: Box<dyn ExternalPrinter + Send>,
        hold: Hold,
        at: Instant,
        held: Vec<Line>,
        screen: Screen,
    },
}

/// How long after the editor hands over its printer lines wait for its first prompt.
pub(super) const EDITOR_SETTLES: Duration = Duration::from_millis(100);

impl Output {
    /// Whether lines go above the editor's line (and so are drawn by its thread, some time
    /// after they are handed over).
    pub(super) fn is_editor(&self) -> bool {
        matches!(self, Output::Printer { .. } | Output::Starting { .. })
    }

    /// When held lines are due, if any are held.
    pub(super) fn due(&self) -> Option<Instant> {
        match self {
            Output::Starting { at, held, .. } if !held.is_empty() => Some(*at),
            // Until the hold is off, and a resize put right: soon.
            Output::Printer { held, .. } if !held.is_empty() => {
                Some(Instant::now() + Duration::from_millis(10))
            }
            _ => None,
        }
    }

    /// Prints the held lines once the editor has settled.
    pub(super) fn settle(&mut self, now: Instant) {
        if let Output::Starting { at, .. } = self
            && now >= *at
            && let Output::Starting {
                printer,
                hold,
                held,
                screen,
                ..
            } = std::mem::replace(
                self,
                Output::Stdout {
                    screen: Screen::default(),
                    wrap: false,
                },
            )
        {
            *self = Output::Printer {
                printer,
                hold,
                held,
                screen,
            };
            self.release();
        }
    }

    /// Prints the held lines once the hold is off, and no resize waits to be seen: printed
    /// before rustyline heard of it, a line would be drawn where the editor counts its line
    /// to be at the old width.
    pub(super) fn release(&mut self) {
        if let Output::Printer {
            printer,
            hold,
            held,
            screen,
        } = self
        {
            let mut printed = 0;
            for line in held.iter() {
                if screen.resizing()
                    || !hold.while_off(|| {
                        let rows = rows(line, true, screen);
                        let _ = printer.print(format!("{rows}\n"));
                    })
                {
                    break;
                }
                printed += 1;
            }
            held.drain(..printed);
        }
    }

    pub(super) fn line(&mut self, line: Line) {
        match self {
            Output::Starting { held, .. } => held.push(line),
            // A closed stdout (`urc join | head`) is no reason to stop chatting.
            Output::Stdout { screen, wrap } => {
                let rows = rows(&line, *wrap, screen);
                let mut out = io::stdout().lock();
                let _ = writeln!(out, "{rows}").and_then(|()| out.flush());
            }
            // With its newline: between two reads of a line rustyline writes the text as it
            // is, and the next prompt would write over a line without one.
            Output::Printer { held, .. } => {
                held.push(line);
                self.release();
            }
        }
    }
}

/// `line` as the rows it takes in the terminal now, when `wrap`, each noted in `screen`.
fn rows(line: &Line, wrap: bool, screen: &Screen) -> String {
    let rows = match columns() {
        Some(cols) if wrap => wrap::wrap(line, cols),
        _ => vec![line.whole()],
    };
    for row in &rows {
        screen.printed(row);
    }
    rows.join("\n")
}

/// The terminal's width, if stdout is one.
pub(super) fn columns() -> Option<usize> {
    let size = rustix::termios::tcgetwinsize(io::stdout()).ok()?;
    (size.ws_col > 0).then_some(usize::from(size.ws_col))
}
