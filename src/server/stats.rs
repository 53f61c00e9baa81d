//! Per-endpoint counts of attempt outcomes over the last hour and day, for the UI's chart:
//! one bucket per minute, kept in memory, fed by every recorded attempt and rebuilt from the
//! connect log when the server starts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::{LogEntry, Outcome};

/// Minutes kept: one day.
const MINUTES: i64 = 24 * 60;

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
/// Attempts by outcome.
pub struct Counts {
    /// Attempts that delivered.
    pub delivered: u64,
    /// Attempts that scheduled a retry.
    pub retrying: u64,
    /// Attempts that failed for good.
    pub failed: u64,
    /// Deliveries skipped (inactive endpoint).
    pub skipped: u64,
}

impl Counts {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Delivered => self.delivered += 1,
            Outcome::Retrying => self.retrying += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }

    fn merge(&mut self, other: &Counts) {
        self.delivered += other.delivered;
        self.retrying += other.retrying;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }
}

/// Minute buckets per endpoint.
#[derive(Default)]
pub struct Stats {
    endpoints: Mutex<BTreeMap<String, VecDeque<(i64, Counts)>>>,
}

fn minute(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

impl Stats {
    /// Counts one attempt.
    pub fn record(&self, entry: &LogEntry) {
        let m = minute(entry.at);
        let mut all = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let buckets = all.entry(entry.endpoint.clone()).or_default();
        match buckets.iter_mut().rev().find(|(bm, _)| *bm == m) {
            Some((_, counts)) => counts.add(entry.outcome),
            None => {
                let mut counts = Counts::default();
                counts.add(entry.outcome);
                // Entries arrive in time order, except at startup; keep the deque sorted.
                let at = buckets
                    .iter()
                    .rposition(|(bm, _)| *bm < m)
                    .map_or(0, |i| i + 1);
                buckets.insert(at, (m, counts));
            }
        }
        while buckets.front().is_some_and(|(bm, _)| *bm <= m - MINUTES) {
            buckets.pop_front();
        }
    }

    /// Per endpoint, the counts of the last `minutes` minutes up to `now`.
    pub fn window(&self, now: DateTime<Utc>, minutes: i64) -> BTreeMap<String, Counts> {
        let from = minute(now) - minutes.clamp(1, MINUTES) + 1;
        let all = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .map(|(endpoint, buckets)| {
                let mut total = Counts::default();
                for (_, counts) in buckets.iter().filter(|(m, _)| *m >= from) {
                    total.merge(counts);
                }
                (endpoint.clone(), total)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::EventId;
    use crate::store::DeliveryId;

    fn entry(endpoint: &str, at: &str, outcome: Outcome) -> LogEntry {
        LogEntry {
            id: "x".into(),
            delivery_id: DeliveryId::new("d"),
            attempt: 1,
            at: at.parse().unwrap(),
            event_id: EventId::new("e"),
            event_type: "t".into(),
            workflow: "w".into(),
            endpoint: endpoint.into(),
            step: None,
            after: None,
            node: "n".into(),
            request: None,
            response: None,
            outcome,
            error: None,
            next_attempt_at: None,
            waiting: None,
            captured: Default::default(),
            warnings: vec![],
            keys: Default::default(),
        }
    }

    #[test]
    fn counts_by_window() {
        let s = Stats::default();
        s.record(&entry("crm", "2026-11-21T09:00:00Z", Outcome::Failed));
        s.record(&entry("crm", "2026-11-21T09:59:30Z", Outcome::Delivered));
        s.record(&entry("crm", "2026-11-21T09:59:40Z", Outcome::Delivered));
        s.record(&entry("slack", "2026-11-21T09:30:00Z", Outcome::Retrying));
        s.record(&entry("crm", "2026-11-20T08:00:00Z", Outcome::Failed));
        let now: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
        let hour = s.window(now, 60);
        assert_eq!(
            hour["crm"],
            Counts {
                delivered: 2,
                ..Counts::default()
            }
        );
        assert_eq!(hour["slack"].retrying, 1);
        let day = s.window(now, 24 * 60);
        assert_eq!(
            day["crm"],
            Counts {
                delivered: 2,
                failed: 1,
                ..Counts::default()
            }
        );
    }
}
