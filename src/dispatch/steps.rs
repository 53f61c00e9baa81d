//! What the earlier steps left for an attempt of a step that runs after one: each step of
//! its chain's captured values and HTTP status, read from their deliveries' latest
//! delivered log entries — or why it is not sent (the step it runs after failed, was
//! skipped, or has no delivered attempt).

use serde_json::{Map, Value};

use crate::store::{Delivery, DeliveryState, LogEntry, Outcome, Store, StoreError};

/// How many of a delivery's newest entries are read looking for a delivered one (a
/// replayed step may have failed attempts after its delivery).
const LOOK_BACK: usize = 16;

/// The steps' values for an attempt of `delivery` (`None`: it runs after no step), or
/// why it is skipped. Only the storage failing is an error (the attempt waits); a record
/// that cannot be read back skips the step, once, rather than holding it forever.
pub(super) async fn values(
    store: &dyn Store,
    delivery: &Delivery,
) -> Result<Option<Result<Chain, String>>, StoreError> {
    match chain(store, delivery).await {
        Err(e) if !e.is_unavailable() => Ok(Some(Err(format!(
            "the earlier steps' records cannot be read back: {e}"
        )))),
        other => other,
    }
}

/// Each earlier step's name (as stored with its delivery) and values, the step it runs
/// after first, then down its chain.
pub(super) type Chain = Vec<(String, Value)>;

async fn chain(
    store: &dyn Store,
    delivery: &Delivery,
) -> Result<Option<Result<Chain, String>>, StoreError> {
    let mut steps: Chain = Vec::new();
    let mut next = delivery.leader.clone();
    let mut direct = true;
    while let Some(id) = next {
        let Some(leader) = store.delivery(&id).await? else {
            return Ok(Some(Err(format!(
                "the delivery {id} of the step it runs after is no longer stored (purged?)"
            ))));
        };
        let name = step_name(&leader);
        if direct && matches!(leader.state, DeliveryState::Failed | DeliveryState::Skipped) {
            let why = match last_entry(store, &leader).await? {
                Some(LogEntry { error: Some(e), .. }) => format!(": {}", e.message),
                _ => String::new(),
            };
            let verb = if leader.state == DeliveryState::Failed {
                "failed"
            } else {
                "was skipped"
            };
            return Ok(Some(Err(format!("step {name} {verb}{why}"))));
        }
        // Kept on the delivery as received when it was delivered; deliveries recorded
        // before that read the log's (masked) copy.
        let values = match (&leader.captured, leader.state) {
            (Some(Value::Object(values)), DeliveryState::Delivered) => values.clone(),
            _ => {
                let Some(entry) = delivered(store, &leader).await? else {
                    return Ok(Some(Err(format!("step {name} has not been delivered"))));
                };
                let mut values: Map<String, Value> = entry.captured.into_iter().collect();
                if let Some(response) = entry.response {
                    values.insert("status".into(), Value::from(response.status));
                }
                values
            }
        };
        steps.push((name, Value::Object(values)));
        direct = false;
        next = leader.leader.clone();
    }
    Ok((!steps.is_empty()).then_some(Ok(steps)))
}

/// A delivery's step name (deliveries stored before steps existed: their endpoint's).
pub(super) fn step_name(delivery: &Delivery) -> String {
    delivery
        .target
        .step
        .clone()
        .unwrap_or_else(|| delivery.target.endpoint.clone())
}

async fn last_entry(store: &dyn Store, d: &Delivery) -> Result<Option<LogEntry>, StoreError> {
    match &d.last_entry {
        Some(id) => store.entry(id).await,
        None => Ok(None),
    }
}

/// The newest delivered entry of a delivery, among its last [`LOOK_BACK`].
async fn delivered(store: &dyn Store, d: &Delivery) -> Result<Option<LogEntry>, StoreError> {
    let mut ids: Vec<&String> = d.entries.iter().collect();
    if let Some(last) = &d.last_entry
        && !d.entries.contains(last)
    {
        ids.push(last);
    }
    for id in ids.into_iter().rev().take(LOOK_BACK) {
        if let Some(entry) = store.entry(id).await?
            && entry.outcome == Outcome::Delivered
        {
            return Ok(Some(entry));
        }
    }
    Ok(None)
}
