//! The embedded backend: the only place that knows sled. Accepted events, their
//! deliveries, the delivery queue, and the connect log with its indexes, in one data
//! folder held by one process.
//!
//! **Invariant:** every write goes to the journal first, one record per logical change
//! (an event with all its deliveries; an attempt with its entry, indexes, delivery and
//! queue change), then to sled, under the writer lock, so that journal order is sled
//! order; `Inner::commit` makes the journal durable before `accept` returns.
//! **Invariant:** a queue entry is removed only in the record of the attempt's result, so
//! a crash mid-attempt leaves it queued (at-least-once).
//! **Invariant:** sled calls run on blocking threads (`spawn_blocking`), never on the
//! async executor's.

mod heads;
mod journal;
mod keys;
mod log;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;

use crate::engine::Match;
use crate::engine::event::{Event, EventId};
use crate::store::{
    Accepted, DEFAULT_DEDUPE_WINDOW, Delivery, DeliveryId, DeliveryRef, DeliveryState, Lease,
    LogEntry, LogQuery, NewEvent, Purged, StoreError, StoredEvent, Taken, whole_ms,
};
use heads::{Heads, Look};
use journal::{Journal, Op};

/// Due deliveries of an endpoint (with the due time of each one's queue entry), and when
/// the next one not yet due falls due.
type Due = (Vec<(DeliveryId, DateTime<Utc>)>, Option<DateTime<Utc>>);

/// sled, open. Its I/O errors are sticky (every later call fails with the same error), so
/// after a storage failure it is closed and opened again ([`Store::recover`]).
#[derive(Clone)]
struct Sled {
    db: sled::Db,
    /// Everything, in key spaces (see `keys::space`).
    tree: sled::Tree,
}

/// Whether the storage works. Set failing by the first write, sync or checkpoint that
/// fails; cleared only by [`Store::recover`].
#[derive(Default)]
struct Health {
    failing: std::sync::atomic::AtomicBool,
    reason: std::sync::Mutex<Option<String>>,
}

impl Health {
    /// Notes a storage failure; logs it once, when the storage goes from working to failing.
    fn fail(&self, reason: String) {
        let mut held = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if !self.failing.swap(true, std::sync::atomic::Ordering::SeqCst) {
            tracing::error!(
                "storage failed: {reason}; refusing new events (503) and holding deliveries until it works again"
            );
            *held = Some(reason);
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        if !self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let reason = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        Err(StoreError::Unavailable(
            reason.clone().unwrap_or_else(|| "unknown failure".into()),
        ))
    }
}

/// The data folder, open: what the [`SledStore`] handle shares with its blocking tasks.
struct Inner {
    path: PathBuf,
    /// None only while [`Store::recover`] reopens it.
    sled: std::sync::RwLock<Option<Sled>>,
    /// Serialises the read-then-write of accepting an event (dedupe) and of replaying.
    /// One process holds the folder, so a process-wide lock is enough.
    writer: Arc<std::sync::Mutex<()>>,
    /// The first queue keys of every endpoint, kept in step with every write.
    heads: Heads,
    /// Deliveries in the queue, counted once at open and kept up to date by every write.
    queued: std::sync::atomic::AtomicUsize,
    /// Keys written to sled (inserts and removes) since the store was opened.
    writes: std::sync::atomic::AtomicU64,
    /// Every write that must be durable before it is acknowledged, in order.
    journal: Arc<Journal>,
    /// When sled last caught up with the journal (unix ms), to delete old segments.
    checkpointed: std::sync::atomic::AtomicI64,
    dedupe_window: Duration,
    health: Arc<Health>,
    /// Deliveries taken and not yet recorded or released, with when their lease ends.
    leases: std::sync::Mutex<std::collections::HashMap<DeliveryId, DateTime<Utc>>>,
}

impl Inner {
    /// Opens (or creates) the data folder. Only one process may hold it.
    fn open(path: &Path, dedupe_window: Duration) -> Result<Inner, StoreError> {
        let sled = open_sled(path)?;
        let applied = applied_mark(&sled.tree)?;
        let (journal, pending) =
            Journal::open(&path.join("journal"), applied).map_err(StoreError::Journal)?;
        // What had not reached sled's disk before a crash, in the order it was written.
        catch_up(&sled, &journal, pending)?;
        let queued = sled.tree.scan_prefix([keys::space::QUEUE]).count();
        let heads = Heads::default();
        heads.load(&sled.tree)?;
        Ok(Inner {
            path: path.to_path_buf(),
            sled: std::sync::RwLock::new(Some(sled)),
            writer: Arc::new(std::sync::Mutex::new(())),
            heads,
            queued: std::sync::atomic::AtomicUsize::new(queued),
            writes: std::sync::atomic::AtomicU64::new(0),
            journal: Arc::new(journal),
            checkpointed: std::sync::atomic::AtomicI64::new(Utc::now().timestamp_millis()),
            dedupe_window,
            health: Arc::default(),
            leases: Default::default(),
        })
    }

