//! The store seam: what the runtime needs from durable storage — accept an event with its
//! deliveries durably, take due deliveries under a lease, record attempts, search and
//! export the connect log, replay, purge, and say whether it works — as one trait,
//! [`Store`], with one backend per kind of storage. `sled/` is the embedded default;
//! `postgres/` is a database that several nodes share, behind the same trait, proven by the
//! same conformance tests (`tests/store_conformance.rs`).
//!
//! **Invariant:** only `store/` knows how records are kept (sled is known by `store/sled/`
//! alone, PostgreSQL by `store/postgres/`); everything else speaks in the types of `record.rs`.
//! **Invariant:** [`Store::accept`] returns only once what it accepted is durable.
//! **Invariant:** a taken delivery is leased: no other take hands it out until its attempt
//! is recorded, it is released, or its lease runs out (a node that died).
//! **Invariant:** nothing stored holds a credential: requests are rendered and
//! authenticated at send time, and log entries are redacted before they get here.

pub mod location;
pub mod postgres;
pub mod query;
pub mod record;
pub mod sled;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use indexmap::IndexMap;

use crate::engine::Match;
use crate::engine::event::{Event, EventId};
pub use crate::engine::limit::LimitCheck;
pub use location::Location;
pub use postgres::PostgresStore;
pub use query::LogQuery;

/// An endpoint's limits, as a capped take keeps them across the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Deliveries leased at once.
    pub concurrency: usize,
    /// At most this many taken in each period (`rate_limit`), if set.
    pub rate: Option<crate::engine::units::RateLimit>,
    /// How long a probe of the endpoint may take (its timeout, and the time to record
    /// it): another node's pause holds this much past its end, while that node probes.
    pub probe_within: std::time::Duration,
}

/// A node of the cluster as it last announced itself.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    /// `--node`.
    pub name: String,
    /// Where it serves (`http://host:port`).
    pub address: String,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it last announced itself.
    pub last_seen: DateTime<Utc>,
    /// The fingerprint of its configuration files (nodes of one cluster should agree).
    pub config_hash: String,
    /// Attempts it has on the wire.
    pub in_flight: usize,
}
pub use record::{
    Delivery, DeliveryId, DeliveryRef, DeliveryState, LogEntry, Outcome, StoredEvent,
};
pub use sled::SledStore;

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the folder.
    #[error(
        "the data folder {0} is in use by another switchboard process (is `switchboard serve` running?)"
    )]
    Locked(PathBuf),
    /// sled failed.
    #[error("data folder error (sled): {0}")]
    Sled(#[from] ::sled::Error),
    /// The database refused a statement (PostgreSQL); the message never holds the URL's
    /// password.
    #[error("database error (PostgreSQL): {0}")]
    Database(String),
    /// The journal could not be written, synced or read.
    #[error("journal error: {0}")]
    Journal(std::io::Error),
    /// Storage failed earlier (disk full, I/O error) and has not recovered yet: nothing is
    /// written until it has.
    #[error("storage is failing ({0}); retrying until it works again")]
    Unavailable(String),
    /// A stored record could not be read back.
    #[error("corrupt record {key}: {message}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// No such record.
    #[error("{0}")]
    NotFound(String),
}

impl StoreError {
    /// Whether this is the storage failing (disk full, I/O error) rather than a bad request
    /// or a bad record: the caller should try again later (a server answers 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Sled(_) | StoreError::Journal(_) | StoreError::Unavailable(_)
        )
    }
}

/// Ids repeated within this long after acceptance are duplicates (`serve --dedupe-window`).
pub const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// An event to accept: the event, the workflow actions it matched, and its audit keys.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event.
    pub event: Event,
    /// One delivery is made per match.
    pub matches: Vec<Match>,
    /// Audit keys (phone, lead id …), indexed for search.
    pub keys: IndexMap<String, String>,
    /// The `limit` of each matched workflow that has one: counted atomically with the
    /// acceptance; a workflow over its limit gets one finished `skipped` delivery instead
    /// of its actions (see [`stop`]).
    pub limits: Vec<LimitCheck>,
}

