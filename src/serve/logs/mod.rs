//! The rooms' logs: each room's opened at start (after the journal put back what a crash left out of them), made on its first message, written beside the journal as one group commit across rooms with one flush, checkpointed, read for history, and watched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::proto::message::Message;
use crate::proto::room::DEFAULT_ROOM;
use crate::relay::Relay;
use crate::serve::journal::{self, Journal};

mod checkpoint;

use crate::serve::layout;
use crate::serve::server::StartError;
use crate::serve::store::mark;
use crate::serve::store::{LogEvent, Store, write_record};
use checkpoint::InFlight;

/// A room's log read back at start: its name (key), its last records, and the seq its log
/// begins with.
pub type Restored = (String, Vec<Message>, u64);

/// The fewest last records of a room read back at start.
pub const MIN_TAIL: usize = 500;

/// Every room's log, by the room's key.
#[derive(Debug)]
pub struct Logs {
    data: PathBuf,
    stores: BTreeMap<String, Store>,
    /// Every turn's records, flushed once.
    journal: Journal,
    /// The rooms whose logs were written since the last checkpoint, to be flushed by it.
    dirty: BTreeSet<String>,
    /// The rooms whose logs a turn of their own wrote and flushed since the last checkpoint:
    /// their marks move on with it.
    flushed: BTreeSet<String>,
    /// The rooms whose directories were made since the last checkpoint: their names are on
    /// disk once it flushed their directories; till then their records go to the journal.
    made: BTreeSet<String>,
    /// The room whose log [`Logs::look`] looked at last: the next look goes on after it.
    looked: Option<String>,
    /// The checkpoint under way: the rooms whose logs it flushes, those flushed before, and
    /// the marks it writes, each room's taken as its own only once the checkpoint is done
    /// (a checkpoint that failed leaves them to the next).
    in_flight: InFlight,
    /// When the last checkpoint started (see [`checkpoint::pace`]).
    checkpointed_at: Option<Instant>,
}

impl Logs {
    /// Opens the log of every room in `data` (the lobby's made, after the one-room log of an
    /// earlier relay is moved into it); hands back each room's last records, `keep` in all
    /// (shared among the rooms, but [`MIN_TAIL`] a room at least): however many rooms the
    /// relay has, its start reads a bounded tail.
    ///
    /// # Errors
    /// When a room's directory or log cannot be used, or a log is damaged.
    pub fn open(data: &Path, keep: usize) -> Result<(Logs, Vec<Restored>), StartError> {
        layout::lobby(data).map_err(StartError::Data)?;
        let (journal, put_back) = Journal::open(data).map_err(StartError::Data)?;
        for (room, records) in put_back {
            tracing::warn!(
                room,
                records,
                "put back in the room's log the records of the journal that it lacked (the relay stopped before it flushed them there)"
            );
        }
        let mut stores = BTreeMap::new();
        let mut restored = Vec::new();
        let names = layout::rooms_in(data).map_err(StartError::Data)?;
        let each = (keep / names.len().max(1)).max(MIN_TAIL).min(keep);
        let bad_marks = |e: std::io::Error| {
            StartError::Data(format!("cannot read the rooms' last seqs stored: {e}"))
        };
        let marks = mark::read_all(data).map_err(bad_marks)?;
        // The rooms whose directory holds an earlier relay's mark.
        let mut legacy = Vec::new();
        // The rooms whose logs hold no record yet (the lobby of a new data directory, made
        // now): new rooms, their directories flushed by the first checkpoint.
        let mut made = BTreeSet::new();
        for name in names {
            let dir = layout::room_dir(data, &name);
            let old = mark::read_legacy(&dir).map_err(bad_marks)?;
            let mark = marks.get(&name).copied().unwrap_or(0).max(old.unwrap_or(0));
            if old.is_some() {
                legacy.push(dir.clone());
            }
            let opened = Store::open(&dir, each, mark).map_err(StartError::Log)?;
            if let Some(bytes) = opened.torn {
                tracing::warn!(
                    log = %opened.store.path().display(),
                    bytes,
                    "dropped an incomplete last record left by a crash"
                );
            }
            if opened.store.marked() > mark {
                // Records past the mark may be in the system's cache only (a relay killed
                // before its checkpoint): on disk first, then they count in the mark.
                (opened.store.sync_handle())
                    .and_then(|f| f.sync_data())
                    .map_err(|e| {
                        StartError::Data(format!(
                            "cannot flush {}: {e}",
                            opened.store.path().display()
                        ))
                    })?;
            }
            restored.push((name.clone(), opened.tail, opened.store.first_seq()));
            if opened.store.is_empty() {
                made.insert(name.clone());
            }
            stores.insert(name, opened.store);
        }
        let logs = Logs {
            data: data.to_owned(),
            stores,
            journal,
            dirty: BTreeSet::new(),
            flushed: BTreeSet::new(),
            made,
            looked: None,
            in_flight: InFlight::default(),
            checkpointed_at: None,
        };
        // Every room's mark as its log ends now (a room whose directory is gone has none),
        // written when that is not what the file says; then an earlier relay's marks are no
        // longer needed.
        let now = logs.marks();
        if now != marks || !legacy.is_empty() {
            mark::write_all(data, &now).map_err(|e| {
                StartError::Data(format!(
                    "cannot write {}: {e}",
                    data.join(mark::MARKS_FILE).display()
                ))
            })?;
        }
        for dir in legacy {
            mark::remove_legacy(&dir).map_err(|e| {
                StartError::Data(format!(
                    "cannot remove an earlier relay's {} (its seq is in {} now): {e}; remove it by hand",
                    dir.join(mark::LEGACY_FILE).display(),
                    mark::MARKS_FILE
                ))
            })?;
        }
        Ok((logs, restored))
    }

