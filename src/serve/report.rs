//! What the relay's log says of its state, now and then: the datagrams dropped or refused, and a one-line summary.

use std::time::Duration;

use crate::relay::{Relay, Stats};

/// How often, at most, dropped and refused datagrams are summed up in the relay's log.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);
/// How often the relay logs a one-line summary of its state.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Logs, at most once per [`REPORT_EVERY`], what was dropped or refused since `before`;
/// returns the counts as they are now.
pub fn drops(relay: &mut Relay, before: Stats) -> Stats {
    let now = relay.stats().clone();
    let delta = |f: fn(&Stats) -> u64| f(&now) - f(&before);
    let counts = [
        ("malformed", delta(|s| s.malformed)),
        ("wrong or missing session", delta(|s| s.unauthorised)),
        ("not opened (forged or replayed)", delta(|s| s.unsealed)),
        ("for keys the relay does not hold", delta(|s| s.unknown)),
        ("over the 3x budget", delta(|s| s.over_budget)),
        ("rate limited", delta(|s| s.rate_limited)),
        ("joins refused", delta(|s| s.joins_refused)),
        ("texts refused", delta(|s| s.refused)),
    ];
    if counts.iter().any(|(_, n)| *n > 0) {
        let summary: Vec<String> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        let last = relay
            .take_last_dropped()
            .map(|d| format!("; last from {}: {}", d.from, d.why))
            .unwrap_or_default();
        tracing::warn!(
            "in the last {}s: {}{last}",
            REPORT_EVERY.as_secs(),
            summary.join(", ")
        );
    }
    now
}

/// Logs one line: clients, messages a second, datagrams dropped and packets not sent since
/// `before`.
pub fn summary(relay: &Relay, before: Stats) -> Stats {
    let now = relay.stats().clone();
    let dropped = |s: &Stats| {
        s.malformed + s.unauthorised + s.over_budget + s.rate_limited + s.unsealed + s.unknown
    };
    // Not sent: queued for a session that ended before they left, or for keys gone.
    let unsent = |s: &Stats| s.stale + s.unsealable;
    tracing::info!(
        "{} clients; {:.1} messages/s over the last {}s; {} rooms, {} messages stored in all; {} datagrams dropped; {} packets not sent (their session or keys gone); {} KiB of messages waiting",
        relay.clients().len(),
        (now.stored - before.stored) as f64 / SUMMARY_EVERY.as_secs_f64(),
        SUMMARY_EVERY.as_secs(),
        relay.room_count(),
        relay.room_latest().map(|(_, seq)| seq).sum::<u64>(),
        dropped(&now) - dropped(&before),
        unsent(&now) - unsent(&before),
        relay.parked_bytes() / 1024
    );
    now
}
