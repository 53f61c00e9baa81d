//! What the sled backend writes and reads (layout 2, see `keys.rs`): accepting events,
//! taking due deliveries under leases, recording attempts, replaying, and purging. Every
//! write is one journal record through `Inner::write`, under the writer lock.

use chrono::{DateTime, Utc};

use super::durable::Inner;
use super::heads::Look;
use super::journal::Op;
use super::keys;
use super::{decode, encode};
use crate::engine::event::EventId;
use crate::store::{
    Accepted, Delivery, DeliveryId, DeliveryState, Firings, Lease, LogEntry, NewEvent, Purged,
    StoreError, StoredEvent, Taken, stop, whole_ms,
};

/// Due deliveries of an endpoint (with the due time of each one's queue entry), and when
/// the next one not yet due falls due.
type Due = (Vec<(DeliveryId, DateTime<Utc>)>, Option<DateTime<Utc>>);

impl Inner {
    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores an event and one pending delivery per match, unless it is a duplicate (see
    /// `Store::accept`). Durable only after `commit`.
    pub(super) fn accept(
        &self,
        new: &NewEvent,
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        let (event, matches, audit) = (&new.event, &new.matches, &new.keys);
        self.health.check()?;
        let _writer = self.lock_writer();
        if let Some(stored) = self.event(&event.source, &event.id)? {
            let age = now.signed_duration_since(stored.accepted_at);
            let recent = age < chrono::Duration::zero()
                || age.to_std().is_ok_and(|age| age < self.dedupe_window);
            let mut unfinished = false;
            for d in &stored.deliveries {
                unfinished |= self.delivery(&d.id)?.is_some_and(|d| !d.state.is_final());
            }
            if recent || unfinished {
                return Ok(Accepted {
                    event_id: event.id.clone(),
                    deliveries: stored.deliveries,
                    duplicate: true,
                });
            }
        }
        let (mut stored, mut deliveries) = crate::store::acceptance(event, matches, audit, now);
        let mut ops = Vec::with_capacity(2 + 2 * deliveries.len() + audit.len());
        // Each limit counts the firing, or stops its workflow: counted in the same journal
        // record as the acceptance, under the writer lock, so a count and its event are
        // durable together.
        let mut skips = Vec::new();
        for check in &new.limits {
            let key = keys::firings(&check.workflow, &check.key);
            let mut firings: Firings = self.read(&key)?.unwrap_or_default();
            let fired = firings.fire(check, now);
            ops.push(Op::Insert(key, encode(&firings)));
            if let Err(fired) = fired {
                let id = self.next_entry_id_at(now);
                if let Some(entry) = stop(&mut stored, &mut deliveries, check, fired, id) {
                    skips.push(entry);
                }
            }
        }
        for entry in &skips {
            ops.push(Op::Insert(keys::entry(&entry.id), encode(entry)));
            ops.push(Op::Insert(keys::facet(entry), Vec::new()));
        }
        self.line_up(&mut deliveries, &mut ops)?;
        let refs = stored.deliveries.clone();
        ops.push(Op::Insert(
            keys::event(&event.source, &event.id),
            encode(&stored),
        ));
        match deliveries.first() {
            // Purged through its deliveries.
            Some(first) => {
                let ids: Vec<&DeliveryId> = deliveries.iter().map(|d| &d.id).collect();
                let ids = encode(&ids);
                for form in keys::audit_forms(audit.values(), &event.id) {
                    ops.push(Op::Insert(keys::audit(&form, &first.id), ids.clone()));
                }
            }
            None => ops.push(Op::Insert(
                keys::event_time(now, &event.source, &event.id),
                Vec::new(),
            )),
        }
        let mut queued = 0;
        for d in &deliveries {
            ops.push(Op::Insert(keys::delivery(&d.id), encode(d)));
            // A step waiting for the one it runs after is queued when that one finishes.
            if d.state == DeliveryState::Pending
                && let Some(due) = d.due_at
            {
                ops.push(Op::Insert(
                    keys::queue(&d.target.endpoint, due, &d.id),
                    Vec::new(),
                ));
                queued += 1;
            }
        }
        self.write(ops)?;
        self.count_queued(queued, 0);
        if !skips.is_empty() {
            let mut facets = self.facets.lock().unwrap_or_else(|p| p.into_inner());
            for entry in &skips {
                facets.insert((
                    entry.endpoint.clone(),
                    entry.workflow.clone(),
                    entry.outcome.as_str().to_string(),
                ));
            }
        }
        Ok(Accepted {
            event_id: event.id.clone(),
            deliveries: refs,
            duplicate: false,
        })
    }

    /// Puts each new delivery with an `order_by` value at the end of its line (endpoint,
    /// value): behind the last delivery of that line while that one is unfinished (then it
    /// waits, unqueued, and is that one's follower), and becomes the line's last. The caller
    /// holds the writer lock, so no record finishes the last one in between.
    fn line_up(&self, deliveries: &mut [Delivery], ops: &mut Vec<Op>) -> Result<(), StoreError> {
        for i in 0..deliveries.len() {
            let d = &deliveries[i];
            let Some(value) = d.target.order.clone() else {
                continue;
            };
            if d.state != DeliveryState::Pending || d.leader.is_some() {
                continue;
            }
            let key = keys::order(&d.target.endpoint, &value);
            let id = d.id.clone();
            // The last of the line: one of this acceptance's, or stored.
            let earlier = (0..i).rev().find(|&j| {
                deliveries[j].target.endpoint == deliveries[i].target.endpoint
                    && deliveries[j].target.order.as_deref() == Some(value.as_str())
                    && deliveries[j].leader.is_none()
                    && deliveries[j].state == DeliveryState::Pending
            });
            let ahead = match earlier {
                Some(j) => {
                    deliveries[j].followers.push(id.clone());
                    Some(deliveries[j].id.clone())
                }
                None => match self.read::<DeliveryId>(&key)? {
                    Some(last) => match self.delivery(&last)? {
                        Some(mut last) if !last.state.is_final() => {
                            last.followers.push(id.clone());
                            ops.push(Op::Insert(keys::delivery(&last.id), encode(&last)));
                            Some(last.id)
                        }
                        _ => None,
                    },
                    None => None,
                },
            };
            if let Some(ahead) = ahead {
                deliveries[i].behind = Some(ahead);
                deliveries[i].due_at = None;
            }
            ops.push(Op::Insert(key, encode(&id)));
        }
        Ok(())
    }

    /// A purged delivery that is still the last of its `order_by` line takes the line's
    /// key with it (the line is empty: the next delivery with that value goes at once).
    fn end_of_line(&self, d: &Delivery, ops: &mut Vec<Op>) -> Result<(), StoreError> {
        if let Some(value) = &d.target.order {
            let key = keys::order(&d.target.endpoint, value);
            if self.read::<DeliveryId>(&key)?.as_ref() == Some(&d.id) {
                ops.push(Op::Remove(key));
            }
        }
        Ok(())
    }

    /// The record under `key`, if there is one.
    fn read<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        self.tree()?.get(key)?.map(|v| decode(key, &v)).transpose()
    }

