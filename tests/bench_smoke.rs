//! `urc bench` with tiny numbers still runs end to end and ends with its summary line. The
//! benchmark itself is not a test: `cargo run --release -- bench --workload w1` is.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::bench_passes;

#[test]
fn a_tiny_bench_passes_and_ends_with_the_summary() {
    let started = Instant::now();
    let stdout = bench_passes(&[
        "--clients",
        "4",
        "--senders",
        "2",
        "--messages",
        "300",
        "--baseline",
        "2000",
        "--seconds",
        "20",
    ]);
    assert!(
        stdout.contains("delivered: 900 of 900 in order"),
        "{stdout}"
    );
    // The relay was `urc serve` in a process of its own: measured apart, and what it counted
    // read from its last log line.
    assert!(stdout.contains(" serve, process "), "{stdout}");
    assert!(stdout.contains("relay counted: 300 stored"), "{stdout}");
    assert!(stdout.contains("cpu in the measured"), "{stdout}");
    let last = stdout.lines().last().expect("a last line");
    let field = |name: &str| {
        last.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {last:?}"))
            .to_owned()
    };
    let rate: f64 = field("deliveries/s=").parse().expect("a number");
    assert!(rate > 0.0, "{last}");
    for (f, unit) in [
        ("relay_cpu=", "s"),
        ("load_cpu=", "s"),
        ("relay_rss=", "MB"),
    ] {
        let v = field(f);
        let n: f64 = (v.strip_suffix(unit))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{f}{v} is not a number of {unit}"));
        // CPU times are counted in ticks of 10 ms: a tiny run may have none.
        assert!(n >= 0.0, "{last}");
    }
    for p in ["p50=", "p99=", "p999="] {
        let v = field(p);
        let ms: f64 = v
            .strip_suffix("ms")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{p}{v} is not milliseconds"));
        assert!(ms > 0.0, "{last}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// `--relay ADDR` drives a relay that was running before the bench (its key learnt on first
/// contact), finds its process by its port to measure it, and leaves it running; `--relay
/// in-process` runs the relay on a thread of the bench.
#[test]
fn the_relay_may_be_one_already_running_or_in_the_bench() {
    let data = tempfile::tempdir().unwrap();
    let mut relay = common::Relay::start(
        data.path(),
        &[
            "--rate",
            "1000000",
            "--burst",
            "1000000",
            "--request-rate",
            "1000000",
        ],
    );
    let addr = relay.addr.to_string();
    let tiny = [
        "--clients",
        "3",
        "--messages",
        "200",
        "--baseline",
        "0",
        "--seconds",
        "20",
    ];
    // Twice: the relay keeps each name for the key that took it, so each run has names of its
    // own.
    bench_passes(&[&tiny[..], &["--relay", &addr]].concat());
    let stdout = bench_passes(&[&tiny[..], &["--relay", &addr]].concat());
    assert!(
        stdout.contains("delivered: 400 of 400 in order"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "relay: running before the bench, process {}, on {addr}",
            relay.child.id()
        )),
        "{stdout}"
    );
    let last = stdout.lines().last().unwrap();
    assert!(
        last.contains(" relay_cpu=") && last.contains(" load_cpu="),
        "{last}"
    );
    assert!(
        relay.child.try_wait().unwrap().is_none(),
        "the bench stopped it"
    );
    assert!(relay.stop().success());

    let stdout = bench_passes(&[&tiny[..], &["--relay", "in-process"]].concat());
    assert!(stdout.contains("relay: in this process"), "{stdout}");
    assert!(stdout.contains("relay counted: 200 stored"), "{stdout}");

    let out = Command::new(env!("CARGO_BIN_EXE_urc"))
        .args(["bench", "--relay", "192.0.2.1:7707", "--baseline", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not on this machine"), "{stderr}");
}

#[test]
fn a_bench_that_cannot_finish_fails_loudly() {
    // One second cannot carry a million messages: the run must say so and exit 1.
    let out = Command::new(env!("CARGO_BIN_EXE_urc"))
        .args([
            "bench",
            "--clients",
            "2",
            "--messages",
            "1000000",
            "--baseline",
            "0",
            "--seconds",
            "1",
        ])
        .output()
        .expect("urc runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bench failed: the time bound of 1 s came first"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("deliveries/s="), "{stdout}");
}

#[test]
fn the_log_workload_runs_on_a_short_log_and_ends_with_its_summary() {
    // 12,000 messages: the 10,000-message log beside it is measured in a process of its own.
    let stdout = bench_passes(&[
        "--workload",
        "log",
        "--messages",
        "12000",
        "--seconds",
        "60",
    ]);
    assert!(
        stdout.contains("history of 20 from seq 1 (read from the log)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("beside a log of 10000 messages, in a process of its own"),
        "{stdout}"
    );
    let last = stdout.lines().last().expect("a last line");
    assert!(
        last.starts_with("urc-bench workload=log messages=12000 ready="),
        "{last}"
    );
    for field in [
        "join_history_p50=",
        "history_first_p50=",
        "history_middle_p50=",
        "rss_10000=",
    ] {
        assert!(last.contains(field), "no {field} in {last}");
    }
}

/// `--runs` runs the workload again in fresh processes, in turns with a `--peer` script given
/// the workload's clients and messages, and ends with the medians and urc's ratio to the peer.
#[cfg(unix)]
#[test]
fn runs_in_turns_with_a_peer_end_with_the_medians() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let peer = dir.path().join("peer.sh");
    let asked = dir.path().join("asked");
    std::fs::write(
        &peer,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\necho 'peer warming up'\necho 'complete=True deliveries/s=100'\n",
            asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&peer, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stdout = bench_passes(&[
        "--clients",
        "3",
        "--messages",
        "60",
        "--baseline",
        "0",
        "--runs",
        "2",
        "--peer",
        peer.to_str().unwrap(),
    ]);
    let summaries = stdout
        .lines()
        .filter(|l| l.starts_with("urc-bench "))
        .count();
    assert_eq!(summaries, 2, "{stdout}");
    assert_eq!(
        std::fs::read_to_string(&asked).unwrap(),
        "--clients 3 --messages 60\n--clients 3 --messages 60\n"
    );
    let last = stdout.lines().last().unwrap();
    assert!(last.starts_with("urc-bench-medians runs=2 "), "{last}");
    assert!(last.contains(" peer_deliveries/s=100 "), "{last}");
    let ratio: f64 = last
        .split_whitespace()
        .find_map(|f| f.strip_prefix("peer_ratio="))
        .and_then(|r| r.parse().ok())
        .expect("a ratio");
    let deliveries: f64 = last
        .split_whitespace()
        .find_map(|f| f.strip_prefix("deliveries/s="))
        .and_then(|r| r.parse().ok())
        .expect("deliveries/s");
    assert!((ratio - deliveries / 100.0).abs() / ratio < 0.01, "{last}");
}

/// `--attack` at a tiny scale: the relay in a process of its own, two attackers asking for
/// history beside the two ordinary members, and the summary line with the figures issue 11
/// asks for; the exit code follows the verdict.
#[test]
fn a_tiny_attack_runs_end_to_end_and_ends_with_its_summary() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_urc"))
        .args([
            "bench",
            "--attack",
            "history",
            "--sessions",
            "2",
            "--seconds",
            "1",
            "--messages",
            "200",
            "--size",
            "26",
        ])
        .output()
        .expect("urc runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("attack: history: 2 sessions from 127.0.0.10"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let last = stdout.lines().last().expect("a last line");
    assert!(
        last.starts_with("urc-bench-attack attack=history relay=urc "),
        "{last}"
    );
    let field = |name: &str| {
        last.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {last:?}"))
            .to_owned()
    };
    for name in ["ordinary_p50=", "ordinary_p99=", "ordinary_max="] {
        assert!(field(name).ends_with("ms"), "{last}");
    }
    assert_eq!(field("ordinary_missing="), "0", "{last}");
    let peak: f64 = field("relay_peak_rss=")
        .strip_suffix("MB")
        .and_then(|n| n.parse().ok())
        .expect("megabytes");
    assert!(peak > 0.0, "{last}");
    let answered: u64 = field("attack_answered_bytes=").parse().expect("a number");
    assert!(answered > 0, "the attackers drew no answer: {last}");
    let verdict = field("verdict=");
    assert_eq!(out.status.success(), verdict == "ok", "{last}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