    /// sled as open now.
    fn sled(&self) -> Result<Sled, StoreError> {
        self.sled
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Unavailable("the data folder is being reopened".into()))
    }

    /// The tree as open now.
    fn tree(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.sled()?.tree)
    }

    /// Whether the storage works: `Err(Unavailable)` with the reason after a write, sync or
    /// checkpoint failed, until [`Store::recover`] succeeds.
    fn health(&self) -> Result<(), StoreError> {
        self.health.check()
    }

    /// Notes that storage failed, and passes the error on.
    fn failed(&self, error: StoreError) -> StoreError {
        self.health.fail(error.to_string());
        error
    }

    /// After a storage failure: if the folder takes writes again, starts a new journal
    /// segment (the old one may end in a record that never reached the disk), closes sled
    /// and opens it again (its errors are sticky), applies what the journal holds beyond
    /// sled's last checkpoint, and reloads the queue heads. Returns whether the store was
    /// failing and works now; an error while it still fails.
    fn recover(&self) -> Result<bool, StoreError> {
        if self.health.check().is_ok() {
            return Ok(false);
        }
        probe_space(&self.path).map_err(StoreError::Journal)?;
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.journal.roll().map_err(StoreError::Journal)?;
        let old = self.sled.write().unwrap_or_else(|p| p.into_inner()).take();
        drop(old);
        // Other holders of the old sled (a read in progress) close it soon; its file lock
        // goes with the last of them.
        let mut tries = 0;
        let sled = loop {
            match open_sled(&self.path) {
                Ok(sled) => break sled,
                Err(StoreError::Locked(_)) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        let applied = applied_mark(&sled.tree)?;
        let pending = self
            .journal
            .records_after(applied)
            .map_err(StoreError::Journal)?;
        catch_up(&sled, &self.journal, pending)?;
        let queued = sled.tree.scan_prefix([keys::space::QUEUE]).count();
        self.heads.load(&sled.tree)?;
        self.queued
            .store(queued, std::sync::atomic::Ordering::SeqCst);
        *self.sled.write().unwrap_or_else(|p| p.into_inner()) = Some(sled);
        self.health
            .failing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        tracing::info!(data = %self.path.display(), "storage works again: accepting events and delivering");
        Ok(true)
    }

    /// Makes every acceptance and replay so far durable (the journal; concurrent callers
    /// share one fdatasync). Now and then also lets sled catch up and drops old journal.
    async fn commit(&self) -> Result<(), StoreError> {
        self.health.check()?;
        if let Err(e) = self.journal.sync(self.journal.last()).await {
            return Err(self.failed(StoreError::Journal(e)));
        }
        self.maybe_checkpoint();
        Ok(())
    }

    /// Makes everything written so far durable, journal and sled, from synchronous code.
    fn commit_blocking(&self) -> Result<(), StoreError> {
        self.health.check()?;
        if let Err(e) = self.journal.sync_blocking() {
            return Err(self.failed(StoreError::Journal(e)));
        }
        self.checkpoint().map_err(|e| self.failed(e))
    }

    /// Flushes sled, then deletes the journal segments it now holds.
    fn checkpoint(&self) -> Result<(), StoreError> {
        checkpoint(&self.sled()?, &self.journal, &self.writer)
    }

    /// Checkpoints in the background if the last one is more than a few seconds old.
    fn maybe_checkpoint(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        let now = Utc::now().timestamp_millis();
        let last = self.checkpointed.load(SeqCst);
        if now - last < 5000
            || self
                .checkpointed
                .compare_exchange(last, now, SeqCst, SeqCst)
                .is_err()
        {
            return;
        }
        let Ok(sled) = self.sled() else {
            return;
        };
        let (journal, writer, health) = (
            self.journal.clone(),
            self.writer.clone(),
            self.health.clone(),
        );
        tokio::task::spawn_blocking(move || {
            if let Err(e) = checkpoint(&sled, &journal, &writer) {
                health.fail(format!("journal checkpoint failed: {e}"));
            }
        });
    }

    /// Writes a batch: journal first (one record: after a crash, all of it or none of it
    /// is replayed), then sled, one key at a time (sled's own atomic batches cost several
    /// times as much per key, and the journal already makes the batch atomic). Keys are
    /// written in the order given, so callers put what a reader follows to last: an index
    /// key after its entry, a queue key after its delivery. Callers hold the writer lock,
    /// so that the journal's order is sled's order. While the storage is failing nothing
    /// is written (`Unavailable`).
    fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.health.check()?;
        let tree = self.tree()?;
        if let Err(e) = self.journal.append(&ops) {
            return Err(self.failed(StoreError::Journal(e)));
        }
        if let Err(e) = apply(&tree, &ops) {
            return Err(self.failed(StoreError::Sled(e)));
        }
        self.writes
            .fetch_add(ops.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for op in &ops {
            match op {
                Op::Insert(key, _) if key.first() == Some(&keys::space::QUEUE) => {
                    self.heads.inserted(key);
                }
                Op::Remove(key) if key.first() == Some(&keys::space::QUEUE) => {
                    self.heads.removed(key);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Stores an event and one pending delivery per match, atomically, unless the same
    /// source already sent that id within the dedupe window (or its deliveries from then
    /// are still in progress). Deliveries are due `now` plus their action's delay. Call
    /// [`Store::commit`] before acknowledging.
    fn accept(
        &self,
        event: &Event,
        matches: &[Match],
        keys: &IndexMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        self.health.check()?;
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
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
        let deliveries: Vec<Delivery> = matches
            .iter()
            .map(|m| {
                let delay =
                    chrono::Duration::from_std(m.delay.unwrap_or_default()).unwrap_or_default();
                let due = now.checked_add_signed(delay).unwrap_or(now);
                Delivery {
                    id: DeliveryId::generate(),
                    event_id: event.id.clone(),
                    event_source: event.source.clone(),
                    event_type: event.kind.clone(),
                    target: m.clone(),
                    created_at: now,
                    state: DeliveryState::Pending,
                    attempts: 0,
                    retry_base: 0,
                    generation: 0,
                    due_at: Some(whole_ms(due)),
                    keys: keys.clone(),
                    last_entry: None,
                }
            })
            .collect();
        let stored = StoredEvent {
            event: event.clone(),
            accepted_at: now,
            deliveries: deliveries
                .iter()
                .map(|d| DeliveryRef {
                    id: d.id.clone(),
                    workflow: d.target.workflow.clone(),
                    endpoint: d.target.endpoint.clone(),
                })
                .collect(),
        };
        let ids: Vec<&DeliveryId> = deliveries.iter().map(|d| &d.id).collect();
        let mut ops = Vec::with_capacity(2 + 2 * deliveries.len());
        ops.push(Op::Insert(
            keys::event(&event.source, &event.id),
            encode(&stored),
        ));
        ops.push(Op::Insert(
            keys::event_time(now, &event.source, &event.id),
            encode(&ids),
        ));
        for d in &deliveries {
            ops.push(Op::Insert(keys::delivery(&d.id), encode(d)));
            ops.push(Op::Insert(
                keys::queue(&d.target.endpoint, d.due_at.unwrap_or(now), &d.id),
                Vec::new(),
            ));
        }
        self.write(ops)?;
        self.count_queued(deliveries.len(), 0);
        Ok(Accepted {
            event_id: event.id.clone(),
            deliveries: stored.deliveries,
            duplicate: false,
        })
    }

    /// An accepted event, by its source and id.
    fn event(&self, source: &str, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        let key = keys::event(source, id);
        self.tree()?
            .get(&key)?
            .map(|v| decode(&key, &v))
            .transpose()
    }

    /// A delivery.
    fn delivery(&self, id: &DeliveryId) -> Result<Option<Delivery>, StoreError> {
        let key = keys::delivery(id);
        self.tree()?
            .get(&key)?
            .map(|v| decode(&key, &v))
            .transpose()
    }

    /// The endpoints that have queued deliveries, in name order.
    fn queued_endpoints(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.heads.endpoints())
    }

    /// Up to `limit` deliveries of `endpoint` due at or before `now`, oldest first (each
    /// with the due time of its queue key), and the due time of the first one not yet due.
    /// Read from the queue heads in memory; sled only when a head runs low.
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
                    let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
                    self.heads.refill(&self.tree()?, endpoint)?;
                }
            }
        }
    }

    /// Removes a queue entry that no longer stands for pending work (its delivery is
    /// finished or gone).
    fn unqueue(
        &self,
        endpoint: &str,
        due: DateTime<Utc>,
        id: &DeliveryId,
    ) -> Result<(), StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let key = keys::queue(endpoint, due, id);
        if self.tree()?.contains_key(&key)? {
            self.write(vec![Op::Remove(key)])?;
            self.count_queued(0, 1);
        }
        Ok(())
    }

    /// Keys written to sled (inserts and removes) since the store was opened: what the
    /// write path costs, for `/metrics` and the benchmarks.
    fn writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many deliveries are queued (pending), over all endpoints.
    fn queue_depth(&self) -> usize {
        self.queued.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn count_queued(&self, added: usize, removed: usize) {
        use std::sync::atomic::Ordering::SeqCst;
        self.queued.fetch_add(added, SeqCst);
        let _ = self
            .queued
            .fetch_update(SeqCst, SeqCst, |n| Some(n.saturating_sub(removed)));
    }

    /// Records an attempt: the log entry with its indexes, the delivery's new state, and
    /// the queue entry the attempt was taken from (`dequeued`) moved (retrying) or removed
    /// (finished), in one batch. If the delivery was replayed while the attempt was in
    /// flight, the replay stands: the attempt is logged and counted, and the delivery stays
    /// queued as the replay left it.
    fn record(
        &self,
        entry: &LogEntry,
        delivery: &Delivery,
        dequeued: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.health.check()?;
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut delivery = delivery.clone();
        let stored = self.delivery(&delivery.id)?;
        if let Some(stored) = &stored
            && stored.generation != delivery.generation
        {
            delivery.state = stored.state;
            delivery.due_at = stored.due_at;
            delivery.retry_base = stored.retry_base.max(delivery.attempts);
            delivery.generation = stored.generation;
        }
        let index = keys::entry_index(entry);
        let mut ops = Vec::with_capacity(index.len() + 4);
        ops.push(Op::Insert(keys::entry(&entry.id), encode(entry)));
        ops.extend(index.into_iter().map(|key| Op::Insert(key, Vec::new())));
        ops.push(Op::Insert(keys::delivery(&delivery.id), encode(&delivery)));
        let old = dequeued.map(|due| keys::queue(&delivery.target.endpoint, due, &delivery.id));
        let new = match delivery.state {
            DeliveryState::Pending => delivery
                .due_at
                .map(|due| keys::queue(&delivery.target.endpoint, due, &delivery.id)),
            _ => None,
        };
        let mut added = 0;
        let mut removed = 0;
        if let Some(old) = &old
            && Some(old) != new.as_ref()
            && self.tree()?.contains_key(old)?
        {
            ops.push(Op::Remove(old.clone()));
            removed = 1;
        }
        if let Some(new) = new
            && Some(&new) != old.as_ref()
            && !self.tree()?.contains_key(&new)?
        {
            ops.push(Op::Insert(new, Vec::new()));
            added = 1;
        }
        self.write(ops)?;
        self.count_queued(added, removed);
        drop(_writer);
        self.leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&delivery.id);
        Ok(())
    }

    /// Takes up to `limit` due deliveries of `endpoint` under a lease until `lease_until`
    /// (see [`Store::take`]).
    fn take(
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
        let mut taken = Vec::with_capacity(due.len());
        for (id, dequeued) in due {
            match self.delivery(&id) {
                Ok(Some(delivery)) if !delivery.state.is_final() => {
                    leases.insert(id, lease_until);
                    taken.push(Lease { delivery, dequeued });
                }
                // Finished or gone: the queue entry no longer stands for pending work.
                Ok(_) => self.unqueue(endpoint, dequeued, &id)?,
                Err(e @ StoreError::Corrupt { .. }) => {
                    // Nothing can be sent from a record that cannot be read: it leaves the
                    // queue once, rather than being taken again and again.
                    tracing::error!(delivery = %id, endpoint = %endpoint, "delivery {id} cannot be read and is dropped from the queue: {e}");
                    self.unqueue(endpoint, dequeued, &id)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Taken {
            leases: taken,
            next,
        })
    }

    /// Queues a delivery to be sent again now, whatever its state; its retry schedule
    /// starts over. An attempt of it in flight is logged when it ends, but does not undo
    /// the replay.
    fn replay(&self, id: &DeliveryId, now: DateTime<Utc>) -> Result<Delivery, StoreError> {
        self.health.check()?;
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut delivery = self
            .delivery(id)?
            .ok_or_else(|| StoreError::NotFound(format!("no delivery {id}")))?;
        let old = match (delivery.state, delivery.due_at) {
            (DeliveryState::Pending, Some(due)) => {
                Some(keys::queue(&delivery.target.endpoint, due, id))
            }
            _ => None,
        };
        delivery.state = DeliveryState::Pending;
        delivery.retry_base = delivery.attempts;
        delivery.generation += 1;
        delivery.due_at = Some(whole_ms(now));
        let new = keys::queue(&delivery.target.endpoint, whole_ms(now), id);
        let mut ops = Vec::with_capacity(3);
        let mut removed = 0;
        if let Some(old) = old
            && old != new
            && self.tree()?.contains_key(&old)?
        {
            ops.push(Op::Remove(old));
            removed = 1;
        }
        let added = usize::from(!self.tree()?.contains_key(&new)?);
        ops.push(Op::Insert(new, Vec::new()));
        ops.push(Op::Insert(keys::delivery(id), encode(&delivery)));
        self.write(ops)?;
        self.count_queued(added, removed);
        Ok(delivery)
    }

    /// A log entry by id.
    fn entry(&self, id: &str) -> Result<Option<LogEntry>, StoreError> {
        let key = keys::entry(id);
        self.tree()?
            .get(&key)?
            .map(|v| decode(&key, &v))
            .transpose()
    }

    /// Up to `limit` entries recorded from `since` to before `until`, after `after`,
    /// oldest first.
    fn entries_between(
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

    /// Searches the connect log; see [`LogQuery`].
    fn search_log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StoreError> {
        log::search(self, query)
    }

    /// Deletes log entries older than `cutoff`, and events (with their deliveries) accepted
    /// before it whose deliveries are all finished. Returns (entries, events) deleted.
    fn purge(&self, cutoff: DateTime<Utc>) -> Result<Purged, StoreError> {
        self.health.check()?;
        let start = keys::entry("");
        let end = keys::entry(&keys::ulid_bound(cutoff, false));
        let mut entries = 0;
        for item in self.tree()?.range(start..end) {
            let (key, value) = item?;
            let entry: LogEntry = decode(&key, &value)?;
            let mut ops: Vec<Op> = keys::entry_index(&entry)
                .into_iter()
                .map(Op::Remove)
                .collect();
            ops.push(Op::Remove(key.to_vec()));
            let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            self.write(ops)?;
            entries += 1;
        }
        let mut events = 0;
        let start = vec![keys::space::EVENT_TIME];
        for item in self.tree()?.range(start..keys::event_time_bound(cutoff)) {
            let (time_key, value) = item?;
            let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let ids: Vec<DeliveryId> = decode(&time_key, &value).unwrap_or_default();
            let mut unfinished = false;
            for id in &ids {
                unfinished |= self.delivery(id)?.is_some_and(|d| !d.state.is_final());
            }
            if unfinished {
                continue;
            }
            let mut ops: Vec<Op> = ids
                .iter()
                .map(|id| Op::Remove(keys::delivery(id)))
                .collect();
            // The event record goes only if it is still this acceptance's (an id accepted
            // again later has a newer record).
            if let Some((source, id)) = keys::event_time_id(&time_key)
                && self
                    .event(&source, &id)?
                    .is_some_and(|e| e.accepted_at < cutoff)
            {
                ops.push(Op::Remove(keys::event(&source, &id)));
            }
            ops.push(Op::Remove(time_key.to_vec()));
            self.write(ops)?;
            events += 1;
        }
        Ok(Purged { entries, events })
    }
}

/// Applies a journal record's writes to sled, in order.
fn apply(tree: &sled::Tree, ops: &[Op]) -> Result<(), sled::Error> {
    for op in ops {
        match op {
            Op::Insert(key, value) => tree.insert(key.as_slice(), value.as_slice())?,
            Op::Remove(key) => tree.remove(key.as_slice())?,
        };
    }
    Ok(())
}

/// Opens sled in `path`; another process holding it is `Locked`.
fn open_sled(path: &Path) -> Result<Sled, StoreError> {
    let db = sled::Config::new()
        .path(path)
        // The default cache is 1 GiB; the working set here is the queue head and
        // recent log entries.
        .cache_capacity(32 * 1024 * 1024)
        .flush_every_ms(Some(500))
        .mode(sled::Mode::HighThroughput)
        .open()
        .map_err(|e| match &e {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                StoreError::Locked(path.to_path_buf())
            }
            sled::Error::Io(io) if io.to_string().contains("lock") => {
                StoreError::Locked(path.to_path_buf())
            }
            _ => StoreError::Sled(e),
        })?;
    let tree = db.open_tree("switchboard")?;
    Ok(Sled { db, tree })
}

/// The last journal record sled holds on disk.
fn applied_mark(tree: &sled::Tree) -> Result<u64, StoreError> {
    Ok(tree
        .get(keys::JOURNAL_APPLIED)?
        .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0))
}