    /// An accepted event, by its source and id.
    pub(super) fn event(
        &self,
        source: &str,
        id: &EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        self.read(&keys::event(source, id))
    }

    /// A delivery.
    pub(super) fn delivery(&self, id: &DeliveryId) -> Result<Option<Delivery>, StoreError> {
        self.read(&keys::delivery(id))
    }

    /// A log entry by id.
    pub(super) fn entry(&self, id: &str) -> Result<Option<LogEntry>, StoreError> {
        self.read(&keys::entry(id))
    }

    /// The endpoints that have queued deliveries, in name order.
    pub(super) fn queued_endpoints(&self) -> Vec<String> {
        self.heads.endpoints()
    }

    /// Up to `limit` deliveries of `endpoint` due at or before `now`, oldest first, passing
    /// over those `skip` names. Read from the queue heads in memory; sled only when a head
    /// runs low.
    fn due(
        &self,
        endpoint: &str,
        now: DateTime<Utc>,
        limit: usize,
        skip: &dyn Fn(&DeliveryId) -> bool,
    ) -> Result<Due, StoreError> {
        loop {
            match self.heads.look(endpoint, now, limit, skip) {
                Look::Found(ready, later) => return Ok((ready, later)),
                Look::Refill => {
                    let _writer = self.lock_writer();
                    self.heads.refill(&self.tree()?, endpoint)?;
                }
            }
        }
    }

