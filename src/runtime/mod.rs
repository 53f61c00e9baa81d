//! The running system: one owner of the engine cell, the store, the dispatcher, the clock
//! and the background tasks (delivery, purge, operational events — see `operational.rs`),
//! with the operations every door needs —
//! accept, replay, reload, settle, shutdown. `serve` (the server) and the `send`, `replay`
//! and `logs` commands are thin doors onto it; the accept flow and the wiring exist here
//! once.
//!
//! **Invariant:** [`Runtime::accept`] returns only after the store made the events durable;
//! a 2xx may be answered then, not before.
//! **Invariant:** a reload swaps the engine only when the new configuration has no error;
//! attempts in flight finish with the engine they started with.

pub mod address;
pub mod operational;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ConfigError, ConfigErrors};
use crate::dispatch::{
    AttemptListener, Clock, Dispatcher, EngineCell, NOTICES_WAITING, NetworkPolicy, Notice,
};
use crate::engine::Engine;
use crate::engine::event::Event;
use crate::store::{
    Accepted, DEFAULT_DEDUPE_WINDOW, Delivery, DeliveryId, Location, NewEvent, Purged, Store,
    StoreError,
};

/// What the runtime is opened with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration folder (re-read on reload).
    pub config: PathBuf,
    /// The data folder: the server's address file, and the store unless `store` names
    /// another.
    pub data: PathBuf,
    /// Where the store is (default: sled in `data`).
    pub store: Location,
    /// Event ids repeated within this window are duplicates.
    pub dedupe_window: Duration,
    /// Connect log entries older than this are purged.
    pub retention: Duration,
    /// Where deliveries may go.
    pub policy: NetworkPolicy,
    /// This node's name, on every attempt it records.
    pub node: String,
}

/// A node's name when none is given: `<hostname>-<pid>`.
pub fn default_node() -> String {
    let uname = rustix::system::uname();
    let host = uname.nodename().to_string_lossy();
    let host = if host.is_empty() {
        "switchboard".into()
    } else {
        host
    };
    format!("{host}-{}", std::process::id())
}

impl Options {
    /// Defaults for a configuration and data folder (which holds the sled store).
    pub fn new(config: impl Into<PathBuf>, data: impl Into<PathBuf>) -> Options {
        let data = data.into();
        Options {
            config: config.into(),
            store: Location::Sled(data.clone()),
            data,
            dedupe_window: DEFAULT_DEDUPE_WINDOW,
            retention: Duration::from_secs(30 * 86_400),
            node: default_node(),
            policy: NetworkPolicy::default(),
        }
    }
}

/// Why the runtime could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The configuration does not load.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// The store cannot be used.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The running system. See the module's invariants.
pub struct Runtime {
    options: Options,
    engine: EngineCell,
    store: Arc<dyn Store>,
    dispatcher: Arc<Dispatcher>,
    clock: Clock,
    /// Warnings of the configuration loaded at open.
    warnings: Vec<ConfigError>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The configuration files' fingerprint, as last loaded.
    config_hash: RwLock<String>,
    /// What the dispatcher tells, to accept as operational events.
    notices: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Notice>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Runtime({})", self.store.describe())
    }
}

impl Runtime {
    /// Loads the configuration and opens the store; starts nothing yet.
    pub async fn open(options: Options) -> Result<Arc<Runtime>, OpenError> {
        let loaded = crate::load(&options.config)?;
        let store = options
            .store
            .open(&options.node, options.dedupe_window)
            .await?;
        Ok(Runtime::with_store(
            options,
            loaded.engine,
            loaded.warnings,
            store,
        ))
    }

