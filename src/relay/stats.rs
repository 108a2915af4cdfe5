//! The counts of what the relay saw, for its logs and the bench.

/// Counts of what the relay saw, for its logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams that could not be decoded.
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
    /// Datagrams that were no handshake nor a DATA that opened (forged, replayed, changed,
    /// or for keys the relay does not hold).
    pub unsealed: u64,
    /// Packets dropped at sending for want of a transport to seal them with (expired).
    pub unsealable: u64,
    /// Packets not sent because the session they were queued for ended (or was replaced)
    /// before they left.
    pub stale: u64,
    /// Messages, requests and joins refused for coming too fast.
    pub rate_limited: u64,
    /// Times the relay found it had not run for a while (a tick more than [`STALL`](super::STALL) late).
    pub stalls: u64,
    /// How long, in all, it had not run then.
    pub stalled: std::time::Duration,
}
