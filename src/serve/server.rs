//! `urc serve`: the socket loop around the relay's rules and the message log.
//!
//! Each turn of the loop takes every datagram waiting on the socket, writes the messages they
//! brought to their rooms' logs and flushes them (group commit, see `logs/`), and only then
//! lets their acknowledgements and fan-out leave.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::time::{Duration, Instant};

use smol::Async;
use smol::future::FutureExt as _;

use crate::keyfile;
use crate::proto::message::Millis;
use crate::proto::secure::keys::{Keypair, PublicKey};
use crate::proto::wire::MAX_DATAGRAM;
use crate::relay::secure::SecureRelay;
use crate::relay::{Config, Relay, Stats, TICK};
use crate::serve::batch::Batch;
use crate::serve::clock::ClockWatch;
use crate::serve::lock::{DataLock, LockError};
use crate::serve::logs::Logs;
use crate::serve::nats::{self, NatsLog};
use crate::serve::owners;
use crate::serve::report::{self, REPORT_EVERY, SUMMARY_EVERY};
use crate::serve::socket::{bind_udp, transient};
use crate::serve::store::OpenError;

/// The port the relay listens on by default (outside the ephemeral range).
pub const DEFAULT_PORT: u16 = 7707;
/// The address the relay listens on by default.
pub const DEFAULT_BIND: &str = "127.0.0.1:7707";
/// Most datagrams taken from the socket before the loop writes and answers them.
const BATCH: usize = 1024;
/// Datagrams sent between two looks at the socket while a turn's datagrams go out: about a
/// millisecond of sending, a fraction of what a socket buffer of the usual 208 KiB holds.
const READ_EVERY: usize = 256;
/// How often the relay looks at its log's file and writes the last seq stored.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Where a relay keeps its rooms' messages.
#[derive(Debug, Clone, Default)]
pub enum StoreChoice {
    /// Each room's log file in the data directory (`--store file`, the default).
    #[default]
    File,
    /// NATS JetStream, a stream a room, shared with the other relays of the cluster.
    Nats(nats::Options),
}

/// The rooms' logs of a running relay (one a relay: the size of the larger is no waste).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Backing {
    /// Files of its own.
    File(Logs),
    /// Streams shared with other relays.
    Nats(NatsLog),
}

/// A relay bound to its socket with its log open, ready to [`Server::run`].
#[derive(Debug)]
pub struct Server {
    socket: Async<UdpSocket>,
    logs: Backing,
    relay: SecureRelay,
    /// The data directory (the names' owners are written there).
    data: PathBuf,
    /// The data directory is this relay's while it runs.
    _lock: DataLock,
}

