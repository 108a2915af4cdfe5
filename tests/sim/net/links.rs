//! The datagrams in flight: each direction between a client and the relay is a link with its
//! own random stream, which decides whether a datagram is lost, doubled or held back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use urc::proto::wire::Packet;

use super::{Net, Rng};

/// One direction between a client and the relay.
#[derive(Debug)]
pub(super) struct Link {
    /// Tie-breaker in the queue, so that equal delivery times keep a fixed order.
    id: usize,
    /// This link's own random stream: what happens on one link never shifts another's.
    rng: Rng,
    /// Datagrams put on the link so far.
    count: u64,
}

/// A datagram in flight.
#[derive(Debug)]
pub(super) struct Flight {
    /// The client it goes to, or `None` for the relay.
    to: Option<usize>,
    /// The client it comes from, or `None` for the relay.
    from: Option<usize>,
    /// The client's end when it was sent: the source address of a datagram to the relay (what
    /// the relay sees, even if the client has moved since), the destination of one from it
    /// (whoever has that address when it arrives gets it, or nobody).
    addr: SocketAddr,
    bytes: Arc<[u8]>,
    /// The relay process that sent it (see [`Net::relay_epoch`]); 0 from a client.
    epoch: u64,
    /// The relay's end: the address it was sent to (the client's relay then), or from.
    relay: SocketAddr,
}

impl Net {
    /// A new link, with a random stream of its own drawn from the net's seed: a link added
    /// later never shifts what happens on the others.
    pub(super) fn link(&mut self, id: usize) -> Link {
        Link {
            id,
            rng: Rng::new(self.link_seeds.next_u64()),
            count: 0,
        }
    }

    /// Hands a datagram that arrived to its end: the relay, or whoever has its address now.
    pub(super) fn deliver(&mut self, f: Flight) {
        match f.to {
            None => {
                let i = f.from.expect("from a client");
                let serving = self.serving.map(|k| self.relay_addrs[k]);
                if serving != Some(f.relay) {
                    self.record(Some(i), None, &f.bytes, "lost: no relay at its address");
                    if self.refuse_unserved && self.nodes[i].live {
                        // The system says so at once (the ICMP's own trip is not simulated).
                        self.nodes[i].client.unreachable(self.now);
                        self.drain_client(i);
                    }
                    return;
                }
                self.relay_receive(i, f.addr, &f.bytes, "delivered");
            }
            Some(_) => {
                let Some(&i) = self.by_addr.get(&f.addr) else {
                    // The client left the address while the datagram was on its way.
                    self.stale += 1;
                    let gone = self.left_addrs.get(&f.addr).copied();
                    return self.record(None, gone, &f.bytes, "lost: stale address");
                };
                if !self.nodes[i].live {
                    return self.record(None, Some(i), &f.bytes, "unheard");
                }
                if self.nodes[i].client.relay().is_some_and(|r| r != f.relay) {
                    // From a relay the client no longer uses: its socket is connected to
                    // another.
                    return self.record(None, Some(i), &f.bytes, "lost: not its relay's");
                }
                if f.epoch < self.nodes[i].relay_epoch {
                    // Sealed by a relay process before the one the client has a session with
                    // now: its keys are gone.
                    return self.record(None, Some(i), &f.bytes, "lost: an earlier relay's");
                }
                self.nodes[i].relay_epoch = f.epoch;
                self.record(None, Some(i), &f.bytes, "delivered");
                let packet = Packet::decode(&f.bytes).expect("the relay sends valid datagrams");
                let node = &mut self.nodes[i];
                node.received.push((self.now, packet));
                node.client.handle(self.now, &f.bytes);
                self.drain_client(i);
            }
        }
    }

    /// Puts a datagram on the link between the relay and a client, to meet its fate.
    pub(super) fn put(
        &mut self,
        from: Option<usize>,
        to: Option<usize>,
        bytes: Arc<[u8]>,
        extra: Duration,
    ) {
        let i = from.or(to).expect("one end is a client");
        let cond = self.cond;
        let now = self.now;
        let epoch = if from.is_none() { self.relay_epoch } else { 0 };
        let serving = self.serving.map(|k| self.relay_addrs[k]);
        if from.is_none() && serving.is_none() {
            return self.record(from, to, &bytes, "lost: the relay is at no address");
        }
        let node = &mut self.nodes[i];
        // What the relay sends comes from where it is; what a client sends goes to its relay.
        let relay = match from {
            None => serving.expect("checked"),
            Some(_) => (node.client.relay()).unwrap_or(super::relay_addr(0)),
        };
        let addr = node.addr;
        if from.is_some() && !node.live {
            return;
        }
        if to.is_some() && node.deaf {
            return self.record(from, to, &bytes, "unheard");
        }
        if from.is_some() && node.mute {
            return self.record(from, to, &bytes, "lost");
        }
        let link = if from.is_some() {
            &mut node.up
        } else {
            &mut node.down
        };
        if link.rng.percent(cond.loss) {
            return self.record(from, to, &bytes, "lost");
        }
        let copies = if link.rng.percent(cond.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = now + cond.delay + extra + link.rng.upto(cond.jitter);
            link.count += 1;
            let flight = Flight {
                to,
                from,
                addr,
                bytes: bytes.clone(),
                epoch,
                relay,
            };
            self.queue.insert((at, link.id, link.count), flight);
        }
    }
}
