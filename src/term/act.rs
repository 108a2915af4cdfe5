//! What a typed line does: a message sent to the room typed to, or a command carried out (rooms entered, left, listed and switched to, history and who asked for).

use std::time::Instant;

use crate::client::{Client, Event};
use crate::proto::dm::{is_dm, label};
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
    /// The room or private conversation `target` as the client follows it (its name as
    /// shown), entered now if it was not (with what came since the user was last there).
    fn follow(&self, client: &mut Client, now: Instant, target: &str) -> Result<String, String> {
        if let Some(name) = client.followed(target) {
            return Ok(name);
        }
        let since = (self.seen).and_then(|(path, relay)| seen::load(path, relay, target));
        client
            .enter(now, target, self.history, since)
            .map_err(|e| e.to_string())?;
        Ok(client.followed(target).unwrap_or_else(|| target.to_owned()))
    }

    /// Makes `room` the one typed lines go to, and says so (with what came there meanwhile).
    fn switch(&mut self, output: &mut Output, renderer: Renderer, room: &str) {
        let seen = self.view.switch(room);
        self.target.set(room);
        let what = match (seen.messages, seen.mentions) {
            (0, _) => String::new(),
            (n, 0) => format!(": {n} new since you were last here"),
            (n, m) => format!(": {n} new since you were last here, {m} mentioning you"),
        };
        let notice = Event::Notice(format!("typing to {}{what}", label(room)));
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
                    Event::Error(format!("you are not in {}: /join it first", label(&room))),
                );
            }
        }
        Some(Command::Join(room) | Command::Query(room)) => match here.follow(client, now, &room) {
            Ok(name) => here.switch(output, renderer, &name),
            Err(e) => local(output, Event::Error(e)),
        },
        Some(Command::Msg(person, text)) => {
            let sent = (here.follow(client, now, &person))
                .and_then(|name| client.send_to(now, &name, &text).map_err(|e| e.to_string()));
            if let Err(e) = sent {
                local(output, Event::Error(e));
            }
        }
        Some(Command::Part(room, said)) => {
            let room = room.unwrap_or(current);
            if !client.part(now, &room, &said) {
                local(
                    output,
                    Event::Error(format!("you are not in {}", label(&room))),
                );
            }
        }
        Some(Command::Switch(room)) => {
            if let Some(name) = client.followed(&room) {
                here.switch(output, renderer, &name);
            } else {
                local(
                    output,
                    Event::Error(format!(
                        "you are not in {0}: /join {0} to enter it",
                        label(&room)
                    )),
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
        Some(Command::SwitchBy(step)) => {
            let rooms = client.rooms();
            if rooms.is_empty() {
                local(
                    output,
                    Event::Error("you are in no room: /join one first".into()),
                );
            } else {
                let at = (rooms.iter()).position(|r| r.name == current);
                let n = rooms.len() as isize;
                let next = at.map_or(0, |i| (i as isize + step).rem_euclid(n) as usize);
                here.switch(output, renderer, &rooms[next].name.clone());
            }
        }
        Some(Command::Rooms) => {
            let rooms = client.rooms();
            if rooms.is_empty() {
                local(
                    output,
                    Event::Notice("you are in no room: /join one".into()),
                );
            }
            for (k, r) in rooms.into_iter().enumerate() {
                let mut about = if is_dm(&r.name) {
                    let entering = if r.entered { "" } else { " (entering)" };
                    format!("{}. {}{entering}", k + 1, r.name)
                } else if r.entered {
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
