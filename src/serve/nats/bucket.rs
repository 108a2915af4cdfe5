//! The presence bucket `URC_PRESENCE` on the NATS side: this relay's members' entries written in order (a departure only over an entry still its own), its lease renewed, every entry watched into the [`Book`], and what the book tells handed to the relay.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use smol::stream::StreamExt as _;
use tokio::time::Instant;
use uuid::Uuid;

use super::names::{PRESENCE_BUCKET, lease_entry};
use super::presence::{BUCKET_AGE, Book, LEASE_EVERY, Member, RENEW_EVERY, Told};
use super::worker::{Followed, Worker};
use crate::proto::wire::Change;

/// How often the book is swept for relays whose lease ran out.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// This relay's end of the presence bucket: where its members' changes go.
pub(super) struct Presence {
    writes: tokio::sync::mpsc::UnboundedSender<Write>,
}

/// What the writer does, one after the other, so that two writes of one entry never race.
enum Write {
    /// This relay's members' changes, each with its room's key.
    Changes(Vec<(String, Change)>),
    /// Write the entries again where the bucket may differ, or all of them (`true`).
    Reconcile(bool),
}

impl Presence {
    /// Writes `changes` (of this relay's members, each with its room's key) to the bucket,
    /// in order, without waiting.
    pub(super) fn write(&self, changes: Vec<(String, Change)>) {
        let _ = self.writes.send(Write::Changes(changes));
    }
}

/// The writer's: this relay's id, its members' entries as it means them to be, and whether
/// the bucket may differ from them (a write failed).
struct Mine {
    me: Uuid,
    entries: HashMap<String, Member>,
    dirty: bool,
}

impl Worker {
    /// The presence bucket (made if need be), watched from its first entry on, this relay's
    /// lease renewed and its members' changes written, each by a task of its own.
    pub(super) async fn open_presence(&self) -> Result<Presence, String> {
        let failed = |e: &dyn std::fmt::Display| {
            format!("cannot open the presence bucket {PRESENCE_BUCKET}: {e}")
        };
        let store = (self.bucket(
            PRESENCE_BUCKET,
            "urc: who is in each room through which relay, and each relay's lease",
            BUCKET_AGE,
        ))
        .await
        .map_err(|e| failed(&e))?;
        let me = Uuid::new_v4();
        let book = Arc::new(Mutex::new(Book::new(me)));
        let mut watch = (store.watch_with_history(">").await).map_err(|e| failed(&e))?;
        let (out, watched) = (self.out.clone(), book.clone());
        tokio::spawn(async move {
            while let Some(entry) = watch.next().await {
                let Ok(entry) = entry else { continue };
                let now = Instant::now().into_std();
                let told = {
                    let mut book = watched.lock().expect("not poisoned");
                    match (entry.key.strip_prefix("r."), entry.operation) {
                        (Some(id), kv::Operation::Put) => match Uuid::try_parse(id) {
                            Ok(relay) => book.lease(relay, now),
                            Err(_) => Vec::new(),
                        },
                        (Some(_), _) => Vec::new(),
                        (None, kv::Operation::Put) => {
                            book.entry(&entry.key, Some(&entry.value), now)
                        }
                        (None, _) => book.entry(&entry.key, None, now),
                    }
                };
                if !tell(&out, told).await {
                    return;
                }
            }
        });
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Write>();
        let (writes, written) = (store.clone(), book.clone());
        tokio::spawn(async move {
            let mut mine = Mine {
                me,
                entries: HashMap::new(),
                dirty: false,
            };
            while let Some(write) = rx.recv().await {
                match write {
                    Write::Changes(changes) => mine.write(&writes, changes).await,
                    Write::Reconcile(all) => mine.reconcile(&writes, &written, all).await,
                }
            }
        });
        let (out, renewed) = (self.out.clone(), tx.clone());
        tokio::spawn(async move {
            let lease = lease_entry(me);
            let mut next_lease = Instant::now();
            let mut next_renew = Instant::now() + RENEW_EVERY;
            let mut said = false;
            loop {
                if Instant::now() >= next_lease {
                    next_lease = Instant::now() + LEASE_EVERY;
                    match store.put(&lease, Vec::new().into()).await {
                        Ok(_) => {
                            // All entries again now and then, and after NATS failed.
                            let recovered = std::mem::replace(&mut said, false);
                            if recovered {
                                tracing::info!("the relay's presence lease is renewed again");
                            }
                            let renew = recovered || Instant::now() >= next_renew;
                            if renew {
                                next_renew = Instant::now() + RENEW_EVERY;
                            }
                            let _ = renewed.send(Write::Reconcile(renew));
                        }
                        Err(e) => {
                            if !std::mem::replace(&mut said, true) {
                                tracing::error!(error = %e, "cannot renew the relay's presence lease: the other relays will take its members for gone");
                            }
                        }
                    }
                }
                let told = (book.lock().expect("not poisoned")).sweep(Instant::now().into_std());
                if !tell(&out, told).await {
                    return;
                }
                tokio::time::sleep(SWEEP_EVERY).await;
            }
        });
        Ok(Presence { writes: tx })
    }
}

/// Hands `told` to the relay; false once it is gone.
async fn tell(out: &async_channel::Sender<Followed>, told: Vec<Told>) -> bool {
    for (room, change) in told {
        if out.send(Followed::Presence(room, change)).await.is_err() {
            return false;
        }
    }
    true
}

/// Writes the departure `member` over the entry `key` if it is still this relay's (`me`):
/// another relay may hold the name now. False if NATS failed.
async fn leave_own(store: &kv::Store, me: Uuid, key: &str, member: &Member) -> bool {
    match store.entry(key).await {
        Ok(Some(held)) => {
            let own = serde_json::from_slice::<Member>(&held.value)
                .is_ok_and(|m| m.relay == me && m.present);
            // Refused if it changed meanwhile: then it is another relay's.
            !own || store
                .update(key, member.encode().into(), held.revision)
                .await
                .is_ok()
                || matches!(store.entry(key).await, Ok(Some(e)) if e.revision != held.revision)
        }
        Ok(None) => true,
        Err(_) => false,
    }
}

impl Mine {
    /// Writes `changes` to the bucket, in order.
    async fn write(&mut self, store: &kv::Store, changes: Vec<(String, Change)>) {
        for (room, change) in changes {
            let (key, member) = Member::of(self.me, &room, &change);
            let ok = if member.present {
                let ok = store.put(&key, member.encode().into()).await.is_ok();
                self.entries.insert(key, member);
                ok
            } else {
                self.entries.remove(&key);
                leave_own(store, self.me, &key, &member).await
            };
            self.dirty |= !ok;
        }
    }

    /// Writes this relay's members' entries again where the bucket may differ from them (a
    /// write failed), or all of them (`all`, so that none ages out), and a departure over
    /// each entry of its own it no longer means.
    async fn reconcile(&mut self, store: &kv::Store, book: &Mutex<Book>, all: bool) {
        if !std::mem::replace(&mut self.dirty, false) && !all {
            return;
        }
        let mut ok = true;
        for (key, member) in &self.entries {
            ok &= store.put(key, member.encode().into()).await.is_ok();
        }
        let stale: Vec<(String, Member)> = (book.lock().expect("not poisoned").mine())
            .filter(|(k, _)| !self.entries.contains_key(*k))
            .map(|(k, m)| (k.to_owned(), m.clone()))
            .collect();
        for (key, mut member) in stale {
            member.present = false;
            ok &= leave_own(store, self.me, &key, &member).await;
        }
        self.dirty |= !ok;
    }
}
