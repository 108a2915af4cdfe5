//! The file under the log: a real file in use, and in tests one that fails like a full,
//! read-only or broken disk.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};

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
