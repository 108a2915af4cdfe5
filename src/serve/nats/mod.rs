//! The NATS JetStream store (`urc serve --store nats://…`): every room is a stream that several relays share, a message acknowledged once JetStream acknowledged it, its seq the stream's sequence, and what any relay stored followed by every relay in the room's order.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | [`NatsLog`]: what the relay's turn calls, on the relay's thread |
//! | `worker.rs` | the NATS client on a thread of its own (tokio): the commands answered, the buckets opened |
//! | `publish.rs` | a turn's messages published, their acknowledgements awaited |
//! | `follow.rs` | every room's stream followed in order, tails and ranges read, placeholders for gaps |
//! | `names.rs` | a room's stream and subject |
//! | `record.rs` | a message as a stream holds it |
//! | `presence.rs` | who is in each room through the other relays, as the bucket `URC_PRESENCE` says, and relays' leases: the rules |
//! | `presence_bucket.rs` | the presence bucket on the NATS side: this relay's members written, its lease renewed, every entry watched |
//! | `owners.rs` | who owns each name across the cluster: the bucket `URC_NAMES` |
//! | `identity.rs` | this relay's id in the cluster, kept in its data directory |
//! | `import.rs` | `--import DIR`: a file-store relay's rooms put into the streams, each message at its seq |
//!
//! docs/cluster.md says how to run it and what it guarantees.

mod follow;
mod identity;
mod import;
mod names;
mod owners;
mod presence;
mod presence_bucket;
mod publish;
mod record;
mod worker;

use std::time::{Duration, Instant};

pub use identity::relay_id;
pub use names::{STREAM_PREFIX, room_of, stream_of, subject_of};
pub use worker::{DEDUP_WINDOW, Followed, Options, Published, REQUEST_TIMEOUT};

use crate::proto::message::Message;
use crate::proto::name::name_key;
use crate::proto::secure::keys::PublicKey;
use crate::relay::{Relay, Stored};
use crate::serve::logs::Restored;
use smol::future::FutureExt as _;
use worker::Command;

/// Messages read from the streams that wait for the relay's thread: at most this many (each
/// under [`record::MAX_RECORD`] bytes, about 5 MB), so a relay that falls behind slows its
/// followers, not its memory.
const FOLLOWED_QUEUE: usize = 4096;
/// The longest the relay's thread waits for the NATS client to answer one command (a read
/// of history, say), and the longest a batch on its way waits for its answer before its
/// messages are refused (the NATS thread answers within COMMIT_WAIT unless it is stuck).
const ASK_WAIT: Duration = Duration::from_secs(10);
/// How long the relay waits for NATS to connect and hand it every room's tail at start.
const START_WAIT: Duration = Duration::from_secs(60);
/// Most turns' messages on their way to NATS at once (each turn's published while the
/// earlier ones' acknowledgements come).
const MAX_IN_FLIGHT: usize = 8;
/// Fewest messages a turn hands NATS while others are on their way (fewer wait for them).
const PIPELINE_FROM: usize = 8;
/// Why a message NATS did not store is refused, as its sender is told.
const REFUSED: &str = "its store, NATS, is failing";

/// How long, after NATS failed to store a message of a room, the next turns refuse that
/// room's at once rather than wait for it again (each refused message is resent by its
/// client).
const BACK_OFF: Duration = Duration::from_millis(500);

/// Where a published message is in its batch ([`Relay::appends`]' order), its room's key and
/// its time.
type Place = (usize, String, crate::proto::message::Millis);

/// The store's end on the relay's thread.
#[derive(Debug)]
pub struct NatsLog {
    commands: async_channel::Sender<Command>,
    /// What the followers read: each room's messages in its order, names' owners.
    followed: async_channel::Receiver<Followed>,
    /// The servers, to name them in the relay's log.
    urls: String,
    /// The batches on their way to NATS: each published message's place in its batch, room
    /// and time, and when the batch was handed off.
    batches: std::collections::HashMap<u64, (Vec<Place>, Instant)>,
    /// The rooms whose messages are refused at once, until when: NATS failed one of theirs
    /// a moment ago.
    refusing: std::collections::HashMap<String, Instant>,
    /// True while NATS fails (said once, and once when it works again).
    failing: bool,
    /// The names' owners the cluster's bucket held at start, until [`NatsLog::owners`].
    owners: Vec<(String, PublicKey)>,
}

