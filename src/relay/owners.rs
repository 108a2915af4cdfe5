//! Who owns each name: the key that first joined under it (by the name's look-alike key), so that a name belongs to someone. The shell keeps it on disk; the relay tells it when it changed.

use std::collections::BTreeMap;

use crate::proto::secure::keys::PublicKey;

/// One name's owner, as kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    /// The name as it was first spelt.
    pub name: String,
    /// The key that owns it, as text.
    pub key: String,
}

/// Every name's owner, by the name's key ([`crate::proto::name::name_key`]).
#[derive(Debug, Default, Clone)]
pub struct Owners {
    by_key: BTreeMap<String, (String, PublicKey)>,
    /// Names bound since the shell last wrote them.
    changed: bool,
}

impl Owners {
    /// The owners kept on disk, by name key; entries whose key does not read are skipped
    /// (and told, as their names, for the shell to log).
    pub fn from_kept(kept: BTreeMap<String, Owner>) -> (Self, Vec<String>) {
        let mut owners = Self::default();
        let mut bad = Vec::new();
        for (name_key, owner) in kept {
            match owner.key.parse() {
                Ok(key) => {
                    owners.by_key.insert(name_key, (owner.name, key));
                }
                Err(_) => bad.push(owner.name),
            }
        }
        (owners, bad)
    }

    /// What to keep on disk.
    pub fn to_kept(&self) -> BTreeMap<String, Owner> {
        (self.by_key.iter())
            .map(|(k, (name, key))| {
                (
                    k.clone(),
                    Owner {
                        name: name.clone(),
                        key: key.to_string(),
                    },
                )
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
            self.changed = true;
        }
    }

    /// Frees the name whose key is `name_key`: its owner, if it had one.
    pub fn release(&mut self, name_key: &str) -> Option<(String, PublicKey)> {
        let gone = self.by_key.remove(name_key);
        self.changed |= gone.is_some();
        gone
    }

    /// True when names were bound since [`Owners::written`].
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The shell wrote them.
    pub fn written(&mut self) {
        self.changed = false;
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
