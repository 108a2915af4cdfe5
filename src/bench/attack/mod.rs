//! `urc bench --attack`: one hostile workload that keeps to every documented limit (issue
//! 11), run against a real `urc serve` beside two ordinary members who chat at 4 messages a
//! second, measuring what the attack costs them (their send-to-deliver latency, anything
//! missing) and the relay (its own memory and CPU, read from `/proc/<pid>`).
//!
//! The relay runs with its default limits in a process of its own (`bench/child.rs`;
//! `--relay-bin` runs another build, the one before a change, say), so that its memory is its
//! own, it can be stopped with SIGSTOP, and its wall clock can be stepped with libfaketime. The attackers come from
//! loopback addresses of their own, as many sessions an address as the relay allows.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | the attacks, their settings, and the run from start to verdict |
//! | `ordinary.rs` | the two ordinary members (the real client) and what they saw |
//! | `swarm.rs` | the attacking sessions and the silent members, raw datagrams on one thread |
//! | `bot.rs` | one of the swarm's sessions: its socket, its secure channel, where it is with the relay |
//! | `schedule.rs` | what the swarm's sessions do and when, at a steady pace |
//! | `scripts.rs` | what each attack does, step by step |
//! | `report.rs` | the figures, the verdict, the report's lines and the summary line |
//! | `runs.rs` | `--attack all` and `--runs`: each run in a process of its own, medians |

mod bot;
mod ordinary;
mod report;
pub mod runs;
mod schedule;
mod scripts;
mod swarm;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use report::AttackReport;

use super::child::{RelayChild, Spawn};
use ordinary::Ordinary;

/// Where libfaketime is on Debian and Ubuntu (`apt-get install faketime`).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// How long the relay runs with only the ordinary members before the attack, and after it
/// before its memory is read again, at most (a quarter of the attack's length, at least half a
/// second: a tiny run stays quick).
const QUIET: Duration = Duration::from_secs(3);

/// The quiet time of an attack of `seconds`.
fn quiet(seconds: u64) -> Duration {
    Duration::from_millis(seconds * 250).clamp(Duration::from_millis(500), QUIET)
}

/// A hostile workload (docs/performance.md describes each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Attack {
    /// 64 sessions of one IP, each asking HISTORY for the latest 1000 messages 5 times a
    /// second, on a log of 10,000 messages.
    History,
    /// 64 sessions of one IP sending WHO 5 times a second, in a room of 10,000 members (64 an
    /// IP) who ping every 5 s.
    Who,
    /// 640 sessions from 10 IPs, each sending 20 messages a second.
    Senders,
    /// 10,000 sessions (64 an IP), each sending csn 2 to 256 and never csn 1, so that 255
    /// messages each wait in the relay; then they all leave.
    Parked,
    /// 2,000 members pinging every 5 s; the relay is stopped (SIGSTOP) for 40 s, then
    /// continued.
    Stop,
    /// The relay's wall clock stepped 10 years ahead during the chat, then back (libfaketime).
    Clock,
    /// Every attack, one after another, each in a process of its own.
    All,
}

impl Attack {
    /// The six attacks, in the order `all` runs them.
    pub const EVERY: [Attack; 6] = [
        Attack::History,
        Attack::Who,
        Attack::Senders,
        Attack::Parked,
        Attack::Stop,
        Attack::Clock,
    ];

    /// Its name as typed.
    pub fn name(self) -> &'static str {
        match self {
            Attack::History => "history",
            Attack::Who => "who",
            Attack::Senders => "senders",
            Attack::Parked => "parked",
            Attack::Stop => "stop",
            Attack::Clock => "clock",
            Attack::All => "all",
        }
    }

    /// True when the attack is made by hostile sessions (not by the relay's own fate).
    pub fn has_sessions(self) -> bool {
        matches!(
            self,
            Attack::History | Attack::Who | Attack::Senders | Attack::Parked
        )
    }

    /// The hostile sessions, the silent members in the room, and the attack's length in
    /// seconds, as the review ran it.
    pub fn defaults(self) -> (usize, usize, u64) {
        match self {
            Attack::History | Attack::Senders => {
                (if self == Attack::History { 64 } else { 640 }, 0, 20)
            }
            Attack::Who => (64, 10_000, 20),
            // The seconds the messages wait before their senders leave.
            Attack::Parked => (10_000, 0, 10),
            // The seconds the relay is stopped.
            Attack::Stop => (0, 2_000, 40),
            // The seconds the clock is 10 years ahead.
            Attack::Clock => (0, 0, 10),
            Attack::All => (0, 0, 0),
        }
    }
}

/// An attack's settings, checked.
#[derive(Debug, Clone)]
pub struct AttackOptions {
    /// The attack.
    pub attack: Attack,
    /// Hostile sessions (history, who, senders, parked).
    pub sessions: usize,
    /// Silent members in the room (who, stop).
    pub members: usize,
    /// The attack's length in seconds (stop: how long the relay is stopped; clock: how long
    /// its clock is ahead; parked: how long the messages wait).
    pub seconds: u64,
    /// Messages in the log written before the relay starts (history).
    pub log: u64,
    /// Bytes of text of the log's messages and the senders' (history, senders).
    pub size: usize,
    /// The `urc` program run as the relay (this one when `None`).
    pub relay_bin: Option<PathBuf>,
    /// Where the relay's temporary data directory is made.
    pub data: Option<PathBuf>,
}

