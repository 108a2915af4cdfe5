//! The checkpoint of the rooms' logs: about once a second (further apart with many logs to flush) the logs written since the last, and the new rooms' directories, flushed off the relay's thread, then every room's mark written; and every mark written as the relay stops.

use std::collections::BTreeSet;
use std::time::Duration;

use super::Logs;
use crate::relay::Relay;
use crate::serve::layout;
use crate::serve::store::mark::{self, Marks};

/// Logs a checkpoint flushes a second at most, when there are many: each flush of a log is a
/// flush of the disk's cache too, and under load the disk holds every other flush behind
/// them (the group commit's among them). At 1,000 busy rooms a checkpoint every second was
/// 1,000 log flushes a second beside the journal's; with one every 8 s (tried), the relay's
/// CPU fell by 6 % (W4, 4 pairs: medians 7.11 and 6.68 s).
const LOGS_PER_SECOND: usize = 250;
/// The longest wait for the next checkpoint (so the journal holds about this much at most,
/// and the one under way: the relay looks once a second, and a checkpoint that is still
/// flushing is waited for).
const MAX_PACE: Duration = Duration::from_secs(10);
/// Bytes of records in the journal file written to now at which a checkpoint is due, however
/// soon: half the largest file made ahead, so that a file rarely outgrows its zeros (and a
/// start after a crash reads at most about this much of it).
pub(super) const JOURNAL_DUE: u64 = 32 << 20;

/// How long after the last checkpoint began the next one is due, with `dirty` logs to flush:
/// a second, or a second for every [`LOGS_PER_SECOND`] of them, at most [`MAX_PACE`].
pub(super) fn pace(dirty: usize) -> Duration {
    Duration::from_millis(dirty as u64 * 1000 / LOGS_PER_SECOND as u64)
        .clamp(Duration::from_secs(1), MAX_PACE)
}

/// What the checkpoint under way covers (see [`Logs::checkpoint`]).
#[derive(Debug, Default)]
pub(super) struct InFlight {
    pub(super) dirty: Vec<String>,
    pub(super) flushed: Vec<String>,
    pub(super) made: BTreeSet<String>,
    pub(super) marks: Vec<(String, u64)>,
}

impl Logs {
    /// Ends the checkpoint under way if it is done (and says if it failed), then starts the
    /// next one: the logs written since the last are flushed on a thread of their own, then
    /// every room's mark is written, and the journal files before it removed. A room's mark
    /// moves on only once the checkpoint that wrote it is done: a mark is never ahead of its
    /// log on disk, not even in memory. True when one was started.
    pub fn checkpoint(&mut self, relay: &Relay, wait: bool) -> bool {
        self.end_checkpoint(wait);
        if self.journal.checkpointing() || (self.dirty.is_empty() && self.flushed.is_empty()) {
            return false;
        }
        let mut logs = Vec::with_capacity(self.dirty.len());
        let mut pending = Vec::new();
        for name in &self.dirty {
            let Some(store) = self.stores.get(name) else {
                continue;
            };
            match store.sync_handle() {
                Ok(file) => logs.push(file),
                Err(e) => {
                    tracing::error!(error = %e, room = %name, "cannot flush the room's log: the journal keeps its records");
                    return false;
                }
            }
            if let Some(latest) = relay.latest_in(name).filter(|&l| l > store.marked()) {
                pending.push((name.clone(), latest));
            }
        }
        // Flushed already: their marks need no flush of their logs first.
        for name in &self.flushed {
            if let (Some(store), Some(latest)) = (self.stores.get(name), relay.latest_in(name))
                && latest > store.marked()
            {
                pending.push((name.clone(), latest));
            }
        }
        let marks = (!pending.is_empty()).then(|| {
            let mut marks = self.marks();
            marks.extend(pending.iter().cloned());
            (self.data.clone(), marks)
        });
        // The new rooms' directories, the directories they are in, and the data directory.
        let mut dirs = BTreeSet::new();
        for name in &self.made {
            dirs.extend(layout::up_to_data(
                &layout::room_dir(&self.data, name),
                &self.data,
            ));
        }
        let mut started = false;
        match self
            .journal
            .checkpoint(dirs.into_iter().collect(), logs, marks)
        {
            Ok(()) if self.journal.checkpointing() => {
                started = true;
                self.in_flight = InFlight {
                    dirty: std::mem::take(&mut self.dirty).into_iter().collect(),
                    flushed: std::mem::take(&mut self.flushed).into_iter().collect(),
                    made: std::mem::take(&mut self.made),
                    marks: pending,
                };
            }
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, journal = %self.journal.dir().display(), "cannot start a new journal file: the current one goes on")
            }
        }
        if wait {
            self.end_checkpoint(true);
        }
        started
    }

    /// Takes the checkpoint under way as done when it is (at once when `wait`): its marks are
    /// the rooms' from now on; if it failed, its rooms are flushed and marked by the next.
    pub(super) fn end_checkpoint(&mut self, wait: bool) {
        let Some(done) = self.journal.poll(wait) else {
            return;
        };
        let checkpoint = std::mem::take(&mut self.in_flight);
        match done {
            Ok(()) => {
                for (name, latest) in checkpoint.marks {
                    if let Some(store) = self.stores.get_mut(&name) {
                        store.mark_later(latest);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, journal = %self.journal.dir().display(), "cannot flush the rooms' logs or write their last seqs stored: the journal is kept and put back at the next start, and the next checkpoint tries again");
                self.dirty.extend(checkpoint.dirty);
                self.flushed.extend(checkpoint.flushed);
                self.made.extend(checkpoint.made);
            }
        }
    }

    /// Flushes every room's log and writes every room's last seq stored (as the relay stops):
    /// a room's moves on to its latest seq unless its log could not be flushed (a lost log's
    /// does, so that a log put back must hold what was stored).
    pub fn mark_all(&mut self, relay: &Relay) {
        self.journal.stop_making_ahead();
        self.checkpoint(relay, true);
        for (name, store) in &mut self.stores {
            if (!self.dirty.contains(name) || store.lost().is_some())
                && let Some(latest) = relay.latest_in(name)
            {
                store.mark_later(latest);
            }
        }
        if let Err(e) = mark::write_all(&self.data, &self.marks()) {
            tracing::error!(error = %e, file = %self.data.join(mark::MARKS_FILE).display(), "cannot write the rooms' last seqs stored: the next start checks each log against the seqs written before");
        }
    }

    /// Every room's mark, as its store holds it.
    pub(super) fn marks(&self) -> Marks {
        (self.stores.iter())
            .map(|(name, store)| (name.clone(), store.marked()))
            .collect()
    }
}
