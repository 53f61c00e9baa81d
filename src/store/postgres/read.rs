//! What the PostgreSQL backend reads: records by key, the queued endpoints, and connect log
//! searches and exports, as SQL over the indexed columns of `switchboard_entries`.

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

use super::{Db, db_error, decode};
use crate::engine::event::EventId;
use crate::store::query::{LogQuery, search_form, ulid_bound};
use crate::store::{Delivery, DeliveryId, LogEntry, StoreError, StoredEvent};

/// The endpoints that have pending deliveries, in name order: one index seek per endpoint
/// (a loose index scan of the queue), not a walk over every pending delivery, as the
/// dispatcher asks on every tick.
pub(super) async fn queued_endpoints(store: &Db) -> Result<Vec<String>, StoreError> {
    let client = store.client().await?;
    let statement = client
        .prepare_cached(
            "WITH RECURSIVE queued(endpoint) AS ( \
               (SELECT endpoint FROM switchboard_deliveries WHERE state = 'pending' \
                ORDER BY endpoint LIMIT 1) \
               UNION ALL \
               SELECT (SELECT d.endpoint FROM switchboard_deliveries d \
                       WHERE d.state = 'pending' AND d.endpoint > q.endpoint \
                       ORDER BY d.endpoint LIMIT 1) \
               FROM queued q WHERE q.endpoint IS NOT NULL) \
             SELECT endpoint FROM queued WHERE endpoint IS NOT NULL",
        )
        .await
        .map_err(db_error)?;
    let rows = client.query(&statement, &[]).await.map_err(db_error)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The record in the first column of the row `sql` finds with `params`, if any.
async fn one<T: serde::de::DeserializeOwned>(
    store: &Db,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    key: &str,
) -> Result<Option<T>, StoreError> {
    let client = store.client().await?;
    let statement = client.prepare_cached(sql).await.map_err(db_error)?;
    let row = client
        .query_opt(&statement, params)
        .await
        .map_err(db_error)?;
    row.map(|r| decode(key, r.get(0))).transpose()
}

pub(super) async fn delivery(store: &Db, id: &DeliveryId) -> Result<Option<Delivery>, StoreError> {
    one(
        store,
        "SELECT record::text FROM switchboard_deliveries WHERE id = $1",
        &[&id.as_str()],
        &format!("delivery {id}"),
    )
    .await
}

pub(super) async fn event(
    store: &Db,
    source: &str,
    id: &EventId,
) -> Result<Option<StoredEvent>, StoreError> {
    one(
        store,
        "SELECT record::text FROM switchboard_events WHERE source = $1 AND id = $2",
        &[&source, &id.as_str()],
        &format!("event {source}/{id}"),
    )
    .await
}

pub(super) async fn entry(store: &Db, id: &str) -> Result<Option<LogEntry>, StoreError> {
    one(
        store,
        "SELECT record::text FROM switchboard_entries WHERE id = $1",
        &[&id],
        &format!("entry {id}"),
    )
    .await
}

/// A connect log search (see `LogQuery`): the filters as SQL conditions over indexed
/// columns; the time bounds and cursors on entry ids, as sled reads them.
pub(super) async fn search(store: &Db, query: &LogQuery) -> Result<Vec<LogEntry>, StoreError> {
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut add = |condition: &str, value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        conditions.push(condition.replace('?', &format!("${}", params.len())));
    };
    if let Some(text) = &query.search {
        let Some(form) = search_form(text) else {
            return Ok(Vec::new());
        };
        add("forms @> ARRAY[?]::text[]", Box::new(form));
    }
    if let Some(endpoint) = &query.endpoint {
        add("endpoint = ?", Box::new(endpoint.clone()));
    }
    if let Some(workflow) = &query.workflow {
        add("workflow = ?", Box::new(workflow.clone()));
    }
    if let Some(outcome) = query.outcome {
        add("outcome = ?", Box::new(outcome.as_str().to_string()));
    }
    if let Some(delivery) = &query.delivery {
        add("delivery_id = ?", Box::new(delivery.as_str().to_string()));
    }
    if let Some(since) = query.since {
        add("id >= ?", Box::new(ulid_bound(since, false)));
    }
    if let Some(until) = query.until {
        add("id <= ?", Box::new(ulid_bound(until, true)));
    }
    if let Some(after) = &query.after {
        add("id > ?", Box::new(after.clone()));
    }
    if let Some(before) = &query.before {
        add("id < ?", Box::new(before.clone()));
    }
    let order = if query.after.is_some() { "ASC" } else { "DESC" };
    let mut sql = String::from("SELECT id, record::text FROM switchboard_entries");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY id {order}"));
    if query.limit > 0 {
        sql.push_str(&format!(" LIMIT {}", query.limit));
    }
    let client = store.client().await?;
    let params: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = client.query(&sql, &params).await.map_err(db_error)?;
    rows.iter()
        .map(|r| decode(&format!("entry {}", r.get::<_, &str>(0)), r.get(1)))
        .collect()
}

/// Up to `limit` entries recorded from `since` to before `until`, after `after`, oldest
/// first.
pub(super) async fn entries_between(
    store: &Db,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<LogEntry>, StoreError> {
    let client = store.client().await?;
    let statement = client
        .prepare_cached(
            "SELECT id, record::text FROM switchboard_entries \
             WHERE id >= $1 AND id < $2 AND id > $3 ORDER BY id LIMIT $4",
        )
        .await
        .map_err(db_error)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(
            &statement,
            &[
                &ulid_bound(since, false),
                &ulid_bound(until, false),
                &after.unwrap_or(""),
                &limit,
            ],
        )
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|r| decode(&format!("entry {}", r.get::<_, &str>(0)), r.get(1)))
        .collect()
}
