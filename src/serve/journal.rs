//! The relay-wide journal, `<data>/journal/<n>.jsonl`: a turn's records of every room, written and flushed once (the group commit's one flush), each room's log written beside it and flushed later by a checkpoint in the background; at start, what the journals hold is put back in the rooms' logs first.
//!
//! A record of the journal is a record of a room's log with the room's name added
//! (`{"room":"ops","seq":7,…}`). About once a second the relay starts a checkpoint: the next
//! records go to a new journal file, the rooms' logs written since the last one are flushed on
//! a thread of their own, and then the journal files before the new one are removed. So a
//! journal holds at most a few seconds of messages, and a crash loses nothing that was
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
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::proto::message::Message;
use crate::serve::layout;
use crate::serve::store::mark::{self, Marks};
use crate::serve::store::{LOG_FILE, write_record};

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
    /// starts a fresh journal; says what was put back (room, records), for the relay's log.
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
            recover(&log, records).map_err(|e| err("put the journal back into", &log, e))?;
            put_back.push((room.clone(), records.len()));
            let mut at = log.parent();
            while let Some(d) = at.filter(|d| d.starts_with(data)) {
                parents.insert(d.to_owned());
                at = d.parent();
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
            let file = match self.prepared.take() {
                Some(n) if n == next => open_prepared(&self.dir, next),
                _ => Err(io::ErrorKind::NotFound.into()),
            };
            let file = match file {
                Ok(file) => file,
                // Not made ahead: a file that grows, its name flushed before a record in it
                // is acknowledged.
                Err(_) => {
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

/// The journal files in `dir`, by number.
fn numbered(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let number = (path.file_name().and_then(|n| n.to_str()))
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = number {
            files.push((n, path));
        }
    }
    files.sort();
    Ok(files)
}

/// A new, empty journal file numbered `number` in `dir`.
fn create(dir: &Path, number: u64) -> io::Result<(File, PathBuf)> {
    let path = dir.join(format!("{number}.jsonl"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    Ok((file, path))
}

/// Makes the journal file numbered `number` in `dir` ready ahead of its use: `bytes` zeros,
/// written and flushed, and its name flushed in `dir` (a record's flush then needs nothing
/// else to be found after a crash). A file made only in part is removed.
fn prepare(dir: &Path, number: u64, bytes: u64) -> io::Result<()> {
    // Never the disk's last free space: the rooms' logs need it more.
    let free = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
    if free.f_bavail.saturating_mul(free.f_frsize) < bytes.saturating_mul(8) {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            "too little free space to make a journal file ahead",
        ));
    }
    let path = dir.join(format!("{number}.jsonl"));
    let made = (|| {
        let (mut file, _) = create(dir, number)?;
        let zeros = vec![0u8; 256 << 10];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(zeros.len() as u64);
            file.write_all(&zeros[..n as usize])?;
            left -= n;
        }
        file.sync_all()?;
        sync_dir(dir)
    })();
    if made.is_err() {
        let _ = fs::remove_file(&path);
    }
    made
}

/// The journal file numbered `number` in `dir`, made ready by [`prepare`], opened to be
/// written from its start.
fn open_prepared(dir: &Path, number: u64) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .open(dir.join(format!("{number}.jsonl")))
}

/// Flushes the directory `dir`: the names made or removed in it are on disk.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Adds the records of the journal file at `path` to `by_room`, up to its first incomplete or
/// damaged line (a crash in the middle of a write: nothing from there on was acknowledged).
fn read_journal(path: &Path, by_room: &mut BTreeMap<String, Vec<Message>>) -> io::Result<()> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        // The zeros of a file made ahead begin where its records end.
        if reader.fill_buf()?.first() == Some(&0)
            || reader.read_until(b'\n', &mut line)? == 0
            || line.last() != Some(&b'\n')
        {
            return Ok(());
        }
        let Ok(entry) = serde_json::from_slice::<Entry>(&line) else {
            return Ok(());
        };
        (by_room.entry(entry.room.into_owned()).or_default()).push(entry.message.into_owned());
    }
}

