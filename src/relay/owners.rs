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
    by_key: BTreeMap<String, (String, PublicKey)>,
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
        for line in lines {
            let name_key = name_key(&line.name);
            match line.key.map(|k| k.parse::<PublicKey>()) {
                None => {
                    owners.by_key.remove(&name_key);
                }
                Some(Err(_)) => unkept.unreadable.push(line.name),
                Some(Ok(key)) => match owners.by_key.get(&name_key) {
                    Some((held, _)) if *held != line.name => unkept.look_alikes.push(line.name),
                    _ => {
                        owners.by_key.insert(name_key, (line.name, key));
                    }
                },
            }
        }
        (owners, unkept)
    }

    /// Every owner as one binding each: the journal made anew.
    pub fn bindings(&self) -> Vec<Binding> {
        (self.by_key.values())
            .map(|(name, key)| Binding {
                name: name.clone(),
                key: Some(key.to_string()),
            })
            .collect()
    }

    /// The owner of the name whose key is `name_key`: its first spelling and its key.
    pub fn get(&self, name_key: &str) -> Option<&(String, PublicKey)> {
        self.by_key.get(name_key)
    }

    /// Binds the name to `key`, if it has no owner yet.
    pub fn bind(&mut self, name_key: &str, name: &str, key: PublicKey) {
        if !self.by_key.contains_key(name_key) {
            self.by_key
                .insert(name_key.to_owned(), (name.to_owned(), key));
            self.unwritten.push(Binding {
                name: name.to_owned(),
                key: Some(key.to_string()),
            });
        }
    }

    /// Frees the name whose key is `name_key`: its owner, if it had one.
    pub fn release(&mut self, name_key: &str) -> Option<(String, PublicKey)> {
        let gone = self.by_key.remove(name_key)?;
        self.unwritten.push(Binding {
            name: gone.0.clone(),
            key: None,
        });
        Some(gone)
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

    #[test]
    fn bindings_replay_in_order_and_keys_are_made_again_from_the_names() {
        let (a, b) = (Keypair::generate().public(), Keypair::generate().public());
        let freed = Binding {
            name: "Bob".into(),
            key: None,
        };
        let lines = [
            bound("Alice", a),
            bound("bob", b),
            freed,
            bound("carol", a),
            Binding {
                name: "dave".into(),
                key: Some("not a key".into()),
            },
        ];
        let (owners, unkept) = Owners::from_bindings(lines);
        assert_eq!(
            owners.get(&name_key("alice")),
            Some(&("Alice".to_owned(), a))
        );
        assert!(
            owners.get(&name_key("bob")).is_none(),
            "freed by a look-alike spelling"
        );
        assert_eq!(owners.len(), 2);
        assert_eq!(unkept.unreadable, ["dave"]);
        assert!(!owners.changed(), "nothing to write: it was read");
        let (again, _) = Owners::from_bindings(owners.bindings());
        assert_eq!(again.bindings(), owners.bindings());
    }

    #[test]
    fn a_name_that_became_a_look_alike_leaves_the_first_its_owner() {
        let (a, m) = (Keypair::generate().public(), Keypair::generate().public());
        // Two spellings whose keys were different when they were bound, the same now.
        let (owners, unkept) = Owners::from_bindings([bound("alice", a), bound("ALICE", m)]);
        assert_eq!(
            owners.get(&name_key("alice")),
            Some(&("alice".to_owned(), a))
        );
        assert_eq!(unkept.look_alikes, ["ALICE"]);
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
        assert_eq!(
            owners.release(&name_key("ALICE")).map(|(n, _)| n),
            Some("alice".into())
        );
        assert_eq!(
            owners.unwritten(),
            [Binding {
                name: "alice".into(),
                key: None
            }]
        );
    }
}
