//! How `urc join` ends: what it still waits for, the goodbye said until the relay answers, what
//! went wrong (and which lines were not delivered), the signals that make it leave, and the
//! terminal given back as it was found.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use smol::Async;
use smol::future::FutureExt as _;

use crate::client::{Client, Event, SecureClient};
use crate::term::join::Options;
use crate::term::output::Output;

use crate::term::render::sanitize;

/// How a session ended badly.
#[derive(Debug)]
pub enum JoinError {
    /// The socket could not be used.
    Io(io::Error),
    /// The relay refused to let us in, with the lines typed that it never acknowledged.
    Refused {
        /// Why, when it was not shown as an event: in the editor, a line printed just before
        /// the end may never be drawn, so the last words say it.
        reason: Option<String>,
        /// The lines not delivered.
        lost: Vec<String>,
    },
    /// The relay offered a key other than the one pinned for it: nothing more was sent to it.
    KeyChanged {
        /// Both keys and what to do, when it was not shown as an event (see `Refused`).
        reason: Option<String>,
        /// The lines not delivered.
        lost: Vec<String>,
    },
    /// The relay never answered the JOIN: nothing was delivered.
    NoAnswer {
        /// Where the relay was looked for.
        relays: Vec<SocketAddr>,
        /// How long the client waited for it.
        wait: Duration,
        /// The lines not delivered.
        lost: Vec<String>,
    },
    /// Input ended with messages the relay never acknowledged.
    Unacknowledged {
        /// Their texts.
        lost: Vec<String>,
    },
    /// Input ended with acknowledged messages that could not be shown in the room's order:
    /// what comes before them never arrived.
    Undelivered(usize),
}

/// Characters of a line quoted in an error, at most.
const QUOTED: usize = 40;

/// `"text"`, or its first [`QUOTED`] characters and an ellipsis, safe for the terminal.
fn quote(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(QUOTED).collect();
    let more = if chars.next().is_some() { "…" } else { "" };
    format!("\"{}{more}\"", sanitize(&head))
}

/// `: "a", "b"` for the lines not delivered; nothing when there are none.
fn not_delivered(lost: &[String]) -> String {
    if lost.is_empty() {
        return String::new();
    }
    let lines: Vec<String> = lost.iter().map(|l| quote(l)).collect();
    format!("; not delivered: {}", lines.join(", "))
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinError::Io(e) => write!(f, "cannot talk to the relay: {e}"),
            JoinError::Refused { reason, lost } => {
                let why = reason
                    .as_deref()
                    .map(|r| format!(": {}", sanitize(r)))
                    .unwrap_or_default();
                write!(
                    f,
                    "the relay refused to let us in{why}{}",
                    not_delivered(lost)
                )
            }
            JoinError::KeyChanged { reason, lost } => match reason {
                Some(reason) => write!(f, "{}{}", sanitize(reason), not_delivered(lost)),
                None => write!(
                    f,
                    "not talking to a relay whose key is not the one pinned for it{}",
                    not_delivered(lost)
                ),
            },
            JoinError::NoAnswer { relays, wait, lost } => write!(
                f,
                "no answer from a relay at {} in {:.0} s: is `urc serve` running there? (check --server){}",
                crate::term::join::listed(relays),
                wait.as_secs_f64(),
                not_delivered(lost)
            ),
            JoinError::Unacknowledged { lost } => {
                let lines: Vec<String> = lost.iter().map(|l| quote(l)).collect();
                write!(
                    f,
                    "{} message(s) not acknowledged by the relay, so perhaps not delivered: {}",
                    lost.len(),
                    lines.join(", ")
                )
            }
            JoinError::Undelivered(n) => write!(
                f,
                "{n} message(s) were stored but not shown: the messages before them never arrived (raise --wait, or check the network)"
            ),
        }
    }
}

impl std::error::Error for JoinError {}

