//! What a typed line means: chat text or one of the `/commands`.

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
    /// `/who`: list the room.
    Who,
    /// `/help`: list the commands.
    Help,
    /// `/quit [MESSAGE]`: leave the room, telling the others MESSAGE with the leave.
    Quit(Option<String>),
    /// A line that is not valid: the explanation, for the user.
    Invalid(String),
}

/// The help text, one line a command.
pub const HELP: &str = "\
commands:
  /history [N]   show the last N messages (default 20, at most 1000)
  /who           list who is in the room
  /me text       say what you do: shows as * alice text
  /help          show this help
  /quit [text]   leave the room, saying text to the others (Ctrl-D too)
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
        ("who", []) => Command::Who,
        ("help", []) => Command::Help,
        ("quit", []) => Command::Quit(None),
        // What follows the command as typed, inner spaces kept.
        ("quit", _) => Command::Quit(Some(rest.trim_start()[typed.len()..].trim().to_owned())),
        ("history", _) => Command::Invalid("usage: /history [N]".into()),
        ("who" | "help", _) => Command::Invalid(format!("/{name} takes no arguments")),
        ("me", _) => Command::Invalid("usage: /me text (shows as * yourname text)".into()),
        _ => Command::Invalid(format!(
            "unknown command /{typed}: type /help for the commands, or //{typed} to send it as text"
        )),
    };
    Some(command)
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
        assert_eq!(parse("/who"), Some(Command::Who));
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
        assert_eq!(parse("/WHO"), Some(Command::Who));
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
            "/who me",
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
