//! What a typed line does: a message sent to the room typed to, or a command carried out (rooms entered, left, listed and switched to, history and who asked for).

use std::time::Instant;

use crate::client::{Client, Event};
use crate::term::command::{self, Command};
use crate::term::editor::Target;
use crate::term::output::Output;
use crate::term::render::Renderer;
use crate::term::seen;
use crate::term::view::View;

/// Where typed lines go, and what the commands that change it need.
pub(super) struct Here<'a> {
    pub(super) view: &'a mut View,
    pub(super) target: &'a Target,
    /// Where the user left off in each room (the file, and the relay's name in it).
    pub(super) seen: Option<&'a (std::path::PathBuf, String)>,
    /// Messages of history to show on entering a room.
    pub(super) history: u16,
}

impl Here<'_> {
    /// Makes `room` the one typed lines go to, and says so (with what came there meanwhile).
    fn switch(&mut self, output: &mut Output, renderer: Renderer, room: &str) {
        let seen = self.view.switch(room);
        self.target.set(room);
        let what = match (seen.messages, seen.mentions) {
            (0, _) => String::new(),
            (n, 0) => format!(": {n} new since you were last here"),
            (n, m) => format!(": {n} new since you were last here, {m} mentioning you"),
        };
        let notice = Event::Notice(format!("typing to #{room}{what}"));
        output.line(renderer.line(&notice));
    }
}

/// Does what a line says; returns what to say on leaving when it is `/quit`.
pub(super) fn handle_line(
    client: &mut Client,
    output: &mut Output,
    here: &mut Here,
    renderer: Renderer,
    now: Instant,
    line: &str,
) -> Option<String> {
    let local = |output: &mut Output, event: Event| output.line(renderer.line(&event));
    let followed = |client: &Client, room: &str| client.rooms().iter().any(|r| r.name == room);
    let current = here.view.current().to_owned();
    match command::parse(line) {
        None => {}
        Some(Command::Say(_)) if current.is_empty() => local(
            output,
            Event::Error("you are in no room: /join one first".to_owned()),
        ),
        Some(Command::Say(text)) => {
            if let Err(e) = client.send_to(now, &current, &text) {
                local(output, Event::Error(e.to_string()));
            }
        }
        Some(Command::History(n)) if !client.request_history_in(now, &current, n) => local(
            output,
            Event::Error("you are in no room: /join one first".into()),
        ),
        Some(Command::History(_)) => {}
        Some(Command::Who(room)) => {
            let room = room.unwrap_or(current);
            if !client.request_who_in(now, &room) {
                local(
                    output,
                    Event::Error(format!("you are not in #{room}: /join it first")),
                );
            }
        }
        Some(Command::Join(room)) => {
            if followed(client, &room) {
                here.switch(output, renderer, &room);
            } else {
                let since = here
                    .seen
                    .and_then(|(path, relay)| seen::load(path, relay, &room));
                match client.enter(now, &room, here.history, since) {
                    Ok(()) => here.switch(output, renderer, &room),
                    Err(e) => local(output, Event::Error(e.to_string())),
                }
            }
        }
        Some(Command::Part(room, said)) => {
            let room = room.unwrap_or(current);
            if !client.part(now, &room, &said) {
                local(output, Event::Error(format!("you are not in #{room}")));
            }
        }
        Some(Command::Switch(room)) => {
            if followed(client, &room) {
                here.switch(output, renderer, &room);
            } else {
                local(
                    output,
                    Event::Error(format!("you are not in #{room}: /join #{room} to enter it")),
                );
            }
        }
        Some(Command::SwitchTo(n)) => match client.rooms().get(n - 1) {
            Some(r) => here.switch(output, renderer, &r.name.clone()),
            None => local(
                output,
                Event::Error(format!(
                    "you are in {} room(s): /rooms lists them",
                    client.rooms().len()
                )),
            ),
        },
        Some(Command::Rooms) => {
            let rooms = client.rooms();
            if rooms.is_empty() {
                local(
                    output,
                    Event::Notice("you are in no room: /join one".into()),
                );
            }
            for (k, r) in rooms.into_iter().enumerate() {
                let mut about = if r.entered {
                    format!("{}. #{} ({})", k + 1, r.name, r.members)
                } else {
                    format!("{}. #{} (entering)", k + 1, r.name)
                };
                if r.name == current {
                    about.push_str(", typing here");
                } else if let Some(a) = here.view.unseen().get(&r.name) {
                    about.push_str(&format!(", {} unseen", a.messages));
                    if a.mentions > 0 {
                        about.push_str(&format!(", {} mentioning you", a.mentions));
                    }
                }
                local(output, Event::Notice(about));
            }
        }
        Some(Command::Help) => {
            for l in command::HELP.lines() {
                local(output, Event::Notice(l.to_owned()));
            }
        }
        Some(Command::Quit(said)) => return Some(said.unwrap_or_default()),
        Some(Command::Invalid(hint)) => local(output, Event::Error(hint)),
    }
    None
}
