//! A run's settings, checked: the workload's, overridden by the options given (cli/bench_args.rs makes them), and where the relays keep their rooms.

use std::path::PathBuf;

use super::{RelayAt, Workload};
use crate::proto::message::MAX_TEXT_BYTES;

/// Where the relays under test keep their rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// Each relay's logs in its data directory, as `urc serve` does by default.
    File,
    /// The bench's own NATS JetStream, started for the run: one node for 1 replica, three in
    /// a cluster for 3.
    Nats {
        /// Copies of each stream: 1 or 3.
        replicas: usize,
        /// The nats-server to run (`--nats-server`; found when `None`).
        server: Option<PathBuf>,
        /// Whether the nodes sync every write before acknowledging it (`sync_interval:
        /// always`, where the server accepts it), or keep NATS's default interval.
        sync_always: bool,
    },
}

/// A run's settings, checked.
#[derive(Debug, Clone)]
pub struct Options {
    /// The workload named, if one was.
    pub workload: Option<Workload>,
    /// Simulated clients, at least 2.
    pub clients: usize,
    /// How many of them send, 1 to `clients`.
    pub senders: usize,
    /// Messages in all, shared among the senders, at least one each.
    pub messages: u64,
    /// Bytes of text a message, 1 to [`MAX_TEXT_BYTES`].
    pub size: usize,
    /// Messages a second offered in all (0: as fast as the window allows).
    pub rate: f64,
    /// The run's time bound.
    pub seconds: u64,
    /// Most csns a sender may be ahead of its oldest unacknowledged message.
    pub window: u64,
    /// Clients in each room, the first `room` in the first room and so on (0: all in one).
    pub room: usize,
    /// Datagrams the baseline sends at most (0: no baseline).
    pub baseline: u64,
    /// Where the relay's temporary data directory is made (the system's temporary directory
    /// when `None`).
    pub data: Option<PathBuf>,
    /// Where the relay under test runs.
    pub relay: RelayAt,
    /// Where the relays keep their rooms.
    pub store: Store,
    /// Relays started, the clients shared among them (1 but with a NATS store).
    pub relays: usize,
}

impl Options {
    /// Checks the settings.
    ///
    /// # Errors
    /// A one-line explanation of the first setting that makes no sense.
    pub fn check(&self) -> Result<(), String> {
        if self.clients < 2 {
            return Err("--clients must be at least 2: one sends, the others receive".into());
        }
        if self.senders == 0 || self.senders > self.clients {
            return Err(format!(
                "--senders must be 1 to --clients ({}), not {}",
                self.clients, self.senders
            ));
        }
        if self.messages < self.senders as u64 {
            return Err(format!(
                "--messages ({}) must be at least one per sender ({})",
                self.messages, self.senders
            ));
        }
        if self.size == 0 || self.size > MAX_TEXT_BYTES {
            return Err(format!(
                "--size must be 1 to {MAX_TEXT_BYTES} bytes, not {}",
                self.size
            ));
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err(format!(
                "--rate must be 0 or a positive number, not {}",
                self.rate
            ));
        }
        if self.seconds == 0 || self.window == 0 {
            return Err("--seconds and --window must be at least 1".into());
        }
        if self.room == 1 {
            return Err("--room-size must be 0 (one room) or at least 2".into());
        }
        if self.room > 0
            && self.clients.div_ceil(self.room) > crate::relay::Config::default().max_rooms
        {
            return Err(format!(
                "{} clients in rooms of {} make more rooms than a relay has by default",
                self.clients, self.room
            ));
        }
        if self.relays == 0 || self.relays > self.clients {
            return Err(format!(
                "--relays must be 1 to --clients ({}), not {}",
                self.clients, self.relays
            ));
        }
        if self.relays > 1 && self.store == Store::File {
            return Err(format!(
                "{} relays share their rooms only through NATS: give --store nats",
                self.relays
            ));
        }
        if let Store::Nats { replicas, .. } = self.store {
            if replicas != 1 && replicas != 3 {
                return Err(format!("--replicas must be 1 or 3, not {replicas}"));
            }
            if !matches!(self.relay, RelayAt::Child(_)) {
                return Err(
                    "--store nats runs relays the bench starts: not with --relay in-process or an address"
                        .into(),
                );
            }
        }
        Ok(())
    }

    pub(super) fn label(&self) -> String {
        self.workload.map_or("custom", Workload::name).to_owned()
    }
}
