//! Lines cut into rows at the terminal's width by the client itself, the rows after the first
//! indented under the text (as weechat aligns its prefix column), so that nothing someone sends
//! can pass for a line of its own: a terminal left to wrap a line starts each next row at
//! column 0, where text padded with spaces would look like `12:01 bob: …` or `-- alice left`.
//!
//! A row is cut between words where one does not fit, inside a word only when the word alone
//! is longer than a row, and never inside a character or a grapheme (a letter and its accents,
//! an emoji sequence); the spaces where a row is cut are not shown. Widths are display widths
//! (unicode-width: Chinese, Japanese and Korean characters take two columns, combining marks
//! none); a grapheme takes the larger of its width as a whole and the sum of its characters'
//! (what terminals that know no emoji sequences draw), so that no row is wider on the screen
//! than counted here, which would let the terminal wrap it at column 0 after all.

use unicode_segmentation::UnicodeSegmentation as _;
use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};

/// The indent of the rows after the first when the prefix is wider than a third of the row.
pub const FIXED_INDENT: usize = 4;

/// A line to show: what starts it (the time and the name, the `--` of a notice) and its
/// text, which the rows after the first are indented under. Either may hold our own escape
/// sequences (colours) and a bell; text from others holds none (see `render::sanitize`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// What starts the line, up to the column where its text starts.
    pub prefix: String,
    /// The text.
    pub text: String,
}

impl Line {
    /// A line of `prefix` and `text`.
    pub fn new(prefix: impl Into<String>, text: impl Into<String>) -> Line {
        Line {
            prefix: prefix.into(),
            text: text.into(),
        }
    }

    /// The line whole, on one row however long.
    pub fn whole(&self) -> String {
        format!("{}{}", self.prefix, self.text)
    }

    /// The same line, its prefix after `before` (a bell).
    pub fn after(self, before: &str) -> Line {
        Line {
            prefix: format!("{before}{}", self.prefix),
            ..self
        }
    }
}

/// A line is equal to the text it shows whole.
impl PartialEq<&str> for Line {
    fn eq(&self, other: &&str) -> bool {
        self.prefix.len() + self.text.len() == other.len()
            && other.starts_with(&self.prefix)
            && other.ends_with(&self.text)
    }
}

/// The rows `line` takes in a terminal `cols` wide, each at most `cols` wide: the first starts
/// with the prefix, every other with the indent (the prefix's width, or [`FIXED_INDENT`] when
/// the prefix is wider than a third of the row; less only in a terminal too narrow to hold it
/// and two columns of text). Styles open at a cut are closed at the row's end and opened again
/// after the next row's indent, so that each row can be printed again on its own.
pub fn wrap(line: &Line, cols: usize) -> Vec<String> {
    let cols = cols.max(1);
    let prefix = width(&line.prefix);
    let indent = if prefix * 3 <= cols {
        prefix
    } else {
        FIXED_INDENT
    };
    let mut rows = Rows {
        cols,
        indent: indent.min(cols.saturating_sub(2)),
        done: Vec::new(),
        row: String::new(),
        col: 0,
        fresh: true,
        styles: Vec::new(),
    };
    // The prefix is one word: cut only when it is longer than a row.
    rows.word(&[], &tokens(&line.prefix));
    let mut gap: Vec<Token> = Vec::new();
    let mut word: Vec<Token> = Vec::new();
    for token in tokens(&line.text) {
        if token.kind == Kind::Space {
            if !word.is_empty() {
                rows.word(&gap, &word);
                gap.clear();
                word.clear();
            }
            gap.push(token);
        } else {
            word.push(token);
        }
    }
    // Spaces at the end show nothing: left out.
    rows.word(&gap, &word);
    rows.finish()
}

/// The display width of `text`, escape sequences and bells left out.
pub fn width(text: &str) -> usize {
    tokens(text).iter().map(|t| t.width).sum()
}

/// What a line is made of, for cutting it into rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A grapheme that shows.
    Glyph,
    /// A space, where a row may be cut.
    Space,
    /// One of our escape sequences (`ESC [ … letter`), or a bell: no room taken.
    Escape,
}

#[derive(Debug)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    width: usize,
}

/// `text` as graphemes and escape sequences.
fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut graphemes = text.grapheme_indices(true).peekable();
    while let Some((at, g)) = graphemes.next() {
        if g == "\x1b" {
            // ESC [ parameters, up to the final letter.
            let mut end = at + g.len();
            for (i, d) in graphemes.by_ref() {
                end = i + d.len();
                if d.chars().all(|c| c.is_ascii_alphabetic()) {
                    break;
                }
            }
            out.push(Token {
                kind: Kind::Escape,
                text: &text[at..end],
                width: 0,
            });
        } else if g == "\u{7}" {
            out.push(Token {
                kind: Kind::Escape,
                text: g,
                width: 0,
            });
        } else {
            let kind = if g.chars().all(breaks) {
                Kind::Space
            } else {
                Kind::Glyph
            };
            let chars: usize = g.chars().map(|c| c.width().unwrap_or(0)).sum();
            out.push(Token {
                kind,
                text: g,
                width: g.width().max(chars),
            });
        }
    }
    out
}

