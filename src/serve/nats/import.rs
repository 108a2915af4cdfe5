//! `urc serve --store nats://… --import DIR`: a file-store relay's rooms put into the cluster's streams before the relay serves, every message at its own seq with its id and time, so that nothing is lost and clients' seqs still name the same messages; run again, it puts nothing twice.

use std::path::Path;

use super::NatsLog;
use async_nats::jetstream;

use super::names::{stream_of, subject_of};
use super::record;
use super::worker::{Command, Worker};
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

impl Worker {
    /// Puts `messages` (of a file log, in order) into the stream of `room` at their own seqs:
    /// those after the stream's last, once the stream's last is checked to be the log's (so
    /// that an import run again puts nothing twice, and one into a stream of other messages
    /// is refused). How many were put.
    pub(super) async fn import(&self, room: &str, messages: Vec<Message>) -> Result<u64, String> {
        let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
            return Ok(0);
        };
        let (first, last_seq) = (first.seq, last.seq);
        let name = stream_of(room);
        self.make_stream(&name, room, first).await?;
        let mut s = (self.js.get_stream(&name).await).map_err(|e| e.to_string())?;
        let had = s
            .info()
            .await
            .map_err(|e| e.to_string())?
            .state
            .last_sequence;
        let other = |seq: u64| {
            format!(
                "the stream {name} holds other messages than the log of {room} (at seq {seq}): import into streams that are empty or hold this log's start"
            )
        };
        if had >= first {
            let at = had.min(last_seq);
            let theirs =
                (s.direct_get(at).await).map_err(|e| format!("cannot read {name} {at}: {e}"))?;
            let ours = &messages[(at - first) as usize];
            let same = record::decode(at, &theirs.payload)
                .is_ok_and(|m| m.id == ours.id && m.text == ours.text);
            if !same {
                return Err(other(at));
            }
        } else if had + 1 != first {
            return Err(other(had + 1));
        }
        let mut put = 0;
        for chunk in messages
            .iter()
            .filter(|m| m.seq > had)
            .collect::<Vec<_>>()
            .chunks(256)
        {
            let mut acks = Vec::with_capacity(chunk.len());
            for m in chunk {
                let mut publish = jetstream::message::PublishMessage::build()
                    .payload(record::encode(m).into())
                    // Stored at its own seq only: JetStream refuses it if anything else
                    // was written to the stream meanwhile.
                    .expected_last_sequence(m.seq - 1);
                if !m.id.is_nil() {
                    // A placeholder (the nil id) is no client's message: never a duplicate.
                    publish = publish.message_id(m.id.to_string());
                }
                let ack = (self.js.send_publish(subject_of(room), publish).await)
                    .map_err(|e| format!("cannot publish to {name}: {e}"))?;
                acks.push((m.seq, ack));
            }
            for (seq, ack) in acks {
                let ack = ack
                    .await
                    .map_err(|e| format!("{name} did not store {seq}: {e}"))?;
                if ack.sequence != seq {
                    return Err(format!(
                        "{name} stored the log's {seq} at {} (another relay wrote to it meanwhile?): import before the relays serve",
                        ack.sequence
                    ));
                }
                put += 1;
            }
        }
        Ok(put)
    }
}
