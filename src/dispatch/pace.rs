//! Pacing: a token bucket per endpoint for `rate_limit: N/s|m|h`, and the retry delays.

use std::time::Duration;

use tokio::time::Instant;

use crate::engine::units::RateLimit;

/// A token bucket: up to `count` requests at once, refilled evenly over `per`.
#[derive(Debug)]
pub struct Bucket {
    limit: RateLimit,
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(limit: RateLimit) -> Bucket {
        Bucket {
            limit,
            tokens: f64::from(limit.count),
            updated: Instant::now(),
        }
    }

    fn rate(&self) -> f64 {
        f64::from(self.limit.count) / self.limit.per.as_secs_f64()
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate()).min(f64::from(self.limit.count));
        self.updated = now;
    }

    /// How many requests may go now, and (when none may) how long until one may.
    pub fn available(&mut self) -> (usize, Duration) {
        self.refill();
        if self.tokens >= 1.0 {
            (self.tokens.floor() as usize, Duration::ZERO)
        } else {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.rate());
            (0, wait)
        }
    }

    /// Takes a token; returns how long to wait before sending (zero if one was there).
    pub fn take(&mut self) -> Duration {
        self.refill();
        let rate = self.rate();
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

/// A delay with ±20% jitter, so that retries of many deliveries do not arrive together.
pub fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(0.8 + 0.4 * fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_allows_its_burst_then_paces() {
        let mut bucket = Bucket::new(RateLimit {
            count: 2,
            per: Duration::from_secs(1),
        });
        assert_eq!(bucket.available(), (2, Duration::ZERO));
        assert_eq!(bucket.take(), Duration::ZERO);
        assert_eq!(bucket.take(), Duration::ZERO);
        assert_eq!(bucket.available(), (0, Duration::from_millis(500)));
        assert_eq!(bucket.take(), Duration::from_millis(500));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(bucket.take(), Duration::ZERO);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for _ in 0..1000 {
            let d = jitter(Duration::from_secs(100));
            assert!(
                d >= Duration::from_secs(80) && d <= Duration::from_secs(120),
                "{d:?}"
            );
        }
    }
}
