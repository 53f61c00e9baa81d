//! `limit` on a workflow: at most `max` firings per value of `per` within a sliding
//! `within`. The engine only says what would be counted ([`LimitCheck`]); the store counts,
//! durably and atomically with the acceptance, because the count outlives any one process.

use std::time::Duration;

use super::event::Event;
use super::field::FieldRef;
use super::sample::{shortened, stable_hash};
use super::units::show_duration;
use super::value::{is_empty, text};

/// The largest `max`: the store keeps one time per firing counted.
pub const MAX_FIRINGS: u32 = 1000;

/// The longest `within`.
pub const MAX_WITHIN: Duration = Duration::from_secs(31 * 86_400);

/// A compiled `limit`.
#[derive(Debug)]
pub struct Limit {
    /// Firings allowed within the period.
    pub max: u32,
    /// `per` as written and compiled; None: one count for the whole workflow.
    pub per: Option<(String, FieldRef)>,
    /// The sliding period.
    pub within: Duration,
}

/// What accepting an event must count for one matched workflow that has a limit: the
/// count's key and how to explain it. Built by the engine, counted by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCheck {
    /// The workflow.
    pub workflow: String,
    /// The value of `per` as text ("" when the event has none, or when there is no `per`;
    /// a value over 200 bytes as its start and a hash of the whole).
    pub key: String,
    /// How the count is named in messages: `lead_id 812`, `lead_id (empty)`, or "" for a
    /// workflow-wide count.
    pub shown: String,
    /// Firings allowed within the period.
    pub max: u32,
    /// The sliding period.
    pub within: Duration,
    /// The node accepting the event (named on the log entry of a skip).
    pub node: String,
}

impl LimitCheck {
    /// Why an event was stopped after `fired` firings in the period:
    /// `limit: 9 firings for lead_id 812 in the last 3m`.
    pub fn message(&self, fired: usize) -> String {
        let noun = if fired == 1 { "firing" } else { "firings" };
        let within = show_duration(self.within);
        if self.shown.is_empty() {
            format!(
                "limit: {fired} {noun} of workflow {} in the last {within}",
                self.workflow
            )
        } else {
            format!(
                "limit: {fired} {noun} for {} in the last {within}",
                self.shown
            )
        }
    }
}

/// Longer values are counted by their first characters and a hash of the whole, so that
/// a key fits any store's index.
const MAX_KEY: usize = 200;

/// A value as a count's key: itself, or when longer than [`MAX_KEY`] bytes its first
/// characters and the [`stable_hash`] of the whole.
fn bounded(value: &str) -> String {
    if value.len() <= MAX_KEY {
        return value.to_string();
    }
    let mut cut = MAX_KEY - 17;
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}#{:016x}", &value[..cut], stable_hash(value.bytes()))
}

impl Limit {
    /// The count an event falls in: its key, and how it is named.
    fn key(&self, event: &Event) -> (String, String) {
        let Some((name, field)) = &self.per else {
            return (String::new(), String::new());
        };
        match field.resolve(event) {
            Some(v) if !is_empty(Some(&v)) => {
                let value = text(&v);
                let shown = format!("{name} {}", shortened(&value));
                (bounded(&value), shown)
            }
            _ => (String::new(), format!("{name} (empty)")),
        }
    }

    /// What accepting `event` counts for `workflow`, on `node`.
    pub fn check(&self, workflow: &str, event: &Event, node: &str) -> LimitCheck {
        let (key, shown) = self.key(event);
        LimitCheck {
            workflow: workflow.to_string(),
            key,
            shown,
            max: self.max,
            within: self.within,
            node: node.to_string(),
        }
    }

    /// What a dry run says (it has no store to count with):
    /// `limit: at most 9 firings per lead_id 812 in 3m (counted when served)`.
    pub fn explain(&self, event: &Event) -> String {
        let (_, shown) = self.key(event);
        let noun = if self.max == 1 { "firing" } else { "firings" };
        let per = if shown.is_empty() {
            String::new()
        } else {
            format!(" per {shown}")
        };
        format!(
            "limit: at most {} {noun}{per} in {} (counted when served)",
            self.max,
            show_duration(self.within)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_counted_by_a_bounded_key() {
        assert_eq!(bounded("812"), "812");
        let long = "é".repeat(300);
        let key = bounded(&long);
        assert!(key.len() <= MAX_KEY, "{}", key.len());
        assert_ne!(key, bounded(&format!("{long}x")));
        assert_eq!(key, bounded(&long));
    }
}