impl AttackOptions {
    /// Checks the settings.
    ///
    /// # Errors
    /// A one-line explanation of the first setting that makes no sense.
    pub fn check(&self) -> Result<(), String> {
        if self.attack == Attack::All {
            return Err("--attack all runs each attack in a process of its own".into());
        }
        if self.attack.has_sessions() && self.sessions == 0 {
            return Err(format!(
                "--attack {} needs --sessions of at least 1",
                self.attack.name()
            ));
        }
        if self.seconds == 0 || self.seconds > 3600 {
            return Err(format!("--seconds must be 1 to 3600, not {}", self.seconds));
        }
        if self.size == 0 || self.size > crate::proto::message::MAX_TEXT_BYTES {
            return Err(format!("--size must be 1 to 1000 bytes, not {}", self.size));
        }
        if self.sessions + self.members > 15_000 {
            return Err("--sessions and --members together must be at most 15000".into());
        }
        Ok(())
    }
}

/// Runs one attack from start to verdict; `progress` is told what is under way. A missed
/// target is not an error: the report's verdict says it.
///
/// # Errors
/// When the relay or the clients cannot be set up, or a socket fails.
pub fn run(
    options: &AttackOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<AttackReport, String> {
    options.check()?;
    let program = match &options.relay_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?,
    };
    if options.attack == Attack::Clock && !Path::new(LIBFAKETIME).exists() {
        return Ok(AttackReport::skipped(
            options,
            &program,
            format!("libfaketime is not installed ({LIBFAKETIME}; apt-get install faketime)"),
        ));
    }
    let wanted = (options.sessions + options.members) as u64 + 256;
    let limit = rlimit::increase_nofile_limit(wanted)
        .map_err(|e| format!("cannot raise the open files limit: {e}"))?;
    if limit < wanted {
        return Err(format!(
            "{wanted} sockets need as many open files; the hard limit is {limit} (raise it with ulimit -Hn)"
        ));
    }
    let dir = super::relay::temp_dir(options.data.as_deref())?;
    let data = dir.path().join("data");
    std::fs::create_dir(&data).map_err(|e| format!("cannot make {}: {e}", data.display()))?;
    if options.attack == Attack::History {
        progress(&format!("writing a log of {} messages", options.log));
        super::large_log::write_log(&data, options.log, options.size)
            .map_err(|e| format!("cannot write the log: {e}"))?;
    }
    let clock_file = dir.path().join("faketime");
    let mut spawn = Spawn {
        program: program.clone(),
        args: Vec::new(),
        env: Vec::new(),
    };
    // The attack's sessions, the members, the two ordinary members and some room.
    let room = options.sessions + options.members + 2;
    let max_clients =
        (room > crate::relay::Config::default().max_clients).then(|| room.max(10_100));
    if let Some(n) = max_clients {
        spawn.args = vec!["--max-clients".into(), n.to_string()];
    }
    if options.attack == Attack::Clock {
        scripts::set_clock(&clock_file, "+0")?;
        spawn.env = vec![
            ("LD_PRELOAD".into(), LIBFAKETIME.into()),
            (
                "FAKETIME_TIMESTAMP_FILE".into(),
                clock_file.display().to_string(),
            ),
            ("FAKETIME_NO_CACHE".into(), "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ];
    }
    progress(&format!("starting the relay: {} serve", program.display()));
    let mut relay = RelayChild::start(&spawn, &data)?;
    progress(&format!(
        "relay pid {} on {}; joining the ordinary members",
        relay.pid, relay.addr
    ));
    let ordinary = Ordinary::start(relay.addr)?;
    let quiet = quiet(options.seconds);
    std::thread::sleep(quiet);
    let idle = relay.rss();
    let reset = relay.reset_peak();
    let (cpu0, began) = (relay.cpu(), Instant::now());
    let own0 = super::measure::Proc::Own.cpu();
    progress(&format!("attack: {}", options.attack.name()));
    let setting = scripts::Setting {
        options,
        relay: &relay,
        ordinary: &ordinary,
        clock_file: &clock_file,
        data: &data,
    };
    let outcome = scripts::run(&setting, progress);
    progress("the attack is over; waiting for the relay to settle");
    std::thread::sleep(quiet);
    let (after, peak, cpu1, took) = (relay.rss(), relay.peak_rss(), relay.cpu(), began.elapsed());
    let own1 = super::measure::Proc::Own.cpu();
    let books = ordinary.finish();
    let stalls = relay.log_count("the relay did not run for");
    let exited = (!relay.is_running()).then(|| relay.log_tail(3));
    let figures = report::Relay {
        program,
        addr: relay.addr,
        pid: relay.pid,
        max_clients,
        rss_idle: idle,
        rss_peak: reset.then_some(peak).flatten(),
        rss_after: after,
        cpu: cpu1.zip(cpu0).map(|(b, a)| b.saturating_sub(a)),
        bench_cpu: own1.zip(own0).map(|(b, a)| b.saturating_sub(a)),
        wall: took,
        quiet,
        stalls_logged: stalls,
        exited,
    };
    relay.stop();
    Ok(AttackReport::new(options, figures, outcome?, books?))
}
