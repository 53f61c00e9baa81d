//! The dispatcher: the only place that knows reqwest. It takes due deliveries from the
//! store's queue, endpoint by endpoint, and sends them with each endpoint's concurrency
//! and rate limit, retrying by its schedule.
//!
//! **Invariant:** one slow or failing endpoint never holds back another: each endpoint has
//! its own lane (concurrency, pacing), and the scheduler only takes from an endpoint as many
//! deliveries as its lane has room for.
//! **Invariant:** a delivery is never sent twice at once: the in-flight set is checked and
//! updated under one lock before an attempt starts.
//! **Invariant:** an unreachable endpoint costs one attempt at a time: after
//! [`UNREACHABLE_AFTER`] attempts in a row that got no answer (DNS, connect, TLS, timeout),
//! its lane pauses, and only a single probe tries it, after 1 s, 2 s, 4 s … up to
//! [`MAX_PAUSE`]; the other deliveries wait in the queue without using up their retries.
//! The first answer of any kind resumes the lane.

mod attempt;
pub mod clock;
mod exchange;
mod health;
mod oauth;
pub mod pace;
pub mod policy;
pub mod response;
mod steps;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};

pub use clock::Clock;
use health::{Gate, Health};
use pace::Bucket;
pub use policy::NetworkPolicy;
use policy::PolicyResolver;

use crate::engine::Engine;
use crate::store::{Delivery, DeliveryId, Lease, LogEntry, Store, StoreError};

/// The engine in use; a reload swaps it while attempts in flight finish with the old one.
pub type EngineCell = Arc<RwLock<Arc<Engine>>>;

/// Something that wants to hear about every attempt (metrics, `send`'s report, the UI).
pub type AttemptListener = Box<dyn Fn(&Delivery, &LogEntry) + Send + Sync>;

/// What the dispatcher tells whoever listens (the runtime, which turns each into an
/// operational event): a delivery ended failed, an endpoint paused or resumed. Nothing is
/// told about a delivery of an operational event (source [`OPERATIONAL_SOURCE`]), nor of a
/// pause or resumption that one of those caused: an alert is never about an alert.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A delivery ended `failed`: the delivery and its last entry.
    Failed(Box<(Delivery, LogEntry)>),
    /// The endpoint's lane paused (it did not answer); its first probe goes at `until`.
    Paused {
        /// The endpoint.
        endpoint: String,
        /// When the first probe goes.
        until: Option<DateTime<Utc>>,
        /// The attempt that paused it, if it was recorded.
        cause: Option<Box<(Delivery, LogEntry)>>,
    },
    /// The endpoint answers again, at `at`.
    Resumed {
        /// The endpoint.
        endpoint: String,
        /// When it answered.
        at: DateTime<Utc>,
        /// The attempt that got the answer, if it was recorded.
        cause: Option<Box<(Delivery, LogEntry)>>,
    },
}

/// The source of switchboard's own operational events.
pub const OPERATIONAL_SOURCE: &str = "switchboard";

/// How many notices may wait to be taken before new ones are dropped (and logged).
pub const NOTICES_WAITING: usize = 4096;

/// Attempts in a row without an answer after which an endpoint's lane pauses.
pub const UNREACHABLE_AFTER: u32 = 5;

/// The longest pause between probes of an unreachable endpoint.
pub const MAX_PAUSE: Duration = Duration::from_secs(60);

/// One endpoint's lane: how many of its deliveries are in flight, its pacing, and whether
/// it answers.
struct Lane {
    concurrency: usize,
    /// The longest an attempt of the endpoint can take (`Endpoint::longest_attempt`):
    /// leases last this long plus [`LEASE_MARGIN`].
    timeout: Duration,
    /// The rate limit the bucket was made for (a reload that changes it makes a new lane).
    rate: Option<crate::engine::units::RateLimit>,
    /// Shared with the lane this one replaced at a reload: attempts it started still count.
    active: Arc<AtomicUsize>,
    bucket: Option<Mutex<Bucket>>,
    /// Shared with the lane this one replaced at a reload: a pause outlives new limits.
    health: Arc<Mutex<Health>>,
}

