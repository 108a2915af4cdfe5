//! Names at the relay, datagram by datagram (the shell is `hostile/driver.rs`): a name that
//! looks like one in the room is taken, the relay's own name and invisible characters are bad
//! names, the key costs a JOIN its allowance only once the cheap rules pass, and WHO answers in
//! the order of the keys.

#[path = "hostile/driver.rs"]
mod driver;

use std::net::SocketAddr;
use std::time::Duration;

use driver::{Driver, Joined};
use urc::proto::wire::{ErrorCode, Packet};
use urc::relay::Config;

/// An address of its own for the `k`th client (one IP each: no per-IP limit in the way).
fn addr(k: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, k], 4000))
}

fn refused(joined: &Joined) -> Option<(ErrorCode, &str)> {
    match joined {
        Joined::Refused(code, message) => Some((*code, message.as_str())),
        Joined::Welcome(_) => None,
    }
}

/// The look-alikes of the review, while alice is in: taken, and the refusal names both names;
/// the same name by another client is in use; names that only resemble hers get in.
#[test]
fn a_look_alike_of_a_name_in_the_room_is_taken() {
    let mut d = Driver::new(Config::default());
    d.member(addr(1), "alice");
    let look_alikes = [
        "\u{0430}lice", // Cyrillic а
        "alic\u{0435}", // Cyrillic е
        "\u{03B1}lice", // Greek α
        "ALICE",
        "Alice",
        "ａｌｉｃｅ",
        "𝐚𝐥𝐢𝐜𝐞",
        "a1ice",
    ];
    for (k, name) in (10..).zip(look_alikes) {
        let joined = d.join(addr(k), name);
        let (code, message) = refused(&joined).unwrap_or_else(|| panic!("{name} got in"));
        assert_eq!(code, ErrorCode::NameTaken, "{name}: {message}");
        assert_eq!(
            message,
            format!("the name {name} looks like alice, a name in use: choose another with --name")
        );
    }
    let joined = d.join(addr(2), "alice");
    assert_eq!(
        refused(&joined),
        Some((
            ErrorCode::NameTaken,
            "the name alice is in use: choose another with --name"
        ))
    );
    // Not look-alikes by the confusable data: in.
    for (k, name) in (30..).zip(["al1ce", "aIice", "alice\u{0301}", "malice"]) {
        assert!(refused(&d.join(addr(k), name)).is_none(), "{name}");
    }
    assert_eq!(d.relay.clients().len(), 5);
    // The first of two look-alikes holds the key: the second is taken.
    d.member(addr(40), "rnary");
    let joined = d.join(addr(41), "mary");
    assert_eq!(refused(&joined).map(|(c, _)| c), Some(ErrorCode::NameTaken));
}

/// Invisible characters, blanks and the relay's own name are bad names, said with the
/// character as U+XXXX; none of them is in the room after.
#[test]
fn invisible_characters_and_the_relays_own_name_are_bad_names() {
    let mut d = Driver::new(Config::default());
    d.member(addr(1), "alice");
    let bad = [
        ("alice\u{200D}", "U+200D, an invisible or format character"),
        ("alice\u{FE0F}", "U+FE0F, an invisible or format character"),
        ("\u{2800}alice", "U+2800, a character that draws nothing"),
        ("ali\u{00AD}ce", "U+00AD, an invisible or format character"),
        ("alice\u{200B}", "U+200B, an invisible or format character"),
        ("\u{202E}ecila", "U+202E, an invisible or format character"),
        ("\u{3164}", "U+3164, an invisible or format character"),
        ("\u{0301}bob", "starts with U+0301, a combining mark"),
        ("bob\u{E000}", "U+E000, a private-use character"),
    ];
    for (k, (name, says)) in (10..).zip(bad) {
        let joined = d.join(addr(k), name);
        let (code, message) = refused(&joined).unwrap_or_else(|| panic!("{name:?} got in"));
        assert_eq!(code, ErrorCode::BadName, "{name:?}: {message}");
        assert!(message.contains(says), "{name:?}: {message}");
    }
    for (k, name) in (30..).zip(["urc", "URC", "ur\u{0441}", "ｕｒｃ"]) {
        let joined = d.join(addr(k), name);
        assert_eq!(
            refused(&joined),
            Some((
                ErrorCode::BadName,
                "the name looks like urc, the relay's own name: choose another"
            )),
            "{name}"
        );
    }
    assert_eq!(d.relay.clients().len(), 1);
    assert_eq!(d.relay.stats().joins_refused, 13);
}

/// Characters are checked before the join allowance, and cost nothing of it; the key after,
/// so that a JOIN whose key must be made takes from the allowance first.
#[test]
fn only_a_join_within_the_allowance_has_its_key_made() {
    let config = Config {
        max_per_ip: 2,
        ..Config::default()
    };
    let mut d = Driver::new(config);
    let from = |port: u16| SocketAddr::from(([198, 51, 100, 1], port));
    for port in 1..=10 {
        let joined = d.join(from(port), "bad\u{200D}name");
        assert_eq!(refused(&joined).map(|(c, _)| c), Some(ErrorCode::BadName));
    }
    // The burst is max_per_ip: two keys made, then the IP waits.
    for port in 11..=12 {
        let joined = d.join(from(port), "URC");
        assert_eq!(refused(&joined).map(|(c, _)| c), Some(ErrorCode::BadName));
    }
    let joined = d.join(from(13), "URC");
    assert_eq!(
        refused(&joined).map(|(c, _)| c),
        Some(ErrorCode::RateLimited)
    );
    d.advance(Duration::from_secs(1));
    assert!(refused(&d.join(from(14), "carol")).is_none());
}

/// WHO lists the names in the order of their keys, not of their letters: `mia` (key `rnia`)
/// between `ray` and `rob`, `Ann` (key `ann`) first and `Zoë` (key `zoe` and U+0308) last.
#[test]
fn who_answers_in_the_order_of_the_keys() {
    let mut d = Driver::new(Config::default());
    let mut token = None;
    for (k, name) in (1..).zip(["rob", "Zoë", "mia", "zed", "ray", "Ann"]) {
        token = Some(d.member(addr(k), name));
    }
    let token = token.expect("joined");
    let start = d.sent.len();
    d.packet(
        addr(6),
        &Packet::Who {
            token,
            req: 7,
            room: 0,
        },
    );
    let names: Vec<&str> = (d.sent[start..].iter())
        .filter_map(|(_, p)| match p {
            Packet::Names { req: 7, names, .. } => Some(names),
            _ => None,
        })
        .flatten()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["Ann", "ray", "mia", "rob", "zed", "Zoë"]);
}
