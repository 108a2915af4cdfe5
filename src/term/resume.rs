//! Back from a stop (Ctrl-Z, then `fg`): the editor gets its terminal back as it had it.
//!
//! rustyline stops the process itself for a Ctrl-Z it reads, and puts its terminal back on
//! the way out. Stopped otherwise (`kill -TSTP`, a Ctrl-Z while no line was being read), the
//! process comes back to a terminal that its shell set to its own line mode: keys would echo
//! as typed and the line would not be redrawn. So on every SIGCONT, while a line is being read,
//! the terminal is set to the editor's mode again and the line is redrawn.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::termios::{
    self, ControlFlags, InputFlags, LocalFlags, SetArg, SpecialCharacterIndices,
};
use rustyline::ExternalPrinter;
use smol::stream::StreamExt as _;

/// Whether the editor is reading a line (and so wants its terminal in its own mode).
#[derive(Debug, Clone, Default)]
pub struct Reading(Arc<AtomicBool>);

impl Reading {
    /// Records that the editor reads a line (`true`) or not (`false`).
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::SeqCst);
    }

    /// True while the editor reads a line.
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How long after a SIGCONT the editor is left to put its terminal back itself (after a
/// Ctrl-Z it read).
const SETTLES: Duration = Duration::from_millis(50);

/// Printed through the editor's printer, which first clears the line being typed and then
/// draws it again after what it printed, plus a newline: up one row, so that the line is
/// drawn again where it was.
const REDRAW: &str = "\x1b[A";

/// Watches for SIGCONT on a thread of its own, for as long as the process lives.
pub fn watch(mut printer: Box<dyn ExternalPrinter + Send>, reading: Reading) {
    std::thread::spawn(move || {
        let Ok(mut signals) = async_signal::Signals::new([async_signal::Signal::Cont]) else {
            return;
        };
        while smol::block_on(signals.next()).is_some() {
            std::thread::sleep(SETTLES);
            if reading.is_on() {
                editor_mode();
                let _ = printer.print(REDRAW.to_owned());
            }
        }
    });
}

/// Sets the terminal to the mode rustyline reads a line in, unless it is in it: no echo, no
/// line mode, no signals from keys, carriage returns as they come, one byte at a time.
fn editor_mode() {
    let stdin = std::io::stdin();
    let Ok(mut mode) = termios::tcgetattr(&stdin) else {
        return;
    };
    if !mode.local_flags.contains(LocalFlags::ICANON) {
        return;
    }
    mode.input_flags &= !(InputFlags::BRKINT
        | InputFlags::ICRNL
        | InputFlags::INPCK
        | InputFlags::ISTRIP
        | InputFlags::IXON);
    mode.control_flags |= ControlFlags::CS8;
    mode.local_flags &=
        !(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::IEXTEN | LocalFlags::ISIG);
    mode.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    mode.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    // Nothing to do if it fails: the terminal is gone or not ours.
    let _ = termios::tcsetattr(&stdin, SetArg::TCSADRAIN, &mode);
}
