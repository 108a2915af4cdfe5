//! The large-log workload, `urc bench --workload log`: a relay started on a long log (a
//! million messages by default) and measured for what the log's length could cost: the time
//! until it answers, joins with 20 messages of history, history requests for old ranges (read
//! from the file, not from memory), and the process's memory, beside the same on shorter logs.
//!
//! Each log is written straight into a fresh data directory with the store's own serialisation
//! ([`store::write_record`]), flushed once, before a relay starts on it as the other workloads
//! start theirs. The client here is a plain socket that asks one thing at a time and times
//! each answer until it is whole, through a handshake and sealed as every client's.
//!
//! The shorter logs are measured first, each by this program run again on it alone (with
//! [`ALONE`] set) in a process of its own: memory freed by one relay stays with the process
//! (the allocator keeps it), so relays run one after another in one process would show the
//! largest one's memory in all that follow.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | the settings, what is measured, and the run: the logs written, the shorter ones run alone, the relay started |
//! | `client.rs` | the plain-socket client that waits for the relay, makes its handshake, joins and asks for history, timing each answer |
//! | `report.rs` | the report's lines and the summary line |

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Options, measure, relay, sim};
use crate::proto::message::{Message, Millis};
use crate::serve::layout;
use crate::serve::store::{self, LOG_FILE};

mod client;
mod report;

/// The length of the long log by default.
pub const DEFAULT_MESSAGES: u64 = 1_000_000;
/// The shortest log the long one is compared with.
const SHORT_LOG: u64 = 10_000;
/// Joins timed on each log.
const JOINS: usize = 20;
/// History each join asks for.
const JOIN_HISTORY: u16 = 20;
/// Times each history request is made.
const REQUESTS: usize = 10;
/// Senders the log's messages come from.
const SENDERS: u64 = 4;
/// Set in the environment of a run on a shorter log: it measures its own log only.
pub const ALONE: &str = "URC_BENCH_LOG_ALONE";
/// How the log workload's summary line begins.
const LOG_SUMMARY: &str = "urc-bench workload=log ";

/// What was measured on one log.
#[derive(Debug, Clone)]
pub struct Run {
    /// Messages in the log.
    pub messages: u64,
    /// The log's size in bytes.
    pub bytes: u64,
    /// How long writing it took.
    pub written_in: Duration,
    /// From the call that opens the log and binds the socket to the relay's first answer.
    pub ready: Duration,
    /// Each join, from its first JOIN until the last message of its history arrived.
    pub joins: Vec<Duration>,
    /// The history requests made after the joins.
    pub requests: Vec<Request>,
    /// The process's resident memory once the relay answered, and its peak since the relay
    /// started.
    pub rss: (Option<u64>, Option<u64>),
}

/// One history request, made `REQUESTS` times.
#[derive(Debug, Clone)]
pub struct Request {
    /// Its name in the summary line.
    pub label: &'static str,
    /// The first seq asked for.
    pub from: u64,
    /// How many messages were asked for.
    pub count: u16,
    /// True when the range is older than the relay's cache, so the log is read.
    pub from_log: bool,
    /// How long each answer took to arrive whole.
    pub times: Vec<Duration>,
}

/// A shorter log, measured in a process of its own.
#[derive(Debug, Clone)]
pub struct Shorter {
    /// Messages in the log.
    pub messages: u64,
    /// Its run's summary line, less the workload's name.
    pub summary: String,
}
/// Everything the workload measured.
#[derive(Debug, Clone)]
pub struct LogReport {
    /// The shorter logs, shortest first, each measured in a process of its own.
    pub shorter: Vec<Shorter>,
    /// The long log's run.
    pub run: Run,
    /// Bytes of text a message.
    pub size: usize,
    /// Recent messages the relay keeps to answer history, and ids it remembers against
    /// duplicates: at start it reads the larger count of records from the log's end.
    pub cache: (usize, usize),
    /// Where the long log was written and the type of that file system.
    pub data: (PathBuf, Option<String>),
}