    /// Takes up to `limit` due deliveries of `endpoint` under a lease until `lease_until`
    /// (see `Store::take`).
    pub(super) fn take(
        &self,
        endpoint: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease_until: DateTime<Utc>,
    ) -> Result<Taken, StoreError> {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let (due, next) = {
            let leased = |id: &DeliveryId| leases.get(id).is_some_and(|until| *until > now);
            self.due(endpoint, now, limit, &leased)?
        };
        let mut taken: Vec<Lease> = Vec::with_capacity(due.len());
        let release = |leases: &mut std::collections::HashMap<DeliveryId, DateTime<Utc>>,
                       taken: &[Lease]| {
            for lease in taken {
                leases.remove(&lease.delivery.id);
            }
        };
        for (id, dequeued) in due {
            match self.delivery(&id) {
                Ok(Some(delivery)) if !delivery.state.is_final() => {
                    let event = match self.event(&delivery.event_source, &delivery.event_id) {
                        Ok(event) => Ok(event),
                        Err(StoreError::Corrupt { message, .. }) => Err(message),
                        Err(e) => {
                            // Nothing is handed out: what this take leased is free again.
                            release(&mut leases, &taken);
                            return Err(e);
                        }
                    };
                    leases.insert(id, lease_until);
                    taken.push(Lease {
                        delivery,
                        dequeued,
                        event,
                    });
                }
                // Finished or gone: the queue entry no longer stands for pending work.
                Ok(_) => {
                    if let Err(e) = self.unqueue(endpoint, dequeued, &id) {
                        release(&mut leases, &taken);
                        return Err(e);
                    }
                }
                Err(e @ StoreError::Corrupt { .. }) => {
                    // Nothing can be sent from a record that cannot be read: it leaves the
                    // queue once, rather than being taken again and again.
                    tracing::error!(delivery = %id, endpoint = %endpoint, "delivery {id} cannot be read and is dropped from the queue: {e}");
                    if let Err(e) = self.unqueue(endpoint, dequeued, &id) {
                        release(&mut leases, &taken);
                        return Err(e);
                    }
                }
                Err(e) => {
                    release(&mut leases, &taken);
                    return Err(e);
                }
            }
        }
        Ok(Taken {
            leases: taken,
            next,
            held: None,
        })
    }

    /// Removes a queue entry that no longer stands for pending work.
    fn unqueue(
        &self,
        endpoint: &str,
        due: DateTime<Utc>,
        id: &DeliveryId,
    ) -> Result<(), StoreError> {
        let _writer = self.lock_writer();
        let key = keys::queue(endpoint, due, id);
        if self.tree()?.contains_key(&key)? {
            self.write(vec![Op::Remove(key)])?;
            self.count_queued(0, 1);
        }
        Ok(())
    }

