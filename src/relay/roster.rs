//! Who is in the room, by name: each name's key (see [`name_key`]) and the session's address,
//! kept sorted by key, so that a name is used by one client at a time, and a WHO answer is
//! read off in order, page by page, with no sort and no copy of the room.
//!
//! [`name_key`]: crate::proto::name::name_key

use std::net::SocketAddr;

/// The names of the room, sorted by key.
#[derive(Debug, Default)]
pub(super) struct Roster {
    entries: Vec<(String, SocketAddr)>,
}

impl Roster {
    /// The address of the session with the name of `key`.
    pub(super) fn get(&self, key: &str) -> Option<SocketAddr> {
        self.find(key).ok().map(|i| self.entries[i].1)
    }

    /// Gives the name of `key` to the session at `addr` (a moved session keeps its name).
    pub(super) fn insert(&mut self, key: String, addr: SocketAddr) {
        match self.find(&key) {
            Ok(i) => self.entries[i].1 = addr,
            Err(i) => self.entries.insert(i, (key, addr)),
        }
    }

    /// Frees the name of `key`.
    pub(super) fn remove(&mut self, key: &str) {
        if let Ok(i) = self.find(key) {
            self.entries.remove(i);
        }
    }

    /// Where the names after `key` begin (all of them for `None`).
    pub(super) fn after(&self, key: Option<&str>) -> usize {
        key.map_or(0, |k| {
            self.entries.partition_point(|(e, _)| e.as_str() <= k)
        })
    }

    /// The names from position `from` on, in order: their keys and addresses.
    pub(super) fn from(&self, from: usize) -> &[(String, SocketAddr)] {
        &self.entries[from.min(self.entries.len())..]
    }

    /// Gives back the memory of names gone, when most are.
    pub(super) fn shrink(&mut self) {
        if self.entries.capacity() > 4 * self.entries.len() + 64 {
            self.entries.shrink_to_fit();
        }
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(e, _)| e.as_str().cmp(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_sorted_and_are_read_on_from_a_key() {
        let a = |p: u16| SocketAddr::from(([192, 0, 2, 1], p));
        let mut r = Roster::default();
        for (k, p) in [("mia", 1), ("bo", 2), ("zoe", 3), ("al", 4)] {
            r.insert(k.to_owned(), a(p));
        }
        let keys =
            |s: &[(String, SocketAddr)]| s.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(keys(r.from(0)), ["al", "bo", "mia", "zoe"]);
        assert_eq!(r.get("mia"), Some(a(1)));
        r.insert("mia".into(), a(9));
        assert_eq!(
            (r.get("mia"), r.from(0).len()),
            (Some(a(9)), 4),
            "moved, not added"
        );
        assert_eq!(r.after(None), 0);
        assert_eq!(keys(r.from(r.after(Some("bo")))), ["mia", "zoe"]);
        // A key that left meanwhile still says where to go on.
        r.remove("bo");
        assert_eq!(keys(r.from(r.after(Some("bo")))), ["mia", "zoe"]);
        assert_eq!(r.get("bo"), None);
        assert!(r.from(r.after(Some("zz"))).is_empty());
        assert!(r.from(99).is_empty());
    }
}