/// Makes the log in the room directory `dir` hold `records` (the journals' records of the
/// room, in order): cut back to the end of its whole records, each the one after the one
/// before (what follows may be torn, or nothing where a record was: it was never flushed; a
/// log flushed at a point holds everything before it, so its good part is a prefix), then
/// the records of the journal after its last appended and flushed.
///
/// # Errors
/// When the log cannot be read, cut or written.
pub fn recover(dir: &Path, records: &[Message]) -> io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    let path = dir.join(LOG_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(&path)?;
    let (mut keep, mut last) = (0u64, None::<u64>);
    {
        let mut reader = BufReader::new(&file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            match serde_json::from_slice::<Message>(&line) {
                Ok(m) if last.is_none_or(|l| m.seq == l + 1) => {
                    keep += n as u64;
                    last = Some(m.seq);
                }
                _ => break,
            }
        }
    }
    file.set_len(keep)?;
    let mut buf = Vec::new();
    for m in records.iter().filter(|m| last.is_none_or(|l| m.seq > l)) {
        write_record(&mut buf, m)?;
    }
    file.write_all(&buf)?;
    file.sync_data()?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::message::Millis;
    use uuid::Uuid;

    fn message(seq: u64, text: &str) -> Message {
        Message {
            seq,
            id: Uuid::new_v4(),
            from: "ann".into(),
            text: text.into(),
            time: Millis(1_795_593_600_000 + seq as i64),
        }
    }

    fn log(data: &Path, room: &str) -> Vec<(u64, String)> {
        let text = fs::read_to_string(layout::room_dir(data, room).join(LOG_FILE)).unwrap();
        (text.lines())
            .map(|l| serde_json::from_str::<Message>(l).unwrap())
            .map(|m| (m.seq, m.text))
            .collect()
    }

    /// A crash after the journal's flush and before the rooms' logs were flushed: one log
    /// ends in a torn copy of its last record, another lacks its last two, a third room's log
    /// was never made. At the next start every record the journal holds is in its room's log,
    /// once, and the journal is gone.
    #[test]
    fn what_a_crash_left_out_of_the_logs_is_put_back_from_the_journal() {
        let data = tempfile::tempdir().unwrap();
        let (mut j, put_back) = Journal::open(data.path()).unwrap();
        assert!(put_back.is_empty());
        let ops: Vec<Message> = (1..=3).map(|k| message(k, &format!("ops {k}"))).collect();
        let hr: Vec<Message> = (1..=4).map(|k| message(k, &format!("hr {k}"))).collect();
        let new = message(1, "first words");
        // ops 1 and hr 1..2 reached their logs, flushed, in an earlier checkpoint.
        for (room, ms) in [("ops", &ops[..1]), ("hr", &hr[..2])] {
            let dir = layout::room_dir(data.path(), room);
            fs::create_dir_all(&dir).unwrap();
            let mut buf = Vec::new();
            for m in ms {
                write_record(&mut buf, m).unwrap();
            }
            fs::write(dir.join(LOG_FILE), buf).unwrap();
        }
        let records: Vec<(&str, &Message)> = (ops[1..].iter().map(|m| ("ops", m)))
            .chain(hr[2..].iter().map(|m| ("hr", m)))
            .chain([("new", &new)])
            .collect();
        j.append(records).unwrap();
        // The next file made ahead: done before the crash below, not racing the next start.
        assert!(j.poll(true).unwrap().is_ok());
        // ops's log got ops 2 whole and a torn half of ops 3; hr's nothing more.
        let ops_log = layout::room_dir(data.path(), "ops").join(LOG_FILE);
        let mut tail = Vec::new();
        write_record(&mut tail, &ops[1]).unwrap();
        write_record(&mut tail, &ops[2]).unwrap();
        tail.truncate(tail.len() - 20);
        let mut f = OpenOptions::new().append(true).open(&ops_log).unwrap();
        f.write_all(&tail).unwrap();
        drop((f, j));
        let (_j, mut put_back) = Journal::open(data.path()).unwrap();
        put_back.sort();
        assert_eq!(
            put_back,
            [
                ("hr".to_owned(), 2),
                ("new".to_owned(), 1),
                ("ops".to_owned(), 2)
            ]
        );
        let texts = |n: usize, what: &str| -> Vec<(u64, String)> {
            (1..=n as u64).map(|k| (k, format!("{what} {k}"))).collect()
        };
        assert_eq!(log(data.path(), "ops"), texts(3, "ops"));
        assert_eq!(log(data.path(), "hr"), texts(4, "hr"));
        assert_eq!(log(data.path(), "new"), [(1, "first words".to_owned())]);
        let files = numbered(&data.path().join(JOURNAL_DIR)).unwrap();
        assert_eq!(files.len(), 1, "only the fresh journal: {files:?}");
        // A second start finds nothing to put back, and the logs are as they were.
        let (_j, put_back) = Journal::open(data.path()).unwrap();
        assert!(put_back.is_empty());
        assert_eq!(log(data.path(), "ops"), texts(3, "ops"));
    }

    /// A record flushed in the log itself after those of the journal (a turn of one room
    /// flushes its log alone) is kept: the journal's records go only after the log's last
    /// whole one.
    #[test]
    fn records_flushed_in_the_log_after_the_journals_are_kept() {
        let data = tempfile::tempdir().unwrap();
        let dir = layout::room_dir(data.path(), "ops");
        fs::create_dir_all(&dir).unwrap();
        let all: Vec<Message> = (1..=4).map(|k| message(k, &format!("ops {k}"))).collect();
        let mut buf = Vec::new();
        for m in &all[..3] {
            write_record(&mut buf, m).unwrap();
        }
        fs::write(dir.join(LOG_FILE), &buf).unwrap();
        // The journal has 2 (a turn of two rooms) and 4 (another), the log 1 to 3.
        recover(&dir, &[all[1].clone(), all[3].clone()]).unwrap();
        let texts: Vec<u64> = log(data.path(), "ops")
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(texts, [1, 2, 3, 4]);
    }

    /// The journal's first use makes the next file ahead (zeros, flushed); the checkpoint
    /// writes into it from its start and makes the one after it; a crash then leaves records
    /// followed by zeros, and a start reads the records and stops at the zeros.
    #[test]
    fn files_made_ahead_are_written_from_their_start_and_read_up_to_their_zeros() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join(JOURNAL_DIR);
        let size = |n: u64| fs::metadata(dir.join(format!("{n}.jsonl"))).map(|m| m.len());
        let (mut j, _) = Journal::open(data.path()).unwrap();
        let first = j.number;
        assert_eq!(
            size(first + 1).ok(),
            None,
            "nothing is made before the journal is used"
        );
        let one = message(1, "one");
        j.append([("ops", &one)]).unwrap();
        assert!(j.poll(true).unwrap().is_ok());
        assert_eq!(j.prepared, Some(first + 1));
        assert_eq!(size(first + 1).unwrap(), PREPARED_FIRST);
        j.checkpoint(Vec::new(), Vec::new(), None).unwrap();
        assert!(j.poll(true).unwrap().is_ok());
        assert_eq!(j.number, first + 1);
        assert_eq!(size(first).ok(), None, "the file it covered is removed");
        // The one after: twice what the last held, at least the least.
        assert_eq!(j.prepared, Some(first + 2));
        assert_eq!(size(first + 2).unwrap(), PREPARED_MIN);
        let (two, three) = (message(2, "two"), message(3, "three"));
        j.append([("ops", &two), ("hr", &three)]).unwrap();
        assert_eq!(
            size(first + 1).unwrap(),
            PREPARED_FIRST,
            "written over its zeros"
        );
        // A crash: the file holds the records, then zeros.
        drop(j);
        let mut by_room = BTreeMap::new();
        read_journal(&dir.join(format!("{}.jsonl", first + 1)), &mut by_room).unwrap();
        let seqs = |room: &str| by_room[room].iter().map(|m| m.seq).collect::<Vec<_>>();
        assert_eq!((seqs("ops"), seqs("hr")), (vec![2], vec![3]));
        let (_j, mut put_back) = Journal::open(data.path()).unwrap();
        put_back.sort();
        assert_eq!(put_back, [("hr".to_owned(), 1), ("ops".to_owned(), 1)]);
        assert_eq!(log(data.path(), "ops"), [(2, "two".to_owned())]);
    }

    /// A checkpoint that failed keeps the journal files it covered till the next start, even
    /// once a later checkpoint succeeds (that one's own files go): a failed flush may have left
    /// a log's pages marked clean and unwritten, the journal their only copy on disk.
    #[test]
    fn a_failed_checkpoints_journal_is_kept_till_the_next_start() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join(JOURNAL_DIR);
        let (mut j, _) = Journal::open(data.path()).unwrap();
        let first = j.number;
        j.append([("ops", &message(1, "one"))]).unwrap();
        assert!(j.poll(true).unwrap().is_ok());
        // A directory to flush that is not there: the checkpoint fails.
        let gone = data.path().join("rooms/gone");
        j.checkpoint(vec![gone], Vec::new(), None).unwrap();
        assert!(j.poll(true).unwrap().is_err());
        j.append([("ops", &message(2, "two"))]).unwrap();
        j.checkpoint(Vec::new(), Vec::new(), None).unwrap();
        assert!(j.poll(true).unwrap().is_ok());
        let left: Vec<u64> = numbered(&dir).unwrap().iter().map(|(n, _)| *n).collect();
        assert!(
            left.contains(&first),
            "the failed one's file is kept: {left:?}"
        );
        assert!(
            !left.contains(&(first + 1)),
            "the later one's goes: {left:?}"
        );
        drop(j);
        let (_j, put_back) = Journal::open(data.path()).unwrap();
        assert_eq!(put_back, [("ops".to_owned(), 1)]);
        assert_eq!(log(data.path(), "ops"), [(1, "one".to_owned())]);
    }

    /// A checkpoint moves the journal on: the files before it are removed once the logs are
    /// flushed, and a torn last line of the journal is not taken for a record.
    #[test]
    fn a_checkpoint_removes_the_journal_it_covers_and_a_torn_line_is_no_record() {
        let data = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(data.path()).unwrap();
        let m = message(1, "one");
        j.append([("ops", &m)]).unwrap();
        let dir = data.path().join(JOURNAL_DIR);
        // The file written, and the next one its first use made ahead.
        assert!(j.poll(true).unwrap().is_ok());
        assert_eq!(numbered(&dir).unwrap().len(), 2);
        j.checkpoint(Vec::new(), Vec::new(), None).unwrap();
        assert!(j.checkpointing());
        assert!(j.poll(true).unwrap().is_ok());
        let left: Vec<u64> = numbered(&dir).unwrap().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            left,
            [j.number, j.number + 1],
            "the new journal and the next"
        );
        // An empty journal starts no checkpoint.
        j.checkpoint(Vec::new(), Vec::new(), None).unwrap();
        assert!(!j.checkpointing());
        let m2 = message(2, "two");
        j.append([("ops", &m2)]).unwrap();
        let path = dir.join(format!("{}.jsonl", j.number));
        // A torn record right after it (written where the next would go, before the zeros).
        j.file.write_all(b"{\"room\":\"ops\",\"seq\":3").unwrap();
        drop(j);
        let mut by_room = BTreeMap::new();
        read_journal(&path, &mut by_room).unwrap();
        assert_eq!(
            by_room["ops"].iter().map(|m| m.seq).collect::<Vec<_>>(),
            [2]
        );
    }
}
