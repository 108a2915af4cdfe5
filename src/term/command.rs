//! What a typed line means: chat text or one of the `/commands`.

use crate::proto::dm::DM_MARK;
use crate::proto::wire::MAX_HISTORY_REQUEST;
use crate::term::render::ACTION;

/// Messages of history `/history` asks for when no number is given.
pub const DEFAULT_HISTORY: u16 = 20;

/// One line of input, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Chat text to send.
    Say(String),
    /// `/history [N]`: show the last N messages.
    History(u16),
    /// `/who [#room]`: list a room (the current one without a name).
    Who(Option<String>),
    /// `/join #room`: enter a room (made on first use) and type to it.
    Join(String),
    /// `/part [#room] [message]`: leave a room (the current one without a name).
    Part(Option<String>, String),
    /// `/msg NAME text`: send text privately to NAME (the target `@NAME`), staying where
    /// typed lines go.
    Msg(String, String),
    /// `/query NAME`: type to NAME privately (the target `@NAME`) from now on.
    Query(String),
    /// `/rooms`: list the rooms you are in.
    Rooms,
    /// `/switch #room`: type to another of your rooms.
    Switch(String),
    /// `/switch N` or `/N`: type to the Nth of your rooms, as `/rooms` lists them (from 1).
    SwitchTo(usize),
    /// `/next` (1) or `/prev` (-1): type to the next or the previous of your rooms, as `/rooms`
    /// lists them, round from the last to the first (Ctrl-N and Ctrl-P).
    SwitchBy(isize),
    /// `/help`: list the commands.
    Help,
    /// `/quit [MESSAGE]`: leave the relay, telling the others MESSAGE with the leave.
    Quit(Option<String>),
    /// A line that is not valid: the explanation, for the user.
    Invalid(String),
}

