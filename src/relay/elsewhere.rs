//! A room's members on the other relays of a shared store: each by its name's key, with its name as spelt, kept sorted for WHO, and those a session here handed over (its other relay has not said it holds them yet) held for a grace.

use std::collections::BTreeMap;
use std::time::Instant;

/// A name in the room through another relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Member {
    /// As its owner spells it.
    pub(super) name: String,
    /// Set for a name whose session here was taken over by another relay, in a room that
    /// relay has not said it is in yet: the name is taken for still present until then, and
    /// for gone after.
    pub(super) held_until: Option<Instant>,
}

/// A room's members through other relays, sorted by key.
#[derive(Debug, Default)]
pub(super) struct Elsewhere {
    /// By the name's key.
    members: BTreeMap<String, Member>,
}

impl Elsewhere {
    /// Takes `name` (of key `key`) for in the room; what it was before, if it was in.
    pub(super) fn enter(
        &mut self,
        key: &str,
        name: &str,
        held_until: Option<Instant>,
    ) -> Option<Member> {
        let member = Member {
            name: name.to_owned(),
            held_until,
        };
        self.members.insert(key.to_owned(), member)
    }

    /// Takes the name of `key` for gone: true if it was here.
    pub(super) fn leave(&mut self, key: &str) -> bool {
        self.members.remove(key).is_some()
    }

    /// Whether the name of `key` is in the room through another relay.
    pub(super) fn has(&self, key: &str) -> bool {
        self.members.contains_key(key)
    }

    /// How many names.
    pub(super) fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether it has no name.
    pub(super) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The names after `key` (all for `None`), in order: their keys and names.
    pub(super) fn after<'a>(
        &'a self,
        key: Option<&str>,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let from = match key {
            Some(k) => std::ops::Bound::Excluded(k.to_owned()),
            None => std::ops::Bound::Unbounded,
        };
        (self.members.range((from, std::ops::Bound::Unbounded)))
            .map(|(k, m)| (k.as_str(), m.name.as_str()))
    }

    /// How many names come after `key` (all for `None`).
    pub(super) fn count_after(&self, key: Option<&str>) -> usize {
        match key {
            Some(_) => self.after(key).count(),
            None => self.members.len(),
        }
    }

    /// Takes out the held names whose grace ended by `now`: their names.
    pub(super) fn expire(&mut self, now: Instant) -> Vec<String> {
        let due: Vec<String> = (self.members.iter())
            .filter(|(_, m)| m.held_until.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        (due.iter())
            .filter_map(|k| self.members.remove(k).map(|m| m.name))
            .collect()
    }

    /// Whether any name is held.
    pub(super) fn holds_any(&self) -> bool {
        self.members.values().any(|m| m.held_until.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn names_are_read_in_order_and_held_ones_expire() {
        let t0 = Instant::now();
        let mut e = Elsewhere::default();
        let held = Some(t0 + Duration::from_secs(5));
        assert_eq!(e.enter("zoe", "Zoe", None), None);
        assert_eq!(e.enter("al", "Al", held), None);
        assert_eq!(
            e.enter("al", "AL", None).and_then(|m| m.held_until),
            held,
            "told again: not new, and no longer held"
        );
        assert_eq!(e.enter("mia", "Mia", held), None);
        let names = |e: &Elsewhere, k: Option<&str>| {
            e.after(k).map(|(_, n)| n.to_owned()).collect::<Vec<_>>()
        };
        assert_eq!(names(&e, None), ["AL", "Mia", "Zoe"]);
        assert_eq!(names(&e, Some("b")), ["Mia", "Zoe"]);
        assert_eq!(e.count_after(Some("mia")), 1);
        assert!(e.holds_any());
        assert!(e.expire(t0 + Duration::from_secs(4)).is_empty());
        assert_eq!(e.expire(t0 + Duration::from_secs(5)), ["Mia"]);
        assert!(!e.holds_any());
        assert!(e.leave("zoe") && !e.leave("zoe"));
        assert_eq!((e.len(), e.has("al"), e.has("zoe")), (1, true, false));
    }
}
