//! Names: the rules a name follows, the key under which names that look alike are one, and the
//! relay's own name.
//!
//! Two names clash when their keys are equal ([`name_key`]): the same text in another case or
//! compatibility form (`ALICE`, `ａｌｉｃｅ`), or letters of another script that look the same
//! (`аlice` with a Cyrillic а), by the confusable data of Unicode Technical Standard #39. The
//! rules ([`check_name`]) keep out what a key cannot see or a terminal does not draw: invisible
//! and format characters, white space, controls, blanks, private-use and unassigned code
//! points, and a combining mark at the start. docs/protocol.md ("Name rules") is the
//! reference another implementation follows; the Unicode data is version [`UNICODE_VERSION`].

use std::fmt;

use icu_casemap::CaseMapper;
use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory};
use icu_properties::{CodePointMapData, CodePointSetData};
use unicode_normalization::UnicodeNormalization;

/// Most characters a name may have.
pub const MAX_NAME_CHARS: usize = 32;
/// The relay's own name: the sender of the placeholders `urc serve --repair-log` puts where
/// damaged messages were. No client may take it, nor a name that looks like it.
pub const RELAY_NAME: &str = "urc";
/// The key of [`RELAY_NAME`] (a test checks that it is).
const RELAY_KEY: &str = "urc";
/// The Unicode version of the data the rules and the key use (normalisation, case folding,
/// properties and confusables: every crate's data is of this version, as a test checks). A
/// newer version may change some keys.
pub const UNICODE_VERSION: (u8, u8, u8) = (18, 0, 0);

/// Characters that draw nothing and that no property says so of (those that draw as a space
/// are found by their confusable prototype, see [`draws_as_space`]).
const FILLERS: [char; 2] = [
    '\u{16FE4}', // KHITAN SMALL SCRIPT FILLER
    '\u{1D159}', // MUSICAL SYMBOL NULL NOTEHEAD
];

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name has more than [`MAX_NAME_CHARS`] characters.
    Long,
    /// The name has a character that names may not have.
    Char(char, Refused),
    /// The name starts with a combining mark, which draws on whatever is before the name.
    StartsWithMark(char),
    /// The name's key is the relay's own name's ([`RELAY_NAME`]).
    Reserved,
}

/// The kinds of characters names may not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Unicode `White_Space`.
    Space,
    /// General category `Cc`.
    Control,
    /// Unicode `Default_Ignorable_Code_Point`, or general category `Cf` (format).
    Invisible,
    /// General category `Co`.
    PrivateUse,
    /// General category `Cn`: not assigned in [`UNICODE_VERSION`] (noncharacters included).
    Unassigned,
    /// Draws nothing, or as a space: see [`draws_as_space`] and [`FILLERS`].
    Blank,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor, _) = UNICODE_VERSION;
        match self {
            Refused::Space => f.write_str("white space"),
            Refused::Control => f.write_str("a control character"),
            Refused::Invisible => f.write_str("an invisible or format character"),
            Refused::PrivateUse => f.write_str("a private-use character"),
            Refused::Unassigned => write!(f, "a code point unassigned in Unicode {major}.{minor}"),
            Refused::Blank => f.write_str("a character that draws nothing"),
        }
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("the name is empty: choose 1 to 32 characters"),
            NameError::Long => {
                f.write_str("the name is longer than 32 characters: choose a shorter one")
            }
            NameError::Char(c, why) => write!(
                f,
                "the name has U+{:04X}, {why}: choose a name without it",
                u32::from(*c)
            ),
            NameError::StartsWithMark(c) => write!(
                f,
                "the name starts with U+{:04X}, a combining mark, which draws on what is before \
                 the name: start it with another character",
                u32::from(*c)
            ),
            NameError::Reserved => write!(
                f,
                "the name looks like {RELAY_NAME}, the relay's own name: choose another"
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a name by all the name rules: [`check_chars`], then its key by [`check_key`]. This is
/// what a client checks before it joins.
///
/// # Errors
/// The first rule the name breaks.
pub fn check_name(name: &str) -> Result<(), NameError> {
    check_chars(name)?;
    check_key(&name_key(name))
}

/// Checks a name's length and characters: 1 to 32 characters (Unicode scalar values), none
/// refused ([`Refused`]), the first not a combining mark (general category `Mn`, `Mc`, `Me`).
/// It computes no key, so it costs little: the relay checks this before a JOIN takes from the
/// join allowance, and the key after.
///
/// # Errors
/// The first rule the name breaks.
pub fn check_chars(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::Long);
    }
    let categories = CodePointMapData::<GeneralCategory>::new();
    for (i, c) in name.chars().enumerate() {
        let category = categories.get(c);
        if let Some(why) = refused(c, category) {
            return Err(NameError::Char(c, why));
        }
        let mark = matches!(
            category,
            GeneralCategory::NonspacingMark
                | GeneralCategory::SpacingMark
                | GeneralCategory::EnclosingMark
        );
        if i == 0 && mark {
            return Err(NameError::StartsWithMark(c));
        }
    }
    Ok(())
}

