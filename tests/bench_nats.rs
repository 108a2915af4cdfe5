//! `urc bench --store nats` with tiny numbers: the bench starts its own NATS (one node), its relay (or W5's three) on it, runs, and leaves no nats-server or relay behind; W5 refuses to run without NATS. The benchmark itself is `urc bench --workload w5 --store nats --replicas 3` (docs/performance.md).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

/// One test at a time: each starts NATS and relays, like tests/cluster.rs's.
fn alone() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `urc bench --store nats --nats-server <the tests' server>` with `args`, requires it to
/// succeed within `bound` and returns what it printed.
fn bench_on_nats(args: &[&str], bound: Duration) -> String {
    let server = common::nats::server();
    let started = Instant::now();
    let mut all: Vec<std::ffi::OsString> = ["--store", "nats", "--nats-server"]
        .map(Into::into)
        .to_vec();
    all.push(server.into());
    all.extend(args.iter().map(Into::into));
    let stdout = common::bench_passes(&all);
    assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
    // Everything it started is gone: its NATS directory is named in the report.
    let dir = stdout
        .split(" on 127.0.0.1 in ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("no NATS directory in {stdout}"));
    assert!(!std::path::Path::new(dir).exists(), "{dir} was left");
    stdout
}

/// The last line's field `name`.
fn field<'a>(stdout: &'a str, name: &str) -> &'a str {
    let last = stdout.lines().last().expect("a last line");
    last.split_whitespace()
        .find_map(|f| f.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {last:?}"))
}

#[test]
fn a_tiny_w1_on_one_nats_node_passes() {
    let _alone = alone();
    let stdout = bench_on_nats(
        &["--messages", "300", "--baseline", "2000", "--seconds", "20"],
        Duration::from_secs(10),
    );
    assert!(
        stdout.contains("delivered: 5700 of 5700 in order"),
        "{stdout}"
    );
    assert!(stdout.contains("streams of 1 replica(s)"), "{stdout}");
    assert!(stdout.contains("relay counted: 300 stored"), "{stdout}");
    assert_eq!(field(&stdout, "store="), "nats-r1");
    assert!(field(&stdout, "nats_cpu=").ends_with('s'), "{stdout}");
    assert!(field(&stdout, "deliveries/s=").parse::<f64>().unwrap() > 0.0);
}

#[test]
fn a_tiny_w5_spans_three_relays_on_one_store() {
    let _alone = alone();
    let stdout = bench_on_nats(
        &[
            "--workload",
            "w5",
            "--clients",
            "9",
            "--messages",
            "300",
            "--baseline",
            "2000",
            "--seconds",
            "20",
        ],
        Duration::from_secs(15),
    );
    // 300 messages to the 8 others, 6 of them on the two other relays.
    assert!(
        stdout.contains("delivered: 2400 of 2400 in order"),
        "{stdout}"
    );
    assert!(stdout.contains("3 × "), "{stdout}");
    assert!(stdout.contains("(1800 samples)"), "{stdout}");
    assert_eq!(field(&stdout, "relays="), "3");
    assert!(field(&stdout, "remote_p99=").ends_with("ms"), "{stdout}");

    let out = Command::new(env!("CARGO_BIN_EXE_urc"))
        .args(["bench", "--workload", "w5", "--baseline", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "urc: --workload w5 runs 3 relays on one NATS store: give --store nats"
    );
}
