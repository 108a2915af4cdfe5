//! A packet decoded and handed to the rule that answers it (a JOIN of a client from before rooms told to update), PING answered with the session's rooms, and a leaving message checked.

use std::net::SocketAddr;
use std::time::Instant;

use uuid::Uuid;

use super::Relay;
use crate::proto::message::{Millis, check_text};
use crate::proto::secure::keys::PublicKey;
use crate::proto::wire::{ErrorCode, LeaveReason, MAX_LEAVE_BYTES, Packet};

impl Relay {
    pub(super) fn dispatch(
        &mut self,
        now: Instant,
        wall: Millis,
        from: SocketAddr,
        bytes: &[u8],
        peer: Option<PublicKey>,
    ) {
        let packet = match Packet::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed += 1;
                if is_old_join(bytes) && !self.clients.contains_key(&from) {
                    // A client from before rooms (its JOIN ends before the room), at an
                    // address without a session: told why it gets no WELCOME, once a JOIN.
                    let message = "this relay speaks urc protocol 2 with rooms, which your client does not: update urc".to_owned();
                    self.error(from, ErrorCode::Malformed, Uuid::nil(), message);
                }
                return self.dropped(from, e.to_string());
            }
        };
        match packet {
            Packet::Join {
                name,
                history,
                instance,
                room,
            } => {
                self.join(now, from, name, history, instance, room, peer);
            }
            Packet::Send {
                token,
                base,
                messages,
            } => {
                if self.authorise(now, from, &token, peer) {
                    for m in messages {
                        if !self.send(now, wall, from, m.csn, base, m.room, m.id, m.text) {
                            // It could not wait, and those after it in the datagram, further
                            // ahead, could not either: they cost nothing more.
                            self.stats.out_of_order += 1;
                            break;
                        }
                    }
                }
            }
            Packet::History {
                token,
                req,
                room,
                from: first,
                count,
            } => {
                if self.authorise(now, from, &token, peer) && self.request_allowed(now, from) {
                    self.confirm(from, room);
                    self.history(from, req, room, first, count);
                }
            }
            Packet::Who { token, req, room } => {
                if self.authorise(now, from, &token, peer) && self.request_allowed(now, from) {
                    self.confirm(from, room);
                    self.who(from, req, room);
                }
            }
            Packet::Ping { token } => {
                if self.authorise(now, from, &token, peer) {
                    self.tell_unconfirmed(from);
                    let pong = self.pong(from);
                    self.reply(from, &pong);
                }
            }
            Packet::Enter {
                token,
                room,
                history,
            } => {
                if self.authorise(now, from, &token, peer) && self.request_allowed(now, from) {
                    self.enter(now, from, room, history);
                }
            }
            Packet::Part {
                token,
                room,
                message,
            } => {
                if self.authorise(now, from, &token, peer) {
                    let message = self.leaving_message(from, message);
                    self.part(from, room, message);
                }
            }
            Packet::Leave { token, message } => {
                if self.authorise(now, from, &token, peer) {
                    if let Some(instance) = self.clients.get(&from).map(|s| s.instance) {
                        self.departed.record(now, instance);
                    }
                    let message = self.leaving_message(from, message);
                    self.remove_saying(from, LeaveReason::Quit, message);
                }
            }
            other => {
                // A relay-to-client packet sent to the relay: nobody's client sends that.
                self.stats.malformed += 1;
                self.dropped(
                    from,
                    format!("a relay's packet sent to the relay: {other:?}"),
                );
            }
        }
    }

    /// The PONG that answers a PING of the session at `to`: each of its rooms' latest seq
    /// and members.
    fn pong(&self, to: SocketAddr) -> Packet {
        let rooms = self.clients.get(&to).map_or_else(Vec::new, |s| {
            (s.rooms.iter())
                .map(|m| crate::proto::wire::Latest {
                    room: m.number,
                    latest: self.rooms[m.room].committed,
                    members: self.rooms[m.room].count(),
                })
                .collect()
        });
        Packet::Pong { rooms }
    }

    /// A LEAVE's (or a PART's) message as the others are told it: `None` when empty, and when it breaks the
    /// text rules or is over [`MAX_LEAVE_BYTES`] (counted as refused; the leave goes on).
    fn leaving_message(&mut self, from: SocketAddr, message: String) -> Option<String> {
        if message.is_empty() {
            return None;
        }
        if message.len() > MAX_LEAVE_BYTES || check_text(&message).is_err() {
            self.stats.refused += 1;
            self.dropped(
                from,
                "a leaving message that breaks the text rules".to_owned(),
            );
            return None;
        }
        Some(message)
    }
}

/// Whether `bytes` is a JOIN of the revision of protocol 2 before rooms: the header, a name,
/// the history and the instance, and nothing after (no room).
fn is_old_join(bytes: &[u8]) -> bool {
    let [
        crate::proto::wire::MAGIC,
        crate::proto::wire::VERSION,
        0x01,
        len,
        ..,
    ] = *bytes
    else {
        return false;
    };
    bytes.len() == 4 + usize::from(len) + 2 + 16
}
