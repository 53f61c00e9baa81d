//! What the PostgreSQL backend writes: accepting events (one transaction, multi-row
//! inserts through `unnest`), taking due deliveries under leases, recording attempts under
//! the log clock, replaying, and purging in batches.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

use super::{PostgresStore, db_error, decode, encode};
use crate::store::query::search_form;
use crate::store::{
    Accepted, Delivery, DeliveryId, DeliveryState, Lease, LogEntry, NewEvent, Pace, Purged,
    StoreError, StoredEvent, Taken, whole_ms,
};

/// Rows a purge deletes per statement, so that no transaction holds many locks or grows
/// the WAL in one go.
const PURGE_BATCH: i64 = 1000;

/// A state as the `state` column holds it.
fn state_name(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Failed => "failed",
        DeliveryState::Skipped => "skipped",
    }
}

/// An acceptance being prepared: the event as it would be stored, and its deliveries.
struct Fresh {
    stored: StoredEvent,
    deliveries: Vec<Delivery>,
}

fn fresh(new: &NewEvent, now: DateTime<Utc>) -> Fresh {
    let (stored, deliveries) = crate::store::acceptance(&new.event, &new.matches, &new.keys, now);
    Fresh { stored, deliveries }
}

/// Stores each event with its deliveries unless it is a duplicate (see `Store::accept`),
/// all in one transaction. Concurrent acceptances of one id (on several nodes) meet at the
/// events' primary key: the later waits for the earlier to commit, then finds it.
pub(super) async fn accept(
    store: &PostgresStore,
    events: Vec<NewEvent>,
    now: DateTime<Utc>,
) -> Result<Vec<Accepted>, StoreError> {
    // The first of each (source, id) in the batch is stored; a repeat within the batch is
    // a duplicate of it.
    let mut first: HashMap<(String, String), usize> = HashMap::new();
    let mut answers: Vec<Option<Accepted>> = vec![None; events.len()];
    let mut repeats = Vec::new();
    let mut fresh_ones: Vec<(usize, Fresh)> = Vec::new();
    for (i, new) in events.iter().enumerate() {
        let key = (new.event.source.clone(), new.event.id.as_str().to_string());
        match first.get(&key) {
            Some(&j) => repeats.push((i, j)),
            None => {
                first.insert(key, i);
                fresh_ones.push((i, fresh(new, now)));
            }
        }
    }
    // Inserted in key order, so that two batches never wait for each other in a cycle.
    fresh_ones.sort_by(|(_, a), (_, b)| {
        (&a.stored.event.source, a.stored.event.id.as_str())
            .cmp(&(&b.stored.event.source, b.stored.event.id.as_str()))
    });
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db_error)?;
    let insert_events = tx
        .prepare_cached(
            "INSERT INTO switchboard_events (source, id, accepted_at, record) \
             SELECT s, i, a, r::json FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[]) AS u(s, i, a, r) \
             ON CONFLICT (source, id) DO NOTHING RETURNING source, id",
        )
        .await
        .map_err(db_error)?;
    let column = |f: &dyn Fn(&Fresh) -> String| -> Vec<String> {
        fresh_ones.iter().map(|(_, x)| f(x)).collect()
    };
    let sources = column(&|x| x.stored.event.source.clone());
    let ids = column(&|x| x.stored.event.id.as_str().to_string());
    let times: Vec<DateTime<Utc>> = vec![now; fresh_ones.len()];
    let records = column(&|x| encode(&x.stored));
    let inserted: std::collections::HashSet<(String, String)> = tx
        .query(&insert_events, &[&sources, &ids, &times, &records])
        .await
        .map_err(db_error)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // The others were accepted before: duplicates, unless the window is over and their
    // deliveries are finished; then this acceptance takes the record's place.
    let mut stored_now: Vec<&Fresh> = Vec::new();
    let mut replaced = (Vec::new(), Vec::new(), Vec::new());
    for (i, x) in &fresh_ones {
        let key = (
            x.stored.event.source.clone(),
            x.stored.event.id.as_str().to_string(),
        );
        if inserted.contains(&key) {
            stored_now.push(x);
            answers[*i] = Some(accepted(x, false));
            continue;
        }
        let before = tx
            .query_opt(
                "SELECT record::text, EXISTS (SELECT 1 FROM switchboard_deliveries \
                   WHERE event_source = $1 AND event_id = $2 AND state = 'pending') \
                 FROM switchboard_events WHERE source = $1 AND id = $2 FOR UPDATE",
                &[&key.0, &key.1],
            )
            .await
            .map_err(db_error)?;
        let Some(before) = before else {
            // Purged between the insert and this read: accepted anew.
            tx.execute(
                "INSERT INTO switchboard_events (source, id, accepted_at, record) VALUES ($1, $2, $3, $4::text::json)",
                &[&key.0, &key.1, &now, &encode(&x.stored)],
            )
            .await
            .map_err(db_error)?;
            stored_now.push(x);
            answers[*i] = Some(accepted(x, false));
            continue;
        };
        let earlier: StoredEvent = decode(&format!("event {}/{}", key.0, key.1), before.get(0))?;
        let unfinished: bool = before.get(1);
        let age = now.signed_duration_since(earlier.accepted_at);
        let recent = age < chrono::Duration::zero()
            || age.to_std().is_ok_and(|age| age < store.dedupe_window);
        if recent || unfinished {
            answers[*i] = Some(Accepted {
                event_id: earlier.event.id.clone(),
                deliveries: earlier.deliveries,
                duplicate: true,
            });
            continue;
        }
        replaced.0.push(key.0);
        replaced.1.push(key.1);
        replaced.2.push(encode(&x.stored));
        stored_now.push(x);
        answers[*i] = Some(accepted(x, false));
    }
    if !replaced.0.is_empty() {
        tx.execute(
            "UPDATE switchboard_events e SET accepted_at = $3, record = u.r::json \
             FROM unnest($1::text[], $2::text[], $4::text[]) AS u(s, i, r) \
             WHERE e.source = u.s AND e.id = u.i",
            &[&replaced.0, &replaced.1, &now, &replaced.2],
        )
        .await
        .map_err(db_error)?;
    }
    let deliveries: Vec<&Delivery> = stored_now.iter().flat_map(|x| &x.deliveries).collect();
    if !deliveries.is_empty() {
        let insert = tx
            .prepare_cached(
                "INSERT INTO switchboard_deliveries \
                   (id, event_source, event_id, endpoint, state, due_at, created_at, record) \
                 SELECT i, s, e, p, 'pending', d, $6, r::json \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $7::text[]) \
                   AS u(i, s, e, p, d, r)",
            )
            .await
            .map_err(db_error)?;
        let column = |f: &dyn Fn(&Delivery) -> String| -> Vec<String> {
            deliveries.iter().map(|d| f(d)).collect()
        };
        let due: Vec<Option<DateTime<Utc>>> = deliveries.iter().map(|d| d.due_at).collect();
        tx.execute(
            &insert,
            &[
                &column(&|d| d.id.as_str().to_string()),
                &column(&|d| d.event_source.clone()),
                &column(&|d| d.event_id.as_str().to_string()),
                &column(&|d| d.target.endpoint.clone()),
                &due,
                &now,
                &column(&|d| encode(d)),
            ],
        )
        .await
        .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)?;
    store.count_queued(i64::try_from(deliveries.len()).unwrap_or(0));
    store.count_writes((stored_now.len() + deliveries.len()) as u64);
    for (i, j) in repeats {
        answers[i] = answers[j].clone().map(|a| Accepted {
            duplicate: true,
            ..a
        });
    }
    Ok(answers
        .into_iter()
        .map(|a| a.expect("every event of the batch has an answer"))
        .collect())
}

