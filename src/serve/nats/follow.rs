//! Following on the NATS side: every room's tail read at start, each room's stream then followed in order by a task of its own into the relay's channel (new streams learnt from JetStream's advisories and a listing every few seconds), ranges read for history, gaps and unreadable records passed on as placeholders.

use std::time::Duration;

use async_nats::jetstream::consumer;
use smol::stream::StreamExt as _;

use super::names::{HASHED_DM_STREAM, ROOM_METADATA, hashed_room_of, room_of, stream_of};
use super::record;
use super::worker::{Followed, REQUEST_TIMEOUT, Worker};
use crate::proto::message::{Message, Millis};
use crate::serve::logs::{MIN_TAIL, Restored};
use crate::serve::repair::placeholder;

/// The text of the placeholder passed on for a record of a stream that is not a message.
pub const UNREADABLE: &str =
    "(a record of the room's NATS stream here was not a message: the relay left it out)";

/// How often the streams are listed, for rooms made by other relays whose advisory was
/// missed: the longest such a room's first messages wait here.
const RELIST_EVERY: Duration = Duration::from_secs(2);

/// The text of the placeholder passed on for a seq deleted from a stream.
pub const DELETED: &str = "(a message of the room's NATS stream here was deleted)";

/// How long a follower waits before following its stream again after NATS failed it.
pub(super) const FOLLOW_RETRY: Duration = Duration::from_secs(1);

