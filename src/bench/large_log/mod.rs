//! The large-log workload, `urc bench --workload log`: a relay started on a long log (a
//! million messages by default) and measured for what the log's length could cost: the time
//! until it answers, joins with 20 messages of history, history requests for old ranges (read
//! from the file, not from memory), and the process's memory, beside the same on shorter logs.
//!
//! Each log is written straight into a fresh data directory with the store's own serialisation
//! ([`store::write_record`]), flushed once, before a relay starts on it as the other workloads
//! start theirs. The client here is a plain socket that asks one thing at a time and times
//! each answer until it is whole.
//!
//! The shorter logs are measured first, each by this program run again on it alone (with
//! [`ALONE`] set) in a process of its own: memory freed by one relay stays with the process
//! (the allocator keeps it), so relays run one after another in one process would show the
//! largest one's memory in all that follow.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufWriter};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::report::mb;
use super::{Options, measure, relay, sim};
use crate::proto::message::{Message, Millis};
use crate::proto::wire::{MAX_DATAGRAM, Packet, Token};
use crate::serve::store::{self, LOG_FILE};

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
/// Longest wait for one whole answer.
const ANSWER_BOUND: Duration = Duration::from_secs(5);
/// How often the first JOIN is sent again while the relay does not answer yet.
const PROBE_EVERY: Duration = Duration::from_millis(100);
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

/// One history request, made [`REQUESTS`] times.
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

impl Shorter {
    /// The field `name=` of its summary, as written.
    fn field(&self, name: &str) -> Option<&str> {
        self.summary
            .split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
    }
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
    measure::reset_peak_rss();
    let started = Instant::now();
    let relay = relay::start_in(dir, config.clone())?;
    let measured = measure_relay(relay.addr, messages, started, config.cache as u64);
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

/// Writes a log of `messages` records like W1's ("hello world message 000123" from a few
/// senders, one a millisecond up to now), flushed once at the end; returns its size.
fn write_log(dir: &Path, messages: u64, size: usize) -> io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(dir.join(LOG_FILE))?);
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

type Measured = (
    Duration,
    (Option<u64>, Option<u64>),
    Vec<Duration>,
    Vec<Request>,
);

/// Waits for the relay on a log of `messages` to answer, then times the joins and the history
/// requests; `cache` is how many recent messages it answers from memory.
fn measure_relay(
    addr: SocketAddr,
    messages: u64,
    started: Instant,
    cache: u64,
) -> Result<Measured, String> {
    let ready = wait_ready(addr, started)?;
    let rss = (measure::rss(), measure::peak_rss());
    let mut joins = Vec::with_capacity(JOINS);
    let mut kept: Option<Session> = None;
    for i in 0..JOINS {
        let (session, took) = Session::join(addr, &format!("j{i}"), JOIN_HISTORY, messages)?;
        joins.push(took);
        match &kept {
            None => kept = Some(session),
            Some(_) => session.leave(),
        }
    }
    let mut session = kept.ok_or("no join was made")?;
    let middle = (messages / 2).max(1);
    let oldest_cached = messages.saturating_sub(cache) + 1;
    let mut requests = Vec::new();
    for (label, from, count) in [
        ("history_first", 1, 20),
        ("history_middle", middle, 20),
        ("history_middle_1000", middle, 1000),
    ] {
        let times = (0..REQUESTS)
            .map(|_| session.history(from, count, messages))
            .collect::<Result<Vec<_>, _>>()?;
        requests.push(Request {
            label,
            from,
            count,
            from_log: from < oldest_cached,
            times,
        });
    }
    session.leave();
    Ok((ready, rss, joins, requests))
}

/// Sends a JOIN until the relay answers it; the time from `started` to the answer.
fn wait_ready(addr: SocketAddr, started: Instant) -> Result<Duration, String> {
    let socket = connect(addr)?;
    let join = Packet::Join {
        name: "probe".into(),
        history: 0,
        instance: Uuid::new_v4(),
        cookie: Vec::new(),
    }
    .encode();
    let bound = started + ANSWER_BOUND * 12;
    loop {
        send(&socket, &join)?;
        let retry = (Instant::now() + PROBE_EVERY).min(bound);
        match receive(&socket, retry) {
            Ok(_) => return Ok(started.elapsed()),
            Err(_) if Instant::now() < bound => {}
            Err(e) => return Err(format!("the relay did not answer: {e}")),
        }
    }
}

/// A client on a plain socket, in the room.
#[derive(Debug)]
struct Session {
    socket: UdpSocket,
    token: Token,
    next_req: u32,
}

