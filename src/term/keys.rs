//! Ctrl-N and Ctrl-P (Alt-Right and Alt-Left too): the keys that make the next or the previous room of `/rooms` the one typed lines go to, the line being typed kept as it is.
//!
//! (Alt-1 … Alt-9, as irssi has them, cannot be: rustyline takes Alt and a digit for a
//! numeric argument before any binding of its user.)

use std::sync::{Arc, Mutex};

use crate::term::editor::{Hold, Why};

use rustyline::{
    Cmd, ConditionalEventHandler, Event, EventContext, EventHandler, KeyCode, KeyEvent, Modifiers,
    RepeatCount,
};

/// The command a key asked for, and the line being typed then, with the cursor's byte offset.
type Asked = (&'static str, String, usize);

/// A switch asked for by one of the keys, and the line being typed then (its text and the
/// cursor's place), for the editor's loop to take.
#[derive(Debug, Clone, Default)]
pub(crate) struct Switch(Arc<Mutex<Option<Asked>>>);

impl Switch {
    /// Binds the keys in `editor` to ask for a switch: Ctrl-N and Alt-Right to the next room
    /// (`/next`), Ctrl-P and Alt-Left to the previous one (`/prev`).
    /// Lines wait (`hold`) from the key until the editor's loop has erased the line, as
    /// they do for a line accepted.
    pub(crate) fn bind<H: rustyline::Helper, I: rustyline::history::History>(
        &self,
        editor: &mut rustyline::Editor<H, I>,
        hold: &Hold,
    ) {
        let keys = [
            (KeyEvent::ctrl('N'), "/next"),
            (KeyEvent(KeyCode::Right, Modifiers::ALT), "/next"),
            (KeyEvent::ctrl('P'), "/prev"),
            (KeyEvent(KeyCode::Left, Modifiers::ALT), "/prev"),
        ];
        for (key, command) in keys {
            let handler = Key {
                command,
                switch: self.clone(),
                hold: hold.clone(),
            };
            editor.bind_sequence(key, EventHandler::Conditional(Box::new(handler)));
        }
    }

    /// The switch asked for since the last look, if any: the command that makes it, and the
    /// line as it was, with the cursor's byte offset in it.
    pub(crate) fn take(&self) -> Option<Asked> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// A key, and the command it asks for.
struct Key {
    command: &'static str,
    switch: Switch,
    hold: Hold,
}

impl ConditionalEventHandler for Key {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        let mut asked = (self.switch.0.lock()).unwrap_or_else(std::sync::PoisonError::into_inner);
        *asked = Some((self.command, ctx.line().to_owned(), ctx.pos()));
        self.hold.set(Why::Accepted, true);
        // The line ends as Ctrl-C ends it; the editor's loop sees the switch, makes it, and
        // gives the line back to the next prompt.
        Some(Cmd::Interrupt)
    }
}
