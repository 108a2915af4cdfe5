//! `urc serve --repair-log`: damaged records of the message log replaced by placeholders that
//! keep the sequence whole; the damaged file is kept beside the log, untouched.
//!
//! A record is damaged when its line is complete but is not a record (bytes lost on a disk,
//! an editor's slip). The records around a run of damaged lines say which seqs the run held:
//! as many as it has lines, or the repair refuses (a gap or a repeat between valid records is
//! not damage this can undo). The placeholders have the nil id, the sender `urc` and a text
//! saying what happened, so that every client's order stays the relay's and the messages after
//! the damage stay where they were. An incomplete last line (a crash in the middle of a write)
//! is not touched: opening the log cuts it, as always.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::proto::message::{Message, Millis};
use crate::proto::name::RELAY_NAME;
use crate::serve::store::{LOG_FILE, write_record};

/// The sender of a placeholder: the relay's own name, which no client may take.
pub const PLACEHOLDER_FROM: &str = RELAY_NAME;
/// The text of a placeholder.
pub const PLACEHOLDER_TEXT: &str =
    "(a damaged record of the log was here: urc serve --repair-log kept the damaged file)";

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// The seqs now held by placeholders, with the number of the line each replaces.
    pub replaced: Vec<(u64, u64)>,
    /// Where the damaged file was moved.
    pub kept: PathBuf,
}

/// Why the log could not be repaired.
#[derive(Debug)]
pub enum RepairError {
    /// Reading or writing failed.
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// Valid records around damaged lines (or next to each other) do not say which seqs the
    /// damaged lines held.
    Ambiguous {
        /// The log.
        path: PathBuf,
        /// The line of the record that does not fit.
        line: u64,
        /// What does not fit.
        why: String,
    },
}

impl fmt::Display for RepairError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepairError::Io { path, error } => {
                write!(f, "cannot repair {}: {error}", path.display())
            }
            RepairError::Ambiguous { path, line, why } => write!(
                f,
                "{}:{line}: {why}: that is not damage --repair-log can undo; restore the log from a backup",
                path.display()
            ),
        }
    }
}

impl std::error::Error for RepairError {}

/// The last valid record read.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    seq: u64,
    time: Millis,
}

/// Replaces the damaged records of the log in `dir` by placeholders. `None` when no record
/// is damaged (the file is then not touched).
///
/// # Errors
/// When the log cannot be read or written, or the valid records do not say which seqs the
/// damaged lines held.
pub fn repair(dir: &Path) -> Result<Option<Repaired>, RepairError> {
    let path = dir.join(LOG_FILE);
    let io_err = |error| RepairError::Io {
        path: path.clone(),
        error,
    };
    let plan = plan(&path)?;
    if plan.is_empty() {
        return Ok(None);
    }
    // The repaired log is written beside the damaged one and takes its name only when whole and
    // flushed; the damaged one is kept under a name of its own.
    let fresh = dir.join(format!("{LOG_FILE}.repairing"));
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // A name no earlier repair took (two in the same second get -1, -2…).
    let kept = (0..)
        .map(|k| match k {
            0 => dir.join(format!("{LOG_FILE}.damaged-{secs}")),
            k => dir.join(format!("{LOG_FILE}.damaged-{secs}-{k}")),
        })
        .find(|p| !p.exists())
        .expect("a free name");
    {
        let mut out = BufWriter::new(File::create(&fresh).map_err(io_err)?);
        let mut reader = BufReader::new(File::open(&path).map_err(io_err)?);
        let mut line = Vec::new();
        let mut number = 0u64;
        let mut next = plan.iter().peekable();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(io_err)? == 0 {
                break;
            }
            number += 1;
            match next.peek() {
                Some(p) if p.line == number => {
                    write_record(&mut out, &placeholder(p.seq, p.time)).map_err(io_err)?;
                    next.next();
                }
                _ => out.write_all(&line).map_err(io_err)?,
            }
        }
        let file = out.into_inner().map_err(|e| io_err(e.into_error()))?;
        file.sync_all().map_err(io_err)?;
    }
    fs::rename(&path, &kept).map_err(io_err)?;
    fs::rename(&fresh, &path).map_err(io_err)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
    Ok(Some(Repaired {
        replaced: plan.iter().map(|p| (p.seq, p.line)).collect(),
        kept,
    }))
}