    /// Keys written to sled (inserts and removes) since the store was opened.
    pub(super) fn writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many deliveries are queued (pending), over all endpoints.
    pub(super) fn queue_depth(&self) -> usize {
        self.queued.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn count_queued(&self, added: usize, removed: usize) {
        use std::sync::atomic::Ordering::SeqCst;
        self.queued.fetch_add(added, SeqCst);
        let _ = self
            .queued
            .fetch_update(SeqCst, SeqCst, |n| Some(n.saturating_sub(removed)));
    }

    /// Records an attempt: the entry and its facet key, the delivery's new state (with the
    /// entry in its list), the queue entry it was taken from moved (retrying) or removed
    /// (finished), and — when it finished — its waiting followers queued, in one journal
    /// record; ends the delivery's lease. If the delivery was replayed while the attempt
    /// was in flight, the replay stands.
    pub(super) fn record(
        &self,
        entry: &LogEntry,
        delivery: &Delivery,
        dequeued: Option<DateTime<Utc>>,
    ) -> Result<String, StoreError> {
        self.health.check()?;
        let writer = self.lock_writer();
        let mut entry = entry.clone();
        entry.id = self.next_entry_id(&entry);
        let entry = &entry;
        let mut delivery = delivery.clone();
        delivery.last_entry = Some(entry.id.clone());
        let stored = self.delivery(&delivery.id)?;
        if let Some(stored) = &stored {
            if stored.generation != delivery.generation {
                delivery.state = stored.state;
                delivery.due_at = stored.due_at;
                delivery.retry_base = stored.retry_base.max(delivery.attempts);
                delivery.generation = stored.generation;
            }
            delivery.entries = stored.entries.clone();
            // Acceptances may have lined deliveries up behind it since it was taken.
            delivery.followers = stored.followers.clone();
        }
        if !delivery.entries.contains(&entry.id) {
            delivery.entries.push(entry.id.clone());
        }
        let mut ops = Vec::with_capacity(5);
        ops.push(Op::Insert(keys::entry(&entry.id), encode(entry)));
        ops.push(Op::Insert(keys::facet(entry), Vec::new()));
        ops.push(Op::Insert(keys::delivery(&delivery.id), encode(&delivery)));
        let old = dequeued.map(|due| keys::queue(&delivery.target.endpoint, due, &delivery.id));
        let new = match delivery.state {
            DeliveryState::Pending => delivery
                .due_at
                .map(|due| keys::queue(&delivery.target.endpoint, due, &delivery.id)),
            _ => None,
        };
        let tree = self.tree()?;
        let mut added = 0;
        let mut removed = 0;
        if let Some(old) = &old
            && Some(old) != new.as_ref()
            && tree.contains_key(old)?
        {
            ops.push(Op::Remove(old.clone()));
            removed = 1;
        }
        if let Some(new) = new
            && Some(&new) != old.as_ref()
            && !tree.contains_key(&new)?
        {
            ops.push(Op::Insert(new, Vec::new()));
            added = 1;
        }
        // Finished: the steps that wait for it are queued, in the same journal record.
        if delivery.state.is_final() {
            for id in &delivery.followers {
                let Some(mut follower) = self.delivery(id)? else {
                    continue;
                };
                if !follower.is_waiting() {
                    continue;
                }
                let due = follower.released_due(entry.at);
                follower.due_at = Some(due);
                ops.push(Op::Insert(keys::delivery(id), encode(&follower)));
                ops.push(Op::Insert(
                    keys::queue(&follower.target.endpoint, due, id),
                    Vec::new(),
                ));
                added += 1;
            }
        }
        self.write(ops)?;
        self.count_queued(added, removed);
        drop(writer);
        self.facets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((
                entry.endpoint.clone(),
                entry.workflow.clone(),
                entry.outcome.as_str().to_string(),
            ));
        self.leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&delivery.id);
        Ok(entry.id.clone())
    }

    /// The id to record `entry` under: at the attempt's time, and after every id recorded
    /// before it (the caller holds the writer lock, so ids follow the order of records).
    fn next_entry_id(&self, entry: &LogEntry) -> String {
        self.next_entry_id_at(entry.at)
    }

    /// The id of an entry of time `at` (see `next_entry_id`).
    fn next_entry_id_at(&self, at: DateTime<Utc>) -> String {
        let mut last = self.last_entry.lock().unwrap_or_else(|p| p.into_inner());
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        let fresh = ulid::Ulid::from_parts(ms, fastrand::u128(..) >> 48);
        let id = match *last {
            Some(before) if fresh <= before => before.increment().unwrap_or(fresh),
            _ => fresh,
        };
        *last = Some(id);
        id.to_string()
    }

