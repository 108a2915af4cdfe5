//! Who owns each name across the cluster: the key-value bucket `URC_NAMES`, a name's entry made with an atomic create by the first relay that binds it, watched by every relay so that each knows every name's owner.

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};
use smol::stream::StreamExt as _;

use super::names::{NAMES_BUCKET, name_entry};
use super::worker::{Followed, Worker};
use crate::proto::name::name_key;
use crate::proto::secure::keys::PublicKey;
use crate::relay::owners::Binding;

/// How long a binding NATS failed waits before it is tried again.
const BIND_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// An entry's value: the name as first spelt, and its owner's key.
#[derive(Debug, Serialize, Deserialize)]
struct Owner {
    name: String,
    key: String,
}

impl Worker {
    /// The bucket of names' owners (made if need be) and every owner it holds now; a task
    /// hands the relay each new one from then on.
    pub(super) async fn watch_owners(
        &self,
    ) -> Result<(kv::Store, Vec<(String, PublicKey)>), String> {
        let failed = |e: &dyn std::fmt::Display| {
            format!("cannot open the names' bucket {NAMES_BUCKET}: {e}")
        };
        let store = (self.bucket(
            NAMES_BUCKET,
            "urc: each name's owner, by the name's key",
            std::time::Duration::ZERO,
        ))
        .await
        .map_err(|e| failed(&e))?;
        // Watched before the owners are read, so that none bound meanwhile is missed.
        let mut watch = store.watch_all().await.map_err(|e| failed(&e))?;
        let mut owners = Vec::new();
        let mut keys = store.keys().await.map_err(|e| failed(&e))?;
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| failed(&e))?;
            if let Some(owner) =
                (store.get(&key).await.map_err(|e| failed(&e))?).and_then(|value| owner_of(&value))
            {
                owners.push(owner);
            }
        }
        let out = self.out.clone();
        tokio::spawn(async move {
            while let Some(entry) = watch.next().await {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        tracing::debug!(error = %e, "the names' watch failed");
                        continue;
                    }
                };
                tracing::debug!(key = entry.key, "a name's owner from the cluster's bucket");
                if entry.operation != kv::Operation::Put {
                    continue;
                }
                if let Some((name, key)) = owner_of(&entry.value)
                    && out.send(Followed::Owner(name, key)).await.is_err()
                {
                    return;
                }
            }
        });
        Ok((store, owners))
    }

    /// Writes the relay's new bindings to the bucket, each only if its name has no entry
    /// yet; a name that has one already (another relay bound it first) is handed back to the
    /// relay with its owner.
    pub(super) async fn bind(&self, names: &kv::Store, bindings: Vec<Binding>) {
        for b in bindings {
            let Some(key) = b.key else {
                // Freeing a name is done on the files of one relay (--release-name), not yet
                // in a cluster's bucket.
                continue;
            };
            let entry = name_entry(&name_key(&b.name));
            let value = serde_json::to_vec(&Owner {
                name: b.name.clone(),
                key: key.clone(),
            })
            .expect("an owner serialises");
            let mut said = false;
            loop {
                match names.create(&entry, value.clone().into()).await {
                    Ok(_) => tracing::debug!(entry, "bound a name in the cluster's bucket"),
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                        if let Ok(Some(held)) = names.get(&entry).await
                            && let Some((name, owner)) = owner_of(&held)
                            && owner.to_string() != key
                            && self.out.send(Followed::Owner(name, owner)).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        if !std::mem::replace(&mut said, true) {
                            tracing::error!(error = %e, "cannot write a name's owner to the cluster's bucket: trying again (meanwhile another relay could give the name to another key)");
                        }
                        if self.out.is_closed() {
                            return;
                        }
                        tokio::time::sleep(BIND_RETRY).await;
                        continue;
                    }
                }
                break;
            }
        }
    }
}

impl Worker {
    /// Writes `bindings` (a file-store relay's owners) to the bucket, each only if its name
    /// has no entry yet: how many were written, how many it held for the same key, and the
    /// names it held for another key (which keep that owner).
    pub(super) async fn import_names(
        &self,
        names: &kv::Store,
        bindings: Vec<Binding>,
    ) -> Result<super::worker::NamesImported, String> {
        let (mut put, mut held, mut other) = (0, 0, Vec::new());
        for b in bindings {
            let Some(key) = b.key else { continue };
            let entry = name_entry(&name_key(&b.name));
            let value = serde_json::to_vec(&Owner {
                name: b.name.clone(),
                key: key.clone(),
            })
            .expect("an owner serialises");
            match names.create(&entry, value.into()).await {
                Ok(_) => put += 1,
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    let owner = (names.get(&entry).await)
                        .map_err(|e| format!("cannot read the names' bucket: {e}"))?
                        .and_then(|value| owner_of(&value));
                    match owner {
                        Some((_, owner)) if owner.to_string() == key => held += 1,
                        _ => other.push(b.name),
                    }
                }
                Err(e) => return Err(format!("cannot write to the names' bucket: {e}")),
            }
        }
        Ok((put, held, other))
    }
}

/// The name and owner an entry's value says, if it is one.
fn owner_of(value: &[u8]) -> Option<(String, PublicKey)> {
    let owner: Owner = serde_json::from_slice(value).ok()?;
    crate::proto::name::check_name(&owner.name).ok()?;
    Some((owner.name, owner.key.parse().ok()?))
}
