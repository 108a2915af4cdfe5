//! What an attack measured: the ordinary members' latency during it, what they missed, the
//! relay's memory and CPU, what the attack sent and drew, and the verdict against issue 11's
//! targets; as lines for people, the last one a summary for scripts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::ordinary::Books;
use super::scripts::Outcome;
use super::{Attack, AttackOptions};

/// The ordinary members' p99 must stay under this.
const P99_TARGET: Duration = Duration::from_millis(200);
/// The relay's peak RSS must stay under this many bytes (100 MB).
const RSS_TARGET: u64 = 100_000_000;
/// How a summary line begins.
pub const SUMMARY: &str = "urc-bench-attack ";
/// A message time off the real one by more than this is wrong (clock).
const CLOCK_SLACK: i64 = 5_000;
/// A message time ahead of the real one by more than this was stamped on the stepped clock.
const STEPPED: i64 = 3_000 * 86_400_000;

/// What was measured of the relay's process.
#[derive(Debug)]
pub(super) struct Relay {
    pub(super) program: PathBuf,
    pub(super) addr: SocketAddr,
    pub(super) pid: u32,
    pub(super) max_clients: Option<usize>,
    /// VmRSS before the attack, with only the ordinary members in.
    pub(super) rss_idle: Option<u64>,
    /// VmHWM from just before the attack to after it.
    pub(super) rss_peak: Option<u64>,
    /// VmRSS a few seconds after the attack's sessions left.
    pub(super) rss_after: Option<u64>,
    /// CPU time from just before the attack to after it, and that time.
    pub(super) cpu: Option<Duration>,
    /// The bench's own CPU time over the same time (attackers, members, ordinary members).
    pub(super) bench_cpu: Option<Duration>,
    pub(super) wall: Duration,
    /// How long after the attack `rss_after` was read.
    pub(super) quiet: Duration,
    /// Lines in which the relay said it had not run (stop).
    pub(super) stalls_logged: usize,
    /// The end of its log, if it exited before the bench stopped it.
    pub(super) exited: Option<String>,
}

/// Everything an attack run measured, and its verdict.
#[derive(Debug)]
pub struct AttackReport {
    attack: Attack,
    options: AttackOptions,
    program: PathBuf,
    relay: Option<Relay>,
    outcome: Outcome,
    /// The ordinary members' latencies of the messages sent during the attack, in µs.
    latency: Option<Histogram<u64>>,
    missing: u64,
    misordered: u64,
    rejoins: u64,
    timed_out_seen: u64,
    errors: Vec<String>,
    /// The ordinary members' latency in each phase of the attack, described.
    by_phase: Vec<String>,
    /// Clock: messages stamped on the stepped clock, and messages after the step back whose
    /// time was not the real one.
    clock: Option<(u64, u64)>,
    /// The targets missed; empty when all were met. `None`: skipped, with why.
    failures: Vec<String>,
    skipped: Option<String>,
}

fn mb(bytes: Option<u64>) -> String {
    bytes.map_or("unknown".into(), |b| format!("{:.1}MB", b as f64 / 1e6))
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1e3)
}

fn program_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The ordinary members' latency of the messages sent in each phase: its p99, its max, how
/// many.
fn by_phase(outcome: &Outcome, books: &Books) -> Vec<String> {
    let end = outcome.window.map(|(_, end)| end);
    let phases = &outcome.phases;
    (0..phases.len())
        .filter_map(|i| {
            let (name, from) = phases[i];
            let to = phases.get(i + 1).map(|p| p.1).or(end)?;
            let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).ok()?;
            for d in books
                .deliveries
                .iter()
                .filter(|d| d.sent_at >= from && d.sent_at < to)
            {
                h.saturating_record((d.at - d.sent_at).as_micros().max(1) as u64);
            }
            Some(if h.is_empty() {
                format!("{name} none")
            } else {
                format!(
                    "{name} p99 {} max {} ({} in {:.1} s)",
                    ms(Duration::from_micros(h.value_at_quantile(0.99))),
                    ms(Duration::from_micros(h.max())),
                    h.len(),
                    (to - from).as_secs_f64()
                )
            })
        })
        .collect()
}

