//! Data folders written by an earlier layout are upgraded in place when they are opened,
//! so that an upgrade keeps the connect log. Layout 1 indexed every attempt under its
//! endpoint, workflow, outcome, delivery and each audit value (8 to 12 keys an attempt);
//! layout 2 (see `keys.rs`) keeps one facet key per attempt, the audit values once per
//! acceptance, and each delivery's list of entries.
//!
//! The upgrade runs before anything else touches the tree and is idempotent: killed half
//! way, it runs again at the next open (the format mark is written last).

use std::collections::HashMap;

use super::keys::{self, space};
use super::{decode, encode};
use crate::engine::Match;
use crate::store::{
    Delivery, DeliveryId, DeliveryState, LogEntry, Outcome, StoreError, StoredEvent,
};

/// Upgrades `tree` to the current layout if it holds an older one.
pub(super) fn to_current(tree: &sled::Tree) -> Result<(), StoreError> {
    let format = tree.get(keys::FORMAT)?;
    if format.as_deref() == Some(&[keys::FORMAT_VERSION][..]) {
        return Ok(());
    }
    if let Some(other) = format {
        return Err(StoreError::Corrupt {
            key: "M/format".into(),
            message: format!(
                "the data folder has layout {}, this switchboard reads layout {}: use a newer switchboard",
                other.first().copied().unwrap_or(0),
                keys::FORMAT_VERSION
            ),
        });
    }
    let has_data = [space::EVENT, space::LOG, space::DELIVERY]
        .iter()
        .any(|s| tree.scan_prefix([*s]).next().is_some());
    if has_data {
        tracing::info!(
            "upgrading the data folder to layout {}",
            keys::FORMAT_VERSION
        );
        from_layout_1(tree)?;
    }
    tree.insert(keys::FORMAT, &[keys::FORMAT_VERSION])?;
    Ok(())
}

/// Decodes a record, or logs that the upgrade passes over it (a damaged record must not
/// keep the folder from opening).
fn readable<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Option<T> {
    match decode(key, value) {
        Ok(record) => Some(record),
        Err(e) => {
            tracing::warn!("the upgrade passes over a record it cannot read: {e}");
            None
        }
    }
}

fn from_layout_1(tree: &sled::Tree) -> Result<(), StoreError> {
    // Facet keys, and each delivery's entries in time order.
    let mut entries: HashMap<DeliveryId, Vec<LogEntry>> = HashMap::new();
    for item in tree.scan_prefix([space::LOG]) {
        let (key, value) = item?;
        let Some(entry) = readable::<LogEntry>(&key, &value) else {
            continue;
        };
        tree.insert(keys::facet(&entry), &[])?;
        entries
            .entry(entry.delivery_id.clone())
            .or_default()
            .push(entry);
    }
    for item in tree.scan_prefix([space::DELIVERY]) {
        let (key, value) = item?;
        let Some(mut delivery) = readable::<Delivery>(&key, &value) else {
            continue;
        };
        if let Some(found) = entries.remove(&delivery.id) {
            delivery.entries = found.into_iter().map(|e| e.id).collect();
            tree.insert(key, encode(&delivery))?;
        }
    }
    // Entries whose delivery is gone (purged before, with its event kept by a later
    // acceptance): a finished delivery stands in for it, so that they stay findable by
    // delivery and audit value, and are purged with it.
    for (id, found) in entries {
        let (Some(first), Some(last)) = (found.first(), found.last()) else {
            continue;
        };
        let stub = Delivery {
            id: id.clone(),
            event_id: first.event_id.clone(),
            event_source: "api".into(),
            event_type: first.event_type.clone(),
            target: Match {
                workflow: first.workflow.clone(),
                action: 0,
                endpoint: first.endpoint.clone(),
                ..Match::default()
            },
            created_at: first.at,
            state: match last.outcome {
                Outcome::Delivered => DeliveryState::Delivered,
                Outcome::Skipped => DeliveryState::Skipped,
                Outcome::Failed | Outcome::Retrying => DeliveryState::Failed,
            },
            attempts: u32::try_from(found.len()).unwrap_or(u32::MAX),
            retry_base: 0,
            generation: 0,
            due_at: None,
            keys: last.keys.clone(),
            last_entry: Some(last.id.clone()),
            entries: found.iter().map(|e| e.id.clone()).collect(),
            leader: None,
            behind: None,
            followers: Vec::new(),
            captured: None,
        };
        for form in keys::audit_forms(stub.keys.values(), &stub.event_id) {
            tree.insert(keys::audit(&form, &id), encode(&[&id]))?;
        }
        tree.insert(keys::delivery(&id), encode(&stub))?;
    }
    // Audit keys once per acceptance; time keys only for events without deliveries.
    let mut with_deliveries = std::collections::HashSet::new();
    for item in tree.scan_prefix([space::EVENT]) {
        let (key, value) = item?;
        let Some(stored) = readable::<StoredEvent>(&key, &value) else {
            continue;
        };
        let Some(first) = stored.deliveries.first() else {
            continue;
        };
        with_deliveries.insert(key.to_vec());
        let ids: Vec<&DeliveryId> = stored.deliveries.iter().map(|d| &d.id).collect();
        let delivery_key = keys::delivery(&first.id);
        let audit = match tree.get(&delivery_key)? {
            Some(bytes) => readable::<Delivery>(&delivery_key, &bytes)
                .map(|d| d.keys)
                .unwrap_or_default(),
            None => Default::default(),
        };
        for form in keys::audit_forms(audit.values(), &stored.event.id) {
            tree.insert(keys::audit(&form, &first.id), encode(&ids))?;
        }
    }
    for item in tree.scan_prefix([space::EVENT_TIME]) {
        let (key, _) = item?;
        if let Some((source, id)) = keys::event_time_id(&key)
            && with_deliveries.contains(&keys::event(&source, &id))
        {
            tree.remove(key)?;
        }
    }
    for item in tree.scan_prefix([space::INDEX]) {
        let (key, _) = item?;
        tree.remove(key)?;
    }
    Ok(())
}
