//! Tab completion for the terminal client: commands, and the names of the people in the room.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::proto::name::fold;

/// The commands, as completion offers them.
pub const COMMANDS: [&str; 5] = ["/help", "/history", "/me", "/quit", "/who"];

/// The names in the room, kept up to date by the session and read by completion.
#[derive(Debug, Clone, Default)]
pub struct Names(Arc<Mutex<BTreeSet<String>>>);

impl Names {
    /// Replaces every name (a `/who` answer).
    pub fn set(&self, names: &[String]) {
        let mut set = self.lock();
        set.clear();
        set.extend(names.iter().cloned());
    }

    /// Adds a name (someone joined or spoke).
    pub fn add(&self, name: &str) {
        let mut set = self.lock();
        if !set.contains(name) {
            set.insert(name.to_owned());
        }
    }

    /// Removes a name (someone left).
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // A panic elsewhere while holding the lock leaves a set that is still a set.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What completes the word that ends at byte `pos` of `line`: where that word starts,
    /// and the candidates (a command at the start of the line, else a name, case-insensitive;
    /// a name that starts the line gets ": " after it, as in IRC).
    pub fn complete(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        if start == 0 && word.starts_with('/') {
            let found = COMMANDS.iter().filter(|c| c.starts_with(word));
            return (0, found.map(|c| format!("{c} ")).collect());
        }
        if word.is_empty() {
            return (pos, Vec::new());
        }
        let key = fold(word);
        let suffix = if start == 0 { ": " } else { " " };
        let found = self
            .lock()
            .iter()
            .filter(|n| fold(n).starts_with(&key))
            .map(|n| format!("{n}{suffix}"))
            .collect();
        (start, found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_then_names() {
        let names = Names::default();
        names.set(&["alice".into(), "Alfred".into(), "小明".into()]);
        assert_eq!(names.complete("/hi", 3), (0, vec!["/history ".to_owned()]));
        assert_eq!(names.complete("/", 1).1.len(), COMMANDS.len());
        assert_eq!(
            names.complete("al", 2),
            (0, vec!["Alfred: ".to_owned(), "alice: ".to_owned()])
        );
        assert_eq!(names.complete("hi ali", 6), (3, vec!["alice ".to_owned()]));
        assert_eq!(
            names.complete("你好 小", "你好 小".len()),
            (7, vec!["小明 ".to_owned()])
        );
        assert_eq!(names.complete("hi ", 3).1, Vec::<String>::new());
        names.remove("alice");
        names.add("bob");
        assert_eq!(names.complete("b", 1).1, vec!["bob: ".to_owned()]);
        assert!(names.complete("al", 2).1 == vec!["Alfred: ".to_owned()]);
    }
}
