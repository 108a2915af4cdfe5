//! Tab completion for the terminal client: commands, the rooms after the commands that take one, and the names of the people in the rooms.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::proto::dm::{DM_MARK, label};
use crate::proto::name::fold;

/// The commands, as completion offers them.
pub const COMMANDS: [&str; 13] = [
    "/help", "/history", "/join", "/me", "/msg", "/next", "/part", "/prev", "/query", "/quit",
    "/rooms", "/switch", "/who",
];

/// The commands whose first word is a room.
const ROOM_COMMANDS: [&str; 4] = ["/join", "/part", "/switch", "/who"];

/// The commands whose first word is a person.
const PERSON_COMMANDS: [&str; 4] = ["/msg", "/m", "/query", "/q"];

/// The names in the rooms and the rooms entered, kept up to date by the session and read by
/// completion.
#[derive(Debug, Clone, Default)]
pub struct Names(Arc<Mutex<BTreeSet<String>>>, Arc<Mutex<BTreeSet<String>>>);

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

    /// Adds a room (entered).
    pub fn add_room(&self, room: &str) {
        lock(&self.1).insert(room.to_owned());
    }

    /// Removes a room (parted).
    pub fn remove_room(&self, room: &str) {
        lock(&self.1).remove(room);
    }

    /// Makes the rooms `rooms` when they are not as many as those known: one entered with
    /// nothing to say (a conversation with nothing new) is known too.
    pub fn keep_rooms(&self, rooms: &[String]) {
        let mut set = lock(&self.1);
        if set.len() != rooms.len() {
            set.clear();
            set.extend(rooms.iter().cloned());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        lock(&self.0)
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
        let first = before.split_whitespace().next().unwrap_or("");
        let second_word = before[..start].split_whitespace().count() == 1;
        let command = first.to_lowercase();
        if second_word && ROOM_COMMANDS.contains(&command.as_str()) {
            let typed = word.strip_prefix('#').unwrap_or(word);
            let typed = fold(typed);
            let found = (lock(&self.1).iter())
                .filter(|r| fold(r).starts_with(&typed))
                .map(|r| format!("{} ", label(r)))
                .collect();
            return (start, found);
        }
        if second_word && PERSON_COMMANDS.contains(&command.as_str()) {
            // The people in the rooms, and those of the private conversations.
            let typed = fold(word.strip_prefix(DM_MARK).unwrap_or(word));
            let mut people: BTreeSet<String> = self.lock().clone();
            people.extend(
                (lock(&self.1).iter()).filter_map(|r| r.strip_prefix(DM_MARK).map(str::to_owned)),
            );
            let found = (people.into_iter())
                .filter(|n| fold(n).starts_with(&typed))
                .map(|n| format!("{n} "))
                .collect();
            return (start, found);
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

fn lock(set: &Mutex<BTreeSet<String>>) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
    // A panic elsewhere while holding the lock leaves a set that is still a set.
    set.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        names.add_room("@Zoë");
        assert_eq!(
            names.complete("/msg a", 6),
            (5, vec!["Alfred ".to_owned(), "alice ".to_owned()])
        );
        assert_eq!(names.complete("/query @z", 9), (7, vec!["Zoë ".to_owned()]));
        assert_eq!(
            names.complete("/switch @", 9),
            (8, vec!["@Zoë ".to_owned()])
        );
        names.remove("alice");
        names.add("bob");
        assert_eq!(names.complete("b", 1).1, vec!["bob: ".to_owned()]);
        assert!(names.complete("al", 2).1 == vec!["Alfred: ".to_owned()]);
    }

    #[test]
    fn rooms_after_the_commands_that_take_one() {
        let names = Names::default();
        names.set(&["olga".into()]);
        for room in ["ops", "lunch", "office"] {
            names.add_room(room);
        }
        names.remove_room("lunch");
        let rooms = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names.complete("/join o", 7),
            (6, rooms(&["#office ", "#ops "]))
        );
        assert_eq!(names.complete("/switch #op", 11), (8, rooms(&["#ops "])));
        assert_eq!(
            names.complete("/part ", 6),
            (6, rooms(&["#office ", "#ops "]))
        );
        assert_eq!(names.complete("/PART of", 8), (6, rooms(&["#office "])));
        // After the room, and elsewhere, names.
        assert_eq!(names.complete("/part #ops ol", 13), (11, rooms(&["olga "])));
        assert_eq!(names.complete("o", 1), (0, rooms(&["olga: "])));
    }
}
