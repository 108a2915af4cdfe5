//! Room names: what a room may be called, and when two names are the same room.
//!
//! A room's name is 1 to [`MAX_ROOM_CHARS`] ASCII letters, digits, `-` and `_`, the first a
//! letter or a digit (so that no name reads as an option on a command line); names that
//! differ only in case are one room, under its key ([`room_key`], the name in lower case),
//! which is also the name of its directory under `<data>/rooms/`. ASCII only: a room's name is
//! typed after `/join` by everyone who enters it, and lands on disk, so it has no look-alikes
//! and no spelling a file system or a shell could take differently. The terminal client
//! shows a room as `#name`; the `#` is not part of the name.

use std::fmt;

/// The room a client enters unless it asks for others, and the one a one-room log becomes.
pub const DEFAULT_ROOM: &str = "lobby";
/// Most characters a room's name may have.
pub const MAX_ROOM_CHARS: usize = 32;

/// Why a room's name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomError {
    /// It has no character.
    Empty,
    /// It has more than [`MAX_ROOM_CHARS`] characters.
    TooLong(usize),
    /// It has this character, which is not an ASCII letter, digit, `-` or `_`.
    Char(char),
    /// It begins with this character, `-` or `_`, not a letter or a digit.
    First(char),
}

impl fmt::Display for RoomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule =
            "a room's name is 1 to 32 ASCII letters, digits, - or _, the first a letter or a digit";
        match self {
            RoomError::Empty => write!(f, "the room has no name: {rule}"),
            RoomError::TooLong(n) => write!(f, "the room's name has {n} characters: {rule}"),
            RoomError::Char(c) if c.is_ascii_graphic() || *c == ' ' => {
                write!(f, "the room's name has {c:?}: {rule}")
            }
            RoomError::Char(c) => {
                write!(f, "the room's name has U+{:04X}: {rule}", u32::from(*c))
            }
            RoomError::First(c) => write!(f, "the room's name begins with {c:?}: {rule}"),
        }
    }
}

impl std::error::Error for RoomError {}

/// Checks `name` against the rules of room names.
///
/// # Errors
/// The first rule it breaks.
pub fn check_room(name: &str) -> Result<(), RoomError> {
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(RoomError::Char(c));
    }
    if let Some(c) = name.chars().next().filter(|c| !c.is_ascii_alphanumeric()) {
        return Err(RoomError::First(c));
    }
    match name.len() {
        0 => Err(RoomError::Empty),
        n if n > MAX_ROOM_CHARS => Err(RoomError::TooLong(n)),
        _ => Ok(()),
    }
}

/// The key under which `name` is one room with the names that differ from it only in case:
/// its lower case. Only for a name [`check_room`] took.
pub fn room_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_letters_digits_dashes_and_underscores_up_to_32_are_rooms() {
        for ok in ["lobby", "a", "Ops-2026", "lunch_time", &"x".repeat(32), "9"] {
            assert_eq!(check_room(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_room(DEFAULT_ROOM), Ok(()));
    }

    #[test]
    fn anything_else_is_refused_saying_what_is_wrong() {
        assert_eq!(check_room(""), Err(RoomError::Empty));
        assert_eq!(check_room(&"x".repeat(33)), Err(RoomError::TooLong(33)));
        assert_eq!(check_room("#ops"), Err(RoomError::Char('#')));
        assert_eq!(check_room("my room"), Err(RoomError::Char(' ')));
        assert_eq!(check_room("闲聊"), Err(RoomError::Char('闲')));
        assert_eq!(check_room("ops\u{200b}"), Err(RoomError::Char('\u{200b}')));
        assert_eq!(check_room("../etc"), Err(RoomError::Char('.')));
        assert_eq!(check_room("-rf"), Err(RoomError::First('-')));
        assert_eq!(check_room("_x"), Err(RoomError::First('_')));
        let said = check_room("ops\u{200b}").unwrap_err().to_string();
        assert_eq!(
            said,
            "the room's name has U+200B: a room's name is 1 to 32 ASCII letters, digits, - or _, the first a letter or a digit"
        );
        assert!(check_room("a/b").unwrap_err().to_string().contains("'/'"));
    }

    #[test]
    fn names_differing_in_case_are_one_room() {
        assert_eq!(room_key("Ops"), room_key("OPS"));
        assert_eq!(room_key("Ops"), "ops");
        assert_ne!(room_key("ops"), room_key("ops-"));
    }
}