impl AttackReport {
    /// A run that could not be made here, and why.
    pub(super) fn skipped(options: &AttackOptions, program: &Path, why: String) -> AttackReport {
        AttackReport {
            attack: options.attack,
            options: options.clone(),
            program: program.to_owned(),
            relay: None,
            outcome: Outcome::default(),
            latency: None,
            missing: 0,
            misordered: 0,
            rejoins: 0,
            timed_out_seen: 0,
            errors: Vec::new(),
            clock: None,
            by_phase: Vec::new(),
            failures: Vec::new(),
            skipped: Some(why),
        }
    }

    /// The figures of a run, judged.
    pub(super) fn new(
        options: &AttackOptions,
        relay: Relay,
        outcome: Outcome,
        books: Books,
    ) -> AttackReport {
        let mut latency =
            Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        if let Some((from, to)) = outcome.window {
            for d in books
                .deliveries
                .iter()
                .filter(|d| d.sent_at >= from && d.sent_at <= to)
            {
                latency.saturating_record((d.at - d.sent_at).as_micros().max(1) as u64);
            }
        }
        let clock = outcome.steps.map(|(ahead, back)| {
            let settle = Duration::from_secs(1);
            let stepped = books
                .deliveries
                .iter()
                .filter(|d| d.sent_at >= ahead + settle && d.sent_at < back)
                .filter(|d| d.time.0 - d.wall.0 > STEPPED)
                .count() as u64;
            let wrong = books
                .deliveries
                .iter()
                .filter(|d| d.sent_at >= back + settle)
                .filter(|d| (d.time.0 - d.wall.0).abs() > CLOCK_SLACK)
                .count() as u64;
            (stepped, wrong)
        });
        let by_phase = by_phase(&outcome, &books);
        let mut report = AttackReport {
            attack: options.attack,
            options: options.clone(),
            program: relay.program.clone(),
            relay: Some(relay),
            latency: Some(latency),
            missing: books.missing(),
            misordered: books.misordered,
            rejoins: books.rejoins,
            timed_out_seen: books.timed_out_seen,
            errors: books.errors,
            clock,
            by_phase,
            failures: Vec::new(),
            skipped: None,
            outcome,
        };
        report.failures = report.judge();
        report
    }

    fn judge(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.latency.as_ref().filter(|h| !h.is_empty()) {
            None => out.push("no ordinary message was measured".to_owned()),
            Some(h) => {
                let p99 = Duration::from_micros(h.value_at_quantile(0.99));
                if p99 >= P99_TARGET {
                    out.push(format!("ordinary p99 {} >= 200ms", ms(p99)));
                }
            }
        }
        if let Some(peak) = self.relay.as_ref().and_then(|r| r.rss_peak)
            && peak >= RSS_TARGET
        {
            out.push(format!("relay peak RSS {} >= 100MB", mb(Some(peak))));
        }
        if let Some(log) = self.relay.as_ref().and_then(|r| r.exited.as_ref()) {
            out.push(format!("the relay exited during the attack ({log})"));
        }
        if self.missing > 0 {
            out.push(format!("{} ordinary messages missing", self.missing));
        }
        if self.misordered > 0 {
            out.push(format!(
                "{} ordinary messages out of order",
                self.misordered
            ));
        }
        if self.rejoins > 0 {
            out.push(format!(
                "the ordinary members were dropped {} times",
                self.rejoins
            ));
        }
        if matches!(self.attack, Attack::Who | Attack::Stop) {
            // Two views of the same evictions: the members' own, and an ordinary member's.
            let evicted = self.outcome.evicted.unwrap_or(0).max(self.timed_out_seen);
            if evicted > 0 {
                out.push(format!(
                    "{} members evicted ({} told NotJoined or missing from WHO, {} timed out seen)",
                    evicted,
                    self.outcome.evicted.unwrap_or(0),
                    self.timed_out_seen
                ));
            }
        }
        if let Some((stepped, wrong)) = self.clock {
            if stepped == 0 {
                out.push("no message carried the stepped time: libfaketime did not step the relay's clock".into());
            }
            if wrong > 0 {
                out.push(format!(
                    "{wrong} messages after the step back did not carry the real time"
                ));
            }
        }
        out.extend(self.outcome.failures.iter().cloned());
        out
    }

