//! `urc bench`: a real relay and simulated clients on loopback, measured.
//!
//! A run measures the raw loopback baseline first, then starts a relay (`urc serve` in a
//! process of its own unless `--relay` says otherwise; a fresh log on disk, flushed before
//! every acknowledgement), joins the
//! simulated clients over real sockets with the real protocol (each its own handshake, every
//! datagram sealed), has the senders send, and waits until every client delivered every other
//! client's message in order. It fails, with what was missing, if that does not happen within
//! the time bound.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | the run from start to report |
//! | `options.rs` | the run's settings, checked, and where the relays keep their rooms |
//! | `relay.rs` | the relay under test, where `--relay` puts it (a process of its own by default, a thread of this one, or one already running), with its limits raised |
//! | `child.rs` | `urc serve` as a process of the bench's: started, measured, signalled, stopped, its counts read from its log |
//! | `nats.rs` | `--store nats`: the bench's own NATS JetStream (one node, or three in a cluster) on loopback, ready, measured, stopped and removed |
//! | `cleanup.rs` | what the bench started, killed and removed when a signal stops it (armed with `--store nats`) |
//! | `workload.rs` | the named workloads and what each one sets |
//! | `ledger.rs` | the books: first-send times, the latency histogram, the run's counts |
//! | `sim/` | one simulated client: join, window, acks, gap repair, pings (`mod.rs`); its acknowledgements and in-order delivery (`order.rs`) |
//! | `outbox.rs` | a simulated sender's side: what it has to send, what is in flight, its window and pace |
//! | `link.rs` | a bench client's secure channel: its tunnel, its handshake bounded, sealing and opening in shared buffers |
//! | `plan.rs` | what the load is: clients, senders, rooms, relays, who hears whom |
//! | `drive.rs` | the poll loop that drives every simulated client on one thread |
//! | `receive.rs` | a client's reads: UDP GRO on, each coalesced read cut back into its datagrams, one buffer for all |
//! | `baseline.rs` | the raw loopback baseline: one thread sending, one reading |
//! | `measure.rs` | CPU time, peak memory and file systems, read from `/proc` |
//! | `report.rs` | the report's lines and the summary line |
//! | `runs.rs` | `--runs` and `--peer`: runs in fresh processes, in turns with a peer, medians |
//! | `large_log/` | the `log` workload: a relay started on a long log, its start, history and memory (its `mod.rs` says which file does what) |
//! | `attack/` | `--attack`: a hostile workload against `urc serve` in a process of its own, beside two ordinary members (its `mod.rs` says which file does what) |

pub mod attack;
mod baseline;
mod child;
mod cleanup;
mod drive;
pub mod large_log;
mod ledger;
mod link;
mod measure;
pub mod nats;
mod options;
mod outbox;
mod plan;
mod receive;
mod relay;
mod report;
pub mod runs;
mod sim;
mod workload;

use std::fmt;
use std::time::{Duration, Instant};

use uuid::Uuid;

pub use baseline::{Baseline, Limits};
pub use options::{Options, Store};
pub use relay::RelayAt;
pub use report::{Recovery, Report};
pub use workload::{Preset, Workload};

use crate::proto::message::{Message, Millis};
use crate::proto::secure::frame::DATA_OVERHEAD;
use crate::proto::wire::{MESSAGES_HEADER, message_len};
use drive::{Load, Stop};
use ledger::Ledger;
use measure::Proc;
use plan::Plan;
use relay::Relay;

/// Bytes of the default text, "hello world message 000123".
pub const DEFAULT_SIZE: usize = "hello world message 000123".len();
/// Datagrams the baseline sends at most, by default.
pub const DEFAULT_BASELINE: u64 = 300_000;
/// Longest the baseline sends.
const BASELINE_BOUND: Duration = Duration::from_secs(1);

/// Why a run failed.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub why: String,
    /// What was measured up to then, when the load ran.
    pub report: Option<Box<Report>>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.why)
    }
}

impl std::error::Error for Failure {}

fn fail(why: impl Into<String>) -> Failure {
    Failure {
        why: why.into(),
        report: None,
    }
}

