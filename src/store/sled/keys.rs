//! Key layout of the one sled tree. Every key starts with a byte naming its space, and
//! keys sort the way they are scanned: the queue by endpoint then due time, log entries
//! (ULIDs) by time, index keys by what is searched, then time.
//!
//! What one delivered event costs (layout 2): accepting it writes its event, one delivery
//! and one queue key per match, and one audit key per distinct audit value (phone, lead
//! id …: the values people search by belong to the event, so they are indexed once, not
//! on every attempt); recording an attempt writes its entry, one facet key (endpoint,
//! workflow, outcome together), the delivery's new state (which lists its entries), and
//! the queue change. Nothing else is indexed: a search by delivery reads the delivery.

use chrono::{DateTime, Utc};

use crate::engine::event::EventId;
pub use crate::store::query::{search_form, ulid_bound};
use crate::store::record::{DeliveryId, LogEntry};

/// Separates a name from what follows it in a key; names never contain it.
const SEP: u8 = 0;

/// The journal record sled reflects (big-endian u64), written with every journaled batch.
pub const JOURNAL_APPLIED: &[u8] = b"M/journal";

/// The layout version of the tree (one byte). Absent: layout 1, migrated at open.
pub const FORMAT: &[u8] = b"M/format";

/// The layout this code reads and writes.
pub const FORMAT_VERSION: u8 = 2;

/// The spaces of the tree.
pub mod space {
    /// Accepted events, by id.
    pub const EVENT: u8 = b'E';
    /// Accepted events that made no delivery, by acceptance time (for purging; the others
    /// are purged through their deliveries).
    pub const EVENT_TIME: u8 = b'T';
    /// Deliveries, by id.
    pub const DELIVERY: u8 = b'D';
    /// Pending deliveries, by endpoint and due time.
    pub const QUEUE: u8 = b'Q';
    /// Connect log entries, by id (time).
    pub const LOG: u8 = b'L';
    /// Layout 1's connect log indexes (removed by the migration).
    pub const INDEX: u8 = b'I';
    /// Connect log entries by facet: endpoint, workflow and outcome.
    pub const FACET: u8 = b'F';
    /// Acceptances by audit value (search form), valued with their delivery ids.
    pub const AUDIT: u8 = b'K';
    /// The firings a workflow's `limit` counted, by workflow and key value.
    pub const FIRINGS: u8 = b'R';
    /// `O endpoint \0 value` → the last delivery of an `order_by` line.
    pub const ORDER: u8 = b'O';
}

/// `O endpoint \0 value`: the last delivery accepted in that `order_by` line.
pub fn order(endpoint: &str, value: &str) -> Vec<u8> {
    let mut key = spaced(space::ORDER, clean(endpoint).as_bytes());
    key.push(SEP);
    key.extend_from_slice(value.as_bytes());
    key
}

/// `R workflow \0 key`: the firings a `limit` counted for one value.
pub fn firings(workflow: &str, key: &str) -> Vec<u8> {
    let mut key_bytes = spaced(space::FIRINGS, clean(workflow).as_bytes());
    key_bytes.push(SEP);
    key_bytes.extend_from_slice(clean(key).as_bytes());
    key_bytes
}

fn spaced(space: u8, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(rest.len() + 1);
    key.push(space);
    key.extend_from_slice(rest);
    key
}

