//! The NATS side of the store, on a thread of its own with a tokio runtime (async-nats needs one): the relay's commands (publish a turn's messages, read a range of a room) answered over async-channel, and every room's stream followed in its order into one bounded channel.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use smol::stream::StreamExt as _;
use uuid::Uuid;

use super::names::{
    HASHED_DM_STREAM, ROOM_METADATA, hashed_room_of, room_of, stream_of, subject_of,
};
use super::record::{self, MAX_RECORD};
use crate::proto::message::{Message, Millis};
use crate::proto::secure::keys::PublicKey;
use crate::relay::owners::Binding;
use crate::serve::logs::{MIN_TAIL, Restored};
use crate::serve::repair::placeholder;

/// How long the relay waits for NATS to answer a request or acknowledge a publish.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a turn waits for JetStream to acknowledge its messages: those unanswered by
/// then are refused to their senders (who resend them), so that a stream electing its
/// leader holds the relay's other rooms up for no longer.
pub const COMMIT_WAIT: Duration = Duration::from_millis(500);
/// How long a retransmission to any relay of the cluster is recognised by the store itself
/// (each stream's `duplicate_window`): longer than a client goes on resending to one relay
/// before it moves to another (each relay also remembers the ids of the messages it saw).
pub const DEDUP_WINDOW: Duration = Duration::from_secs(300);
/// The text of the placeholder passed on for a record of a stream that is not a message.
pub const UNREADABLE: &str =
    "(a record of the room's NATS stream here was not a message: the relay left it out)";
/// How often the streams are listed, for rooms made by other relays whose advisory was
/// missed: the longest such a room's first messages wait here.
const RELIST_EVERY: Duration = Duration::from_secs(2);
/// The text of the placeholder passed on for a seq deleted from a stream.
pub const DELETED: &str = "(a message of the room's NATS stream here was deleted)";
/// How long the relay tries to read the store at start (a cluster starting elects each
/// stream's leader after it answers).
const OPEN_TRIES: Duration = Duration::from_secs(45);
/// How long a follower waits before following its stream again after NATS failed it.
const FOLLOW_RETRY: Duration = Duration::from_secs(1);

/// What the store had at start: every room's tail, every name's owner.
#[derive(Debug)]
pub(super) struct Opened {
    pub(super) restored: Vec<Restored>,
    pub(super) owners: Vec<(String, PublicKey)>,
}

/// What a message became: its seq in its stream, and, when the stream had it already, the
/// time of that first copy.
pub type Published = (u64, Option<Millis>);

/// A message published: its stream's name and its acknowledgement to come, or why it was not
/// published.
type Sent = Result<(String, jetstream::context::PublishAckFuture), String>;

/// What an import of names' owners did: how many were written, how many the bucket held for
/// the same key, and the names it held for another key.
pub type NamesImported = (u64, u64, Vec<String>);

/// What the relay's thread asks of NATS.
#[derive(Debug)]
pub(super) enum Command {
    /// Publish the batch `batch` of a turn's messages (each with its room's key, its id and
    /// its record), and answer, as [`Followed::Published`], with what each became, in order.
    Publish {
        batch: u64,
        items: Vec<(String, Uuid, Vec<u8>)>,
    },
    /// Put a file log's messages (in its order, seqs one after the other) into the room's
    /// stream, those it lacks, each at its own seq; answer with how many were put.
    Import {
        room: String,
        messages: Vec<Message>,
        reply: async_channel::Sender<Result<u64, String>>,
    },
    /// Write names bound on this relay to the cluster's bucket (no answer: a name another
    /// relay bound first comes back as a [`Followed::Owner`]).
    Bind(Vec<Binding>),
    /// Write a file-store relay's names' owners to the cluster's bucket, each only if its
    /// name has no entry yet; answer with how many were written, how many the bucket held
    /// for the same key, and the names it held for another key.
    ImportNames {
        bindings: Vec<Binding>,
        reply: async_channel::Sender<Result<NamesImported, String>>,
    },
    /// Write this relay's members' presence changes (each with its room's key) to the
    /// presence bucket (no answer).
    Presence(Vec<(String, crate::proto::wire::Change)>),
    /// Read the messages `first..=last` of a room.
    Read {
        room: String,
        first: u64,
        last: u64,
        reply: async_channel::Sender<Result<Vec<Message>, String>>,
    },
}

