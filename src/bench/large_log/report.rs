//! The workload's report: one line a fact, the last the summary line, which `--runs` reads
//! back, as the long log's run reads back those of the shorter logs.

use std::time::Duration;

use super::{JOIN_HISTORY, JOINS, LOG_SUMMARY, LogReport, REQUESTS, SENDERS, Shorter};
use crate::bench::report::mb;

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

impl Shorter {
    /// The field `name=` of its summary, as written.
    fn field(&self, name: &str) -> Option<&str> {
        self.summary
            .split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