    /// The log of the room `name` (a key), if it has one.
    pub fn path(&self, name: &str) -> Option<&Path> {
        self.stores.get(name).map(Store::path)
    }

    /// The default room's log.
    pub fn lobby_path(&self) -> PathBuf {
        self.path(DEFAULT_ROOM).map_or_else(
            || layout::room_dir(&self.data, DEFAULT_ROOM),
            Path::to_owned,
        )
    }

    /// The group commit: writes what the relay accepted to the logs of the rooms it went to,
    /// then to the journal, flushed once, then lets the relay answer; if a log or the journal
    /// fails, none of the turn counts (the logs are cut back) and the relay refuses the turn's
    /// messages, to be sent again.
    pub fn commit(&mut self, relay: &mut Relay) {
        if !relay.has_appends() {
            return;
        }
        // The rooms in the order the turn first wrote to them, with their records.
        let mut rooms: Vec<(&str, Vec<&Message>)> = Vec::new();
        let mut place: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (name, m) in relay.appends() {
            let k = *place.entry(name).or_insert_with(|| {
                rooms.push((name, Vec::new()));
                rooms.len() - 1
            });
            rooms[k].1.push(m);
        }
        let mut before: Vec<(String, u64)> = Vec::with_capacity(rooms.len());
        let mut failed: Option<(String, String)> = None;
        // Each record serialised once: the room's log line, and the journal's made of it.
        let (mut lines, mut entries) = (Vec::new(), Vec::new());
        for (name, messages) in &rooms {
            let store = match self.store(name) {
                Ok(store) => store,
                Err(e) => {
                    failed = Some((name.to_string(), e));
                    break;
                }
            };
            before.push((name.to_string(), store.len()));
            lines.clear();
            let mut serialised = Ok(());
            for m in messages {
                let start = lines.len();
                serialised = write_record(&mut lines, m);
                if serialised.is_err() {
                    break;
                }
                journal::add_entry(&mut entries, name, &lines[start..]);
            }
            if let Err(e) = serialised.and_then(|()| store.write_records(&lines)) {
                failed = Some((name.to_string(), e.to_string()));
                break;
            }
        }
        // One room, and no other room's log waits for a checkpoint: its log flushed is the one
        // flush (W1's path, as before the journal). Otherwise the journal, flushed once for
        // all of them: a log's flush that makes it longer commits the filesystem's journal,
        // which writes every room's pages written since (measured: up to 10 ms at 1,000 busy
        // rooms), where the journal's flush writes its own (see `journal/`).
        let alone =
            (before.len() == 1 && self.may_flush_alone(&before[0].0)).then(|| before[0].0.clone());
        if failed.is_none() {
            let flushed = match &alone {
                Some(name) => (self.stores.get_mut(name))
                    .map_or(Ok(()), Store::sync)
                    .map_err(|e| (name.clone(), e.to_string())),
                None => (self.journal.append_entries(&entries))
                    .map_err(|e| (self.journal.dir().display().to_string(), e.to_string())),
            };
            failed = flushed.err();
        }
        if failed.is_none() {
            match alone {
                Some(name) => {
                    self.flushed.insert(name);
                }
                None => {
                    for (name, _) in &before {
                        if let Some(store) = self.stores.get_mut(name) {
                            store.written();
                        }
                        self.dirty.insert(name.clone());
                    }
                }
            }
        }
        drop(rooms);
        match failed {
            None => relay.commit(),
            Some((name, why)) => {
                for (room, len) in &before {
                    if let Some(store) = self.stores.get_mut(room) {
                        store.cut_back_to(*len);
                    }
                }
                // While a log is lost, `watch` says so every few seconds instead.
                let store = self.stores.get(&name);
                if store.is_none_or(|s| s.lost().is_none()) {
                    let log = layout::room_dir(&self.data, &name);
                    tracing::error!(error = %why, room = %name, log = %log.display(), "cannot write the room's message log; nothing was acknowledged");
                }
                relay.abort(&why);
            }
        }
    }