impl NatsLog {
    /// Connects to NATS, reads each room's tail (at most `keep` messages in all, but 500 a
    /// room at least) and starts following every room.
    ///
    /// # Errors
    /// A one-line explanation when NATS cannot be reached or its streams read.
    pub fn open(
        options: Options,
        keep: usize,
        id: uuid::Uuid,
    ) -> Result<(NatsLog, Vec<Restored>), String> {
        let urls = options.urls.join(",");
        let (commands, commands_rx) = async_channel::unbounded();
        let (followed_tx, followed) = async_channel::bounded(FOLLOWED_QUEUE);
        let (started_tx, started) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("nats".into())
            .spawn(move || worker::run(options, keep, id, commands_rx, followed_tx, started_tx))
            .map_err(|e| format!("cannot start the NATS client's thread: {e}"))?;
        let opened = match started.recv_timeout(START_WAIT) {
            Ok(result) => result?,
            Err(_) => {
                return Err(format!(
                    "the NATS store at {urls} did not answer within {} s: is JetStream enabled and does the cluster have a leader?",
                    START_WAIT.as_secs()
                ));
            }
        };
        let log = NatsLog {
            commands,
            followed,
            urls,
            refusing: std::collections::HashMap::new(),
            batches: std::collections::HashMap::new(),
            failing: false,
            owners: opened.owners,
        };
        Ok((log, opened.restored))
    }

    /// Publishes what the relay accepted, without waiting: JetStream's acknowledgements come
    /// back through the followers ([`Followed::Published`], awaited at most
    /// [`publish::COMMIT_WAIT`]), and [`NatsLog::take_followed`] commits them with the seqs
    /// the streams gave ([`Relay::commit_batch`]), the messages NATS did not store refused
    /// (their clients resend; what was stored meanwhile is recognised by its id, by the
    /// stream and by the relay). At most [`MAX_IN_FLIGHT`] turns' messages are on their way:
    /// past that, the turn waits for the oldest answer. A room NATS failed has its messages
    /// refused at once for [`BACK_OFF`]; the other rooms go on.
    pub fn commit(&mut self, relay: &mut Relay) {
        self.expire(relay);
        if !relay.has_appends() || self.holds(relay) {
            return;
        }
        self.wait_for(relay, |relay| relay.in_flight() < MAX_IN_FLIGHT);
        if relay.in_flight() >= MAX_IN_FLIGHT {
            // The NATS thread answers none: these are refused, not piled up.
            let batch = relay.hand_off();
            let count = relay.batch_len(batch);
            return relay.commit_batch(batch, &vec![None; count], REFUSED);
        }
        let now = Instant::now();
        self.refusing.retain(|_, until| *until > now);
        let mut items = Vec::new();
        let mut places = Vec::new();
        for (i, (room, m)) in relay.appends().enumerate() {
            if !self.refusing.contains_key(room) {
                items.push((room.to_owned(), m.id, record::encode(m)));
                places.push((i, room.to_owned(), m.time));
            }
        }
        let count = relay.appends().len();
        let batch = relay.hand_off();
        if items.is_empty()
            || self
                .commands
                .send_blocking(Command::Publish { batch, items })
                .is_err()
        {
            return relay.commit_batch(batch, &vec![None; count], REFUSED);
        }
        self.batches.insert(batch, (places, now));
        if count < PIPELINE_FROM && relay.in_flight() == 1 && !self.failing {
            // A few messages, none before them on their way: their answer is awaited now, as a
            // file's flush is, and they go out in this turn (a trickle of chat is answered
            // sooner so than through the relay's loop).
            self.wait_for(relay, |relay| relay.in_flight() == 0);
        }
    }

