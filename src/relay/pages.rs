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
        // The names here and those through other relays (of a shared store), merged in the
        // order of their keys: no name is in both.
        let r = &self.rooms[room];
        let start = r.roster.after(after.as_deref());
        let rest = r.roster.from(start);
        let remaining = rest.len() + r.elsewhere.count_after(after.as_deref());
        let mut here = (rest.iter())
            .filter_map(|(key, addr)| Some((key.as_str(), self.clients.get(addr)?.name.clone())))
            .peekable();
        let mut there = r.elsewhere.after(after.as_deref()).peekable();
        let mut names = Vec::new();
        let mut last_key = after.clone();
        let mut used = NAMES_HEADER;
        let done = loop {
            let (key, name) = match (here.peek(), there.peek()) {
                (None, None) => break true,
                (Some((h, n)), Some((t, _))) if h <= t => (*h, n.as_str()),
                (Some((h, n)), None) => (*h, n.as_str()),
                (_, Some((t, n))) => (*t, *n),
            };
            if names.len() == 255 || used + 1 + name.len() > MAX_PACKET {
                break false;
            }
            used += 1 + name.len();
            names.push(name.to_owned());
            last_key = Some(key.to_owned());
            // Both, on a tie: a name is listed once.
            if here.peek().is_some_and(|(h, _)| *h == key) {
                here.next();
            }
            if there.peek().is_some_and(|(t, _)| *t == key) {
                there.next();
            }
        };
        drop((here, there));
        // The names sent before, and those from here on as the room is now: the last page's
        // total is exactly the names sent, so the client knows it has them all.
        let total = if done {
            u16::try_from(sent + names.len()).unwrap_or(u16::MAX)
        } else {
            u16::try_from(sent + remaining).unwrap_or(u16::MAX)
        };
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