fn accepted(x: &Fresh, duplicate: bool) -> Accepted {
    Accepted {
        event_id: x.stored.event.id.clone(),
        deliveries: x.stored.deliveries.clone(),
        duplicate,
    }
}

/// Takes up to `limit` due deliveries of `endpoint` that no live lease holds, leasing them
/// to this node until `lease_until`, in one statement: rows another node is taking at the
/// same moment are skipped, not waited for.
pub(super) async fn take(
    store: &PostgresStore,
    endpoint: &str,
    now: DateTime<Utc>,
    limit: usize,
    lease_until: DateTime<Utc>,
    pace: Option<Pace>,
) -> Result<Taken, StoreError> {
    let mut client = store.client().await?;
    let Some(pace) = pace else {
        return take_with(&client, store, endpoint, now, limit, lease_until).await;
    };
    // The endpoint's pace across the nodes: its capped takes run one at a time (an advisory
    // lock held by the transaction), each counting the live leases and the rate's tokens.
    let tx = client.transaction().await.map_err(db_error)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('switchboard-lane:' || $1, 0))",
        &[&endpoint],
    )
    .await
    .map_err(db_error)?;
    let leased: i64 = tx
        .query_one(
            "SELECT count(*) FROM switchboard_deliveries \
             WHERE endpoint = $1 AND state = 'pending' AND lease_owner IS NOT NULL AND lease_until > $2",
            &[&endpoint, &now],
        )
        .await
        .map_err(db_error)?
        .get(0);
    let room = pace
        .concurrency
        .saturating_sub(usize::try_from(leased).unwrap_or(usize::MAX));
    // The rate: one token bucket per endpoint, filled by the time passed since it was last
    // used (by any node), at most `count` deep.
    let bucket = match pace.rate {
        None => None,
        Some(rate) => {
            let depth = f64::from(rate.count);
            let per_ms = rate.per.as_secs_f64() * 1000.0 / depth;
            let row = tx
                .query_opt(
                    "SELECT tokens, updated_at FROM switchboard_buckets WHERE endpoint = $1",
                    &[&endpoint],
                )
                .await
                .map_err(db_error)?;
            let tokens = match row {
                None => depth,
                Some(row) => {
                    let (tokens, at): (f64, DateTime<Utc>) = (row.get(0), row.get(1));
                    let elapsed = (now - at).num_milliseconds().max(0) as f64;
                    (tokens + elapsed / per_ms).min(depth)
                }
            };
            Some((tokens, per_ms))
        }
    };
    let allowed = match bucket {
        None => room,
        Some((tokens, _)) => room.min(tokens.max(0.0).floor() as usize),
    };
    let taken = if allowed == 0 {
        // The other nodes hold the endpoint's whole concurrency, or its rate is spent: look
        // again when a token is due, or shortly (other nodes do not wake this one).
        let wait_ms = match bucket {
            Some((tokens, per_ms)) if room > 0 => ((1.0 - tokens) * per_ms).ceil().max(1.0) as i64,
            _ => CAPPED_RETRY_MS,
        };
        Taken {
            leases: Vec::new(),
            next: Some(now + chrono::Duration::milliseconds(wait_ms)),
        }
    } else {
        take_with(&tx, store, endpoint, now, limit.min(allowed), lease_until).await?
    };
    if let Some((tokens, _)) = bucket {
        let left = tokens - taken.leases.len() as f64;
        tx.execute(
            "INSERT INTO switchboard_buckets (endpoint, tokens, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (endpoint) DO UPDATE SET tokens = EXCLUDED.tokens, \
               updated_at = GREATEST(switchboard_buckets.updated_at, EXCLUDED.updated_at)",
            &[&endpoint, &left, &now],
        )
        .await
        .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(taken)
}