impl Session {
    /// Joins as `name`, asking for `history` messages of a room of `latest`; returns the
    /// session and the time from the first JOIN to the whole join history.
    fn join(
        addr: SocketAddr,
        name: &str,
        history: u16,
        latest: u64,
    ) -> Result<(Session, Duration), String> {
        let socket = connect(addr)?;
        let instance = Uuid::new_v4();
        let join = |cookie| {
            Packet::Join {
                name: name.to_owned(),
                history,
                instance,
                cookie,
            }
            .encode()
        };
        let started = Instant::now();
        let deadline = started + ANSWER_BOUND;
        send(&socket, &join(Vec::new()))?;
        let mut token = None;
        let mut answer = Answer::default();
        loop {
            match receive(&socket, deadline)? {
                Packet::Challenge { cookie } => send(&socket, &join(cookie))?,
                Packet::Welcome { token: t, .. } => token = Some(t),
                Packet::HistoryPage {
                    req: 0,
                    first,
                    last,
                    messages,
                } => answer.add(first, last, &messages),
                Packet::Error { message, .. } => {
                    return Err(format!("the relay refused a join: {message}"));
                }
                _ => {}
            }
            if let Some(token) = token
                && answer.is_whole()
            {
                let took = started.elapsed();
                let n = u64::from(history).min(latest);
                answer.check(latest + 1 - n, latest, "the join history")?;
                let session = Session {
                    socket,
                    token,
                    next_req: 1,
                };
                return Ok((session, took));
            }
        }
    }

    /// Asks for `count` messages from `from` of a room of `latest`; the time until the whole
    /// answer arrived.
    fn history(&mut self, from: u64, count: u16, latest: u64) -> Result<Duration, String> {
        let req = self.next_req;
        self.next_req += 1;
        let ask = Packet::History {
            token: self.token,
            req,
            from,
            count,
        };
        let started = Instant::now();
        let deadline = started + ANSWER_BOUND;
        send(&self.socket, &ask.encode())?;
        let mut answer = Answer::default();
        while !answer.is_whole() {
            match receive(&self.socket, deadline)? {
                Packet::HistoryPage {
                    req: r,
                    first,
                    last,
                    messages,
                } if r == req => answer.add(first, last, &messages),
                Packet::Error { message, .. } => {
                    return Err(format!("the relay refused a history request: {message}"));
                }
                _ => {}
            }
        }
        let took = started.elapsed();
        let last = (from + u64::from(count) - 1).min(latest);
        answer.check(from, last, &format!("history from {from}"))?;
        Ok(took)
    }

    fn leave(self) {
        // Best effort: the relay drops a silent client anyway.
        let leave = Packet::Leave { token: self.token };
        self.socket.send(&leave.encode()).ok();
    }
}

/// The pages of one history answer.
#[derive(Debug, Default)]
struct Answer {
    range: Option<(u64, u64)>,
    got: BTreeSet<u64>,
}

impl Answer {
    fn add(&mut self, first: u64, last: u64, messages: &[Message]) {
        self.range = Some((first, last));
        self.got.extend(messages.iter().map(|m| m.seq));
    }

    fn is_whole(&self) -> bool {
        match self.range {
            None => false,
            Some((0, _)) => true,
            Some((first, last)) => (first..=last).all(|s| self.got.contains(&s)),
        }
    }

    /// Fails unless the answer is exactly `first..=last`.
    fn check(&self, first: u64, last: u64, what: &str) -> Result<(), String> {
        let got = (
            self.got.first().copied(),
            self.got.last().copied(),
            self.got.len(),
        );
        let want = (Some(first), Some(last), (last + 1 - first) as usize);
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "{what} was not seqs {first} to {last}: {} messages, {:?} to {:?}",
                got.2, got.0, got.1
            ))
        }
    }
}

fn connect(addr: SocketAddr) -> Result<UdpSocket, String> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.connect(addr).map(|()| s))
        .map_err(|e| format!("cannot open a client socket: {e}"))?;
    Ok(socket)
}

fn send(socket: &UdpSocket, bytes: &[u8]) -> Result<(), String> {
    socket
        .send(bytes)
        .map(drop)
        .map_err(|e| format!("cannot send to the relay: {e}"))
}

