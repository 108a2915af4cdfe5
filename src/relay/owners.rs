//! Who owns each name: the key that first joined under it (by the name's look-alike key), so that a name belongs to someone. The shell keeps it on disk as a journal of bindings; the relay hands it what changed.

use std::collections::BTreeMap;

use crate::proto::name::name_key;
use crate::proto::secure::keys::PublicKey;

/// One line of the journal: `name` bound to `key`, or freed (`key` none).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Binding {
    /// The name as it was first spelt.
    pub name: String,
    /// The key that owns it from now on, as text; none when it was freed.
    pub key: Option<String>,
}

/// What reading the bindings found that they could not keep.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unkept {
    /// Names whose key does not read: they are free.
    pub unreadable: Vec<String>,
    /// Names that look like a name bound before them (the Unicode data changed since they
    /// were bound, and made them look-alikes): the one bound first keeps its owner.
    pub look_alikes: Vec<String>,
}

/// Every name's owner, by the name's key ([`crate::proto::name::name_key`]).
#[derive(Debug, Default, Clone)]
pub struct Owners {
    /// The first spelling, the owner, and the order it was bound in (kept in the journal
    /// made anew, so that the first bound stays first).
    by_key: BTreeMap<String, (String, PublicKey, u64)>,
    /// The order the next binding gets.
    next: u64,
    /// Bindings made since the shell last wrote them, in order.
    unwritten: Vec<Binding>,
}

impl Owners {
    /// The owners the bindings `lines` make, in order (later ones win). Each name's key is
    /// made again from its spelling, so that a new version of the Unicode data, which may
    /// change a name's key, loses no owner.
    pub fn from_bindings(lines: impl IntoIterator<Item = Binding>) -> (Self, Unkept) {
        let mut owners = Self::default();
        let mut unkept = Unkept::default();
        // Names bound while another that looks like them (now) held the key, in order: the
        // first of them takes its owner back if the one before it is freed.
        let mut shadowed: BTreeMap<String, Vec<(String, PublicKey)>> = BTreeMap::new();
        for line in lines {
            let name_key = name_key(&line.name);
            let held = owners.by_key.get(&name_key).map(|(held, ..)| held);
            match line.key.map(|k| k.parse::<PublicKey>()) {
                // Freed: only the name as it was bound (a look-alike that became one since
                // is another's).
                None if held == Some(&line.name) => {
                    owners.by_key.remove(&name_key);
                    let next = shadowed.get_mut(&name_key).filter(|s| !s.is_empty());
                    if let Some((name, key)) = next.map(|s| s.remove(0)) {
                        owners.bind_read(name_key, name, key);
                    }
                }
                None => {
                    if let Some(s) = shadowed.get_mut(&name_key) {
                        s.retain(|(n, _)| *n != line.name);
                    }
                }
                Some(Err(_)) => unkept.unreadable.push(line.name),
                Some(Ok(key)) if held.is_some_and(|h| *h != line.name) => {
                    shadowed.entry(name_key).or_default().push((line.name, key));
                }
                Some(Ok(key)) => owners.bind_read(name_key, line.name, key),
            }
        }
        unkept.look_alikes = (shadowed.into_values().flatten())
            .map(|(name, _)| name)
            .collect();
        (owners, unkept)
    }

    /// Binds `name` to `key`, the latest bound; nothing to write (as read back).
    fn bind_read(&mut self, name_key: String, name: String, key: PublicKey) {
        self.by_key.insert(name_key, (name, key, self.next));
        self.next += 1;
    }

    /// Every owner as one binding each, in the order they were bound: the journal made anew.
    pub fn bindings(&self) -> Vec<Binding> {
        let mut owners: Vec<&(String, PublicKey, u64)> = self.by_key.values().collect();
        owners.sort_by_key(|(.., order)| *order);
        (owners.into_iter())
            .map(|(name, key, _)| Binding {
                name: name.clone(),
                key: Some(key.to_string()),
            })
            .collect()
    }

    /// The owner of the name whose key is `name_key`: its first spelling and its key.
    pub fn get(&self, name_key: &str) -> Option<(&str, PublicKey)> {
        self.by_key
            .get(name_key)
            .map(|(name, key, _)| (name.as_str(), *key))
    }

    /// Binds the name to `key`, if it has no owner yet.
    pub fn bind(&mut self, name_key: &str, name: &str, key: PublicKey) {
        if !self.by_key.contains_key(name_key) {
            self.bind_read(name_key.to_owned(), name.to_owned(), key);
            self.unwritten.push(Binding {
                name: name.to_owned(),
                key: Some(key.to_string()),
            });
        }
    }