    /// True when every target was met (or the attack was skipped).
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    fn verdict(&self) -> String {
        if self.skipped.is_some() {
            "skipped".into()
        } else if self.failures.is_empty() {
            "ok".into()
        } else {
            // One word a field: the summary line splits on spaces, and the medians' line
            // lists the runs' verdicts with commas.
            let why = self.failures.join("; ").replace(' ', "_").replace(',', "");
            format!("FAIL({why})")
        }
    }

    fn quantile(&self, q: f64) -> Option<Duration> {
        let h = self.latency.as_ref().filter(|h| !h.is_empty())?;
        Some(Duration::from_micros(if q >= 1.0 {
            h.max()
        } else {
            h.value_at_quantile(q)
        }))
    }

    /// The report's lines, the summary line last.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("attack: {}", self.describe())];
        if let Some(why) = &self.skipped {
            out.push(format!("skipped: {why}"));
            out.push(self.summary());
            return out;
        }
        if let Some(r) = &self.relay {
            out.push(format!(
                "relay: {} serve (pid {}) on {}, default limits{}",
                r.program.display(),
                r.pid,
                r.addr,
                r.max_clients
                    .map_or(String::new(), |n| format!(", --max-clients {n}"))
            ));
        }
        let window = self
            .outcome
            .window
            .map_or(0.0, |(a, b)| (b - a).as_secs_f64());
        let measured = self.latency.as_ref().map_or(0, Histogram::len);
        let q = |x| self.quantile(x).map_or("none".into(), ms);
        out.push(format!(
            "ordinary members (2 from 127.0.0.2, 4 messages/s each): {measured} of their messages sent in the {window:.1} s measured, send to deliver p50 {} p90 {} p99 {} max {}",
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0)
        ));
        out.push(format!(
            "  all their messages: {} missing, {} out of order, {} rejoins{}",
            self.missing,
            self.misordered,
            self.rejoins,
            self.errors
                .first()
                .map_or(String::new(), |e| format!("; first error: {e}"))
        ));
        if let Some(r) = &self.relay {
            let cpu = r.cpu.map_or("unknown".into(), |c| {
                format!(
                    "{:.2} s in {:.1} s ({:.0}% of a core)",
                    c.as_secs_f64(),
                    r.wall.as_secs_f64(),
                    100.0 * c.as_secs_f64() / r.wall.as_secs_f64().max(1e-9)
                )
            });
            out.push(format!(
                "relay memory (its own RSS): idle {}, peak {} during the attack, {} {:.1} s after it",
                mb(r.rss_idle),
                mb(r.rss_peak),
                mb(r.rss_after),
                r.quiet.as_secs_f64()
            ));
            out.push(format!(
                "relay CPU: {cpu}; the bench's own: {}",
                r.bench_cpu
                    .map_or("unknown".into(), |c| format!("{:.2} s", c.as_secs_f64()))
            ));
            if self.attack == Attack::Stop {
                out.push(format!(
                    "relay said it had not run: {} times",
                    r.stalls_logged
                ));
            }
        }
        let refused: Vec<String> = [(4, "NotJoined"), (7, "Full"), (8, "RateLimited")]
            .iter()
            .filter(|(c, _)| self.outcome.refused[*c] > 0)
            .map(|(c, n)| format!("{} {n}", self.outcome.refused[*c]))
            .collect();
        if self.attack.has_sessions() {
            out.push(format!(
                "the attack: {} sessions, {} requests or messages sent in {} datagrams ({} not taken by the bench's sockets); {} datagrams ({} bytes) of answers read; refusals read: {}",
                self.outcome.sessions,
                self.outcome.sent,
                self.outcome.datagrams.0,
                self.outcome.datagrams.1,
                self.outcome.answered.0,
                self.outcome.answered.1,
                if refused.is_empty() { "none".into() } else { refused.join(", ") }
            ));
        }
        if let Some(evicted) = self.outcome.evicted {
            out.push(format!(
                "members evicted: {evicted} (and {} departures \"timed out\" seen by an ordinary member)",
                self.timed_out_seen
            ));
        }
        if let Some((stepped, wrong)) = self.clock {
            out.push(format!(
                "clock: {stepped} messages carried the stepped time (10 years ahead) while it was; {wrong} after the step back did not carry the real time"
            ));
        }
        if !self.by_phase.is_empty() {
            out.push(format!("  by phase, as sent: {}", self.by_phase.join("; ")));
        }
        out.extend(self.outcome.lines.iter().cloned());
        out.push(format!("verdict: {}", self.verdict()));
        out.push(self.summary());
        out
    }

    fn describe(&self) -> String {
        let o = &self.options;
        match self.attack {
            Attack::History => format!(
                "history: {} sessions from 127.0.0.10, each HISTORY for the latest 1000 messages 5 times a second for {} s, on a log of {} messages of {} bytes",
                o.sessions, o.seconds, o.log, o.size
            ),
            Attack::Who => format!(
                "who: {} sessions from 127.0.0.11 sending WHO 5 times a second for {} s, in a room of {} members (64 an address, pinging every 5 s)",
                o.sessions, o.seconds, o.members
            ),
            Attack::Senders => format!(
                "senders: {} sessions from {} addresses, each sending 20 messages of {} bytes a second for {} s",
                o.sessions,
                o.sessions.div_ceil(64),
                o.size,
                o.seconds
            ),
            Attack::Parked => format!(
                "parked: {} sessions (64 an address), each sending csn 2 to 256 (never 1), waiting {} s, then all leaving",
                o.sessions, o.seconds
            ),
            Attack::Stop => format!(
                "stop: {} members pinging every 5 s; the relay stopped (SIGSTOP) for {} s, then continued",
                o.members, o.seconds
            ),
            Attack::Clock => format!(
                "clock: the relay's wall clock stepped +10 years for {} s during the chat, then back (libfaketime)",
                o.seconds
            ),
            Attack::All => "all".into(),
        }
    }

    /// The summary line: `urc-bench-attack attack=… verdict=…`.
    pub fn summary(&self) -> String {
        let mut f = vec![
            format!("attack={}", self.attack.name()),
            format!("relay={}", program_name(&self.program)),
        ];
        if self.skipped.is_none() {
            for (name, q) in [
                ("ordinary_p50", 0.5),
                ("ordinary_p99", 0.99),
                ("ordinary_max", 1.0),
            ] {
                f.push(format!(
                    "{name}={}",
                    self.quantile(q).map_or("none".into(), ms)
                ));
            }
            f.push(format!(
                "ordinary_measured={}",
                self.latency.as_ref().map_or(0, Histogram::len)
            ));
            f.push(format!("ordinary_missing={}", self.missing));
            if let Some(r) = &self.relay {
                f.push(format!("relay_rss_idle={}", mb(r.rss_idle)));
                f.push(format!("relay_peak_rss={}", mb(r.rss_peak)));
                f.push(format!("relay_rss_after={}", mb(r.rss_after)));
                f.push(format!(
                    "relay_cpu={}",
                    r.cpu
                        .map_or("unknown".into(), |c| format!("{:.2}s", c.as_secs_f64()))
                ));
                f.push(format!(
                    "bench_cpu={}",
                    r.bench_cpu
                        .map_or("unknown".into(), |c| format!("{:.2}s", c.as_secs_f64()))
                ));
            }
            if let Some(e) = self.outcome.evicted {
                f.push(format!("evicted={}", e.max(self.timed_out_seen)));
            }
            if self.attack.has_sessions() {
                f.push(format!("attack_sessions={}", self.outcome.sessions));
                f.push(format!("attack_sent={}", self.outcome.sent));
                f.push(format!("attack_answered_bytes={}", self.outcome.answered.1));
            }
            if let Some((stepped, wrong)) = self.clock {
                f.push(format!("clock_stepped={stepped} clock_wrong_after={wrong}"));
            }
            f.extend(self.outcome.fields.iter().map(|(k, v)| format!("{k}={v}")));
        }
        f.push(format!("verdict={}", self.verdict()));
        format!("{SUMMARY}{}", f.join(" "))
    }
}