/// Runs the workload: the shorter logs first, each in a process of its own (this program,
/// run again), then the long log of `options.messages`.
///
/// # Errors
/// When a log cannot be written, a relay cannot start, an answer does not come whole within
/// 5 s, a run on a shorter log fails, or the time bound comes first.
pub fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> Result<LogReport, String> {
    let config = relay::config(JOINS + 2);
    // What `Server::bind` reads into memory from the log's end.
    let keep = config.cache.max(config.dedup);
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let mut shorter = Vec::new();
    if std::env::var_os(ALONE).is_none() {
        let lengths = lengths(options.messages, keep as u64);
        for &messages in &lengths[..lengths.len() - 1] {
            progress(&format!(
                "measuring a log of {messages} messages in a process of its own"
            ));
            shorter.push(run_alone(options, messages, deadline)?);
        }
    }
    if Instant::now() >= deadline {
        return Err(format!(
            "the time bound of {} s came first",
            options.seconds
        ));
    }
    let dir = relay::temp_dir(options.data.as_deref())?;
    let data = (dir.path().to_owned(), measure::fs_type(dir.path()));
    let messages = options.messages;
    progress(&format!(
        "writing a log of {messages} messages in {}",
        dir.path().display()
    ));
    let written = Instant::now();
    let bytes = write_log(dir.path(), messages, options.size)
        .map_err(|e| format!("cannot write the log: {e}"))?;
    let written_in = written.elapsed();
    progress(&format!("starting a relay on {messages} messages"));
    measure::Proc::Own.reset_peak_rss();
    let started = Instant::now();
    let relay = relay::start_in(dir, config.clone())?;
    let measured = client::measure_relay(
        relay.addr,
        relay.key,
        messages,
        started,
        config.cache as u64,
    );
    let stopped = relay.stop();
    let (ready, rss, joins, requests) = measured?;
    stopped?;
    Ok(LogReport {
        shorter,
        run: Run {
            messages,
            bytes,
            written_in,
            ready,
            joins,
            requests,
            rss,
        },
        size: options.size,
        cache: (config.cache, config.dedup),
        data,
    })
}

/// Runs this program again on a log of `messages` alone, with the same settings.
fn run_alone(options: &Options, messages: u64, deadline: Instant) -> Result<Shorter, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let seconds = deadline
        .saturating_duration_since(Instant::now())
        .as_secs()
        .max(1);
    let mut command = std::process::Command::new(exe);
    command
        .args(["bench", "--workload", "log", "--messages"])
        .arg(messages.to_string())
        .arg("--size")
        .arg(options.size.to_string())
        .arg("--seconds")
        .arg(seconds.to_string())
        .env(ALONE, "1");
    if let Some(data) = &options.data {
        command.arg("--data").arg(data);
    }
    let what = format!("the bench on a log of {messages} messages");
    let last = super::runs::last_line(&mut command, &what, LOG_SUMMARY)?;
    Ok(Shorter {
        messages,
        summary: last.replacen(LOG_SUMMARY, "", 1),
    })
}

/// The logs' lengths: a short one, one twice as long as what the relay keeps (the memory a
/// log costs stops growing there), and `long`.
fn lengths(long: u64, keep: u64) -> Vec<u64> {
    let mut all: Vec<u64> = [SHORT_LOG, 2 * keep]
        .into_iter()
        .filter(|&n| n < long)
        .collect();
    all.push(long);
    all
}

/// Writes the lobby's log in `dir`: `messages` records like W1's ("hello world message 000123" from a few
/// senders, one a millisecond up to now), flushed once at the end; returns its size.
pub(in crate::bench) fn write_log(dir: &Path, messages: u64, size: usize) -> io::Result<u64> {
    let room = layout::lobby(dir).map_err(io::Error::other)?;
    let mut out = BufWriter::with_capacity(1 << 20, File::create(room.join(LOG_FILE))?);
    let first_time = Millis::now().0 - messages as i64;
    for seq in 1..=messages {
        let m = Message {
            seq,
            id: Uuid::from_u64_pair(u64::from_be_bytes(*b"urcbench"), seq),
            from: format!("c{}", seq % SENDERS),
            text: sim::text(seq - 1, size),
            time: Millis(first_time + seq as i64),
        };
        store::write_record(&mut out, &m)?;
    }
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logs_are_a_short_one_one_past_what_is_kept_and_the_long_one() {
        assert_eq!(lengths(1_000_000, 100_000), [10_000, 200_000, 1_000_000]);
        assert_eq!(lengths(150_000, 100_000), [10_000, 150_000]);
        assert_eq!(lengths(3_000, 100_000), [3_000]);
    }
}