/// The firings a `limit` counted for one (workflow, key): their times, oldest first, and
/// the period they were counted for (which says when the record may be forgotten).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Firings {
    /// The `within` in force at the last firing, in milliseconds.
    pub(crate) within_ms: i64,
    /// Unix milliseconds of each firing still within the period, oldest first.
    pub(crate) times: Vec<i64>,
}

impl Firings {
    /// Counts a firing at `now` unless `check.max` were counted within `check.within`
    /// before it; then returns how many were (the event is stopped and is not counted).
    pub(crate) fn fire(&mut self, check: &LimitCheck, now: DateTime<Utc>) -> Result<(), usize> {
        let within = i64::try_from(check.within.as_millis()).unwrap_or(i64::MAX);
        let now = now.timestamp_millis();
        let oldest = now.saturating_sub(within);
        self.times.retain(|t| *t > oldest);
        // The period in force now says when the record may be forgotten (a reload may
        // have changed it): the caller writes the record back either way.
        self.within_ms = within;
        let max = usize::try_from(check.max).unwrap_or(usize::MAX);
        if self.times.len() >= max {
            return Err(self.times.len());
        }
        // The clock may step back: times stay sorted.
        let at = self.times.last().map_or(now, |last| now.max(*last));
        self.times.push(at);
        Ok(())
    }

    /// When nothing counted here is within its period any more: the record can go.
    pub(crate) fn expires(&self) -> DateTime<Utc> {
        let last = self.times.last().copied().unwrap_or(i64::MIN);
        Utc.timestamp_millis_opt(last.saturating_add(self.within_ms))
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// What an acceptance stores for a workflow its `limit` stopped after `fired` firings in
/// the period: the workflow's deliveries are replaced by one, finished `skipped` (the
/// first's id and action, so that it is found by the event's audit keys like any other),
/// with one log entry, recorded under `entry_id`, that says why (error kind `limit`).
pub(crate) fn stop(
    stored: &mut StoredEvent,
    deliveries: &mut Vec<Delivery>,
    check: &LimitCheck,
    fired: usize,
    entry_id: String,
) -> Option<LogEntry> {
    let first = deliveries
        .iter()
        .position(|d| d.target.workflow == check.workflow)?;
    let mut skipped = deliveries[first].clone();
    deliveries.retain(|d| d.target.workflow != check.workflow || d.id == skipped.id);
    stored
        .deliveries
        .retain(|d| d.workflow != check.workflow || d.id == skipped.id);
    let entry = LogEntry {
        id: entry_id,
        delivery_id: skipped.id.clone(),
        attempt: 0,
        at: skipped.created_at,
        event_id: skipped.event_id.clone(),
        event_type: skipped.event_type.clone(),
        workflow: check.workflow.clone(),
        endpoint: skipped.target.endpoint.clone(),
        step: skipped.target.step.clone(),
        after: None,
        node: check.node.clone(),
        request: None,
        response: None,
        outcome: Outcome::Skipped,
        error: Some(record::AttemptError {
            kind: record::ErrorKind::Limit,
            message: check.message(fired),
        }),
        next_attempt_at: None,
        waiting: None,
        captured: IndexMap::new(),
        warnings: Vec::new(),
        keys: skipped.keys.clone(),
    };
    skipped.state = DeliveryState::Skipped;
    skipped.due_at = None;
    // The workflow's other deliveries are not stored: no step waits for this one.
    skipped.followers.clear();
    skipped.leader = None;
    skipped.last_entry = Some(entry.id.clone());
    skipped.entries = vec![entry.id.clone()];
    if let Some(d) = deliveries.iter_mut().find(|d| d.id == skipped.id) {
        *d = skipped;
    }
    Some(entry)
}

/// What accepting `event` stores, whatever the backend: one pending delivery per match,
/// due after the match's delay — except a step's that runs after another, which waits
/// (no due time) until the delivery of that step is finished —, and the event with
/// references to those deliveries.
pub(crate) fn acceptance(
    event: &Event,
    matches: &[Match],
    keys: &IndexMap<String, String>,
    now: DateTime<Utc>,
) -> (StoredEvent, Vec<Delivery>) {
    let mut deliveries: Vec<Delivery> = matches
        .iter()
        .map(|m| {
            let delay = chrono::Duration::from_std(m.delay.unwrap_or_default()).unwrap_or_default();
            let due = now.checked_add_signed(delay).unwrap_or(now);
            Delivery {
                id: DeliveryId::generate(now),
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
                entries: Vec::new(),
                leader: None,
                behind: None,
                followers: Vec::new(),
                captured: None,
            }
        })
        .collect();
    // A step's delivery waits for the one of the step it runs after, in the same workflow
    // (matches hold each workflow's actions in order: the leader comes first).
    for i in 0..deliveries.len() {
        let Some(after) = matches[i].after.as_deref() else {
            continue;
        };
        let leader = (0..i).rev().find(|&j| {
            matches[j].workflow == matches[i].workflow && matches[j].step.as_deref() == Some(after)
        });
        if let Some(j) = leader {
            let id = deliveries[i].id.clone();
            deliveries[i].leader = Some(deliveries[j].id.clone());
            deliveries[i].due_at = None;
            deliveries[j].followers.push(id);
        }
    }
    let refs = deliveries
        .iter()
        .map(|d| DeliveryRef {
            id: d.id.clone(),
            workflow: d.target.workflow.clone(),
            endpoint: d.target.endpoint.clone(),
        })
        .collect();
    let stored = StoredEvent {
        event: event.clone(),
        accepted_at: now,
        deliveries: refs,
    };
    (stored, deliveries)
}

/// What accepting an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The event's id.
    pub event_id: EventId,
    /// Its deliveries (for a duplicate: those of the first acceptance).
    pub deliveries: Vec<DeliveryRef>,
    /// The id was already accepted within the dedupe window: nothing new was stored.
    pub duplicate: bool,
}

/// A delivery taken from the queue under a lease.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The delivery as stored when it was taken.
    pub delivery: Delivery,
    /// The due time of the queue entry it was taken from (its attempt's record moves or
    /// removes that entry).
    pub dequeued: DateTime<Utc>,
    /// Its event, read with it (None: no longer stored), or why the stored event cannot
    /// be read back.
    pub event: Result<Option<StoredEvent>, String>,
}

