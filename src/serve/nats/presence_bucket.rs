//! The presence bucket `URC_PRESENCE` on the NATS side: this relay's members' entries written by one task (each entry's latest) (a departure only over an entry still its own), its lease renewed by another, and every entry watched into the [`Book`] by a third, which alone hands the relay what the book tells.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use smol::future::FutureExt as _;
use smol::stream::StreamExt as _;
use tokio::time::Instant;
use uuid::Uuid;

use super::names::{PRESENCE_BUCKET, lease_entry};
use super::presence::{BUCKET_AGE, Book, LEASE_EVERY, Member, RENEW_EVERY, Told, Written};
use super::worker::{Followed, Worker};
use crate::proto::wire::Change;

/// How often the book is swept for relays whose lease ran out.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How long the watch waits before it watches again after NATS ended it.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// This relay's end of the presence bucket: where its members' changes go.
#[derive(Debug)]
pub(super) struct Presence {
    /// What the writer has to do.
    queue: Arc<Queue>,
    /// This relay's id in the bucket.
    me: Uuid,
}

/// What the writer has to do, one thing after the other, so that two writes of one entry
/// never race: each entry's latest wanted value (a name that comes and goes faster than NATS
/// takes it costs one write, and the queue is bounded by the entries, not by the changes).
#[derive(Debug, Default)]
struct Queue {
    todo: Mutex<Todo>,
    /// Wakes the writer.
    wake: tokio::sync::Notify,
}

/// The writer's work.
#[derive(Debug, Default)]
struct Todo {
    /// The entries to write, in the order first wanted.
    order: std::collections::VecDeque<String>,
    /// Each one's latest wanted value.
    values: HashMap<String, Member>,
    /// Write the entries again where the bucket may differ, or all of them (`Some(true)`).
    reconcile: Option<bool>,
    /// At start, once the watch has read the bucket: a departure over each entry of this
    /// relay's last run, then the answer.
    start: Option<tokio::sync::oneshot::Sender<()>>,
}

/// One thing for the writer.
enum Job {
    /// Write this value to this entry.
    Entry(String, Member),
    /// See [`Todo::reconcile`].
    Reconcile(bool),
    /// See [`Todo::start`].
    Start(tokio::sync::oneshot::Sender<()>),
}

impl Queue {
    /// Changes what there is to do, and wakes the writer.
    fn with(&self, f: impl FnOnce(&mut Todo)) {
        f(&mut self.todo.lock().expect("not poisoned"));
        self.wake.notify_one();
    }

    /// The next thing to do: the start first, then the entries, then a reconciliation.
    fn next(&self) -> Option<Job> {
        let mut todo = self.todo.lock().expect("not poisoned");
        if let Some(done) = todo.start.take() {
            return Some(Job::Start(done));
        }
        while let Some(key) = todo.order.pop_front() {
            if let Some(member) = todo.values.remove(&key) {
                return Some(Job::Entry(key, member));
            }
        }
        todo.reconcile.take().map(Job::Reconcile)
    }
}

impl Presence {
    /// Writes `changes` (of this relay's members, each with its room's key) to the bucket,
    /// each entry's latest, without waiting.
    pub(super) fn write(&self, changes: Vec<(String, Change)>) {
        self.queue.with(|todo| {
            for (room, change) in changes {
                let (key, member) = Member::of(self.me, &room, &change);
                if todo.values.insert(key.clone(), member).is_none() {
                    todo.order.push_back(key);
                }
            }
        });
    }
}

/// The writer's state.
#[derive(Debug)]
struct Mine {
    /// This relay's id in the bucket.
    me: Uuid,
    /// Its members' entries, as it means them to be.
    entries: HashMap<String, Member>,
    /// Whether the bucket may differ from them (a write failed).
    dirty: bool,
}

/// Whether this relay's lease is renewed, and whether it was renewed again after it failed
/// (the watch then takes every relay for heard of: it could not read their leases either).
#[derive(Debug, Default)]
struct Leased {
    /// The last renewal worked.
    ok: AtomicBool,
    /// The lease was renewed after it failed, and the watch has not been told yet.
    recovered: AtomicBool,
    /// The watch has read every entry the bucket had at start.
    caught_up: AtomicBool,
    /// Wakes the lease when it has.
    read: tokio::sync::Notify,
}

/// The longest the lease waits at start for the watch to read the bucket.
const READ_WAIT: Duration = Duration::from_secs(10);