    /// A runtime over a store opened elsewhere (tests, benchmarks, other backends).
    pub fn with_store(
        options: Options,
        engine: Engine,
        warnings: Vec<ConfigError>,
        store: Arc<dyn Store>,
    ) -> Arc<Runtime> {
        let engine: EngineCell = Arc::new(RwLock::new(Arc::new(engine)));
        let clock = Clock::new();
        let dispatcher = Dispatcher::new(
            store.clone(),
            engine.clone(),
            options.policy.clone(),
            clock.clone(),
            options.node.clone(),
        );
        let config_hash = RwLock::new(crate::config::fingerprint(&options.config));
        let (tell, notices) = tokio::sync::mpsc::channel(NOTICES_WAITING);
        dispatcher.notify(tell);
        Arc::new(Runtime {
            notices: tokio::sync::Mutex::new(notices),
            config_hash,
            options,
            engine,
            store,
            dispatcher,
            clock,
            warnings,
            stop: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// The configuration's warnings (things that work but are probably not meant).
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }

    /// The fingerprint of the configuration files in use (see [`crate::config::fingerprint`]).
    pub fn config_hash(&self) -> String {
        self.config_hash
            .read()
            .map(|h| h.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.options.node
    }

    /// The configuration folder.
    pub fn config_dir(&self) -> &Path {
        &self.options.config
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.options.data
    }

    /// The engine in use now.
    pub fn engine(&self) -> Arc<Engine> {
        self.dispatcher.engine()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The dispatcher.
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// The clock deliveries and acceptances are timed by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Calls `listener` after every recorded attempt.
    pub fn listen(&self, listener: AttemptListener) {
        self.dispatcher.listen(listener);
    }

    /// Accepts events: matches each against the workflows, stores it with one delivery per
    /// match, durably, then lets the dispatcher know.
    pub async fn accept(&self, events: Vec<Event>) -> Result<Vec<Accepted>, StoreError> {
        let engine = self.engine();
        let now = self.clock.now();
        let batch = events
            .into_iter()
            .map(|event| {
                let matches = engine.matches(&event, now);
                NewEvent {
                    limits: engine.limits(&event, &matches, &self.options.node),
                    matches,
                    keys: engine.audit_keys(&event),
                    event,
                }
            })
            .collect();
        let accepted = self.store.accept(batch, now).await?;
        self.dispatcher.wake();
        Ok(accepted)
    }

    /// Accepts the operational event a notice stands for, if some workflow matches it; a
    /// failure to accept it (storage failing) is logged, and the event is lost.
    async fn emit(&self, notice: Notice) {
        let now = self.clock.now();
        let event = operational::event(notice, now);
        if self.engine().matches(&event, now).is_empty() {
            return;
        }
        let (kind, id) = (event.kind.clone(), event.id.clone());
        match self.accept(vec![event]).await {
            Ok(_) => tracing::debug!("operational event {kind} {id} accepted"),
            Err(e) => tracing::error!("operational event {kind} {id} could not be accepted: {e}"),
        }
    }

    /// Accepts the operational events told so far and not yet accepted (unless the task
    /// that [`Runtime::start`] began is taking them).
    async fn emit_waiting(&self) {
        let Ok(mut notices) = self.notices.try_lock() else {
            return;
        };
        while let Ok(notice) = notices.try_recv() {
            self.emit(notice).await;
        }
    }

    /// Queues deliveries to be sent again now (durably), and lets the dispatcher know.
    pub async fn replay(&self, ids: &[DeliveryId]) -> Result<Vec<Delivery>, StoreError> {
        let replayed = self.store.replay(ids, self.clock.now()).await?;
        self.dispatcher.wake();
        Ok(replayed)
    }

    /// `ids` and every step that runs after them, directly or down their chains, leaders
    /// first: what `replay --with-followers` sends again (the followers wait for their
    /// leaders' new attempts, then run with what those capture).
    pub async fn with_followers(&self, ids: &[DeliveryId]) -> Result<Vec<DeliveryId>, StoreError> {
        let mut all: Vec<DeliveryId> = ids.to_vec();
        let mut i = 0;
        while i < all.len() {
            if let Some(d) = self.store.delivery(&all[i]).await? {
                for f in d.followers {
                    if all.contains(&f) {
                        continue;
                    }
                    // `followers` also names the next delivery of an `order_by` line (a
                    // later event's): only the steps that run after this one are its chain.
                    let step = self.store.delivery(&f).await?;
                    if step.is_some_and(|s| s.leader.as_ref() == Some(&d.id)) {
                        all.push(f);
                    }
                }
            }
            i += 1;
        }
        Ok(all)
    }

    /// Deletes connect log entries (and finished events) older than the retention period,
    /// and the `limit` counts that no longer count anything.
    pub async fn purge(&self) -> Result<Purged, StoreError> {
        let purged = self.store.purge(self.retention_cutoff()).await?;
        self.store.forget_firings(self.clock.now()).await?;
        Ok(purged)
    }

    fn retention_cutoff(&self) -> DateTime<Utc> {
        chrono::Duration::from_std(self.options.retention)
            .ok()
            .and_then(|r| self.clock.now().checked_sub_signed(r))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Re-reads the configuration; one with errors is refused (its errors are returned and
    /// logged) and the running one stays.
    pub fn reload(&self) -> Result<(), ConfigErrors> {
        match crate::load(&self.options.config) {
            Ok(loaded) => {
                for warning in &loaded.warnings {
                    tracing::warn!("{warning}");
                }
                if let Ok(mut engine) = self.engine.write() {
                    *engine = Arc::new(loaded.engine);
                }
                if let Ok(mut hash) = self.config_hash.write() {
                    *hash = crate::config::fingerprint(&self.options.config);
                }
                tracing::info!(config = %self.options.config.display(), "configuration reloaded");
                self.dispatcher.reloaded();
                Ok(())
            }
            Err(errors) => {
                for error in &errors.errors {
                    tracing::error!("{error}");
                }
                tracing::error!(
                    "configuration rejected ({} errors); still running the previous one",
                    errors.errors.len()
                );
                Err(errors)
            }
        }
    }

    /// Starts delivering (and recovering the store when it fails), and purging the
    /// connect log now and every hour, until [`Runtime::shutdown`].
    pub fn start(self: &Arc<Self>, drain: Duration) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.push(tokio::spawn(
            self.dispatcher.clone().run(self.stop.subscribe(), drain),
        ));
        let me = self.clone();
        let mut stop = self.stop.subscribe();
        tasks.push(tokio::spawn(async move {
            let mut notices = me.notices.lock().await;
            loop {
                tokio::select! {
                    notice = notices.recv() => match notice {
                        Some(notice) => me.emit(notice).await,
                        None => return,
                    },
                    _ = stop.changed() => return,
                }
            }
        }));
        let me = self.clone();
        let mut stop = self.stop.subscribe();
        tasks.push(tokio::spawn(async move {
            loop {
                if let Err(e) = me.purge().await
                    && !e.is_unavailable()
                {
                    tracing::error!("purging the connect log failed: {e}");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                    _ = stop.changed() => {}
                }
                if *stop.borrow() {
                    return;
                }
            }
        }));
    }

    /// Runs the dispatcher until every delivery in `ids` is finished, or waits for a retry
    /// more than `wait` away, or for a paused endpoint (see [`Dispatcher::settle`]).
    pub async fn settle(
        &self,
        ids: &[DeliveryId],
        wait: Duration,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Delivery>, StoreError> {
        let settled = self.dispatcher.settle(ids, wait, progress).await;
        self.emit_waiting().await;
        self.store.flush().await?;
        settled
    }

    /// Stops the background tasks (attempts in flight get the drain time given to
    /// [`Runtime::start`]), then makes everything durable.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
        // Told by attempts that ended while stopping: accepted now, sent at the next start.
        self.emit_waiting().await;
        self.store.flush().await
    }
}