/// Runs the bench; `progress` is told what is under way.
///
/// # Errors
/// When the relay or the clients cannot be set up, when the time bound comes first, or when
/// a client did not deliver every message in order.
pub fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> Result<Report, Failure> {
    options.check().map_err(fail)?;
    // One socket a client (the baseline's are closed before the clients' are made), plus the
    // relay's few files.
    let wanted = options.clients as u64 + 64;
    let limit = rlimit::increase_nofile_limit(wanted)
        .map_err(|e| fail(format!("cannot raise the open files limit: {e}")))?;
    if limit < wanted {
        return Err(fail(format!(
            "{} clients need about {wanted} open files; the hard limit is {limit} (raise it with ulimit -Hn)",
            options.clients
        )));
    }

    let one = Message {
        seq: 1,
        id: Uuid::nil(),
        from: format!("c{}", options.clients - 1),
        text: sim::text(0, options.size),
        // A time of this century, whose varint is as long as a real message's.
        time: Millis(1_795_593_600_123),
    };
    // A fan-out datagram of one message, sealed.
    let datagram = MESSAGES_HEADER + message_len(&one, None) + DATA_OVERHEAD;
    let baseline = if options.baseline > 0 {
        progress(&format!(
            "baseline: {datagram}-byte datagrams to {} sockets",
            options.clients
        ));
        let b = baseline::measure(
            options.clients,
            datagram,
            options.baseline,
            BASELINE_BOUND,
            baseline::Sending::SendTo,
        )
        .map_err(|e| fail(format!("the baseline failed: {e}")))?;
        let dir = options.data.clone().unwrap_or_else(std::env::temp_dir);
        let limits = baseline::limits(
            options.clients,
            datagram,
            options.baseline,
            BASELINE_BOUND,
            &dir,
        )
        .map_err(|e| fail(format!("the baseline failed: {e}")))?;
        Some((b, datagram, limits))
    } else {
        None
    };

    let nats = match &options.store {
        Store::File => None,
        Store::Nats {
            replicas,
            server,
            sync_always,
        } => {
            progress(&format!(
                "starting NATS: {}",
                if *replicas == 1 {
                    "1 node"
                } else {
                    "3 nodes in a cluster"
                }
            ));
            Some(
                nats::Nats::start(
                    server.as_deref(),
                    *replicas,
                    *sync_always,
                    options.data.as_deref(),
                )
                .map_err(fail)?,
            )
        }
    };
    let store_args = nats
        .as_ref()
        .map(nats::Nats::serve_args)
        .unwrap_or_default();
    progress(&format!(
        "starting {} ({})",
        if options.relays == 1 {
            "the relay".to_owned()
        } else {
            format!("{} relays", options.relays)
        },
        options.relay.name()
    ));
    let rooms = plan::room_names(options.clients, options.room);
    let relay = Relay::start(
        &options.relay,
        options.data.as_deref(),
        options.clients,
        &rooms,
        (&store_args, options.relays),
    )
    .map_err(fail)?;
    // Made in its data directory, when the bench has one (not a relay already running).
    let rooms_made_first = !rooms.is_empty() && relay.data_dir().is_some();
    let data = relay.data_dir().map(|d| {
        let kind = measure::fs_type(&d);
        (d, kind)
    });
    let senders = options.senders as u64;
    let per_sender: Vec<u64> = (0..senders)
        .map(|i| options.messages / senders + u64::from(i < options.messages % senders))
        .collect();
    let every = (options.rate > 0.0)
        .then(|| Duration::from_secs_f64(options.senders as f64 / options.rate));
    let plan = Plan {
        clients: options.clients,
        per_sender,
        size: options.size,
        window: options.window,
        every,
        room: options.room,
        relays: options.relays,
        deadline: Instant::now() + Duration::from_secs(options.seconds),
        names: match options.relay {
            // Fresh names each run: the relay keeps every name for the key that took it.
            RelayAt::Running(..) => format!("b{:04x}c", Uuid::new_v4().as_u128() as u16),
            _ => "c".into(),
        },
    };
    let homes = (0..plan.per_sender.len())
        .map(|i| plan.relay_of(i))
        .collect();
    let mut ledger = Ledger::new(&plan.per_sender, homes, plan.relays);

    let addrs = relay.addrs();
    progress(&format!(
        "joining {} clients to the relay on {}",
        options.clients,
        addrs
            .iter()
            .map(|(a, _)| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let joining = Instant::now();
    let mut load = match Load::join(&addrs, &plan, &mut ledger) {
        Ok(load) => load,
        Err(stop) => {
            relay.finish(false).ok();
            return Err(fail(match stop {
                Stop::Io(e) => format!("a simulated client's socket failed: {e}"),
                Stop::Deadline(what) => format!(
                    "the time bound of {} s came while joining: {what}",
                    options.seconds
                ),
                Stop::Handshake(why) => format!("a simulated client could not join: {why}"),
            }));
        }
    };
    let joined_in = joining.elapsed();
    let peak_overall_before = Proc::Own.peak_rss();
    let relay_peak_before = relay.peak_rss();
    if let Err(e) = load.prepare() {
        relay.finish(false).ok();
        return Err(fail(format!("a simulated client's socket failed: {e}")));
    }

    progress(&format!(
        "sending {} messages from {} senders",
        options.messages, options.senders
    ));
    let peak_reset = Proc::Own.reset_peak_rss();
    let relay_peak_reset = relay.reset_peak();
    let (relay_cpu0, process_cpu0) = (relay.cpu(), Proc::Own.cpu());
    let (cpus0, nats_cpu0) = (relay.cpus(), nats.as_ref().and_then(nats::Nats::cpu));
    let before = Instant::now();
    let outcome = load.run(&plan, &mut ledger);
    let wall = before.elapsed();
    let (relay_cpu1, process_cpu1) = (relay.cpu(), Proc::Own.cpu());
    let (cpus1, nats_cpu1) = (relay.cpus(), nats.as_ref().and_then(nats::Nats::cpu));
    let between =
        |b: Option<Duration>, a: Option<Duration>| b.zip(a).map(|(b, a)| b.saturating_sub(a));
    let relay_cpus = match cpus1.len() {
        0 | 1 => Vec::new(),
        _ => cpus1
            .into_iter()
            .zip(cpus0)
            .map(|(b, a)| between(b, a))
            .collect(),
    };
    let peak = Proc::Own.peak_rss();
    let relay_peak = relay.peak_rss();
    let (where_, apart) = (relay.describe(), relay.is_apart());
    let rooms = plan.rooms();
    if rooms > 1 && !matches!(options.relay, RelayAt::Running(..)) {
        // Started again on the rooms' logs: how long until it would answer.
        progress(&format!(
            "stopping the relay and starting it again on {rooms} room logs"
        ));
    }
    let (stats, restart) = match relay.finish(rooms > 1) {
        Ok((stats, restart)) => (Ok(stats), restart),
        Err(e) => (Err(e), None),
    };
    let store = nats.as_ref().map(|n| (n.label(), n.describe()));
    if let Some(nats) = nats {
        nats.stop();
    }

    let start = match &outcome {
        Ok(start) => *start,
        Err(_) => before,
    };
    let since =
        |t: Option<Instant>| t.map_or(Duration::ZERO, |t| t.saturating_duration_since(start));
    let report = Report {
        workload: options.label(),
        clients: options.clients,
        senders: options.senders,
        messages: plan.messages(),
        size: options.size,
        rate: options.rate,
        window: options.window,
        rooms,
        rooms_made_first,
        restart,
        relay: where_,
        relay_apart: apart,
        timeout: relay::TIMEOUT,
        data,
        joined_in,
        delivered: ledger.delivered,
        deliveries: plan.deliveries(),
        delivery_time: since(ledger.last_delivery),
        acked: ledger.acked,
        ack_time: since(ledger.last_ack),
        recovery: Recovery {
            retransmits: ledger.retransmits,
            repairs: ledger.repairs,
            duplicates: ledger.duplicates,
            misordered: ledger.misordered,
            refused: ledger.send_errors,
        },
        errors: ledger.errors.clone(),
        latency: ledger.latency.clone(),
        remote_latency: ledger.remote.clone(),
        store,
        relay_cpus,
        nats_cpu: between(nats_cpu1, nats_cpu0),
        stats: stats.as_ref().ok().cloned().flatten(),
        relay_cpu: relay_cpu1.zip(relay_cpu0).map(|(b, a)| b.saturating_sub(a)),
        process_cpu: process_cpu1
            .zip(process_cpu0)
            .map(|(b, a)| b.saturating_sub(a)),
        wall,
        peak_rss: (peak, peak.max(peak_overall_before)),
        peak_reset,
        relay_rss: (relay_peak, relay_peak.max(relay_peak_before)),
        relay_peak_reset,
        baseline,
    };
    let why = match outcome {
        Err(Stop::Io(e)) => Some(format!("a simulated client's socket failed: {e}")),
        Err(Stop::Deadline(what)) => Some(format!(
            "the time bound of {} s came first: {what}",
            options.seconds
        )),
        Err(Stop::Handshake(why)) => Some(format!("a simulated client lost the relay: {why}")),
        Ok(_) => {
            let short = load.shortfalls();
            if !short.is_empty() {
                Some(format!(
                    "{} clients did not deliver exactly what they should: {}",
                    short.len(),
                    short.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
                ))
            } else if report.recovery.misordered > 0 {
                Some(format!(
                    "{} messages were delivered out of their sender's order",
                    report.recovery.misordered
                ))
            } else {
                stats.err()
            }
        }
    };
    match why {
        None => Ok(report),
        Some(why) => Err(Failure {
            why,
            report: Some(Box::new(report)),
        }),
    }
}
