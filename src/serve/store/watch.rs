//! The log file under a running relay: deleted, moved or replaced by someone, the relay notices
//! at its next look (about once a second), stops acknowledging, and keeps what it had written.
//!
//! The relay appends through the file it opened, whatever happens to the name: a log deleted
//! under it took every later message to a file nobody could see (after a restart, 104
//! acknowledged messages were gone and their seqs given again). So the relay compares the file
//! at the log's path with its own: while they differ, appends fail (clients hear that the
//! relay cannot store, and resend), and if its own file has no name left, its records are
//! copied to `messages.jsonl.rescued-<unix time>` first. When the log is back under its name
//! (moved back), acknowledging goes on.

use std::fs::{self, File};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{LOG_FILE, Store};

/// What a look at the log's file found, when it changed.
#[derive(Debug)]
pub enum LogEvent {
    /// The log is not the relay's file any more: nothing is acknowledged from now on.
    Lost {
        /// What happened to it, as a phrase ("was deleted").
        why: String,
        /// Where its records were copied, if its file had no name left.
        rescued: Option<io::Result<PathBuf>>,
    },
    /// The relay's file is the log again: acknowledging goes on.
    Back,
}

/// The identity of a file: its device and inode.
pub(super) fn identity(meta: &fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

impl Store {
    /// Looks at the file under the log's path; what changed since the last look, if anything.
    pub fn check(&mut self) -> Option<LogEvent> {
        let here = fs::metadata(&self.path).map(|m| identity(&m));
        let ours = here.as_ref().is_ok_and(|id| *id == self.identity);
        match (ours, self.lost.is_some()) {
            (true, true) => {
                self.lost = None;
                Some(LogEvent::Back)
            }
            (false, false) => {
                let links = self.reader.metadata().map_or(1, |m| m.nlink());
                let why = match (&here, links) {
                    (_, 0) => "was deleted",
                    (Err(_), _) => "was moved away",
                    (Ok(_), _) => "was replaced by another file",
                };
                self.lost = Some(why.to_owned());
                let rescued = (links == 0).then(|| self.rescue());
                Some(LogEvent::Lost {
                    why: why.to_owned(),
                    rescued,
                })
            }
            _ => None,
        }
    }

    /// What happened to the log, while it is not the relay's file.
    pub fn lost(&self) -> Option<&str> {
        self.lost.as_deref()
    }

    /// Copies the whole records of the relay's file, which has no name left, to a new file
    /// beside where the log was.
    fn rescue(&mut self) -> io::Result<PathBuf> {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let path = self.dir.join(format!("{LOG_FILE}.rescued-{secs}"));
        let mut out = File::create_new(&path)?;
        self.reader.seek(SeekFrom::Start(0))?;
        io::copy(&mut (&self.reader).take(self.len), &mut out)?;
        out.flush()?;
        out.sync_all()?;
        Ok(path)
    }
}
