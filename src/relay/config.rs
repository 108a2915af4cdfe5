//! The relay's settings and their defaults.

use std::time::Duration;

/// Seconds of silence after which the relay drops a client, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The relay's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Silence after which a client is dropped.
    pub timeout: Duration,
    /// Most clients joined at once.
    pub max_clients: usize,
    /// Most rooms the relay has (those with a log included): an ENTER of a new room beyond
    /// them is refused.
    pub max_rooms: usize,
    /// Recent messages of a room kept in memory to answer history without reading the log.
    pub cache: usize,
    /// Bytes of recent messages kept in memory across every room: past them, the rooms'
    /// caches give back their oldest, each room down to its share.
    pub cache_bytes: usize,
    /// Recent message ids remembered so that a retransmission is stored once.
    pub dedup: usize,
    /// Most clients joined from one IP address at once.
    pub max_per_ip: usize,
    /// Messages a second a client may send on average.
    pub rate: f64,
    /// Messages a client may send at once, above the rate.
    pub burst: f64,
    /// History and who requests a second a client may make on average (twice that at once).
    pub request_rate: f64,
    /// Bytes a second of answers (history and names) a client may be sent on average; a
    /// quarter of a second's worth at once.
    pub bulk_rate: f64,
    /// The same for all the clients of one IP address (IPv6: one /64 network) together.
    pub bulk_rate_per_ip: f64,
    /// The same for all the clients of one IPv6 /48 network together (many /64s of one
    /// holder).
    pub bulk_rate_per_network: f64,
    /// The same for the whole relay.
    pub bulk_rate_total: f64,
    /// The only client keys admitted (`urc serve --allow`); `None` admits anyone.
    pub allowed: Option<std::collections::HashSet<crate::proto::secure::keys::PublicKey>>,
    /// The rooms' logs are shared with other relays (a replicated store such as NATS
    /// JetStream): a message's seq is the one the store gives it at commit
    /// ([`Relay::commit_stored`](super::Relay::commit_stored)), and what the others stored
    /// comes in through [`Relay::followed`](super::Relay::followed).
    pub shared: bool,
}

/// A mebibyte, for the rates in bytes.
const MIB: f64 = 1024.0 * 1024.0;

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: DEFAULT_TIMEOUT,
            max_clients: 10_000,
            max_rooms: 10_000,
            cache: 10_000,
            cache_bytes: 64 << 20,
            dedup: 100_000,
            max_per_ip: 64,
            rate: 20.0,
            burst: 100.0,
            request_rate: 5.0,
            bulk_rate: MIB,
            bulk_rate_per_ip: 4.0 * MIB,
            bulk_rate_per_network: 8.0 * MIB,
            bulk_rate_total: 32.0 * MIB,
            allowed: None,
            shared: false,
        }
    }
}