/// An event's key: `E source \0 id` (ids are unique per source).
pub fn event(source: &str, id: &EventId) -> Vec<u8> {
    let mut key = spaced(space::EVENT, clean(source).as_bytes());
    key.push(SEP);
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

/// A delivery's key.
pub fn delivery(id: &DeliveryId) -> Vec<u8> {
    spaced(space::DELIVERY, id.as_str().as_bytes())
}

/// A log entry's key.
pub fn entry(id: &str) -> Vec<u8> {
    spaced(space::LOG, id.as_bytes())
}

fn ms_bytes(t: DateTime<Utc>) -> [u8; 8] {
    u64::try_from(t.timestamp_millis())
        .unwrap_or(0)
        .to_be_bytes()
}

fn clean(text: &str) -> String {
    text.replace('\0', " ")
}

/// `endpoint \0 due_ms delivery_id`.
pub fn queue(endpoint: &str, due: DateTime<Utc>, id: &DeliveryId) -> Vec<u8> {
    let mut key = queue_prefix(endpoint);
    key.extend_from_slice(&ms_bytes(due));
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

/// `Q endpoint \0`: every queued delivery of an endpoint.
pub fn queue_prefix(endpoint: &str) -> Vec<u8> {
    let mut key = spaced(space::QUEUE, clean(endpoint).as_bytes());
    key.push(SEP);
    key
}

/// The endpoint of a queue key.
pub fn queue_endpoint(key: &[u8]) -> Option<String> {
    let key = key.strip_prefix(&[space::QUEUE])?;
    let at = key.iter().position(|b| *b == SEP)?;
    String::from_utf8(key[..at].to_vec()).ok()
}

/// The due time and delivery of a queue key.
pub fn queue_entry(key: &[u8]) -> Option<(DateTime<Utc>, DeliveryId)> {
    let key = key.strip_prefix(&[space::QUEUE])?;
    let at = key.iter().position(|b| *b == SEP)?;
    let rest = key.get(at + 1..)?;
    let ms = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let due = DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)?;
    let id = String::from_utf8(rest.get(8..)?.to_vec()).ok()?;
    Some((due, DeliveryId::new(id)))
}

/// The first queue key after every key of `endpoint`.
pub fn after_queue(endpoint: &str) -> Vec<u8> {
    let mut key = spaced(space::QUEUE, clean(endpoint).as_bytes());
    key.push(SEP + 1);
    key
}

/// `T accepted_ms source \0 event_id`: acceptances by time (valued with their delivery
/// ids), for purging.
pub fn event_time(at: DateTime<Utc>, source: &str, id: &EventId) -> Vec<u8> {
    let mut key = spaced(space::EVENT_TIME, &ms_bytes(at));
    key.extend_from_slice(clean(source).as_bytes());
    key.push(SEP);
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

/// The first event-time key at `at`.
pub fn event_time_bound(at: DateTime<Utc>) -> Vec<u8> {
    spaced(space::EVENT_TIME, &ms_bytes(at))
}

/// The source and event id of an event-time key.
pub fn event_time_id(key: &[u8]) -> Option<(String, EventId)> {
    let rest = key.get(9..)?;
    let at = rest.iter().position(|b| *b == SEP)?;
    let source = String::from_utf8(rest[..at].to_vec()).ok()?;
    let id = String::from_utf8(rest.get(at + 1..)?.to_vec()).ok()?;
    Some((source, EventId::new(id)))
}

/// `F endpoint \0 workflow \0 outcome \0`: the prefix of a facet's entries.
pub fn facet_prefix(endpoint: &str, workflow: &str, outcome: &str) -> Vec<u8> {
    let mut key = vec![space::FACET];
    for part in [endpoint, workflow, outcome] {
        key.extend_from_slice(clean(part).as_bytes());
        key.push(SEP);
    }
    key
}

/// An entry's facet key.
pub fn facet(entry: &LogEntry) -> Vec<u8> {
    let mut key = facet_prefix(&entry.endpoint, &entry.workflow, entry.outcome.as_str());
    key.extend_from_slice(entry.id.as_bytes());
    key
}

/// The (endpoint, workflow, outcome) of a facet key or prefix.
pub fn facet_parts(key: &[u8]) -> Option<(String, String, String)> {
    let mut parts = key.strip_prefix(&[space::FACET])?.splitn(4, |b| *b == SEP);
    let mut next = || String::from_utf8(parts.next()?.to_vec()).ok();
    Some((next()?, next()?, next()?))
}

/// The first key after every key starting with `prefix`.
pub fn after_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX]
}

