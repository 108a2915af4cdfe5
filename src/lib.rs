//! urc, UDP Relay Chat: a chat relay over UDP that loses nothing it acknowledged.
//!
//! The protocol's rules live apart from sockets, files, terminals and clocks, so that they can
//! be tested deterministically; the shells around them are thin.
//!
//! | module | role |
//! |---|---|
//! | [`message`] | the room's vocabulary: a stored message, name and text rules, timestamps |
//! | [`wire`] | every datagram of the protocol, encoded and decoded without I/O |
//! | [`relay`] | the relay's rules without I/O: sessions, ordering, acks, fan-out, history |
//! | [`cookie`] | address validation without per-address state: stateless challenge cookies |
//! | [`limit`] | token buckets: rates with a burst allowance |
//! | [`client`] | the client's rules without I/O: joining, retransmission, ordered delivery |
//! | [`store`] | the message log, `messages.jsonl`, appended and flushed |
//! | [`repair`] | `urc serve --repair-log`: damaged log records replaced by placeholders |
//! | [`server`] | `urc serve`: the socket loop around [`relay`] and [`store`] |
//! | [`command`] | what a typed line means: chat text or a `/command` |
//! | [`complete`] | tab completion of commands and names in the terminal |
//! | [`editor`] | the terminal editor's helper: completion and the connection in the prompt |
//! | [`render`] | events as terminal lines or JSON, with untrusted text made harmless |
//! | [`seen`] | where the terminal client remembers the last message seen, per relay |
//! | [`join`] | `urc join`: the socket loop around [`client`], fed by a terminal or a pipe |
//! | [`bench`] | `urc bench`: an in-process relay and simulated clients on loopback, measured |
//! | [`cli`] | the command line |
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod bench;
pub mod cli;
pub mod client;
pub mod command;
pub mod complete;
pub mod cookie;
pub mod editor;
pub mod join;
pub mod limit;
pub mod message;
pub mod relay;
pub mod render;
pub mod repair;
pub mod seen;
pub mod server;
pub mod store;
pub mod wire;
