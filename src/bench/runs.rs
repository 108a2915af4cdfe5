//! `urc bench --runs N [--peer CMD]`: a workload run N times, each in a fresh process, taking
//! turns with a peer server's script on the same workload, and the medians of both.
//!
//! Two cores and a virtual machine make one run's figure move by 10-20% (and much more when
//! anything else runs), so a comparison is only fair between medians of runs taken in turns.

use std::process::{Command, Stdio};

/// The settings `--runs` and `--peer` add to a workload.
#[derive(Debug, Clone)]
pub struct Runs {
    /// How many times each side runs.
    pub runs: usize,
    /// The peer's command (a path, run with `--clients N --messages M` appended), if any.
    pub peer: Option<String>,
    /// The workload's clients and messages, for the peer's arguments.
    pub clients: usize,
    /// See `clients`.
    pub messages: u64,
}

/// The figures a summary line carries, as `name=value` pairs.
pub(super) fn fields(line: &str) -> Vec<(&str, &str)> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .collect()
}

/// The number of the field `name` of a summary line.
pub(super) fn figure(line: &str, name: &str) -> Option<f64> {
    fields(line)
        .into_iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| number(v))
}

/// A field's number: `3739539`, `1.740ms` (milliseconds), `12.6MB`, `0.23s`.
pub(super) fn number(value: &str) -> Option<f64> {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    digits.parse().ok()
}

/// The median of `values` (the lower of the middle two for an even count).
pub(super) fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get((values.len().max(1) - 1) / 2).copied()
}

/// Runs `urc bench` with `args` (this run's arguments without `--runs` and `--peer`) and the
/// peer in turns; prints each run's summary line and, last, the medians.
///
/// # Errors
/// When a run or the peer fails, or prints no figure.
pub fn run(args: &[String], how: &Runs, progress: &mut dyn FnMut(&str)) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut ours: Vec<String> = Vec::new();
    let mut theirs: Vec<f64> = Vec::new();
    for k in 1..=how.runs {
        progress(&format!(
            "run {k} of {}: urc bench {}",
            how.runs,
            args.join(" ")
        ));
        let line = last_line(
            Command::new(&exe).arg("bench").args(args),
            "urc bench",
            "urc-bench ",
        )?;
        println!("{line}");
        ours.push(line);
        if let Some(peer) = &how.peer {
            progress(&format!("run {k} of {}: {peer}", how.runs));
            let mut command = Command::new(peer);
            command
                .arg("--clients")
                .arg(how.clients.to_string())
                .arg("--messages")
                .arg(how.messages.to_string());
            let line = last_line(&mut command, peer, "deliveries/s=")?;
            println!("peer: {line}");
            let deliveries = figure(&line, "deliveries/s")
                .ok_or_else(|| format!("the peer printed no deliveries/s= last: {line}"))?;
            theirs.push(deliveries);
        }
    }
    println!("{}", summary(&ours, &mut theirs)?);
    Ok(())
}

/// Runs `command` (its stderr passed through) and returns the last line it printed, which
/// must contain `summary`.
///
/// # Errors
/// When it cannot run, fails, or ends with another line.
pub(super) fn last_line(
    command: &mut Command,
    what: &str,
    summary: &str,
) -> Result<String, String> {
    let out = command
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().last() {
        Some(line) if out.status.success() && line.contains(summary) => Ok(line.to_owned()),
        _ => Err(format!("{what} failed ({}): no summary line", out.status)),
    }
}

/// The medians line: urc's figures (those of the first run's summary that are numbers), each
/// the median over the runs, and the peer's deliveries/s and urc's ratio to it.
fn summary(ours: &[String], theirs: &mut [f64]) -> Result<String, String> {
    let first = ours.first().ok_or("no run")?;
    let mut out = vec![format!("urc-bench-medians runs={}", ours.len())];
    for (name, value) in fields(first) {
        let unit = value.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
        let mut values: Vec<f64> = ours.iter().filter_map(|l| figure(l, name)).collect();
        match (number(value), values.len() == ours.len()) {
            (Some(_), true) => {
                let m = median(&mut values).unwrap_or(0.0);
                // As many decimals as the runs print.
                let number = value.trim_end_matches(unit);
                let decimals = number.split_once('.').map_or(0, |(_, d)| d.len());
                let shown = format!("{m:.decimals$}{unit}");
                out.push(format!("{name}={shown}"));
            }
            // Words (the workload's name) and figures some run lacks stay as the first run's.
            _ if number(value).is_none() => out.push(format!("{name}={value}")),
            _ => {}
        }
    }
    if !theirs.is_empty() {
        let peer = median(theirs).unwrap_or(0.0);
        let mut mine: Vec<f64> = ours
            .iter()
            .filter_map(|l| figure(l, "deliveries/s"))
            .collect();
        let mine = median(&mut mine).unwrap_or(0.0);
        out.push(format!("peer_deliveries/s={peer:.0}"));
        out.push(format!("peer_ratio={:.2}", mine / peer));
    }
    Ok(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_summary_lines_and_the_peers_ratio() {
        let runs = [
            "urc-bench workload=w1 clients=20 deliveries/s=3000000 p50=1.5ms p99=3.0ms peak_rss=12.0MB",
            "urc-bench workload=w1 clients=20 deliveries/s=4000000 p50=1.7ms p99=2.0ms peak_rss=13.0MB",
            "urc-bench workload=w1 clients=20 deliveries/s=3500000 p50=1.6ms p99=9.0ms peak_rss=12.5MB",
        ]
        .map(String::from);
        let mut peer = [2_000_000.0, 2_600_000.0, 2_500_000.0];
        let line = summary(&runs, &mut peer).unwrap();
        assert_eq!(
            line,
            "urc-bench-medians runs=3 workload=w1 clients=20 deliveries/s=3500000 p50=1.6ms p99=3.0ms peak_rss=12.5MB peer_deliveries/s=2500000 peer_ratio=1.40"
        );
        let mut none: [f64; 0] = [];
        assert!(!summary(&runs, &mut none).unwrap().contains("peer"));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.0));
    }
}
