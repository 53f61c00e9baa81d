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
use crate::store::{Delivery, DeliveryId, LogEntry, StoreError, StoredEvent};

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

fn from_layout_1(tree: &sled::Tree) -> Result<(), StoreError> {
    // Facet keys, and each delivery's entries in time order.
    let mut entries: HashMap<DeliveryId, Vec<String>> = HashMap::new();
    for item in tree.scan_prefix([space::LOG]) {
        let (key, value) = item?;
        let entry: LogEntry = decode(&key, &value)?;
        tree.insert(keys::facet(&entry), &[])?;
        entries
            .entry(entry.delivery_id.clone())
            .or_default()
            .push(entry.id);
    }
    for item in tree.scan_prefix([space::DELIVERY]) {
        let (key, value) = item?;
        let mut delivery: Delivery = decode(&key, &value)?;
        if let Some(ids) = entries.remove(&delivery.id) {
            delivery.entries = ids;
            tree.insert(key, encode(&delivery))?;
        }
    }
    // Audit keys once per acceptance; time keys only for events without deliveries.
    let mut with_deliveries = std::collections::HashSet::new();
    for item in tree.scan_prefix([space::EVENT]) {
        let (key, value) = item?;
        let stored: StoredEvent = decode(&key, &value)?;
        let Some(first) = stored.deliveries.first() else {
            continue;
        };
        with_deliveries.insert(key.to_vec());
        let ids: Vec<&DeliveryId> = stored.deliveries.iter().map(|d| &d.id).collect();
        let delivery_key = keys::delivery(&first.id);
        if let Some(bytes) = tree.get(&delivery_key)? {
            let delivery: Delivery = decode(&delivery_key, &bytes)?;
            for form in keys::audit_forms(delivery.keys.values()) {
                tree.insert(keys::audit(&form, &first.id), encode(&ids))?;
            }
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
