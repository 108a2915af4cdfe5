//! The relay-wide journal, `<data>/journal/<n>.jsonl`: a turn's records of every room, written and flushed once (the group commit's one flush), each room's log written beside it and flushed later by a checkpoint in the background; at start, what the journals hold is put back in the rooms' logs first.
//!
//! A record of the journal is a record of a room's log with the room's name added
//! (`{"room":"ops","seq":7,…}`). About once a second (up to every 10 s with many logs to
//! flush: see `logs/checkpoint.rs`) the relay starts a checkpoint: the next
//! records go to a new journal file, the rooms' logs written since the last one are flushed on
//! a thread of their own, and then the journal files before the new one are removed. So a
//! journal holds a few seconds of messages (about ten at most, or 32 MiB), and a crash loses nothing that was
//! acknowledged: a room's log may then miss (or end in a torn copy of) what the journals hold,
//! and [`recover`] cuts it back to its last record before the journals' first of that room and
//! appends theirs again, before the logs are opened.
//!
//! Once the journal is used, each next file is made ahead of its use, zeros written and
//! flushed (see [`prepare`]): a record then overwrites bytes the file already has, so its
//! flush writes the record's pages alone. A flush that makes a file longer also writes the
//! file's new size, a second write and a commit of the filesystem's journal each time
//! (measured on ext4: 1,000 flushes of a growing file, 1,000 data and 1,001 metadata writes;
//! of a file made ahead, 1,000 and 36). A reader stops at the first line that is not a whole
//! record, so the zeros after the last one are read as the end.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

mod files;
mod recover;

pub(crate) use files::sync_dir;
use files::{create, numbered, open_prepared, prepare};
use recover::read_journal;
pub use recover::recover;

use serde::{Deserialize, Serialize};

use crate::proto::message::Message;
use crate::serve::layout;
use crate::serve::store::mark::{self, Marks};
use crate::serve::store::write_record;

/// The journal's directory inside the data directory.
const JOURNAL_DIR: &str = "journal";
/// Bytes of zeros the first journal file made ahead in a run is made with.
const PREPARED_FIRST: u64 = 1 << 20;
/// Fewest and most bytes a journal file is made with: twice what the one before it held, in
/// these bounds (a file that outgrows them goes on growing, flushed as any file is).
const PREPARED_MIN: u64 = 1 << 20;
const PREPARED_MAX: u64 = 64 << 20;

/// One record of the journal: a room's record and the room.
#[derive(Serialize, Deserialize)]
struct Entry<'a> {
    room: std::borrow::Cow<'a, str>,
    #[serde(flatten)]
    message: std::borrow::Cow<'a, Message>,
}

/// The journal the relay writes to, and the checkpoint under way.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    /// The number of the file written to now.
    number: u64,
    file: File,
    /// Bytes of whole, flushed records in it.
    len: u64,
    /// The checkpoint under way: the journal files up to which it removes once the rooms'
    /// logs it flushes are on disk (`None`: it only writes the marks).
    checkpoint: Option<(Option<u64>, JoinHandle<Checkpointed>)>,
    /// The number of the next journal file, when a checkpoint made it ready ([`prepare`]).
    prepared: Option<u64>,
    /// True once the journal was first written to (and the next file made ahead).
    used: bool,
    /// False once the relay stops: no file is made ahead any more.
    ahead: bool,
    /// The journal files up to this number are kept till the next start, whatever later
    /// checkpoints do: a checkpoint that failed to flush a log covered them. (A failed flush
    /// may leave the pages it could not write marked clean, so a later flush of that log
    /// succeeds without writing them: the journal is then their only copy on disk.)
    kept: Option<u64>,
    /// True once a file could not be made ahead (said once a run).
    told: bool,
}

/// What a checkpoint's thread did: flushed the logs and wrote the marks (or why not), and
/// made the next journal file ready (its number, or why not), if it tried.
type Checkpointed = (io::Result<()>, Option<io::Result<u64>>);

