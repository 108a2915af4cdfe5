//! Private conversations: the target `@name`, and the key under which the conversation of two names is one, stored and ordered like a room.
//!
//! A private conversation is between two names, each under its key ([`name_key`]): `alice`
//! and `ALICE` are one person (a name belongs to the key that first joined under it), so
//! `@Bob` and `@bob` are the same conversation, and `аlice` with a Cyrillic а is the one of
//! the name it looks like. The relay keeps it as a room whose key is [`dm_key`] of the two
//! names' keys: `@`, then the two keys in order, each [`escape`]d, joined by `+` (for
//! `alice` and `bob`: `@alice+bob`). No room's key begins with `@` (see
//! [`check_room`](crate::proto::room::check_room)), so the two never meet. Clients name a
//! private conversation by `@` and the other person's name ([`check_target`]).

use super::name::{NameError, check_name, name_key};
use super::room::{RoomError, check_room, room_key};

/// What a target begins with when it is a person, not a room.
pub const DM_MARK: char = '@';

/// True when `target` (a room's name, or `@` and a person's) names a private conversation.
pub fn is_dm(target: &str) -> bool {
    target.starts_with(DM_MARK)
}

/// A target as people read it: a room as `#ops`, a private conversation as `@bob`.
pub fn label(target: &str) -> String {
    if is_dm(target) {
        target.to_owned()
    } else {
        format!("#{target}")
    }
}

/// A target that cannot be entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// A room's name that breaks the rules.
    Room(RoomError),
    /// `@` and a name that breaks the rules.
    Name(NameError),
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetError::Room(e) => e.fmt(f),
            TargetError::Name(e) => write!(f, "not a name to write to: {e}"),
        }
    }
}

impl std::error::Error for TargetError {}

/// Checks a target: a room's name by the room rules, or `@` and a name by the name rules.
///
/// # Errors
/// The first rule it breaks.
pub fn check_target(target: &str) -> Result<(), TargetError> {
    match target.strip_prefix(DM_MARK) {
        Some(name) => check_name(name).map_err(TargetError::Name),
        None => check_room(target).map_err(TargetError::Room),
    }
}

/// The key of a target [`check_target`] took: a room's key, or `@` and the name's key.
pub fn target_key(target: &str) -> String {
    match target.strip_prefix(DM_MARK) {
        Some(name) => format!("{DM_MARK}{}", name_key(name)),
        None => room_key(target),
    }
}

/// The key of the private conversation of the names whose keys are `a` and `b`: the same
/// whichever comes first.
pub fn dm_key(a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    format!("{DM_MARK}{}+{}", escape(first), escape(second))
}

/// The two names' keys of the private conversation whose key is `key`, in order; `None` when
/// `key` is not one [`dm_key`] makes.
pub fn dm_parties(key: &str) -> Option<(String, String)> {
    let (a, b) = key.strip_prefix(DM_MARK)?.split_once('+')?;
    let (a, b) = (unescape(a)?, unescape(b)?);
    (a < b && dm_key(&a, &b) == key).then_some((a, b))
}

/// `key` with every byte but ASCII lower-case letters, digits, `-` and `_` written `%xx` (two
/// lower-case hex digits): no `+`, `/`, `.` or space is left, nor a capital that a
/// case-insensitive file system could take for another.
pub fn escape(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key.as_bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// The key [`escape`] wrote as `text`, if it is one.
fn unescape(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let [first, tail @ ..] = rest {
        if *first == b'%' {
            let [h, l, tail @ ..] = tail else {
                return None;
            };
            let hex = std::str::from_utf8(&[*h, *l]).ok()?.to_owned();
            bytes.push(u8::from_str_radix(&hex, 16).ok()?);
            rest = tail;
        } else {
            bytes.push(*first);
            rest = tail;
        }
    }
    let key = String::from_utf8(bytes).ok()?;
    (!key.is_empty() && escape(&key) == text).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conversation_of_two_is_one_whoever_writes_and_however_they_spell() {
        let ab = dm_key(&name_key("Alice"), &name_key("bob"));
        assert_eq!(ab, "@alice+bob");
        assert_eq!(dm_key(&name_key("BOB"), &name_key("alice")), ab);
        assert_eq!(target_key("@Bob"), "@bob");
        assert_eq!(target_key("Ops"), "ops");
        assert_ne!(dm_key("alice", "bob"), dm_key("alice", "carol"));
        assert_eq!(
            dm_parties(&ab),
            Some(("alice".to_owned(), "bob".to_owned()))
        );
    }

    #[test]
    fn any_name_gives_a_key_that_is_one_path_component_and_reads_back() {
        for (a, b) in [
            ("a+b", "c"),
            ("../x", "y/z"),
            ("王小明", "Zoë"),
            ("%41", "%"),
            ("a b", "C.D"),
        ] {
            let key = dm_key(&name_key(a), &name_key(b));
            let part = key.strip_prefix('@').unwrap();
            assert!(
                part.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_%+".contains(&c)),
                "{key}"
            );
            assert_eq!(part.matches('+').count(), 1, "{key}");
            let (x, y) = dm_parties(&key).unwrap();
            assert_eq!(dm_key(&x, &y), key);
        }
    }

    #[test]
    fn what_no_conversation_has_for_key_is_not_read_as_one() {
        for bad in [
            "lobby",
            "@alice",
            "@bob+alice",
            "@alice+alice",
            "@a%2+b",
            "@A+b",
            "@+b",
        ] {
            assert_eq!(dm_parties(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_target_is_a_room_or_at_and_a_name() {
        assert_eq!(check_target("ops"), Ok(()));
        assert_eq!(check_target("@王小明"), Ok(()));
        assert!(matches!(check_target("@"), Err(TargetError::Name(_))));
        assert!(matches!(check_target("@a b"), Err(TargetError::Name(_))));
        assert!(matches!(check_target("o p"), Err(TargetError::Room(_))));
        assert!(is_dm("@bob") && !is_dm("bob"));
    }
}
