//! The head of every endpoint's queue, in memory: the first queue keys of each endpoint,
//! kept in step with every write, so that the dispatcher finds due work (and skips what is
//! in flight) without walking sled on every tick. sled stays the durable copy; this is a
//! cache of a prefix of it, refilled from sled when it runs low.
//!
//! **Invariant:** for every endpoint, `keys` holds exactly the sled queue keys of that
//! endpoint that sort at or before `bound` (all of them when `bound` is `None`). Writes
//! keep it (a key past the bound is left to the next refill); refills run under the
//! store's writer lock, so no write slips between reading sled and extending the bound.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::keys;
use crate::store::DeliveryId;

/// Keys loaded per endpoint by a refill; twice this many are kept at most.
const CAP: usize = 2048;

#[derive(Default)]
struct Head {
    keys: BTreeSet<Vec<u8>>,
    /// The last key loaded from sled, when more may follow it there; None when `keys` is
    /// the whole queue of the endpoint.
    bound: Option<Vec<u8>>,
}

impl Head {
    fn covers(&self, key: &[u8]) -> bool {
        self.bound.as_deref().is_none_or(|bound| key <= bound)
    }
}

/// The queue heads of all endpoints with queued deliveries.
#[derive(Default)]
pub(super) struct Heads {
    map: Mutex<BTreeMap<String, Head>>,
}

/// What a look at one endpoint's head found.
pub(super) enum Look {
    /// Due deliveries (with their queue keys' due times), and when the first one not yet
    /// due falls due.
    Found(Vec<(DeliveryId, DateTime<Utc>)>, Option<DateTime<Utc>>),
    /// The head ran out before `limit` was reached while sled holds more: refill, then
    /// look again.
    Refill,
}

impl Heads {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Head>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets what it holds, then loads the head of every endpoint that has queued
    /// deliveries in `tree`.
    pub fn load(&self, tree: &sled::Tree) -> Result<(), sled::Error> {
        self.map().clear();
        let heads = self;
        let mut from: Vec<u8> = vec![keys::space::QUEUE];
        let end = vec![keys::space::QUEUE + 1];
        while let Some(item) = tree.range(from.as_slice()..end.as_slice()).next() {
            let (key, _) = item?;
            let Some(endpoint) = keys::queue_endpoint(&key) else {
                break;
            };
            from = keys::after_queue(&endpoint);
            heads.refill(tree, &endpoint)?;
        }
        Ok(())
    }

    /// A queue key was written to sled.
    pub fn inserted(&self, key: &[u8]) {
        let Some(endpoint) = keys::queue_endpoint(key) else {
            return;
        };
        let mut map = self.map();
        let head = map.entry(endpoint).or_default();
        if !head.covers(key) {
            return;
        }
        head.keys.insert(key.to_vec());
        if head.keys.len() > 2 * CAP {
            while head.keys.len() > CAP {
                head.keys.pop_last();
            }
            head.bound = head.keys.last().cloned();
        }
    }

    /// A queue key was removed from sled.
    pub fn removed(&self, key: &[u8]) {
        let Some(endpoint) = keys::queue_endpoint(key) else {
            return;
        };
        let mut map = self.map();
        if let Some(head) = map.get_mut(&endpoint) {
            head.keys.remove(key);
            if head.keys.is_empty() && head.bound.is_none() {
                map.remove(&endpoint);
            }
        }
    }

