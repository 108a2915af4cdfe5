//! HISTORY and WHO: the range asked, pages of the answer, the cache of recent messages that
//! spares reading the log, and the request rate.

use std::net::SocketAddr;
use std::time::Instant;

use uuid::Uuid;

use super::{LogRead, Relay};
use crate::proto::message::{Message, name_key};
use crate::proto::wire::{
    ErrorCode, HISTORY_HEADER, MAX_HISTORY_REQUEST, NAMES_HEADER, Packet, pack, paginate,
};

impl Relay {
    /// Takes one of the session's request tokens, or tells it to slow down (once an episode,
    /// as for messages: see `send`).
    pub(super) fn request_allowed(&mut self, now: Instant, from: SocketAddr) -> bool {
        let Some(mut s) = self.clients.get_mut(&from) else {
            return false;
        };
        if s.requests.is_full(now) {
            s.told_busy = false;
        }
        if s.requests.take(now) {
            return true;
        }
        // Told for every refused request, a flood of requests had one ERROR back each, larger
        // than the request: the rate bounded the answers but not what the relay sent.
        let tell = !std::mem::replace(&mut s.told_busy, true);
        drop(s);
        self.stats.rate_limited += 1;
        if tell {
            let message = "too many requests: wait a moment".to_owned();
            self.error(from, ErrorCode::RateLimited, Uuid::nil(), message);
        }
        false
    }

    pub(super) fn history(&mut self, to: SocketAddr, req: u32, from: u64, count: u16) {
        let count = u64::from(count.min(MAX_HISTORY_REQUEST));
        let (first, last) = if count == 0 || self.committed == 0 {
            (0, 0)
        } else if from == 0 {
            (
                self.committed.saturating_sub(count - 1).max(1),
                self.committed,
            )
        } else if from > self.committed {
            (0, 0)
        } else {
            (from, self.committed.min(from + count - 1))
        };
        // Nothing before the log's first record is kept (a rotated log: the rest is archived).
        let (first, last) = match (first.max(self.log_start), last) {
            (_, 0) => (0, 0),
            (first, last) if first > last => (0, 0),
            range => range,
        };
        if first == 0 {
            return self.send_pages(to, req, 0, 0, &[]);
        }
        match self.recent.front() {
            Some(oldest) if oldest.seq <= first => {
                let start = (first - oldest.seq) as usize;
                let end = (last - oldest.seq) as usize;
                let messages: Vec<Message> = self.recent.range(start..=end).cloned().collect();
                self.send_pages(to, req, first, last, &messages);
            }
            _ => self.reads.push_back(LogRead {
                to,
                req,
                first,
                last,
            }),
        }
    }

    pub(super) fn send_pages(
        &mut self,
        to: SocketAddr,
        req: u32,
        first: u64,
        last: u64,
        all: &[Message],
    ) {
        let pages = paginate(all, HISTORY_HEADER);
        if pages.is_empty() {
            let page = Packet::HistoryPage {
                req,
                first,
                last,
                messages: Vec::new(),
            };
            return self.reply(to, &page);
        }
        for messages in pages {
            let page = Packet::HistoryPage {
                req,
                first,
                last,
                messages: messages.to_vec(),
            };
            self.reply(to, &page);
        }
    }

    pub(super) fn who(&mut self, to: SocketAddr, req: u32) {
        let mut names: Vec<String> = self.clients.iter().map(|c| c.name.clone()).collect();
        names.sort_by_cached_key(|n| name_key(n));
        let total = u16::try_from(names.len()).unwrap_or(u16::MAX);
        names.truncate(usize::from(total));
        let pages = pack(&names, NAMES_HEADER, |n| 1 + n.len());
        // An empty room still gets its one (empty) page.
        let pages = if pages.is_empty() {
            vec![&names[..]]
        } else {
            pages
        };
        for page in pages {
            let names = page.to_vec();
            self.reply(to, &Packet::Names { req, total, names });
        }
    }

    pub(super) fn keep(&mut self, m: Message) {
        self.recent.push_back(m);
        while self.recent.len() > self.config.cache {
            self.recent.pop_front();
        }
    }
}
