//! The terminal editor's helper: Tab completion, a prompt that shows when the relay is not
//! answering (`alice! ` in red instead of `alice> `), and the hold on printing while a line
//! is accepted.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

use crate::term::complete::Names;

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
/// printed then would be where the erasing counts the typed line to be).
#[derive(Debug, Clone, Default)]
pub struct Hold(Arc<AtomicBool>);

impl Hold {
    /// Holds lines back (`true`) or lets them print (`false`).
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::SeqCst);
    }

    /// True while lines wait.
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::SeqCst)
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
        self.hold.set(true);
        Ok(ValidationResult::Valid(None))
    }
}

impl Helper for Assist {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_shows_a_silent_relay_at_the_same_width() {
        let connection = Connection::default();
        let plain = Assist {
            names: Names::default(),
            connection: connection.clone(),
            color: false,
            hold: Hold::default(),
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
