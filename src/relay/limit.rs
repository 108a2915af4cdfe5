//! Token buckets: a rate with a burst allowance, driven by the caller's clock; counted in
//! events ([`Bucket::take`]) or in bytes charged after the fact ([`Bucket::charge`]).

use std::time::Instant;

/// Allows `rate` events a second on average and `burst` at once.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// True when the bucket is full at `now`: its user kept within the rate long enough to
    /// have its whole burst again.
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// True when something may be charged at `now`: the bucket is not in debt.
    pub fn allows(&self, now: Instant) -> bool {
        self.level(now) > 0.0
    }

    /// What the bucket holds at `now`: negative while in debt.
    pub fn level(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        (self.tokens + elapsed * self.rate).min(self.burst)
    }

    /// Takes `amount` after the fact (bytes already sent, say; a negative amount gives back
    /// what an estimate took too much): the bucket may go into debt, and allows nothing until
    /// the rate has paid it back.
    pub fn charge(&mut self, now: Instant, amount: f64) {
        self.refill(now);
        self.tokens = (self.tokens - amount).min(self.burst);
    }

    /// How long from `now` until the bucket is out of debt (zero if it is not in debt).
    pub fn until_allowed(&self, now: Instant) -> std::time::Duration {
        let level = self.level(now);
        if level > 0.0 || self.rate <= 0.0 {
            return std::time::Duration::ZERO;
        }
        // Just past zero, so that the wake-up finds it allowed.
        std::time::Duration::from_secs_f64((-level + 1e-6) / self.rate)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10.0, 5.0, t0);
        assert_eq!((0..8).filter(|_| b.take(t0)).count(), 5);
        let t1 = t0 + Duration::from_millis(1000);
        assert_eq!(
            (0..20).filter(|_| b.take(t1)).count(),
            5,
            "refilled up to the burst"
        );
        let t2 = t1 + Duration::from_millis(300);
        assert_eq!((0..20).filter(|_| b.take(t2)).count(), 3);
        // A clock that goes backwards gives nothing.
        assert!(!b.take(t0));
        assert!(!b.is_full(t2));
        assert!(!b.is_full(t2 + Duration::from_millis(499)));
        assert!(b.is_full(t2 + Duration::from_millis(500)));
    }

    #[test]
    fn bytes_charged_after_the_fact_run_a_debt_paid_back_at_the_rate() {
        let t0 = Instant::now();
        // 1000 bytes a second, 800 at once.
        let mut b = Bucket::new(1000.0, 800.0, t0);
        assert!(b.allows(t0));
        b.charge(t0, 1500.0);
        assert!(!b.allows(t0), "700 in debt");
        assert_eq!(b.until_allowed(t0).as_millis(), 700);
        assert!(!b.allows(t0 + Duration::from_millis(699)));
        assert!(b.allows(t0 + Duration::from_millis(701)));
        // A debt is paid back in full, at the rate; what is given back fills no more than the
        // burst.
        b.charge(t0, 4300.0);
        assert_eq!(b.level(t0), -5000.0);
        assert!(!b.allows(t0 + Duration::from_millis(4999)));
        assert_eq!(
            b.level(t0 + Duration::from_secs(6)),
            800.0,
            "full again, no more"
        );
        b.charge(t0 + Duration::from_secs(6), -1e6);
        assert_eq!(b.level(t0 + Duration::from_secs(6)), 800.0);
    }
}
