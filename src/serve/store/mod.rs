//! The message log: one JSON object a line in `<data>/messages.jsonl`, appended and flushed.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | [`Store`]: opening the log (every record checked, a torn end cut off), appending and flushing; the record's serialisation |
//! | `file.rs` | [`LogFile`], what the log needs of its file, so that tests can make it fail |
//! | `read.rs` | [`Store::read`]: records by sequence number, found by halving the file |
//! | `mark.rs` | `<data>/stored-seqs`: every room's last seq stored, so that a log that ends before its room's is refused |
//! | `watch.rs` | [`Store::check`]: the log deleted, moved or replaced under the relay, noticed |
//! | `tests.rs` | reopening, torn and damaged lines, failing disks, rotation, reads against a scan |

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::proto::message::Message;

mod file;
pub mod mark;
mod read;
#[cfg(test)]
mod tests;
mod watch;

pub use file::LogFile;
pub use read::MAX_READ;
pub use watch::LogEvent;

/// The log's file name inside the data directory.
pub const LOG_FILE: &str = "messages.jsonl";

/// Why the log could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The file or directory could not be read or created.
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// A complete line in the log is not a valid record.
    Corrupt {
        /// The log.
        path: PathBuf,
        /// The line's number, from 1.
        line: u64,
        /// What is wrong with it.
        error: String,
    },
    /// The log ends before the last seq the relay knows it stored (its mark).
    Behind {
        /// The log.
        path: PathBuf,
        /// The log's last seq (0 when empty).
        last: u64,
        /// The mark's.
        mark: u64,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Io { path, error } => {
                write!(f, "cannot open {}: {error}", path.display())
            }
            OpenError::Corrupt { path, line, error } => write!(
                f,
                "{}:{line}: invalid record ({error}): start with --repair-log to put a placeholder in its place (the damaged file is kept), or repair it by hand",
                path.display()
            ),
            OpenError::Behind { path, last, mark } => write!(
                f,
                "{} ends at seq {last}, but this relay stored up to seq {mark} (see {}): it was deleted, truncated or replaced; put it back (a copy the relay rescued is {}.rescued-<time>), or start once with --repair-log to go on after seq {mark}",
                path.display(),
                mark::MARKS_FILE,
                LOG_FILE
            ),
        }
    }
}

impl std::error::Error for OpenError {}

/// The open log.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    /// The data directory.
    dir: PathBuf,
    file: Box<dyn LogFile>,
    /// The same file, opened to read: history, and a rescue if its name is lost.
    reader: File,
    /// The file's device and inode, to tell it from another under its path.
    identity: (u64, u64),
    /// What happened to the log, while the file under its path is not this one.
    lost: Option<String>,
    /// The seq of its room's mark: the last it knows it stored (written with every room's by
    /// the checkpoint, see [`mark`]).
    marked: u64,
    /// Bytes of whole records in the file, flushed.
    len: u64,
    /// Bytes written after them and not flushed yet (see [`Store::write`]).
    unsynced: u64,
    /// The sequence number of the file's first record (1 unless the log was rotated).
    first_seq: u64,
}

/// What opening the log found.
#[derive(Debug)]
pub struct Opened {
    /// The log, ready to append.
    pub store: Store,
    /// The last records, oldest first.
    pub tail: Vec<Message>,
    /// Bytes of an incomplete last line that were cut off, if any.
    pub torn: Option<u64>,
}