    /// Queues a delivery to be sent again now, whatever its state; its retry schedule
    /// starts over. A step whose leader is replayed with it (`with`), or is not finished,
    /// waits for that one instead. An attempt of it in flight is logged when it ends, but does not undo
    /// the replay.
    pub(super) fn replay(
        &self,
        id: &DeliveryId,
        now: DateTime<Utc>,
        with: &[DeliveryId],
    ) -> Result<Delivery, StoreError> {
        self.health.check()?;
        let _writer = self.lock_writer();
        let mut delivery = self
            .delivery(id)?
            .ok_or_else(|| StoreError::NotFound(format!("no delivery {id}")))?;
        let old = match (delivery.state, delivery.due_at) {
            (DeliveryState::Pending, Some(due)) => {
                Some(keys::queue(&delivery.target.endpoint, due, id))
            }
            _ => None,
        };
        // It waits for its leader if that one is replayed with it, or is not finished yet
        // (a step replayed while the one it runs after is still retrying).
        // So does a delivery for the one ahead of it in its order_by line.
        let mut waits = false;
        for ahead in [&delivery.leader, &delivery.behind].into_iter().flatten() {
            waits |=
                with.contains(ahead) || self.delivery(ahead)?.is_some_and(|a| !a.state.is_final());
        }
        delivery.state = DeliveryState::Pending;
        delivery.retry_base = delivery.attempts;
        delivery.generation += 1;
        delivery.due_at = (!waits).then(|| whole_ms(now));
        let new = delivery
            .due_at
            .map(|due| keys::queue(&delivery.target.endpoint, due, id));
        let tree = self.tree()?;
        let mut ops = Vec::with_capacity(3);
        let mut removed = 0;
        if let Some(old) = old
            && Some(&old) != new.as_ref()
            && tree.contains_key(&old)?
        {
            ops.push(Op::Remove(old));
            removed = 1;
        }
        let mut added = 0;
        if let Some(new) = new {
            added = usize::from(!tree.contains_key(&new)?);
            ops.push(Op::Insert(new, Vec::new()));
        }
        ops.push(Op::Insert(keys::delivery(id), encode(&delivery)));
        self.write(ops)?;
        self.count_queued(added, removed);
        Ok(delivery)
    }

    /// Forgets the `limit` counts with no firing left within their period at `now`.
    pub(super) fn forget_firings(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.health.check()?;
        let tree = self.tree()?;
        let mut forgotten = 0;
        for item in tree.scan_prefix([keys::space::FIRINGS]) {
            let (key, value) = item?;
            let firings: Firings = match decode(&key, &value) {
                Ok(firings) => firings,
                Err(e) => {
                    tracing::warn!("the purge passes over a limit count it cannot read: {e}");
                    continue;
                }
            };
            if firings.expires() > now {
                continue;
            }
            let _writer = self.lock_writer();
            // Counted again since it was read: it stays.
            let again: Option<Firings> = self.read(&key)?;
            if again.is_some_and(|f| f.expires() > now) {
                continue;
            }
            self.write(vec![Op::Remove(key.to_vec())])?;
            forgotten += 1;
        }
        Ok(forgotten)
    }

