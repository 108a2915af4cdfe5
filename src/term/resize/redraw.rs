//! When a resize can be put right: once the window rests and rustyline has drawn its line
//! again at the new width, which it would otherwise do over the repair.
//!
//! rustyline hears of a resize when the signal's handler runs, on whichever thread the kernel
//! picked, and on a loaded machine that can be long after the width changed. Its redraw asks
//! the helper's `highlight_char` first and then writes the line; what the editor's printer is
//! given is written by the same thread after that. So the helper tells of every draw, and a
//! draw that leaves the line and the cursor as they were (a redraw, not a key's doing), made
//! after the width was seen to change and at the width the terminal has now, is the sign that
//! the repair may go. As fallback, it goes after [`REDRAW_AT_MOST`] all the same.

use std::time::{Duration, Instant};

use unicode_width::UnicodeWidthChar as _;

use super::damage::Damage;
use crate::term::echo::rows_taken;

/// How long the width must rest before the repair (a window's edge being dragged).
const SETTLES: Duration = Duration::from_millis(50);
/// How long rustyline's redraw is waited for at most, from the last change of the width (it
/// always draws again a line whose rows a resize changes, but the signal may be late).
const REDRAW_AT_MOST: Duration = Duration::from_millis(500);

/// The editor's redraws of the line being typed: its draws that left the line and the cursor
/// as they were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Redraws {
    /// How many so far.
    pub(super) count: u64,
    /// The terminal's width at the last one.
    pub(super) cols: Option<usize>,
}

/// A resize, or the run of them while a window's edge is dragged: from the width seen to
/// change until the repair.
#[derive(Debug)]
pub(super) struct Resizing {
    /// The prompt.
    prompt: String,
    /// The line typed, whole.
    line: String,
    /// The line typed, up to the cursor.
    before: String,
    /// The width last seen.
    cols: usize,
    /// The redraws counted before the last look that saw the width as it was: none of them
    /// can be rustyline's after the change.
    since: u64,
    /// What rustyline's redraws broke so far.
    damage: Damage,
    /// When the width last changed.
    changed: Instant,
}

impl Resizing {
    /// A resize from `old` columns, the editor showing `prompt` and `typed` (the line and the
    /// cursor's byte offset in it); `since` the redraws counted before the last look that
    /// saw `old`.
    pub(super) fn new(
        prompt: &str,
        (line, pos): (&str, usize),
        old: usize,
        since: u64,
        now: Instant,
    ) -> Resizing {
        Resizing {
            prompt: prompt.to_owned(),
            line: line.to_owned(),
            before: line.get(..pos).unwrap_or(line).to_owned(),
            cols: old,
            since,
            damage: Damage::default(),
            changed: now,
        }
    }

    /// The width seen at `now`: each width it goes through is one rustyline draws at in turn.
    pub(super) fn seen(&mut self, cols: usize, now: Instant) {
        if cols != self.cols {
            self.damage
                .resized(&self.prompt, &self.before, self.cols, cols);
            self.cols = cols;
            self.changed = now;
        }
    }

    /// The width last seen.
    pub(super) fn cols(&self) -> usize {
        self.cols
    }

    /// What rustyline's redraws broke.
    pub(super) fn damage(&self) -> &Damage {
        &self.damage
    }

    /// True when the repair may go at `now`, the editor's redraws being `redraws`: the width
    /// has rested, and nothing needs putting right or rustyline has no redraw left to make
    /// (its last was at the width there is now, or at one from which it does not draw again).
    pub(super) fn due(&self, redraws: Redraws, now: Instant) -> bool {
        let quiet = now.saturating_duration_since(self.changed);
        if quiet < SETTLES {
            return false;
        }
        if self.damage == Damage::default() || quiet >= REDRAW_AT_MOST {
            return true;
        }
        redraws.count > self.since
            && redraws
                .cols
                .is_some_and(|at| !redraws_at(&self.prompt, &self.line, at, self.cols))
    }
}