/// Checks a name's key ([`name_key`]): it must not be the relay's own name's.
///
/// # Errors
/// [`NameError::Reserved`] for the key of [`RELAY_NAME`].
pub fn check_key(key: &str) -> Result<(), NameError> {
    if key == RELAY_KEY {
        return Err(NameError::Reserved);
    }
    Ok(())
}

/// Why names may not have `c`, if they may not.
fn refused(c: char, category: GeneralCategory) -> Option<Refused> {
    if c.is_ascii_graphic() {
        return None;
    }
    let invisible = CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        || category == GeneralCategory::Format;
    Some(if c.is_whitespace() {
        Refused::Space
    } else if c.is_control() {
        Refused::Control
    } else if invisible {
        Refused::Invisible
    } else if category == GeneralCategory::PrivateUse {
        Refused::PrivateUse
    } else if category == GeneralCategory::Unassigned {
        Refused::Unassigned
    } else if FILLERS.contains(&c)
        || (category == GeneralCategory::OtherSymbol && draws_as_space(c))
    {
        Refused::Blank
    } else {
        return None;
    })
}

/// True when the confusable data takes `c` for white space: its UTS #39 skeleton is white
/// space only. In Unicode 18.0 that is U+2800 BRAILLE PATTERN BLANK alone, a symbol (`So`):
/// the rules ask only of symbols, which keeps the skeleton off most characters (a test checks
/// every code point, so that data that finds another kind fails it).
fn draws_as_space(c: char) -> bool {
    let mut buf = [0; 4];
    let mut skeleton = unicode_security::skeleton(c.encode_utf8(&mut buf)).peekable();
    skeleton.peek().is_some() && skeleton.all(char::is_whitespace)
}

/// The key under which a name is unique in the room: names with the same key look alike, or
/// differ only in case or compatibility forms, and clash.
///
/// `key(name) = casefold(skeleton(casefold(NFKC(name))))`: NFKC (UAX #15), then full case folding
/// (`CaseFolding.txt`, status C and F), then the UTS #39 skeleton (NFD, default-ignorable code
/// points removed, each code point replaced by its prototype in `confusables.txt`, NFD again),
/// then full case folding again, because some prototypes are capitals (`0` → `O`): without it
/// `g00gle` would not clash with `google`. The key is not shown to anyone.
pub fn name_key(name: &str) -> String {
    let folded = fold(name);
    let skeleton: String = unicode_security::skeleton(&folded).collect();
    CaseMapper::new().fold_string(&skeleton).into_owned()
}

/// `text` without regard to case or compatibility forms: NFKC, then full case folding (the
/// first two steps of [`name_key`]). Mentions and completion compare names this way: they
/// look for a name as it is typed, not for whatever looks like it.
pub fn fold(text: &str) -> String {
    let nfkc: String = text.nfkc().collect();
    CaseMapper::new().fold_string(&nfkc).into_owned()
}

#[cfg(test)]
mod tests;