/// In a terminal, on leaving with messages not yet acknowledged: says what it waits for, and
/// how to stop waiting (the editor has gone, so Ctrl-C is SIGINT again: leave now).
pub(super) fn tell_what_is_owed(client: &Client, options: &Options, output: &mut Output) {
    let n = client.unacked();
    if options.interactive && n > 0 {
        let notice = Event::Notice(format!(
            "leaving once the relay has {n} more message(s) of yours (at most {} s; Ctrl-C leaves now)",
            options.wait.as_secs()
        ));
        output.line(options.renderer.line(&notice));
    }
}

/// Sends the LEAVE, and again, until the relay says the session is gone (the client closes
/// then, or after [`crate::client::LEAVE_WAIT`] at most): the others see the leave at once and
/// the name is free again even when a copy is lost.
pub async fn say_goodbye(client: &mut SecureClient, socket: &Async<UdpSocket>, buf: &mut [u8]) {
    loop {
        while let Some(bytes) = client.poll_transmit(Instant::now()) {
            let _ = socket.send(&bytes).await;
        }
        let Some(at) = client.poll_timeout().filter(|_| !client.is_closed()) else {
            return;
        };
        let heard = async { Some(socket.recv(buf).await) }
            .or(async {
                smol::Timer::at(at).await;
                None
            })
            .await;
        match heard {
            Some(Ok(n)) => client.handle(Instant::now(), &buf[..n]),
            // Nothing listens there any more: nobody to say goodbye to.
            Some(Err(_)) => return,
            None => client.handle_timeout(Instant::now()),
        }
    }
}

/// Signals that make the client leave the room at once: SIGTERM (`kill`), SIGHUP (the terminal
/// closed, the SSH session dropped) and SIGINT (Ctrl-C in a script; in the editor, Ctrl-C is a
/// key that clears the line). `None` when they cannot be watched: the defaults then apply.
pub fn leave_signals() -> Option<async_signal::Signals> {
    use async_signal::Signal;
    async_signal::Signals::new([Signal::Term, Signal::Hup, Signal::Int]).ok()
}

/// The terminal's settings when the client started, put back when it ends: a client that
/// leaves on a signal while the editor has the terminal in raw mode must not leave it so.
#[derive(Debug)]
pub struct TerminalMode {
    #[cfg(unix)]
    saved: Option<rustix::termios::Termios>,
}

impl TerminalMode {
    /// Remembers standard input's terminal settings, if it is a terminal.
    pub fn save() -> Self {
        TerminalMode {
            #[cfg(unix)]
            saved: rustix::termios::tcgetattr(io::stdin()).ok(),
        }
    }

    /// Puts the remembered settings back.
    pub fn restore(&self) {
        #[cfg(unix)]
        if let Some(t) = &self.saved {
            let _ =
                rustix::termios::tcsetattr(io::stdin(), rustix::termios::OptionalActions::Now, t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_lines_are_quoted_short_and_harmless() {
        let e = JoinError::Unacknowledged {
            lost: vec!["hello".into(), "x".repeat(50), "\u{1b}[2J".into()],
        };
        assert_eq!(
            e.to_string(),
            format!(
                "3 message(s) not acknowledged by the relay, so perhaps not delivered: \"hello\", \"{}…\", \"^[[2J\"",
                "x".repeat(40)
            )
        );
        let e = JoinError::NoAnswer {
            relays: vec!["127.0.0.1:7802".parse().unwrap()],
            wait: Duration::from_secs(10),
            lost: Vec::new(),
        };
        assert_eq!(
            e.to_string(),
            "no answer from a relay at 127.0.0.1:7802 in 10 s: is `urc serve` running there? (check --server)"
        );
        assert_eq!(
            JoinError::Refused {
                reason: None,
                lost: Vec::new()
            }
            .to_string(),
            "the relay refused to let us in"
        );
        // In the editor the reason comes last, made harmless like every text of the relay's.
        assert_eq!(
            JoinError::Refused {
                reason: Some("the name alice is in use\u{1b}[2J".into()),
                lost: vec!["hi".into()]
            }
            .to_string(),
            "the relay refused to let us in: the name alice is in use^[[2J; not delivered: \"hi\""
        );
    }
}
