//! The last seq the relay knows it stored in each room's log, every room in one file,
//! `<data>/stored-seqs`: a log that ends before its room's seq was deleted, truncated or
//! replaced, and the relay refuses to go on from it rather than give numbers that clients were
//! already given to other messages.
//!
//! One line a room: its key and its seq (`ops 7`, `@alice+bob 3`). The file is written at
//! start (when it does not say what the logs do), at each checkpoint while messages are stored
//! (about once a second, up to every 10 s with many logs to flush; once the logs it covers are
//! flushed) and when the relay stops, each time whole or not at all (written beside, flushed,
//! renamed over): so each seq is at most a checkpoint behind its log, never ahead of it. One
//! file a checkpoint however many rooms are written: a file a room (the earlier
//! `stored-seq` in each room's directory) cost 1,000 new files and 3,000 flushes a second at
//! 1,000 busy rooms. An earlier relay's `stored-seq` is read at start, and removed once this
//! file holds its seq.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// The file's name inside the data directory.
pub const MARKS_FILE: &str = "stored-seqs";
/// The name of a room's own mark, in its directory, as an earlier relay wrote it.
pub const LEGACY_FILE: &str = "stored-seq";

/// Every room's mark, by the room's key.
pub type Marks = BTreeMap<String, u64>;

fn invalid(path: &Path, what: String, fix: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} {what}: {fix}", path.display()),
    )
}

/// The marks of the data directory `data` (none before the first).
///
/// # Errors
/// When the file is there but cannot be read, or a line is not a key and a seq.
pub fn read_all(data: &Path) -> io::Result<Marks> {
    let path = data.join(MARKS_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Marks::new()),
        Err(e) => return Err(e),
    };
    let mut marks = Marks::new();
    for (n, line) in text.lines().enumerate() {
        let mut words = line.split(' ');
        match (
            words.next(),
            words.next().map(str::parse::<u64>),
            words.next(),
        ) {
            (Some(key), Some(Ok(seq)), None) if !key.is_empty() => {
                marks.insert(key.to_owned(), seq);
            }
            _ => {
                return Err(invalid(
                    &path,
                    format!("line {} is not a room and a seq", n + 1),
                    "correct or delete that line (or the whole file) to trust the logs as they are",
                ));
            }
        }
    }
    Ok(marks)
}

/// Makes `marks` the marks of `data`, durably.
///
/// # Errors
/// When the file cannot be written, flushed or renamed into place.
pub fn write_all(data: &Path, marks: &Marks) -> io::Result<()> {
    let mut text = String::with_capacity(marks.len() * 24);
    for (key, seq) in marks {
        text.push_str(key);
        text.push(' ');
        text.push_str(&seq.to_string());
        text.push('\n');
    }
    let fresh = data.join(format!("{MARKS_FILE}.new"));
    let mut file = File::create(&fresh)?;
    file.write_all(text.as_bytes())?;
    file.sync_data()?;
    fs::rename(&fresh, data.join(MARKS_FILE))?;
    File::open(data)?.sync_all()
}

/// The seq an earlier relay's `stored-seq` in the room directory `dir` says, if it has one.
///
/// # Errors
/// When the file is there but cannot be read, or holds no number.
pub fn read_legacy(dir: &Path) -> io::Result<Option<u64>> {
    let path = dir.join(LEGACY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|e| {
            invalid(
                &path,
                format!("holds no seq ({e})"),
                "delete it to trust the room's log as it is",
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes an earlier relay's `stored-seq` from the room directory `dir`, once
/// [`MARKS_FILE`] holds its seq.
///
/// # Errors
/// When it is there and cannot be removed.
pub fn remove_legacy(dir: &Path) -> io::Result<()> {
    match fs::remove_file(dir.join(LEGACY_FILE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The mark of the room `key`, whose directory is `dir`: the higher of `marks`' and an earlier
/// relay's `stored-seq`.
///
/// # Errors
/// When the earlier relay's file cannot be read.
pub fn of_room(marks: &Marks, key: &str, dir: &Path) -> io::Result<u64> {
    let legacy = read_legacy(dir)?.unwrap_or(0);
    Ok(marks.get(key).copied().unwrap_or(0).max(legacy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_read_back_as_written_and_nothing_before_the_first() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_all(dir.path()).unwrap().is_empty());
        let mut marks = Marks::new();
        marks.insert("ops".into(), 104);
        marks.insert("@alice+bob".into(), 3);
        write_all(dir.path(), &marks).unwrap();
        assert_eq!(read_all(dir.path()).unwrap(), marks);
        assert_eq!(
            fs::read_to_string(dir.path().join(MARKS_FILE)).unwrap(),
            "@alice+bob 3\nops 104\n"
        );
        marks.insert("ops".into(), 105);
        write_all(dir.path(), &marks).unwrap();
        assert_eq!(read_all(dir.path()).unwrap()["ops"], 105);
        assert!(!dir.path().join(format!("{MARKS_FILE}.new")).exists());
        fs::write(dir.path().join(MARKS_FILE), "ops 1\njunk\n").unwrap();
        let err = read_all(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("line 2 is not a room and a seq"),
            "{err}"
        );
    }

    #[test]
    fn an_earlier_relays_mark_counts_until_it_is_removed() {
        let data = tempfile::tempdir().unwrap();
        let room = data.path().join("rooms/ops");
        fs::create_dir_all(&room).unwrap();
        let mut marks = Marks::new();
        assert_eq!(of_room(&marks, "ops", &room).unwrap(), 0);
        fs::write(room.join(LEGACY_FILE), "7\n").unwrap();
        assert_eq!(of_room(&marks, "ops", &room).unwrap(), 7);
        marks.insert("ops".into(), 5);
        assert_eq!(of_room(&marks, "ops", &room).unwrap(), 7);
        remove_legacy(&room).unwrap();
        remove_legacy(&room).unwrap();
        assert_eq!(of_room(&marks, "ops", &room).unwrap(), 5);
        fs::write(room.join(LEGACY_FILE), "junk").unwrap();
        let err = of_room(&marks, "ops", &room).unwrap_err();
        assert!(err.to_string().contains("holds no seq"), "{err}");
    }
}