impl Worker {
    /// The presence bucket (made if need be), watched from its first entry on, the lease of
    /// this relay (`me`, the same each time it starts) renewed and its members' changes
    /// written, each by a task of its own.
    pub(super) async fn open_presence(&self, me: Uuid) -> Result<Presence, String> {
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
        let book = Arc::new(Mutex::new(Book::new(me)));
        let leased = Arc::new(Leased::default());
        // The revision the watch has read the bucket up to once it reads this one.
        let upto = (store.status().await).map_or(0, |s| s.info.state.last_sequence);
        if upto == 0 {
            leased.caught_up.store(true, Ordering::Release);
        }
        let watch = (store.watch_with_history(">").await).map_err(|e| failed(&e))?;
        let (out, watched, watch_store, watch_lease) = (
            self.out.clone(),
            book.clone(),
            store.clone(),
            leased.clone(),
        );
        tokio::spawn(async move {
            watch_and_sweep(watch, watch_store, (watched, upto), watch_lease, out).await;
        });
        let queue = Arc::new(Queue::default());
        let (writes, written, jobs) = (store.clone(), book, queue.clone());
        tokio::spawn(async move {
            let mut mine = Mine {
                me,
                entries: HashMap::new(),
                dirty: false,
            };
            loop {
                match jobs.next() {
                    Some(Job::Entry(key, member)) => mine.write(&writes, key, member).await,
                    Some(Job::Reconcile(all)) => mine.reconcile(&writes, &written, all).await,
                    Some(Job::Start(done)) => {
                        mine.reconcile(&writes, &written, true).await;
                        let _ = done.send(());
                    }
                    None => jobs.wake.notified().await,
                }
            }
        });
        let renewed = queue.clone();
        tokio::spawn(async move { renew(store, me, leased, renewed).await });
        Ok(Presence { queue, me })
    }
}

/// Renews the lease of `me` every [`LEASE_EVERY`]; after each, has the writer reconcile its
/// entries (all of them at the first, after a failure, and every [`RENEW_EVERY`]).
async fn renew(store: kv::Store, me: Uuid, leased: Arc<Leased>, writer: Arc<Queue>) {
    let lease = lease_entry(me);
    // Before the first lease, this relay's entries of its last run are put right (a relay
    // alive again would show them): once the watch has read them, or after READ_WAIT.
    let read = leased.read.notified();
    if !leased.caught_up.load(Ordering::Acquire) {
        let _ = tokio::time::timeout(READ_WAIT, read).await;
    }
    let (done, started) = tokio::sync::oneshot::channel();
    writer.with(|todo| todo.start = Some(done));
    let _ = started.await;
    let mut next_renew = Instant::now() + RENEW_EVERY;
    let mut failing = false;
    let mut said = false;
    loop {
        match store.put(&lease, Vec::new().into()).await {
            Ok(_) => {
                leased.ok.store(true, Ordering::Release);
                let recovered = std::mem::replace(&mut failing, false);
                if recovered && std::mem::replace(&mut said, false) {
                    tracing::info!("the relay's presence lease is renewed again");
                    leased.recovered.store(true, Ordering::Release);
                }
                let all = recovered || Instant::now() >= next_renew;
                if all {
                    next_renew = Instant::now() + RENEW_EVERY;
                }
                writer.with(|todo| todo.reconcile = Some(todo.reconcile.unwrap_or(false) | all));
            }
            Err(e) => {
                leased.ok.store(false, Ordering::Release);
                failing = true;
                if !std::mem::replace(&mut said, true) {
                    tracing::error!(error = %e, "cannot renew the relay's presence lease: the other relays will take its members for gone");
                }
            }
        }
        tokio::time::sleep(LEASE_EVERY).await;
    }
}

/// Reads every entry of the bucket into `book` and sweeps it every [`SWEEP_EVERY`] (not
/// while this relay's own lease fails: it cannot read the others' then), handing the relay
/// what the book tells, in order; watches again from where it was when NATS ends the watch.
async fn watch_and_sweep(
    mut watch: kv::Watch,
    store: kv::Store,
    (book, upto): (Arc<Mutex<Book>>, u64),
    leased: Arc<Leased>,
    out: async_channel::Sender<Followed>,
) {
    let mut last = 0;
    let mut next_sweep = Instant::now() + SWEEP_EVERY;
    let mut said = false;
    loop {
        let next = async { Some(watch.next().await) }.or(async {
            tokio::time::sleep_until(next_sweep).await;
            None
        });
        let now = Instant::now().into_std();
        let told = match next.await {
            Some(Some(Ok(entry))) => {
                last = entry.revision;
                if last >= upto && !leased.caught_up.swap(true, Ordering::AcqRel) {
                    leased.read.notify_one();
                }
                let written = Written {
                    revision: entry.revision,
                    at: written_at(&entry, now),
                };
                let mut book = book.lock().expect("not poisoned");
                match (entry.key.strip_prefix("r."), entry.operation) {
                    (Some(id), kv::Operation::Put) => match Uuid::try_parse(id) {
                        Ok(relay) => book.lease(relay, written.at, now),
                        Err(_) => Vec::new(),
                    },
                    (Some(_), _) => Vec::new(),
                    (None, kv::Operation::Put) => {
                        book.entry(&entry.key, Some(&entry.value), written, now)
                    }
                    (None, _) => book.entry(&entry.key, None, written, now),
                }
            }
            Some(Some(Err(e))) => {
                if !std::mem::replace(&mut said, true) {
                    tracing::warn!(error = %e, "the presence bucket's watch failed");
                }
                Vec::new()
            }
            Some(None) => {
                tracing::warn!("the presence bucket's watch ended: watching it again");
                tokio::time::sleep(WATCH_RETRY).await;
                if let Ok(again) = store.watch_all_from_revision(last + 1).await {
                    watch = again;
                    said = false;
                }
                Vec::new()
            }
            None => {
                next_sweep = Instant::now() + SWEEP_EVERY;
                let mut book = book.lock().expect("not poisoned");
                if leased.recovered.swap(false, Ordering::AcqRel) {
                    book.heard_all(now);
                }
                if leased.ok.load(Ordering::Acquire) {
                    book.sweep(now)
                } else {
                    Vec::new()
                }
            }
        };
        if !tell(&out, told).await {
            return;
        }
    }
}