/// The help text, one line a command.
pub const HELP: &str = "\
commands:
  /join #room    enter a room (made on first use) and type to it
  /part [#room] [text]  leave a room (this one without a name), saying text
  /msg NAME text send text to NAME alone (a private conversation, @NAME)
  /query NAME    type to NAME alone from now on (/switch back, /part @NAME to close it)
  /rooms         list your rooms and private conversations, with what you have not seen
  /switch #room  type to another of your rooms (or @NAME); /switch N or /N: the Nth of /rooms
  /next, /prev   type to the next or previous of /rooms (Ctrl-N, Ctrl-P; the line typed stays)
  /history [N]   show the last N messages of this room (default 20, at most 1000)
  /who [#room]   list who is in this room (or another of yours)
  /me text       say what you do: shows as * alice text
  /help          show this help
  /quit [text]   leave every room, saying text to the others (Ctrl-D too)
  //text         send text that starts with a slash
anything else is sent as a message";

/// Understands a line as typed (without its line ending). Blank lines mean nothing: `None`.
pub fn parse(line: &str) -> Option<Command> {
    if line.trim().is_empty() {
        return None;
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Some(Command::Say(line.to_owned()));
    };
    if rest.starts_with('/') {
        return Some(Command::Say(rest.to_owned()));
    }
    // Commands are case-insensitive, as in IRC clients: `/WHO` is `/who`.
    if let Some(action) = rest.get(..3).filter(|me| me.eq_ignore_ascii_case("me ")) {
        let action = &rest[action.len()..];
        if !action.trim().is_empty() {
            // Clients show a text that starts with "/me " as an action.
            return Some(Command::Say(format!("{ACTION}{action}")));
        }
    }
    let mut words = rest.split_whitespace();
    let typed = words.next().unwrap_or("");
    let name = typed.to_lowercase();
    let name = name.as_str();
    let args: Vec<&str> = words.collect();
    let command = match (name, args.as_slice()) {
        ("history", []) => Command::History(DEFAULT_HISTORY),
        ("history", [n]) => match n.parse::<u16>() {
            Ok(n @ 1..=MAX_HISTORY_REQUEST) => Command::History(n),
            _ => Command::Invalid(format!(
                "/history takes a number from 1 to {MAX_HISTORY_REQUEST}, not {n:?}"
            )),
        },
        ("who", []) => Command::Who(None),
        ("who", [room]) => match room_arg(room) {
            Ok(room) => Command::Who(Some(room)),
            Err(hint) => Command::Invalid(hint),
        },
        ("join" | "j", [room]) => match room_arg(room) {
            Ok(room) => Command::Join(room),
            Err(hint) => Command::Invalid(hint),
        },
        ("join" | "j", _) => Command::Invalid("usage: /join #room".into()),
        (n, []) if n.parse::<usize>().is_ok_and(|n| n >= 1) => {
            Command::SwitchTo(n.parse().expect("a number"))
        }
        ("switch" | "sw", [n]) if n.parse::<usize>().is_ok_and(|n| n >= 1) => {
            Command::SwitchTo(n.parse().expect("a number"))
        }
        ("switch" | "sw", [room]) => match room_arg(room) {
            Ok(room) => Command::Switch(room),
            Err(hint) => Command::Invalid(hint),
        },
        ("switch" | "sw", _) => Command::Invalid("usage: /switch #room".into()),
        ("rooms", []) => Command::Rooms,
        ("next", []) => Command::SwitchBy(1),
        ("prev", []) => Command::SwitchBy(-1),
        ("msg" | "m", [name, _, ..]) => match person_arg(name) {
            Ok(target) => {
                let rest = rest.trim_start()[typed.len()..].trim_start();
                Command::Msg(target, rest[name.len()..].trim().to_owned())
            }
            Err(hint) => Command::Invalid(hint),
        },
        ("msg" | "m", _) => Command::Invalid("usage: /msg NAME text".into()),
        ("query" | "q", [name]) => match person_arg(name) {
            Ok(target) => Command::Query(target),
            Err(hint) => Command::Invalid(hint),
        },
        ("query" | "q", _) => Command::Invalid("usage: /query NAME".into()),
        ("part", []) => Command::Part(None, String::new()),
        ("part", [first, ..]) => {
            // What follows the command (and the room, if it names one), inner spaces kept.
            let after = |word: &str| -> String {
                let rest = rest.trim_start()[typed.len()..].trim_start();
                rest[word.len()..].trim().to_owned()
            };
            if first.starts_with('#') || first.starts_with(DM_MARK) {
                match room_arg(first) {
                    Ok(room) => Command::Part(Some(room), after(first)),
                    Err(hint) => Command::Invalid(hint),
                }
            } else {
                Command::Part(None, after(""))
            }
        }
        ("help", []) => Command::Help,
        ("quit", []) => Command::Quit(None),
        // What follows the command as typed, inner spaces kept.
        ("quit", _) => Command::Quit(Some(rest.trim_start()[typed.len()..].trim().to_owned())),
        ("history", _) => Command::Invalid("usage: /history [N]".into()),
        ("who", _) => Command::Invalid("usage: /who [#room]".into()),
        ("help" | "rooms" | "next" | "prev", _) => {
            Command::Invalid(format!("/{name} takes no arguments"))
        }
        ("me", _) => Command::Invalid("usage: /me text (shows as * yourname text)".into()),
        _ => Command::Invalid(format!(
            "unknown command /{typed}: type /help for the commands, or //{typed} to send it as text"
        )),
    };
    Some(command)
}

/// A person named after a command: `bob` or `@bob`, checked, as the target `@bob`.
fn person_arg(word: &str) -> Result<String, String> {
    let name = word.strip_prefix(DM_MARK).unwrap_or(word);
    crate::proto::name::check_name(name)
        .map(|()| format!("{DM_MARK}{name}"))
        .map_err(|e| format!("not a name to write to: {e}"))
}

/// A room named after a command: `#ops` or `ops`, checked; or a person, `@bob`.
fn room_arg(word: &str) -> Result<String, String> {
    if word.starts_with(DM_MARK) {
        return person_arg(word);
    }
    let name = word.strip_prefix('#').unwrap_or(word);
    crate::proto::room::check_room(name)
        .map(|()| crate::proto::room::room_key(name))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_and_commands() {
        assert_eq!(parse("你好"), Some(Command::Say("你好".into())));
        assert_eq!(parse("  "), None);
        assert_eq!(parse("/history"), Some(Command::History(20)));
        assert_eq!(parse("/history 5"), Some(Command::History(5)));
        assert_eq!(parse("/who"), Some(Command::Who(None)));
        assert_eq!(parse("/who #Ops"), Some(Command::Who(Some("ops".into()))));
        assert_eq!(parse("/join #ops"), Some(Command::Join("ops".into())));
        assert_eq!(parse("/j lunch"), Some(Command::Join("lunch".into())));
        assert_eq!(parse("/switch #ops"), Some(Command::Switch("ops".into())));
        assert_eq!(parse("/rooms"), Some(Command::Rooms));
        assert_eq!(parse("/2"), Some(Command::SwitchTo(2)));
        assert_eq!(parse("/switch 3"), Some(Command::SwitchTo(3)));
        assert!(matches!(parse("/0"), Some(Command::Invalid(_))));
        assert_eq!(parse("/part"), Some(Command::Part(None, String::new())));
        assert_eq!(
            parse("/part #ops  see you  later "),
            Some(Command::Part(Some("ops".into()), "see you  later".into()))
        );
        assert_eq!(
            parse("/part gone home"),
            Some(Command::Part(None, "gone home".into()))
        );
        assert_eq!(
            parse("/msg Bob  hi  there "),
            Some(Command::Msg("@Bob".into(), "hi  there".into()))
        );
        assert_eq!(
            parse("/m @王小明 你好"),
            Some(Command::Msg("@王小明".into(), "你好".into()))
        );
        assert!(matches!(parse("/msg bob"), Some(Command::Invalid(_))));
        assert!(matches!(parse("/msg urc hi"), Some(Command::Invalid(_))));
        assert_eq!(parse("/query bob"), Some(Command::Query("@bob".into())));
        assert_eq!(parse("/switch @bob"), Some(Command::Switch("@bob".into())));
        assert_eq!(
            parse("/part @bob bye"),
            Some(Command::Part(Some("@bob".into()), "bye".into()))
        );
        assert_eq!(parse("/next"), Some(Command::SwitchBy(1)));
        assert_eq!(parse("/PREV"), Some(Command::SwitchBy(-1)));
        assert!(matches!(parse("/next 2"), Some(Command::Invalid(_))));
        assert_eq!(parse("/help"), Some(Command::Help));
        assert_eq!(parse("/quit"), Some(Command::Quit(None)));
        assert_eq!(
            parse("/quit  gone  home "),
            Some(Command::Quit(Some("gone  home".into())))
        );
        assert_eq!(parse("//shrug"), Some(Command::Say("/shrug".into())));
        assert_eq!(
            parse("/me waves 👋"),
            Some(Command::Say("/me waves 👋".into()))
        );
        assert!(matches!(parse("/me"), Some(Command::Invalid(_))));
        // Any case, as in IRC clients.
        assert_eq!(parse("/WHO"), Some(Command::Who(None)));
        assert_eq!(parse("/History 5"), Some(Command::History(5)));
        assert_eq!(parse("/Quit"), Some(Command::Quit(None)));
        assert_eq!(
            parse("/QUIT gone  home"),
            Some(Command::Quit(Some("gone  home".into())))
        );
        assert_eq!(parse("/ME waves"), Some(Command::Say("/me waves".into())));
        assert_eq!(
            parse("/mE  "),
            Some(Command::Invalid(
                "usage: /me text (shows as * yourname text)".into()
            ))
        );
        assert!(matches!(parse("/me  "), Some(Command::Invalid(_))));
    }

    #[test]
    fn mistakes_get_a_hint_and_are_never_chat() {
        for line in [
            "/histroy",
            "/history 0",
            "/history x",
            "/history 1 2",
            "/who me too",
            "/join",
            "/join #no!",
            "/join a b",
            "/switch",
            "/part #-x",
            "/rooms x",
            "/",
        ] {
            match parse(line) {
                Some(Command::Invalid(hint)) => assert!(!hint.is_empty()),
                other => panic!("{line:?} gave {other:?}"),
            }
        }
        let Some(Command::Invalid(hint)) = parse("/nick bob") else {
            panic!("an unknown command must be refused")
        };
        assert!(hint.contains("/help"), "{hint}");
    }
}
