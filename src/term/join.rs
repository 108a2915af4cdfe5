//! `urc join`: the socket loop around the client's rules, fed by a terminal or by a pipe.
//!
//! In a terminal, rustyline reads lines on a thread of its own and incoming events print above
//! the line being typed (rustyline's external printer). From a pipe, each line of stdin is a
//! message or a command and each event is one line of stdout.

use std::io::{self, IsTerminal as _, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use smol::future::FutureExt as _;

use crate::client::{Config, Event, SecureClient};
use crate::proto::message::Millis;
use crate::proto::wire::MAX_DATAGRAM;
use crate::term::act::{Here, handle_line};
use crate::term::complete::Names;
use crate::term::editor::{Assist, Connection, Hold, Target};
use crate::term::ending::{TerminalMode, leave_signals, say_goodbye, tell_what_is_owed};
use crate::term::input::{Input, spawn_editor, spawn_stdin_reader};
use crate::term::link::Link;
use crate::term::output::{EDITOR_SETTLES, Output};
use crate::term::pins::{first_contact, key_changed};
use crate::term::render::Renderer;
use crate::term::resize::Screen;
use crate::term::seen;
use crate::term::view::View;

/// How long `urc join` waits, once its input has ended, for its messages to be acknowledged:
/// counted from the last acknowledgement, so a long paste that the relay takes at its own
/// rate is not cut short.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// What `urc join` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The client's settings, the relays' addresses among them (at least one).
    pub client: Config,
    /// The user's key pair.
    pub identity: crate::proto::secure::keys::Keypair,
    /// The relay's key, when pinned or given (else the one it offers is taken).
    pub relay_key: Option<crate::proto::secure::keys::PublicKey>,
    /// How events are shown.
    pub renderer: Renderer,
    /// Read a terminal with line editing (else lines from stdin).
    pub interactive: bool,
    /// How long to wait at the end for acknowledgements.
    pub wait: Duration,
    /// Where to remember, at the end, the last message seen (the file, and the relay's name
    /// in it); `None` to remember nothing.
    pub seen_file: Option<(std::path::PathBuf, String)>,
    /// Where to pin the relays' key on first contact (the file, and the relays' names in it,
    /// one for each entry of `--server`); `None` when the key was given.
    pub pins: Option<(std::path::PathBuf, Vec<String>)>,
}

pub use crate::term::ending::JoinError;

/// Runs a client session until the user quits or input ends.
///
/// # Errors
/// When the socket fails, the relay refuses us, or messages stay unacknowledged at the end.
pub fn run(options: Options) -> Result<(), JoinError> {
    let terminal = options.interactive.then(TerminalMode::save);
    let result = smol::block_on(session(options));
    if let Some(terminal) = terminal {
        // Left on a signal, the editor may still hold the terminal in raw mode.
        terminal.restore();
        if result.is_err() {
            // The last words go where the prompt was, not after it.
            eprint!("\r\x1b[K");
        }
    }
    result
}

