//! The record of every datagram: a hash of their fates (the run's fingerprint), the last of
//! them for the report printed when a test fails, and each as it goes with `URC_SIM_TRACE`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use urc::client::Event;
use urc::proto::message::Message;
use urc::proto::wire::Packet;

use super::Net;

/// Datagrams kept for the report printed when a test fails.
const TRACE_LEN: usize = 60;

/// A datagram for the failure report.
#[derive(Debug)]
pub(super) struct Traced {
    at: Instant,
    from: Option<usize>,
    to: Option<usize>,
    /// The address that is no client's at the end that `from` or `to` calls the relay's,
    /// and whether the datagram came from it (see [`Net::inject_raw`]).
    stranger: Option<(SocketAddr, bool)>,
    bytes: Arc<[u8]>,
    fate: &'static str,
}

impl Net {
    pub(super) fn record(
        &mut self,
        from: Option<usize>,
        to: Option<usize>,
        bytes: &Arc<[u8]>,
        fate: &'static str,
    ) {
        self.record_with(from, to, None, bytes, fate);
    }

    /// Records a datagram between the relay and `addr`, an address that is no client's.
    pub(super) fn record_stranger(
        &mut self,
        addr: SocketAddr,
        inbound: bool,
        bytes: &Arc<[u8]>,
        fate: &'static str,
    ) {
        self.record_with(None, None, Some((addr, inbound)), bytes, fate);
    }

    fn record_with(
        &mut self,
        from: Option<usize>,
        to: Option<usize>,
        stranger: Option<(SocketAddr, bool)>,
        bytes: &Arc<[u8]>,
        fate: &'static str,
    ) {
        let at = (self.now - self.epoch).as_nanos() as u64;
        let ends = (from.map_or(0, |i| i + 1) as u64) << 32 | to.map_or(0, |i| i + 1) as u64;
        let kind = u64::from(bytes.get(2).copied().unwrap_or(0));
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for word in [at, ends, kind, bytes.len() as u64, fate.len() as u64] {
            // FNV-1a over the words.
            h = (h ^ word).wrapping_mul(0x100_0000_01b3);
        }
        // A sum, so that the relay's fan-out order (its client map's order, which differs from
        // run to run) does not count: each link's datagrams meet the same fates regardless.
        self.fingerprint = self.fingerprint.wrapping_add(h);
        if self.print_trace {
            let what = Packet::decode(bytes).map_or_else(|e| e.to_string(), |p| summary(&p));
            let (from, to) = self.ends(from, to, stranger);
            eprintln!(
                "{:>10.3?} {from} -> {to} {fate}: {what}",
                self.now - self.epoch,
            );
        }
        if self.trace.len() == TRACE_LEN {
            self.trace.pop_front();
        }
        self.trace.push_back(Traced {
            at: self.now,
            from,
            to,
            stranger,
            bytes: bytes.clone(),
            fate,
        });
    }

    pub(super) fn end_name(&self, end: Option<usize>) -> String {
        end.map_or("relay".to_owned(), |i| {
            self.nodes[i].client.name().to_owned()
        })
    }