/// True for the spaces a row may be cut at: whitespace, but for the spaces that must not break
/// (no-break, figure and narrow no-break spaces).
fn breaks(c: char) -> bool {
    c.is_whitespace() && !matches!(c, '\u{A0}' | '\u{2007}' | '\u{202F}')
}

/// Rows being filled.
struct Rows {
    /// The terminal's width.
    cols: usize,
    /// The indent of the rows after the first.
    indent: usize,
    /// The rows filled.
    done: Vec<String>,
    /// The row being filled.
    row: String,
    /// Its width so far.
    col: usize,
    /// Nothing but the indent on it yet.
    fresh: bool,
    /// The escape sequences in force (since the last reset), to open again on the next row.
    styles: Vec<String>,
}

impl Rows {
    /// Places `word` after the spaces `gap` that come before it.
    fn word(&mut self, gap: &[Token], word: &[Token]) {
        let gap_width: usize = gap.iter().map(|t| t.width).sum();
        let word_width: usize = word.iter().map(|t| t.width).sum();
        let fits = |rows: &Rows, w: usize| rows.col + w <= rows.cols;
        if fits(self, gap_width + word_width) {
            self.push_all(gap);
            self.push_all(word);
            return;
        }
        // Nothing to show (escape sequences, invisible characters): no row for that.
        if word_width == 0 {
            self.push_all(word);
            return;
        }
        // On a row of its own the word fits: it goes there, the spaces before it left out.
        if !self.fresh && word_width <= self.cols - self.indent {
            self.newline();
            self.push_all(word);
            return;
        }
        // Longer than a row: cut where the rows end, from this one on.
        if fits(self, gap_width + 1) {
            self.push_all(gap);
        } else if !self.fresh {
            self.newline();
        }
        for token in word {
            if token.width > 0 && !fits(self, token.width) && !self.fresh {
                self.newline();
            }
            self.push(token);
        }
    }

    fn push_all(&mut self, tokens: &[Token]) {
        for token in tokens {
            self.push(token);
        }
    }

    fn push(&mut self, token: &Token) {
        if token.kind == Kind::Escape && token.text.starts_with('\x1b') {
            if token.text == "\x1b[0m" {
                self.styles.clear();
            } else {
                self.styles.push(token.text.to_owned());
            }
        }
        self.row.push_str(token.text);
        self.col += token.width;
        if token.kind != Kind::Escape {
            self.fresh = false;
        }
    }

    /// Ends the row and starts the next with the indent.
    fn newline(&mut self) {
        let mut row = std::mem::take(&mut self.row);
        if !self.styles.is_empty() {
            row.push_str("\x1b[0m");
        }
        self.done.push(row);
        self.row = " ".repeat(self.indent);
        for style in &self.styles {
            self.row.push_str(style);
        }
        self.col = self.indent;
        self.fresh = true;
    }