/// The entry id at the end of an index key (the part after its last separator).
pub fn index_entry_id(key: &[u8]) -> Option<String> {
    let at = key.iter().rposition(|b| *b == SEP)?;
    String::from_utf8(key.get(at + 1..)?.to_vec()).ok()
}

/// Every facet with keys in `tree`, one seek per facet.
pub fn facets(
    tree: &sled::Tree,
) -> Result<std::collections::BTreeSet<(String, String, String)>, crate::store::StoreError> {
    let mut facets = std::collections::BTreeSet::new();
    let mut from = vec![space::FACET];
    let end = vec![space::FACET + 1];
    while let Some(item) = tree.range(from.clone()..end.clone()).next() {
        let (key, _) = item?;
        let Some((endpoint, workflow, outcome)) = facet_parts(&key) else {
            break;
        };
        from = after_prefix(&facet_prefix(&endpoint, &workflow, &outcome));
        facets.insert((endpoint, workflow, outcome));
    }
    Ok(facets)
}

/// `K form \0`: the prefix of every acceptance with that audit value.
pub fn audit_prefix(form: &str) -> Vec<u8> {
    let mut key = vec![space::AUDIT];
    key.extend_from_slice(clean(form).as_bytes());
    key.push(SEP);
    key
}

/// `K form \0 first_delivery_id`: one acceptance with that audit value.
pub fn audit(form: &str, first: &DeliveryId) -> Vec<u8> {
    let mut key = audit_prefix(form);
    key.extend_from_slice(first.as_str().as_bytes());
    key
}

/// The distinct search forms an acceptance is found by: its audit values and its event id.
pub fn audit_forms<'a>(
    values: impl Iterator<Item = &'a String>,
    event_id: &'a EventId,
) -> Vec<String> {
    let mut forms: Vec<String> = values
        .map(String::as_str)
        .chain([event_id.as_str()])
        .filter_map(search_form)
        .collect();
    forms.sort();
    forms.dedup();
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_round_trip_and_sort_by_due_time() {
        let t1: DateTime<Utc> = "2026-11-21T10:00:00.123Z".parse().unwrap();
        let t2: DateTime<Utc> = "2026-11-21T10:00:01Z".parse().unwrap();
        let id = DeliveryId::new("01JD000000000000000000000A");
        let k1 = queue("crm", t1, &id);
        let k2 = queue("crm", t2, &id);
        assert!(k1 < k2);
        assert_eq!(queue_endpoint(&k1).as_deref(), Some("crm"));
        assert_eq!(queue_entry(&k1), Some((t1, id)));
        assert!(queue("crm", t2, &DeliveryId::new("x")) < after_queue("crm"));
        assert!(queue("crm-2", t1, &DeliveryId::new("x")) > after_queue("crm"));
    }

    #[test]
    fn ulid_bounds_enclose_a_millisecond() {
        let t: DateTime<Utc> = "2026-11-21T10:00:00.123Z".parse().unwrap();
        let id =
            ulid::Ulid::from_parts(u64::try_from(t.timestamp_millis()).unwrap(), 12345).to_string();
        assert!(ulid_bound(t, false) <= id && id <= ulid_bound(t, true));
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn facet_keys_round_trip_and_group_by_facet() {
        let prefix = facet_prefix("crm", "sale", "delivered");
        assert_eq!(
            facet_parts(&prefix),
            Some(("crm".into(), "sale".into(), "delivered".into()))
        );
        assert!(facet_prefix("crm", "sale", "failed") > prefix);
        assert!(after_prefix(&prefix) > prefix);
        let mut key = prefix.clone();
        key.extend_from_slice(b"01JD");
        assert!(key < after_prefix(&prefix));
        assert_eq!(index_entry_id(&key).as_deref(), Some("01JD"));
    }
}
