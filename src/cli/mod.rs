//! The command line: `urc serve`, `urc join` and `urc bench`, parsed with clap and turned into
//! settings.

use std::io::IsTerminal as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::client;
use crate::proto::wire;
use crate::relay;
use crate::term::join;
use crate::term::render::Renderer;

mod keys;
mod servers;
mod store;
pub use keys::{allowed_keys, default_identity, relay_key, relay_label};
pub use servers::{Servers, servers};
pub use store::nats_urls;

/// urc, UDP Relay Chat: chat in terminals through one relay that loses nothing it acknowledged.
#[derive(Debug, Parser)]
#[command(name = "urc", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the relay: clients join it, it stores every message and passes it on.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Join a relay's room and chat from this terminal (or from a script, through stdin).
    #[command(after_help = JOIN_EXAMPLES)]
    Join(JoinArgs),
    /// Measure a relay: an in-process relay on a fresh log on disk, simulated clients on loopback.
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(BenchArgs),
}

const SERVE_EXAMPLES: &str = "\
Examples:
  urc serve                              listen on 127.0.0.1:7707, log in ~/.local/share/urc
  urc serve --bind 0.0.0.0:7707          serve the whole network
  urc serve --data /var/lib/urc          keep the message log elsewhere
  urc serve --repair-log                 put placeholders where the log's records are damaged

The log of the room lobby is <data>/rooms/lobby/messages.jsonl, one JSON object a line: tail -f
it, or read it with jq.";

const JOIN_EXAMPLES: &str = "\
Examples:
  urc join --name alice                  chat in the relay on 127.0.0.1:7707
  urc join --server chat.example:7707 --name 小明 --history 50
  echo 'build finished' | urc join --name ci-bot
  urc join --name bot --json < script.txt   one JSON event a line on stdout

In the terminal, type a message and Enter; /help lists the commands.";

const BENCH_EXAMPLES: &str = "\
Workloads (docs/performance.md):
  W1 throughput  urc bench --workload w1     20 clients, 1 sender, 50,000 messages, no pause
  W2 latency     urc bench --workload w2     50 clients each sending, 1,000 messages/s in all, 10 s
  W3 scale       urc bench --workload w3     10,000 joined clients, 1 sender, 1,000 messages
  W4 rooms       urc bench --workload w4     1,000 rooms of 10, each member 1 message/s for 10 s
  W5 relays      urc bench --workload w5 --store nats
                                             3 relays on one NATS store, 20 clients on each, one
                                             room, 1 sender, 50,000 messages, no pause
  Large log      urc bench --workload log    a relay started on a log of 1,000,000 messages
                 (--messages): time until it answers, joins with 20 messages of history,
                 old history read from the log, memory beside shorter logs

Examples:
  cargo run --release -- bench --workload w1
  urc bench --clients 20 --messages 50000          W1 spelt out
  urc bench --workload w1 --window 32              W1 with fewer messages in flight
  urc bench --workload w1 --store nats --replicas 3
                                                   W1 on the bench's own 3-node NATS cluster
  urc bench --clients 5 --messages 500 --baseline 0   a quick check, no baseline
  urc bench --workload w1 --runs 5 --peer ../shared/peers/ngircd-fanout.sh
                                                   5 runs in turns with ngircd, medians last

Attacks (issue 11: each within the relay's default limits, beside two ordinary members
chatting at 4 messages/s; the relay is `urc serve` in a process of its own, measured):
  urc bench --attack history    64 sessions of one IP, HISTORY of 1000 5 times a second, 20 s
  urc bench --attack who        64 sessions of one IP, WHO 5 times a second, 10,000 members
  urc bench --attack senders    640 sessions from 10 IPs, 20 messages/s each, 20 s
  urc bench --attack parked     10,000 sessions, 255 messages each waiting in the relay
  urc bench --attack stop       2,000 members; the relay stopped (SIGSTOP) for 40 s
  urc bench --attack clock      the relay's clock 10 years ahead for 10 s, then back
  urc bench --attack all --runs 3 --relay-bin ./old-urc   each 3 times against another build
The summary line is urc-bench-attack attack=... ordinary_p99=... relay_peak_rss=...
verdict=ok|FAIL(...); the exit code is 1 when a target is missed.

Options given with --workload override its settings. The relay's limits (message and request
rates, clients per address, clients, client timeout) are raised so that the bench is not
rate limited. The last line is a summary: deliveries/s=... p50=... p99=... p999=... (with
--runs, the medians of the runs, and with --peer, the peer's and urc's ratio to it); the exit
code is 1 when a client missed a message or the time bound came first.";

