//! An answer's pages: the messages of a history answer, and the names of a WHO answer, put in as few datagrams as hold them, each sent in the bulk lane.

use std::net::SocketAddr;

use super::Relay;
use super::answers::Answer;
use crate::proto::message::Message;
use crate::proto::wire::{HISTORY_HEADER, MAX_PACKET, NAMES_HEADER, Packet, paginate};

impl Relay {
    /// Sends `messages` (of the answer `first..=last` to `req`) in as few pages as hold them;
    /// the bytes sent.
    pub(super) fn history_pages(
        &mut self,
        to: SocketAddr,
        number: u16,
        req: u32,
        (first, last): (u64, u64),
        messages: &[Message],
    ) -> i64 {
        let mut bytes = 0;
        for page in paginate(messages, HISTORY_HEADER) {
            let packet = Packet::HistoryPage {
                room: number,
                req,
                first,
                last,
                messages: page.to_vec(),
            };
            bytes += self.send_bulk(to, packet.encode());
        }
        bytes
    }

    /// Sends the next page of names of a WHO answer about `room` (the session's `number`);
    /// the bytes sent.
    pub(super) fn names_page(
        &mut self,
        to: SocketAddr,
        (room, number): (usize, u16),
        req: u32,
        sent: usize,
        after: Option<String>,
    ) -> i64 {
        let roster = &self.rooms[room].roster;
        let start = roster.after(after.as_deref());
        let rest = roster.from(start);
        let mut names = Vec::new();
        let mut last_key = after;
        let mut used = NAMES_HEADER;
        for (key, addr) in rest {
            let Some(name) = self.clients.get(addr).map(|s| s.name.clone()) else {
                continue;
            };
            if names.len() == 255 || used + 1 + name.len() > MAX_PACKET {
                break;
            }
            used += 1 + name.len();
            names.push(name);
            last_key = Some(key.clone());
        }
        // The names sent before, and those from here on as the room is now: the last page's
        // total is exactly the names sent, so the client knows it has them all.
        let total = u16::try_from(sent + rest.len()).unwrap_or(u16::MAX);
        let done = names.len() == rest.len();
        let count = names.len();
        let packet = Packet::Names {
            room: number,
            req,
            total,
            names,
        };
        let bytes = self.send_bulk(to, packet.encode());
        if let Some(mut s) = self.clients.get_mut(&to) {
            if done {
                s.answers.pop_front();
            } else if let Some(Answer::Names { sent, after, .. }) = s.answers.front_mut() {
                *sent += count;
                *after = last_key;
            }
        }
        bytes
    }
}
