//! The last seq the relay knows it stored, kept beside the log in `<data>/stored-seq`: a log
//! that ends before it was deleted, truncated or replaced, and the relay refuses to go on from
//! it rather than give numbers that clients were already given to other messages.
//!
//! It is written at start, about once a second while messages are stored, and when the relay
//! stops, each time whole or not at all (written beside, flushed, renamed over): so it is at
//! most a second behind the log, never ahead of it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// The file's name inside the data directory.
pub const MARK_FILE: &str = "stored-seq";

/// The seq the mark in `dir` says, if there is one.
///
/// # Errors
/// When the file is there but cannot be read, or holds no number.
pub fn read(dir: &Path) -> io::Result<Option<u64>> {
    let path = dir.join(MARK_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} holds no seq ({e}): delete it to trust the log as it is",
                    path.display()
                ),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes `seq` the mark in `dir`, durably.
///
/// # Errors
/// When the file cannot be written, flushed or renamed into place.
pub fn write(dir: &Path, seq: u64) -> io::Result<()> {
    let fresh = dir.join(format!("{MARK_FILE}.new"));
    let mut file = File::create(&fresh)?;
    writeln!(file, "{seq}")?;
    file.sync_data()?;
    fs::rename(&fresh, dir.join(MARK_FILE))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_read_back_as_written_and_nothing_before_the_first() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), 104).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(104));
        write(dir.path(), 105).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(105));
        assert!(!dir.path().join(format!("{MARK_FILE}.new")).exists());
        fs::write(dir.path().join(MARK_FILE), "junk").unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("holds no seq"), "{err}");
    }
}
