//! The message log: one JSON object a line in `<data>/messages.jsonl`, appended and flushed.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::proto::message::Message;
use crate::proto::wire::MAX_HISTORY_REQUEST;

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
        }
    }
}

impl std::error::Error for OpenError {}

/// What the log needs of its file, apart so that tests can make it fail like a full,
/// read-only or broken disk.
pub trait LogFile: fmt::Debug + Send {
    /// Appends `bytes` at the end.
    ///
    /// # Errors
    /// When the system cannot write them all.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Flushes what was appended to stable storage (fdatasync).
    ///
    /// # Errors
    /// When the flush fails: what was appended may not be durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes.
    ///
    /// # Errors
    /// When the system refuses.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

impl LogFile for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// The open log.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    file: Box<dyn LogFile>,
    /// Bytes of whole records in the file.
    len: u64,
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
    /// An incomplete last line, left by a crash in the middle of a write, is cut off.
    ///
    /// # Errors
    /// When the directory or file cannot be used, or a complete line is not a valid record
    /// following the one before it.
    pub fn open(dir: &Path, keep: usize) -> Result<Opened, OpenError> {
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
        Ok(Opened {
            store: Store {
                path,
                file: Box::new(file),
                len,
                first_seq,
            },
            tail: tail.into(),
            torn,
        })
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
        let messages = messages.into_iter();
        let mut buf = Vec::with_capacity(messages.size_hint().0 * 128);
        for m in messages {
            write_record(&mut buf, m)?;
        }
        let result = self.file.append(&buf).and_then(|()| self.file.sync());
        match result {
            Ok(()) => {
                self.len += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Best effort: a half-written record must not stay in front of the next one.
                let _ = self.file.truncate(self.len);
                Err(e)
            }
        }
    }

    /// Reads the records with sequence numbers `first..=last` that this file holds (a rotated
    /// log holds none before its first record), at most [`MAX_READ`] of them: a longer range is
    /// cut after its first [`MAX_READ`].
    ///
    /// The first record wanted is found by halving the file (the records are in sequence
    /// order, one a line), so a read costs a few small reads wherever it lands, however long
    /// the log, and nothing is kept between reads.
    ///
    /// # Errors
    /// When the log cannot be read, a record cannot be parsed or the records are not numbered
    /// one after the other.
    pub fn read(&self, first: u64, last: u64) -> io::Result<Vec<Message>> {
        self.read_scanning(first, last, SCAN)
    }

    /// [`Store::read`], halving the file until at most `scan` bytes are left to read forward.
    fn read_scanning(&self, first: u64, last: u64, scan: u64) -> io::Result<Vec<Message>> {
        let first = first.max(self.first_seq);
        let last = last.min(first.saturating_add(MAX_READ as u64 - 1));
        if first > last || self.len == 0 {
            return Ok(Vec::new());
        }
        File::open(&self.path)
            .and_then(|file| {
                let start = search(&file, self.len, first, scan)?;
                read_from(&file, start, self.len, first, last)
            })
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
    }
}

/// Most records one [`Store::read`] returns: the most one history request may ask for.
pub const MAX_READ: usize = MAX_HISTORY_REQUEST as usize;

/// Bytes of log below which [`search`] stops halving and the read goes forward record by
/// record (about a hundred records of a short message).
const SCAN: u64 = 16 * 1024;

