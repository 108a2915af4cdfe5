//! Publishing on the NATS side: a turn's messages sent to their rooms' streams (each made on first use) in the commands' order, and their acknowledgements awaited, at most [`COMMIT_WAIT`], into what each became.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use uuid::Uuid;

use super::names::{ROOM_METADATA, stream_of, subject_of};
use super::record::{self, MAX_RECORD};
use super::worker::{DEDUP_WINDOW, Published, Worker};
use crate::proto::message::Millis;

/// How long a turn waits for JetStream to acknowledge its messages: those unanswered by
/// then are refused to their senders (who resend them), so that a stream electing its
/// leader holds the relay's other rooms up for no longer.
pub const COMMIT_WAIT: Duration = Duration::from_millis(500);

/// A message published: its stream's name and its acknowledgement to come, or why it was not
/// published.
type Sent = Result<(String, jetstream::context::PublishAckFuture), String>;

impl Worker {
    /// Publishes a turn's messages: what each one's acknowledgement will be, or why it was
    /// not sent. A room NATS failed publishes none of its later messages of the turn (they
    /// would be stored before the one that failed when it is resent).
    pub(super) async fn send_all(&self, items: Vec<(String, Uuid, Vec<u8>)>) -> Vec<Sent> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            let why = "the relay is not connected to NATS".to_owned();
            return items.iter().map(|_| Err(why.clone())).collect();
        }
        let mut failed: HashMap<String, String> = HashMap::new();
        let mut acks = Vec::with_capacity(items.len());
        for (room, id, payload) in items {
            if let Some(why) = failed.get(&room) {
                acks.push(Err(why.clone()));
                continue;
            }
            match self.send(&room, id, payload).await {
                Ok(ack) => acks.push(Ok((stream_of(&room), ack))),
                Err(why) => {
                    failed.insert(room, why.clone());
                    acks.push(Err(why));
                }
            }
        }
        acks
    }

    /// Awaits the acknowledgements of [`Worker::send_all`] until [`COMMIT_WAIT`] is over:
    /// what each message became, in order, or why it was not stored. A message unanswered
    /// in time is not stored as far as the relay knows: its client resends it, and if NATS
    /// stores it after all, the resend is recognised by its id.
    pub(super) async fn acknowledged(&self, acks: Vec<Sent>) -> Vec<Result<Published, String>> {
        let deadline = tokio::time::Instant::now() + COMMIT_WAIT;
        let mut stored = Vec::with_capacity(acks.len());
        let mut late = Vec::new();
        for ack in acks {
            let (name, ack) = match ack {
                Ok(ack) => ack,
                Err(why) => {
                    stored.push(Err(why));
                    continue;
                }
            };
            if !late.is_empty() {
                late.push(Box::pin(ack.into_future()));
                stored.push(Err(too_late()));
                continue;
            }
            let mut ack = Box::pin(ack.into_future());
            match tokio::time::timeout_at(deadline, &mut ack).await {
                Ok(Ok(ack)) => {
                    let time = if ack.duplicate {
                        // Stored before (through another relay, say): the first copy's time.
                        self.time_of(&name, ack.sequence).await
                    } else {
                        Ok(None)
                    };
                    stored.push(time.map(|time| (ack.sequence, time)));
                }
                Ok(Err(e)) => stored.push(Err(format!("{name} did not store: {e}"))),
                Err(_) => {
                    late.push(ack);
                    stored.push(Err(too_late()));
                }
            }
        }
        if !late.is_empty() {
            // Left to finish by themselves: what NATS stores of them the followers bring.
            tokio::spawn(async move {
                for ack in late {
                    let _ = ack.await;
                }
            });
        }
        stored
    }

    /// Publishes one message to its room's stream (made first if need be); its
    /// acknowledgement to come.
    pub(super) async fn send(
        &self,
        room: &str,
        id: Uuid,
        payload: Vec<u8>,
    ) -> Result<jetstream::context::PublishAckFuture, String> {
        let name = stream_of(room);
        if !self.followed.lock().expect("not poisoned").contains(&name) {
            self.make_stream(&name, room, 1).await?;
            self.follow(name.clone(), room.to_owned(), None);
        }
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(id.to_string());
        (self.js.send_publish(subject_of(room), publish).await)
            .map_err(|e| format!("cannot publish to {name}: {e}"))
    }

    /// The time of the message `seq` of `name`.
    pub(super) async fn time_of(&self, name: &str, seq: u64) -> Result<Option<Millis>, String> {
        let s = (self.js.get_stream(name).await).map_err(|e| e.to_string())?;
        let m = (s.direct_get(seq).await).map_err(|e| format!("cannot read {name} {seq}: {e}"))?;
        Ok(record::decode(seq, &m.payload).ok().map(|m| m.time))
    }

    /// Makes the stream of `room` (its first seq `first`), unless it is there.
    pub(super) async fn make_stream(
        &self,
        name: &str,
        room: &str,
        first: u64,
    ) -> Result<(), String> {
        let config = stream::Config {
            first_sequence: (first > 1).then_some(first),
            name: name.to_owned(),
            subjects: vec![subject_of(room)],
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: DEDUP_WINDOW,
            max_message_size: MAX_RECORD,
            allow_direct: true,
            description: Some(format!("urc: the messages of {room}")),
            metadata: [(ROOM_METADATA.to_owned(), room.to_owned())].into(),
            ..Default::default()
        };
        (self.js.get_or_create_stream(config).await)
            .map(|_| ())
            .map_err(|e| format!("cannot make the stream {name}: {e}"))
    }
}

/// Why a message unanswered within [`COMMIT_WAIT`] was not stored.
fn too_late() -> String {
    format!(
        "NATS did not acknowledge it within {} ms",
        COMMIT_WAIT.as_millis()
    )
}