/// True when rustyline, its line drawn `old` columns wide, draws it again on hearing that the
/// terminal is `new` wide: when the width changed and the line (after `prompt`) takes more
/// than a row, or reaches the new last column.
fn redraws_at(prompt: &str, line: &str, old: usize, new: usize) -> bool {
    let width: usize = prompt
        .chars()
        .chain(line.chars())
        .map(|c| c.width().unwrap_or(0))
        .sum();
    old != new && (rows_taken(prompt, line, old) > 1 || width >= new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn redraws(count: u64, cols: usize) -> Redraws {
        Redraws {
            count,
            cols: Some(cols),
        }
    }

    #[test]
    fn rustyline_draws_again_a_line_whose_rows_change() {
        let long = "x".repeat(150);
        // 155 columns.
        assert!(redraws_at("bob> ", &long, 100, 160));
        assert!(redraws_at("bob> ", &long, 100, 45));
        assert!(!redraws_at("bob> ", &long, 100, 100));
        // On one row at 160: wider needs nothing, narrower than the line does.
        assert!(!redraws_at("bob> ", &long, 160, 170));
        assert!(redraws_at("bob> ", &long, 160, 155));
        assert!(redraws_at("bob> ", &long, 160, 100));
        // Two columns a character.
        assert!(redraws_at("bob> ", &"字".repeat(10), 40, 20));
        assert!(!redraws_at("bob> ", &"字".repeat(10), 40, 26));
    }

    #[test]
    fn the_repair_waits_for_the_redraw_at_the_new_width() {
        let t0 = Instant::now();
        let long = "x".repeat(150);
        // 5 redraws counted before the last look at 100 columns.
        let mut r = Resizing::new("bob> ", (&long, 150), 100, 5, t0);
        r.seen(45, at(t0, 10));
        assert_ne!(*r.damage(), Damage::default());
        // Redrawn at 45, but the width has not rested yet.
        assert!(!r.due(redraws(6, 45), at(t0, 40)));
        // Rested, but no redraw since the look, or the last at the old width.
        assert!(!r.due(redraws(5, 45), at(t0, 70)));
        assert!(!r.due(redraws(6, 100), at(t0, 70)));
        assert!(r.due(redraws(6, 45), at(t0, 70)));
        // Never redrawn: the repair goes all the same, in time.
        assert!(!r.due(redraws(5, 100), at(t0, 500)));
        assert!(r.due(redraws(5, 100), at(t0, 510)));
    }

    #[test]
    fn a_dragged_edge_waits_for_the_width_it_rests_at() {
        let t0 = Instant::now();
        let long = "x".repeat(150);
        let mut r = Resizing::new("bob> ", (&long, 150), 100, 0, t0);
        r.seen(80, at(t0, 10));
        r.seen(60, at(t0, 20));
        assert_eq!(r.cols(), 60);
        // The width rests from its last change on.
        assert!(!r.due(redraws(2, 60), at(t0, 60)));
        assert!(r.due(redraws(2, 60), at(t0, 70)));
        assert!(
            !r.due(redraws(1, 80), at(t0, 70)),
            "80 to 60 is drawn again"
        );
    }

    #[test]
    fn no_redraw_is_waited_for_where_rustyline_makes_none() {
        let t0 = Instant::now();
        let long = "x".repeat(150);
        // Wider to 160 (one row), then 170: rustyline draws at 160, not again at 170.
        let mut r = Resizing::new("bob> ", (&long, 150), 100, 0, t0);
        r.seen(160, at(t0, 10));
        r.seen(170, at(t0, 20));
        assert!(r.due(redraws(1, 160), at(t0, 70)));
        assert!(!r.due(redraws(0, 100), at(t0, 70)), "not even at 160");
        // A line that fits at every width: nothing to put right, nothing waited for.
        let mut short = Resizing::new("bob> ", ("hi", 2), 100, 0, t0);
        short.seen(40, at(t0, 10));
        assert_eq!(*short.damage(), Damage::default());
        assert!(!short.due(Redraws::default(), at(t0, 50)));
        assert!(short.due(Redraws::default(), at(t0, 60)));
    }
}