/// Arguments of `urc serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address (or host name) and UDP port to listen on; the port is 7707 when not given.
    #[arg(long, default_value = crate::serve::server::DEFAULT_BIND)]
    pub bind: String,
    /// Directory of the message log [default: $XDG_DATA_HOME/urc, i.e. ~/.local/share/urc].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Seconds of silence after which a client is dropped.
    #[arg(long, default_value_t = relay::DEFAULT_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub timeout: u64,
    /// Most clients on the relay at once.
    #[arg(long, default_value_t = relay::Config::default().max_clients)]
    pub max_clients: usize,
    /// Most rooms the relay has, those in its data directory included; a new room beyond
    /// them is refused.
    #[arg(long, default_value_t = relay::Config::default().max_rooms)]
    pub max_rooms: usize,
    /// Most clients from one IP address at once.
    #[arg(long, default_value_t = relay::Config::default().max_per_ip)]
    pub max_per_ip: usize,
    /// Messages a second each client may send on average; faster ones wait.
    #[arg(long, default_value_t = relay::Config::default().rate)]
    pub rate: f64,
    /// Messages each client may send at once above --rate (a paste, say).
    #[arg(long, default_value_t = relay::Config::default().burst)]
    pub burst: f64,
    /// History and /who requests a second each client may make (twice that at once).
    #[arg(long, default_value_t = relay::Config::default().request_rate)]
    pub request_rate: f64,
    /// Replace damaged records of the message log by placeholders before serving (the damaged
    /// file is kept beside it); refused when the records around them do not say which
    /// messages were lost.
    #[arg(long)]
    pub repair_log: bool,
    /// Print the relay's key (its fingerprint, which clients pin) and exit; the key is made
    /// first if the data directory has none yet.
    #[arg(long)]
    pub fingerprint: bool,
    /// Free a name (and its look-alikes) from the key that owns it, so that another key may
    /// take it, and exit; its private conversations are moved aside to <data>/released/dm/.
    /// The relay must not be running on this data directory.
    #[arg(long, value_name = "NAME")]
    pub release_name: Option<String>,
    /// Admit only the client keys listed in FILE, one a line (as `urc join --fingerprint`
    /// prints them), each followed by anything as a comment; `#` lines and blank lines are
    /// skipped. Others are refused with a clear error.
    #[arg(long, value_name = "FILE")]
    pub allow: Option<PathBuf>,
    /// Where the rooms' messages are kept: `file` (each room's log in the data directory),
    /// or `nats://HOST:PORT[,HOST:PORT…]`, NATS JetStream, a stream a room, shared by every
    /// relay started with the same servers (docs/cluster.md).
    #[arg(long, default_value = "file", value_name = "file|nats://HOST:PORT,…")]
    pub store: String,
    /// Copies of each room's stream in the NATS cluster (with --store nats://): 1, or 3 for
    /// a cluster of three nodes or more (a message is acknowledged once two hold it)
    /// [default: 1].
    #[arg(long, value_parser = clap::builder::TypedValueParser::map(clap::builder::PossibleValuesParser::new(["1", "3"]), |s| s.parse::<usize>().expect("1 or 3")))]
    pub replicas: Option<usize>,
    /// With --store nats://: first put the rooms of the file-store data directory DIR (a
    /// relay's, stopped) into the cluster's streams, every message at its own seq, then serve;
    /// run again, it puts nothing twice (docs/cluster.md).
    #[arg(long, value_name = "DIR", requires = "store")]
    pub import: Option<PathBuf>,
}

impl ServeArgs {
    /// The relay's settings.
    ///
    /// # Errors
    /// A one-line explanation when a limit makes no sense.
    pub fn config(&self) -> Result<relay::Config, String> {
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            return Err(format!(
                "--rate must be a positive number, not {}",
                self.rate
            ));
        }
        if !(self.burst >= 1.0 && self.burst.is_finite()) {
            return Err(format!("--burst must be at least 1, not {}", self.burst));
        }
        if !(self.request_rate > 0.0 && self.request_rate.is_finite()) {
            return Err(format!(
                "--request-rate must be a positive number, not {}",
                self.request_rate
            ));
        }
        if self.max_clients == 0 || self.max_per_ip == 0 || self.max_rooms == 0 {
            return Err("--max-clients, --max-per-ip and --max-rooms must be at least 1".into());
        }
        let allowed = match &self.allow {
            Some(path) => Some(allowed_keys(path)?),
            None => None,
        };
        Ok(relay::Config {
            allowed,
            timeout: Duration::from_secs(self.timeout),
            max_clients: self.max_clients,
            max_rooms: self.max_rooms,
            max_per_ip: self.max_per_ip,
            rate: self.rate,
            burst: self.burst,
            request_rate: self.request_rate,
            ..relay::Config::default()
        })
    }

    /// The address to listen on.
    ///
    /// # Errors
    /// A one-line explanation when `--bind` names no address.
    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        resolve("--bind", &self.bind)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(crate::serve::server::default_data_dir)
    }
}