async fn session(options: Options) -> Result<(), JoinError> {
    let (input_tx, input_rx) = async_channel::unbounded();
    if !options.interactive {
        spawn_stdin_reader(input_tx.clone());
    }
    let mut editor_started = false;
    let names = Names::default();
    let connection = Connection::default();
    let hold = Hold::default();
    let screen = Screen::default();
    let mut greeting = Greeting::None;
    let renderer = options.renderer;
    // In a terminal, lines are cut into rows by the client (JSON never).
    let mut output = Output::Stdout {
        screen: screen.clone(),
        wrap: !renderer.json() && io::stdout().is_terminal(),
    };
    let mut view = View::new(renderer, &options.client.name);
    // Typed lines go to the first room until the user switches.
    let target = Target::default();
    let first = (client_first_room(&options.client)).unwrap_or_default();
    view.switch(&first);
    target.set(&first);
    // Lines the editor sent that were handled: its prompt waits for a command's.
    let mut handled = 0u64;
    let mut first_entered = false;
    let mut client = SecureClient::new(
        options.client.clone(),
        options.identity.clone(),
        options.relay_key,
        Instant::now(),
    );
    // A connected socket only hears the relay in use: datagrams from anyone else are dropped.
    let mut link = Link::open(&client).map_err(JoinError::Io)?;
    let mut closing: Option<Instant> = None;
    let started = Instant::now();
    // What `/quit MESSAGE` says to the others with the leave.
    let mut farewell = String::new();
    let (mut unacked, mut delivered) = (0, 0);
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut signals = leave_signals();
    // A signal asked us to leave: the wait at the end is no longer extended.
    let mut signalled = false;
    loop {
        (link.send_all(&mut client, &mut output, renderer).await).map_err(JoinError::Io)?;
        output.settle(Instant::now());
        output.release();
        // Before the events: the notice that says so redraws the prompt, which reads this.
        connection.set_silent(client.relay_silent());
        // The relay refused us (or offered another key): in the editor, the reason goes in the
        // last words rather than above the prompt, where it might never be drawn before the
        // editor goes.
        let shut_out = client.is_closed() && output.is_editor();
        let mut reason = None;
        let followed: Vec<String> = (client.rooms().into_iter()).map(|r| r.name).collect();
        names.keep_rooms(&followed);
        // Events of the relay's key are about the one in use.
        let relay = client
            .relay()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        while let Some(event) = client.poll_event() {
            match &event {
                Event::Who { room, names: all } => {
                    if room == view.current() {
                        names.set(all);
                    }
                    greeting = Greeting::Done;
                }
                Event::Error(_) if greeting == Greeting::Asked => greeting = Greeting::Done,
                // The client tells an arrival once (someone rejoining a restarted relay is not
                // news), and what changed while it was away after a rejoin.
                Event::Joined { name, .. } => names.add(name),
                Event::Left { name, .. } => names.remove(name),
                // Anyone said may be completed.
                Event::Message { message, .. } => names.add(&message.from),
                Event::Entered { room } => names.add_room(room),
                Event::Parted { room } | Event::NotEntered { room, .. } => {
                    let delivered = client.delivered_in(room);
                    if matches!(event, Event::Parted { .. }) && delivered > 0 {
                        // Where the user left off in it, for "since you were last here" when
                        // they come back to it.
                        let seen = [(room.clone(), delivered)];
                        seen::remember(options.seen_file.as_ref(), true, &seen);
                    }
                    names.remove_room(room);
                    view.forget(room);
                    if room == view.current() {
                        // Typed lines go to the next room the user is in, if any.
                        let next = client.rooms().into_iter().next().map(|r| r.name);
                        let next = next.unwrap_or_default();
                        view.switch(&next);
                        target.set(&next);
                    }
                }
                _ => {}
            }
            let event = match event {
                // Already said, more precisely: nothing listens there (the prompt shows both).
                Event::Silent if link.told_refused() => continue,
                Event::Silent => Event::Notice(match client.relays() {
                    [one] => format!("the relay at {one} is not answering: still trying"),
                    all => format!(
                        "none of the relays at {} is answering: still trying",
                        listed(all)
                    ),
                }),
                Event::RelayKeyLearnt { key } => first_contact(relay, options.pins.as_ref(), key),
                Event::RelayKeyChanged { pinned, offered } => {
                    Event::Error(key_changed(relay, options.pins.as_ref(), pinned, offered))
                }
                event => event,
            };
            // Entering the room of the start is said by who is in it.
            if let Event::Entered { room } = &event
                && *room == first
                && !std::mem::replace(&mut first_entered, true)
            {
                continue;
            }
            if let (true, Event::Error(why)) = (shut_out, &event) {
                reason = Some(why.clone());
                continue;
            }
            for line in view.show(&event, Millis::now()) {
                output.line(line);
            }
        }
        if client.is_closed() {
            let lost = client.unacked_texts();
            return Err(if client.key_refused() {
                JoinError::KeyChanged { reason, lost }
            } else {
                JoinError::Refused { reason, lost }
            });
        }
        if options.interactive && client.is_joined() && greeting == Greeting::None {
            // Who is here, shown on arrival and offered by Tab; the editor starts once it is
            // shown, so that nothing prints into the prompt while the editor sets it up.
            greeting = Greeting::Asked;
            client.request_who(Instant::now());
            continue;
        }
        // The editor starts once the welcome is all shown (who is here, what was missed):
        // rustyline writes what comes while it sets the prompt up over the prompt.
        if options.interactive
            && greeting == Greeting::Done
            && !client.is_catching_up()
            && !editor_started
        {
            editor_started = true;
            let assist = Assist {
                names: names.clone(),
                connection: connection.clone(),
                color: renderer.colored(),
                hold: hold.clone(),
                screen: screen.clone(),
                target: target.clone(),
            };
            spawn_editor(input_tx.clone(), client.name().to_owned(), assist);
        }
        if let Some(deadline) = closing
            && (client.is_idle() || Instant::now() >= deadline)
        {
            let (lost, undelivered) = (client.unacked_texts(), client.undelivered());
            let rooms: Vec<(String, u64)> = (client.rooms().into_iter())
                .filter(|r| r.entered)
                .map(|r| (r.name, r.delivered))
                .collect();
            seen::remember(options.seen_file.as_ref(), client.is_joined(), &rooms);
            client.leave_saying(Instant::now(), &farewell);
            say_goodbye(&mut client, link.socket(), &mut buf).await;
            if !client.was_welcomed() {
                return Err(JoinError::NoAnswer {
                    relays: client.relays().to_vec(),
                    wait: started.elapsed(),
                    lost,
                });
            }
            return match (lost.len(), undelivered) {
                (0, 0) => Ok(()),
                (0, n) => Err(JoinError::Undelivered(n)),
                _ => Err(JoinError::Unacknowledged { lost }),
            };
        }
        let wake_at = [client.poll_timeout(), closing, output.due()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let wake = async { Wake::Datagram(link.socket().recv(&mut buf).await) }
            .or(async { Wake::Input(input_rx.recv().await.ok()) })
            .or(async {
                smol::Timer::at(wake_at).await;
                Wake::Timer
            })
            .or(async {
                match &mut signals {
                    Some(signals) => match smol::stream::StreamExt::next(signals).await {
                        Some(Ok(signal)) => Wake::Signal(signal),
                        _ => std::future::pending().await,
                    },
                    None => std::future::pending().await,
                }
            })
            .await;
        let now = Instant::now();
        match wake {
            Wake::Datagram(Ok(n)) => {
                link.heard();
                client.handle(now, &buf[..n]);
            }
            // An ICMP error from an earlier send (the relay is down): the timers retry, or the
            // client moves to the next relay.
            Wake::Datagram(Err(e)) => {
                link.failed(&e, &mut client, &mut output, renderer);
            }
            Wake::Timer => client.handle_timeout(now),
            Wake::Input(Some(Input::Printer(printer))) => {
                output = Output::Starting {
                    printer,
                    hold: hold.clone(),
                    at: now + EDITOR_SETTLES,
                    held: Vec::new(),
                    screen: screen.clone(),
                }
            }
            Wake::Input(Some(Input::Line(line))) => {
                // The editor erased the accepted line before it sent it.
                output.release();
                let mut here = Here {
                    view: &mut view,
                    target: &target,
                    seen: options.seen_file.as_ref(),
                    history: options.client.history,
                };
                if closing.is_none()
                    && let Some(said) =
                        handle_line(&mut client, &mut output, &mut here, renderer, now, &line)
                {
                    farewell = said;
                    closing = Some(now + options.wait);
                    tell_what_is_owed(&client, &options, &mut output);
                }
                handled += 1;
                target.handled(handled);
            }
            Wake::Input(Some(Input::End) | None) => {
                if closing.is_none() {
                    closing = Some(now + options.wait);
                    tell_what_is_owed(&client, &options, &mut output);
                }
            }
            // Leave at once: what is owed gets a moment, not the whole wait.
            // Ctrl-C between two lines the editor reads (the terminal is in its own mode only
            // while one is read) means what it means in the editor: not leaving.
            Wake::Signal(async_signal::Signal::Int)
                if options.interactive && editor_started && closing.is_none() => {}
            Wake::Signal(_) => {
                if options.interactive && !signalled {
                    // Off the line being typed, which the editor will not finish.
                    let _ = writeln!(io::stdout()).and_then(|()| io::stdout().flush());
                }
                // (None when the relay is not answering or not there: nobody would.)
                let grace = if client.relay_silent() || link.told_refused() {
                    Duration::ZERO
                } else {
                    SIGNAL_GRACE.min(options.wait)
                };
                let soon = now + grace;
                closing = Some(closing.map_or(soon, |c| c.min(soon)));
                signalled = true;
            }
        }
        // While the relay keeps acknowledging (or the room's order keeps moving), the wait goes
        // on: it bounds how long the relay may stay silent, not how long a long paste takes at
        // the relay's rate.
        // Messages shown count only once all are acknowledged: in a busy room they keep coming
        // while the relay takes nothing of ours, and the wait must end then.
        let (left, shown) = (client.unacked(), client.delivered());
        if (left < unacked || (left == 0 && shown > delivered))
            && !signalled
            && let Some(deadline) = &mut closing
        {
            *deadline = (*deadline).max(now + options.wait);
        }
        (unacked, delivered) = (left, shown);
    }
}

/// Where the terminal's welcome stands: who is in the room is asked for once, on arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Greeting {
    None,
    Asked,
    Done,
}

enum Wake {
    Datagram(io::Result<usize>),
    Input(Option<Input>),
    Timer,
    /// SIGTERM, SIGHUP or SIGINT: leave now.
    Signal(async_signal::Signal),
}

/// How long a client told to leave by a signal waits for what is owed (acknowledgements, the
/// welcome of a JOIN on its way) before it leaves anyway.
pub const SIGNAL_GRACE: Duration = Duration::from_secs(1);

/// Addresses as a list: `a, b, c`.
pub(super) fn listed(all: &[SocketAddr]) -> String {
    let all: Vec<String> = all.iter().map(ToString::to_string).collect();
    all.join(", ")
}

/// The first room the client enters.
fn client_first_room(config: &Config) -> Option<String> {
    match config.rooms.first() {
        Some((room, _)) => Some(crate::proto::room::room_key(room)),
        None => Some(crate::proto::room::DEFAULT_ROOM.to_owned()),
    }
}
