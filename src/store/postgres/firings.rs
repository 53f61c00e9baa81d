//! A workflow's `limit` in the PostgreSQL backend: counting the firings of an acceptance
//! in its transaction, under each (workflow, value) row's lock (`switchboard_firings`),
//! writing the skipped deliveries and entries of the workflows a limit stopped, and
//! forgetting expired counts.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

use super::rows::{Deliveries, Entries, Fresh, PURGE_BATCH, Row, next_entry_id};
use super::{Db, db_error, decode, encode};
use crate::store::{LogEntry, NewEvent, StoreError};

/// Counts the firings of the limits of the events stored now (`stored`: indexes into
/// `fresh`), in the order they were accepted, under each (workflow, key) row's lock —
/// taken in key order, so that two nodes never wait for each other in a cycle, and held
/// to the commit, so that two nodes cannot both pass a limit. An event over a limit has
/// its workflow stopped ([`crate::store::stop`]); returns those log entries with the
/// event each belongs to, ids not yet given.
pub(super) async fn count(
    store: &Db,
    tx: &deadpool_postgres::Transaction<'_>,
    fresh: &mut [(usize, Fresh)],
    stored: &[usize],
    events: &[(&NewEvent, DateTime<Utc>)],
) -> Result<Vec<(usize, LogEntry)>, StoreError> {
    let mut wanted: Vec<(String, String)> = stored
        .iter()
        .flat_map(|k| &events[fresh[*k].0].0.limits)
        .map(|c| (c.workflow.clone(), row_key(&c.key)))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    wanted.sort();
    wanted.dedup();
    let (workflows, keys): (Vec<String>, Vec<String>) = wanted.into_iter().unzip();
    tx.execute(
        "INSERT INTO switchboard_firings (workflow, key, expires_at, record) \
         SELECT w, k, '-infinity', '{}' FROM unnest($1::text[], $2::text[]) AS u(w, k) \
         ORDER BY w, k ON CONFLICT DO NOTHING",
        &[&workflows, &keys],
    )
    .await
    .map_err(db_error)?;
    let rows = tx
        .query(
            "SELECT f.workflow, f.key, f.record::text FROM switchboard_firings f \
             JOIN unnest($1::text[], $2::text[]) AS u(w, k) ON f.workflow = u.w AND f.key = u.k \
             ORDER BY f.workflow, f.key FOR UPDATE OF f",
            &[&workflows, &keys],
        )
        .await
        .map_err(db_error)?;
    let mut counts: HashMap<(String, String), crate::store::Firings> = HashMap::new();
    for row in rows {
        let (workflow, key): (String, String) = (row.get(0), row.get(1));
        let firings = decode(&format!("limit count {workflow}/{key}"), row.get(2))?;
        counts.insert((workflow, key), firings);
    }
    let mut order: Vec<usize> = stored.to_vec();
    order.sort_by_key(|k| fresh[*k].0);
    let mut skips = Vec::new();
    for k in order {
        let (i, x) = &mut fresh[k];
        let now = x.now;
        for check in &events[*i].0.limits {
            let firings = counts
                .entry((check.workflow.clone(), row_key(&check.key)))
                .or_default();
            if let Err(fired) = firings.fire(check, now) {
                let stopped = crate::store::stop(
                    &mut x.stored,
                    &mut x.deliveries,
                    check,
                    fired,
                    String::new(),
                );
                skips.extend(stopped.map(|entry| (k, entry)));
            }
        }
    }
    let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((workflow, key), firings) in &counts {
        columns.0.push(workflow.clone());
        columns.1.push(key.clone());
        columns.2.push(firings.expires());
        columns.3.push(encode(firings));
    }
    tx.execute(
        // An upsert: a purge may have deleted a row between the insert and the lock.
        "INSERT INTO switchboard_firings (workflow, key, expires_at, record) \
         SELECT w, k, e, r::json FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[]) AS u(w, k, e, r) \
         ON CONFLICT (workflow, key) DO UPDATE SET expires_at = EXCLUDED.expires_at, record = EXCLUDED.record",
        &[&columns.0, &columns.1, &columns.2, &columns.3],
    )
    .await
    .map_err(db_error)?;
    store.count_writes(counts.len() as u64);
    Ok(skips)
}

/// Writes the log entries and finished deliveries of the workflows limits stopped, their
/// entry ids taken from the log clock (its lock held to the commit, as a record holds it).
pub(super) async fn write_skips(
    tx: &deadpool_postgres::Transaction<'_>,
    fresh: &[(usize, Fresh)],
    skips: &[(usize, LogEntry)],
) -> Result<(), StoreError> {
    let mut last: String = tx
        .query_one("SELECT last FROM switchboard_log_clock FOR UPDATE", &[])
        .await
        .map_err(db_error)?
        .get(0);
    let mut entries = Entries::default();
    let mut deliveries = Deliveries::default();
    for (k, entry) in skips {
        let mut entry = entry.clone();
        entry.id = next_entry_id(&last, entry.at);
        last = entry.id.clone();
        let Some(delivery) = fresh[*k]
            .1
            .deliveries
            .iter()
            .find(|d| d.id == entry.delivery_id)
        else {
            continue;
        };
        let mut delivery = delivery.clone();
        delivery.last_entry = Some(entry.id.clone());
        delivery.entries = vec![entry.id.clone()];
        entries.push(&entry);
        deliveries.push(&Row {
            stored: Some(delivery),
            owner: None,
            until: None,
        });
    }
    let clock_params: [&(dyn ToSql + Sync); 1] = [&last];
    tx.execute("UPDATE switchboard_log_clock SET last = $1", &clock_params)
        .await
        .map_err(db_error)?;
    entries.insert(tx).await.map_err(db_error)?;
    deliveries.upsert(tx).await.map_err(db_error)?;
    Ok(())
}

/// Forgets the limit counts with no firing left within their period at `now`, in batches.
pub(super) async fn forget(store: &Db, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let client = store.client().await?;
    let mut forgotten = 0;
    loop {
        let n = client
            .execute(
                "DELETE FROM switchboard_firings WHERE (workflow, key) IN ( \
                   SELECT workflow, key FROM switchboard_firings WHERE expires_at <= $1 \
                   LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&now, &PURGE_BATCH],
            )
            .await
            .map_err(db_error)?;
        forgotten += usize::try_from(n).unwrap_or(usize::MAX);
        if n < u64::try_from(PURGE_BATCH).unwrap_or(u64::MAX) {
            return Ok(forgotten);
        }
    }
}

/// A limit's value as its row's key: PostgreSQL's text holds no NUL byte, so each is a
/// space (as in the sled store's keys), rather than the acceptance failing.
fn row_key(key: &str) -> String {
    key.replace('\0', " ")
}