/// How soon a node looks again at an endpoint whose concurrency the other nodes hold.
const CAPPED_RETRY_MS: i64 = 200;

/// The take itself, on a connection or inside the capped take's transaction.
async fn take_with(
    client: &impl deadpool_postgres::GenericClient,
    store: &PostgresStore,
    endpoint: &str,
    now: DateTime<Utc>,
    limit: usize,
    lease_until: DateTime<Utc>,
) -> Result<Taken, StoreError> {
    let take = client
        .prepare_cached(
            "WITH due AS ( \
               SELECT id FROM switchboard_deliveries \
               WHERE state = 'pending' AND endpoint = $1 AND due_at <= $2 \
                 AND (lease_until IS NULL OR lease_until <= $2) \
               ORDER BY due_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             UPDATE switchboard_deliveries d SET lease_owner = $4, lease_until = $5 \
             FROM due WHERE d.id = due.id \
             RETURNING d.id, d.due_at, d.record::text, \
               (SELECT e.record::text FROM switchboard_events e \
                WHERE e.source = d.event_source AND e.id = d.event_id)",
        )
        .await
        .map_err(db_error)?;
    let wanted = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(
            &take,
            &[&endpoint, &now, &wanted, &store.node, &lease_until],
        )
        .await
        .map_err(db_error)?;
    store.count_writes(rows.len() as u64);
    let mut leases = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: &str = row.get(0);
        let dequeued: DateTime<Utc> = row.get(1);
        let delivery: Delivery = match decode(&format!("delivery {id}"), row.get(2)) {
            Ok(delivery) => delivery,
            Err(e) => {
                // Nothing can be sent from a record that cannot be read: it leaves the
                // queue once, rather than being taken again and again.
                tracing::error!(delivery = %id, endpoint = %endpoint, "delivery {id} cannot be read and is dropped from the queue: {e}");
                client
                    .execute(
                        "UPDATE switchboard_deliveries SET state = 'failed' WHERE id = $1",
                        &[&id],
                    )
                    .await
                    .map_err(db_error)?;
                store.count_queued(-1);
                continue;
            }
        };
        let event = match row.get::<_, Option<&str>>(3) {
            None => Ok(None),
            Some(text) => {
                let key = format!("event {}/{}", delivery.event_source, delivery.event_id);
                match decode::<StoredEvent>(&key, text) {
                    Ok(event) => Ok(Some(event)),
                    Err(StoreError::Corrupt { message, .. }) => Err(message),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        leases.push(Lease {
            delivery,
            dequeued,
            event,
        });
    }
    leases.sort_by(|a, b| (a.dequeued, &a.delivery.id).cmp(&(b.dequeued, &b.delivery.id)));
    let next = if leases.len() < limit {
        let statement = client
            .prepare_cached(
                "SELECT min(due_at) FROM switchboard_deliveries \
                 WHERE state = 'pending' AND endpoint = $1 AND due_at > $2",
            )
            .await
            .map_err(db_error)?;
        client
            .query_one(&statement, &[&endpoint, &now])
            .await
            .map_err(db_error)?
            .get(0)
    } else {
        None
    };
    Ok(Taken { leases, next })
}

/// Keeps a delivery leased to this node out of takes until `until`. A lease that another
/// node took over (this one ran out) is that node's: holding it would make its record
/// look late (see `record`).
pub(super) async fn hold(
    store: &PostgresStore,
    id: &DeliveryId,
    until: DateTime<Utc>,
) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute(
            "UPDATE switchboard_deliveries SET lease_until = $3 \
             WHERE id = $1 AND lease_owner = $2",
            &[&id.as_str(), &store.node, &until],
        )
        .await
        .map_err(db_error)?;
    store.count_writes(1);
    Ok(())
}

/// Records an attempt in one transaction: the delivery's row locked first (a replay in
/// flight stands, and so does another node's takeover after this node's lease ran out), then the log clock's, so that the entry's id is greater than every id
/// committed before and the lock is held only for the last statements and the commit.
pub(super) async fn record(
    store: &PostgresStore,
    entry: &LogEntry,
    delivery: &Delivery,
) -> Result<String, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db_error)?;
    let key = format!("delivery {}", delivery.id);
    let row = tx
        .query_opt(
            "SELECT record::text, lease_owner FROM switchboard_deliveries WHERE id = $1 FOR UPDATE",
            &[&delivery.id.as_str()],
        )
        .await
        .map_err(db_error)?;
    let stored: Option<Delivery> = row.as_ref().map(|r| decode(&key, r.get(0))).transpose()?;
    let owner: Option<String> = row.as_ref().and_then(|r| r.get(1));
    let mut delivery = delivery.clone();
    // A late record: this node's lease ran out and another node took the delivery over
    // (its lease still holds it, or it recorded since this node's take). The entry is
    // kept, but the other node's lease and record stand.
    let superseded = stored.as_ref().is_some_and(|stored| match &owner {
        Some(owner) => *owner != store.node,
        None => stored.entries.last() != delivery.entries.last(),
    });
    if let Some(stored) = &stored {
        if stored.generation != delivery.generation || superseded {
            delivery.state = stored.state;
            delivery.due_at = stored.due_at;
            delivery.retry_base = stored.retry_base.max(delivery.attempts);
            delivery.generation = stored.generation;
        }
        delivery.attempts = delivery.attempts.max(stored.attempts);
        delivery.entries = stored.entries.clone();
    }
    let last: String = tx
        .query_one("SELECT last FROM switchboard_log_clock FOR UPDATE", &[])
        .await
        .map_err(db_error)?
        .get(0);
    let mut entry = entry.clone();
    entry.id = next_entry_id(&last, entry.at);
    delivery.last_entry = Some(entry.id.clone());
    delivery.entries.push(entry.id.clone());
    let forms: Vec<String> = {
        let mut forms: Vec<String> = entry
            .keys
            .values()
            .map(String::as_str)
            .chain([entry.event_id.as_str()])
            .filter_map(search_form)
            .collect();
        forms.sort();
        forms.dedup();
        forms
    };
    let entry_record = encode(&entry);
    let (delivery_id, event_id, outcome) = (
        entry.delivery_id.as_str(),
        entry.event_id.as_str(),
        entry.outcome.as_str(),
    );
    let clock_params: [&(dyn ToSql + Sync); 1] = [&entry.id];
    let entry_params: [&(dyn ToSql + Sync); 10] = [
        &entry.id,
        &entry.at,
        &delivery_id,
        &event_id,
        &entry.endpoint,
        &entry.workflow,
        &outcome,
        &entry.node,
        &forms,
        &entry_record,
    ];
    let state = state_name(delivery.state);
    let due = if delivery.state == DeliveryState::Pending {
        delivery.due_at
    } else {
        None
    };
    let delivery_record = encode(&delivery);
    let (id, source, event) = (
        delivery.id.as_str(),
        delivery.event_source.as_str(),
        delivery.event_id.as_str(),
    );
    let delivery_params: [&(dyn ToSql + Sync); 10] = [
        &id,
        &source,
        &event,
        &delivery.target.endpoint,
        &state,
        &due,
        &delivery.created_at,
        &entry.id,
        &delivery_record,
        &superseded,
    ];
    let clock = tx.execute("UPDATE switchboard_log_clock SET last = $1", &clock_params);
    let insert = tx.execute(
        "INSERT INTO switchboard_entries \
           (id, at, delivery_id, event_id, endpoint, workflow, outcome, node, forms, record) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::json)",
        &entry_params,
    );
    let update = tx.execute(
        "INSERT INTO switchboard_deliveries \
           (id, event_source, event_id, endpoint, state, due_at, created_at, last_entry, record) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::json) \
         ON CONFLICT (id) DO UPDATE SET state = $5, due_at = $6, last_entry = $8, \
           record = $9::text::json, \
           lease_owner = CASE WHEN $10 THEN switchboard_deliveries.lease_owner END, \
           lease_until = CASE WHEN $10 THEN switchboard_deliveries.lease_until END",
        &delivery_params,
    );
    // Sent together (tokio-postgres pipelines them on the connection): one round trip.
    futures_util::try_join!(clock, insert, update).map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    let was_pending = stored
        .as_ref()
        .is_some_and(|s| s.state == DeliveryState::Pending);
    let is_pending = delivery.state == DeliveryState::Pending;
    store.count_queued(i64::from(is_pending) - i64::from(was_pending));
    store.count_writes(3);
    Ok(entry.id)
}

