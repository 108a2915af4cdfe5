//! `urc bench --attack all` and `--attack … --runs N`: each run of each attack in a process of
//! its own (this program run again: a relay's memory, and the kernel's sockets, start afresh),
//! its report printed as it comes, then the medians of each attack's runs.

use std::process::{Command, Stdio};

use super::Attack;
use super::report::SUMMARY;
use crate::bench::runs::{fields, figure, median, number};

/// Runs each of `attacks` `runs` times with `args` (the bench's other arguments); prints
/// every run's report and each attack's medians.
///
/// # Errors
/// When a run cannot be made or prints no summary, or when any run missed a target (after
/// every run was made).
pub fn run(
    args: &[String],
    attacks: &[Attack],
    runs: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut failed = Vec::new();
    for &attack in attacks {
        let mut lines = Vec::new();
        for k in 1..=runs {
            progress(&format!(
                "{} run {k} of {runs}: urc bench --attack {} {}",
                attack.name(),
                attack.name(),
                args.join(" ")
            ));
            let out = Command::new(&exe)
                .args(["bench", "--attack", attack.name()])
                .args(args)
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| format!("cannot run urc bench: {e}"))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let Some(line) = stdout.lines().rev().find(|l| l.starts_with(SUMMARY)) else {
                return Err(format!(
                    "urc bench --attack {} failed ({}): no summary line",
                    attack.name(),
                    out.status
                ));
            };
            // The run's whole report: its lines say where a figure comes from.
            for l in stdout.lines() {
                println!("{l}");
            }
            if !line.contains(" verdict=ok") && !line.contains(" verdict=skipped") {
                failed.push(format!("{} run {k}", attack.name()));
            }
            lines.push(line.to_owned());
        }
        if runs > 1 {
            println!("{}", medians(&lines));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("targets missed in {}", failed.join(", ")))
    }
}

/// The medians of one attack's summary lines: each figure's median over the runs, the words
/// (the attack's name, the relay's) as the first run's, and every run's verdict.
fn medians(lines: &[String]) -> String {
    let first = lines.first().map_or("", String::as_str);
    let mut out = vec![format!("urc-bench-attack-medians runs={}", lines.len())];
    for (name, value) in fields(first) {
        if name == "verdict" {
            continue;
        }
        let unit = value.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
        let mut values: Vec<f64> = lines.iter().filter_map(|l| figure(l, name)).collect();
        if number(value).is_none() {
            out.push(format!("{name}={value}"));
        } else if values.len() == lines.len() {
            let decimals = value
                .trim_end_matches(unit)
                .split_once('.')
                .map_or(0, |(_, d)| d.len());
            let m = median(&mut values).unwrap_or(0.0);
            out.push(format!("{name}={m:.decimals$}{unit}"));
        }
    }
    let verdicts: Vec<&str> = lines
        .iter()
        .filter_map(|l| {
            fields(l)
                .into_iter()
                .find(|(n, _)| *n == "verdict")
                .map(|(_, v)| v)
        })
        .collect();
    out.push(format!("verdicts={}", verdicts.join(",")));
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_attack_runs_keep_every_verdict() {
        let lines = [
            "urc-bench-attack attack=who relay=urc ordinary_p99=12.0ms relay_peak_rss=30.0MB evicted=0 verdict=ok",
            "urc-bench-attack attack=who relay=urc ordinary_p99=250.5ms relay_peak_rss=31.0MB evicted=0 verdict=FAIL(ordinary_p99_250.5ms_>=_200ms)",
            "urc-bench-attack attack=who relay=urc ordinary_p99=14.0ms relay_peak_rss=29.0MB evicted=0 verdict=ok",
        ]
        .map(String::from);
        assert_eq!(
            medians(&lines),
            "urc-bench-attack-medians runs=3 attack=who relay=urc ordinary_p99=14.0ms relay_peak_rss=30.0MB evicted=0 verdicts=ok,FAIL(ordinary_p99_250.5ms_>=_200ms),ok"
        );
    }
}
