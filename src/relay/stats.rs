//! The counts of what the relay saw, for its logs and the bench.

/// Counts of what the relay saw, for its logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams that could not be decoded (frames and the packets in them).
    pub malformed: u64,
    /// Datagrams with a missing session or a wrong token.
    pub unauthorised: u64,
    /// Messages stored.
    pub stored: u64,
    /// Retransmitted messages recognised and not stored again.
    pub duplicates: u64,
    /// Messages that arrived ahead of an earlier one of the same sender (they wait for it, or
    /// are dropped when they cannot).
    pub out_of_order: u64,
    /// Messages refused for their text.
    pub refused: u64,
    /// Joins refused.
    pub joins_refused: u64,
    /// Clients dropped for silence.
    pub timed_out: u64,
    /// Challenges sent to addresses that made a handshake without a good cookie.
    pub challenges: u64,
    /// Handshakes made.
    pub handshakes: u64,
    /// Answers not sent to an unvalidated address because they would have exceeded three
    /// times what it sent.
    pub over_budget: u64,
    /// Handshakes and DATA that did not authenticate (forged, changed, or for other keys of
    /// the relay's), and DATA opened before (replayed, duplicated).
    pub unsealed: u64,
    /// DATA for keys the relay does not hold (after a restart, or expired), answered UNKNOWN.
    pub unknown: u64,
    /// Packets dropped at sending for want of a transport of their key to seal them with
    /// (expired, pushed out, or never made).
    pub unsealable: u64,
    /// Packets not sent because the session they were queued for ended (or was replaced)
    /// before they left.
    pub stale: u64,
    /// Messages, requests, joins and handshakes refused for coming too fast (or, for
    /// handshakes, while the relay holds as many transports as it may).
    pub rate_limited: u64,
    /// Times the relay found it had not run for a while (a tick more than [`STALL`](super::STALL) late).
    pub stalls: u64,
    /// How long, in all, it had not run then.
    pub stalled: std::time::Duration,
}