    /// True when a turn of the room `name` alone may flush its log as its one flush: no other
    /// room's records wait in the journal for a checkpoint, and the room's directory is on
    /// disk (a new room's records are in the journal until a checkpoint flushed it).
    fn may_flush_alone(&self, name: &str) -> bool {
        self.dirty.is_empty() && !self.made.contains(name) && !self.in_flight.made.contains(name)
    }

    /// The log of the room `name`, opened (and made) on the room's first message.
    fn store(&mut self, name: &str) -> Result<&mut Store, String> {
        if !self.stores.contains_key(name) {
            let dir = layout::make_room_dir(&self.data, name).map_err(|e| {
                let dir = layout::room_dir(&self.data, name);
                format!("cannot make the directory {}: {e}", dir.display())
            })?;
            let opened = Store::open(&dir, 0, 0).map_err(|e| e.to_string())?;
            // The new log's name, its room's directory and `rooms/` (or `dm/`) are flushed by
            // the next checkpoint; till then its records are in the journal (which a start
            // puts back, making the room's directory if it is not there).
            self.made.insert(name.to_owned());
            tracing::info!(room = name, log = %opened.store.path().display(), "a new room's log");
            self.stores.insert(name.to_owned(), opened.store);
        }
        Ok(self.stores.get_mut(name).expect("just opened"))
    }

    /// Answers the relay's history requests that need a log.
    pub fn serve_reads(&mut self, relay: &mut Relay) {
        while let Some(read) = relay.poll_read() {
            let result = match self.stores.get(&read.room) {
                Some(store) => store.read(read.first, read.last),
                None => Ok(Vec::new()),
            };
            match result {
                Ok(messages) => relay.serve_read(&read, &messages),
                Err(e) => {
                    tracing::error!(error = %e, room = %read.room, "cannot read the message log for history");
                    // The answer goes on without them; the client asks again for what is
                    // missing.
                    relay.serve_read(&read, &[]);
                }
            }
        }
    }

    /// Checkpoints (see [`Logs::checkpoint`]) when one is due: a second after the last began,
    /// or later with many logs to flush ([`checkpoint::pace`]), and at once when the journal
    /// holds [`checkpoint::JOURNAL_DUE`]; when `remind`, says of each lost log that it is
    /// still not back.
    pub fn watch(&mut self, relay: &Relay, now: Instant, remind: bool) {
        // Each room's mark is written by the checkpoint, off this thread.
        let due = self.journal.written() >= checkpoint::JOURNAL_DUE
            || (self.checkpointed_at).is_none_or(|at| {
                now.saturating_duration_since(at) >= checkpoint::pace(self.dirty.len())
            });
        if !due {
            self.end_checkpoint(false);
        } else if self.checkpoint(relay, false) {
            self.checkpointed_at = Some(now);
        }
        if remind {
            for store in self.stores.values().filter(|s| s.lost().is_some()) {
                let log = store.path().display();
                let why = store.lost().unwrap_or_default();
                tracing::error!("the message log {log} {why}: still acknowledging nothing");
            }
        }
    }

    /// How many rooms' logs there are.
    pub fn len(&self) -> usize {
        self.stores.len()
    }

    /// True when there is no room's log (never: the lobby's is made at start).
    pub fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }

    /// Looks at the files of the next `count` rooms' logs, in turn (it may have been deleted,
    /// moved or replaced under the relay), and says what changed. The relay looks at a few
    /// each turn, every log about once a second: at 1,000 rooms, looking at all at once held
    /// a turn 5-18 ms.
    pub fn look(&mut self, count: usize) {
        use std::ops::Bound::{Excluded, Unbounded};
        let count = count.min(self.stores.len());
        let after = self.looked.take();
        let rest = match &after {
            Some(name) => self
                .stores
                .range_mut::<String, _>((Excluded(name), Unbounded)),
            None => self.stores.range_mut::<String, _>(..),
        };
        let (mut seen, mut last) = (0, None);
        for (name, store) in rest.take(count) {
            report(store);
            (seen, last) = (seen + 1, Some(name));
        }
        let mut looked = last.cloned();
        // From the first room again, for what is left of `count`.
        for (name, store) in self.stores.iter_mut().take(count - seen) {
            report(store);
            looked = Some(name.clone());
        }
        self.looked = looked;
    }
}

/// Looks at `store`'s file and says what changed, if anything.
fn report(store: &mut Store) {
    let log = store.path().display().to_string();
    match store.check() {
        Some(LogEvent::Lost { why, rescued }) => {
            let kept = match rescued {
                None => String::new(),
                Some(Ok(path)) => format!("; its records are kept in {}", path.display()),
                Some(Err(e)) => format!("; its records could not be kept ({e})"),
            };
            tracing::error!(
                "the message log {log} {why} while the relay ran: nothing more is acknowledged (clients keep resending) until it is back under its name{kept}; to go on, put it back, or stop the relay"
            );
        }
        Some(LogEvent::Back) => {
            tracing::warn!("the message log {log} is back: acknowledging again");
        }
        None => {}
    }
}

#[cfg(test)]
mod tests;
