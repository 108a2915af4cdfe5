//! What a run measured, as lines for people, the last one a summary for scripts.

use std::path::PathBuf;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::baseline::{Baseline, Limits, RUN};
use crate::relay::Stats;

/// What the simulated clients did to recover, and what went wrong on the way.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recovery {
    /// SENDs sent again.
    pub retransmits: u64,
    /// Gap repairs asked for.
    pub repairs: u64,
    /// Live duplicates received.
    pub duplicates: u64,
    /// Deliveries out of their sender's order.
    pub misordered: u64,
    /// Sends the socket refused.
    pub refused: u64,
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Report {
    /// The workload's name, or "custom".
    pub workload: String,
    /// Simulated clients.
    pub clients: usize,
    /// How many of them send.
    pub senders: usize,
    /// Messages sent in all.
    pub messages: u64,
    /// Bytes of text a message.
    pub size: usize,
    /// Messages a second offered in all (0: as fast as the window allows).
    pub rate: f64,
    /// The senders' window.
    pub window: u64,
    /// Rooms the clients are in.
    pub rooms: usize,
    /// True when their directories were made before the relay started (one the bench
    /// started: see `relay.rs`), so that the measured phase made none.
    pub rooms_made_first: bool,
    /// When they were more than one: how long the relay took to start again on their logs,
    /// and how many rooms it had then.
    pub restart: Option<(Duration, usize)>,
    /// Where the relay ran and listened.
    pub relay: String,
    /// True when the relay ran in a process of its own (its CPU and memory are its own).
    pub relay_apart: bool,
    /// The relay's client timeout, when the bench set it.
    pub timeout: Duration,
    /// The relay's data directory and the type of its file system, when the bench made it.
    pub data: Option<(PathBuf, Option<String>)>,
    /// How long joining everyone took.
    pub joined_in: Duration,
    /// Messages delivered in order, all receivers together.
    pub delivered: u64,
    /// Deliveries expected in all.
    pub deliveries: u64,
    /// From the first send to the last delivery.
    pub delivery_time: Duration,
    /// Messages acknowledged.
    pub acked: u64,
    /// From the first send to the last acknowledgement.
    pub ack_time: Duration,
    /// Send-to-deliver latencies, nanoseconds.
    pub latency: Histogram<u64>,
    /// With several relays: the latencies of deliveries on another relay than the sender's.
    pub remote_latency: Option<Histogram<u64>>,
    /// With a NATS store: its short name (`nats-r3`) and what ran.
    pub store: Option<(String, String)>,
    /// With several relays: each relay process's CPU time in the measured phase.
    pub relay_cpus: Vec<Option<Duration>>,
    /// With a NATS store: the CPU time of its servers, all together, in the measured phase.
    pub nats_cpu: Option<Duration>,
    /// What the clients did to recover, and what went wrong on the way.
    pub recovery: Recovery,
    /// ERRORs the relay sent, and the first one.
    pub errors: (u64, Option<String>),
    /// What the relay counted.
    pub stats: Option<Stats>,
    /// CPU time of the relay (its process, or its thread in this one) during the measured
    /// phase.
    pub relay_cpu: Option<Duration>,
    /// CPU time of the bench's whole process during the measured phase.
    pub process_cpu: Option<Duration>,
    /// Wall-clock time of the measured phase.
    pub wall: Duration,
    /// Peak resident memory of the process during the measured phase, and over the run.
    pub peak_rss: (Option<u64>, Option<u64>),
    /// Whether the peak could be restarted at the measured phase.
    pub peak_reset: bool,
    /// Peak resident memory of the relay's process (when it has its own) during the measured
    /// phase, and over the run.
    pub relay_rss: (Option<u64>, Option<u64>),
    /// Whether the relay's peak could be restarted at the measured phase.
    pub relay_peak_reset: bool,
    /// The raw loopback baseline, the size of its datagrams, and the machine's limits.
    pub baseline: Option<(Baseline, usize, Limits)>,
}

impl Report {
    /// Deliveries a second.
    pub fn deliveries_per_second(&self) -> f64 {
        per_second(self.delivered, self.delivery_time)
    }

    /// Messages acknowledged a second.
    pub fn acks_per_second(&self) -> f64 {
        per_second(self.acked, self.ack_time)
    }

