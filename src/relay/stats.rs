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
    /// Presence from other relays of a shared store left out: of a room past `--max-rooms`.
    pub presence_dropped: u64,
}

/// A count's name in [`Stats::counts`] and where it is kept.
type Count = (&'static str, fn(&mut Stats) -> &mut u64);

/// Every count, by the name the relay's last log line gives it (all but `stalled`, a time).
const COUNTS: [Count; 18] = [
    ("malformed", |s| &mut s.malformed),
    ("unauthorised", |s| &mut s.unauthorised),
    ("stored", |s| &mut s.stored),
    ("duplicates", |s| &mut s.duplicates),
    ("out_of_order", |s| &mut s.out_of_order),
    ("refused", |s| &mut s.refused),
    ("joins_refused", |s| &mut s.joins_refused),
    ("timed_out", |s| &mut s.timed_out),
    ("challenges", |s| &mut s.challenges),
    ("handshakes", |s| &mut s.handshakes),
    ("over_budget", |s| &mut s.over_budget),
    ("unsealed", |s| &mut s.unsealed),
    ("unknown", |s| &mut s.unknown),
    ("unsealable", |s| &mut s.unsealable),
    ("stale", |s| &mut s.stale),
    ("rate_limited", |s| &mut s.rate_limited),
    ("stalls", |s| &mut s.stalls),
    ("presence_dropped", |s| &mut s.presence_dropped),
];

impl Stats {
    /// Every count as `name=value`, space-separated: the relay logs this as it stops, and
    /// `urc bench` reads it back ([`Stats::from_counts`]) from a relay it started.
    pub fn counts(&self) -> String {
        let mut copy = self.clone();
        COUNTS
            .iter()
            .map(|(name, field)| format!("{name}={}", field(&mut copy)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The counts of a [`Stats::counts`] line (anything around them ignored); `None` when a
    /// count is missing.
    pub fn from_counts(line: &str) -> Option<Stats> {
        let mut stats = Stats::default();
        for (name, field) in COUNTS {
            let value = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))?;
            *field(&mut stats) = value.parse().ok()?;
        }
        Some(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_back_as_logged() {
        let mut stats = Stats::default();
        for (k, (_, field)) in COUNTS.iter().enumerate() {
            *field(&mut stats) = 100 + k as u64;
        }
        let line = format!("2026-12-03 INFO relay stopped; counted {}", stats.counts());
        assert_eq!(Stats::from_counts(&line), Some(stats));
        assert_eq!(Stats::from_counts("relay stopped; counted stored=3"), None);
    }
}