    /// The endpoints that have queued deliveries, in name order.
    pub fn endpoints(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    /// Up to `limit` deliveries of `endpoint` due at `now`, oldest first, passing over
    /// those `skip` names.
    pub fn look(
        &self,
        endpoint: &str,
        now: DateTime<Utc>,
        limit: usize,
        skip: &dyn Fn(&DeliveryId) -> bool,
    ) -> Look {
        let map = self.map();
        let Some(head) = map.get(endpoint) else {
            return Look::Found(Vec::new(), None);
        };
        let mut ready = Vec::new();
        for key in &head.keys {
            let Some((due, id)) = keys::queue_entry(key) else {
                continue;
            };
            if due > now {
                return Look::Found(ready, Some(due));
            }
            if skip(&id) {
                continue;
            }
            if ready.len() == limit {
                return Look::Found(ready, None);
            }
            ready.push((id, due));
        }
        if head.bound.is_some() && ready.len() < limit {
            Look::Refill
        } else {
            Look::Found(ready, None)
        }
    }

    /// Loads up to `CAP` more keys of `endpoint` from sled, after the ones held. The
    /// caller holds the store's writer lock.
    pub fn refill(&self, tree: &sled::Tree, endpoint: &str) -> Result<(), sled::Error> {
        let mut map = self.map();
        let head = map.entry(endpoint.to_string()).or_default();
        let start = match &head.bound {
            Some(bound) => {
                let mut after = bound.clone();
                after.push(0);
                after
            }
            None if head.keys.is_empty() => keys::queue_prefix(endpoint),
            None => return Ok(()),
        };
        let end = keys::after_queue(endpoint);
        let mut loaded = 0;
        let mut last = None;
        for item in tree.range(start..end) {
            let (key, _) = item?;
            head.keys.insert(key.to_vec());
            last = Some(key.to_vec());
            loaded += 1;
            if loaded == CAP {
                break;
            }
        }
        head.bound = if loaded == CAP { last } else { None };
        if head.keys.is_empty() && head.bound.is_none() {
            map.remove(endpoint);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(endpoint: &str, ms: i64, n: usize) -> Vec<u8> {
        keys::queue(
            endpoint,
            DateTime::from_timestamp_millis(ms).unwrap(),
            &DeliveryId::new(format!("{n:026}")),
        )
    }

    fn due_ids(heads: &Heads, tree: &sled::Tree, endpoint: &str, limit: usize) -> Vec<String> {
        let now = DateTime::from_timestamp_millis(1_000_000).unwrap();
        loop {
            match heads.look(endpoint, now, limit, &|_| false) {
                Look::Found(ready, _) => {
                    return ready
                        .into_iter()
                        .map(|(id, _)| id.as_str().to_string())
                        .collect();
                }
                Look::Refill => heads.refill(tree, endpoint).unwrap(),
            }
        }
    }

    #[test]
    fn the_head_follows_sled_past_refills_trims_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("t").unwrap();
        // More than a head holds, already in sled.
        for n in 0..CAP + 10 {
            tree.insert(key("crm", n as i64, n), &[]).unwrap();
        }
        tree.insert(key("erp", 5, 1), &[]).unwrap();
        let heads = Heads::default();
        heads.load(&tree).unwrap();
        assert_eq!(heads.endpoints(), ["crm", "erp"]);
        // Everything is found, in order, across a refill.
        let all = due_ids(&heads, &tree, "crm", usize::MAX);
        assert_eq!(all.len(), CAP + 10);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        // Writes past the bound are left to refills, writes before it are seen at once.
        let early = key("crm", 0, 999_999);
        tree.insert(&early, &[]).unwrap();
        heads.inserted(&early);
        assert_eq!(due_ids(&heads, &tree, "crm", 1), [format!("{:026}", 0)]);
        for n in 0..=CAP + 10 {
            let k = if n == CAP + 10 {
                early.clone()
            } else {
                key("crm", n as i64, n)
            };
            tree.remove(&k).unwrap();
            heads.removed(&k);
        }
        assert!(due_ids(&heads, &tree, "crm", 10).is_empty());
        assert_eq!(heads.endpoints(), ["erp"]);
        // A head that grows past twice its size is trimmed, and refills bring the rest.
        for n in 0..3 * CAP {
            let k = key("erp", 10 + n as i64, n);
            tree.insert(&k, &[]).unwrap();
            heads.inserted(&k);
        }
        assert_eq!(due_ids(&heads, &tree, "erp", usize::MAX).len(), 3 * CAP + 1);
    }
}
