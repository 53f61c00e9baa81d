//! Prometheus metrics, in the text exposition format: counters and a histogram kept in
//! memory, rendered on `/metrics`. Small enough to write by hand; labels are escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the attempt latency histogram.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Everything `/metrics` reports, except the queue depth (read from the store).
#[derive(Default)]
pub struct Metrics {
    events: Mutex<BTreeMap<(String, String), u64>>,
    deliveries: Mutex<BTreeMap<(String, String), u64>>,
    retries: Mutex<BTreeMap<String, u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    rejected: Mutex<BTreeMap<u16, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A label value escaped for the text format.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// An event was accepted.
    pub fn event(&self, kind: &str, source: &str) {
        *lock(&self.events)
            .entry((kind.to_string(), source.to_string()))
            .or_default() += 1;
    }

    /// An attempt ended with `outcome` after `took`.
    pub fn attempt(&self, endpoint: &str, outcome: &str, took: Option<Duration>) {
        *lock(&self.deliveries)
            .entry((endpoint.to_string(), outcome.to_string()))
            .or_default() += 1;
        if outcome == "retrying" {
            *lock(&self.retries).entry(endpoint.to_string()).or_default() += 1;
        }
        if let Some(took) = took {
            let seconds = took.as_secs_f64();
            let mut all = lock(&self.latency);
            let h = all.entry(endpoint.to_string()).or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
    }

    /// A request was refused with `status`.
    pub fn rejected(&self, status: u16) {
        *lock(&self.rejected).entry(status).or_default() += 1;
    }

    /// The text exposition of every metric; `paused` names the endpoints whose deliveries
    /// are paused because they do not answer.
    pub fn render(
        &self,
        queue_depth: usize,
        in_flight: usize,
        paused: &[String],
        store_writes: u64,
    ) -> String {
        let mut out = String::new();
        out.push_str("# HELP switchboard_events_total Events accepted, by type and source.\n# TYPE switchboard_events_total counter\n");
        for ((kind, source), n) in lock(&self.events).iter() {
            let _ = writeln!(
                out,
                "switchboard_events_total{{type=\"{}\",source=\"{}\"}} {n}",
                label(kind),
                label(source)
            );
        }
        out.push_str("# HELP switchboard_deliveries_total Delivery attempts, by endpoint and outcome.\n# TYPE switchboard_deliveries_total counter\n");
        for ((endpoint, outcome), n) in lock(&self.deliveries).iter() {
            let _ = writeln!(
                out,
                "switchboard_deliveries_total{{endpoint=\"{}\",outcome=\"{}\"}} {n}",
                label(endpoint),
                label(outcome)
            );
        }
        out.push_str("# HELP switchboard_retries_total Attempts that scheduled a retry, by endpoint.\n# TYPE switchboard_retries_total counter\n");
        for (endpoint, n) in lock(&self.retries).iter() {
            let _ = writeln!(
                out,
                "switchboard_retries_total{{endpoint=\"{}\"}} {n}",
                label(endpoint)
            );
        }
        out.push_str("# HELP switchboard_attempt_duration_seconds Time from sending a request to the end of its response.\n# TYPE switchboard_attempt_duration_seconds histogram\n");
        for (endpoint, h) in lock(&self.latency).iter() {
            let e = label(endpoint);
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "switchboard_attempt_duration_seconds_bucket{{endpoint=\"{e}\",le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "switchboard_attempt_duration_seconds_bucket{{endpoint=\"{e}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "switchboard_attempt_duration_seconds_sum{{endpoint=\"{e}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "switchboard_attempt_duration_seconds_count{{endpoint=\"{e}\"}} {}",
                h.count
            );
        }
        out.push_str("# HELP switchboard_requests_rejected_total Requests refused, by status.\n# TYPE switchboard_requests_rejected_total counter\n");
        for (status, n) in lock(&self.rejected).iter() {
            let _ = writeln!(
                out,
                "switchboard_requests_rejected_total{{status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP switchboard_queue_depth Deliveries waiting for an attempt.\n# TYPE switchboard_queue_depth gauge\nswitchboard_queue_depth {queue_depth}"
        );
        let _ = writeln!(
            out,
            "# HELP switchboard_attempts_in_flight Attempts being sent now.\n# TYPE switchboard_attempts_in_flight gauge\nswitchboard_attempts_in_flight {in_flight}"
        );
        let _ = writeln!(
            out,
            "# HELP switchboard_store_writes_total Keys written to the data folder (inserts and removes).\n# TYPE switchboard_store_writes_total counter\nswitchboard_store_writes_total {store_writes}"
        );
        out.push_str("# HELP switchboard_endpoint_paused 1 while an endpoint that does not answer is paused and probed.\n# TYPE switchboard_endpoint_paused gauge\n");
        for endpoint in paused {
            let _ = writeln!(
                out,
                "switchboard_endpoint_paused{{endpoint=\"{}\"}} 1",
                label(endpoint)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::default();
        m.event("call.disposition", "api");
        m.attempt("crm", "delivered", Some(Duration::from_millis(30)));
        m.attempt("crm", "retrying", None);
        let text = m.render(3, 1, &["crm".to_string()], 12);
        assert!(
            text.contains("switchboard_events_total{type=\"call.disposition\",source=\"api\"} 1")
        );
        assert!(
            text.contains("switchboard_deliveries_total{endpoint=\"crm\",outcome=\"delivered\"} 1")
        );
        assert!(text.contains("switchboard_retries_total{endpoint=\"crm\"} 1"));
        assert!(text.contains(
            "switchboard_attempt_duration_seconds_bucket{endpoint=\"crm\",le=\"0.025\"} 0"
        ));
        assert!(text.contains(
            "switchboard_attempt_duration_seconds_bucket{endpoint=\"crm\",le=\"0.05\"} 1"
        ));
        assert!(text.contains("switchboard_queue_depth 3"));
        assert!(text.contains("switchboard_store_writes_total 12"));
        assert!(text.contains("switchboard_endpoint_paused{endpoint=\"crm\"} 1"));
        assert_eq!(label("a\"b"), "a\\\"b");
    }
}
