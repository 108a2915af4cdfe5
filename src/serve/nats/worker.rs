//! The NATS side of the store, on a thread of its own with a tokio runtime (async-nats needs one): the relay's commands (publish a turn's messages, read a range of a room) answered over async-channel, and every room's stream followed in its order into one bounded channel.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use uuid::Uuid;

use super::follow::FOLLOW_RETRY;

use crate::proto::message::{Message, Millis};
use crate::proto::secure::keys::PublicKey;
use crate::relay::owners::Binding;
use crate::serve::logs::Restored;

/// How long the relay waits for NATS to answer a request or acknowledge a publish.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a retransmission to any relay of the cluster is recognised by the store itself
/// (each stream's `duplicate_window`): longer than a client goes on resending to one relay
/// before it moves to another (each relay also remembers the ids of the messages it saw).
pub const DEDUP_WINDOW: Duration = Duration::from_secs(300);
/// How long the relay tries to read the store at start (a cluster starting elects each
/// stream's leader after it answers).
const OPEN_TRIES: Duration = Duration::from_secs(45);

/// What the store had at start: every room's tail, every name's owner.
#[derive(Debug)]
pub(super) struct Opened {
    pub(super) restored: Vec<Restored>,
    pub(super) owners: Vec<(String, PublicKey)>,
}

/// What a message became: its seq in its stream, and, when the stream had it already, the
/// time of that first copy.
pub type Published = (u64, Option<Millis>);

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
    pub(super) client: async_nats::Client,
    pub(super) js: jetstream::Context,
    pub(super) replicas: usize,
    /// The streams followed (each by one task).
    pub(super) followed: Arc<Mutex<HashSet<String>>>,
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
}