/// What a take found: leased deliveries, and when the first one not yet due falls due.
#[derive(Debug, Default)]
pub struct Taken {
    /// Due deliveries, oldest first, each leased to the caller.
    pub leases: Vec<Lease>,
    /// When the next delivery of the endpoint falls due, if one is waiting.
    pub next: Option<DateTime<Utc>>,
    /// Another node's breaker paused the endpoint: nothing is taken until then (when the
    /// take should look again).
    pub held: Option<DateTime<Utc>>,
}

/// What a purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Connect log entries.
    pub entries: usize,
    /// Events (with their finished deliveries).
    pub events: usize,
}

/// Durable storage for events, deliveries and the connect log. See the module's invariants.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Where it keeps its data, for messages (`sled:/var/lib/switchboard`).
    fn describe(&self) -> String;

    /// Stores each event with one pending delivery per match, unless its source already
    /// sent that id within the dedupe window (or the deliveries from then are unfinished):
    /// then nothing new is stored and the first acceptance is returned, marked duplicate.
    /// Deliveries are due `now` plus their action's delay. Returns once it is durable.
    async fn accept(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Accepted>, StoreError>;

    /// The endpoints that have queued deliveries, in name order.
    async fn queued_endpoints(&self) -> Result<Vec<String>, StoreError>;

    /// Takes up to `limit` deliveries of `endpoint` due at `now`, oldest first, each leased
    /// until `lease_until`; deliveries leased to someone else are passed over. Queue entries
    /// that no longer stand for pending work are dropped on the way.
    async fn take(
        &self,
        endpoint: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease_until: DateTime<Utc>,
    ) -> Result<Taken, StoreError>;

    /// As [`Store::take`], keeping the endpoint's `pace` across all the nodes sharing the
    /// store: at most `pace.concurrency` deliveries leased at once, and no more taken than
    /// `pace.rate` lets go. A store that only one node uses has nothing to add: the node's
    /// own lane keeps both.
    async fn take_capped(
        &self,
        endpoint: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease_until: DateTime<Utc>,
        pace: Pace,
    ) -> Result<Taken, StoreError> {
        let _ = pace;
        self.take(endpoint, now, limit, lease_until).await
    }

    /// Tells the other nodes that this node's breaker paused `endpoint` until `until`
    /// (`None`: it answers again): their capped takes take nothing from it meanwhile, and
    /// this node alone probes it. A store that only one node uses has no one to tell.
    /// `version` orders this node's changes (a later one has a greater version): a write
    /// that arrives after a later change's is ignored.
    async fn share_pause(
        &self,
        endpoint: &str,
        until: Option<DateTime<Utc>>,
        version: i64,
    ) -> Result<(), StoreError> {
        let _ = (endpoint, until, version);
        Ok(())
    }

    /// Keeps a leased delivery out of takes until `until` (its attempt could not be
    /// recorded: it waits before it is tried again).
    async fn hold(&self, id: &DeliveryId, until: DateTime<Utc>) -> Result<(), StoreError>;

    /// Records an attempt: the log entry, the delivery's new state, and the queue entry it
    /// was taken from (`dequeued`) moved (retrying) or removed (finished); ends its lease.
    /// If the delivery was replayed while the attempt was in flight, the replay stands; if
    /// the lease ran out and another node took the delivery over, the entry is kept but
    /// that node's lease and record stand.
    /// Returns the id the entry is recorded under: ids increase in the order entries are
    /// recorded (never below the time of the attempt), so that a reader following the log
    /// with an `after` cursor misses none.
    async fn record(
        &self,
        entry: &LogEntry,
        delivery: &Delivery,
        dequeued: Option<DateTime<Utc>>,
    ) -> Result<String, StoreError>;

    /// Queues deliveries to be sent again now, whatever their state; their retry schedules
    /// start over. Returns once it is durable. An unknown id is `NotFound`.
    async fn replay(
        &self,
        ids: &[DeliveryId],
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// A delivery.
    async fn delivery(&self, id: &DeliveryId) -> Result<Option<Delivery>, StoreError>;

    /// An accepted event, by its source and id.
    async fn event(&self, source: &str, id: &EventId) -> Result<Option<StoredEvent>, StoreError>;

    /// A connect log entry.
    async fn entry(&self, id: &str) -> Result<Option<LogEntry>, StoreError>;

    /// Searches the connect log; see [`LogQuery`].
    async fn search(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StoreError>;

    /// Up to `limit` entries recorded from `since` to before `until`, oldest first, after
    /// the entry id `after` if given: an export reads a range page by page.
    async fn entries_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError>;

    /// Deletes log entries older than `cutoff`, and events accepted before it whose
    /// deliveries are all finished.
    async fn purge(&self, cutoff: DateTime<Utc>) -> Result<Purged, StoreError>;

    /// Forgets the `limit` counts whose every firing is older than its period at `now`
    /// (the hourly purge); returns how many (workflow, key) counts went.
    async fn forget_firings(&self, now: DateTime<Utc>) -> Result<usize, StoreError>;

    /// Whether the storage works: `Unavailable` with the reason while it fails.
    fn health(&self) -> Result<(), StoreError>;

    /// What operators should know about the stored data that does not stop the store
    /// working, one sentence each: for sled, journal damage found since the folder was
    /// opened (what was lost, where the damaged file is kept). Empty for a backend that has
    /// nothing to tell.
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }

    /// Records that `node` is alive, as it is now (a backend shared by several nodes keeps
    /// them where the others can list them; a single-node backend needs nothing).
    async fn announce(&self, node: &NodeInfo) -> Result<(), StoreError> {
        let _ = node;
        Ok(())
    }

    /// The nodes that announced themselves, the dead included (empty for a single-node
    /// backend: the node is the one asking).
    async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        Ok(Vec::new())
    }

    /// While it fails, tries to make it work again; returns whether it was failing and
    /// works now.
    async fn recover(&self) -> Result<bool, StoreError>;

    /// Deliveries waiting for an attempt.
    fn queue_depth(&self) -> usize;

    /// Storage writes since open (keys, for sled; rows, for PostgreSQL), for `/metrics` and
    /// benchmarks.
    fn writes(&self) -> u64;

    /// Makes everything written so far durable (before a stop).
    async fn flush(&self) -> Result<(), StoreError>;
}

/// Times in the queue are whole milliseconds, so that a record's `due_at` rebuilds its key.
pub fn whole_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(t.timestamp_millis())
        .single()
        .unwrap_or(t)
}