/// A placeholder for the record numbered `seq`.
pub fn placeholder(seq: u64, time: Millis) -> Message {
    Message {
        seq,
        id: Uuid::nil(),
        from: PLACEHOLDER_FROM.to_owned(),
        text: PLACEHOLDER_TEXT.to_owned(),
        time,
    }
}

/// The text of a placeholder for a record lost with the log.
pub const LOST_TEXT: &str =
    "(a message stored here was lost with the log: urc serve --repair-log went on after it)";

/// Makes the log in `dir` reach `mark`, the last seq the relay stored in it, when it ends before
/// it (deleted, truncated, replaced by an older copy): placeholders for the seqs it lacks, so
/// that no seq a client was given is ever given to another message. An empty log starts with
/// one placeholder, at the mark (a log may begin after an archived part). Returns the seqs
/// filled in, `None` when the log was not behind.
///
/// # Errors
/// When the log cannot be read or written.
pub fn fill_to_mark(dir: &Path, mark: u64) -> Result<Option<(u64, u64)>, RepairError> {
    let path = dir.join(LOG_FILE);
    let io_err = |error| RepairError::Io {
        path: path.clone(),
        error,
    };
    if mark == 0 {
        return Ok(None);
    }
    let (last, whole) = last_record(&path).map_err(io_err)?;
    let (first, time) = match last {
        Some(m) if m.seq >= mark => return Ok(None),
        Some(m) => (m.seq + 1, m.time),
        None => (mark, Millis::now()),
    };
    let mut out = Vec::new();
    for seq in first..=mark {
        let mut m = placeholder(seq, time);
        m.text = LOST_TEXT.to_owned();
        write_record(&mut out, &m).map_err(io_err)?;
    }
    let mut file = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(io_err)?;
    // An incomplete last line (a crash mid-write) goes, or it would run into the first
    // placeholder.
    file.set_len(whole).map_err(io_err)?;
    file.write_all(&out).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    Ok(Some((first, mark)))
}

/// The log's last valid record, if any, and the bytes of its whole lines (an incomplete last
/// line is not one).
fn last_record(path: &Path) -> io::Result<(Option<Message>, u64)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((None, 0)),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let (mut last, mut whole) = (None, 0u64);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok((last, whole));
        }
        whole += n as u64;
        if let Ok(m) = serde_json::from_slice::<Message>(&line) {
            last = Some(m);
        }
    }
}

/// One damaged line and the record that takes its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fix {
    line: u64,
    seq: u64,
    time: Millis,
}

