//! `order_by` lines on PostgreSQL, inside the accept's transaction: each new delivery with
//! an `order_by` value goes to the end of its line (endpoint, value) — behind the line's
//! last delivery while that one is unfinished (then it waits, unqueued, as that one's
//! follower) — and becomes the line's last. The lines' rows are locked in key order, then
//! the last deliveries' rows in id order, and held to the commit: two nodes accepting for
//! one line queue one behind the other, and the record that finishes a last delivery
//! (which locks its row) sees every follower an acceptance gave it.

use std::collections::{BTreeMap, HashMap};

use deadpool_postgres::Transaction;

use super::{db_error, decode, encode};
use crate::store::{Delivery, DeliveryState, StoreError};

/// A delivery of this acceptance that a line holds: (acceptance, delivery) by position.
type Place = (usize, usize);

/// Lines up the pending deliveries with an `order_by` value of `acceptances` (in their
/// order: the order they were accepted in). Returns the rows written besides the new ones.
pub(super) async fn line_up(
    tx: &Transaction<'_>,
    acceptances: &mut [&mut Vec<Delivery>],
) -> Result<u64, StoreError> {
    // Each line's new deliveries, in acceptance order.
    let mut lines: BTreeMap<(String, String), Vec<Place>> = BTreeMap::new();
    for (a, deliveries) in acceptances.iter().enumerate() {
        for (d, delivery) in deliveries.iter().enumerate() {
            if delivery.state != DeliveryState::Pending || delivery.leader.is_some() {
                continue;
            }
            if let Some(value) = &delivery.target.order {
                lines
                    .entry((delivery.target.endpoint.clone(), value.clone()))
                    .or_default()
                    .push((a, d));
            }
        }
    }
    if lines.is_empty() {
        return Ok(0);
    }
    let endpoints: Vec<&str> = lines.keys().map(|(e, _)| e.as_str()).collect();
    let values: Vec<&str> = lines.keys().map(|(_, v)| v.as_str()).collect();
    // Every line has a row to lock (a new line's names no delivery yet).
    tx.execute(
        "INSERT INTO switchboard_order_lines (endpoint, value, last) \
         SELECT e, v, '' FROM unnest($1::text[], $2::text[]) AS u(e, v) \
         ON CONFLICT (endpoint, value) DO NOTHING",
        &[&endpoints, &values],
    )
    .await
    .map_err(db_error)?;
    let rows = tx
        .query(
            "SELECT l.endpoint, l.value, l.last FROM switchboard_order_lines l \
             JOIN unnest($1::text[], $2::text[]) AS u(e, v) ON l.endpoint = u.e AND l.value = u.v \
             ORDER BY l.endpoint, l.value FOR UPDATE OF l",
            &[&endpoints, &values],
        )
        .await
        .map_err(db_error)?;
    let mut lasts: HashMap<(String, String), String> = HashMap::new();
    for row in rows {
        let last: String = row.get(2);
        if !last.is_empty() {
            lasts.insert((row.get(0), row.get(1)), last);
        }
    }
    let mut ids: Vec<&str> = lasts.values().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    // The lines' last deliveries that are unfinished: new ones line up behind them.
    let mut open: HashMap<String, Delivery> = HashMap::new();
    for row in tx
        .query(
            "SELECT id, record::text FROM switchboard_deliveries \
             WHERE id = ANY($1) AND state = 'pending' ORDER BY id FOR UPDATE",
            &[&ids],
        )
        .await
        .map_err(db_error)?
    {
        let id: String = row.get(0);
        let delivery: Delivery = decode(&format!("delivery {id}"), row.get(1))?;
        open.insert(id, delivery);
    }
    let mut changed: Vec<String> = Vec::new();
    let (mut new_endpoints, mut new_values, mut new_lasts) = (Vec::new(), Vec::new(), Vec::new());
    for (line, places) in &lines {
        let mut ahead: Option<Place> = None;
        let mut stored_ahead = lasts.get(line).filter(|id| open.contains_key(*id)).cloned();
        for &(a, d) in places {
            let id = acceptances[a][d].id.clone();
            let behind = match (ahead, &stored_ahead) {
                (Some((pa, pd)), _) => {
                    acceptances[pa][pd].followers.push(id.clone());
                    Some(acceptances[pa][pd].id.clone())
                }
                (None, Some(last)) => {
                    let delivery = open.get_mut(last).expect("an open last delivery");
                    delivery.followers.push(id.clone());
                    changed.push(last.clone());
                    Some(delivery.id.clone())
                }
                (None, None) => None,
            };
            if let Some(behind) = behind {
                let delivery = &mut acceptances[a][d];
                delivery.behind = Some(behind);
                delivery.due_at = None;
            }
            ahead = Some((a, d));
            stored_ahead = None;
        }
        let (a, d) = ahead.expect("a line has a new delivery");
        new_endpoints.push(line.0.as_str());
        new_values.push(line.1.as_str());
        new_lasts.push(acceptances[a][d].id.as_str().to_string());
    }
    tx.execute(
        "UPDATE switchboard_order_lines l SET last = u.l \
         FROM unnest($1::text[], $2::text[], $3::text[]) AS u(e, v, l) \
         WHERE l.endpoint = u.e AND l.value = u.v",
        &[&new_endpoints, &new_values, &new_lasts],
    )
    .await
    .map_err(db_error)?;
    changed.sort();
    changed.dedup();
    if !changed.is_empty() {
        let records: Vec<String> = changed.iter().map(|id| encode(&open[id])).collect();
        tx.execute(
            "UPDATE switchboard_deliveries d SET record = u.r::json \
             FROM unnest($1::text[], $2::text[]) AS u(i, r) WHERE d.id = u.i",
            &[&changed, &records],
        )
        .await
        .map_err(db_error)?;
    }
    Ok((lines.len() + changed.len()) as u64)
}
