//! When a message mentions the user: their name in it as a word, whatever the case.

use crate::proto::name::fold;

/// True when `text` holds `name` as a word, without regard to case or compatibility forms
/// ([`fold`]: `ALICE` and `ａｌｉｃｅ` mention alice; a look-alike in another script does not). A word is cut where a letter, digit or `_` meets anything else: `alice,` and
/// `@alice` mention alice, `malice` and `alice2` do not. Chinese, Japanese and Korean text is
/// written without spaces, so their characters never glue a name into a longer word
/// (`小明你好` mentions 小明, `你好bob` mentions bob); nor does a name's own punctuation need a
/// space beside it (`[bot]:` mentions `[bot]`).
pub fn mentions(text: &str, name: &str) -> bool {
    let (text, name) = (fold(text), fold(name));
    let (Some(first), Some(last)) = (name.chars().next(), name.chars().next_back()) else {
        return false;
    };
    text.match_indices(&name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        let glued = |edge: char, beside: Option<char>| is_word(edge) && beside.is_some_and(is_word);
        !glued(first, before) && !glued(last, after)
    })
}

/// Characters that make up a word in text written with spaces between words.
fn is_word(c: char) -> bool {
    (c.is_alphanumeric() || c == '_') && !is_unspaced(c)
}

/// Characters of the scripts written without spaces between words: Han, kana, Hangul.
fn is_unspaced(c: char) -> bool {
    matches!(c,
        '\u{1100}'..='\u{11FF}'     // Hangul Jamo
        | '\u{2E80}'..='\u{2FDF}'   // CJK radicals
        | '\u{3040}'..='\u{30FF}'   // Hiragana, Katakana
        | '\u{3100}'..='\u{31FF}'   // Bopomofo, Hangul compatibility Jamo, kana extensions
        | '\u{3400}'..='\u{4DBF}'   // CJK extension A
        | '\u{4E00}'..='\u{9FFF}'   // CJK unified ideographs
        | '\u{AC00}'..='\u{D7AF}'   // Hangul syllables
        | '\u{F900}'..='\u{FAFF}'   // CJK compatibility ideographs
        | '\u{FF66}'..='\u{FF9F}'   // half-width Katakana
        | '\u{20000}'..='\u{3FFFF}' // CJK extensions B onwards
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_as_a_word_whatever_the_case() {
        for text in [
            "bob",
            "hi bob",
            "Bob: look",
            "hey BOB!",
            "@bob?",
            "bob's turn",
            "(bob)",
            "malice and bob",
            "bobby bob",
            "hi ＢＯＢ",
            "ｂｏｂ!",
        ] {
            assert!(mentions(text, "bob"), "{text:?}");
        }
        // A look-alike in another script (a Cyrillic о) is not the name as typed.
        for text in [
            "bobby",
            "kabob",
            "bob2",
            "bob_x",
            "x_bob",
            "b o b",
            "",
            "b\u{043E}b",
        ] {
            assert!(!mentions(text, "bob"), "{text:?}");
        }
        assert!(!mentions("anything", ""));
    }

    #[test]
    fn cjk_names_and_text_need_no_spaces() {
        assert!(mentions("小明你好", "小明"));
        assert!(mentions("你好小明。", "小明"));
        assert!(mentions("你好bob", "bob"));
        assert!(mentions("bobさん", "bob"));
        assert!(mentions("철수야 안녕", "철수"));
        assert!(!mentions("小红你好", "小明"));
        // A CJK name next to Latin letters is still a name.
        assert!(mentions("hi小明", "小明"));
    }

    #[test]
    fn names_with_punctuation() {
        assert!(mentions("thanks [bot]", "[bot]"));
        assert!(mentions("x[bot]y", "[bot]"));
        assert!(mentions("ask o'neil.", "O'Neil"));
        assert!(!mentions("ask o'neill", "o'neil"));
        assert!(mentions("ping d.j.", "d.j"));
        assert!(mentions("Émile, viens", "émile"));
        assert!(!mentions("émilesque", "Émile"));
    }
}
