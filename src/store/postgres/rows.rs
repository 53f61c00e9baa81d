//! Rows as the PostgreSQL backend's statements write them: an acceptance being prepared,
//! a delivery's row as a record finds it, connect log entries and deliveries as the
//! columns of one multi-row statement, the next entry id under the log clock, and the
//! batch size of deletes. Shared by `write.rs` and `firings.rs`.

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

use super::encode;
use crate::store::query::search_form;
use crate::store::{Delivery, DeliveryState, LogEntry, StoredEvent};

/// Rows a purge deletes per statement, so that no transaction holds many locks or grows
/// the WAL in one go.
pub(super) const PURGE_BATCH: i64 = 1000;

/// A state as the `state` column holds it.
fn state_name(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Failed => "failed",
        DeliveryState::Skipped => "skipped",
    }
}

/// An acceptance being prepared: the event as it would be stored, its deliveries, and
/// when it was accepted.
pub(super) struct Fresh {
    pub(super) stored: StoredEvent,
    pub(super) deliveries: Vec<Delivery>,
    pub(super) now: DateTime<Utc>,
}

/// A delivery's row as a record finds it (under its lock): the stored delivery, and the
/// lease on it (owner, until).
pub(super) struct Row {
    pub(super) stored: Option<Delivery>,
    pub(super) owner: Option<String>,
    pub(super) until: Option<DateTime<Utc>>,
}

/// Connect log entries as the columns of one multi-row insert.
#[derive(Default)]
pub(super) struct Entries {
    id: Vec<String>,
    at: Vec<DateTime<Utc>>,
    delivery: Vec<String>,
    event: Vec<String>,
    endpoint: Vec<String>,
    workflow: Vec<String>,
    outcome: Vec<String>,
    node: Vec<String>,
    /// Each entry's search forms, as a JSON array (arrays of arrays must be rectangular).
    forms: Vec<String>,
    record: Vec<String>,
}

impl Entries {
    pub(super) fn push(&mut self, entry: &LogEntry) {
        let mut forms: Vec<String> = entry
            .keys
            .values()
            .map(String::as_str)
            .chain([entry.event_id.as_str()])
            .filter_map(search_form)
            .collect();
        forms.sort();
        forms.dedup();
        self.id.push(entry.id.clone());
        self.at.push(entry.at);
        self.delivery.push(entry.delivery_id.as_str().to_string());
        self.event.push(entry.event_id.as_str().to_string());
        self.endpoint.push(entry.endpoint.clone());
        self.workflow.push(entry.workflow.clone());
        self.outcome.push(entry.outcome.as_str().to_string());
        self.node.push(entry.node.clone());
        self.forms.push(encode(&forms));
        self.record.push(encode(entry));
    }

    pub(super) async fn insert(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = tx
            .prepare_cached(
                "INSERT INTO switchboard_entries \
                   (id, at, delivery_id, event_id, endpoint, workflow, outcome, node, forms, record) \
                 SELECT i, a, d, e, p, w, o, n, \
                   ARRAY(SELECT json_array_elements_text(f::json)), r::json \
                 FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], \
                   $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) \
                   AS u(i, a, d, e, p, w, o, n, f, r)",
            )
            .await?;
        let params: [&(dyn ToSql + Sync); 10] = [
            &self.id,
            &self.at,
            &self.delivery,
            &self.event,
            &self.endpoint,
            &self.workflow,
            &self.outcome,
            &self.node,
            &self.forms,
            &self.record,
        ];
        tx.execute(&statement, &params).await
    }
}

/// Deliveries as they stand after the recorded attempts, as the columns of one multi-row
/// upsert; the lease each keeps (a takeover's), or none.
#[derive(Default)]
pub(super) struct Deliveries {
    id: Vec<String>,
    source: Vec<String>,
    event: Vec<String>,
    endpoint: Vec<String>,
    state: Vec<&'static str>,
    due: Vec<Option<DateTime<Utc>>>,
    created: Vec<DateTime<Utc>>,
    last_entry: Vec<Option<String>>,
    record: Vec<String>,
    owner: Vec<Option<String>>,
    until: Vec<Option<DateTime<Utc>>>,
    /// How many are queued (pending with a due time).
    pub(super) pending: i64,
}

impl Deliveries {
    pub(super) fn push(&mut self, row: &Row) {
        let delivery = row
            .stored
            .as_ref()
            .expect("every recorded delivery has its new state");
        let pending = delivery.state == DeliveryState::Pending;
        self.id.push(delivery.id.as_str().to_string());
        self.source.push(delivery.event_source.clone());
        self.event.push(delivery.event_id.as_str().to_string());
        self.endpoint.push(delivery.target.endpoint.clone());
        self.state.push(state_name(delivery.state));
        self.due.push(if pending { delivery.due_at } else { None });
        self.created.push(delivery.created_at);
        self.last_entry.push(delivery.last_entry.clone());
        self.record.push(encode(delivery));
        self.owner.push(row.owner.clone());
        self.until.push(row.until);
        self.pending += i64::from(pending && delivery.due_at.is_some());
    }

    pub(super) async fn upsert(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = tx
            .prepare_cached(
                "INSERT INTO switchboard_deliveries \
                   (id, event_source, event_id, endpoint, state, due_at, created_at, last_entry, \
                    record, lease_owner, lease_until) \
                 SELECT i, s, e, p, st, d, c, l, r::json, o, u \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                   $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[], $10::text[], \
                   $11::timestamptz[]) AS x(i, s, e, p, st, d, c, l, r, o, u) \
                 ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, due_at = EXCLUDED.due_at, \
                   last_entry = EXCLUDED.last_entry, record = EXCLUDED.record, \
                   lease_owner = EXCLUDED.lease_owner, lease_until = EXCLUDED.lease_until",
            )
            .await?;
        let params: [&(dyn ToSql + Sync); 11] = [
            &self.id,
            &self.source,
            &self.event,
            &self.endpoint,
            &self.state,
            &self.due,
            &self.created,
            &self.last_entry,
            &self.record,
            &self.owner,
            &self.until,
        ];
        tx.execute(&statement, &params).await
    }
}

/// The id for an entry recorded at `at` after `last`: a ULID of `at` when that sorts
/// after `last`, otherwise one more than `last`.
pub(super) fn next_entry_id(last: &str, at: DateTime<Utc>) -> String {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let fresh = ulid::Ulid::from_parts(ms, fastrand::u128(..) >> 48);
    match ulid::Ulid::from_string(last) {
        Ok(before) if fresh <= before => before.increment().unwrap_or(fresh),
        _ => fresh,
    }
    .to_string()
}
