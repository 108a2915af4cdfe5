//! The name rules and the key: what is refused, what clashes with whom, and that the data of
//! every Unicode crate is of one version.

use super::*;
use NameError::{Char, Reserved, StartsWithMark};
use Refused::{Blank, Invisible, PrivateUse, Space, Unassigned};

/// What a JOIN under a name meets while another name is in the room.
#[derive(Debug, PartialEq)]
enum Then {
    /// BadName: the name breaks a rule.
    Refused(NameError),
    /// NameTaken: its key is the key of the name in the room.
    Clashes,
    /// Welcome.
    Free,
}

fn then(name: &str, in_room: &str) -> Then {
    match check_name(name) {
        Err(e) => Then::Refused(e),
        Ok(()) if name_key(name) == name_key(in_room) => Then::Clashes,
        Ok(()) => Then::Free,
    }
}

/// The cases of the look-alike review and more, each with what the key really says (see the
/// table in docs/protocol.md).
#[test]
fn look_alikes_clash_and_invisible_characters_are_refused() {
    use Then::{Clashes, Free};
    let refused = Then::Refused;
    let cases: &[(&str, &str, Then)] = &[
        ("alice", "alice", Clashes),
        // Other scripts' letters that look the same.
        ("\u{0430}lice", "alice", Clashes),       // Cyrillic а
        ("alic\u{0435}", "alice", Clashes),       // Cyrillic е
        ("\u{03B1}lice", "alice", Clashes),       // Greek α
        ("\u{0391}LICE", "alice", Clashes),       // Greek Α, then Latin capitals
        ("\u{0251}lice", "alice", Clashes),       // Latin ɑ
        ("ur\u{0441}", "urc", refused(Reserved)), // Cyrillic с
        // Case and compatibility forms.
        ("ALICE", "alice", Clashes),
        ("Alice", "alice", Clashes),
        ("alIce", "alice", Clashes),
        ("ａｌｉｃｅ", "alice", Clashes), // full width
        ("𝐚𝐥𝐢𝐜𝐞", "alice", Clashes),      // mathematical bold
        ("ⓐⓛⓘⓒⓔ", "alice", Clashes),      // circled
        ("STRASSE", "straße", Clashes),
        // Digits and signs that look like letters, by the confusable data.
        ("a1ice", "alice", Clashes),   // 1 → l
        ("a|ice", "alice", Clashes),   // | → l
        ("al1ce", "alice", Free),      // 1 → l: "allce"
        ("g00gle", "google", Clashes), // 0 → O, then folded
        ("paypa1", "PayPal", Clashes),
        ("m", "rn", Clashes), // m → rn
        ("rnary", "mary", Clashes),
        // A capital I folds to i before the skeleton: it is the name "aiice", not "alice".
        ("aIice", "alice", Free),
        ("aIice", "aiice", Clashes),
        // Marks: a precomposed é is the same name as e and U+0301; neither is alice.
        ("alice\u{0301}", "alice", Free),
        ("alice\u{0301}", "alic\u{00E9}", Clashes),
        (
            "\u{0301}alice",
            "alice",
            refused(StartsWithMark('\u{0301}')),
        ),
        ("\u{20DD}", "alice", refused(StartsWithMark('\u{20DD}'))), // enclosing circle
        ("malice", "alice", Free),
        ("alice2", "alice", Free),
        // Invisible and format characters.
        (
            "alice\u{200D}",
            "alice",
            refused(Char('\u{200D}', Invisible)),
        ), // zero width joiner
        (
            "alice\u{FE0F}",
            "alice",
            refused(Char('\u{FE0F}', Invisible)),
        ), // variation selector 16
        (
            "ali\u{00AD}ce",
            "alice",
            refused(Char('\u{00AD}', Invisible)),
        ), // soft hyphen
        (
            "alice\u{200B}",
            "alice",
            refused(Char('\u{200B}', Invisible)),
        ), // zero width space
        (
            "al\u{200C}ice",
            "alice",
            refused(Char('\u{200C}', Invisible)),
        ), // zero width non-joiner
        (
            "\u{202E}ecila",
            "alice",
            refused(Char('\u{202E}', Invisible)),
        ), // right-to-left override
        (
            "alice\u{2066}",
            "alice",
            refused(Char('\u{2066}', Invisible)),
        ), // left-to-right isolate
        (
            "alice\u{061C}",
            "alice",
            refused(Char('\u{061C}', Invisible)),
        ), // Arabic letter mark
        (
            "\u{FEFF}alice",
            "alice",
            refused(Char('\u{FEFF}', Invisible)),
        ), // byte order mark
        (
            "alice\u{034F}",
            "alice",
            refused(Char('\u{034F}', Invisible)),
        ), // grapheme joiner
        (
            "alice\u{E0061}",
            "alice",
            refused(Char('\u{E0061}', Invisible)),
        ), // tag a
        (
            "alice\u{E0100}",
            "alice",
            refused(Char('\u{E0100}', Invisible)),
        ), // selector 17
        (
            "alice\u{180B}",
            "alice",
            refused(Char('\u{180B}', Invisible)),
        ), // Mongolian selector
        (
            "\u{0600}alice",
            "alice",
            refused(Char('\u{0600}', Invisible)),
        ), // Arabic number sign
        // Fillers and blanks.
        (
            "\u{3164}alice",
            "alice",
            refused(Char('\u{3164}', Invisible)),
        ), // Hangul filler
        (
            "\u{115F}alice",
            "alice",
            refused(Char('\u{115F}', Invisible)),
        ), // Hangul choseong filler
        (
            "alice\u{FFA0}",
            "alice",
            refused(Char('\u{FFA0}', Invisible)),
        ), // half-width filler
        ("\u{2800}alice", "alice", refused(Char('\u{2800}', Blank))), // braille blank
        ("\u{2800}", "alice", refused(Char('\u{2800}', Blank))),
        ("alice\u{16FE4}", "alice", refused(Char('\u{16FE4}', Blank))), // Khitan filler
        ("alice\u{1D159}", "alice", refused(Char('\u{1D159}', Blank))), // null notehead
        // White space, controls, code points that draw what a font wants or nothing.
        ("al ice", "alice", refused(Char(' ', Space))),
        ("alice\u{3000}", "alice", refused(Char('\u{3000}', Space))),
        ("alice\u{00A0}", "alice", refused(Char('\u{00A0}', Space))),
        (
            "a\u{1b}[31m",
            "alice",
            refused(Char('\u{1b}', Refused::Control)),
        ),
        (
            "alice\u{E000}",
            "alice",
            refused(Char('\u{E000}', PrivateUse)),
        ),
        (
            "alice\u{F0000}",
            "alice",
            refused(Char('\u{F0000}', PrivateUse)),
        ),
        (
            "alice\u{0378}",
            "alice",
            refused(Char('\u{0378}', Unassigned)),
        ),
        (
            "alice\u{FFFF}",
            "alice",
            refused(Char('\u{FFFF}', Unassigned)),
        ), // noncharacter
        // Emoji: alone they are fine; joined or with a presentation selector they are not.
        ("😀", "alice", Free),
        (
            "👨\u{200D}👩\u{200D}👧",
            "alice",
            refused(Char('\u{200D}', Invisible)),
        ),
        ("❤\u{FE0F}", "alice", refused(Char('\u{FE0F}', Invisible))),
        ("❤", "alice", Free),
        // Other scripts are names like any.
        ("小明", "alice", Free),
        ("小明", "小明", Clashes),
        ("Ωμέγα", "ωμέγα", Clashes),
        // The relay's own name.
        ("urc", "alice", refused(Reserved)),
        ("URC", "alice", refused(Reserved)),
        ("ｕｒｃ", "alice", refused(Reserved)),
        ("urc\u{200D}", "alice", refused(Char('\u{200D}', Invisible))),
        ("urc2", "alice", Free),
    ];
    let wrong: Vec<String> = (cases.iter())
        .filter(|(name, in_room, expected)| then(name, in_room) != *expected)
        .map(|(name, in_room, expected)| {
            let got = then(name, in_room);
            format!("{name:?} beside {in_room:?}: {got:?}, not {expected:?}")
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn lengths() {
    assert_eq!(check_name(""), Err(NameError::Empty));
    assert_eq!(check_name(&"a".repeat(32)), Ok(()));
    assert_eq!(check_name(&"字".repeat(32)), Ok(()));
    assert_eq!(check_name(&"𝄞".repeat(32)), Ok(()));
    assert_eq!(check_name(&"a".repeat(33)), Err(NameError::Long));
    // Characters as given count, not those of the key.
    assert_eq!(check_name(&"\u{FDFA}".repeat(32)), Ok(()));
    assert_eq!(name_key(&"\u{FDFA}".repeat(32)).chars().count(), 32 * 18);
}

/// The keys of the examples in docs/protocol.md, as another implementation must make them.
#[test]
fn keys_as_documented() {
    for (name, key) in [
        ("alice", "alice"),
        ("ALICE", "alice"),
        ("\u{0430}lice", "alice"),
        ("ａｌｉｃｅ", "alice"),
        ("a1ice", "alice"),
        ("g00gle", "google"),
        ("m", "rn"),
        ("aIice", "aiice"),
        ("Straße", "strasse"),
        ("alic\u{00E9}", "alice\u{0301}"),
        ("小明", "小明"),
        (RELAY_NAME, RELAY_KEY),
    ] {
        assert_eq!(name_key(name), key, "{name:?}");
    }
}

#[test]
fn messages_name_the_character() {
    let e = check_name("alice\u{200D}").unwrap_err();
    assert_eq!(
        e.to_string(),
        "the name has U+200D, an invisible or format character: choose a name without it"
    );
    let e = check_name("x\u{F0000}").unwrap_err().to_string();
    assert!(e.starts_with("the name has U+F0000, a private-use"), "{e}");
    let e = check_name("x\u{0378}").unwrap_err().to_string();
    assert!(
        e.contains("U+0378, a code point unassigned in Unicode 18.0"),
        "{e}"
    );
    let e = check_name("\u{0301}a").unwrap_err().to_string();
    assert!(
        e.starts_with("the name starts with U+0301, a combining mark"),
        "{e}"
    );
    let e = check_name("URC").unwrap_err().to_string();
    assert_eq!(
        e,
        "the name looks like urc, the relay's own name: choose another"
    );
    for e in [
        NameError::Empty,
        NameError::Long,
        NameError::Char('\t', Space),
        NameError::StartsWithMark('\u{0301}'),
        Reserved,
    ] {
        let text = e.to_string();
        assert!(
            !text.contains('\n') && text.starts_with("the name"),
            "{text}"
        );
        assert!(!text.ends_with('.'), "{text}");
    }
}

/// The rules of the relay are in two parts (characters, then the key after the join
/// allowance): together they are `check_name`.
#[test]
fn the_two_parts_make_the_whole() {
    for name in ["alice", "URC", "a b", "", "\u{0301}x", "urс"] {
        let parts = check_chars(name).and_then(|()| check_key(&name_key(name)));
        assert_eq!(parts, check_name(name), "{name:?}");
    }
}

/// Every crate's Unicode data is of one version, [`UNICODE_VERSION`]: a crate updated to
/// newer data fails here, so that the documents (and a registry of keys) follow. ICU4X's
/// version shows through its data: its Default_Ignorable_Code_Point is exactly what the
/// skeleton of unicode-security drops.
#[test]
fn unicode_data_is_of_one_version() {
    let (major, minor, update) = UNICODE_VERSION;
    let version = (u64::from(major), u64::from(minor), u64::from(update));
    assert_eq!(unicode_security::UNICODE_VERSION, version);
    assert_eq!(unicode_normalization::UNICODE_VERSION, UNICODE_VERSION);
    let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>();
    // Default-ignorable code points live in planes 0, 1 and 14.
    let planes = ('\0'..='\u{1FFFF}').chain('\u{E0000}'..='\u{EFFFF}');
    let differ: Vec<String> = planes
        .filter(|&c| {
            let mut buf = [0; 4];
            let dropped = unicode_security::skeleton(c.encode_utf8(&mut buf))
                .next()
                .is_none();
            dropped != ignorable.contains(c)
        })
        .map(|c| format!("U+{:04X}", u32::from(c)))
        .collect();
    assert!(differ.is_empty(), "{differ:?}");
    assert!((ignorable.iter_ranges()).all(|r| *r.end() <= 0x1FFFF || *r.start() >= 0xE0000));
}

/// The blanks the confusable data finds, and that no allowed character has an empty key.
#[test]
fn every_allowed_character_has_a_key_and_blanks_are_known() {
    let spaces: Vec<char> = (char::MIN..=char::MAX)
        .filter(|&c| !c.is_whitespace() && draws_as_space(c))
        .collect();
    assert_eq!(spaces, ['\u{2800}']);
    let categories = CodePointMapData::<GeneralCategory>::new();
    let keyless: Vec<char> = (char::MIN..=char::MAX)
        .filter(|&c| refused(c, categories.get(c)).is_none())
        .filter(|&c| name_key(c.encode_utf8(&mut [0; 4])).is_empty())
        .collect();
    assert!(keyless.is_empty(), "{keyless:?}");
}
