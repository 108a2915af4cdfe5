//! The journal's files: numbered in its directory, made (ahead, zeros written and flushed, or bare), and their directory flushed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The journal files in `dir`, by number.
pub(super) fn numbered(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
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
pub(super) fn create(dir: &Path, number: u64) -> io::Result<(File, PathBuf)> {
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
pub(super) fn prepare(dir: &Path, number: u64, bytes: u64) -> io::Result<()> {
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
pub(super) fn open_prepared(dir: &Path, number: u64) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .open(dir.join(format!("{number}.jsonl")))
}

/// Flushes the directory `dir`: the names made or removed in it are on disk.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
