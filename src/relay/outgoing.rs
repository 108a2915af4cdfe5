//! How datagrams leave the relay: replies within an unvalidated address's budget, errors,
//! broadcasts, and the fan-out of committed messages.

use std::net::SocketAddr;
use std::sync::Arc;

use uuid::Uuid;

use super::{Pending, Relay, Transmit};
use crate::message::Message;
use crate::wire::{ErrorCode, MESSAGES_HEADER, Packet, paginate};

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
                    self.transmits.push_back(Transmit { to, bytes });
                }
            } else {
                for bytes in &shared {
                    self.transmits.push_back(Transmit {
                        to,
                        bytes: bytes.clone(),
                    });
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
            self.transmits.push_back(Transmit {
                to,
                bytes: bytes.clone(),
            });
        }
    }

    pub(super) fn reply(&mut self, to: SocketAddr, packet: &Packet) {
        let bytes = packet.encode();
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
