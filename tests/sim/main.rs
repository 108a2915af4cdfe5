//! The relay's and the client's rules together over a simulated network: loss, duplication,
//! reordering, silence and restarts, and hostile traffic (forged datagrams, floods, a failing
//! log, garbage), in simulated time. One test binary: the harness is in `net/`, the steps and
//! checks the tests share in `chat.rs` and `checks.rs`, and the tests, by subject, in the rest.
//!
//! Every test is seeded; a failure prints its seed, and `URC_SIM_SEED=<seed> cargo test --test
//! sim <name>` runs that seed alone (`URC_SIM_SEED=0..500` searches further than the defaults;
//! `URC_SIM_TRACE=1` and `URC_SIM_DUMP=<client name>` show what happened, with `--nocapture`).

mod chat;
mod checks;
mod net;

mod dms;
mod failover;
mod floods;
mod history;
mod hostile;
mod joining;
mod loss;
mod ordering;
mod restarts;
mod rooms;
mod secure;
