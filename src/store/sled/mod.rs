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
//! **Invariant:** sled calls never run on the async executor's threads: writes and point
//! reads run one after another on the store's own thread (no lock contention, and a
//! natural batch for each group commit); searches, exports and purges on blocking
//! threads.

mod durable;
mod heads;
mod journal;
mod keys;
mod log;
mod migrate;
mod ops;

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::engine::event::EventId;
use crate::store::{
    Accepted, DEFAULT_DEDUPE_WINDOW, Delivery, DeliveryId, LogEntry, LogQuery, NewEvent, Purged,
    StoreError, StoredEvent, Taken,
};
use durable::Inner;

/// Work for the store's thread.
type Job = Box<dyn FnOnce(&Inner) + Send>;

/// The embedded store: a data folder of sled plus its journal, held by one process.
pub struct SledStore {
    inner: Arc<Inner>,
    /// To the store's thread; None once dropped.
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // The thread ends with its channel; joining it waits for the work sent before.
        // sled releases the folder's lock when its last handle is gone: a search, export,
        // purge or checkpoint still running on a blocking thread holds one until it ends,
        // and sled's own threads let go a moment after.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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
        let inner = Arc::new(Inner::open(path, dedupe_window)?);
        let (jobs, queue) = mpsc::channel::<Job>();
        let worker = inner.clone();
        let thread = std::thread::Builder::new()
            .name("switchboard-store".into())
            .spawn(move || {
                for job in queue {
                    // A job that panics (a bug, or sled's) fails its caller (its reply is
                    // dropped) and makes the store fail and recover, rather than ending the
                    // thread and leaving every later call without an answer.
                    let run = std::panic::AssertUnwindSafe(|| job(&worker));
                    if std::panic::catch_unwind(run).is_err() {
                        worker.failed(StoreError::Unavailable("a store operation panicked".into()));
                    }
                }
            })
            .map_err(StoreError::Journal)?;
        Ok(SledStore {
            inner,
            jobs: Some(jobs),
            thread: Some(thread),
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

    /// Runs `f` on the store's thread, after the work sent before it.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |inner| {
            let _ = reply.send(inner.noted(f(inner)));
        });
        let stopped = || StoreError::Unavailable("the store operation did not finish".into());
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `f` on a blocking thread (long reads and purges, beside the store's thread).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.noted(f(&inner)))
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
            .run(move |inner| {
                events
                    .iter()
                    .map(|e| inner.accept(e, now))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        self.inner.commit().await?;
        Ok(accepted)
    }

    async fn queued_endpoints(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.inner.queued_endpoints())
    }

    async fn take(
        &self,
        endpoint: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease_until: DateTime<Utc>,
    ) -> Result<Taken, StoreError> {
        let endpoint = endpoint.to_string();
        self.run(move |inner| inner.take(&endpoint, now, limit, lease_until))
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
    ) -> Result<String, StoreError> {
        let (entry, delivery) = (entry.clone(), delivery.clone());
        self.run(move |inner| inner.record(&entry, &delivery, dequeued))
            .await
    }

    async fn replay(
        &self,
        ids: &[DeliveryId],
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let ids = ids.to_vec();
        let replayed = self
            .run(move |inner| {
                ids.iter()
                    .map(|id| inner.replay(id, now, &ids))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        self.inner.commit().await?;
        Ok(replayed)
    }

    async fn delivery(&self, id: &DeliveryId) -> Result<Option<Delivery>, StoreError> {
        let id = id.clone();
        self.run(move |inner| inner.delivery(&id)).await
    }

    async fn event(&self, source: &str, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        let (source, id) = (source.to_string(), id.clone());
        self.run(move |inner| inner.event(&source, &id)).await
    }

    async fn entry(&self, id: &str) -> Result<Option<LogEntry>, StoreError> {
        let id = id.to_string();
        self.run(move |inner| inner.entry(&id)).await
    }

    async fn search(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StoreError> {
        let query = query.clone();
        self.blocking(move |inner| log::search(inner, &query)).await
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

    async fn forget_firings(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.blocking(move |inner| inner.forget_firings(now)).await
    }

    fn health(&self) -> Result<(), StoreError> {
        self.inner.health()
    }

    fn notices(&self) -> Vec<String> {
        self.inner
            .damage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn recover(&self) -> Result<bool, StoreError> {
        self.run(|inner| inner.recover()).await
    }

    fn queue_depth(&self) -> usize {
        self.inner.queue_depth()
    }

    fn writes(&self) -> u64 {
        self.inner.writes()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.run(|inner| inner.commit_blocking()).await
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

/// A list of delivery ids (the value of an audit key).
fn decode_delivery_ids(key: &[u8], bytes: &[u8]) -> Result<Vec<DeliveryId>, StoreError> {
    decode(key, bytes)
}
