//! The relay's side of the net, doing what `urc serve` does around the `Relay` core: it hands it
//! datagrams, sends what it transmits, writes the log (which can fail, aborting the batch),
//! serves its log reads, and restarts it from the log's tail.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use urc::proto::message::Message;
use urc::proto::name::name_key;
use urc::proto::room::DEFAULT_ROOM;
use urc::proto::wire::{MAX_DATAGRAM, Packet};
use urc::relay::Relay;

use super::{Net, Restart};

/// What the relay and an address that is no client's exchanged (see [`Net::inject_raw`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes the relay received from the address.
    pub received: usize,
    /// Bytes the relay sent to it.
    pub sent: usize,
    /// Datagrams the relay sent to it.
    pub datagrams_sent: usize,
}

impl Net {
    /// Hands the relay a datagram as if from client `i`'s address, now: a forged one, or one
    /// no client of this crate sends.
    pub fn inject_to_relay(&mut self, i: usize, packet: &Packet) {
        let bytes: Arc<[u8]> = packet.encode().into();
        let addr = self.nodes[i].addr;
        self.relay_receive(i, addr, &bytes, "injected");
        self.drain_relay();
    }

    /// Hands the relay `bytes` from `from`, now: anything at all (garbage, a forged packet), from
    /// any address, a client's or not. What the relay sends back to an address that is no
    /// client's goes nowhere and is counted, with what came from there, in [`Net::strangers`].
    pub fn inject_raw(&mut self, from: SocketAddr, bytes: &[u8]) {
        let bytes: Arc<[u8]> = bytes.into();
        match self.by_addr.get(&from).copied() {
            Some(i) => self.record(Some(i), None, &bytes, "forged"),
            None => {
                self.strangers.entry(from).or_default().received += bytes.len();
                self.record_stranger(from, true, &bytes, "forged");
            }
        }
        self.relay.handle(self.now, self.wall(), from, &bytes);
        if self.relay.has_appends() && self.next_flush.is_none() {
            self.next_flush = Some(self.now + self.flush_delay);
        }
        self.drain_relay();
    }

    /// One more relay address in the cluster (nobody there until [`Net::fail_over`] or
    /// [`Net::serving`] says so); returns it. Clients started from now on are given it.
    pub fn add_relay(&mut self) -> SocketAddr {
        let addr = super::relay_addr(self.relay_addrs.len());
        self.relay_addrs.push(addr);
        addr
    }

    /// The relay process dies and a new one starts at the cluster's `k`th address, from the
    /// log's tail (the cluster's log: the same seqs); nothing listens at the old one any more.
    pub fn fail_over(&mut self, how: Restart, k: usize) {
        assert!(k < self.relay_addrs.len(), "a relay of the cluster");
        self.restart_relay(how);
        self.serving = Some(k);
    }

    /// The relay process restarts: a new relay from the log's tail; what was in flight stays
    /// in flight, the clients keep running.
    pub fn restart_relay(&mut self, how: Restart) {
        match how {
            Restart::Clean => {
                self.commit();
                // Stopped cleanly (SIGTERM), it tells every session before it goes.
                self.relay.stopping();
                self.drain_relay();
            }
            Restart::Crash => self.next_flush = None,
        }
        self.relay_epoch += 1;
        if self.print_trace {
            eprintln!("{:>10.3?} relay restarts ({how:?})", self.elapsed());
        }
        let keep = self.relay_config.dedup.max(self.relay_config.cache);
        let tail = |log: &[Message]| log[log.len().saturating_sub(keep)..].to_vec();
        self.relay = Relay::new(self.relay_config.clone(), tail(&self.store));
        for (room, log) in &self.rooms {
            self.relay.restore_room(room, tail(log), 1);
        }
    }