    /// Takes what the followers bring (the answers about batches on their way among it) until
    /// `done` says so, or for at most [`ASK_WAIT`].
    fn wait_for(&mut self, relay: &mut Relay, done: impl Fn(&Relay) -> bool) {
        let deadline = Instant::now() + ASK_WAIT;
        while !done(relay) && Instant::now() < deadline {
            let next = smol::block_on(async { self.followed.recv().await.ok() }.or(async {
                smol::Timer::at(deadline).await;
                None
            }));
            match next {
                Some(next) => drop(self.take_followed(relay, Some(next))),
                None => break,
            }
        }
    }

    /// Whether the messages the relay took wait for the answer about those on their way, to
    /// go with the next: a few (under [`PIPELINE_FROM`]) while others are on their way, so
    /// that a steady trickle of chat costs NATS one round a few messages, not one a message;
    /// a burst goes at once, several turns' on their way together.
    pub fn holds(&self, relay: &Relay) -> bool {
        relay.in_flight() > 0 && relay.has_appends() && relay.appends().len() < PIPELINE_FROM
    }

    /// NATS answered for the batch `batch`: each message stored or not.
    fn published(
        &mut self,
        relay: &mut Relay,
        batch: u64,
        published: Vec<Result<Published, String>>,
    ) {
        let Some((places, _)) = self.batches.remove(&batch) else {
            return;
        };
        let now = Instant::now();
        let mut stored: Vec<Option<Stored>> = vec![None; relay.batch_len(batch)];
        let mut failure = None;
        for ((i, room, time), result) in places.into_iter().zip(published) {
            match result {
                Ok((seq, first)) => {
                    stored[i] = Some(Stored {
                        seq,
                        time: first.unwrap_or(time),
                    });
                }
                Err(e) => {
                    self.refusing.insert(room, now + BACK_OFF);
                    failure = Some(e);
                }
            }
        }
        match failure {
            Some(e) if !std::mem::replace(&mut self.failing, true) => {
                tracing::error!(nats = %self.urls, error = %e, "NATS did not store messages of a room: acknowledging none of that room's until it does (clients resend)");
            }
            None if stored.iter().all(Option::is_some)
                && std::mem::replace(&mut self.failing, false) =>
            {
                tracing::info!(nats = %self.urls, "NATS stores messages again");
            }
            _ => {}
        }
        relay.commit_batch(batch, &stored, REFUSED);
    }

    /// Waits (at most [`ASK_WAIT`]) for NATS to answer for every batch on its way, committing
    /// each: at a clean stop, before the sessions are told.
    pub fn finish(&mut self, relay: &mut Relay) {
        self.wait_for(relay, |relay| relay.in_flight() == 0);
        if relay.has_appends() {
            // Those held for the answer go now.
            self.commit(relay);
            self.wait_for(relay, |relay| relay.in_flight() == 0);
        }
    }

    /// Refuses the messages of the batches whose answer did not come within [`ASK_WAIT`] (the
    /// NATS thread is stuck, or gone): their clients resend them.
    fn expire(&mut self, relay: &mut Relay) {
        let now = Instant::now();
        let stale: Vec<u64> = (self.batches.iter())
            .filter(|(_, (_, at))| now.saturating_duration_since(*at) >= ASK_WAIT)
            .map(|(b, _)| *b)
            .collect();
        for batch in stale {
            if self.batches.remove(&batch).is_some() {
                tracing::error!(nats = %self.urls, "NATS did not answer about a turn's messages within {} s: they are refused (clients resend)", ASK_WAIT.as_secs());
                let count = relay.batch_len(batch);
                relay.commit_batch(batch, &vec![None; count], REFUSED);
            }
        }
    }

    /// Gives the relay every name's owner the cluster's bucket held at start, before it
    /// serves anyone (the later ones come through the followers).
    pub fn owners(&mut self, relay: &mut Relay) {
        for (name, key) in std::mem::take(&mut self.owners) {
            relay.owners_mut().learn(&name_key(&name), &name, key);
        }
    }