/// Sends due deliveries. Create with [`Dispatcher::new`], run with [`Dispatcher::run`].
pub struct Dispatcher {
    store: Arc<dyn Store>,
    engine: EngineCell,
    client: reqwest::Client,
    clock: Clock,
    policy: Arc<NetworkPolicy>,
    in_flight: Mutex<HashSet<DeliveryId>>,
    lanes: Mutex<HashMap<String, Arc<Lane>>>,
    wake: Notify,
    settled: Notify,
    listeners: RwLock<Vec<AttemptListener>>,
    /// Attempts in flight (not yet recorded), over all endpoints.
    active: AtomicUsize,
    /// Deliveries whose last attempts could not be recorded, with how many in a row: each
    /// waits out its backoff (a store hold) before it is tried again, so that a failing
    /// store never turns into a resend loop.
    held: Mutex<HashMap<DeliveryId, u32>>,
    /// When recovering the store was last tried (while it fails).
    recovery_tried: Mutex<Option<tokio::time::Instant>>,
    /// This node's name, on every entry it records.
    node: String,
    /// The last version given to a shared pause (see `version`).
    versions: std::sync::atomic::AtomicI64,
    /// OAuth2 access tokens, per endpoint, in memory only.
    tokens: oauth::Tokens,
    /// Where notices go, once someone listens (see [`Dispatcher::notify`]).
    notices: RwLock<Option<tokio::sync::mpsc::Sender<Notice>>>,
}

/// A lease lasts the longest attempt (the endpoint's timeout; six times it for oauth2)
/// plus this: time to record the attempt.
pub const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// After a probe's timeout, the time for its node to record it and share what it found:
/// until then, the other nodes keep holding back from an endpoint that node paused.
const PROBE_RECORDED_WITHIN: Duration = Duration::from_secs(5);

/// The longest a delivery is held back after its attempts could not be recorded.
pub const MAX_HOLD: Duration = Duration::from_secs(60);

/// How long a delivery waits after `failures` attempts in a row could not be recorded:
/// 1 s, 2 s, 4 s … up to [`MAX_HOLD`].
fn hold_for(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(16)).min(MAX_HOLD)
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dispatcher({:?})", self.store)
    }
}

/// The HTTP client all attempts share: pooled connections, rustls, no redirects (a 3xx is
/// an answer to judge, not a place to resend a webhook), and the policy's resolver.
pub fn http_client(policy: Arc<NetworkPolicy>) -> reqwest::Client {
    // rustls needs a process-wide crypto provider; a second install is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        // A proxy from the environment would be the only address the policy sees.
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .dns_resolver(Arc::new(PolicyResolver(policy)))
        .build()
        .expect("the HTTP client configuration is valid")
}

impl Dispatcher {
    /// A dispatcher over `store`, sending with the engine in `engine`.
    pub fn new(
        store: Arc<dyn Store>,
        engine: EngineCell,
        policy: NetworkPolicy,
        clock: Clock,
        node: String,
    ) -> Arc<Dispatcher> {
        let policy = Arc::new(policy);
        Arc::new(Dispatcher {
            client: http_client(policy.clone()),
            store,
            engine,
            clock,
            policy,
            in_flight: Mutex::new(HashSet::new()),
            lanes: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            settled: Notify::new(),
            listeners: RwLock::new(Vec::new()),
            active: AtomicUsize::new(0),
            held: Mutex::new(HashMap::new()),
            recovery_tried: Mutex::new(None),
            node,
            versions: std::sync::atomic::AtomicI64::new(0),
            tokens: oauth::Tokens::default(),
            notices: RwLock::new(None),
        })
    }

