//! What rustyline's redraws after resizes do to the rows above the line typed in a terminal
//! that rewraps its lines, and what puts them right: the rows left behind erased, the rows of
//! messages erased printed again.

use std::collections::VecDeque;

use unicode_width::UnicodeWidthChar as _;

use crate::term::echo::rows_taken;

/// What rustyline's redraws did to the rows above the line typed, resize after resize: from
/// the top, the lines printed less the last `erased` rows, then `stray` rows of old copies of
/// the line typed, then the line typed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Damage {
    erased: usize,
    stray: usize,
}

impl Damage {
    /// Counts a resize from `old` to `new` columns, the line typed up to the cursor being
    /// `before` (after `prompt`).
    pub(super) fn resized(&mut self, prompt: &str, before: &str, old: usize, new: usize) {
        // The cursor's row in the line typed: as rustyline counted it at the old width, and as
        // the terminal put it once it rewrapped the line to the new width. rustyline clears
        // from where it counts the line to start and draws it again there.
        let counted = rows_taken(prompt, before, old) - 1;
        let mut rewrapped = rows_taken(prompt, before, new) - 1;
        let width = |t: &str| t.chars().map(|c| c.width().unwrap_or(0)).sum::<usize>();
        let w = width(prompt) + width(before);
        if w > 0 && w % old == 0 {
            // Ending at the last column, the line was drawn with a newline of rustyline's
            // after it: the terminal keeps it, and the cursor on the row under the line.
            rewrapped = w.div_ceil(new);
        }
        if rewrapped > counted {
            // The first rows of the line stay above rustyline's.
            self.stray += rewrapped - counted;
        } else {
            // Rows above the line are cleared: stray ones first, then printed ones.
            let cleared = counted - rewrapped;
            let strays = cleared.min(self.stray);
            self.stray -= strays;
            self.erased += cleared - strays;
        }
    }

    /// What the editor's printer is given to put it right, `lines` being the lines printed
    /// and the terminal `cols` wide: the printer clears the line typed, prints this, and draws
    /// the line again under it.
    pub(super) fn repair(&self, lines: &[String], cols: usize) -> Option<String> {
        if *self == Damage::default() {
            return None;
        }
        // Up to the last row of what is left of the lines printed, down one (a newline, the
        // printer's way to a row's start), the stray rows cleared one by one (clearing to the
        // end of the screen from its top left corner would push the screen into the
        // scrollback), back up to the first.
        let mut fix = format!("\x1b[{}A\n", self.stray + 1);
        if self.stray > 0 {
            fix.push_str(&"\x1b[2K\x1b[B".repeat(self.stray));
            fix.push_str(&format!("\x1b[{}A", self.stray));
        }
        let rows = last_rows(lines, cols, self.erased);
        if rows.is_empty() {
            // Back up and down again: the printer adds no newline after one.
            fix.push_str("\x1b[A\n");
        } else {
            fix.push_str(&rows.join("\n"));
        }
        Some(fix)
    }
}

/// The last `n` rows that `lines` take in a terminal `cols` wide, bells left out.
fn last_rows(lines: &[String], cols: usize, n: usize) -> Vec<String> {
    let mut rows: VecDeque<String> = VecDeque::new();
    for line in lines.iter().rev() {
        for row in split_rows(&line.replace('\u{7}', ""), cols)
            .into_iter()
            .rev()
        {
            if rows.len() == n {
                return rows.into();
            }
            rows.push_front(row);
        }
    }
    rows.into()
}

/// `line` cut into the rows a terminal `cols` wide wraps it into; escape sequences (ours, for
/// colour: untrusted text has none) take no room.
fn split_rows(line: &str, cols: usize) -> Vec<String> {
    let cols = cols.max(1);
    let mut rows = vec![String::new()];
    let mut col = 0;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        let row = rows.last_mut().expect("a row");
        if c == '\x1b' {
            row.push(c);
            // ESC [ parameters, up to the final letter.
            for d in chars.by_ref() {
                row.push(d);
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        let w = c.width().unwrap_or(0);
        if col + w > cols {
            rows.push(String::new());
            col = 0;
        }
        rows.last_mut().expect("a row").push(c);
        col += w;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_cut_into_rows_by_width() {
        assert_eq!(split_rows("abcdef", 4), ["abcd", "ef"]);
        assert_eq!(split_rows("ab字字", 4), ["ab字", "字"]);
        assert_eq!(split_rows("a字", 2), ["a", "字"]);
        assert_eq!(
            split_rows("\x1b[2m12\x1b[0m 34", 3),
            ["\x1b[2m12\x1b[0m ", "34"]
        );
        let lines = [
            "one".to_owned(),
            "abcdefgh".to_owned(),
            "\u{7}xy".to_owned(),
        ];
        assert_eq!(last_rows(&lines, 4, 2), ["efgh", "xy"]);
        assert_eq!(last_rows(&lines, 4, 9), ["one", "abcd", "efgh", "xy"]);
    }

    fn damage(prompt: &str, before: &str, widths: &[usize]) -> Damage {
        let mut d = Damage::default();
        for w in widths.windows(2) {
            d.resized(prompt, before, w[0], w[1]);
        }
        d
    }

    #[test]
    fn what_a_rewrapping_terminal_needs() {
        let typed = "x".repeat(150);
        let lines = [
            "08:00 alice: hi".to_owned(),
            "08:01 alice: there".to_owned(),
        ];
        // 155 columns: rows 0 and 1 at 100, rows 0 to 3 at 45, row 0 at 160.
        assert_eq!(damage("bob> ", &typed, &[100, 100]), Damage::default());
        let narrower = damage("bob> ", &typed, &[100, 45]);
        assert_eq!(
            narrower,
            Damage {
                erased: 0,
                stray: 2
            }
        );
        assert_eq!(
            narrower.repair(&lines, 45).as_deref(),
            Some("\x1b[3A\n\x1b[2K\x1b[B\x1b[2K\x1b[B\x1b[2A\x1b[A\n")
        );
        let wider = damage("bob> ", &typed, &[100, 160]);
        assert_eq!(
            wider,
            Damage {
                erased: 1,
                stray: 0
            }
        );
        assert_eq!(
            wider.repair(&lines, 160).as_deref(),
            Some("\x1b[1A\n08:01 alice: there")
        );
        // Narrower then wider: the strays are cleared first, then one printed row.
        let both = damage("bob> ", &typed, &[100, 45, 160]);
        assert_eq!(
            both,
            Damage {
                erased: 1,
                stray: 0
            }
        );
        // Wider then narrower: a printed row erased, then strays.
        let back = damage("bob> ", &typed, &[100, 160, 45]);
        assert_eq!(
            back,
            Damage {
                erased: 1,
                stray: 3
            }
        );
        assert_eq!(
            back.repair(&lines, 45).as_deref(),
            Some("\x1b[4A\n\x1b[2K\x1b[B\x1b[2K\x1b[B\x1b[2K\x1b[B\x1b[3A08:01 alice: there")
        );
        // A line that fits either way.
        assert_eq!(damage("bob> ", "short", &[100, 40, 120]), Damage::default());
    }
}