/// Arguments of `urc join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The relay's address: HOST or HOST:PORT (the port is 7707 when not given); several,
    /// separated by commas, for relays of one cluster (one key): tried in turn, the client
    /// moves to the next when its relay stops answering (a host's addresses are each tried).
    #[arg(long, env = "URC_SERVER", default_value = crate::serve::server::DEFAULT_BIND)]
    pub server: String,
    /// Your name on the relay: 1 to 32 characters, no spaces [default: your login name].
    #[arg(long, env = "URC_NAME")]
    pub name: Option<String>,
    /// A room to enter, by name (1 to 32 letters, digits, - or _; `#ops` or `ops`); again
    /// for more (URC_ROOMS: names with commas); typed lines go to the first [default: lobby].
    #[arg(
        long = "room",
        value_name = "ROOM",
        env = "URC_ROOMS",
        value_delimiter = ','
    )]
    pub rooms: Vec<String>,
    /// How many recent messages to show on joining (at most 1000) [default: in a terminal,
    /// what came since you were last here; else 20].
    #[arg(long, value_parser = clap::value_parser!(u16).range(0..=i64::from(wire::MAX_HISTORY_REQUEST)))]
    pub history: Option<u16>,
    /// Print one JSON object per event instead of text.
    #[arg(long)]
    pub json: bool,
    /// Do not ring the terminal's bell when a message mentions your name.
    #[arg(long)]
    pub no_bell: bool,
    /// Seconds to wait, when input ends, for the relay to acknowledge what was sent (counted
    /// from the last acknowledgement).
    #[arg(long, default_value_t = join::DEFAULT_WAIT.as_secs())]
    pub wait: u64,
    /// Your key file: who you are to the relay [default: $XDG_CONFIG_HOME/urc/identity.key,
    /// i.e. ~/.config/urc/identity.key, made on first use].
    #[arg(long, env = "URC_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// The relay's key (as `urc serve --fingerprint` prints it): any other is refused
    /// [default: the key pinned for --server on first contact].
    #[arg(long, env = "URC_RELAY_KEY")]
    pub relay_key: Option<String>,
    /// Print your public key (what a relay's `--allow` file lists) and exit; the identity is
    /// made first if there is none yet.
    #[arg(long)]
    pub fingerprint: bool,
}

impl JoinArgs {
    /// The identity file: `--identity`, or the default one.
    ///
    /// # Errors
    /// When there is no `--identity` and the system has no configuration directory.
    pub fn identity_file(&self) -> Result<PathBuf, String> {
        self.identity
            .clone()
            .or_else(default_identity)
            .ok_or_else(|| "no place for the identity file: pass --identity FILE".to_owned())
    }