/// Serialises one record as the log stores it: one JSON object and a newline.
///
/// # Errors
/// When `out` cannot take it.
pub fn write_record(out: &mut impl Write, m: &Message) -> io::Result<()> {
    serde_json::to_writer(&mut *out, m).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// The part of a record the search looks at.
#[derive(serde::Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// The offset of a record at or before the one numbered `target` among the whole records in
/// the first `len` bytes of `file`: the target's own when a probe lands on it, otherwise one
/// at most about `scan` bytes before it. The file's first record must not come after
/// `target`; when `target` is past the last record, an offset near the end.
///
/// It halves `lo..hi`, which always holds the target's start, `lo` being a record's start
/// whose seq is at most `target`: from the middle it skips to the next line's start and reads
/// that record's seq.
fn search(file: &File, len: u64, target: u64, scan: u64) -> io::Result<u64> {
    let (mut lo, mut hi) = (0, len);
    while hi - lo > scan.max(1) {
        let mid = lo + (hi - lo) / 2;
        match record_after(file, mid, hi, len)? {
            None => hi = mid,
            Some((start, seq)) => match seq.cmp(&target) {
                std::cmp::Ordering::Equal => return Ok(start),
                std::cmp::Ordering::Less => lo = start,
                std::cmp::Ordering::Greater => hi = start,
            },
        }
    }
    Ok(lo)
}

/// The first record that starts at an offset in `pos..end` (`pos` at least 1), with its seq;
/// `None` when no line starts there.
fn record_after(file: &File, pos: u64, end: u64, len: u64) -> io::Result<Option<(u64, u64)>> {
    // From the byte before `pos`: a line starts at `pos` itself when that byte ends a line.
    let mut reader = reader_at(file, pos - 1, len, 8 * 1024)?;
    let mut line = Vec::new();
    let skipped = reader.read_until(b'\n', &mut line)? as u64;
    let start = pos - 1 + skipped;
    if line.last() != Some(&b'\n') || start >= end {
        return Ok(None);
    }
    line.clear();
    reader.read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no whole record at byte {start}"),
        ));
    }
    let record: SeqOnly = serde_json::from_slice(&line).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("invalid record at byte {start}: {e}"),
        )
    })?;
    Ok(Some((start, record.seq)))
}

/// Reads forward from the record at `start`, skipping records before `first`, up to `last`,
/// checking that each record follows the one before.
fn read_from(file: &File, start: u64, len: u64, first: u64, last: u64) -> io::Result<Vec<Message>> {
    let mut reader = reader_at(file, start, len, 64 * 1024)?;
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
            break;
        }
        let m: Message = serde_json::from_slice(&line).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("invalid record: {e}"))
        })?;
        if let Some(b) = before
            && m.seq != b + 1
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("seq {} where {} was expected", m.seq, b + 1),
            ));
        }
        before = Some(m.seq);
        if m.seq > last {
            break;
        }
        if m.seq >= first {
            out.push(m);
        }
    }
    Ok(out)
}

