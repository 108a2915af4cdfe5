//! One relay a data directory: an exclusive lock on `<data>/urc.lock`, held while the relay
//! runs, with the holder's process id written in for the error that refuses a second one.
//!
//! Two relays appending to one log would each number messages from their own count (the log
//! then read seq 1, 2, 1 and no restart accepted it). The lock is `flock(2)`: the kernel lets
//! go of it when the process ends however it ends, so a crash never leaves a stale lock.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "urc.lock";

/// The data directory, held by this process until the value is dropped.
#[derive(Debug)]
pub struct DataLock {
    /// The open lock file: closing it releases the lock.
    _file: File,
    /// The data directory.
    dir: PathBuf,
}

/// Why the data directory could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock.
    Held {
        /// The data directory.
        dir: PathBuf,
        /// The process id the holder wrote in the lock file, if it could be read.
        pid: Option<u32>,
    },
    /// The data directory, or one of the directories above it, is something else (a file).
    NotADirectory {
        /// The data directory.
        dir: PathBuf,
        /// What is not a directory: the data directory or one above it.
        path: PathBuf,
    },
    /// The directory or the lock file could not be made or opened.
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Held { dir, pid } => {
                let who = pid.map_or_else(
                    || "another relay".to_owned(),
                    |p| format!("another relay (pid {p})"),
                );
                write!(
                    f,
                    "{who} is using the data directory {}: stop it first, or give this relay another --data",
                    dir.display()
                )
            }
            LockError::NotADirectory { dir, path } if dir == path => write!(
                f,
                "--data {} is a file, not a directory: give the directory for the message log",
                dir.display()
            ),
            LockError::NotADirectory { dir, path } => write!(
                f,
                "--data {}: {} is a file, not a directory: give the directory for the message log",
                dir.display(),
                path.display()
            ),
            LockError::Io { path, error } => write!(
                f,
                "cannot use {} for the data directory: {}: give --data a directory this user may write",
                path.display(),
                plain(error)
            ),
        }
    }
}

impl std::error::Error for LockError {}

/// What the system said, in lowercase and without its error number when it is a common case.
fn plain(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::PermissionDenied
        | io::ErrorKind::ReadOnlyFilesystem
        | io::ErrorKind::StorageFull
        | io::ErrorKind::NotFound => error.kind().to_string(),
        _ => error.to_string(),
    }
}

impl DataLock {
    /// Makes `dir` if it is missing and locks it for this process.
    ///
    /// # Errors
    /// When another process holds the lock, or the directory or lock file cannot be made.
    pub fn acquire(dir: &Path) -> Result<DataLock, LockError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |error| LockError::Io { path, error }
        };
        // The nearest existing path, itself or above: a file there is a mistake to name.
        if let Some(existing) = dir.ancestors().find(|p| p.exists())
            && !existing.is_dir()
        {
            return Err(LockError::NotADirectory {
                dir: dir.to_owned(),
                path: existing.to_owned(),
            });
        }
        fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let pid = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    pid,
                });
            }
            Err(TryLockError::Error(error)) => return Err(LockError::Io { path, error }),
        }
        // Only the holder writes: the pid a refused relay reads is the holder's.
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .map_err(io(&path))?;
        Ok(DataLock {
            _file: file,
            dir: dir.to_owned(),
        })
    }

    /// The data directory this lock holds.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_where_the_directory_should_be_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "x").unwrap();
        let err = DataLock::acquire(&file).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "--data {} is a file, not a directory: give the directory for the message log",
                file.display()
            )
        );
        let below = file.join("urc");
        let err = DataLock::acquire(&below).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "--data {}: {} is a file, not a directory: give the directory for the message log",
                below.display(),
                file.display()
            )
        );
        assert!(!file.join("urc").exists());
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = DataLock::acquire(&data).unwrap();
        assert_eq!(first.dir(), data);
        // flock locks belong to an open file, so a second open in the same process is refused
        // just as another process is.
        let err = DataLock::acquire(&data).unwrap_err();
        let pid = std::process::id();
        assert!(
            matches!(err, LockError::Held { pid: Some(p), .. } if p == pid),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "another relay (pid {pid}) is using the data directory {}: stop it first, or give this relay another --data",
                data.display()
            )
        );
        drop(first);
        let again = DataLock::acquire(&data).unwrap();
        let text = fs::read_to_string(data.join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("{pid}\n"));
        drop(again);
    }
}
