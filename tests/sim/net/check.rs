//! The invariants the tests check once the net has settled: the log has no gap and no repeat,
//! each client showed the live stream whole and as stored, and every message sent is stored once.

use std::collections::{HashMap, HashSet};

use urc::proto::message::Message;
use uuid::Uuid;

use super::Net;

impl Net {
    /// Checks the log: seqs 1, 2, 3… without a gap, each id once, times never going back.
    pub fn check_store(&self) {
        let mut ids = HashSet::new();
        for (k, m) in self.store.iter().enumerate() {
            assert_eq!(m.seq, k as u64 + 1, "the log's seqs have a gap");
            assert!(
                ids.insert(m.id),
                "message {} is stored twice (again as {})",
                m.id,
                m.seq
            );
        }
        assert!(
            self.store.windows(2).all(|w| w[0].time <= w[1].time),
            "times go back"
        );
    }

    /// The log of `room`.
    pub fn log(&self, room: &str) -> &[Message] {
        match room {
            urc::proto::room::DEFAULT_ROOM => &self.store,
            room => self.rooms.get(room).map_or(&[], Vec::as_slice),
        }
    }

    /// Checks every room's log as [`Net::check_store`] does the lobby's: seqs 1, 2, 3… of
    /// its own, and each id once in all the logs.
    pub fn check_rooms(&self) {
        self.check_store();
        let mut ids: HashSet<Uuid> = self.store.iter().map(|m| m.id).collect();
        for (room, log) in &self.rooms {
            for (k, m) in log.iter().enumerate() {
                assert_eq!(m.seq, k as u64 + 1, "the log of {room} has a gap");
                assert!(ids.insert(m.id), "message {} is stored twice", m.id);
            }
        }
    }

    /// Checks that client `i` showed the live stream of `room` from when it entered it to the
    /// room's latest seq, each message once, as stored, and nothing of any other room but
    /// those it is in.
    pub fn check_room(&self, i: usize, room: &str) {
        let node = &self.nodes[i];
        let name = node.client.name();
        let log = self.log(room);
        let from = node.entered_at(room) + 1;
        let live: Vec<_> = (node.live().into_iter())
            .filter(|s| s.room == room)
            .collect();
        let seqs: Vec<u64> = live.iter().map(|s| s.message.seq).collect();
        let want: Vec<u64> = (from..=log.len() as u64).collect();
        assert_eq!(seqs, want, "{name}'s live stream of {room}");
        for s in &live {
            assert_eq!(
                &s.message,
                &log[s.message.seq as usize - 1],
                "{name} in {room}"
            );
        }
    }

    /// Checks that client `i` showed the live stream from its joining through `through`, each
    /// message once, as stored, marked own exactly when it sent it.
    pub fn check_live(&self, i: usize, through: u64) {
        let node = &self.nodes[i];
        let name = node.client.name();
        let live = node.live();
        let from = node.joined_at() + 1;
        let seqs: Vec<u64> = live.iter().map(|s| s.message.seq).collect();
        let want: Vec<u64> = (from..=through).collect();
        if seqs != want {
            let dup = seqs.windows(2).find(|w| w[1] <= w[0]);
            let gap = seqs.windows(2).find(|w| w[1] > w[0] + 1);
            panic!(
                "{name} showed {} live messages where {from}..={through} was due; first repeat {dup:?}, first gap {gap:?}, first {:?}, last {:?}",
                seqs.len(),
                seqs.first(),
                seqs.last()
            );
        }
        let sent: HashSet<Uuid> = node.sent.iter().map(|(id, _)| *id).collect();
        for s in &live {
            let stored = &self.store[s.message.seq as usize - 1];
            assert_eq!(
                &s.message, stored,
                "{name} showed a message unlike the stored one"
            );
            assert_eq!(
                s.own,
                sent.contains(&s.message.id),
                "{name}: own flag of {}",
                s.message.seq
            );
        }
    }

    /// Checks, once every outbox is empty, that every message sent is stored once, with its
    /// text and its sender's name, in the order its sender sent it, and that the log holds
    /// nothing else. A stopped client (frozen, or replaced by [`Net::restart_client`]) may
    /// have taken what was never acknowledged to it down with it.
    pub fn check_sent_are_stored(&self) {
        let logs = std::iter::once(("lobby", &self.store))
            .chain(self.rooms.iter().map(|(r, log)| (r.as_str(), log)));
        let by_id: HashMap<Uuid, (&str, &Message)> = logs
            .flat_map(|(room, log)| log.iter().map(move |m| (m.id, (room, m))))
            .collect();
        let mut sent_count = 0;
        for node in &self.nodes {
            let name = node.client.name();
            if node.live {
                assert_eq!(
                    node.client.unacked(),
                    0,
                    "{name} still has messages to send"
                );
            }
            let mut last_seq: HashMap<&str, u64> = HashMap::new();
            for (id, text) in &node.sent {
                let Some(&(room, m)) = by_id.get(id) else {
                    assert!(
                        !node.live && node.ack_time(*id).is_none(),
                        "{name}'s acknowledged message {id} is not stored"
                    );
                    continue;
                };
                assert_eq!(&m.text, text);
                assert_eq!(&m.from, name);
                let last = last_seq.entry(room).or_default();
                assert!(m.seq > *last, "{name}'s messages are stored out of order");
                *last = m.seq;
                sent_count += 1;
            }
        }
        let stored: usize = self.rooms.values().map(Vec::len).sum();
        assert_eq!(
            self.store.len() - self.preloaded + stored,
            sent_count,
            "the log holds messages nobody sent (or sent ones twice)"
        );
    }
}