    /// The relay takes a datagram of client `i`'s, from `from`; what it accepts waits for the
    /// next flush of the log.
    pub(super) fn relay_receive(
        &mut self,
        i: usize,
        from: SocketAddr,
        bytes: &Arc<[u8]>,
        fate: &'static str,
    ) {
        self.record(Some(i), None, bytes, fate);
        let node = &mut self.nodes[i];
        node.last_heard_by_relay = Some(self.now);
        let packet = Packet::decode(bytes).expect("a valid datagram");
        node.reached_relay.push((self.now, packet));
        self.relay.handle(self.now, self.wall(), from, bytes);
        if self.relay.has_appends() && self.next_flush.is_none() {
            self.next_flush = Some(self.now + self.flush_delay);
        }
    }

    /// Writes what the relay accepted to the log and commits it.
    pub(super) fn commit(&mut self) {
        self.next_flush = None;
        // The flush ends the relay's turn.
        self.relay.end_turn(self.now, self.wall());
        if self.store_fails {
            self.aborts += 1;
            return self.relay.abort("No space left on device (os error 28)");
        }
        let appends: Vec<(String, Message)> = (self.relay.appends())
            .map(|(room, m)| (room.to_owned(), m.clone()))
            .collect();
        for (room, m) in appends {
            let log = match room.as_str() {
                DEFAULT_ROOM => &mut self.store,
                _ => self.rooms.entry(room.clone()).or_default(),
            };
            let want = log.len() as u64 + 1;
            assert_eq!(m.seq, want, "the relay appends each room in order ({room})");
            log.push(m);
        }
        self.relay.commit();
    }

    /// Serves the relay's log reads and puts what it sends on the links, checking each datagram
    /// on its way: within the size bound, valid, and never a client's own messages as fan-out.
    pub(super) fn drain_relay(&mut self) {
        loop {
            if let Some(read) = self.relay.poll_read() {
                self.log_reads += 1;
                let log = match read.room.as_str() {
                    DEFAULT_ROOM => &self.store,
                    room => self.rooms.get(room).expect("a room the relay stored"),
                };
                let messages: Vec<Message> = log
                    .iter()
                    .filter(|m| read.first <= m.seq && m.seq <= read.last)
                    .cloned()
                    .collect();
                self.relay.serve_read(&read, &messages);
                continue;
            }
            let Some(t) = self.relay.poll_transmit() else {
                break;
            };
            assert!(
                t.bytes.len() <= MAX_DATAGRAM,
                "the relay sent {} bytes",
                t.bytes.len()
            );
            self.largest_from_relay = self.largest_from_relay.max(t.bytes.len());
            let packet = Packet::decode(&t.bytes).expect("the relay sends valid datagrams");
            self.from_relay.push((self.now, t.to, packet.clone()));
            let Some(&i) = self.by_addr.get(&t.to) else {
                if let Some(traffic) = self.strangers.get_mut(&t.to) {
                    traffic.sent += t.bytes.len();
                    traffic.datagrams_sent += 1;
                    self.record_stranger(t.to, false, &t.bytes, "sent to a stranger");
                    continue;
                }
                let gone = *self
                    .left_addrs
                    .get(&t.to)
                    .expect("the relay sends to clients and to who wrote to it only");
                self.stale += 1;
                self.record(None, Some(gone), &t.bytes, "lost: stale address");
                continue;
            };
            if let Packet::Messages { room: _, messages } = &packet {
                let me = name_key(self.nodes[i].client.name());
                for m in messages {
                    assert_ne!(
                        name_key(&m.from),
                        me,
                        "the relay sent {} its own message {} as fan-out",
                        self.nodes[i].client.name(),
                        m.seq
                    );
                }
            }
            let node = &mut self.nodes[i];
            let extra = match packet {
                Packet::Welcome { .. } if node.lose_welcomes > 0 => {
                    node.lose_welcomes -= 1;
                    self.record(None, Some(i), &t.bytes, "lost");
                    continue;
                }
                Packet::Welcome { .. } => node.welcome_delay,
                _ => Duration::ZERO,
            };
            self.put(None, Some(i), t.bytes, extra);
        }
    }
}