/// The id for an entry recorded at `at` after `last`: a ULID of `at` when that sorts
/// after `last`, otherwise one more than `last`.
fn next_entry_id(last: &str, at: DateTime<Utc>) -> String {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let fresh = ulid::Ulid::from_parts(ms, fastrand::u128(..) >> 48);
    match ulid::Ulid::from_string(last) {
        Ok(before) if fresh <= before => before.increment().unwrap_or(fresh),
        _ => fresh,
    }
    .to_string()
}

/// Queues deliveries to be sent again now (see `Store::replay`), in one transaction; an
/// unknown id fails it as a whole. A lease in flight stays: the attempt that holds it is
/// recorded, and the replay stands.
pub(super) async fn replay(
    store: &PostgresStore,
    ids: &[DeliveryId],
    now: DateTime<Utc>,
) -> Result<Vec<Delivery>, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db_error)?;
    let mut wanted: Vec<String> = ids.iter().map(|id| id.as_str().to_string()).collect();
    wanted.sort();
    wanted.dedup();
    let rows = tx
        .query(
            "SELECT id, record::text FROM switchboard_deliveries WHERE id = ANY($1) \
             ORDER BY id FOR UPDATE",
            &[&wanted],
        )
        .await
        .map_err(db_error)?;
    let mut found: HashMap<String, Delivery> = HashMap::new();
    for row in &rows {
        let id: String = row.get(0);
        let delivery = decode(&format!("delivery {id}"), row.get(1))?;
        found.insert(id, delivery);
    }
    let mut was_pending = 0;
    for id in &wanted {
        match found.get(id) {
            Some(d) => was_pending += i64::from(d.state == DeliveryState::Pending),
            None => return Err(StoreError::NotFound(format!("no delivery {id}"))),
        }
    }
    let due = whole_ms(now);
    let mut replayed = Vec::with_capacity(ids.len());
    for id in ids {
        let delivery = found
            .get_mut(id.as_str())
            .expect("every id was found above");
        delivery.state = DeliveryState::Pending;
        delivery.retry_base = delivery.attempts;
        delivery.generation += 1;
        delivery.due_at = Some(due);
        replayed.push(delivery.clone());
    }
    let records: Vec<String> = wanted.iter().map(|id| encode(&found[id])).collect();
    tx.execute(
        "UPDATE switchboard_deliveries d SET state = 'pending', due_at = $2, record = u.r::json \
         FROM unnest($1::text[], $3::text[]) AS u(i, r) WHERE d.id = u.i",
        &[&wanted, &due, &records],
    )
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    store.count_queued(i64::try_from(wanted.len()).unwrap_or(0) - was_pending);
    store.count_writes(wanted.len() as u64);
    Ok(replayed)
}

