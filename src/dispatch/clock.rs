//! Wall-clock time that follows tokio's clock, so that tests can pause and advance time
//! (retry schedules of hours run in milliseconds) while stored times stay real dates.

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Wall-clock time measured from one reading of the system clock by tokio's clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: DateTime<Utc>,
    start: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock {
            wall: Utc::now(),
            start: Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = Instant::now().duration_since(self.start);
        self.wall + chrono::Duration::from_std(elapsed).unwrap_or_default()
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