/// When `entry` was written, by this relay's clock (`now`): its age by the wall clock.
fn written_at(entry: &kv::Entry, now: std::time::Instant) -> std::time::Instant {
    let age = (time::OffsetDateTime::now_utc() - entry.created).max(time::Duration::ZERO);
    let age = Duration::try_from(age).unwrap_or_default();
    now.checked_sub(age).unwrap_or(now)
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
    /// Writes `member` to the entry `key`.
    async fn write(&mut self, store: &kv::Store, key: String, member: Member) {
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

    /// Writes this relay's members' entries again where the bucket may differ from them (a
    /// write failed), or all of them (`all`, so that none ages out), each only over an entry
    /// of its own or none (one another relay holds is that relay's: its member moved), and a
    /// departure over each entry of its own it no longer means (of its last run, say).
    async fn reconcile(&mut self, store: &kv::Store, book: &Mutex<Book>, all: bool) {
        if !std::mem::replace(&mut self.dirty, false) && !all {
            return;
        }
        let holders: HashMap<String, Option<(Uuid, u64)>> = {
            let book = book.lock().expect("not poisoned");
            (self.entries.keys())
                .map(|k| (k.clone(), book.holder(k)))
                .collect()
        };
        let mut ok = true;
        let mut moved = Vec::new();
        for (key, member) in &self.entries {
            let value = member.encode();
            ok &= match holders.get(key).copied().flatten() {
                Some((relay, _)) if relay != self.me => {
                    moved.push(key.clone());
                    true
                }
                Some((_, revision)) => store.update(key, value.into(), revision).await.is_ok(),
                None => store.create(key, value.into()).await.is_ok(),
            };
        }
        for key in moved {
            self.entries.remove(&key);
        }
        let stale: Vec<(String, Member, u64)> = (book.lock().expect("not poisoned").mine())
            .filter(|(k, _, _)| !self.entries.contains_key(*k))
            .map(|(k, m, revision)| (k.to_owned(), m.clone(), revision))
            .collect();
        for (key, mut member, revision) in stale {
            member.present = false;
            // Only over the revision the book read: one written since is a new session's.
            match store.update(&key, member.encode().into(), revision).await {
                Ok(_) => {}
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                Err(_) => ok = false,
            }
        }
        self.dirty |= !ok;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::LeaveReason;

    fn change(joined: bool, name: &str) -> (String, Change) {
        let change = Change {
            joined,
            reason: LeaveReason::Quit,
            name: name.to_owned(),
            message: None,
        };
        ("ops".to_owned(), change)
    }

    #[test]
    fn the_writer_gets_each_entrys_latest_in_the_order_first_wanted_and_the_start_first() {
        let presence = Presence {
            queue: Arc::new(Queue::default()),
            me: Uuid::new_v4(),
        };
        presence.write(vec![change(true, "al"), change(true, "bo")]);
        presence.write(vec![change(false, "al"), change(true, "al")]);
        presence.queue.with(|todo| todo.reconcile = Some(false));
        let (done, _) = tokio::sync::oneshot::channel();
        presence.queue.with(|todo| todo.start = Some(done));
        let mut jobs = Vec::new();
        while let Some(job) = presence.queue.next() {
            jobs.push(match job {
                Job::Start(_) => "start".to_owned(),
                Job::Entry(_, m) => format!("{} {}", m.name, m.present),
                Job::Reconcile(all) => format!("reconcile {all}"),
            });
        }
        assert_eq!(jobs, ["start", "al true", "bo true", "reconcile false"]);
    }
}
