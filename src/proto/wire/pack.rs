//! Packing items into as few datagrams as they fit: messages into MESSAGES and HISTORY_PAGE
//! pages, and any other list (sends, acks, changes) by the length of each item.

use std::borrow::Borrow;

use super::MAX_PACKET;
use super::codec::message_len;
use crate::proto::message::Message;

/// Packs messages into as few pages as fit [`MAX_PACKET`] with `header` bytes each,
/// keeping their order; each page holds at most 255 messages.
pub fn paginate<M: Borrow<Message>>(messages: &[M], header: usize) -> Vec<&[M]> {
    runs(messages, header, |m, prev| {
        message_len(m.borrow(), prev.map(Borrow::borrow))
    })
}

/// Packs items of `len(item)` bytes each into as few runs as fit [`MAX_PACKET`] with
/// `header` bytes each, keeping their order; each run holds at most 255 items.
pub fn pack<T>(items: &[T], header: usize, len: impl Fn(&T) -> usize) -> Vec<&[T]> {
    runs(items, header, |item, _| len(item))
}

/// [`pack`] for items whose length depends on the item before them in the same run
/// (`None` for a run's first).
fn runs<T>(items: &[T], header: usize, len: impl Fn(&T, Option<&T>) -> usize) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut used = header;
    for (i, item) in items.iter().enumerate() {
        let prev = (i > start).then(|| &items[i - 1]);
        let mut bytes = len(item, prev);
        if prev.is_some() && (used + bytes > MAX_PACKET || i - start == 255) {
            runs.push(&items[start..i]);
            start = i;
            used = header;
            bytes = len(item, None);
        }
        used += bytes;
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}
