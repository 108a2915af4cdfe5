//! `urc join`: the shells around the client's rules, where its socket, terminal, files and
//! clock live.
//!
//! | module | role |
//! |---|---|
//! | [`join`] | the socket loop around [`crate::client`], fed by a terminal or a pipe |
//! | [`ending`] | how it ends: errors and undelivered lines, the signals to leave on, the terminal |
//! | [`command`] | what a typed line means: chat text or a `/command` |
//! | [`editor`] | the terminal editor's helper: completion and the connection in the prompt |
//! | [`complete`] | tab completion of commands and names |
//! | [`render`] | events as terminal lines or JSON, with untrusted text made harmless |
//! | [`seen`] | where the client remembers the last message seen, per relay |

pub mod command;
pub mod complete;
pub mod editor;
pub mod ending;
pub mod join;
pub mod render;
pub mod seen;
