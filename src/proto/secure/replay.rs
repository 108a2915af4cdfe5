//! The counters a transport has already opened: a sliding window of bits (RFC 6479, as WireGuard keeps it), so that a replayed datagram is refused and a reordered one is not.

use super::REJECT_AFTER_MESSAGES;

/// Words of the bitmap: 2048 bits.
const WORDS: usize = 32;
/// Bits of a word.
const WORD: u64 = 64;
/// How far behind the highest counter a datagram may be and still be taken: the bitmap
/// less one word, the word being cleared as the window moves (RFC 6479, section 2).
pub const WINDOW: u64 = WORDS as u64 * WORD - WORD;

/// Counters taken so far, the highest and those at most [`WINDOW`] below it.
#[derive(Clone)]
pub struct Window {
    /// The highest counter taken (0 before any: counter 0's bit tells if it was).
    top: u64,
    bits: [u64; WORDS],
}

impl Default for Window {
    fn default() -> Self {
        Self {
            top: 0,
            bits: [0; WORDS],
        }
    }
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window").field("top", &self.top).finish()
    }
}

impl Window {
    /// The highest counter taken (0 before any).
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Takes `counter` if it was never taken and is not too far behind: true when taken.
    /// Call it only for a datagram that authenticated, so that forged counters move nothing.
    pub fn take(&mut self, counter: u64) -> bool {
        if counter >= REJECT_AFTER_MESSAGES {
            return false;
        }
        let word = counter / WORD;
        if counter > self.top {
            // The window moves up: the words it enters are cleared (all of them, at most).
            let top_word = self.top / WORD;
            let entered = (word - top_word).min(WORDS as u64);
            for i in 1..=entered {
                self.bits[((top_word + i) % WORDS as u64) as usize] = 0;
            }
            self.top = counter;
        } else if self.top - counter > WINDOW {
            return false;
        }
        let slot = &mut self.bits[(word % WORDS as u64) as usize];
        let bit = 1 << (counter % WORD);
        if *slot & bit != 0 {
            return false;
        }
        *slot |= bit;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn each_counter_is_taken_once() {
        let mut w = Window::default();
        assert!(w.take(0));
        assert!(!w.take(0));
        assert!(w.take(1));
        assert!(w.take(5));
        assert!(w.take(3), "late but within the window");
        assert!(!w.take(3));
        assert!(!w.take(5));
    }

    #[test]
    fn a_counter_too_far_behind_is_refused() {
        let mut w = Window::default();
        assert!(w.take(10_000));
        assert!(w.take(10_000 - WINDOW), "the oldest the window holds");
        assert!(!w.take(10_000 - WINDOW - 1), "one older");
        assert!(!w.take(0));
    }

    #[test]
    fn a_jump_clears_what_the_window_leaves() {
        let mut w = Window::default();
        for c in 0..100 {
            assert!(w.take(c));
        }
        // Far ahead: everything before is out of the window, and the reused words are clear.
        assert!(w.take(1_000_000));
        for c in (1_000_000 - WINDOW)..1_000_000 {
            assert!(w.take(c), "{c} was never taken");
        }
    }

    #[test]
    fn counters_at_the_limit_are_refused() {
        let mut w = Window::default();
        assert!(!w.take(REJECT_AFTER_MESSAGES));
        assert!(!w.take(u64::MAX));
        assert!(w.take(REJECT_AFTER_MESSAGES - 1));
    }

    proptest! {
        /// Against a model that remembers every counter: a counter is taken exactly when it
        /// was never taken and is within the window of the highest taken before it.
        #[test]
        fn the_window_agrees_with_a_set(counters in prop::collection::vec(0u64..6000, 1..400)) {
            let mut w = Window::default();
            let mut seen = BTreeSet::new();
            let mut top: Option<u64> = None;
            for c in counters {
                let expected = !seen.contains(&c) && top.is_none_or(|t| c > t || t - c <= WINDOW);
                prop_assert_eq!(w.take(c), expected, "counter {}", c);
                if expected {
                    seen.insert(c);
                    top = Some(top.map_or(c, |t| t.max(c)));
                }
            }
        }
    }
}
