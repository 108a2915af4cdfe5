//! `urc bench`'s arguments: a workload or an attack, its settings overridden by the options given, checked.

use std::path::PathBuf;

use clap::Args;

use crate::bench::attack::{Attack, AttackOptions};
use crate::bench::{self, Workload};
use crate::client;

/// Arguments of `urc bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A named workload; the options below override its settings [default: w1].
    #[arg(long, value_enum)]
    pub workload: Option<Workload>,
    /// Simulated clients in the room, senders included.
    #[arg(long)]
    pub clients: Option<usize>,
    /// How many of the clients send.
    #[arg(long)]
    pub senders: Option<usize>,
    /// Messages sent in all, shared among the senders.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Bytes of text a message ("hello world message 000123", cut or padded) [default: 26;
    /// --attack history: 1000, the longest, in its log].
    #[arg(long)]
    pub size: Option<usize>,
    /// Messages a second offered by all senders together; 0 sends as fast as the window allows.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds the whole run may take before it is given up as a failure.
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Messages a sender may have in flight (the client's window by default).
    #[arg(long, default_value_t = client::WINDOW as u64)]
    pub window: u64,
    /// Clients in each room (0: all in one room), the rooms' directories made before a relay the
    /// bench starts [default: the workload's; w4: 10].
    #[arg(long)]
    pub room_size: Option<usize>,
    /// Datagrams the raw loopback baseline sends at most (in at most 1 s); 0 skips it.
    #[arg(long, default_value_t = bench::DEFAULT_BASELINE)]
    pub baseline: u64,
    /// Directory in which the relay's temporary data directory is made [default: the system's
    /// temporary directory].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run the workload this many times, each in a fresh process, and print the medians last.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub runs: u16,
    /// A peer's benchmark script, run after each run with `--clients N --messages M` (it must
    /// print `deliveries/s=` last); the medians line then gives urc's ratio to it.
    #[arg(long, value_name = "SCRIPT")]
    pub peer: Option<String>,
    /// A hostile workload that keeps to the relay's default limits, beside two ordinary
    /// members chatting at 4 messages/s: `urc serve` runs as a process of its own and is
    /// measured (--messages: history's log; --seconds: the attack's length).
    #[arg(long, value_enum, conflicts_with_all = ["workload", "clients", "senders", "rate", "peer"])]
    pub attack: Option<Attack>,
    /// Hostile sessions of --attack [default: the attack's].
    #[arg(long, requires = "attack")]
    pub sessions: Option<usize>,
    /// Silent members in the room of --attack who and stop [default: the attack's].
    #[arg(long, requires = "attack")]
    pub members: Option<usize>,
    /// The `urc` program whose `serve` the bench starts (an older build, say) [default: this
    /// one].
    #[arg(long, value_name = "PATH")]
    pub relay_bin: Option<PathBuf>,
    /// Where the relay under test runs: `child` (`urc serve` in a process the bench starts and
    /// measures), `in-process` (a thread of the bench's own process), or the address of a relay
    /// already running on this machine (its limits must let the load through: see
    /// docs/performance.md).
    #[arg(
        long,
        default_value = "child",
        value_name = "child|in-process|ADDR",
        conflicts_with = "attack"
    )]
    pub relay: String,
    /// The key of the relay of `--relay ADDR` (`urc serve --fingerprint` prints it) [default:
    /// learnt on first contact].
    #[arg(long, value_name = "KEY")]
    pub relay_key: Option<String>,
    /// Where the relays keep their rooms: `file` (their logs, `urc serve`'s default) or `nats`
    /// (the bench starts its own NATS JetStream on loopback for the run, and the relays with
    /// `--store nats://…`) [default: file; w5: needs nats].
    #[arg(long, value_enum, conflicts_with = "attack")]
    pub store: Option<StoreKind>,
    /// Copies of each room's stream with --store nats: 1 (one NATS node) or 3 (three nodes in
    /// a cluster) [default: 1].
    #[arg(long, value_parser = clap::builder::TypedValueParser::map(clap::builder::PossibleValuesParser::new(["1", "3"]), |s| s.parse::<usize>().expect("1 or 3")))]
    pub replicas: Option<usize>,
    /// The nats-server that --store nats runs [default: $URC_NATS_SERVER, else
    /// $URC_NATS_DIR/nats-server, else target/nats/nats-server beside this build (where
    /// scripts/install-nats-server puts it), else nats-server on the PATH].
    #[arg(long, value_name = "PATH")]
    pub nats_server: Option<PathBuf>,
    /// When the bench's NATS nodes sync a write to disk: `always` (before acknowledging it,
    /// as docs/cluster.md's nodes; Debian's 2.9 cannot) or `interval` (NATS's default, at
    /// most every 2 minutes: with 3 replicas an acknowledged write is then in two nodes'
    /// memory) [default: always].
    #[arg(long, value_enum)]
    pub nats_sync: Option<NatsSync>,
}