    /// Takes `key` as the owner of the name, as another relay of a cluster bound it (so
    /// nothing to write): it replaces a binding of this relay's that lost to it.
    pub fn learn(&mut self, name_key: &str, name: &str, key: PublicKey) {
        match self.by_key.get_mut(name_key) {
            Some(owner) => {
                owner.1 = key;
            }
            None => self.bind_read(name_key.to_owned(), name.to_owned(), key),
        }
    }

    /// Frees the name whose key is `name_key`: its owner, if it had one.
    pub fn release(&mut self, name_key: &str) -> Option<(String, PublicKey)> {
        let (name, key, _) = self.by_key.remove(name_key)?;
        self.unwritten.push(Binding {
            name: name.clone(),
            key: None,
        });
        Some((name, key))
    }

    /// True when names were bound or freed since [`Owners::written`].
    pub fn changed(&self) -> bool {
        !self.unwritten.is_empty()
    }

    /// The bindings made since [`Owners::written`], in order: what the shell appends.
    pub fn unwritten(&self) -> &[Binding] {
        &self.unwritten
    }

    /// The shell wrote them.
    pub fn written(&mut self) {
        self.unwritten.clear();
    }

    /// How many names have owners.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// True when no name has an owner.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::secure::keys::Keypair;

    fn bound(name: &str, key: PublicKey) -> Binding {
        Binding {
            name: name.into(),
            key: Some(key.to_string()),
        }
    }

    fn freed(name: &str) -> Binding {
        Binding {
            name: name.into(),
            key: None,
        }
    }

    #[test]
    fn bindings_replay_in_order_and_keys_are_made_again_from_the_names() {
        let (a, b) = (Keypair::generate().public(), Keypair::generate().public());
        let lines = [
            bound("Alice", a),
            bound("bob", b),
            freed("Bob"),
            bound("carol", a),
            bound("erin", b),
            freed("erin"),
            Binding {
                name: "dave".into(),
                key: Some("not a key".into()),
            },
        ];
        let (owners, unkept) = Owners::from_bindings(lines);
        assert_eq!(owners.get(&name_key("alice")), Some(("Alice", a)));
        assert_eq!(
            owners.get(&name_key("bob")),
            Some(("bob", b)),
            "freed under another spelling"
        );
        assert!(owners.get(&name_key("erin")).is_none(), "freed");
        assert_eq!(owners.len(), 3);
        assert_eq!(unkept.unreadable, ["dave"]);
        assert!(!owners.changed(), "nothing to write: it was read");
        let (again, _) = Owners::from_bindings(owners.bindings());
        assert_eq!(again.bindings(), owners.bindings());
    }

    #[test]
    fn a_name_that_became_a_look_alike_leaves_the_first_its_owner() {
        let (a, m) = (Keypair::generate().public(), Keypair::generate().public());
        // Two spellings whose keys were different when they were bound, the same now.
        let (owners, unkept) = Owners::from_bindings([bound("Alice", m), bound("alice", a)]);
        assert_eq!(owners.get(&name_key("alice")), Some(("Alice", m)));
        assert_eq!(unkept.look_alikes, ["alice"]);
        // Freeing the look-alike frees nothing of the first's.
        let (owners, unkept) =
            Owners::from_bindings([bound("Alice", m), bound("alice", a), freed("alice")]);
        assert_eq!(owners.get(&name_key("alice")), Some(("Alice", m)));
        assert!(unkept.look_alikes.is_empty(), "freed: {unkept:?}");
        // Freeing the first gives the look-alike its owner back.
        let (owners, unkept) =
            Owners::from_bindings([bound("Alice", m), bound("alice", a), freed("Alice")]);
        assert_eq!(owners.get(&name_key("alice")), Some(("alice", a)));
        assert!(unkept.look_alikes.is_empty());
        // Made anew, the journal keeps the first bound first, whatever the names' order.
        let (owners, _) = Owners::from_bindings([bound("zed", a), bound("Alice", m)]);
        let names: Vec<String> = owners.bindings().into_iter().map(|b| b.name).collect();
        assert_eq!(names, ["zed", "Alice"]);
    }

    #[test]
    fn what_changed_is_handed_out_once() {
        let mut owners = Owners::default();
        let a = Keypair::generate().public();
        owners.bind(&name_key("alice"), "alice", a);
        owners.bind(&name_key("alice"), "alice", Keypair::generate().public());
        assert_eq!(owners.unwritten(), [bound("alice", a)]);
        owners.written();
        assert!(!owners.changed());
        let gone = owners.release(&name_key("ALICE")).map(|(n, _)| n);
        assert_eq!(gone.as_deref(), Some("alice"));
        assert_eq!(owners.unwritten(), [freed("alice")]);
    }
}