    /// The engine in use now.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine
            .read()
            .map(|e| e.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The dispatcher's clock.
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    /// Calls `listener` after every recorded attempt.
    pub fn listen(&self, listener: AttemptListener) {
        if let Ok(mut all) = self.listeners.write() {
            all.push(listener);
        }
    }

    /// Sends every [`Notice`] to `to` from now on.
    pub fn notify(&self, to: tokio::sync::mpsc::Sender<Notice>) {
        if let Ok(mut notices) = self.notices.write() {
            *notices = Some(to);
        }
    }

    fn tell(&self, notice: Notice) {
        let Ok(notices) = self.notices.read() else {
            return;
        };
        if let Some(to) = notices.as_ref()
            && let Err(e) = to.try_send(notice)
        {
            tracing::warn!(
                "an operational event was dropped ({e}): {NOTICES_WAITING} are waiting to be accepted"
            );
        }
    }

    /// New deliveries were queued: look for due work now rather than at the next tick.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits until some attempt has been recorded.
    pub async fn attempt_recorded(&self) {
        self.settled.notified().await;
    }

    /// A version for a shared pause: microseconds since the epoch, and always greater than
    /// the last one given (so a restarted node's changes still come after its earlier ones).
    fn version(&self) -> i64 {
        let now = self.clock.now().timestamp_micros();
        let mut last = self.versions.load(Ordering::SeqCst);
        loop {
            let next = now.max(last + 1);
            match self
                .versions
                .compare_exchange(last, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// The endpoints whose lanes are paused because they do not answer (here, or by
    /// another node sharing the store), in name order.
    pub fn paused(&self) -> Vec<String> {
        let lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = lanes
            .iter()
            .filter(|(_, lane)| {
                lane.health
                    .lock()
                    .map(|h| h.paused_until.is_some() || h.held_until.is_some())
                    .unwrap_or(false)
            })
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// The configuration was replaced (perhaps with a corrected URL): paused endpoints get
    /// their next probe now rather than at the end of their pause.
    pub fn reloaded(&self) {
        let now = self.clock.now();
        for lane in self
            .lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            if let Ok(mut health) = lane.health.lock()
                && let Some(until) = health.paused_until.as_mut()
            {
                *until = (*until).min(now);
            }
        }
        self.wake();
    }

    /// Whether an endpoint's lane lets nothing start now (paused, and its next probe is
    /// not due or already in flight).
    fn is_shut(&self, endpoint: &str, now: DateTime<Utc>) -> bool {
        self.health_of(endpoint, |h| matches!(h.gate(now), Gate::Shut(_)))
    }

    fn health_of(&self, endpoint: &str, test: impl Fn(&Health) -> bool) -> bool {
        let lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes
            .get(endpoint)
            .is_some_and(|lane| lane.health.lock().map(|h| test(&h)).unwrap_or(false))
    }

    /// Attempts in flight.
    pub fn in_flight(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    fn lane(&self, endpoint: &str) -> Arc<Lane> {
        let engine = self.engine();
        let compiled = engine.endpoint(endpoint);
        let policy = compiled.map(|e| &e.policy);
        let concurrency = policy.map_or(1, |p| p.concurrency.max(1) as usize);
        let rate = policy.and_then(|p| p.rate_limit);
        let timeout = compiled.map_or(Duration::from_secs(30), |e| e.longest_attempt());
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lane) = lanes.get(endpoint)
            && lane.concurrency == concurrency
            && lane.rate == rate
            && lane.timeout == timeout
        {
            return lane.clone();
        }
        // A reload may change the limits; attempts already in flight still count, and a
        // paused endpoint stays paused.
        let old = lanes.get(endpoint);
        let lane = Arc::new(Lane {
            concurrency,
            timeout,
            rate,
            active: old.map_or_else(Arc::default, |l| l.active.clone()),
            bucket: rate.map(|r| Mutex::new(Bucket::new(r))),
            health: old.map_or_else(Arc::default, |l| l.health.clone()),
        });
        lanes.insert(endpoint.to_string(), lane.clone());
        lane
    }

    /// Starts every due delivery that its lane has room for; returns when the next
    /// not-yet-due delivery falls due.
    async fn tick(self: &Arc<Self>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let now = self.clock.now();
        // Nothing is sent while the store fails: its attempt could not be recorded.
        self.store.health()?;
        let mut next: Option<DateTime<Utc>> = None;
        for endpoint in self.store.queued_endpoints().await? {
            let lane = self.lane(&endpoint);
            let gate = lane
                .health
                .lock()
                .map(|h| h.gate(now))
                .unwrap_or(Gate::Open);
            let (room, probe) = match gate {
                Gate::Open => (
                    lane.concurrency
                        .saturating_sub(lane.active.load(Ordering::SeqCst)),
                    None,
                ),
                Gate::Probe(epoch) => (1, Some(epoch)),
                Gate::Shut(until) => {
                    if let Some(until) = until {
                        next = Some(next.map_or(until, |n| n.min(until)));
                    }
                    continue;
                }
            };
            // Only as many as the rate limit lets go now: nothing waits for its turn holding
            // a lease, and a reload's new limit applies to everything not yet sent.
            let room = match &lane.bucket {
                None => room,
                Some(bucket) => {
                    let (tokens, wait) = bucket
                        .lock()
                        .map(|mut b| b.available())
                        .unwrap_or((0, Duration::from_secs(1)));
                    if tokens == 0 {
                        let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                    room.min(tokens)
                }
            };
            if room == 0 {
                continue;
            }
            // Long enough for the attempt to end (its timeout) and be recorded; a node that
            // dies holding it gives it up then.
            let lease_until =
                now + chrono::Duration::from_std(lane.timeout + LEASE_MARGIN).unwrap_or_default();
            // The cap holds across the nodes sharing the store, not only in this lane.
            let taken = self
                .store
                .take_capped(
                    &endpoint,
                    now,
                    room,
                    lease_until,
                    crate::store::Pace {
                        concurrency: lane.concurrency,
                        rate: lane.rate,
                        probe_within: lane.timeout + PROBE_RECORDED_WITHIN,
                    },
                )
                .await?;
            if let Some(later) = taken.next {
                next = Some(next.map_or(later, |n| n.min(later)));
            }
            if let Ok(mut health) = lane.health.lock() {
                health.held_until = taken.held;
            }
            for lease in taken.leases {
                {
                    let mut set = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                    if !set.insert(lease.delivery.id.clone()) {
                        continue;
                    }
                }
                if let Some(bucket) = &lane.bucket
                    && let Ok(mut bucket) = bucket.lock()
                {
                    bucket.take();
                }
                if probe.is_some()
                    && let Ok(mut health) = lane.health.lock()
                {
                    health.probing = true;
                }
                lane.active.fetch_add(1, Ordering::SeqCst);
                self.active.fetch_add(1, Ordering::SeqCst);
                let me = self.clone();
                let lane = lane.clone();
                tokio::spawn(async move {
                    me.attempt(lease, lane, probe).await;
                });
            }
        }
        Ok(next)
    }

    async fn attempt(self: Arc<Self>, lease: Lease, lane: Arc<Lane>, probe: Option<u32>) {
        let id = lease.delivery.id.clone();
        let endpoint = lease.delivery.target.endpoint.clone();
        // An alert is never about an alert (nor about a pause one caused): no loops.
        let operational = lease.delivery.event_source == OPERATIONAL_SOURCE;
        let mut answered = None;
        let result = attempt::run(&self, lease, &mut answered).await;
        if result.is_ok() {
            self.held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
        let mut cause = None;
        match result {
            Ok((delivery, entry)) => {
                if let Ok(listeners) = self.listeners.read() {
                    for listener in listeners.iter() {
                        listener(&delivery, &entry);
                    }
                }
                if !operational && entry.outcome == crate::store::Outcome::Failed {
                    self.tell(Notice::Failed(Box::new((delivery.clone(), entry.clone()))));
                }
                cause = Some(Box::new((delivery, entry)));
            }
            Err(e) => self.hold(&id, &endpoint, &e).await,
        }
        let (change, pause) = match lane.health.lock() {
            Ok(mut h) => {
                let before = h.paused_until;
                let change = h.attempted(answered, probe, self.clock.now());
                // Versioned while the lane is locked, so versions follow the changes.
                let pause = (h.paused_until != before).then(|| (h.paused_until, self.version()));
                (change, pause)
            }
            Err(_) => (None, None),
        };
        // A pause that only moves (a failed probe) changes nothing worth telling.
        let news = change.is_some();
        if let Some(change) = change {
            tracing::warn!(endpoint = %endpoint, "endpoint {endpoint} {change}");
        }
        if let Some((until, _)) = pause
            && news
            && !operational
        {
            if until.is_none() {
                self.tell(Notice::Resumed {
                    endpoint: endpoint.clone(),
                    at: self.clock.now(),
                    cause,
                });
            } else {
                self.tell(Notice::Paused {
                    endpoint: endpoint.clone(),
                    until,
                    cause,
                });
            }
        }
        // The other nodes hold back while this one pauses and probes (a failure to tell
        // them only costs their own attempts: each node's breaker still pauses it).
        if let Some((until, version)) = pause
            && let Err(e) = self.store.share_pause(&endpoint, until, version).await
        {
            tracing::debug!(endpoint = %endpoint, "the pause could not be shared: {e}");
        }
        if let Ok(mut set) = self.in_flight.lock() {
            set.remove(&id);
        }
        lane.active.fetch_sub(1, Ordering::SeqCst);
        self.active.fetch_sub(1, Ordering::SeqCst);
        self.settled.notify_waiters();
        self.wake.notify_one();
    }

    /// Holds a delivery back after its attempt could not be recorded (it stays queued, so
    /// it is sent again: at-least-once), for 1 s, then 2 s … up to [`MAX_HOLD`]; logs the
    /// first failure of a run of them only.
    async fn hold(&self, id: &DeliveryId, endpoint: &str, error: &StoreError) {
        let failures = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            let failures = held.get(id).map_or(0, |n| *n) + 1;
            held.insert(id.clone(), failures);
            failures
        };
        let until =
            self.clock.now() + chrono::Duration::from_std(hold_for(failures)).unwrap_or_default();
        // If even the hold fails (a shared store that is down), the lease still keeps the
        // delivery back until it runs out.
        let _ = self.store.hold(id, until).await;
        if failures == 1 {
            tracing::warn!(
                delivery = %id, endpoint = %endpoint,
                "the attempt of delivery {id} could not be recorded ({error}); it stays queued and is tried again after a pause (1s, doubling up to {}s)",
                MAX_HOLD.as_secs()
            );
        }
    }

    /// While the store fails, tries to recover it, at most once a second.
    async fn recover_store(&self) {
        if self.store.health().is_ok() {
            return;
        }
        {
            let mut tried = self
                .recovery_tried
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let now = tokio::time::Instant::now();
            if tried.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
                return;
            }
            *tried = Some(now);
        }
        match self.store.recover().await {
            Ok(true) => self.wake(),
            Ok(false) => {}
            Err(e) => tracing::debug!("the store does not recover yet: {e}"),
        }
    }

    /// Runs the dispatcher until every delivery in `ids` is finished, or pending with its
    /// next attempt more than `wait` away, or waiting for an endpoint that is paused because
    /// it does not answer (those stay queued for `serve`), or a step waiting for one of
    /// those. Calls `progress` with the number settled so far after every recorded attempt.
    pub async fn settle(
        self: &Arc<Self>,
        ids: &[DeliveryId],
        wait: Duration,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Delivery>, StoreError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let runner = tokio::spawn(self.clone().run(stop_rx, Duration::from_secs(30)));
        self.wake();
        let result = loop {
            if let Err(e) = self.store.health() {
                break Err(e);
            }
            let mut settled = Vec::with_capacity(ids.len());
            let mut open = 0;
            let mut open_ids = std::collections::HashSet::new();
            let now = self.clock.now();
            let mut read_error = None;
            for id in ids {
                let delivery = match self.store.delivery(id).await {
                    Ok(Some(delivery)) => delivery,
                    Ok(None) => continue,
                    Err(e) => {
                        read_error = Some(e);
                        break;
                    }
                };
                let far = delivery.due_at.is_some_and(|due| {
                    due.signed_duration_since(now)
                        .to_std()
                        .is_ok_and(|d| d > wait)
                });
                // Shut before in flight: `tick` marks a probe in flight, then the lane.
                let shut = self.is_shut(&delivery.target.endpoint, now);
                let in_flight = self
                    .in_flight
                    .lock()
                    .map(|s| s.contains(id))
                    .unwrap_or(false);
                // A delivery waiting for another (the step it runs after, the one ahead in
                // its order_by line) is as open as that one, if it is listed (before it).
                let waiting = delivery.is_waiting();
                let open_now = if waiting {
                    (delivery.leader.as_ref())
                        .or(delivery.behind.as_ref())
                        .is_some_and(|a| open_ids.contains(a))
                } else {
                    !(delivery.state.is_final() || ((far || shut) && !in_flight))
                };
                if open_now {
                    open += 1;
                    open_ids.insert(delivery.id.clone());
                }
                settled.push(delivery);
            }
            if let Some(e) = read_error {
                break Err(e);
            }
            progress(settled.len() - open);
            if open == 0 {
                break Ok(settled);
            }
            tokio::select! {
                _ = self.attempt_recorded() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        };
        let _ = stop_tx.send(true);
        let _ = runner.await;
        result
    }

    /// Sends due deliveries until `stop` turns true, then waits (up to `drain`) for the
    /// attempts in flight to be recorded.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>, drain: Duration) {
        const IDLE: Duration = Duration::from_secs(1);
        // Under load every acceptance and every finished attempt wakes the loop; ticking at
        // most this often lets one tick take what many of them made due, at the cost of
        // that much latency.
        const BATCH: Duration = Duration::from_millis(2);
        loop {
            self.recover_store().await;
            let ticked = tokio::time::Instant::now();
            let next = match self.tick().await {
                Ok(next) => next,
                // Logged once by the store when it began to fail.
                Err(e) if e.is_unavailable() && self.store.health().is_err() => None,
                Err(e) => {
                    tracing::error!("cannot read the delivery queue: {e}");
                    None
                }
            };
            let wake_at = next
                .map(|at| self.clock.instant_at(at))
                .unwrap_or_else(|| tokio::time::Instant::now() + IDLE)
                .min(tokio::time::Instant::now() + IDLE);
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(wake_at) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
            tokio::time::sleep_until(ticked + BATCH).await;
        }
        let deadline = tokio::time::Instant::now() + drain;
        while self.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = self.settled.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }
}