/// Applies the journal records sled may not hold, in order, then checkpoints.
fn catch_up(
    sled: &Sled,
    journal: &Journal,
    pending: Vec<journal::Record>,
) -> Result<(), StoreError> {
    for (_, ops) in &pending {
        apply(&sled.tree, ops)?;
    }
    if let Some((last, _)) = pending.last() {
        sled.tree
            .insert(keys::JOURNAL_APPLIED, &last.to_be_bytes())?;
        sled.db.flush()?;
        journal.checkpoint(*last).map_err(StoreError::Journal)?;
    }
    Ok(())
}

/// Writes, syncs and deletes a small file in the folder: whether it takes writes again.
fn probe_space(path: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let probe = path.join("probe.tmp");
    let result = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(&[0u8; 256 * 1024])?;
        f.sync_data()
    });
    let _ = std::fs::remove_file(&probe);
    result
}

/// Notes the last journal record sled has applied, flushes sled, then deletes the journal
/// segments it now holds on disk.
///
/// Why replaying from that mark is right even though sled may also have flushed some later
/// writes: every sled write goes through the journal, in journal order (under the writer
/// lock), so replaying records after the mark, in order, leaves every key as the last of
/// them to touch it left it, and keys none of them touched as they were.
fn checkpoint(
    sled: &Sled,
    journal: &Journal,
    writer: &std::sync::Mutex<()>,
) -> Result<(), StoreError> {
    let applied = {
        let _writer = writer.lock().unwrap_or_else(|p| p.into_inner());
        let applied = journal.last();
        sled.tree
            .insert(keys::JOURNAL_APPLIED, &applied.to_be_bytes())?;
        applied
    };
    sled.db.flush()?;
    journal.checkpoint(applied).map_err(StoreError::Journal)?;
    Ok(())
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.health.check().is_ok() {
            let _ = self.journal.sync_blocking();
            let _ = self.checkpoint();
        }
    }
}

