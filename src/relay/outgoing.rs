//! How datagrams leave the relay: replies within an unvalidated address's budget, errors,
//! broadcasts, and the fan-out of committed messages.

use std::net::SocketAddr;
use std::sync::Arc;

use uuid::Uuid;

use super::{Pending, Relay, Transmit};
use crate::message::Message;
use crate::wire::{ErrorCode, MESSAGES_HEADER, Packet, Proof, paginate};

impl Relay {
    /// Sends each joined client the messages of `batch` that it did not send itself.
    pub(super) fn fan_out(&mut self, batch: &[Pending]) {
        let senders: Vec<SocketAddr> = batch.iter().map(|p| p.sender).collect();
        let everyone: Vec<Message> = batch.iter().map(|p| p.message.clone()).collect();
        // Encoded once for every recipient that sent nothing in this batch.
        let shared = encode_messages(&everyone);
        let recipients: Vec<SocketAddr> = self.clients.iter().map(|c| *c.key()).collect();
        for to in recipients {
            if senders.contains(&to) {
                let others: Vec<Message> = batch
                    .iter()
                    .filter(|p| p.sender != to)
                    .map(|p| p.message.clone())
                    .collect();
                for bytes in encode_messages(&others) {
                    self.stamp_and_send(to, bytes);
                }
            } else {
                for bytes in &shared {
                    self.stamp_and_send(to, bytes.clone());
                }
            }
        }
    }

    /// Sends `packet` to every joined client but `except`.
    pub(super) fn broadcast(&mut self, except: Option<SocketAddr>, packet: &Packet) {
        let bytes: Arc<[u8]> = packet.encode().into();
        let recipients: Vec<SocketAddr> = self
            .clients
            .iter()
            .map(|c| *c.key())
            .filter(|a| Some(*a) != except)
            .collect();
        for to in recipients {
            self.stamp_and_send(to, bytes.clone());
        }
    }

    /// The proof a datagram to `to` carries: the instance of the JOIN being answered, or the
    /// session's token, or zeros for an address without a session.
    fn proof_for(&self, to: SocketAddr) -> Proof {
        match self.answering {
            Some((addr, proof)) if addr == to => proof,
            _ => self.clients.get(&to).map(|s| s.proof()).unwrap_or_default(),
        }
    }

    /// Queues `bytes` (encoded once, maybe for many) to `to`, with `to`'s proof written in.
    fn stamp_and_send(&mut self, to: SocketAddr, bytes: Arc<[u8]>) {
        let mut own = bytes.to_vec();
        self.proof_for(to).write(&mut own);
        self.transmits.push_back(Transmit {
            to,
            bytes: own.into(),
        });
    }

    pub(super) fn reply(&mut self, to: SocketAddr, packet: &Packet) {
        let mut bytes = packet.encode();
        self.proof_for(to).write(&mut bytes);
        if let Some((addr, left)) = &mut self.budget
            && *addr == to
        {
            if bytes.len() > *left {
                self.stats.over_budget += 1;
                return;
            }
            *left -= bytes.len();
        }
        self.transmits.push_back(Transmit {
            to,
            bytes: bytes.into(),
        });
    }

    pub(super) fn error(&mut self, to: SocketAddr, code: ErrorCode, id: Uuid, message: String) {
        self.reply(to, &Packet::Error { code, id, message });
    }
}

/// The datagrams carrying `messages` as live fan-out.
fn encode_messages(messages: &[Message]) -> Vec<Arc<[u8]>> {
    paginate(messages, MESSAGES_HEADER)
        .into_iter()
        .map(|page| {
            Packet::Messages {
                messages: page.to_vec(),
            }
            .encode()
            .into()
        })
        .collect()
}
