//! What things are called in NATS: a room's JetStream stream and the subject its messages are published on, made from the room's key and read back, and a person's name's entry in the bucket of names' owners.
//!
//! A room's key (`[a-z0-9_-]`, at most 32: `proto/room.rs`) is a valid stream name and
//! subject token as it is: the room `ops` is the stream `URC_ROOM_ops`, subject
//! `urc.room.ops`. A private conversation's key (`@` and two escaped names, any script) is
//! not, so it is written in hexadecimal, its UTF-8 after the `@`: `@alice+bob` is the stream
//! `URC_DM_616c6963652b626f62`, subject `urc.dm.616c6963652b626f62`.

use crate::proto::dm::{DM_MARK, dm_parties};
use crate::proto::room::check_room;

/// The start of every stream name urc makes, so that its streams are told from others.
pub const STREAM_PREFIX: &str = "URC_";
/// A room's stream: this, then the room's key.
const ROOM_STREAM: &str = "URC_ROOM_";
/// A private conversation's stream: this, then its key's hexadecimal.
const DM_STREAM: &str = "URC_DM_";

/// The key-value bucket of the names' owners: a name's entry is its key's hexadecimal (see
/// [`name_entry`]), its value the owner ([`crate::serve::nats`]'s `owners.rs`).
pub const NAMES_BUCKET: &str = "URC_NAMES";

/// The key-value bucket of who is in each room through which relay, and of each relay's
/// lease ([`crate::serve::nats`]'s `presence.rs`).
pub const PRESENCE_BUCKET: &str = "URC_PRESENCE";

/// The entry, in [`PRESENCE_BUCKET`], of the name whose key is `name_key` in the room
/// `room` (a room's key, which a bucket's key may hold as it is): `m.ops.616c696365`.
pub fn member_entry(room: &str, name_key: &str) -> String {
    format!("m.{room}.{}", hex(name_key))
}

/// The entry, in [`PRESENCE_BUCKET`], of the lease of the relay `relay`: `r.` and its id.
pub fn lease_entry(relay: uuid::Uuid) -> String {
    format!("r.{}", relay.simple())
}

/// The entry of the name whose key ([`crate::proto::name::name_key`]) is `name_key` in
/// [`NAMES_BUCKET`]: its UTF-8 in hexadecimal (a bucket's keys are ASCII).
pub fn name_entry(name_key: &str) -> String {
    hex(name_key)
}

/// A private conversation's stream whose key's hexadecimal would be longer than
/// [`MAX_HEX`]: this, then the BLAKE3 hash of the key (its key is in the stream's metadata,
/// under [`ROOM_METADATA`]).
pub const HASHED_DM_STREAM: &str = "URC_DMH_";
/// The stream's metadata entry that names its room's key.
pub const ROOM_METADATA: &str = "urc_room";
/// The longest hexadecimal of a key kept in a stream's name (NATS keeps a stream's name as
/// a directory's, at most 255 bytes).
const MAX_HEX: usize = 200;

/// The stream of the room (or private conversation) whose key is `room`.
pub fn stream_of(room: &str) -> String {
    match room.strip_prefix(DM_MARK) {
        Some(rest) if 2 * rest.len() > MAX_HEX => format!("{HASHED_DM_STREAM}{}", hashed(room)),
        Some(rest) => format!("{DM_STREAM}{}", hex(rest)),
        None => format!("{ROOM_STREAM}{room}"),
    }
}

/// The subject the messages of the room whose key is `room` are published on.
pub fn subject_of(room: &str) -> String {
    match room.strip_prefix(DM_MARK) {
        Some(rest) if 2 * rest.len() > MAX_HEX => format!("urc.dmh.{}", hashed(room)),
        Some(rest) => format!("urc.dm.{}", hex(rest)),
        None => format!("urc.room.{room}"),
    }
}

/// The key of the private conversation whose stream is the hashed `stream`, as its
/// metadata says `key` is: `None` unless `key` is one whose stream that is.
pub fn hashed_room_of(stream: &str, key: &str) -> Option<String> {
    (stream.starts_with(HASHED_DM_STREAM) && dm_parties(key).is_some() && stream_of(key) == stream)
        .then(|| key.to_owned())
}

fn hashed(key: &str) -> String {
    blake3::hash(key.as_bytes()).to_hex()[..32].to_owned()
}

/// The key of the room whose stream is `stream`; `None` for a stream that is not one
/// [`stream_of`] makes.
pub fn room_of(stream: &str) -> Option<String> {
    if let Some(room) = stream.strip_prefix(ROOM_STREAM) {
        let ok = check_room(room).is_ok() && room.bytes().all(|b| !b.is_ascii_uppercase());
        return ok.then(|| room.to_owned());
    }
    let bytes = unhex(stream.strip_prefix(DM_STREAM)?)?;
    let key = format!("{DM_MARK}{}", String::from_utf8(bytes).ok()?);
    dm_parties(&key).is_some().then_some(key)
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::dm::dm_key;

    #[test]
    fn a_room_is_its_key_and_a_conversation_its_hexadecimal() {
        assert_eq!(stream_of("ops"), "URC_ROOM_ops");
        assert_eq!(subject_of("ops"), "urc.room.ops");
        assert_eq!(stream_of("@alice+bob"), "URC_DM_616c6963652b626f62");
        assert_eq!(subject_of("@alice+bob"), "urc.dm.616c6963652b626f62");
    }

    #[test]
    fn names_read_back_to_their_rooms_and_nothing_else_does() {
        let dm = dm_key("小明", "alice");
        for room in ["lobby", "ops-2", "a_b", dm.as_str()] {
            assert_eq!(room_of(&stream_of(room)).as_deref(), Some(room), "{room}");
            let subject = subject_of(room);
            assert!(!subject.contains([' ', '*', '>']) && subject.split('.').count() == 3);
        }
        for other in [
            "URC_ROOM_",
            "URC_ROOM_Ops",
            "URC_ROOM_-x",
            "URC_DM_6",
            "URC_DM_zz",
            "URC_DM_616c696365",
            "KV_urc",
            "ORDERS",
        ] {
            assert_eq!(room_of(other), None, "{other}");
        }
    }

    #[test]
    fn a_long_conversation_is_a_hash_named_by_its_metadata() {
        let long = dm_key(&"长".repeat(32), &"名".repeat(32));
        let stream = stream_of(&long);
        assert!(
            stream.starts_with(HASHED_DM_STREAM) && stream.len() < 64,
            "{stream}"
        );
        assert!(subject_of(&long).starts_with("urc.dmh."));
        assert_eq!(room_of(&stream), None);
        assert_eq!(hashed_room_of(&stream, &long), Some(long.clone()));
        let other = dm_key(&"长".repeat(32), &"别".repeat(32));
        assert_eq!(
            hashed_room_of(&stream, &other),
            None,
            "metadata of another key"
        );
    }
}