/// Why the relay could not start.
#[derive(Debug)]
pub enum StartError {
    /// The address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        error: io::Error,
    },
    /// Another relay uses the data directory, or it cannot be locked.
    Lock(LockError),
    /// A file of the data directory (the relay's key, the names' owners, a room's place)
    /// could not be read, made or moved.
    Data(String),
    /// The log could not be opened.
    Log(OpenError),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Bind { addr, error } if error.kind() == io::ErrorKind::AddrInUse => {
                write!(
                    f,
                    "cannot listen on {addr}: {error} (is another relay running? choose another port with --bind)"
                )
            }
            StartError::Bind { addr, error } => write!(
                f,
                "cannot listen on {addr}: {error} (choose an address of this machine with --bind)"
            ),
            StartError::Lock(e) => e.fmt(f),
            StartError::Data(e) => f.write_str(e),
            StartError::Log(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StartError {}

impl Server {
    /// Binds `addr`, takes the data directory `data` for this relay alone and opens its log.
    ///
    /// # Errors
    /// When the address cannot be bound, another relay uses `data`, or the log cannot be
    /// opened or is damaged.
    pub fn bind(addr: SocketAddr, data: PathBuf, config: Config) -> Result<Server, StartError> {
        Server::bind_store(addr, data, config, StoreChoice::File)
    }

    /// [`Server::bind`] with the rooms' messages kept where `store` says.
    ///
    /// # Errors
    /// As [`Server::bind`]'s, and when the NATS store cannot be reached.
    pub fn bind_store(
        addr: SocketAddr,
        data: PathBuf,
        mut config: Config,
        store: StoreChoice,
    ) -> Result<Server, StartError> {
        // Bound first, so that a relay that cannot listen leaves no data directory behind.
        let socket = bind_udp(addr)
            .and_then(Async::new)
            .map_err(|error| StartError::Bind { addr, error })?;
        let lock = DataLock::acquire(&data).map_err(StartError::Lock)?;
        let (keypair, made) = relay_key(&data).map_err(StartError::Data)?;
        if made {
            tracing::info!(
                "made the relay's key {}: clients pin it on first contact",
                key_path(&data).display()
            );
        }
        let keep = config.cache.max(config.dedup);
        let (mut logs, restored) = match store {
            StoreChoice::File => {
                let (logs, restored) = Logs::open(&data, keep)?;
                (Backing::File(logs), restored)
            }
            StoreChoice::Nats(options) => {
                config.shared = true;
                let id = nats::relay_id(&data).map_err(StartError::Data)?;
                let (log, restored) = NatsLog::open(options, keep, id).map_err(StartError::Data)?;
                (Backing::Nats(log), restored)
            }
        };
        let mut relay = Relay::new(config, Vec::new());
        relay.restore_rooms(restored);
        match &mut logs {
            Backing::File(_) => {
                *relay.owners_mut() = owners::load(&data).map_err(StartError::Data)?
            }
            Backing::Nats(log) => log.owners(&mut relay),
        }
        let relay = SecureRelay::new(relay, keypair);
        Ok(Server {
            socket,
            logs,
            relay,
            data,
            _lock: lock,
        })
    }

    /// The relay's public key: its fingerprint, which clients pin.
    pub fn public_key(&self) -> PublicKey {
        self.relay.public_key()
    }

    /// The address the relay listens on.
    ///
    /// # Errors
    /// When the socket cannot tell.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.get_ref().local_addr()
    }

    /// Where the default room's messages are: its log file, or its NATS stream.
    pub fn log_path(&self) -> PathBuf {
        match &self.logs {
            Backing::File(logs) => logs.lobby_path(),
            Backing::Nats(_) => PathBuf::from(format!(
                "nats:{}",
                nats::stream_of(crate::proto::room::DEFAULT_ROOM)
            )),
        }
    }

    /// How many rooms the relay has.
    pub fn rooms(&self) -> usize {
        self.relay.relay().room_count()
    }

    /// The latest stored sequence number of the default room.
    pub fn latest(&self) -> u64 {
        self.relay.relay().latest()
    }

    /// Serves until `shutdown` completes, then returns after finishing the turn under way, so
    /// no record is written half.
    ///
    /// # Errors
    /// When the socket fails for good.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> io::Result<Stats> {
        let mut shutdown = pin!(shutdown);
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        let mut out = Batch::default();
        let mut next_report = Instant::now() + REPORT_EVERY;
        let mut reported = Stats::default();
        let mut next_summary = Instant::now() + SUMMARY_EVERY;
        let mut summarised = Stats::default();
        let mut clock = ClockWatch::default();
        let mut next_watch = Instant::now() + WATCH_EVERY;
        let mut looked = Instant::now();
        loop {
            // The relay's clock: its tick, and the answers that wait for their turn.
            let wake_at = (self.relay.poll_timeout()).unwrap_or_else(|| Instant::now() + TICK);
            // What was read while the last turn went out is written and answered now: the
            // socket may stay silent, its senders waiting for their acknowledgements.
            let wake_at = if self.relay.took_meanwhile() && !self.held() {
                Instant::now()
            } else {
                wake_at
            };
            let followed = async {
                match &self.logs {
                    Backing::Nats(log) => Ok(Wake::Followed(log.next_followed().await)),
                    Backing::File(_) => std::future::pending().await,
                }
            };
            let wake = async {
                let (n, from) = self.socket.recv_from(&mut buf).await?;
                Ok::<_, io::Error>(Wake::Datagram(n, from))
            }
            .or(followed)
            .or(async {
                smol::Timer::at(wake_at).await;
                Ok(Wake::Timer)
            })
            .or(async {
                shutdown.as_mut().await;
                Ok(Wake::Stop)
            })
            .await;
            match wake {
                Ok(Wake::Datagram(n, from)) => {
                    self.take(from, &buf[..n]);
                    self.take_waiting(&mut buf);
                }
                // The turn is ended below, after every wake: under a steady stream of
                // datagrams the socket is always ready and the timer would never win the race.
                // What waits on the socket goes in the turn the timer began (each room's
                // heartbeat is a timer: at 1,000 rooms, a thousand a second).
                Ok(Wake::Timer) => self.take_waiting(&mut buf),
                // Another relay's messages (or this one's, again) in their room's order: passed
                // on in the turn that comes now, with what waits on the socket.
                Ok(Wake::Followed(first)) => {
                    self.take_followed(Some(first));
                    self.take_waiting(&mut buf);
                }
                Ok(Wake::Stop) => break,
                Err(e) if transient(&e) => {
                    tracing::debug!(error = %e, "receive failed; going on");
                }
                Err(e) => return Err(e),
            }
            let (now, wall) = (Instant::now(), Millis::now());
            if let Some(step) = clock.look(now, wall) {
                tracing::warn!(
                    "the wall clock stepped {step}: messages from now on carry its time (their order is the seq's, whatever their times say)"
                );
            }
            let stalled = self.relay.relay().stats().stalled;
            self.relay.end_turn(now, wall);
            let pause = self.relay.relay().stats().stalled - stalled;
            if !pause.is_zero() {
                tracing::warn!(
                    "the relay did not run for {:.1} s (stopped, or its disk or machine stalled): that time counts as nobody's silence",
                    pause.as_secs_f64()
                );
            }
            if now >= next_watch {
                next_watch = now + WATCH_EVERY;
                self.watch_log(now >= next_report);
            }
            // Every log looked at about once a WATCH_EVERY, a few a turn.
            if let Backing::File(files) = &mut self.logs {
                let logs = files.len();
                let due = (logs as f64 * (now - looked).as_secs_f64() / WATCH_EVERY.as_secs_f64())
                    as usize;
                if due >= logs {
                    files.look(logs);
                    looked = now;
                } else if due > 0 {
                    files.look(due);
                    looked += WATCH_EVERY.mul_f64(due as f64 / logs as f64);
                }
            }
            if now >= next_report {
                next_report = now + REPORT_EVERY;
                reported = report::drops(self.relay.relay_mut(), reported);
            }
            if now >= next_summary {
                next_summary = now + SUMMARY_EVERY;
                summarised = report::summary(self.relay.relay(), summarised);
            }
            self.persist();
            self.serve_reads();
            // Sent from this thread: a thread of its own for sending (tried) was slower on
            // two cores, where the clients of a benchmark need the other one.
            self.send_all(&mut out, &mut buf, true).await;
        }
        // What was taken while the last turn's datagrams went out (see `send_all`) is written
        // and flushed too; then every session is told the relay stops, so that its client says
        // so at once and keeps trying.
        self.relay.end_turn(Instant::now(), Millis::now());
        self.persist();
        if let Backing::Nats(log) = &mut self.logs {
            // What is on its way to NATS is acknowledged (or refused) before the notice.
            log.finish(self.relay.relay_mut());
        }
        self.relay.relay_mut().stopping();
        // Reading no more: a JOIN answering the notice would be welcomed by a relay that is
        // gone a moment later.
        self.send_all(&mut out, &mut buf, false).await;
        if let Backing::File(logs) = &mut self.logs {
            logs.mark_all(self.relay.relay());
        }
        let stats = self.relay.relay().stats();
        tracing::info!(
            rooms = self.relay.relay().room_count(),
            "relay stopped; counted {}",
            stats.counts()
        );
        Ok(stats.clone())
    }

    /// Looks at the logs (see [`Logs::watch`]).
    fn watch_log(&mut self, remind: bool) {
        if let Backing::File(logs) = &mut self.logs {
            logs.watch(self.relay.relay(), Instant::now(), remind);
        }
    }

    /// Hands one datagram to the relay; the buffer is one byte longer than the largest valid
    /// datagram, so an oversize one arrives too long and is refused by the decoder.
    fn take(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.relay
            .handle(Instant::now(), Millis::now(), from, bytes);
    }

    /// Takes what else is already waiting, without waiting, so that one flush serves it all.
    fn take_waiting(&mut self, buf: &mut [u8]) {
        for _ in 1..BATCH {
            match self.socket.get_ref().recv_from(buf) {
                Ok((n, from)) => self.take(from, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if transient(&e) => continue,
                Err(_) => break,
            }
        }
    }

    /// Writes and flushes what the relay accepted, then lets its answers go.
    fn persist(&mut self) {
        // A name bound this turn is on disk before its WELCOME leaves (unless the write
        // fails: it is tried again every turn, and said so). A cluster's relays keep the
        // names' owners in NATS instead, each name's first binding winning across them.
        if let Backing::Nats(log) = &mut self.logs {
            log.bind_names(self.relay.relay_mut());
            log.tell_presence(self.relay.relay_mut());
        } else if self.relay.relay().owners().changed() {
            match owners::append(&self.data, self.relay.relay().owners()) {
                Ok(()) => self.relay.relay_mut().owners_mut().written(),
                Err(e) => {
                    tracing::error!(error = %e, file = %owners::path(&self.data).display(), "cannot write the names' owners; trying again next turn")
                }
            }
        }
        match &mut self.logs {
            Backing::File(logs) => logs.commit(self.relay.relay_mut()),
            Backing::Nats(log) => {
                log.commit(self.relay.relay_mut());
                // What the streams brought meanwhile, in the same turn's sends.
                log.take_followed(self.relay.relay_mut(), None);
            }
        }
    }

    /// Whether the messages the relay took wait for the shared store's answer about earlier
    /// ones, to go with the next (see [`NatsLog::holds`]): no turn is due for them.
    fn held(&self) -> bool {
        matches!(&self.logs, Backing::Nats(log) if log.holds(self.relay.relay()))
    }

    /// Hands the relay what the shared store's followers read (none with a log of its own).
    fn take_followed(&mut self, first: Option<nats::Followed>) {
        if let Backing::Nats(log) = &mut self.logs {
            log.take_followed(self.relay.relay_mut(), first);
        }
    }

    fn serve_reads(&mut self) {
        match &mut self.logs {
            Backing::File(logs) => logs.serve_reads(self.relay.relay_mut()),
            Backing::Nats(log) => log.serve_reads(self.relay.relay_mut()),
        }
    }

    /// Sends what the relay has to send; every [`READ_EVERY`] datagrams (when `read`), takes
    /// what waits on the socket (for the next turn) so that a long fan-out (10,000 members) does
    /// not leave the socket's buffer to overflow and drop what members send meanwhile. Returns
    /// early when messages came while only presence and answers were left: the next turn
    /// sends their fan-out first, then what is left.
    async fn send_all(&mut self, batch: &mut Batch, inbox: &mut [u8], read: bool) {
        let mut since_read = 0usize;
        // Datagrams of presence and answers sent this turn: they get at least READ_EVERY of
        // them a turn, so that steady chat delays them but never starves them.
        let mut lower = 0usize;
        loop {
            while !batch.is_full() {
                let Some(to) = self.relay.poll_transmit_into(batch.next_buffer()) else {
                    break;
                };
                batch.push(to);
            }
            if batch.is_empty() {
                return;
            }
            // One unreachable client must not stop the others: UDP is best-effort and the
            // client's own retransmission and gap repair recover what is lost here.
            since_read += batch.len();
            if !self.relay.chat_queued() {
                lower += batch.len();
            }
            batch.send(&self.socket).await;
            if read && since_read >= READ_EVERY {
                since_read = 0;
                self.take_waiting(inbox);
                // Messages came while presence or answers go out: they are written and fanned
                // out first, the rest of these after them.
                if lower >= READ_EVERY && self.relay.chat_waiting() && !self.held() {
                    return;
                }
            }
        }
    }
}

enum Wake {
    Datagram(usize, SocketAddr),
    Timer,
    Stop,
    /// A message a follower of the shared store read (its room's key, the message).
    Followed(nats::Followed),
}

/// The relay's key file in the data directory `data`.
pub fn key_path(data: &Path) -> PathBuf {
    data.join(KEY_FILE)
}

/// The name of the relay's key file in its data directory.
pub const KEY_FILE: &str = "relay.key";

/// The relay's static key pair, from its file in `data` (made there on the first start);
/// `true` when made now.
///
/// # Errors
/// A one-line explanation naming the file.
pub fn relay_key(data: &Path) -> Result<(Keypair, bool), String> {
    keyfile::load_or_create(&key_path(data), "the relay's key file")
}

/// Where the relay keeps its log unless `--data` says otherwise: `$XDG_DATA_HOME/urc`, or
/// `~/.local/share/urc`.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("urc")
}
