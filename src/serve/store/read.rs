//! The read path: records by sequence number, found by halving the file, so that history
//! older than the relay's cache costs a few small reads however long the log.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

use super::Store;
use crate::proto::message::Message;
use crate::proto::wire::MAX_HISTORY_REQUEST;

impl Store {
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
    pub(super) fn read_scanning(
        &self,
        first: u64,
        last: u64,
        scan: u64,
    ) -> io::Result<Vec<Message>> {
        let first = first.max(self.first_seq);
        let last = last.min(first.saturating_add(MAX_READ as u64 - 1));
        if first > last || self.len == 0 {
            return Ok(Vec::new());
        }
        // Through the relay's own file, whatever became of its name.
        let file = &self.reader;
        search(file, self.len, first, scan)
            .and_then(|start| read_from(file, start, self.len, first, last))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
    }
}

/// Most records one [`Store::read`] returns: the most one history request may ask for.
pub const MAX_READ: usize = MAX_HISTORY_REQUEST as usize;

/// Bytes of log below which [`search`] stops halving and the read goes forward record by
/// record (about a hundred records of a short message).
pub(super) const SCAN: u64 = 16 * 1024;

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