    /// Up to `limit` entries recorded from `since` to before `until`, after `after`,
    /// oldest first.
    pub(super) fn entries_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let mut start = keys::entry(&keys::ulid_bound(since, false));
        if let Some(after) = after {
            let mut just_after = keys::entry(after);
            just_after.push(0);
            start = start.max(just_after);
        }
        let end = keys::entry(&keys::ulid_bound(until, false));
        let mut found = Vec::new();
        if start >= end {
            return Ok(found);
        }
        for item in self.tree()?.range(start..end).take(limit) {
            let (key, value) = item?;
            found.push(decode(&key, &value)?);
        }
        Ok(found)
    }

    /// Deletes log entries older than `cutoff` (with their facet keys), and events accepted
    /// before it whose deliveries are all finished (with their deliveries and audit keys).
    pub(super) fn purge(&self, cutoff: DateTime<Utc>) -> Result<Purged, StoreError> {
        self.health.check()?;
        let tree = self.tree()?;
        let mut purged = Purged::default();
        let end = keys::entry(&keys::ulid_bound(cutoff, false));
        for item in tree.range(keys::entry("")..end) {
            let (key, value) = item?;
            let entry: LogEntry = decode(&key, &value)?;
            let _writer = self.lock_writer();
            self.write(vec![
                Op::Remove(keys::facet(&entry)),
                Op::Remove(key.to_vec()),
            ])?;
            purged.entries += 1;
        }
        // Events with deliveries, through their deliveries (ids sort by creation time). An
        // event goes when all its deliveries are finished and their latest entries are
        // older than the cutoff too: a kept entry stays findable by delivery and audit value.
        let before_cutoff = keys::ulid_bound(cutoff, false);
        let done = |d: &Delivery| {
            d.state.is_final()
                && d.entries
                    .iter()
                    .chain(&d.last_entry)
                    .all(|id| *id < before_cutoff)
        };
        let end = keys::delivery(&DeliveryId::new(before_cutoff.clone()));
        for item in tree.range(keys::delivery(&DeliveryId::new(""))..end) {
            let (key, value) = item?;
            let _writer = self.lock_writer();
            // Gone already: purged with an earlier delivery of its event.
            if !tree.contains_key(&key)? {
                continue;
            }
            let delivery: Delivery = match decode(&key, &value) {
                Ok(delivery) => delivery,
                Err(e) => {
                    tracing::warn!("purge passes over a delivery it cannot read: {e}");
                    continue;
                }
            };
            if !done(&delivery) {
                continue;
            }
            let event = self.event(&delivery.event_source, &delivery.event_id)?;
            let ours = event
                .as_ref()
                .filter(|e| e.deliveries.iter().any(|d| d.id == delivery.id));
            let Some(event) = ours else {
                // The event was accepted again since (or is gone): this delivery alone, with
                // the audit keys of its acceptance if it was that acceptance's first.
                let mut ops = vec![Op::Remove(key.to_vec())];
                for form in keys::audit_forms(delivery.keys.values(), &delivery.event_id) {
                    ops.push(Op::Remove(keys::audit(&form, &delivery.id)));
                }
                self.end_of_line(&delivery, &mut ops)?;
                self.write(ops)?;
                continue;
            };
            if event.accepted_at >= cutoff {
                continue;
            }
            let mut siblings = Vec::new();
            let mut finished = true;
            for d in &event.deliveries {
                if let Some(d) = self.delivery(&d.id)? {
                    finished &= done(&d);
                    siblings.push(d);
                }
            }
            if !finished {
                continue;
            }
            let mut ops = vec![Op::Remove(keys::event(
                &event.event.source,
                &event.event.id,
            ))];
            if let Some(first) = event.deliveries.first() {
                for form in keys::audit_forms(delivery.keys.values(), &event.event.id) {
                    ops.push(Op::Remove(keys::audit(&form, &first.id)));
                }
            }
            ops.extend(siblings.iter().map(|d| Op::Remove(keys::delivery(&d.id))));
            for d in &siblings {
                self.end_of_line(d, &mut ops)?;
            }
            self.write(ops)?;
            purged.events += 1;
        }
        // Events that made no delivery, by acceptance time.
        let start = vec![keys::space::EVENT_TIME];
        for item in tree.range(start..keys::event_time_bound(cutoff)) {
            let (time_key, _) = item?;
            let _writer = self.lock_writer();
            let mut ops = vec![Op::Remove(time_key.to_vec())];
            // The event record goes only if it is still this acceptance's: accepted again
            // since, with deliveries, it is purged through them.
            if let Some((source, id)) = keys::event_time_id(&time_key)
                && self
                    .event(&source, &id)?
                    .is_some_and(|e| e.deliveries.is_empty() && e.accepted_at < cutoff)
            {
                ops.push(Op::Remove(keys::event(&source, &id)));
                purged.events += 1;
            }
            self.write(ops)?;
        }
        Ok(purged)
    }
}