/// What `--nats-sync` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NatsSync {
    /// Every write synced before its acknowledgement (`sync_interval: always`).
    Always,
    /// NATS's default `sync_interval` (2 minutes).
    Interval,
}

/// What `--store` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// Each relay's logs in its data directory.
    File,
    /// The bench's own NATS JetStream.
    Nats,
}

/// Messages in the log of `--attack history` by default.
pub const ATTACK_LOG: u64 = 10_000;

impl BenchArgs {
    /// The settings of one `--attack` run: the attack's, overridden by the options given.
    ///
    /// # Errors
    /// A one-line explanation of what is wrong with the arguments.
    pub fn attack_options(&self, attack: Attack) -> Result<AttackOptions, String> {
        let (sessions, members, seconds) = attack.defaults();
        let options = AttackOptions {
            attack,
            sessions: self.sessions.unwrap_or(sessions),
            members: self.members.unwrap_or(members),
            seconds: self.seconds.unwrap_or(seconds),
            log: self.messages.unwrap_or(ATTACK_LOG),
            size: self.size.unwrap_or(match attack {
                Attack::History => crate::proto::message::MAX_TEXT_BYTES,
                _ => bench::DEFAULT_SIZE,
            }),
            relay_bin: self.relay_bin.clone(),
            data: self.data.clone(),
        };
        if attack != Attack::All {
            options.check()?;
        }
        Ok(options)
    }

    /// The run's settings: the workload's, overridden by the options given.
    ///
    /// # Errors
    /// A one-line explanation of what is wrong with the arguments.
    pub fn options(&self) -> Result<bench::Options, String> {
        if self.workload == Some(Workload::Log)
            && (self.clients.is_some() || self.senders.is_some() || self.rate.is_some())
        {
            return Err(
                "--workload log takes --messages (the log's length), --size, --seconds and --data, not --clients, --senders or --rate"
                    .into(),
            );
        }
        let preset = self.workload.unwrap_or(Workload::W1).preset();
        let store = match self.store {
            Some(StoreKind::Nats) => bench::Store::Nats {
                replicas: self.replicas.unwrap_or(1),
                server: self.nats_server.clone(),
                sync_always: self.nats_sync != Some(NatsSync::Interval),
            },
            _ if self.replicas.is_some()
                || self.nats_server.is_some()
                || self.nats_sync.is_some() =>
            {
                return Err(
                    "--replicas, --nats-server and --nats-sync go with --store nats".into(),
                );
            }
            _ if preset.relays > 1 => {
                return Err(format!(
                    "--workload {} runs {} relays on one NATS store: give --store nats",
                    self.workload.map_or("custom", Workload::name),
                    preset.relays
                ));
            }
            _ => bench::Store::File,
        };
        let options = bench::Options {
            workload: match (
                self.workload,
                self.clients,
                self.senders,
                self.messages,
                self.rate,
            ) {
                (Some(w), ..) => Some(w),
                (None, None, None, None, None) => Some(Workload::W1),
                _ => None,
            },
            clients: self.clients.unwrap_or(preset.clients),
            senders: self.senders.unwrap_or(preset.senders),
            messages: self.messages.unwrap_or(preset.messages),
            size: self.size.unwrap_or(bench::DEFAULT_SIZE),
            rate: self.rate.unwrap_or(preset.rate),
            seconds: self.seconds.unwrap_or(preset.seconds),
            window: self.window,
            room: self.room_size.unwrap_or(preset.room),
            baseline: self.baseline,
            data: self.data.clone(),
            relay: bench::RelayAt::parse(
                &self.relay,
                self.relay_bin.clone(),
                self.relay_key
                    .as_deref()
                    .map(super::relay_key)
                    .transpose()?,
            )?,
            store,
            relays: preset.relays,
        };
        options.check()?;
        Ok(options)
    }
}
