//! `urc join`: the shells around the client's rules, where its socket, terminal, files and
//! clock live.
//!
//! | module | role |
//! |---|---|
//! | [`join`] | the socket loop around [`crate::client`], fed by a terminal or a pipe |
//! | `link` | the socket to the relay in use, made anew when the client moves to another |
//! | `input` | the user's lines, from a pipe's stdin or rustyline's editor, each on a thread of its own |
//! | [`ending`] | how it ends: errors and undelivered lines, the signals to leave on, the terminal |
//! | [`command`] | what a typed line means: chat text or a `/command` |
//! | `act` | what a typed line does: sent to the room typed to, or the command carried out |
//! | [`editor`] | the terminal editor's helper: completion and the connection in the prompt |
//! | [`echo`] | the typed line's rows, erased once accepted so that it shows once |
//! | [`complete`] | tab completion of commands and names |
//! | `output` | where lines print: stdout, or above the line typed, held while the editor needs it |
//! | [`render`] | events as terminal lines, with untrusted text made harmless |
//! | `json` | events as JSON objects, for `--json` |
//! | [`view`] | what the lines before change: the day-change line, mentions and the bell |
//! | [`mention`] | when a message mentions the user: the name as a word |
//! | `keys` | Ctrl-N and Ctrl-P: type to the next or previous room, the line being typed kept |
//! | [`resize`] | window resizes in terminals that rewrap lines: what rustyline's redraw broke |
//! | [`resume`] | back from Ctrl-Z and `fg`: the editor's terminal mode, the line redrawn |
//! | [`seen`] | where the client remembers the last message seen, per relay |
//! | [`pins`] | the relays' keys, pinned on first contact (as ssh's known_hosts) |
//! | [`wrap`] | lines cut into rows at the terminal's width, the rows after the first under the text |

mod act;
pub mod command;
pub mod complete;
pub mod echo;
pub mod editor;
pub mod ending;
mod input;
pub mod join;
mod json;
mod keys;
mod link;
pub mod mention;
mod output;
pub mod pins;
pub mod render;
pub mod resize;
pub mod resume;
pub mod seen;
pub mod view;
pub mod wrap;