impl Worker {
    /// Every room's tail, each room then followed after it; new rooms' streams followed as
    /// they are made (by any relay).
    pub(super) async fn open(&self, keep: usize) -> Result<Vec<Restored>, String> {
        let failed =
            |e: &dyn std::fmt::Display| format!("cannot list the NATS store's streams: {e}");
        // Told of new streams before listing, so that none made meanwhile is missed.
        let mut created = (self.client)
            .subscribe("$JS.EVENT.ADVISORY.STREAM.CREATED.>")
            .await
            .map_err(|e| failed(&e))?;
        let mut names = Vec::new();
        let mut listed = self.js.stream_names();
        while let Some(name) = listed.next().await {
            let name = name.map_err(|e| failed(&e))?;
            if let Some(room) = self.room_of_stream(&name).await {
                names.push((name, room));
            }
        }
        let each = (keep / names.len().max(1)).max(MIN_TAIL).min(keep) as u64;
        let mut restored = Vec::new();
        for (name, room) in names {
            let mut s = (self.js.get_stream(&name).await).map_err(|e| failed(&e))?;
            let state = s.info().await.map_err(|e| failed(&e))?.state.clone();
            let first = state.first_sequence.max(1);
            let last = state.last_sequence;
            let tail = if last >= first {
                let from = last.saturating_sub(each - 1).max(first);
                self.read_stream(&name, from, last).await?
            } else {
                Vec::new()
            };
            // Followed after what was read (a message deleted at its end comes as a
            // placeholder), or from the first it holds.
            let from = tail.last().map_or(first.max(last + 1), |m| m.seq + 1);
            restored.push((room.clone(), tail, first));
            self.follow(name, room, Some(from));
        }
        let worker = self.clone();
        tokio::spawn(async move {
            while let Some(advisory) = created.next().await {
                let stream = (advisory.subject.as_str())
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if let Some(room) = worker.room_of_stream(&stream).await {
                    worker.follow(stream, room, None);
                }
            }
        });
        // And the streams listed again now and then: an advisory is not stored, and one
        // published before this relay's interest reached every node, or while its connection
        // was down, is missed.
        let worker = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELIST_EVERY).await;
                let mut listed = worker.js.stream_names();
                while let Some(Ok(name)) = listed.next().await {
                    let known = worker
                        .followed
                        .lock()
                        .expect("not poisoned")
                        .contains(&name);
                    if known {
                        continue;
                    }
                    if let Some(room) = worker.room_of_stream(&name).await {
                        worker.follow(name, room, None);
                    }
                }
            }
        });
        Ok(restored)
    }

    /// Follows the stream `name` (of `room`) from `from` on, unless it is followed already.
    pub(super) fn follow(&self, name: String, room: String, from: Option<u64>) {
        if !self
            .followed
            .lock()
            .expect("not poisoned")
            .insert(name.clone())
        {
            return;
        }
        let worker = self.clone();
        tokio::spawn(async move { worker.follow_from(&name, &room, from).await });
    }

    /// Reads `name` in order from `from` on into the relay's channel, again after a failure
    /// from where it stopped, until the relay is gone.
    pub(super) async fn follow_from(&self, name: &str, room: &str, from: Option<u64>) {
        let mut said = false;
        let mut from = match from {
            Some(from) => from,
            None => loop {
                // A stream new here: from its first message, which the room starts at.
                match self.first_of(name).await {
                    Ok(first) => {
                        let starts = Followed::Starts(room.to_owned(), first);
                        if first > 1 && self.out.send(starts).await.is_err() {
                            return;
                        }
                        break first;
                    }
                    Err(e) if !said => {
                        tracing::warn!(stream = name, error = %e, "cannot follow a room's stream; trying again");
                        said = true;
                    }
                    Err(_) => {}
                }
                if self.out.is_closed() {
                    return;
                }
                tokio::time::sleep(FOLLOW_RETRY).await;
            },
        };
        loop {
            let failure = match self.ordered(name, from).await {
                Ok(mut messages) => loop {
                    match messages.next().await {
                        Some(Ok(m)) => {
                            let seq = match m.info() {
                                Ok(info) => info.stream_sequence,
                                Err(e) => break e.to_string(),
                            };
                            // Seqs the stream no longer has (messages deleted from it): a
                            // placeholder each, so that the room's order goes on past them.
                            let mut messages: Vec<Message> =
                                (from..seq).map(|gone| deleted(name, gone)).collect();
                            messages.push(readable(name, seq, &m.payload));
                            for message in messages {
                                let m = Followed::Message(room.to_owned(), message);
                                if self.out.send(m).await.is_err() {
                                    return;
                                }
                            }
                            from = seq + 1;
                            said = false;
                        }
                        Some(Err(e)) => break e.to_string(),
                        None => break "the stream ended".to_owned(),
                    }
                },
                Err(e) => e,
            };
            if self.out.is_closed() {
                return;
            }
            if !said {
                tracing::warn!(stream = name, error = %failure, "cannot follow a room's stream; trying again");
                said = true;
            }
            tokio::time::sleep(FOLLOW_RETRY).await;
        }
    }

    /// The key of the room whose stream is `name`: from the name, or, for a private
    /// conversation of long names, from the stream's metadata. `None` for another stream.
    pub(super) async fn room_of_stream(&self, name: &str) -> Option<String> {
        if let Some(room) = room_of(name) {
            return Some(room);
        }
        if !name.starts_with(HASHED_DM_STREAM) {
            return None;
        }
        let mut s = self.js.get_stream(name).await.ok()?;
        let key = s
            .info()
            .await
            .ok()?
            .config
            .metadata
            .get(ROOM_METADATA)?
            .clone();
        hashed_room_of(name, &key)
    }

    /// The seq of the first message the stream `name` holds (or will: its last's next).
    pub(super) async fn first_of(&self, name: &str) -> Result<u64, String> {
        let mut s = (self.js.get_stream(name).await).map_err(|e| e.to_string())?;
        let state = &s.info().await.map_err(|e| e.to_string())?.state;
        Ok(state.first_sequence.max(1))
    }

    /// An ordered consumer of `name` from `from` on.
    pub(super) async fn ordered(
        &self,
        name: &str,
        from: u64,
    ) -> Result<consumer::pull::Ordered, String> {
        let s = (self.js.get_stream(name).await).map_err(|e| e.to_string())?;
        let config = consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        };
        let c = (s.create_consumer(config).await).map_err(|e| e.to_string())?;
        c.messages().await.map_err(|e| e.to_string())
    }

    /// The messages `first..=last` of `room`.
    pub(super) async fn read(
        &self,
        room: &str,
        first: u64,
        last: u64,
    ) -> Result<Vec<Message>, String> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err("the relay is not connected to NATS".to_owned());
        }
        self.read_stream(&stream_of(room), first, last).await
    }

    /// The messages `first..=last` of the stream `name`, in order (those deleted from it
    /// left out).
    pub(super) async fn read_stream(
        &self,
        name: &str,
        first: u64,
        last: u64,
    ) -> Result<Vec<Message>, String> {
        let mut messages = self.ordered(name, first).await?;
        let mut read = Vec::new();
        loop {
            let next = tokio::time::timeout(REQUEST_TIMEOUT, messages.next()).await;
            let m = match next {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => return Err(format!("cannot read {name}: {e}")),
                Ok(None) => return Err(format!("cannot read {name}: its consumer ended")),
                Err(_) => {
                    return Err(format!(
                        "cannot read {name}: NATS sent nothing for {} s",
                        REQUEST_TIMEOUT.as_secs()
                    ));
                }
            };
            let info = m.info().map_err(|e| format!("cannot read {name}: {e}"))?;
            let (seq, pending) = (info.stream_sequence, info.pending);
            if seq > last {
                break;
            }
            read.push(readable(name, seq, &m.payload));
            if seq == last || pending == 0 {
                break;
            }
        }
        Ok(read)
    }
}

/// The placeholder for the seq `seq`, which the stream `stream` no longer holds.
fn deleted(stream: &str, seq: u64) -> Message {
    tracing::warn!(
        stream,
        seq,
        "a message of the room's NATS stream was deleted: a placeholder takes its place"
    );
    Message {
        text: DELETED.to_owned(),
        ..placeholder(seq, Millis(0))
    }
}

/// The message stored as `bytes` at `seq` of `stream`, or a placeholder in its place if it
/// is not a record urc wrote (said in the relay's log, without its bytes).
fn readable(stream: &str, seq: u64, bytes: &[u8]) -> Message {
    record::decode(seq, bytes).unwrap_or_else(|e| {
        tracing::error!(stream, seq, error = %e, "a record in the NATS store is not a message: a placeholder takes its place");
        Message {
            text: UNREADABLE.to_owned(),
            ..placeholder(seq, Millis(0))
        }
    })
}
