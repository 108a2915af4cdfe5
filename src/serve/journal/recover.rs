//! Reading a journal file back at start, and putting its records into a room's log that lacks them.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use super::Entry;
use super::files::sync_dir;
use crate::proto::message::Message;
use crate::serve::store::{LOG_FILE, write_record};

/// Adds the records of the journal file at `path` to `by_room`, up to its first incomplete or
/// damaged line (a crash in the middle of a write: nothing from there on was acknowledged).
pub(super) fn read_journal(
    path: &Path,
    by_room: &mut BTreeMap<String, Vec<Message>>,
) -> io::Result<()> {
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
/// the records of the journal after its last appended and flushed. Returns how many it
/// appended: none when the log held them all (a relay killed leaves its writes to the
/// system; a machine that crashed may not have written them).
///
/// # Errors
/// When the log cannot be read, cut or written.
pub fn recover(dir: &Path, records: &[Message]) -> io::Result<usize> {
    if records.is_empty() {
        return Ok(0);
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
    let (mut buf, mut appended) = (Vec::new(), 0);
    for m in records.iter().filter(|m| last.is_none_or(|l| m.seq > l)) {
        write_record(&mut buf, m)?;
        appended += 1;
    }
    file.write_all(&buf)?;
    file.sync_data()?;
    sync_dir(dir)?;
    Ok(appended)
}