    /// Checks the arguments and makes the session's settings.
    ///
    /// # Errors
    /// A one-line explanation of what is wrong with the arguments.
    pub fn options(&self, offset: time::UtcOffset) -> Result<join::Options, String> {
        let name = match &self.name {
            Some(name) => name.clone(),
            None => login_name().ok_or("no --name given and no login name found: pass --name")?,
        };
        crate::proto::name::check_name(&name).map_err(|e| format!("invalid --name: {e}"))?;
        let servers = servers(&self.server)?;
        let stdout_tty = std::io::stdout().is_terminal();
        let interactive = !self.json && std::io::stdin().is_terminal() && stdout_tty;
        // https://no-color.org: any non-empty NO_COLOR turns colour off.
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        // In a terminal, without --history, the user picks up where they left this relay.
        let seen_file = match (interactive, self.history) {
            (true, None) => crate::term::seen::default_path().map(|p| (p, self.server.clone())),
            _ => None,
        };
        let mut rooms: Vec<String> = Vec::new();
        for room in &self.rooms {
            let name = room.trim().strip_prefix('#').unwrap_or(room.trim());
            crate::proto::room::check_room(name)
                .map_err(|e| format!("invalid --room {room}: {e}"))?;
            let key = crate::proto::room::room_key(name);
            if !rooms.contains(&key) {
                rooms.push(key);
            }
        }
        if rooms.len() > wire::MAX_ROOMS {
            return Err(format!(
                "{} rooms given with --room: a session may be in {} at most",
                rooms.len(),
                wire::MAX_ROOMS
            ));
        }
        let since = |room: &str| {
            (seen_file.as_ref())
                .and_then(|(path, relay)| crate::term::seen::load(path, relay, room))
        };
        let lobby = crate::proto::room::DEFAULT_ROOM;
        let rooms: Vec<(String, Option<client::Seen>)> = (rooms.into_iter())
            .map(|room| {
                let seen = since(&room);
                (room, seen)
            })
            .collect();
        let since = since(lobby);
        let seen = (seen_file.as_ref())
            .map(|(path, relay)| crate::term::seen::load_dms(path, relay))
            .unwrap_or_default();
        let identity_file = self.identity_file()?;
        let (identity, _) = crate::keyfile::load_or_create(&identity_file, "the identity file")?;
        let pins = crate::term::pins::default_path();
        // One key for every relay of the list: the one pinned for any of them.
        let relay_key = match &self.relay_key {
            Some(text) => Some(relay_key(text)?),
            None => match &pins {
                Some(path) => crate::term::pins::load_any(path, &servers.labels)?,
                None => None,
            },
        };
        // Pinned on first contact, unless the key was given.
        let pins = pins
            .filter(|_| self.relay_key.is_none())
            .map(|p| (p, servers.labels));
        Ok(join::Options {
            client: client::Config {
                relays: servers.addrs,
                rooms,
                name,
                history: self.history.unwrap_or(DEFAULT_JOIN_HISTORY),
                since,
                seen,
            },
            identity,
            relay_key,
            pins,
            seen_file,
            renderer: Renderer::new(offset, self.json)
                .with_color(stdout_tty && !no_color)
                .with_bell(!self.no_bell),
            interactive,
            wait: Duration::from_secs(self.wait),
        })
    }
}

/// `HOST`, `HOST:PORT`, `[IPV6]:PORT`, `[IPV6]` or a bare IPv6 address, resolved; the port
/// is [`DEFAULT_PORT`](crate::serve::server::DEFAULT_PORT) when not given. A host name with
/// several addresses gives its first IPv4 one, as the relay listens on IPv4 by default (see
/// [`resolve_all`] for them all).
///
/// # Errors
/// A one-line explanation, naming `flag`, when the text names no address.
pub fn resolve(flag: &str, text: &str) -> Result<SocketAddr, String> {
    Ok(resolve_all(flag, text)?[0])
}

/// Every address of `HOST`, `HOST:PORT`, `[IPV6]:PORT`, `[IPV6]` or a bare IPv6 address, as
/// [`resolve`] reads them: the IPv4 ones first (the relay listens on IPv4 by default), each
/// once, never none.
///
/// # Errors
/// A one-line explanation, naming `flag`, when the text names no address.
pub fn resolve_all(flag: &str, text: &str) -> Result<Vec<SocketAddr>, String> {
    use std::net::{IpAddr, Ipv6Addr};
    let port = crate::serve::server::DEFAULT_PORT;
    let bracketed = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse::<Ipv6Addr>().ok());
    let found: Vec<SocketAddr> = if let Ok(ip) = text.parse::<IpAddr>() {
        vec![(ip, port).into()]
    } else if let Some(ip) = bracketed {
        vec![(ip, port).into()]
    } else {
        let resolved = if text.contains(':') {
            text.to_socket_addrs()
        } else {
            (text, port).to_socket_addrs()
        };
        resolved
            .map_err(|e| format!("cannot resolve {flag} {text}: {e}: give HOST or HOST:PORT"))?
            .collect()
    };
    let mut all: Vec<SocketAddr> = Vec::new();
    for a in (found.iter().filter(|a| a.is_ipv4())).chain(found.iter().filter(|a| a.is_ipv6())) {
        if !all.contains(a) {
            all.push(*a);
        }
    }
    if all.is_empty() {
        return Err(format!(
            "{flag} {text} has no address: give HOST or HOST:PORT"
        ));
    }
    Ok(all)
}

/// Messages of history shown on joining when nothing else says how many.
pub const DEFAULT_JOIN_HISTORY: u16 = 20;

/// The user's login name, from the environment.
fn login_name() -> Option<String> {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|n| !n.is_empty())
}

mod bench_args;
pub use bench_args::{ATTACK_LOG, BenchArgs};

#[cfg(test)]
mod tests;
