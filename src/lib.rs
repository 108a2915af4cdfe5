//! urc, UDP Relay Chat: a chat relay over UDP that loses nothing it acknowledged.
//!
//! The protocol's rules live apart from sockets, files, terminals and clocks, so that they can
//! be tested deterministically; the shells around them are thin. The folders show the two
//! programs and their layers:
//!
//! | folder | role | may use |
//! |---|---|---|
//! | [`proto`] | what both programs share, no I/O: the datagrams, the secure channel's handshake and sealing, names and texts | nothing of ours |
//! | [`keyfile`] | key files on disk for both shells: made 0600, read back, never printed | [`proto`] |
//! | [`relay`] | the relay's rules, no I/O: handshakes and transports, sessions, ordering, acks, fan-out, history, cookies, rate limits | [`proto`] |
//! | [`serve`] | `urc serve`: the socket loop, the message log, the relay's key, `--repair-log` | [`relay`], [`keyfile`], [`proto`] |
//! | [`client`] | the client's rules, no I/O: the tunnel, joining, retransmission, ordered delivery, history, moving between the relays of a list | [`proto`] |
//! | [`term`] | `urc join`: the socket loop, the terminal editor, rendering, the last-seen and pinned-keys files | [`client`], [`keyfile`], [`proto`] |
//! | [`mod@bench`] | `urc bench`: a real relay and simulated clients on loopback, measured | [`serve`], [`relay`], [`client`], [`proto`] |
//! | [`cli`] | the command line of the three commands | all of the above |
//!
//! [`serve`], [`term`], [`keyfile`] and [`mod@bench`] are the only places with sockets, files,
//! terminals and clocks; [`relay`] and [`client`] never use each other. `src/main.rs` is the binary.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod bench;
pub mod cli;
pub mod client;
pub mod keyfile;
pub mod proto;
pub mod relay;
pub mod serve;
pub mod term;