/// How the store is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// The NATS servers, as `nats://HOST:PORT` (any of them will do).
    pub urls: Vec<String>,
    /// Copies of each stream: 1 or 3.
    pub replicas: usize,
}

/// What the followers read for the relay.
#[derive(Debug)]
pub enum Followed {
    /// A message of the room (its key), in the room's order.
    Message(String, Message),
    /// A name's owner, as the cluster's bucket has it.
    Owner(String, PublicKey),
    /// A room (its key) new here whose stream begins at this seq, not 1 (what came before
    /// was archived, or purged).
    Starts(String, u64),
    /// A presence change in the room (its key) through another relay.
    Presence(String, crate::proto::wire::Change),
    /// What each message of a batch of [`Command::Publish`] became, in order, or why it was
    /// not stored.
    Published(u64, Vec<Result<Published, String>>),
}

/// The worker's state, shared by its tasks.
#[derive(Clone)]
pub(super) struct Worker {
    client: async_nats::Client,
    pub(super) js: jetstream::Context,
    pub(super) replicas: usize,
    /// The streams followed (each by one task).
    followed: Arc<Mutex<HashSet<String>>>,
    /// Where the followers put what they read: each room's messages in its order, names'
    /// owners.
    pub(super) out: async_channel::Sender<Followed>,
}

