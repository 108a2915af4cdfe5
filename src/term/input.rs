//! The user's side of `urc join`: lines from a pipe's stdin or from rustyline's editor, each read on a thread of its own and sent to the session's loop.

use std::io::{self, BufRead, Write};

use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Editor, ExternalPrinter};

use crate::term::command::{self, Command};
use crate::term::editor::{Assist, Why};
use crate::term::{echo, resize, resume};

/// Input from the user's side.
pub(crate) enum Input {
    /// A line typed or read: a message or a command.
    Line(String),
    /// Input ended (Ctrl-D, end of the pipe, a terminal that failed).
    End,
    /// A printer that prints above the line being typed.
    Printer(Box<dyn ExternalPrinter + Send>),
}

/// Reads stdin line by line on a thread of its own (stdin has no async interface).
pub(crate) fn spawn_stdin_reader(tx: async_channel::Sender<Input>) {
    std::thread::spawn(move || {
        let stdin = io::stdin();
        let mut reader = stdin.lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).to_owned();
                    if tx.send_blocking(Input::Line(line)).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send_blocking(Input::End);
    });
}

/// How long the prompt waits for the session to handle a line (which may change the room it
/// shows) before it is drawn anyway.
const TARGET_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

/// Runs rustyline on a thread of its own; it stops after `/quit` or Ctrl-D so the terminal is
/// given back in its normal mode (Ctrl-C only clears the line).
pub(crate) fn spawn_editor(tx: async_channel::Sender<Input>, name: String, assist: Assist) {
    let target = assist.target.clone();
    std::thread::spawn(move || {
        // rustyline skips the helper's highlighting under NO_COLOR; the helper draws the
        // connection into the prompt and honours NO_COLOR itself, so it is always asked.
        // Without bracketed paste a paste of lines comes as lines typed, each accepted and
        // erased in turn: one drawn whole would be taller than the screen, and the rows that
        // scroll away cannot be erased.
        let config = rustyline::Config::builder()
            .color_mode(rustyline::ColorMode::Forced)
            .bracketed_paste(false)
            .build();
        let hold = assist.hold.clone();
        let assist_screen = assist.screen.clone();
        let mut editor = match Editor::<Assist, DefaultHistory>::with_config(config) {
            Ok(mut e) => {
                e.set_helper(Some(assist));
                e
            }
            Err(e) => {
                eprintln!("urc: cannot use the terminal ({e}): reading plain lines instead");
                return spawn_stdin_reader(tx);
            }
        };
        if let Ok(printer) = editor.create_external_printer() {
            let _ = tx.send_blocking(Input::Printer(Box::new(printer)));
        }
        let reading = resume::Reading::default();
        if let Ok(printer) = editor.create_external_printer() {
            resume::watch(Box::new(printer), reading.clone());
        }
        let switch = crate::term::keys::Switch::default();
        switch.bind(&mut editor, &hold);
        // The line being typed when a key switched rooms, given back to the next prompt.
        let mut kept: Option<(String, usize)> = None;
        let screen = assist_screen;
        if let Ok(printer) = editor.create_external_printer() {
            resize::watch(
                Box::new(printer),
                screen.clone(),
                reading.clone(),
                hold.clone(),
            );
        }
        // Lines sent so far: a command may change the room, and the prompt waits for it.
        let mut sent = 0u64;
        loop {
            let room = target.after(sent, TARGET_WAIT);
            let prompt = crate::term::editor::prompt(&name, &room);
            screen.prompt(&prompt);
            reading.set(true);
            let read = match kept.take() {
                Some((text, pos)) => {
                    let pos = if text.is_char_boundary(pos) {
                        pos
                    } else {
                        text.len()
                    };
                    editor.readline_with_initial(&prompt, (&text[..pos], &text[pos..]))
                }
                None => editor.readline(&prompt),
            };
            reading.set(false);
            match read {
                // A paste of several lines arrives as one (bracketed paste): each of its lines
                // is a message or a command of its own, as if typed one by one.
                Ok(text) => {
                    // The typed line shows once: as the message, when the relay stored it.
                    erase_typed(&mut editor, &prompt, &text);
                    hold.set(Why::Accepted, false);
                    for line in text.split(['\n', '\r']) {
                        if !line.trim().is_empty() {
                            let _ = editor.add_history_entry(line);
                        }
                        let quit = matches!(command::parse(line), Some(Command::Quit(_)));
                        if tx.send_blocking(Input::Line(line.to_owned())).is_err() || quit {
                            return;
                        }
                        sent += 1;
                    }
                }
                // Ctrl-C drops the line being typed, as in readline; it never quits. Ctrl-N
                // and Ctrl-P end it the same way, to switch rooms: the line is erased, the
                // switch made (as `/next` or `/prev`), and the line given back under the new
                // room's prompt.
                Err(ReadlineError::Interrupted) => {
                    if let Some((command, text, pos)) = switch.take() {
                        erase_typed(&mut editor, &prompt, &text);
                        hold.set(Why::Accepted, false);
                        if tx.send_blocking(Input::Line(command.to_owned())).is_err() {
                            return;
                        }
                        sent += 1;
                        kept = Some((text, pos));
                    }
                }
                // Ctrl-D on an empty line, or a terminal that fails: input ends.
                Err(_) => {
                    let _ = tx.send_blocking(Input::End);
                    return;
                }
            }
        }
    });
}

/// Erases the rows that `prompt` and `text` took on the screen (the editor has moved past
/// them): a line accepted shows once, as the message; one carried to the next prompt, there.
fn erase_typed(editor: &mut Editor<Assist, DefaultHistory>, prompt: &str, text: &str) {
    let cols = editor.dimensions().map_or(80, |(cols, _)| cols);
    let rows = echo::rows_taken(prompt, text, usize::from(cols));
    let mut out = io::stdout().lock();
    let _ = out
        .write_all(echo::erase(rows).as_bytes())
        .and_then(|()| out.flush());
}