/// Deletes entries older than `cutoff`, then events accepted before it whose deliveries
/// are all finished with their latest entries older too (so that a kept entry stays
/// findable by its delivery), then the deliveries no kept acceptance owns; each in
/// batches of [`PURGE_BATCH`] rows, one short transaction per batch.
pub(super) async fn purge(
    store: &PostgresStore,
    cutoff: DateTime<Utc>,
) -> Result<Purged, StoreError> {
    let limit = super::CALL_TIMEOUT;
    let client = tokio::time::timeout(limit, store.client())
        .await
        .map_err(|_| store.stuck(limit))??;
    let bound = crate::store::query::ulid_bound(cutoff, false);
    let batched = async |sql: &str, params: &[&(dyn ToSql + Sync)]| {
        let statement = tokio::time::timeout(limit, client.prepare_cached(sql))
            .await
            .map_err(|_| store.stuck(limit))?
            .map_err(db_error)?;
        let mut total = 0u64;
        loop {
            let n = tokio::time::timeout(limit, client.execute(&statement, params))
                .await
                .map_err(|_| store.stuck(limit))?
                .map_err(db_error)?;
            total += n;
            if n < PURGE_BATCH as u64 {
                return Ok::<u64, StoreError>(total);
            }
        }
    };
    let entries = batched(
        "DELETE FROM switchboard_entries WHERE id IN ( \
           SELECT id FROM switchboard_entries WHERE id < $1 ORDER BY id LIMIT $2)",
        &[&bound, &PURGE_BATCH],
    )
    .await?;
    let events = batched(
        "DELETE FROM switchboard_events WHERE (source, id) IN ( \
           SELECT e.source, e.id FROM switchboard_events e \
           WHERE e.accepted_at < $1 AND NOT EXISTS ( \
             SELECT 1 FROM switchboard_deliveries d \
             WHERE d.event_source = e.source AND d.event_id = e.id \
               AND (d.state = 'pending' OR d.last_entry >= $2)) \
           LIMIT $3 FOR UPDATE SKIP LOCKED)",
        &[&cutoff, &bound, &PURGE_BATCH],
    )
    .await?;
    // Finished deliveries of events purged now or before, and of earlier acceptances of
    // an event accepted again since (their event's record is a later one).
    let deliveries = batched(
        "DELETE FROM switchboard_deliveries WHERE id IN ( \
           SELECT d.id FROM switchboard_deliveries d \
           WHERE d.state <> 'pending' AND d.created_at < $1 \
             AND (d.last_entry IS NULL OR d.last_entry < $2) \
             AND NOT EXISTS (SELECT 1 FROM switchboard_events e \
               WHERE e.source = d.event_source AND e.id = d.event_id \
                 AND e.accepted_at <= d.created_at) \
           LIMIT $3 FOR UPDATE SKIP LOCKED)",
        &[&cutoff, &bound, &PURGE_BATCH],
    )
    .await?;
    store.count_writes(entries + events + deliveries);
    Ok(Purged {
        entries: usize::try_from(entries).unwrap_or(usize::MAX),
        events: usize::try_from(events).unwrap_or(usize::MAX),
    })
}
