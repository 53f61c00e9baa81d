//! What the PostgreSQL backend writes: accepting events (one transaction, multi-row
//! inserts through `unnest`), taking due deliveries under leases, recording attempts under
//! the log clock, replaying, and purging in batches.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

use super::rows::{Deliveries, Entries, Fresh, PURGE_BATCH, Row, next_entry_id};
use super::{Db, db_error, decode, encode, firings};
use crate::store::{
    Accepted, Delivery, DeliveryId, DeliveryState, Lease, LogEntry, NewEvent, Pace, Purged,
    StoreError, StoredEvent, Taken, whole_ms,
};

/// One call of `Store::accept`: its events, accepted at `now`.
pub(super) struct Accepting {
    pub(super) events: Vec<NewEvent>,
    pub(super) now: DateTime<Utc>,
}

fn fresh(new: &NewEvent, now: DateTime<Utc>) -> Fresh {
    let (stored, deliveries) = crate::store::acceptance(&new.event, &new.matches, &new.keys, now);
    Fresh {
        stored,
        deliveries,
        now,
    }
}

/// Stores each event of the calls with its deliveries unless it is a duplicate (see
/// `Store::accept`), all in one transaction; one answer per call. Concurrent acceptances
/// of one id (on several nodes) meet at the events' primary key: the later waits for the
/// earlier to commit, then finds it.
pub(super) async fn accept(
    store: &Db,
    calls: &[Accepting],
) -> Result<Vec<Vec<Accepted>>, StoreError> {
    let events: Vec<(&NewEvent, DateTime<Utc>)> = calls
        .iter()
        .flat_map(|call| call.events.iter().map(|new| (new, call.now)))
        .collect();
    // The first of each (source, id) is stored; a repeat, in this call or another one of
    // the batch, is a duplicate of it.
    let mut first: HashMap<(String, String), usize> = HashMap::new();
    let mut answers: Vec<Option<Accepted>> = vec![None; events.len()];
    let mut repeats = Vec::new();
    let mut fresh_ones: Vec<(usize, Fresh)> = Vec::new();
    for (i, (new, now)) in events.iter().enumerate() {
        let key = (new.event.source.clone(), new.event.id.as_str().to_string());
        match first.get(&key) {
            Some(&j) => repeats.push((i, j)),
            None => {
                first.insert(key, i);
                fresh_ones.push((i, fresh(new, *now)));
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
    let times: Vec<DateTime<Utc>> = fresh_ones.iter().map(|(_, x)| x.now).collect();
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
    let mut stored_now: Vec<usize> = Vec::new();
    let mut rewrite: Vec<usize> = Vec::new();
    for (k, (i, x)) in fresh_ones.iter().enumerate() {
        let key = (
            x.stored.event.source.clone(),
            x.stored.event.id.as_str().to_string(),
        );
        if inserted.contains(&key) {
            stored_now.push(k);
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
                &[&key.0, &key.1, &x.now, &encode(&x.stored)],
            )
            .await
            .map_err(db_error)?;
            stored_now.push(k);
            answers[*i] = Some(accepted(x, false));
            continue;
        };
        let earlier: StoredEvent = decode(&format!("event {}/{}", key.0, key.1), before.get(0))?;
        let unfinished: bool = before.get(1);
        let age = x.now.signed_duration_since(earlier.accepted_at);
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
        rewrite.push(k);
        stored_now.push(k);
    }
    // The limits of what is stored now: counted, or the workflow stopped (its event's
    // record rewritten without the deliveries it no longer has).
    let skips = firings::count(store, &tx, &mut fresh_ones, &stored_now, &events).await?;
    for (k, _) in &skips {
        if !rewrite.contains(k) {
            rewrite.push(k.to_owned());
        }
    }
    for k in &stored_now {
        let (i, x) = &fresh_ones[*k];
        answers[*i] = Some(accepted(x, false));
    }
    // `order_by` lines, in the order the events were accepted (the batch's, not its
    // insertion order).
    let lined = {
        let mut acceptances: Vec<(usize, &mut Vec<Delivery>)> = fresh_ones
            .iter_mut()
            .enumerate()
            .filter(|(k, _)| stored_now.contains(k))
            .map(|(_, (i, x))| (*i, &mut x.deliveries))
            .collect();
        acceptances.sort_by_key(|(i, _)| *i);
        let mut acceptances: Vec<&mut Vec<Delivery>> =
            acceptances.into_iter().map(|(_, d)| d).collect();
        super::order::line_up(&tx, &mut acceptances).await?
    };
    if !rewrite.is_empty() {
        let column = |f: &dyn Fn(&Fresh) -> String| -> Vec<String> {
            rewrite.iter().map(|k| f(&fresh_ones[*k].1)).collect()
        };
        let times: Vec<DateTime<Utc>> = rewrite.iter().map(|k| fresh_ones[*k].1.now).collect();
        tx.execute(
            "UPDATE switchboard_events e SET accepted_at = u.a, record = u.r::json \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS u(s, i, r, a) \
             WHERE e.source = u.s AND e.id = u.i",
            &[
                &column(&|x| x.stored.event.source.clone()),
                &column(&|x| x.stored.event.id.as_str().to_string()),
                &column(&|x| encode(&x.stored)),
                &times,
            ],
        )
        .await
        .map_err(db_error)?;
    }
    let stored_now: Vec<&Fresh> = stored_now.iter().map(|k| &fresh_ones[*k].1).collect();
    let deliveries: Vec<&Delivery> = stored_now
        .iter()
        .flat_map(|x| &x.deliveries)
        .filter(|d| d.state == DeliveryState::Pending)
        .collect();
    if !deliveries.is_empty() {
        let insert = tx
            .prepare_cached(
                "INSERT INTO switchboard_deliveries \
                   (id, event_source, event_id, endpoint, state, due_at, created_at, record) \
                 SELECT i, s, e, p, 'pending', d, c, r::json \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::text[]) \
                   AS u(i, s, e, p, d, c, r)",
            )
            .await
            .map_err(db_error)?;
        let column = |f: &dyn Fn(&Delivery) -> String| -> Vec<String> {
            deliveries.iter().map(|d| f(d)).collect()
        };
        let due: Vec<Option<DateTime<Utc>>> = deliveries.iter().map(|d| d.due_at).collect();
        let created: Vec<DateTime<Utc>> = deliveries.iter().map(|d| d.created_at).collect();
        tx.execute(
            &insert,
            &[
                &column(&|d| d.id.as_str().to_string()),
                &column(&|d| d.event_source.clone()),
                &column(&|d| d.event_id.as_str().to_string()),
                &column(&|d| d.target.endpoint.clone()),
                &due,
                &created,
                &column(&|d| encode(d)),
            ],
        )
        .await
        .map_err(db_error)?;
    }
    if !skips.is_empty() {
        firings::write_skips(&tx, &fresh_ones, &skips).await?;
    }
    tx.commit().await.map_err(db_error)?;
    // A delivery waiting for another (its leader, the one ahead in its line) is not queued
    // (no due time) until then.
    let queued = deliveries.iter().filter(|d| d.due_at.is_some()).count();
    store.count_queued(i64::try_from(queued).unwrap_or(0));
    store.count_writes((stored_now.len() + deliveries.len() + 2 * skips.len()) as u64 + lined);
    for (i, j) in repeats {
        answers[i] = answers[j].clone().map(|a| Accepted {
            duplicate: true,
            ..a
        });
    }
    let mut answers = answers
        .into_iter()
        .map(|a| a.expect("every event of the batch has an answer"));
    Ok(calls
        .iter()
        .map(|call| answers.by_ref().take(call.events.len()).collect())
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
    store: &Db,
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
    // A node that finds another taking does not queue behind it: it looks again shortly.
    let tx = client.transaction().await.map_err(db_error)?;
    // Sent together (pipelined), run in order: the lock, then the counts under it (each
    // statement reads what committed before it started, so after the lock was granted).
    let lock_params: [&(dyn ToSql + Sync); 1] = [&endpoint];
    let lock = tx.query_one(
        "SELECT pg_try_advisory_xact_lock(hashtextextended('switchboard-lane:' || $1, 0))",
        &lock_params,
    );
    let leased_params: [&(dyn ToSql + Sync); 2] = [&endpoint, &now];
    let leased = tx.query_one(
        "SELECT count(*) FROM switchboard_deliveries \
         WHERE endpoint = $1 AND state = 'pending' AND lease_owner IS NOT NULL AND lease_until > $2",
        &leased_params,
    );
    let bucket_row = async {
        match pace.rate {
            None => Ok(None),
            Some(_) => {
                tx.query_opt(
                    "SELECT tokens, updated_at FROM switchboard_buckets WHERE endpoint = $1",
                    &[&endpoint],
                )
                .await
            }
        }
    };
    let pause_params: [&(dyn ToSql + Sync); 2] = [&endpoint, &store.node];
    let paused = tx.query_opt(
        "SELECT paused_until FROM switchboard_pauses \
         WHERE endpoint = $1 AND node <> $2 AND paused_until IS NOT NULL",
        &pause_params,
    );
    let (locked, leased, bucket_row, paused) =
        futures_util::try_join!(lock, leased, bucket_row, paused).map_err(db_error)?;
    if !locked.get::<_, bool>(0) {
        tx.rollback().await.map_err(db_error)?;
        return Ok(Taken {
            leases: Vec::new(),
            next: Some(now + chrono::Duration::milliseconds(BUSY_RETRY_MS)),
            held: None,
        });
    }
    // Another node's breaker paused the endpoint: nothing is taken until its pause, and
    // the probe it then sends, are over; looked at again every second, as that node may
    // find it answering sooner.
    if let Some(paused) = paused {
        let until: DateTime<Utc> = paused.get(0);
        let until = until + chrono::Duration::from_std(pace.probe_within).unwrap_or_default();
        if now < until {
            tx.rollback().await.map_err(db_error)?;
            let again = until.min(now + chrono::Duration::seconds(1));
            return Ok(Taken {
                leases: Vec::new(),
                next: Some(again),
                held: Some(again),
            });
        }
    }
    let leased: i64 = leased.get(0);
    let room = pace
        .concurrency
        .saturating_sub(usize::try_from(leased).unwrap_or(usize::MAX));
    // The rate: one token bucket per endpoint, filled by the time passed since it was last
    // used (by any node), at most `count` deep.
    let bucket = pace.rate.map(|rate| {
        let depth = f64::from(rate.count);
        let per_ms = rate.per.as_secs_f64() * 1000.0 / depth;
        let tokens = match &bucket_row {
            None => depth,
            Some(row) => {
                let (tokens, at): (f64, DateTime<Utc>) = (row.get(0), row.get(1));
                let elapsed = (now - at).num_milliseconds().max(0) as f64;
                (tokens + elapsed / per_ms).min(depth)
            }
        };
        (tokens, per_ms)
    });
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
            held: None,
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

/// How soon a node looks again at an endpoint another node is taking from.
const BUSY_RETRY_MS: i64 = 10;

/// The take itself, on a connection or inside the capped take's transaction.
async fn take_with(
    client: &impl deadpool_postgres::GenericClient,
    store: &Db,
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
    Ok(Taken {
        leases,
        next,
        held: None,
    })
}

/// Shares this node's pause of `endpoint` (see `Store::share_pause`): a pause takes the
/// row over (from another node too); a resumption clears only this node's own pause
/// (another node may have paused it since); either only if it is this node's latest change.
pub(super) async fn share_pause(
    store: &Db,
    endpoint: &str,
    until: Option<DateTime<Utc>>,
    version: i64,
) -> Result<(), StoreError> {
    let client = store.client().await?;
    match until {
        Some(until) => {
            client
                .execute(
                    "INSERT INTO switchboard_pauses (endpoint, paused_until, node, version) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (endpoint) DO UPDATE SET paused_until = EXCLUDED.paused_until, \
                       node = EXCLUDED.node, version = EXCLUDED.version \
                     WHERE switchboard_pauses.node <> EXCLUDED.node \
                       OR switchboard_pauses.version < EXCLUDED.version",
                    &[&endpoint, &until, &store.node, &version],
                )
                .await
        }
        None => {
            client
                .execute(
                    "UPDATE switchboard_pauses SET paused_until = NULL, version = $3 \
                     WHERE endpoint = $1 AND node = $2 AND version < $3",
                    &[&endpoint, &store.node, &version],
                )
                .await
        }
    }
    .map_err(db_error)?;
    Ok(())
}

/// Keeps a delivery leased to this node out of takes until `until`. A lease that another
/// node took over (this one ran out) is that node's: holding it would make its record
/// look late (see `record`).
pub(super) async fn hold(
    store: &Db,
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

/// Records attempts in one transaction: the deliveries' rows locked first (a replay in
/// flight stands, and so does another node's takeover after this node's lease ran out),
/// then the log clock's, so that the entries' ids are greater than every id committed
/// before and the lock is held only for the last statements and the commit. The attempts
/// are applied in order, as if recorded one after another; one entry id per attempt.
pub(super) async fn record(
    store: &Db,
    attempts: &[(LogEntry, Delivery)],
) -> Result<Vec<String>, StoreError> {
    loop {
        if let Some(ids) = record_once(store, attempts).await? {
            return Ok(ids);
        }
    }
}

/// One try of [`record`]: None (rolled back, nothing written) when an acceptance lined
/// up a follower behind one of the deliveries between the unlocked read of their
/// followers and the lock: every row is locked in one id-ordered pass, as acceptances
/// lock the lines' last deliveries, so that neither waits for the other in a cycle.
async fn record_once(
    store: &Db,
    attempts: &[(LogEntry, Delivery)],
) -> Result<Option<Vec<String>>, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db_error)?;
    let mut wanted: Vec<&str> = attempts.iter().map(|(_, d)| d.id.as_str()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let finishing: Vec<&str> = attempts
        .iter()
        .filter(|(_, d)| d.state.is_final())
        .map(|(_, d)| d.id.as_str())
        .collect();
    // Acceptances may have lined deliveries up behind one since it was taken: those
    // followers are read first (unlocked), to be locked with the rest.
    let mut known: Vec<String> = Vec::new();
    if !finishing.is_empty() {
        for row in tx
            .query(
                "SELECT id, record::text FROM switchboard_deliveries WHERE id = ANY($1)",
                &[&finishing],
            )
            .await
            .map_err(db_error)?
        {
            let id: String = row.get(0);
            let stored: Delivery = decode(&format!("delivery {id}"), row.get(1))?;
            known.extend(stored.followers.iter().map(|f| f.as_str().to_string()));
        }
    }
    // The steps that wait for a delivery this record finishes are queued in the same
    // transaction: locked with the rest, in id order.
    let mut locked: Vec<&str> = attempts
        .iter()
        .filter(|(_, d)| d.state.is_final())
        .flat_map(|(_, d)| d.followers.iter().map(DeliveryId::as_str))
        .chain(known.iter().map(String::as_str))
        .chain(wanted.iter().copied())
        .collect();
    locked.sort_unstable();
    locked.dedup();
    let select = tx
        .prepare_cached(
            "SELECT id, record::text, lease_owner, lease_until FROM switchboard_deliveries \
             WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        )
        .await
        .map_err(db_error)?;
    let mut rows: HashMap<String, Row> = HashMap::new();
    read_rows(tx.query(&select, &[&locked]).await, &mut rows)?;
    // A follower lined up since the unlocked read: locking it now, after rows with greater
    // ids, could wait for an acceptance that waits for one of those: start over.
    let late = attempts
        .iter()
        .filter(|(_, d)| d.state.is_final())
        .filter_map(|(_, d)| rows.get(d.id.as_str())?.stored.as_ref())
        .flat_map(|stored| stored.followers.iter())
        .any(|f| !locked.contains(&f.as_str()));
    if late {
        tx.rollback().await.map_err(db_error)?;
        return Ok(None);
    }
    // Queued: pending with a due time (a step waiting for its leader has none).
    let is_pending_row = |r: &Row| {
        r.stored
            .as_ref()
            .is_some_and(|d| d.state == DeliveryState::Pending && d.due_at.is_some())
    };
    let was_pending = wanted
        .iter()
        .filter(|id| rows.get(**id).is_some_and(is_pending_row))
        .count() as i64;
    let clock = tx
        .prepare_cached("SELECT last FROM switchboard_log_clock FOR UPDATE")
        .await
        .map_err(db_error)?;
    let mut last: String = tx.query_one(&clock, &[]).await.map_err(db_error)?.get(0);
    let mut entries = Entries::default();
    let mut ids = Vec::with_capacity(attempts.len());
    for (entry, delivery) in attempts {
        // A delivery purged since it was taken is written again.
        let row = rows.entry(delivery.id.as_str().to_string()).or_insert(Row {
            stored: None,
            owner: None,
            until: None,
        });
        let mut delivery = delivery.clone();
        // A late record: this node's lease ran out and another node took the delivery
        // over (its lease still holds it, or it recorded since this node's take). The
        // entry is kept, but the other node's lease and record stand.
        let superseded = row.stored.as_ref().is_some_and(|stored| match &row.owner {
            Some(owner) => *owner != store.node,
            None => stored.entries.last() != delivery.entries.last(),
        });
        if let Some(stored) = &row.stored {
            if stored.generation != delivery.generation || superseded {
                delivery.state = stored.state;
                delivery.due_at = stored.due_at;
                delivery.retry_base = stored.retry_base.max(delivery.attempts);
                delivery.generation = stored.generation;
            }
            delivery.attempts = delivery.attempts.max(stored.attempts);
            delivery.entries = stored.entries.clone();
            // Acceptances may have lined deliveries up behind it since it was taken.
            delivery.followers = stored.followers.clone();
        }
        let mut entry = entry.clone();
        entry.id = next_entry_id(&last, entry.at);
        last = entry.id.clone();
        delivery.last_entry = Some(entry.id.clone());
        delivery.entries.push(entry.id.clone());
        entries.push(&entry);
        ids.push(entry.id);
        if !superseded {
            row.owner = None;
            row.until = None;
        }
        row.stored = Some(delivery);
    }
    // Finished deliveries queue their waiting followers (as `record` in the sled store).
    let mut released: Vec<String> = Vec::new();
    for (entry, delivery) in attempts {
        let followers = match rows
            .get(delivery.id.as_str())
            .and_then(|r| r.stored.as_ref())
        {
            Some(stored) if stored.state.is_final() => stored.followers.clone(),
            _ => continue,
        };
        for id in followers {
            if let Some(follower) = rows
                .get_mut(id.as_str())
                .and_then(|r| r.stored.as_mut())
                .filter(|f| f.is_waiting())
            {
                follower.due_at = Some(follower.released_due(entry.at));
                released.push(id.as_str().to_string());
            }
        }
    }
    let mut deliveries = Deliveries::default();
    for id in wanted
        .iter()
        .copied()
        .chain(released.iter().map(String::as_str))
    {
        deliveries.push(&rows[id]);
    }
    let is_pending = deliveries.pending;
    let clock_params: [&(dyn ToSql + Sync); 1] = [&last];
    let clock = tx.execute("UPDATE switchboard_log_clock SET last = $1", &clock_params);
    let insert = entries.insert(&tx);
    let update = deliveries.upsert(&tx);
    // Sent together (tokio-postgres pipelines them on the connection): one round trip.
    futures_util::try_join!(clock, insert, update).map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    store.count_queued(is_pending - was_pending);
    store.count_writes((attempts.len() + wanted.len() + released.len() + 1) as u64);
    Ok(Some(ids))
}

/// Deliveries' rows as `record` selects them (id, record, lease owner, lease until), into
/// `rows` by id.
fn read_rows(
    selected: Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>,
    rows: &mut HashMap<String, Row>,
) -> Result<(), StoreError> {
    for row in selected.map_err(db_error)? {
        let id: String = row.get(0);
        let stored = decode(&format!("delivery {id}"), row.get(1))?;
        rows.insert(
            id,
            Row {
                stored: Some(stored),
                owner: row.get(2),
                until: row.get(3),
            },
        );
    }
    Ok(())
}

/// Queues deliveries to be sent again now (see `Store::replay`), in one transaction; an
/// unknown id fails it as a whole. A lease in flight stays: the attempt that holds it is
/// recorded, and the replay stands.
pub(super) async fn replay(
    store: &Db,
    ids: &[DeliveryId],
    now: DateTime<Utc>,
) -> Result<Vec<Delivery>, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db_error)?;
    let mut wanted: Vec<String> = ids.iter().map(|id| id.as_str().to_string()).collect();
    wanted.sort();
    wanted.dedup();
    // The leaders of the steps among them are locked too (with them, in id order, as a
    // record that finishes a leader locks its followers): a step whose leader is not
    // finished waits for it. Leaders are set at acceptance, so reading them unlocked
    // first is safe.
    let mut locked = wanted.clone();
    for row in tx
        .query(
            "SELECT record::text FROM switchboard_deliveries WHERE id = ANY($1)",
            &[&wanted],
        )
        .await
        .map_err(db_error)?
    {
        let delivery: Delivery = decode("delivery", row.get(0))?;
        locked.extend(delivery.leader.map(|a| a.as_str().to_string()));
        locked.extend(delivery.behind.map(|a| a.as_str().to_string()));
    }
    locked.sort();
    locked.dedup();
    let rows = tx
        .query(
            "SELECT id, record::text FROM switchboard_deliveries WHERE id = ANY($1) \
             ORDER BY id FOR UPDATE",
            &[&locked],
        )
        .await
        .map_err(db_error)?;
    let mut found: HashMap<String, Delivery> = HashMap::new();
    for row in &rows {
        let id: String = row.get(0);
        let delivery = decode(&format!("delivery {id}"), row.get(1))?;
        found.insert(id, delivery);
    }
    let unfinished: HashSet<String> = found
        .iter()
        .filter(|(_, d)| !d.state.is_final())
        .map(|(id, _)| id.clone())
        .collect();
    let mut was_pending = 0;
    for id in &wanted {
        match found.get(id) {
            Some(d) => {
                was_pending += i64::from(d.state == DeliveryState::Pending && d.due_at.is_some());
            }
            None => return Err(StoreError::NotFound(format!("no delivery {id}"))),
        }
    }
    let due = whole_ms(now);
    let mut replayed = Vec::with_capacity(ids.len());
    for id in ids {
        let delivery = found
            .get_mut(id.as_str())
            .expect("every id was found above");
        // A step whose leader is replayed with it, or is not finished, waits for that one;
        // so does a delivery for the one ahead of it in its order_by line.
        let waits = [&delivery.leader, &delivery.behind]
            .into_iter()
            .flatten()
            .any(|a| ids.contains(a) || unfinished.contains(a.as_str()));
        delivery.state = DeliveryState::Pending;
        delivery.retry_base = delivery.attempts;
        delivery.generation += 1;
        delivery.due_at = (!waits).then_some(due);
        replayed.push(delivery.clone());
    }
    let records: Vec<String> = wanted.iter().map(|id| encode(&found[id])).collect();
    let dues: Vec<Option<DateTime<Utc>>> = wanted.iter().map(|id| found[id].due_at).collect();
    tx.execute(
        "UPDATE switchboard_deliveries d SET state = 'pending', due_at = u.d, record = u.r::json \
         FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS u(i, d, r) WHERE d.id = u.i",
        &[&wanted, &dues, &records],
    )
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    let queued = dues.iter().filter(|d| d.is_some()).count();
    store.count_queued(i64::try_from(queued).unwrap_or(0) - was_pending);
    store.count_writes(wanted.len() as u64);
    Ok(replayed)
}

/// Deletes entries older than `cutoff`, then events accepted before it whose deliveries
/// are all finished with their latest entries older too (so that a kept entry stays
/// findable by its delivery), then the deliveries no kept acceptance owns; each in
/// batches of [`PURGE_BATCH`] rows, one short transaction per batch.
pub(super) async fn purge(store: &Db, cutoff: DateTime<Utc>) -> Result<Purged, StoreError> {
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
    // `order_by` lines whose last delivery is gone are empty: the next delivery with that
    // value goes at once.
    let lines = batched(
        "DELETE FROM switchboard_order_lines WHERE (endpoint, value) IN ( \
           SELECT l.endpoint, l.value FROM switchboard_order_lines l \
           WHERE NOT EXISTS (SELECT 1 FROM switchboard_deliveries d WHERE d.id = l.last) \
           LIMIT $1 FOR UPDATE SKIP LOCKED)",
        &[&PURGE_BATCH],
    )
    .await?;
    store.count_writes(entries + events + deliveries + lines);
    Ok(Purged {
        entries: usize::try_from(entries).unwrap_or(usize::MAX),
        events: usize::try_from(events).unwrap_or(usize::MAX),
    })
}