impl Journal {
    /// Puts back in the rooms' logs of `data` what the journals left by the last run hold, then
    /// starts a fresh journal; says what was put back (room, records its log lacked), for the
    /// relay's log.
    ///
    /// # Errors
    /// A one-line explanation naming the file that could not be read or written.
    pub fn open(data: &Path) -> Result<(Journal, Vec<(String, usize)>), String> {
        let dir = data.join(JOURNAL_DIR);
        let err =
            |what: &str, p: &Path, e: io::Error| format!("cannot {what} {}: {e}", p.display());
        fs::create_dir_all(&dir).map_err(|e| err("make the directory", &dir, e))?;
        let old = numbered(&dir).map_err(|e| err("read the directory", &dir, e))?;
        let mut by_room: BTreeMap<String, Vec<Message>> = BTreeMap::new();
        for (_, path) in &old {
            read_journal(path, &mut by_room).map_err(|e| err("read", path, e))?;
        }
        let mut put_back = Vec::new();
        // The directories the rooms' directories are in: a room made just before the crash
        // may be in the journal alone, its directory's name not yet flushed.
        let mut parents = std::collections::BTreeSet::new();
        for (room, records) in &by_room {
            let log = layout::make_room_dir(data, room)
                .map_err(|e| err("make the directory", &layout::room_dir(data, room), e))?;
            let appended =
                recover(&log, records).map_err(|e| err("put the journal back into", &log, e))?;
            if appended > 0 {
                put_back.push((room.clone(), appended));
            }
            if let Some(parent) = log.parent() {
                parents.extend(layout::up_to_data(parent, data));
            }
        }
        for dir in &parents {
            sync_dir(dir).map_err(|e| err("flush the directory", dir, e))?;
        }
        // Everything they held is in the rooms' logs, flushed: they are done with.
        for (_, path) in &old {
            fs::remove_file(path).map_err(|e| err("remove", path, e))?;
        }
        let number = old.last().map_or(1, |(n, _)| n + 1);
        let (file, path) = create(&dir, number).map_err(|e| err("make", &dir, e))?;
        sync_dir(&dir).map_err(|e| err("sync", &path, e))?;
        let journal = Journal {
            dir,
            number,
            file,
            len: 0,
            checkpoint: None,
            prepared: None,
            used: false,
            ahead: true,
            kept: None,
            told: false,
        };
        Ok((journal, put_back))
    }

