//! Wall-clock time for the dispatcher, with a hook for tests to jump forward: a retry
//! schedule of minutes or hours is checked by moving this clock, not by sleeping.
//!
//! (tokio's paused clock is not used for that: it auto-advances whenever the runtime waits,
//! including while a real socket waits for a real receiver, which fires timeouts early.)

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// The system clock, plus whatever tests have advanced it by.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    skew_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn new() -> Clock {
        Clock::default()
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.skew_ms.load(Ordering::SeqCst))
    }

    /// Moves this clock (and every copy of it) forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.skew_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Moves this clock (and every copy of it) to `at`, forward or back: a test of a
    /// sending window starts on the day it needs.
    pub fn set(&self, at: DateTime<Utc>) {
        let skew = at.signed_duration_since(Utc::now()).num_milliseconds();
        self.skew_ms.store(skew, Ordering::SeqCst);
    }

    /// The tokio instant at which wall time `at` is reached (now, if it is past).
    pub fn instant_at(&self, at: DateTime<Utc>) -> Instant {
        let until = at
            .signed_duration_since(self.now())
            .to_std()
            .unwrap_or_default();
        Instant::now() + until
    }
}