    /// The names of a datagram's sender and receiver.
    fn ends(
        &self,
        from: Option<usize>,
        to: Option<usize>,
        stranger: Option<(SocketAddr, bool)>,
    ) -> (String, String) {
        match stranger {
            Some((addr, true)) => (format!("stranger {addr}"), "relay".to_owned()),
            Some((addr, false)) => ("relay".to_owned(), format!("stranger {addr}")),
            None => (self.end_name(from), self.end_name(to)),
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        eprintln!(
            "\n=== simulation failed: seed {} (rerun with URC_SIM_SEED={}), at {:?}, {:?}",
            self.seed,
            self.seed,
            self.elapsed(),
            self.cond
        );
        eprintln!("{}", self.status());
        if let Ok(who) = std::env::var("URC_SIM_DUMP") {
            for n in self.nodes.iter().filter(|n| n.client.name() == who) {
                eprintln!("{who} received:");
                for (at, p) in &n.received {
                    eprintln!("  {:>10.3?} {}", *at - self.epoch, summary(p));
                }
                eprintln!("{who} showed:");
                for (at, e) in &n.events {
                    let e = match e {
                        Event::Message {
                            room: _,
                            message,
                            history,
                            own,
                        } => format!("message {} history={history} own={own}", message.seq),
                        other => format!("{other:?}"),
                    };
                    eprintln!("  {:>10.3?} {e}", *at - self.epoch);
                }
            }
        }
        eprintln!("last datagrams:");
        for t in &self.trace {
            let what = match Packet::decode(&t.bytes) {
                Ok(p) => summary(&p),
                Err(e) => format!("undecodable: {e}"),
            };
            let (from, to) = self.ends(t.from, t.to, t.stranger);
            eprintln!(
                "  {:>10.3?} {from} -> {to} {}: {what}",
                t.at - self.epoch,
                t.fate
            );
        }
    }
}

/// A packet in one short line.
fn summary(p: &Packet) -> String {
    let seqs = |ms: &[Message]| {
        ms.iter()
            .map(|m| m.seq.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    match p {
        Packet::Join { name, history, .. } => format!("Join {name} history {history}"),
        Packet::Send { base, messages, .. } => {
            let each: Vec<String> = messages
                .iter()
                .map(|m| {
                    format!(
                        "csn {} room {} id {}",
                        m.csn,
                        m.room,
                        &m.id.to_string()[..8]
                    )
                })
                .collect();
            format!("Send base {base} [{}]", each.join(", "))
        }
        Packet::History {
            req,
            room,
            from,
            count,
            ..
        } => format!("History req {req} room {room} from {from} count {count}"),
        Packet::Who { req, room, .. } => format!("Who req {req} room {room}"),
        Packet::Ping { .. } => "Ping".into(),
        Packet::Leave { .. } => "Leave".into(),
        Packet::Welcome { name, latest, .. } => format!("Welcome {name} latest {latest}"),
        Packet::Error { code, id, .. } => format!("Error {code:?} id {}", &id.to_string()[..8]),
        Packet::Ack { acks } => {
            let each: Vec<String> = acks
                .iter()
                .map(|a| format!("csn {} seq {} id {}", a.csn, a.seq, &a.id.to_string()[..8]))
                .collect();
            format!("Ack [{}]", each.join(", "))
        }
        Packet::Messages { room, messages } => {
            format!("Messages room {room} [{}]", seqs(messages))
        }
        Packet::HistoryPage {
            room,
            req,
            first,
            last,
            messages,
        } => format!(
            "HistoryPage room {room} req {req} {first}..={last} [{}]",
            seqs(messages)
        ),
        Packet::Presence { room, changes } => {
            let each: Vec<String> = changes
                .iter()
                .map(|c| format!("{} joined={} {:?}", c.name, c.joined, c.reason))
                .collect();
            format!("Presence room {room} [{}]", each.join(", "))
        }
        Packet::Names {
            room,
            req,
            total,
            names,
        } => format!("Names room {room} req {req} total {total} {names:?}"),
        Packet::Pong { rooms } => {
            let rooms: Vec<String> = (rooms.iter())
                .map(|l| format!("room {} latest {} members {}", l.room, l.latest, l.members))
                .collect();
            format!("Pong {}", rooms.join(", "))
        }
        Packet::Enter { room, history, .. } => format!("Enter {room} history {history}"),
        Packet::Part { room, .. } => format!("Part room {room}"),
        Packet::Entered { room, name, latest } => {
            format!("Entered {name} as room {room} latest {latest}")
        }
        Packet::Parted { room } => format!("Parted room {room}"),
        Packet::NotEntered { name, code, .. } => format!("NotEntered {name} {code:?}"),
    }
}