/// The damaged lines of the log and the seqs they held, read in one pass.
fn plan(path: &Path) -> Result<Vec<Fix>, RepairError> {
    let io_err = |error| RepairError::Io {
        path: path.to_owned(),
        error,
    };
    let ambiguous = |line: u64, why: String| RepairError::Ambiguous {
        path: path.to_owned(),
        line,
        why,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        // No log yet: nothing is damaged.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(e)),
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut fixes = Vec::new();
    let mut damaged: Vec<u64> = Vec::new();
    let mut anchor: Option<Anchor> = None;
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(io_err)? == 0 {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') {
            // A torn last line: opening the log cuts it.
            break;
        }
        let Ok(m) = serde_json::from_slice::<Message>(&line) else {
            damaged.push(number);
            continue;
        };
        let gap = damaged.len() as u64;
        let first = match anchor {
            Some(a) if m.seq != a.seq + 1 + gap => {
                return Err(ambiguous(
                    number,
                    format!(
                        "seq {} after seq {} and {gap} damaged line(s) (seq {} expected)",
                        m.seq,
                        a.seq,
                        a.seq + 1 + gap
                    ),
                ));
            }
            Some(a) => a.seq + 1,
            None if m.seq <= gap => {
                return Err(ambiguous(
                    number,
                    format!("seq {} after {gap} damaged line(s) at the start", m.seq),
                ));
            }
            None => m.seq - gap,
        };
        let time = anchor.map_or(m.time, |a| a.time);
        fixes.extend((damaged.drain(..).zip(first..)).map(|(line, seq)| Fix { line, seq, time }));
        anchor = Some(Anchor {
            seq: m.seq,
            time: m.time,
        });
    }
    // Damaged lines after the last valid record held the seqs that follow it.
    let (first, time) = anchor.map_or((1, Millis(0)), |a| (a.seq + 1, a.time));
    fixes.extend((damaged.drain(..).zip(first..)).map(|(line, seq)| Fix { line, seq, time }));
    Ok(fixes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::store::Store;

    fn record(seq: u64) -> String {
        let m = Message {
            seq,
            id: Uuid::from_u128(u128::from(seq) + 1000),
            from: "alice".into(),
            text: format!("message {seq}"),
            time: Millis(1_795_593_600_000 + seq as i64),
        };
        let mut out = Vec::new();
        write_record(&mut out, &m).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// A log of the given lines, repaired; the directory, the result and the original text.
    fn repaired(
        lines: &[String],
    ) -> (
        tempfile::TempDir,
        Result<Option<Repaired>, RepairError>,
        String,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let text = lines.concat();
        fs::write(dir.path().join(LOG_FILE), &text).unwrap();
        let result = repair(dir.path());
        (dir, result, text)
    }

    fn log_of(dir: &Path) -> Vec<Message> {
        Store::open(dir, 1000, 0)
            .expect("the repaired log opens")
            .tail
    }

    #[test]
    fn damaged_records_become_placeholders_and_the_damaged_file_is_kept() {
        let garbage = || "{\"seq\":9,\"tex\u{fffd}\n".to_owned();
        // Damaged: the first line, two in the middle, the last complete one; a torn tail.
        let lines = vec![
            garbage(),
            record(2),
            record(3),
            garbage(),
            "\n".to_owned(),
            record(6),
            garbage(),
            "{\"seq\":8,\"id\"".to_owned(),
        ];
        let (dir, result, text) = repaired(&lines);
        let r = result.unwrap().expect("something repaired");
        assert_eq!(r.replaced, [(1, 1), (4, 4), (5, 5), (7, 7)]);
        assert_eq!(fs::read_to_string(&r.kept).unwrap(), text, "kept as it was");
        let log = log_of(dir.path());
        assert_eq!(
            log.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6, 7]
        );
        for m in &log {
            if [1, 4, 5, 7].contains(&m.seq) {
                assert_eq!((m.id, m.from.as_str()), (Uuid::nil(), PLACEHOLDER_FROM));
                assert_eq!(m.text, PLACEHOLDER_TEXT);
            } else {
                assert_eq!(m.text, format!("message {}", m.seq));
            }
        }
        // Placeholders take the time of the record before them (the first, of the one after).
        assert_eq!(log[0].time, log[1].time);
        assert_eq!(log[3].time, log[2].time);
        // Nothing left to repair.
        assert_eq!(repair(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_log_without_damage_is_not_touched() {
        let (dir, result, text) = repaired(&[record(5), record(6), "{\"torn".to_owned()]);
        assert_eq!(result.unwrap(), None);
        assert_eq!(fs::read_to_string(dir.path().join(LOG_FILE)).unwrap(), text);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no other file"
        );
    }

    #[test]
    fn records_that_do_not_say_which_seqs_were_damaged_are_refused() {
        for (lines, line, why) in [
            // One damaged line where two seqs are missing.
            (
                vec![record(1), "x\n".into(), record(4)],
                3,
                "seq 4 after seq 1 and 1",
            ),
            // A gap with nothing damaged.
            (
                vec![record(1), record(3), "x\n".into()],
                2,
                "seq 3 after seq 1 and 0",
            ),
            // More damaged lines at the start than seqs before the first record.
            (
                vec!["x\n".into(), "y\n".into(), record(2)],
                3,
                "seq 2 after 2 damaged",
            ),
        ] {
            let (dir, result, text) = repaired(&lines);
            let e = result.unwrap_err();
            let message = e.to_string();
            assert!(
                message.contains(&format!("{LOG_FILE}:{line}: {why}")),
                "{message}"
            );
            assert!(
                message.contains("restore the log from a backup"),
                "{message}"
            );
            assert_eq!(fs::read_to_string(dir.path().join(LOG_FILE)).unwrap(), text);
            assert_eq!(
                fs::read_dir(dir.path()).unwrap().count(),
                1,
                "no other file"
            );
        }
    }
}
