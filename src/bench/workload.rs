//! The named workloads of `urc bench` (docs/performance.md describes them) and what each one sets.

use super::large_log;

/// A named workload (docs/performance.md describes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Throughput: 20 clients, 1 sender, 50,000 messages as fast as the window allows.
    W1,
    /// Latency: 50 clients each sending at a steady rate, 1,000 messages/s in all, for 10 s.
    W2,
    /// Scale: 10,000 joined clients, 1 sender, 1,000 messages.
    W3,
    /// Rooms: 1,000 rooms of 10 members, each member sending 1 message/s (10,000 messages/s in
    /// all) for 10 s; then the relay is started again on those 1,000 logs.
    W4,
    /// Relays: three relays on one NATS store (`--store nats`), 20 clients on each, all in one
    /// room; 1 sender on the first relay, 50,000 messages as fast as the window allows.
    W5,
    /// Large log: a relay started on a log of 1,000,000 messages (`--messages`): time until it
    /// answers, joins with 20 messages of history, old history read from the log, memory.
    Log,
}

/// What a workload sets.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// Simulated clients.
    pub clients: usize,
    /// How many of them send.
    pub senders: usize,
    /// Messages in all.
    pub messages: u64,
    /// Messages a second offered in all (0: as fast as the window allows).
    pub rate: f64,
    /// The run's time bound in seconds.
    pub seconds: u64,
    /// Clients in each room (0: all of them in one room).
    pub room: usize,
    /// Relays the clients are shared among (more than one needs a shared store).
    pub relays: usize,
}

impl Workload {
    /// The workload's settings.
    pub fn preset(self) -> Preset {
        match self {
            Workload::W1 => Preset {
                clients: 20,
                senders: 1,
                messages: 50_000,
                rate: 0.0,
                seconds: 120,
                room: 0,
                relays: 1,
            },
            Workload::W2 => Preset {
                clients: 50,
                senders: 50,
                messages: 10_000,
                rate: 1000.0,
                seconds: 60,
                room: 0,
                relays: 1,
            },
            Workload::W3 => Preset {
                clients: 10_000,
                senders: 1,
                messages: 1_000,
                rate: 0.0,
                seconds: 900,
                room: 0,
                relays: 1,
            },
            Workload::W4 => Preset {
                clients: 10_000,
                senders: 10_000,
                messages: 100_000,
                rate: 10_000.0,
                seconds: 600,
                room: 10,
                relays: 1,
            },
            Workload::W5 => Preset {
                clients: 60,
                senders: 1,
                messages: 50_000,
                rate: 0.0,
                seconds: 120,
                room: 0,
                relays: 3,
            },
            // No clients send: `messages` is the log's length.
            Workload::Log => Preset {
                clients: 2,
                senders: 1,
                messages: large_log::DEFAULT_MESSAGES,
                rate: 0.0,
                seconds: 600,
                room: 0,
                relays: 1,
            },
        }
    }

    /// Its name as typed.
    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "w1",
            Workload::W2 => "w2",
            Workload::W3 => "w3",
            Workload::W4 => "w4",
            Workload::W5 => "w5",
            Workload::Log => "log",
        }
    }
}