/// A reader of `file` from byte `pos` to byte `len`.
fn reader_at(
    file: &File,
    pos: u64,
    len: u64,
    capacity: usize,
) -> io::Result<BufReader<io::Take<&File>>> {
    let mut file = file;
    file.seek(SeekFrom::Start(pos))?;
    Ok(BufReader::with_capacity(capacity, file.take(len - pos)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::message::Millis;
    use uuid::Uuid;

    fn msg(seq: u64) -> Message {
        Message {
            seq,
            id: Uuid::new_v4(),
            from: "alice".into(),
            text: format!("你好 {seq}"),
            time: Millis(1_795_593_600_000 + seq as i64),
        }
    }

    #[test]
    fn appends_reopens_and_reads() {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = Store::open(dir.path(), 10).unwrap();
        assert!(opened.tail.is_empty());
        let all: Vec<Message> = (1..=25).map(msg).collect();
        opened.store.append(&all[..5]).unwrap();
        opened.store.append(&all[5..]).unwrap();
        assert_eq!(opened.store.read(3, 7).unwrap(), all[2..7]);
        drop(opened);
        let again = Store::open(dir.path(), 10).unwrap();
        assert_eq!(again.tail, all[15..]);
        assert_eq!(again.torn, None);
        let text = fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        assert_eq!(text.lines().count(), 25);
    }

    #[test]
    fn a_torn_last_line_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = Store::open(dir.path(), 10).unwrap();
        opened.store.append(&[msg(1), msg(2)]).unwrap();
        drop(opened);
        let path = dir.path().join(LOG_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"seq":3,"id":"#).unwrap();
        drop(f);
        let mut again = Store::open(dir.path(), 10).unwrap();
        assert_eq!(again.torn, Some(14));
        assert_eq!(again.tail.len(), 2);
        again.store.append(&[msg(3)]).unwrap();
        drop(again);
        let third = Store::open(dir.path(), 10).unwrap();
        assert_eq!(
            third.tail.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    #[test]
    fn a_bad_line_in_the_middle_is_refused_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = Store::open(dir.path(), 10).unwrap();
        opened.store.append(&[msg(1), msg(2), msg(3)]).unwrap();
        drop(opened);
        let path = dir.path().join(LOG_FILE);
        let text = fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[1] = "not json";
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        let err = Store::open(dir.path(), 10).unwrap_err();
        assert!(matches!(err, OpenError::Corrupt { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("messages.jsonl:2: invalid record"));
    }

    #[test]
    fn a_sequence_gap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = Store::open(dir.path(), 10).unwrap();
        opened.store.append(&[msg(1), msg(3)]).unwrap();
        drop(opened);
        let err = Store::open(dir.path(), 10).unwrap_err();
        assert!(
            err.to_string().contains("seq 3 where 2 was expected"),
            "{err}"
        );
    }

    /// A file that fails like a full disk while `full` is set: it writes part of what it is
    /// given, then reports ENOSPC.
    #[derive(Debug)]
    struct FullDisk {
        file: File,
        full: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl LogFile for FullDisk {
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            if self.full.load(std::sync::atomic::Ordering::SeqCst) {
                self.file.write_all(&bytes[..bytes.len() / 2])?;
                return Err(io::Error::from_raw_os_error(28));
            }
            self.file.write_all(bytes)
        }
        fn sync(&mut self) -> io::Result<()> {
            self.file.sync_data()
        }
        fn truncate(&mut self, len: u64) -> io::Result<()> {
            self.file.set_len(len)
        }
    }

    #[test]
    fn a_full_disk_fails_the_batch_leaves_no_half_record_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = Store::open(dir.path(), 10).unwrap();
        opened.store.append(&[msg(1)]).unwrap();
        let full = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let path = dir.path().join(LOG_FILE);
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        opened.store.replace_file(Box::new(FullDisk {
            file,
            full: full.clone(),
        }));
        let err = opened.store.append(&[msg(2), msg(3)]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
        // Cut back to the last whole record: nothing half-written stays in the log.
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1);
        full.store(false, std::sync::atomic::Ordering::SeqCst);
        opened.store.append(&[msg(2), msg(3)]).unwrap();
        drop(opened);
        let again = Store::open(dir.path(), 10).unwrap();
        assert_eq!(
            again.tail.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(again.torn, None);
    }

    /// A file on a file system that turned read-only: every write fails, nothing is written.
    #[derive(Debug)]
    struct ReadOnly;

    impl LogFile for ReadOnly {
        fn append(&mut self, _: &[u8]) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(30))
        }
        fn sync(&mut self) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(30))
        }
        fn truncate(&mut self, _: u64) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(30))
        }
    }

    #[test]
    fn a_read_only_file_system_fails_every_append_and_keeps_what_was_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = Store::open(dir.path(), 10).unwrap();
        let first = msg(1);
        opened.store.append(std::slice::from_ref(&first)).unwrap();
        opened.store.replace_file(Box::new(ReadOnly));
        for _ in 0..3 {
            let err = opened.store.append(&[msg(2)]).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(30));
        }
        assert_eq!(opened.store.read(1, 5).unwrap(), vec![first]);
        drop(opened);
        let again = Store::open(dir.path(), 10).unwrap();
        assert_eq!(again.tail.len(), 1);
    }

    #[test]
    fn a_rotated_log_goes_on_from_its_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = Store::open(dir.path(), 10).unwrap();
        let all: Vec<Message> = (1..=5).map(msg).collect();
        opened.store.append(&all).unwrap();
        drop(opened);
        // Rotated as docs/operations.md says: archived, the new log starts with the last line.
        let path = dir.path().join(LOG_FILE);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, format!("{}\n", text.lines().last().unwrap())).unwrap();
        let mut again = Store::open(dir.path(), 10).unwrap();
        assert_eq!(again.tail, all[4..]);
        let sixth = msg(6);
        again.store.append(std::slice::from_ref(&sixth)).unwrap();
        assert_eq!(again.store.read(1, 6).unwrap(), [all[4].clone(), sixth]);
        assert_eq!(again.store.read(1, 3).unwrap(), vec![]);
        drop(again);
        let third = Store::open(dir.path(), 10).unwrap();
        assert_eq!(third.tail.iter().map(|m| m.seq).collect::<Vec<_>>(), [5, 6]);
    }

    /// A log of `n` records from `start`, of lengths that vary a lot (empty texts, escapes,
    /// wide characters, a few long ones), written as `Store::append` writes them.
    fn varied_log(dir: &Path, start: u64, n: u64) -> (Store, Vec<Message>) {
        let all: Vec<Message> = (start..start + n)
            .map(|seq| {
                let mut m = msg(seq);
                m.text = match seq % 7 {
                    0 => String::new(),
                    1 => "\"quoted\" \\ and\ttab".repeat((seq % 5) as usize),
                    2 => "你好🙂".repeat((seq * 37 % 90) as usize),
                    3 => "x".repeat(900),
                    _ => format!("hello world message {seq:06}"),
                };
                m
            })
            .collect();
        if let Some(first) = all.first() {
            // Opened on a log that begins with `first`, as after a rotation.
            let mut buf = Vec::new();
            write_record(&mut buf, first).unwrap();
            fs::write(dir.join(LOG_FILE), buf).unwrap();
        }
        let mut opened = Store::open(dir, 10).unwrap();
        if all.len() > 1 {
            opened.store.append(&all[1..]).unwrap();
        }
        (opened.store, all)
    }

    /// What a read must return, by scanning everything.
    fn oracle(all: &[Message], first: u64, last: u64) -> Vec<Message> {
        all.iter()
            .filter(|m| m.seq >= first && m.seq <= last)
            .take(MAX_READ)
            .cloned()
            .collect()
    }

    #[test]
    fn reads_find_every_range_of_small_logs_like_a_scan() {
        for start in [1, 5] {
            for n in 0..=12 {
                let dir = tempfile::tempdir().unwrap();
                let (store, all) = varied_log(dir.path(), start, n);
                let end = start + n + 2;
                for first in 0..=end {
                    for last in first.saturating_sub(1)..=end {
                        for scan in [1, 40, SCAN] {
                            assert_eq!(
                                store.read_scanning(first, last, scan).unwrap(),
                                oracle(&all, first, last),
                                "start {start}, {n} records, {first}..={last}, scan {scan}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_read_lands_on_its_range_in_a_long_log_and_stops_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let (store, all) = varied_log(dir.path(), 1, 2500);
        for (first, last) in [(1, 20), (1250, 1269), (2481, 2500), (2490, 3000), (7, 7)] {
            assert_eq!(store.read(first, last).unwrap(), oracle(&all, first, last));
        }
        let most = store.read(100, 5000).unwrap();
        assert_eq!(most.len(), MAX_READ);
        assert_eq!((most[0].seq, most[MAX_READ - 1].seq), (100, 1099));
        assert!(store.read(2501, 2600).unwrap().is_empty());
        assert!(store.read(20, 10).unwrap().is_empty());
    }

    #[test]
    fn a_read_sees_records_appended_after_open_and_nothing_past_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, mut all) = varied_log(dir.path(), 1, 300);
        let more: Vec<Message> = (301..=340).map(msg).collect();
        store.append(&more).unwrap();
        all.extend(more);
        // Half a record that the store does not count (as a failed write that could not be
        // cut back would leave): reads never reach it.
        let mut f = OpenOptions::new().append(true).open(store.path()).unwrap();
        f.write_all(br#"{"seq":341,"id":"#).unwrap();
        for scan in [1, SCAN] {
            assert_eq!(
                store.read_scanning(330, 400, scan).unwrap(),
                oracle(&all, 330, 400)
            );
            assert_eq!(store.read_scanning(341, 400, scan).unwrap(), vec![]);
        }
    }

    #[test]
    fn a_damaged_record_on_the_way_is_an_error_not_a_wrong_answer() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = varied_log(dir.path(), 1, 50);
        let text = fs::read_to_string(store.path()).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        // Numbered out of turn, same length: a read through it must not go on silently.
        lines[29] = lines[29].replacen("\"seq\":30,", "\"seq\":31,", 1);
        fs::write(store.path(), lines.join("\n") + "\n").unwrap();
        let err = store.read_scanning(25, 35, 1).unwrap_err();
        assert!(err.to_string().contains("where 30 was expected"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn reads_agree_with_a_scan(
            start in 1u64..1000,
            n in 0u64..400,
            first in 0u64..1500,
            count in 0u64..1200,
            scan in 1u64..3000,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (store, all) = varied_log(dir.path(), start, n);
            let last = first + count;
            proptest::prop_assert_eq!(
                store.read_scanning(first, last, scan).unwrap(),
                oracle(&all, first, last)
            );
        }
    }
}