/// The next datagram the relay sends that decodes, waiting until `deadline` at most.
fn receive(socket: &UdpSocket, deadline: Instant) -> Result<Packet, String> {
    let mut buf = [0u8; MAX_DATAGRAM + 1];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no whole answer from the relay within {} s",
                ANSWER_BOUND.as_secs()
            ));
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| format!("cannot wait on a client socket: {e}"))?;
        match socket.recv(&mut buf) {
            Ok(n) => {
                if let Ok(packet) = Packet::decode(&buf[..n]) {
                    return Ok(packet);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("cannot receive from the relay: {e}")),
        }
    }
}

impl LogReport {
    /// The report, one line a fact; the last line is the summary.
    pub fn lines(&self) -> Vec<String> {
        let r = &self.run;
        let mut out = vec![
            format!(
                "workload log: a relay started on a log of {} messages of {} bytes from {SENDERS} senders; \
                 {JOINS} joins asking for {JOIN_HISTORY} messages of history, then {REQUESTS} of each history request",
                r.messages, self.size
            ),
            format!(
                "relay: in this process, on a log written just before it starts (so in the page cache) in {} ({}); \
                 it answers history from its last {} messages and remembers the last {} ids, read from the log's end at start",
                self.data.0.display(),
                self.data.1.as_deref().unwrap_or("file system unknown"),
                self.cache.0,
                self.cache.1
            ),
            format!(
                "log of {} messages ({:.1} MB, written in {:.2} s): ready in {}",
                r.messages,
                r.bytes as f64 / 1e6,
                r.written_in.as_secs_f64(),
                ms(r.ready)
            ),
            format!("join with {JOIN_HISTORY} of history: {}", spread(&r.joins)),
        ];
        for q in &r.requests {
            out.push(format!(
                "history of {} from seq {} ({}): {}",
                q.count,
                q.from,
                if q.from_log {
                    "read from the log"
                } else {
                    "from memory"
                },
                spread(&q.times)
            ));
        }
        out.push(format!(
            "memory: RSS {} once ready, peak {} since the relay started (the whole process)",
            mb(r.rss.0),
            mb(r.rss.1)
        ));
        for s in &self.shorter {
            out.push(format!(
                "beside a log of {} messages, in a process of its own: {}",
                s.messages, s.summary
            ));
        }
        out.push(self.summary());
        out
    }

    /// The one-line summary of the long log, with the memory of the shortest beside it.
    pub fn summary(&self) -> String {
        let r = &self.run;
        let mut s = format!(
            "{LOG_SUMMARY}messages={} ready={} join_history_p50={} join_history_max={}",
            r.messages,
            ms(r.ready),
            ms(median(&r.joins)),
            ms(r.joins.iter().copied().max().unwrap_or_default())
        );
        for q in &r.requests {
            s += &format!(" {}_p50={}", q.label, ms(median(&q.times)));
        }
        if let Some(rss) = r.rss.0 {
            s += &format!(" rss={:.1}MB", rss as f64 / 1e6);
        }
        if let Some(peak) = r.rss.1 {
            s += &format!(" peak_rss={:.1}MB", peak as f64 / 1e6);
        }
        if let Some(short) = self.shorter.first()
            && let Some(rss) = short.field("rss")
        {
            s += &format!(" rss_{}={rss}", short.messages);
        }
        s
    }
}

fn median(times: &[Duration]) -> Duration {
    let mut t = times.to_vec();
    t.sort();
    match t.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => t[n / 2],
        n => (t[n / 2 - 1] + t[n / 2]) / 2,
    }
}

/// "min/median/max a/b/c ms".
fn spread(times: &[Duration]) -> String {
    let min = times.iter().copied().min().unwrap_or_default();
    let max = times.iter().copied().max().unwrap_or_default();
    format!(
        "min/median/max {:.3}/{:.3}/{:.3} ms",
        min.as_secs_f64() * 1e3,
        median(times).as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    )
}

fn ms(d: Duration) -> String {
    format!("{:.3}ms", d.as_secs_f64() * 1e3)
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

    #[test]
    fn fields_of_a_shorter_runs_summary() {
        let s = Shorter {
            messages: 10_000,
            summary: "messages=10000 ready=5.1ms rss=8.2MB peak_rss=8.7MB".into(),
        };
        assert_eq!(s.field("rss"), Some("8.2MB"));
        assert_eq!(s.field("peak_rss"), Some("8.7MB"));
        assert_eq!(s.field("history"), None);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        let d = Duration::from_millis;
        assert_eq!(median(&[d(3), d(1), d(2)]), d(2));
        assert_eq!(
            median(&[d(4), d(1), d(2), d(3)]),
            Duration::from_micros(2500)
        );
        assert_eq!(median(&[]), Duration::ZERO);
    }
}
