//! A connect log search, as every backend reads it: filters by endpoint, workflow,
//! outcome, delivery, audit key and time; paging by entry id (entry ids are ULIDs, so they
//! sort by the time of the attempt); and the one form audit values are indexed and
//! searched under, so that every backend finds a phone number in any spelling.

use chrono::{DateTime, Utc};

use super::record::{DeliveryId, LogEntry, Outcome};

/// A connect log search. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Only this endpoint.
    pub endpoint: Option<String>,
    /// Only this workflow.
    pub workflow: Option<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only this delivery's attempts.
    pub delivery: Option<DeliveryId>,
    /// An audit key value (phone in any spelling, lead id, call id) or an event id.
    pub search: Option<String>,
    /// Entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Entries at or before this time.
    pub until: Option<DateTime<Utc>>,
    /// Paging, newest first: entries older than this entry id.
    pub before: Option<String>,
    /// Following, oldest first: entries newer than this entry id.
    pub after: Option<String>,
    /// At most this many entries (0: no limit).
    pub limit: usize,
}

impl LogQuery {
    /// Whether an entry passes the filters an index does not answer by itself (the time
    /// bounds and the audit-key search are the backend's).
    pub fn keeps(&self, entry: &LogEntry) -> bool {
        self.endpoint.as_ref().is_none_or(|e| *e == entry.endpoint)
            && self.workflow.as_ref().is_none_or(|w| *w == entry.workflow)
            && self.outcome.is_none_or(|o| o == entry.outcome)
            && self
                .delivery
                .as_ref()
                .is_none_or(|d| *d == entry.delivery_id)
    }
}

/// The smallest (or, with `upper`, largest) ULID string of the millisecond `at`, to
/// bound scans of time-ordered ids.
pub fn ulid_bound(at: DateTime<Utc>, upper: bool) -> String {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let random = if upper { (1u128 << 80) - 1 } else { 0 };
    ulid::Ulid::from_parts(ms, random).to_string()
}

/// An entry id after every entry recorded up to `at`: a cursor for following new entries.
pub fn id_at(at: DateTime<Utc>) -> String {
    ulid_bound(at, true)
}

/// The longest audit value kept whole in the search index, in characters; a longer value
/// is indexed, and found, by its first `MAX_FORM_CHARS` characters.
pub const MAX_FORM_CHARS: usize = 256;

/// The form a searchable value is indexed (and searched) under: a phone number (digits
/// and phone punctuation only, at least seven digits) by its digits, the last ten of them
/// when there are more, so that "+1 (555) 123-4567", "15551234567" and "5551234567" find
/// each other; anything else as written, trimmed, in lower case. One key per value.
pub fn search_form(value: &str) -> Option<String> {
    let value = value.trim();
    // Forms are index keys: at most MAX_FORM_CHARS, and without NUL (PostgreSQL refuses
    // it in text); a search's value is cut and cleaned the same way, so it still finds.
    let cleaned: String;
    let value = if value.contains('\0') || value.len() > MAX_FORM_CHARS {
        cleaned = value
            .chars()
            .take(MAX_FORM_CHARS)
            .map(|c| if c == '\0' { '\u{fffd}' } else { c })
            .collect();
        cleaned.as_str()
    } else {
        value
    };
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    let phone_like = digits.len() >= 7
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.' | ' '));
    let form = if phone_like {
        digits[digits.len().saturating_sub(10)..].to_string()
    } else {
        value.to_lowercase()
    };
    (!form.is_empty()).then_some(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_searchable_in_every_spelling() {
        for spelling in [
            "+1 (555) 123-4567",
            "15551234567",
            "5551234567",
            " 555.123.4567",
        ] {
            assert_eq!(search_form(spelling).as_deref(), Some("5551234567"));
        }
        assert_eq!(search_form("555-1234").as_deref(), Some("5551234"));
        assert_eq!(search_form("Lead-812").as_deref(), Some("lead-812"));
        assert_eq!(
            search_form("call-20240315-5551234").as_deref(),
            Some("call-20240315-5551234"),
            "ids that hold digits are not phone numbers"
        );
        assert_eq!(search_form("  "), None);
    }
}