/// Connects, reads every room's tail (at most `keep` messages in all, but [`MIN_TAIL`] a
/// room), starts following each room after its tail, then serves `commands` until the relay
/// drops its end.
pub(super) fn run(
    options: Options,
    keep: usize,
    id: Uuid,
    commands: async_channel::Receiver<Command>,
    out: async_channel::Sender<Followed>,
    started: std::sync::mpsc::Sender<Result<Opened, String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = started.send(Err(format!("cannot start the NATS client's runtime: {e}")));
            return;
        }
    };
    runtime.block_on(async move {
        let worker = match Worker::connect(&options, out).await {
            Ok(w) => w,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        // A cluster just started answers before its streams have their leaders: their reads
        // time out for a few seconds. Tried again until OPEN_TRIES is over.
        let open = || async {
            let owners = worker.watch_owners().await?;
            let presence = worker.open_presence(id).await?;
            Ok::<_, String>((owners, presence, worker.open(keep).await?))
        };
        let deadline = tokio::time::Instant::now() + OPEN_TRIES;
        let mut opened = open().await;
        while let Err(e) = &opened
            && tokio::time::Instant::now() < deadline
        {
            tracing::warn!(error = %e, "cannot read the NATS store yet; trying again");
            tokio::time::sleep(FOLLOW_RETRY).await;
            opened = open().await;
        }
        let (names, presence) = match opened {
            Ok(((names, owners), presence, restored)) => {
                let _ = started.send(Ok(Opened { restored, owners }));
                (names, presence)
            }
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        while let Ok(command) = commands.recv().await {
            match command {
                Command::Publish { batch, items } => {
                    // Sent here, in the commands' order (so each stream has them in the
                    // turns' order); their acknowledgements awaited beside the next commands.
                    let acks = worker.send_all(items).await;
                    let worker = worker.clone();
                    tokio::spawn(async move {
                        let published = worker.acknowledged(acks).await;
                        let _ = worker.out.send(Followed::Published(batch, published)).await;
                    });
                }
                Command::Bind(bindings) => {
                    // A task of its own: a binding waits for NATS (and retries), never the
                    // commands behind it.
                    let (worker, names) = (worker.clone(), names.clone());
                    tokio::spawn(async move { worker.bind(&names, bindings).await });
                }
                Command::Presence(changes) => presence.write(changes),
                Command::ImportNames { bindings, reply } => {
                    let _ = reply
                        .send(worker.import_names(&names, bindings).await)
                        .await;
                }
                Command::Import {
                    room,
                    messages,
                    reply,
                } => {
                    let _ = reply.send(worker.import(&room, messages).await).await;
                }
                Command::Read {
                    room,
                    first,
                    last,
                    reply,
                } => {
                    let _ = reply.send(worker.read(&room, first, last).await).await;
                }
            }
        }
    });
}

impl Worker {
    async fn connect(
        options: &Options,
        out: async_channel::Sender<Followed>,
    ) -> Result<Worker, String> {
        let urls = options.urls.join(",");
        let servers = (options.urls.iter())
            .map(|u| u.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("--store {urls}: {e}"))?;
        let client = async_nats::ConnectOptions::new()
            .name("urc relay")
            .connection_timeout(REQUEST_TIMEOUT)
            .max_reconnects(None)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Disconnected => {
                        tracing::error!("lost the connection to NATS: acknowledging nothing until it is back")
                    }
                    async_nats::Event::Connected => tracing::info!("connected to NATS"),
                    other => tracing::debug!(event = %other, "NATS"),
                }
            })
            .connect(servers)
            .await
            .map_err(|e| {
                format!("cannot reach the NATS store at {urls}: {e} (is nats-server running with JetStream?)")
            })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .build(client.clone());
        Ok(Worker {
            client,
            js,
            replicas: options.replicas,
            followed: Arc::default(),
            out,
        })
    }

    /// Every room's tail, each room then followed after it; new rooms' streams followed as
    /// they are made (by any relay).
    async fn open(&self, keep: usize) -> Result<Vec<Restored>, String> {
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
    fn follow(&self, name: String, room: String, from: Option<u64>) {
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
    async fn follow_from(&self, name: &str, room: &str, from: Option<u64>) {
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

    /// The key-value bucket `name`, made (with `description`) if need be: one value a key,
    /// at most 1024 bytes, file storage, the worker's replicas, each entry kept `max_age`
    /// (zero: for ever).
    pub(super) async fn bucket(
        &self,
        name: &str,
        description: &str,
        max_age: Duration,
    ) -> Result<kv::Store, String> {
        if let Ok(store) = self.js.get_key_value(name).await {
            return Ok(store);
        }
        (self.js)
            .create_key_value(kv::Config {
                bucket: name.to_owned(),
                description: description.to_owned(),
                history: 1,
                max_age,
                max_value_size: 1024,
                storage: stream::StorageType::File,
                num_replicas: self.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())
    }

    /// The key of the room whose stream is `name`: from the name, or, for a private
    /// conversation of long names, from the stream's metadata. `None` for another stream.
    async fn room_of_stream(&self, name: &str) -> Option<String> {
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
    async fn first_of(&self, name: &str) -> Result<u64, String> {
        let mut s = (self.js.get_stream(name).await).map_err(|e| e.to_string())?;
        let state = &s.info().await.map_err(|e| e.to_string())?.state;
        Ok(state.first_sequence.max(1))
    }

    /// An ordered consumer of `name` from `from` on.
    async fn ordered(&self, name: &str, from: u64) -> Result<consumer::pull::Ordered, String> {
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

    /// Publishes a turn's messages: what each one's acknowledgement will be, or why it was
    /// not sent. A room NATS failed publishes none of its later messages of the turn (they
    /// would be stored before the one that failed when it is resent).
    async fn send_all(&self, items: Vec<(String, Uuid, Vec<u8>)>) -> Vec<Sent> {
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
    async fn acknowledged(&self, acks: Vec<Sent>) -> Vec<Result<Published, String>> {
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
    async fn send(
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
    async fn time_of(&self, name: &str, seq: u64) -> Result<Option<Millis>, String> {
        let s = (self.js.get_stream(name).await).map_err(|e| e.to_string())?;
        let m = (s.direct_get(seq).await).map_err(|e| format!("cannot read {name} {seq}: {e}"))?;
        Ok(record::decode(seq, &m.payload).ok().map(|m| m.time))
    }

    /// Makes the stream of `room` (its first seq `first`), unless it is there.
    async fn make_stream(&self, name: &str, room: &str, first: u64) -> Result<(), String> {
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

    /// Puts `messages` (of a file log, in order) into the stream of `room` at their own seqs:
    /// those after the stream's last, once the stream's last is checked to be the log's (so
    /// that an import run again puts nothing twice, and one into a stream of other messages
    /// is refused). How many were put.
    async fn import(&self, room: &str, messages: Vec<Message>) -> Result<u64, String> {
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

    /// The messages `first..=last` of `room`.
    async fn read(&self, room: &str, first: u64, last: u64) -> Result<Vec<Message>, String> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err("the relay is not connected to NATS".to_owned());
        }
        self.read_stream(&stream_of(room), first, last).await
    }

    /// The messages `first..=last` of the stream `name`, in order (those deleted from it
    /// left out).
    async fn read_stream(&self, name: &str, first: u64, last: u64) -> Result<Vec<Message>, String> {
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

/// Why a message unanswered within [`COMMIT_WAIT`] was not stored.
fn too_late() -> String {
    format!(
        "NATS did not acknowledge it within {} ms",
        COMMIT_WAIT.as_millis()
    )
}
