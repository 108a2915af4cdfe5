//! The typed line's echo: once the editor accepted a line, the rows it took are erased, so
//! that the line shows once, as the message the relay stored.

use unicode_width::UnicodeWidthChar as _;

/// How many rows above the cursor the prompt and `text` took once the editor accepted them
/// in a terminal `cols` wide (the editor leaves the cursor at the start of the next row).
/// Wrapping is the editor's (rustyline's): a character that does not fit in what is left of
/// a row starts the next one, a row filled to its last column moves the cursor to the next
/// row, and a newline (in a paste) starts a row.
pub fn rows_taken(prompt: &str, text: &str, cols: usize) -> usize {
    let cols = cols.max(1);
    let (mut row, mut col) = (0, 0);
    for c in prompt.chars().chain(text.chars()) {
        if c == '\n' {
            (row, col) = (row + 1, 0);
            continue;
        }
        let w = c.width().unwrap_or(0);
        col += w;
        if col > cols {
            (row, col) = (row + 1, w);
        }
    }
    if col == cols {
        row += 1;
    }
    row + 1
}

/// What erases `rows` rows above the cursor, leaving it at the start of the first: row by row
/// (clearing to the end of the screen from its top left corner is clearing the screen, which
/// tmux, VTE and others first push into the scrollback).
pub fn erase(rows: usize) -> String {
    let mut out = "\x1b[A\x1b[2K".repeat(rows);
    if rows > 0 {
        out.push('\r');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_by_display_width() {
        assert_eq!(rows_taken("bob> ", "hello", 100), 1);
        assert_eq!(rows_taken("bob> ", "", 100), 1);
        // 95 columns of text after a prompt of 5 fill the row: the cursor went to the next.
        assert_eq!(rows_taken("bob> ", &"x".repeat(95), 100), 2);
        assert_eq!(rows_taken("bob> ", &"x".repeat(94), 100), 1);
        assert_eq!(rows_taken("bob> ", &"x".repeat(96), 100), 2);
        // 47 Chinese characters (94 columns) and the prompt leave one column: the 48th wraps.
        assert_eq!(rows_taken("bob> ", &"字".repeat(47), 100), 1);
        assert_eq!(rows_taken("bob> ", &"字".repeat(48), 100), 2);
        assert_eq!(rows_taken("bob> ", &"字".repeat(60), 100), 2);
        assert_eq!(rows_taken("小明> ", &"字".repeat(47), 100), 2);
        assert_eq!(rows_taken("bob> ", &"字".repeat(60), 40), 4);
    }

    #[test]
    fn a_paste_of_lines_takes_a_row_each_at_least() {
        assert_eq!(rows_taken("bob> ", "l1\nl2\nl3", 100), 3);
        assert_eq!(
            rows_taken("bob> ", &format!("a\n{}", "y".repeat(150)), 100),
            3
        );
    }

    #[test]
    fn erasing() {
        assert_eq!(erase(0), "");
        assert_eq!(erase(2), "\x1b[A\x1b[2K\x1b[A\x1b[2K\r");
    }
}
