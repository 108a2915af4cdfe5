//! The bench's books, shared by every simulated client: when each message was first sent,
//! the latency of each in-order delivery, and the counts of the whole run.

use std::time::Instant;

use hdrhistogram::Histogram;
use uuid::Uuid;

/// What every simulated client shares: the clock's origin, when each message was first sent,
/// and the counts and latencies of the whole run.
#[derive(Debug)]
pub(super) struct Ledger {
    /// The instant all times are counted from.
    epoch: Instant,
    /// Random per run, in every message id, so that ids never repeat across runs.
    nonce: u32,
    /// Per sender, per message index: nanoseconds after `epoch` it was first sent, plus one
    /// (0 while unsent).
    first_sent: Vec<Vec<u64>>,
    /// Send-to-deliver latencies in nanoseconds.
    pub(super) latency: Histogram<u64>,
    /// Per sender, the relay it sends to (its number among the relays of the run).
    homes: Vec<usize>,
    /// With several relays: the latencies of deliveries on another relay than the sender's.
    pub(super) remote: Option<Histogram<u64>>,
    /// Messages delivered in order, all receivers together.
    pub(super) delivered: u64,
    /// When the last of them was delivered.
    pub(super) last_delivery: Option<Instant>,
    /// Messages acknowledged, all senders together.
    pub(super) acked: u64,
    /// When the last of them was acknowledged.
    pub(super) last_ack: Option<Instant>,
    /// SENDs sent again after their timeout.
    pub(super) retransmits: u64,
    /// HISTORY requests made to fill gaps.
    pub(super) repairs: u64,
    /// Live messages received twice, or after their place was passed.
    pub(super) duplicates: u64,
    /// Messages out of order within one sender's stream, or not the bench's.
    pub(super) misordered: u64,
    /// Datagrams the socket would not take at once (counted as lost: retransmission and
    /// repair recover them).
    pub(super) send_errors: u64,
    /// ERRORs from the relay, and the first one's text.
    pub(super) errors: (u64, Option<String>),
}

impl Ledger {
    /// A ledger for senders that send `per_sender[i]` messages each, to relay `homes[i]` (of
    /// `relays`).
    pub(super) fn new(per_sender: &[u64], homes: Vec<usize>, relays: usize) -> Self {
        let histogram = || {
            Histogram::new_with_bounds(1_000, 600_000_000_000, 3).expect("valid histogram bounds")
        };
        Ledger {
            epoch: Instant::now(),
            // Never 0, so that the nil id is never the bench's.
            nonce: u32::from_be_bytes(Uuid::new_v4().as_bytes()[..4].try_into().expect("4")) | 1,
            first_sent: per_sender
                .iter()
                .map(|&n| vec![0; usize::try_from(n).expect("fits memory")])
                .collect(),
            latency: histogram(),
            homes,
            remote: (relays > 1).then(histogram),
            delivered: 0,
            last_delivery: None,
            acked: 0,
            last_ack: None,
            retransmits: 0,
            repairs: 0,
            duplicates: 0,
            misordered: 0,
            send_errors: 0,
            errors: (0, None),
        }
    }

    /// The id of a sender's message: the run's nonce and the sender in the high half, the
    /// message's index in the low half, so that a receiver knows whose and which it is.
    pub(super) fn id(&self, sender: u32, index: u64) -> Uuid {
        Uuid::from_u64_pair((u64::from(self.nonce) << 32) | u64::from(sender), index)
    }

    /// The sender and index an id of this run stands for.
    pub(super) fn parse(&self, id: Uuid) -> Option<(u32, u64)> {
        let (high, index) = id.as_u64_pair();
        ((high >> 32) as u32 == self.nonce).then_some((high as u32, index))
    }

    pub(super) fn sent(&mut self, now: Instant, sender: u32, index: u64) {
        let slot = &mut self.first_sent[sender as usize][index as usize];
        if *slot == 0 {
            *slot = now.saturating_duration_since(self.epoch).as_nanos() as u64 + 1;
        }
    }

    /// A delivery of `sender`'s message `index` by a client of relay `relay`.
    pub(super) fn deliver(&mut self, now: Instant, sender: u32, index: u64, relay: usize) {
        self.delivered += 1;
        self.last_delivery = Some(now);
        let sent = self.first_sent[sender as usize][index as usize];
        if sent > 0 {
            let at = now.saturating_duration_since(self.epoch).as_nanos() as u64 + 1;
            let took = at.saturating_sub(sent).max(1);
            self.latency.saturating_record(took);
            if let Some(remote) = &mut self.remote
                && self.homes.get(sender as usize) != Some(&relay)
            {
                remote.saturating_record(took);
            }
        }
    }

    pub(super) fn error(&mut self, message: String) {
        self.errors.0 += 1;
        self.errors.1.get_or_insert(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_sender_and_index() {
        let ledger = Ledger::new(&[3, 3], vec![0, 0], 1);
        let id = ledger.id(1, 2);
        assert_eq!(ledger.parse(id), Some((1, 2)));
        assert_eq!(ledger.parse(Uuid::nil()), None);
    }
}