/// The embedded store: a data folder of sled plus its journal, held by one process.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SledStore({})", self.inner.path.display())
    }
}

impl SledStore {
    /// Opens (or creates) the data folder with the default dedupe window. Only one process
    /// may hold it (`Locked` otherwise).
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        SledStore::open_with(path, DEFAULT_DEDUPE_WINDOW)
    }

    /// Opens the data folder; event ids repeated within `dedupe_window` are duplicates.
    pub fn open_with(path: &Path, dedupe_window: Duration) -> Result<SledStore, StoreError> {
        Ok(SledStore {
            inner: Arc::new(Inner::open(path, dedupe_window)?),
        })
    }

    /// The data folder.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Makes everything written so far durable, journal and sled, from synchronous code.
    pub fn commit_blocking(&self) -> Result<(), StoreError> {
        self.inner.commit_blocking()
    }

    /// Runs `f` on a blocking thread: sled calls never run on the async executor's.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Unavailable(format!("a store task failed: {e}")))?
    }
}

#[async_trait::async_trait]
impl crate::store::Store for SledStore {
    fn describe(&self) -> String {
        format!("sled:{}", self.inner.path.display())
    }

    async fn accept(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Accepted>, StoreError> {
        let accepted = self
            .blocking(move |inner| {
                events
                    .iter()
                    .map(|e| inner.accept(&e.event, &e.matches, &e.keys, now))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        self.inner.commit().await?;
        Ok(accepted)
    }

    async fn queued_endpoints(&self) -> Result<Vec<String>, StoreError> {
        self.inner.queued_endpoints()
    }

    async fn take(
        &self,
        endpoint: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease_until: DateTime<Utc>,
    ) -> Result<Taken, StoreError> {
        let endpoint = endpoint.to_string();
        self.blocking(move |inner| inner.take(&endpoint, now, limit, lease_until))
            .await
    }

    async fn hold(&self, id: &DeliveryId, until: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), until);
        Ok(())
    }

    async fn record(
        &self,
        entry: &LogEntry,
        delivery: &Delivery,
        dequeued: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let (entry, delivery) = (entry.clone(), delivery.clone());
        self.blocking(move |inner| inner.record(&entry, &delivery, dequeued))
            .await
    }

    async fn replay(
        &self,
        ids: &[DeliveryId],
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let ids = ids.to_vec();
        let replayed = self
            .blocking(move |inner| {
                ids.iter()
                    .map(|id| inner.replay(id, now))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        self.inner.commit().await?;
        Ok(replayed)
    }

    async fn delivery(&self, id: &DeliveryId) -> Result<Option<Delivery>, StoreError> {
        let id = id.clone();
        self.blocking(move |inner| inner.delivery(&id)).await
    }

    async fn event(&self, source: &str, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        let (source, id) = (source.to_string(), id.clone());
        self.blocking(move |inner| inner.event(&source, &id)).await
    }

    async fn entry(&self, id: &str) -> Result<Option<LogEntry>, StoreError> {
        let id = id.to_string();
        self.blocking(move |inner| inner.entry(&id)).await
    }

    async fn search(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StoreError> {
        let query = query.clone();
        self.blocking(move |inner| inner.search_log(&query)).await
    }

    async fn entries_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let after = after.map(str::to_string);
        self.blocking(move |inner| inner.entries_between(since, until, after.as_deref(), limit))
            .await
    }

    async fn purge(&self, cutoff: DateTime<Utc>) -> Result<Purged, StoreError> {
        self.blocking(move |inner| inner.purge(cutoff)).await
    }

    fn health(&self) -> Result<(), StoreError> {
        self.inner.health()
    }

    async fn recover(&self) -> Result<bool, StoreError> {
        self.blocking(|inner| inner.recover()).await
    }

    fn queue_depth(&self) -> usize {
        self.inner.queue_depth()
    }

    fn writes(&self) -> u64 {
        self.inner.writes()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.blocking(|inner| inner.commit_blocking()).await
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records always serialize")
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        message: e.to_string(),
    })
}