    /// Hands the relay `first` (what [`NatsLog::next_followed`] gave) and what the followers
    /// read meanwhile, without waiting; how many.
    pub fn take_followed(&mut self, relay: &mut Relay, first: Option<Followed>) -> usize {
        let mut taken = 0;
        let mut run: Option<(String, Vec<Message>)> = None;
        let mut next = first;
        while let Some(followed) = next.take().or_else(|| self.followed.try_recv().ok()) {
            taken += 1;
            let (room, m) = match followed {
                Followed::Message(room, m) => (room, m),
                Followed::Owner(name, key) => {
                    relay.owner_learnt(&name, key);
                    continue;
                }
                Followed::Starts(room, first) => {
                    relay.room_starts(&room, first);
                    continue;
                }
                Followed::Published(batch, published) => {
                    self.published(relay, batch, published);
                    continue;
                }
                Followed::Presence(room, change) => {
                    relay.presence_elsewhere(&room, change, Instant::now());
                    continue;
                }
            };
            match &mut run {
                Some((r, messages)) if *r == room => messages.push(m),
                _ => {
                    if let Some((r, messages)) = run.replace((room, vec![m])) {
                        relay.followed(&r, messages);
                    }
                }
            }
            if taken >= FOLLOWED_QUEUE {
                break;
            }
        }
        if let Some((r, messages)) = run {
            relay.followed(&r, messages);
        }
        taken
    }

    /// The next message a follower read, when there is one (never, once the NATS client has
    /// stopped).
    pub async fn next_followed(&self) -> Followed {
        match self.followed.recv().await {
            Ok(next) => next,
            Err(_) => std::future::pending().await,
        }
    }

    /// Writes the names the relay bound since the last call to the cluster's bucket (those
    /// another relay bound first come back through the followers).
    pub fn bind_names(&mut self, relay: &mut Relay) {
        if !relay.owners().changed() {
            return;
        }
        let bindings = relay.owners().unwritten().to_vec();
        if self.commands.send_blocking(Command::Bind(bindings)).is_ok() {
            relay.owners_mut().written();
        }
    }

    /// Writes the presence changes of the relay's members since the last call to the
    /// cluster's bucket, for the other relays (without waiting).
    pub fn tell_presence(&mut self, relay: &mut Relay) {
        let changes = relay.take_presence();
        if !changes.is_empty() {
            let _ = self.commands.send_blocking(Command::Presence(changes));
        }
    }

    /// Hands the NATS client the command `make` makes with the channel its answer comes on,
    /// and waits for the answer (on the relay's thread, as a flush of a file waits).
    fn ask<T>(
        &self,
        make: impl FnOnce(async_channel::Sender<Result<T, String>>) -> Command,
    ) -> Result<T, String> {
        let stopped = || "the NATS client stopped".to_owned();
        let (reply, answer) = async_channel::bounded(1);
        self.commands
            .send_blocking(make(reply))
            .map_err(|_| stopped())?;
        smol::block_on(
            async { answer.recv().await.unwrap_or_else(|_| Err(stopped())) }.or(async {
                smol::Timer::after(ASK_WAIT).await;
                Err(format!(
                    "NATS did not answer within {} s",
                    ASK_WAIT.as_secs()
                ))
            }),
        )
    }

    /// Answers the relay's history requests that need the streams.
    pub fn serve_reads(&mut self, relay: &mut Relay) {
        while let Some(read) = relay.poll_read() {
            let result = self.ask(|reply| Command::Read {
                room: read.room.clone(),
                first: read.first,
                last: read.last,
                reply,
            });
            match result {
                Ok(messages) => relay.serve_read(&read, &messages),
                Err(e) => {
                    tracing::error!(error = %e, room = %read.room, "cannot read a room's stream for history");
                    relay.serve_read(&read, &[]);
                }
            }
        }
    }
}