    /// The report, one line a fact; the last line is the summary.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let rate = if self.rate > 0.0 {
            format!("{} messages/s offered", self.rate)
        } else {
            "as fast as the window allows".to_owned()
        };
        out.push(format!(
            "workload {}: {} clients ({} sending), {} messages of {} bytes, window {}, {rate}",
            self.workload, self.clients, self.senders, self.messages, self.size, self.window
        ));
        out.push(match (&self.data, &self.store) {
            (Some((dir, _)), Some(_)) => format!(
                "relay: {}, its rooms in NATS (below), its data directory {}; \
                 limits raised for the bench: message rate and burst, request rate, clients per address, clients, \
                 client timeout {} s",
                self.relay,
                dir.display(),
                self.timeout.as_secs()
            ),
            (Some((dir, kind)), None) => format!(
                "relay: {}, log in {} ({}), fdatasync before every acknowledgement; \
                 limits raised for the bench: message rate and burst, request rate, clients per address, clients, \
                 client timeout {} s",
                self.relay,
                dir.display(),
                kind.as_deref().unwrap_or("file system unknown"),
                self.timeout.as_secs()
            ),
            (None, _) => format!("relay: {}, its log and limits its own", self.relay),
        });
        if let Some((_, what)) = &self.store {
            out.push(format!(
                "store: nats-server {what}; a message acknowledged once JetStream acknowledged it"
            ));
        }
        out.push(format!(
            "joined: {} clients in {:.2} s",
            self.clients,
            self.joined_in.as_secs_f64()
        ));
        if self.rooms > 1 {
            let made = if self.rooms_made_first {
                "; their directories made before the relay started"
            } else {
                ""
            };
            out.push(format!(
                "rooms: {} of {} clients each (each message goes to the others of its room{made})",
                self.rooms,
                self.clients.div_ceil(self.rooms)
            ));
        }
        out.push(format!(
            "delivered: {} of {} in order in {:.3} s: {:.0} deliveries/s",
            self.delivered,
            self.deliveries,
            self.delivery_time.as_secs_f64(),
            self.deliveries_per_second()
        ));
        out.push(format!(
            "acknowledged: {} of {} messages in {:.3} s: {:.0} messages/s",
            self.acked,
            self.messages,
            self.ack_time.as_secs_f64(),
            self.acks_per_second()
        ));
        out.push(format!(
            "latency, first send to in-order delivery: {}",
            quantiles(&self.latency)
        ));
        if let Some(h) = &self.remote_latency {
            out.push(format!(
                "latency on another relay than the sender's: {}",
                quantiles(h)
            ));
        }
        let Recovery {
            retransmits,
            repairs,
            duplicates,
            misordered,
            refused,
        } = self.recovery;
        out.push(format!(
            "recovery: {retransmits} retransmitted, {repairs} gap repairs, {duplicates} duplicates received, \
             {misordered} out of a sender's order, {refused} sends refused by the socket"
        ));
        if let Some(s) = &self.stats {
            out.push(format!(
                "relay counted: {} stored, {} duplicates, {} out of order, {} rate limited, {} malformed; \
                 {} handshakes, {} datagrams it could not open",
                s.stored,
                s.duplicates,
                s.out_of_order,
                s.rate_limited,
                s.malformed,
                s.handshakes,
                s.unsealed
            ));
        }
        if self.errors.0 > 0 {
            out.push(format!(
                "relay errors: {} (first: {})",
                self.errors.0,
                self.errors.1.as_deref().unwrap_or("")
            ));
        }
        let share = |cpu: Option<Duration>| match cpu {
            Some(c) => format!(
                "{:.2} s ({:.0}% of a core)",
                c.as_secs_f64(),
                100.0 * c.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
            ),
            None => "unknown".to_owned(),
        };
        let reset = |done: bool| {
            if done {
                ""
            } else {
                " (could not restart the peak: includes the join phase)"
            }
        };
        if self.relay_apart {
            let relays = if self.relay_cpus.len() > 1 {
                format!(
                    "{} relay processes {} (each: {})",
                    self.relay_cpus.len(),
                    share(self.relay_cpu),
                    self.relay_cpus
                        .iter()
                        .map(|c| share(*c))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                format!("relay process {}", share(self.relay_cpu))
            };
            let nats = if self.store.is_some() {
                format!(", nats-server {}", share(self.nats_cpu))
            } else {
                String::new()
            };
            out.push(format!(
                "cpu in the measured {:.3} s: {relays}{nats}, the bench's clients {}",
                self.wall.as_secs_f64(),
                share(self.process_cpu)
            ));
            if self.load_outweighs_relay() {
                out.push(
                    "note: the bench's clients used more CPU than the relay: on a machine of few cores the figures may measure the clients as much as the relay"
                        .into(),
                );
            }
            out.push(format!(
                "memory: relay process peak RSS {} in the measured phase{}, {} over the run; the bench's clients {} in the measured phase",
                mb(self.relay_rss.0),
                reset(self.relay_peak_reset),
                mb(self.relay_rss.1),
                mb(self.peak_rss.0)
            ));
        } else {
            out.push(format!(
                "cpu in the measured {:.3} s: relay thread {}, whole process (relay and clients) {}",
                self.wall.as_secs_f64(),
                share(self.relay_cpu),
                share(self.process_cpu)
            ));
            out.push(format!(
                "memory: peak RSS {} in the measured phase{}, {} over the run (the whole bench process: relay and clients)",
                mb(self.peak_rss.0),
                reset(self.peak_reset),
                mb(self.peak_rss.1)
            ));
        }
        if let Some((took, rooms)) = self.restart {
            out.push(format!(
                "restart: a relay started on the {rooms} rooms' logs was ready in {:.3} s",
                took.as_secs_f64()
            ));
        }
        if let Some((b, size, limits)) = &self.baseline {
            out.push(format!(
                "baseline: one thread sent {} datagrams of {size} bytes to {} sockets: {:.0}/s sent, {:.0}/s read by another thread; \
                 urc's deliveries/s are {:.2}x the datagrams read/s",
                b.sent,
                self.clients,
                b.sent_per_second(),
                b.received_per_second(),
                self.ratio().unwrap_or(0.0)
            ));
            out.push(format!(
                "limits: the same thread sends {:.0} datagrams/s one a sendto, {:.0}/s 32 a sendmmsg, {:.0}/s {RUN} to a socket a segmented send; the data directory's disk flushes {}",
                b.sent_per_second(),
                limits.mmsg,
                limits.segmented,
                limits
                    .flushes
                    .map_or("(not measured)".to_owned(), |f| format!("{f:.0} times/s"))
            ));
        }
        out.push(self.summary());
        out
    }

    /// True when the bench's own process (the clients) used more CPU than the relay's.
    pub fn load_outweighs_relay(&self) -> bool {
        self.relay_apart
            && matches!((self.process_cpu, self.relay_cpu), (Some(load), Some(relay)) if load > relay)
    }

    /// urc's deliveries a second as a multiple of the baseline's datagrams read a second.
    pub fn ratio(&self) -> Option<f64> {
        let (b, _, _) = self.baseline.as_ref()?;
        Some(self.deliveries_per_second() / b.received_per_second().max(1e-9))
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        let h = &self.latency;
        let mut s = format!(
            "urc-bench workload={} clients={} senders={} messages={} size={} deliveries/s={:.0} acks/s={:.0} \
             p50={} p99={} p999={}",
            self.workload,
            self.clients,
            self.senders,
            self.messages,
            self.size,
            self.deliveries_per_second(),
            self.acks_per_second(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
        );
        if let Some(h) = &self.remote_latency {
            s += &format!(
                " remote_p50={} remote_p99={}",
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99))
            );
        }
        if let Some((label, _)) = &self.store {
            s += &format!(" store={label}");
        }
        if self.relay_cpus.len() > 1 {
            s += &format!(" relays={}", self.relay_cpus.len());
        }
        if let Some(c) = self.relay_cpu {
            s += &format!(" relay_cpu={:.2}s", c.as_secs_f64());
        }
        if let Some(c) = self.nats_cpu {
            s += &format!(" nats_cpu={:.2}s", c.as_secs_f64());
        }
        if self.relay_apart {
            if let Some(c) = self.process_cpu {
                s += &format!(" load_cpu={:.2}s", c.as_secs_f64());
            }
            if let Some(p) = self.relay_rss.0 {
                s += &format!(" relay_rss={:.1}MB", p as f64 / 1e6);
            }
        } else if let Some(p) = self.peak_rss.0 {
            s += &format!(" peak_rss={:.1}MB", p as f64 / 1e6);
        }
        if self.rooms > 1 {
            s += &format!(" rooms={}", self.rooms);
        }
        if let Some((took, _)) = self.restart {
            s += &format!(" restart={:.3}s", took.as_secs_f64());
        }
        if let (Some((b, _, limits)), Some(r)) = (&self.baseline, self.ratio()) {
            s += &format!(
                " baseline/s={:.0} ratio={r:.2} sendto/s={:.0} sendmmsg/s={:.0} gso/s={:.0}",
                b.received_per_second(),
                b.sent_per_second(),
                limits.mmsg,
                limits.segmented
            );
            if let Some(f) = limits.flushes {
                s += &format!(" fdatasync/s={f:.0}");
            }
        }
        s
    }
}

fn per_second(n: u64, t: Duration) -> f64 {
    if n == 0 {
        return 0.0;
    }
    n as f64 / t.as_secs_f64().max(1e-9)
}

/// A histogram's p50, p90, p99, p99.9 and max, and its count.
fn quantiles(h: &Histogram<u64>) -> String {
    format!(
        "p50={} p90={} p99={} p99.9={} max={} ({} samples)",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.len()
    )
}

/// Nanoseconds as milliseconds with microsecond precision.
fn ms(nanos: u64) -> String {
    format!("{:.3}ms", nanos as f64 / 1e6)
}

/// Bytes as megabytes, or "unknown".
pub(super) fn mb(bytes: Option<u64>) -> String {
    bytes.map_or("unknown".to_owned(), |b| {
        format!("{:.1} MB", b as f64 / 1e6)
    })
}
