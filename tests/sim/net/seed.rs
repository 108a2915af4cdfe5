//! The seeds a test runs with, and the random streams drawn from them: one seed decides the
//! fate of every datagram of a run, so that a failing run is repeated from its seed alone.

use std::time::Duration;

/// The seeds a test runs with: `default`, or those of `URC_SIM_SEED` when it is set, one seed
/// (`7`) or a range (`0..500`, to search further than the defaults do).
pub fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    let Ok(s) = std::env::var("URC_SIM_SEED") else {
        return default.collect();
    };
    let number = |s: &str| -> u64 { s.trim().parse().expect("URC_SIM_SEED is n or a..b") };
    match s.split_once("..") {
        Some((a, b)) => (number(a)..number(b)).collect(),
        None => vec![number(&s)],
    }
}

/// SplitMix64: tiny, and random enough to decide the fate of datagrams.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True `p` times in a hundred.
    pub fn percent(&mut self, p: u32) -> bool {
        self.next_u64() % 100 < u64::from(p)
    }

    /// Uniform in `0..=d`, to the microsecond.
    pub fn upto(&mut self, d: Duration) -> Duration {
        Duration::from_micros(self.range(0, d.as_micros() as u64))
    }
}