    /// Writes `records` (each with its room) and flushes them (fdatasync): once this returns,
    /// they are stored, whatever becomes of the rooms' logs. On failure the journal is cut
    /// back to what it held.
    ///
    /// # Errors
    /// When writing or flushing fails: none of `records` is stored.
    pub fn append<'a>(
        &mut self,
        records: impl IntoIterator<Item = (&'a str, &'a Message)>,
    ) -> io::Result<()> {
        let mut buf = Vec::with_capacity(4096);
        let mut line = Vec::with_capacity(256);
        for (room, m) in records {
            line.clear();
            write_record(&mut line, m)?;
            add_entry(&mut buf, room, &line);
        }
        self.append_entries(&buf)
    }

    /// [`Journal::append`] of entries already made ([`add_entry`]'s lines).
    ///
    /// # Errors
    /// When writing or flushing fails: none of them is stored.
    pub fn append_entries(&mut self, buf: &[u8]) -> io::Result<()> {
        let result = self
            .file
            .write_all(buf)
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += buf.len() as u64;
                if !std::mem::replace(&mut self.used, true)
                    && self.ahead
                    && self.checkpoint.is_none()
                {
                    // The first use: the next file is made ahead, on a thread of its own (a
                    // relay whose turns hold one room each never writes here, nor makes any).
                    let (dir, next) = (self.dir.clone(), self.number + 1);
                    let thread = std::thread::Builder::new()
                        .name("urc-checkpoint".into())
                        .spawn(move || {
                            (
                                Ok(()),
                                Some(prepare(&dir, next, PREPARED_FIRST).map(|()| next)),
                            )
                        });
                    if let Ok(thread) = thread {
                        self.checkpoint = Some((None, thread));
                    }
                }
                Ok(())
            }
            Err(e) => {
                // None of them may be read back, and the next records go where these began
                // (after no hole). In a file made ahead its size on disk already covers them,
                // so they are overwritten with zeros and flushed; failing that, the file is
                // cut back (a size only the filesystem's next commit makes durable).
                let zeroed = (self.file.seek(SeekFrom::Start(self.len)))
                    .and_then(|_| self.file.write_all(&vec![0u8; buf.len()]))
                    .and_then(|()| self.file.sync_data());
                if zeroed.is_err() {
                    let _ = self.file.set_len(self.len);
                }
                let _ = self.file.seek(SeekFrom::Start(self.len));
                Err(e)
            }
        }
    }

    /// Bytes of whole, flushed records in the file written to now.
    pub fn written(&self) -> u64 {
        self.len
    }

    /// Makes no more files ahead (the relay stops: they would not be used).
    pub fn stop_making_ahead(&mut self) {
        self.ahead = false;
    }

    /// True while a checkpoint runs.
    pub fn checkpointing(&self) -> bool {
        self.checkpoint.is_some()
    }

    /// Starts a checkpoint, unless one runs or there is nothing to do (the journal is empty
    /// and no marks are given): the next records go to a new journal file (the one made
    /// ready by the last checkpoint, if it is), and `dirs` (the new rooms' directories and
    /// those they are in) and `logs` (the rooms' logs written since the last checkpoint, as
    /// handles to flush) are flushed on a thread of their own, which then makes the file
    /// after it ready; [`Journal::poll`] removes the journal files before the new one once
    /// they are on disk.
    ///
    /// # Errors
    /// When the new journal file cannot be made (the old one goes on being written).
    /// Once they are flushed, `marks` (the data directory and every room's last seq stored),
    /// when given, are written as its `stored-seqs` (see `store/mark.rs`): off the relay's
    /// thread too, one file and two flushes however many rooms.
    pub fn checkpoint(
        &mut self,
        dirs: Vec<PathBuf>,
        logs: Vec<File>,
        marks: Option<(PathBuf, Marks)>,
    ) -> io::Result<()> {
        if self.checkpoint.is_some() || (self.len == 0 && marks.is_none()) {
            return Ok(());
        }
        // Turns of one room flush their own log and write no journal: a checkpoint of theirs
        // only writes the marks.
        let (done, prepare_next) = if self.len > 0 {
            let next = self.number + 1;
            let ahead = (self.prepared.take().filter(|&n| n == next))
                .and_then(|n| open_prepared(&self.dir, n).ok());
            let file = match ahead {
                Some(file) => file,
                // Not made ahead: a file that grows, its name flushed before a record in it
                // is acknowledged.
                None => {
                    let (file, _) = create(&self.dir, next)?;
                    sync_dir(&self.dir)?;
                    file
                }
            };
            let done = self.number;
            let bytes = (2 * self.len).clamp(PREPARED_MIN, PREPARED_MAX);
            self.number = next;
            self.file = file;
            self.len = 0;
            (Some(done), self.ahead.then_some((next + 1, bytes)))
        } else {
            (None, None)
        };
        let dir = self.dir.clone();
        let thread = std::thread::Builder::new()
            .name("urc-checkpoint".into())
            .spawn(move || {
                let flushed = (|| {
                    sync_dir(&dir)?;
                    for d in dirs {
                        sync_dir(&d)?;
                    }
                    for log in logs {
                        log.sync_data()?;
                    }
                    match marks {
                        Some((data, marks)) => mark::write_all(&data, &marks),
                        None => Ok(()),
                    }
                })();
                // The file after the one now written, made ready while it fills.
                let ready = (prepare_next.filter(|_| flushed.is_ok()))
                    .map(|(n, bytes)| prepare(&dir, n, bytes).map(|()| n));
                (flushed, ready)
            })?;
        self.checkpoint = Some((done, thread));
        Ok(())
    }

    /// Ends the checkpoint under way once its thread is done (at once when `wait`): removes
    /// the journal files it covered, or, if a log could not be flushed, keeps them (they are
    /// put back at the next start) and says why.
    pub fn poll(&mut self, wait: bool) -> Option<io::Result<()>> {
        let (_, thread) = self.checkpoint.as_ref()?;
        if !wait && !thread.is_finished() {
            return None;
        }
        let (done, thread) = self.checkpoint.take()?;
        let (flushed, ready) = thread.join().unwrap_or_else(|_| {
            (
                Err(io::Error::other("the checkpoint's thread panicked")),
                None,
            )
        });
        match ready {
            Some(Ok(n)) => self.prepared = Some(n),
            // Said once a run: a journal that grows works, its flushes only write more.
            Some(Err(e)) if !std::mem::replace(&mut self.told, true) => {
                tracing::warn!(error = %e, journal = %self.dir.display(), "cannot make the next journal file ahead: it grows as it is written (each flush then writes its size too)");
            }
            _ => {}
        }
        if flushed.is_err() {
            self.kept = self.kept.max(done);
        }
        Some(flushed.and_then(|()| {
            for (n, path) in numbered(&self.dir)? {
                if done.is_some_and(|done| n <= done) && self.kept.is_none_or(|kept| n > kept) {
                    fs::remove_file(path)?;
                }
            }
            Ok(())
        }))
    }

    /// The journal's directory, for the relay's log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Adds to `buf` the journal's line for `record` (a room's log line, as [`write_record`]
/// makes it) of `room` (a room's key: letters, digits, `-` and `_`, nothing to escape): the
/// record with the room put first, serialised once for both.
pub fn add_entry(buf: &mut Vec<u8>, room: &str, record: &[u8]) {
    buf.extend_from_slice(b"{\"room\":\"");
    buf.extend_from_slice(room.as_bytes());
    buf.extend_from_slice(b"\",");
    buf.extend_from_slice(record.get(1..).unwrap_or_default());
}

#[cfg(test)]
mod tests;