impl Store {
    /// Opens (or creates) the log in `dir`, checks every record and returns the last `keep`.
    /// An incomplete last line, left by a crash in the middle of a write, is cut off. `mark`
    /// is the last seq the relay knows it stored in this log (0: none).
    ///
    /// # Errors
    /// When the directory or file cannot be used, a complete line is not a valid record
    /// following the one before it, or the log ends before `mark`.
    pub fn open(dir: &Path, keep: usize, mark: u64) -> Result<Opened, OpenError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |error| OpenError::Io { path, error }
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut tail = std::collections::VecDeque::new();
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let mut line = Vec::new();
        let mut len = 0u64;
        let mut number = 0u64;
        let mut torn = None;
        let mut last_seq = 0u64;
        let mut first_seq = 1u64;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(io_err(&path))?;
            if n == 0 {
                break;
            }
            number += 1;
            if line.last() != Some(&b'\n') {
                torn = Some(n as u64);
                break;
            }
            let corrupt = |error: String| OpenError::Corrupt {
                path: path.clone(),
                line: number,
                error,
            };
            let m: Message = serde_json::from_slice(&line).map_err(|e| corrupt(e.to_string()))?;
            if number == 1 && m.seq >= 1 {
                // A log may begin after an archived part (see docs/operations.md): the
                // sequence goes on from its first record.
                first_seq = m.seq;
                last_seq = m.seq - 1;
            }
            if m.seq != last_seq + 1 {
                return Err(corrupt(format!(
                    "seq {} where {} was expected",
                    m.seq,
                    last_seq + 1
                )));
            }
            last_seq = m.seq;
            len += n as u64;
            tail.push_back(m);
            if tail.len() > keep {
                tail.pop_front();
            }
        }
        drop(reader);
        if torn.is_some() {
            file.set_len(len).map_err(io_err(&path))?;
            file.sync_data().map_err(io_err(&path))?;
        }
        file.seek(SeekFrom::End(0)).map_err(io_err(&path))?;
        if mark > last_seq {
            return Err(OpenError::Behind {
                path,
                last: last_seq,
                mark,
            });
        }
        let reader = File::open(&path).map_err(io_err(&path))?;
        let identity = watch::identity(&reader.metadata().map_err(io_err(&path))?);
        Ok(Opened {
            store: Store {
                path,
                dir: dir.to_owned(),
                file: Box::new(file),
                reader,
                identity,
                lost: None,
                marked: last_seq,
                len,
                unsynced: 0,
                first_seq,
            },
            tail: tail.into(),
            torn,
        })
    }

    /// Takes `latest` as the mark from now on, when past it (a checkpoint writes it with every
    /// room's: see `serve/journal/`); also while the log is lost (what was stored before is
    /// what a log put back must hold). True when it is past.
    pub fn mark_later(&mut self, latest: u64) -> bool {
        let later = latest > self.marked;
        self.marked = self.marked.max(latest);
        later
    }

    /// Its room's mark: the last seq it knows it stored.
    pub fn marked(&self) -> u64 {
        self.marked
    }

    /// Uses `file` for appending from now on (tests put a failing file here).
    pub fn replace_file(&mut self, file: Box<dyn LogFile>) {
        self.file = file;
    }

    /// The sequence number of the log's first record (1 unless the log was rotated).
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `messages` and flushes them to stable storage (fdatasync) before returning.
    /// On failure the file is cut back to its last whole record.
    ///
    /// # Errors
    /// When writing or flushing fails; nothing of `messages` then counts as stored.
    pub fn append<'a>(
        &mut self,
        messages: impl IntoIterator<Item = &'a Message>,
    ) -> io::Result<()> {
        self.write(messages)?;
        self.sync()
    }

    /// Appends `messages` without flushing them: they count as stored once [`Store::sync`]
    /// succeeds (a group commit writes every room's log, then flushes each). On failure the
    /// file is cut back to what it held before.
    ///
    /// # Errors
    /// When the log is lost or writing fails.
    pub fn write<'a>(&mut self, messages: impl IntoIterator<Item = &'a Message>) -> io::Result<()> {
        if let Some(why) = &self.lost {
            return Err(io::Error::other(format!(
                "the message log {why} while the relay ran: nothing is acknowledged until it is back"
            )));
        }
        let messages = messages.into_iter();
        let mut buf = Vec::with_capacity(messages.size_hint().0 * 128);
        for m in messages {
            write_record(&mut buf, m)?;
        }
        self.write_records(&buf)
    }

    /// [`Store::write`] of records already serialised ([`write_record`]'s lines).
    ///
    /// # Errors
    /// When the log is lost or writing fails.
    pub fn write_records(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(why) = &self.lost {
            return Err(io::Error::other(format!(
                "the message log {why} while the relay ran: nothing is acknowledged until it is back"
            )));
        }
        match self.file.append(buf) {
            Ok(()) => {
                self.unsynced += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.cut_back();
                Err(e)
            }
        }
    }

    /// Flushes what [`Store::write`] wrote to stable storage (fdatasync); on failure it is cut
    /// off again.
    ///
    /// # Errors
    /// When the flush fails: nothing written since the last flush counts as stored.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced == 0 {
            return Ok(());
        }
        match self.file.sync() {
            Ok(()) => {
                self.len += std::mem::take(&mut self.unsynced);
                Ok(())
            }
            Err(e) => {
                self.cut_back();
                Err(e)
            }
        }
    }

    /// Cuts the log back to `len` bytes (what [`Store::len`] said before a group commit whose
    /// other logs failed: none of the turn counts as stored), and what was written since the
    /// last flush with it: best effort, a record nobody was told of must not stay in front of
    /// the next one, which takes its seq.
    pub fn cut_back_to(&mut self, len: u64) {
        self.len = len.min(self.len);
        self.cut_back();
    }

    fn cut_back(&mut self) {
        self.unsynced = 0;
        let _ = self.file.truncate(self.len);
    }

    /// What [`Store::write`] wrote counts as stored without a flush here: the journal holds
    /// it, flushed (see `serve/journal/`), and a checkpoint flushes the log later.
    pub fn written(&mut self) {
        self.len += std::mem::take(&mut self.unsynced);
    }

    /// A handle on the log's file for a checkpoint to flush on a thread of its own.
    ///
    /// # Errors
    /// When the system cannot give one.
    pub fn sync_handle(&self) -> io::Result<File> {
        self.reader.try_clone()
    }

    /// Bytes of whole, flushed records in the log.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Serialises one record as the log stores it: one JSON object and a newline.
///
/// # Errors
/// When `out` cannot take it.
pub fn write_record(out: &mut impl Write, m: &Message) -> io::Result<()> {
    serde_json::to_writer(&mut *out, m).map_err(io::Error::other)?;
    out.write_all(b"\n")
}