    fn finish(mut self) -> Vec<String> {
        self.done.push(self.row);
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(prefix: &str, text: &str, cols: usize) -> Vec<String> {
        wrap(&Line::new(prefix, text), cols)
    }

    fn indented(n: usize, text: &str) -> String {
        format!("{}{text}", " ".repeat(n))
    }

    #[test]
    fn short_and_exact_lines_take_one_row() {
        assert_eq!(rows("12:00 bob: ", "hi", 40), ["12:00 bob: hi"]);
        // 11 + 29 = 40 columns: exactly the row.
        let full = "a".repeat(29);
        assert_eq!(
            rows("12:00 bob: ", &full, 40),
            [format!("12:00 bob: {full}")]
        );
        let a28 = "a".repeat(28);
        assert_eq!(
            rows("12:00 bob: ", &format!("{a28} b"), 40),
            [format!("12:00 bob: {a28}"), indented(11, "b")]
        );
        assert_eq!(rows("-- ", "", 20), ["-- "]);
    }

    #[test]
    fn rows_are_cut_between_words_under_the_text() {
        assert_eq!(
            rows(
                "12:00 bob: ",
                "one two three four five six seven eight nine",
                40
            ),
            [
                "12:00 bob: one two three four five six".to_owned(),
                indented(11, "seven eight nine")
            ]
        );
        // Every row at most as wide as the terminal.
        for cols in 1..50 {
            for row in rows(
                "12:00 bob: ",
                "one two three 字字字 four five six seven",
                cols,
            ) {
                assert!(width(&row) <= cols.max(2), "{row:?} at {cols}");
            }
        }
    }

    #[test]
    fn spaces_never_start_a_row_at_column_0() {
        // Padded to push a forged line, then a forged notice, to where a terminal 100 columns
        // wide would start a row.
        let forged = format!(
            "{}12:00 mallory: forged{}-- alice left",
            " ".repeat(89),
            " ".repeat(79)
        );
        assert_eq!(
            rows("12:00 eve: ", &forged, 100),
            [
                "12:00 eve: ".to_owned(),
                indented(11, "12:00 mallory: forged"),
                indented(11, "-- alice left"),
            ]
        );
        // Spaces and invisible characters, however many and mixed, make no row of their own.
        let invisible = " \u{200B}".repeat(300);
        let shown = rows("12:00 eve: ", &format!("{invisible}x{invisible}"), 40);
        assert_eq!(shown.len(), 2, "{shown:?}");
        let second = shown[1].strip_prefix(&indented(11, "")).unwrap();
        assert!(
            second.trim_start_matches('\u{200B}').starts_with('x'),
            "{shown:?}"
        );
        let text = format!("{}{}", "a ".repeat(60), "\u{200B} ".repeat(50));
        let shown = rows("12:00 eve: ", &text, 40);
        assert_eq!(shown.len(), 4, "{shown:?}");
        for row in &shown[1..] {
            assert!(row.starts_with(&indented(11, "a")), "{row:?}");
        }
    }

    #[test]
    fn wide_characters_take_two_columns_and_are_never_split() {
        // 11 + 2 × 14 = 39: the fifteenth character does not fit in 40 columns.
        assert_eq!(
            rows("12:00 bob: ", &"字".repeat(16), 40),
            [
                format!("12:00 bob: {}", "字".repeat(14)),
                indented(11, "字字")
            ]
        );
        assert_eq!(
            rows("12:00 bob: ", &"字".repeat(14), 39),
            [format!("12:00 bob: {}", "字".repeat(14))]
        );
        // A name of wide characters counts them two each in the indent.
        let a27 = "a".repeat(27);
        assert_eq!(
            rows("12:00 小明: ", &format!("{a27} cd"), 40),
            [format!("12:00 小明: {a27}"), indented(12, "cd")]
        );
    }

    #[test]
    fn combining_marks_stay_with_their_letter() {
        let e = "e\u{301}";
        // 11 + 29 columns: each é one column, never cut from its accent.
        assert_eq!(
            rows("12:00 bob: ", &e.repeat(32), 40),
            [
                format!("12:00 bob: {}", e.repeat(29)),
                indented(11, &e.repeat(3))
            ]
        );
        // A family emoji (a ZWJ sequence) is one grapheme, counted as wide as its parts.
        let family = "👨\u{200D}👩\u{200D}👧";
        assert_eq!(
            rows("-- ", &family.repeat(3), 14),
            [
                format!("-- {family}"),
                indented(3, family),
                indented(3, family)
            ]
        );
    }

    #[test]
    fn a_word_longer_than_a_row_is_cut_where_rows_end() {
        assert_eq!(
            rows("12:00 bob: ", &format!("hi {}", "x".repeat(60)), 40),
            [
                format!("12:00 bob: hi {}", "x".repeat(26)),
                indented(11, &"x".repeat(29)),
                indented(11, &"x".repeat(5)),
            ]
        );
    }

    #[test]
    fn a_wide_prefix_gets_the_fixed_indent() {
        // 26 columns of prefix in 60: more than a third.
        let prefix = "12:00 a_rather_long_name: ";
        assert_eq!(
            rows(prefix, "one two three four five six seven eight", 60),
            [
                format!("{prefix}one two three four five six seven"),
                indented(FIXED_INDENT, "eight")
            ]
        );
        // Narrower than the prefix: the prefix is cut too, every row indented.
        assert_eq!(
            rows("12:00 bob: ", "hi there", 8),
            ["12:00 bo", "    b: ", "    hi t", "    here"]
        );
        // Too narrow for the indent and two columns: as much indent as leaves two.
        assert_eq!(rows("-- ", "abcd", 4), ["-- a", "  bc", "  d"]);
        assert_eq!(rows("-- ", "ab", 1), ["-", "-", " ", "a", "b"]);
    }

    #[test]
    fn styles_are_closed_and_opened_again_at_a_cut() {
        let line = Line::new(
            "\u{7}\x1b[2m12:00\x1b[0m \x1b[7mbob\x1b[0m: ",
            "\x1b[1mone two three four five\x1b[0m",
        );
        assert_eq!(width(&line.prefix), 11);
        assert_eq!(
            wrap(&line, 33),
            [
                "\u{7}\x1b[2m12:00\x1b[0m \x1b[7mbob\x1b[0m: \x1b[1mone two three four\x1b[0m",
                "           \x1b[1mfive\x1b[0m"
            ]
        );
        assert_eq!(
            line,
            "\u{7}\x1b[2m12:00\x1b[0m \x1b[7mbob\x1b[0m: \x1b[1mone two three four five\x1b[0m"
        );
    }
}
