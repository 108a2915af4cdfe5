//! Token buckets: a rate with a burst allowance, driven by the caller's clock.

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
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
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
}
