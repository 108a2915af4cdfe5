//! `urc serve`: the shells around the relay's rules, where its socket, log file and clock live.
//!
//! | module | role |
//! |---|---|
//! | [`server`] | the socket loop around [`crate::relay`] and [`logs`]: the group-commit turn |
//! | [`logs`] | every room's log: opened at start, made on first use, one group commit across rooms |
//! | [`nats`] | the NATS JetStream store (`--store nats://`): rooms as streams several relays share |
//! | [`journal`] | the relay-wide journal: a turn's records of every room, one flush; checkpoints; put back at start |
//! | [`store`] | a room's message log, `messages.jsonl`, appended and flushed, read by binary search |
//! | [`layout`] | where each room's files are, `rooms/<room>/`, and the upgrade of a one-room directory |
//! | [`socket`] | the UDP socket: large buffers, the errors it works on after |
//! | [`batch`] | datagrams sent many to a system call (sendmmsg) |
//! | [`clock`] | steps of the wall clock, told from the steady clock, for the relay's log |
//! | [`lock`] | one relay a data directory: the `urc.lock` file, held while the relay runs |
//! | [`report`] | what the relay's log says of its state: drops and refusals, the minute summary |
//! | [`repair`] | `urc serve --repair-log`: damaged log records replaced by placeholders |
//! | [`owners`] | who owns each name, the journal `names.jsonl`, and `--release-name` |

pub mod batch;
pub mod clock;
pub mod journal;
pub mod layout;
pub mod lock;
pub mod logs;
pub mod nats;
pub mod owners;
pub mod repair;
pub mod report;
pub mod server;
pub mod socket;
pub mod store;
