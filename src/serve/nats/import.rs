//! `urc serve --store nats://… --import DIR`: a file-store relay's rooms put into the cluster's streams before the relay serves, every message at its own seq with its id and time, so that nothing is lost and clients' seqs still name the same messages; run again, it puts nothing twice.

use std::path::Path;

use super::NatsLog;
use super::worker::Command;
use crate::proto::message::Message;
use crate::serve::layout;
use crate::serve::lock::DataLock;
use crate::serve::logs::Logs;
use crate::serve::store::{Store, mark};

/// Messages handed to the NATS client at once.
const CHUNK: usize = 2_000;

impl NatsLog {
    /// Puts the rooms of the file-store data directory `from` into the streams; for each
    /// room, its key, the messages put and the messages its log holds.
    ///
    /// # Errors
    /// A one-line explanation when `from` is in use by a relay or cannot be read, or a stream
    /// holds other messages than the log.
    pub fn import(&self, from: &Path) -> Result<Vec<(String, u64, u64)>, String> {
        let _lock = DataLock::acquire(from).map_err(|e| e.to_string())?;
        // Opened once as a relay would: what a crash left in the journal is put back first.
        drop(Logs::open(from, 1).map_err(|e| e.to_string())?);
        let marks = mark::read_all(from)
            .map_err(|e| format!("cannot read {}: {e}", from.join(mark::MARKS_FILE).display()))?;
        let mut done = Vec::new();
        for room in layout::rooms_in(from)? {
            let dir = layout::room_dir(from, &room);
            let mark = marks.get(&room).copied().unwrap_or(0);
            let opened = Store::open(&dir, 1, mark).map_err(|e| e.to_string())?;
            let Some(last) = opened.tail.last().map(|m| m.seq) else {
                continue;
            };
            let store = opened.store;
            let (mut next, mut put) = (store.first_seq(), 0);
            while next <= last {
                let mut chunk: Vec<Message> = Vec::new();
                while next <= last && chunk.len() < CHUNK {
                    let read = (store.read(next, last))
                        .map_err(|e| format!("cannot read {}: {e}", store.path().display()))?;
                    let Some(end) = read.last().map(|m| m.seq) else {
                        return Err(format!("{} ends before seq {next}", store.path().display()));
                    };
                    next = end + 1;
                    chunk.extend(read);
                }
                let messages = chunk;
                put += self.ask(|reply| Command::Import {
                    room: room.clone(),
                    messages,
                    reply,
                })?;
            }
            done.push((room, put, last + 1 - store.first_seq()));
        }
        Ok(done)
    }

    /// Puts the names' owners of the file-store relay in `from` (its `names.jsonl`) into the
    /// cluster's bucket, those it lacks: how many were put, how many it held for the same
    /// key, and the names it held for another key (which keep that owner, as the cluster
    /// decided first).
    ///
    /// # Errors
    /// A one-line explanation when the file cannot be read or NATS fails.
    pub fn import_names(&self, from: &Path) -> Result<super::worker::NamesImported, String> {
        let owners = crate::serve::owners::load(from)?;
        let bindings = owners.bindings();
        self.ask(|reply| Command::ImportNames { bindings, reply })
    }
}
