//! The server: the only place that knows axum. `POST /events`, inbound hooks, the admin
//! API and operations endpoints: a door onto the [`Runtime`], as the CLI is another.
//!
//! **Invariant:** a 2xx to an event is sent only after [`Runtime::accept`] returned (the
//! event and its deliveries are durable).

mod access;
mod api;
pub mod cluster;
mod edges;
mod error;
mod hooks;
mod ingest;
pub mod listen;
pub mod metrics;
pub mod mock;
pub mod stats;
mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::dispatch::{Clock, NetworkPolicy};
use crate::engine::Engine;
use crate::engine::event::Event;
use crate::runtime::address::{Address, address_file};
use crate::runtime::{OpenError, Options, Runtime};
use crate::store::{Accepted, Store};
pub use error::ApiError;
use metrics::Metrics;

/// How the server runs: the `serve` flags, checked once ([`Settings::check`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Configuration folder (re-read on reload).
    pub config: PathBuf,
    /// Data folder (the address file; the sled store unless `store` names another).
    pub data: PathBuf,
    /// Where the store is (`--store`; default: sled in `data`).
    pub store: crate::store::Location,
    /// `Authorization: Bearer` token for `/events` and `/api/*`; none: loopback only.
    pub api_token: Option<String>,
    /// Largest accepted request body.
    pub max_body: usize,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trust_proxy: Vec<IpNet>,
    /// Outbound network policy.
    pub policy: NetworkPolicy,
    /// Connect log retention.
    pub retention: Duration,
    /// Event ids repeated within this window are duplicates.
    pub dedupe_window: Duration,
    /// How long a stop waits for requests and attempts in flight.
    pub drain: Duration,
    /// Deadlines for clients, and the connection cap.
    pub timeouts: listen::Timeouts,
    /// Connections served at once (lowered to what the open-file limit allows).
    pub max_connections: usize,
    /// `/metrics` without the API token.
    pub public_metrics: bool,
    /// This node's name (`--node`), on every attempt it records.
    pub node: String,
}

impl Settings {
    /// Defaults for a configuration and data folder.
    pub fn new(config: PathBuf, data: PathBuf) -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            config,
            store: crate::store::Location::Sled(data.clone()),
            data,
            api_token: None,
            max_body: 1024 * 1024,
            trust_proxy: Vec::new(),
            policy: NetworkPolicy::default(),
            retention: Duration::from_secs(30 * 86_400),
            dedupe_window: crate::store::DEFAULT_DEDUPE_WINDOW,
            drain: Duration::from_secs(10),
            timeouts: listen::Timeouts {
                header: Duration::from_secs(10),
                body: Duration::from_secs(30),
                idle: Duration::from_secs(60),
            },
            max_connections: 10_000,
            public_metrics: false,
            node: crate::runtime::default_node(),
        }
    }

    /// The rules the flags must satisfy together: an empty token is no token, and a
    /// non-loopback address needs one (the API would be open to the network).
    pub fn check(mut self) -> Result<Settings, String> {
        self.api_token = self.api_token.filter(|t| !t.is_empty());
        if !self.listen.ip().is_loopback() && self.api_token.is_none() {
            return Err(format!(
                "refusing to listen on {} without an API token: set SWITCHBOARD_API_TOKEN (or listen on 127.0.0.1)",
                self.listen
            ));
        }
        for (flag, value) in [
            ("--header-timeout", self.timeouts.header),
            ("--body-timeout", self.timeouts.body),
            ("--idle-timeout", self.timeouts.idle),
        ] {
            if value.is_zero() {
                return Err(format!("{flag} must be more than 0s"));
            }
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        Ok(self)
    }

    fn runtime_options(&self) -> Options {
        Options {
            dedupe_window: self.dedupe_window,
            retention: self.retention,
            policy: self.policy.clone(),
            node: self.node.clone(),
            store: self.store.clone(),
            ..Options::new(&self.config, &self.data)
        }
    }
}

/// What went wrong starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration or the store cannot be used.
    #[error("{0}")]
    Open(#[from] OpenError),
    /// The store failed while stopping.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// The socket failed.
    #[error("server socket: {0}")]
    Io(#[from] std::io::Error),
}

/// The server's shared state: the runtime and what only the server keeps.
pub struct App {
    settings: Settings,
    runtime: Arc<Runtime>,
    metrics: Arc<Metrics>,
    stats: Arc<stats::Stats>,
    ready: AtomicBool,
    /// When this node started.
    started: chrono::DateTime<chrono::Utc>,
    /// Where it serves, once it listens.
    address: std::sync::OnceLock<String>,
    /// Whether its configuration differs from the other nodes' (see `cluster`).
    config_differs: AtomicBool,
}

/// One line per attempt, at the level its outcome calls for: a delivery that will be
/// retried is a warning, one that gave up an error, the others (and a delivery that only
/// waits for its window) information.
fn log_attempt(entry: &crate::store::LogEntry) {
    let message = match (&entry.error, &entry.waiting) {
        (Some(error), _) => error.message.as_str(),
        (None, Some(waiting)) => waiting.as_str(),
        (None, None) => "delivered",
    };
    let status = entry.response.as_ref().map(|r| r.status);
    macro_rules! at {
        ($level:ident) => {
            tracing::$level!(
                endpoint = %entry.endpoint, delivery = %entry.delivery_id, attempt = entry.attempt,
                outcome = entry.outcome.as_str(), status, "{message}"
            )
        };
    }
    match entry.outcome {
        crate::store::Outcome::Retrying if entry.error.is_some() => at!(warn),
        crate::store::Outcome::Failed => at!(error),
        _ => at!(info),
    }
}

impl App {
    /// Loads the configuration and opens the data folder.
    pub async fn open(settings: Settings) -> Result<Arc<App>, ServeError> {
        let runtime = Runtime::open(settings.runtime_options()).await?;
        for warning in runtime.warnings() {
            tracing::warn!("{warning}");
        }
        let metrics = Arc::new(Metrics::default());
        let stats = Arc::new(stats::Stats::default());
        let listener_metrics = metrics.clone();
        let listener_stats = stats.clone();
        runtime.listen(Box::new(move |_, entry| {
            // An entry that only says a delivery waits for its window is no attempt.
            let attempted = entry.request.is_some() || entry.waiting.is_none();
            if attempted {
                listener_stats.record(entry);
                let took = entry
                    .response
                    .as_ref()
                    .map(|r| Duration::from_millis(r.duration_ms));
                listener_metrics.attempt(&entry.endpoint, entry.outcome.as_str(), took);
            }
            for warning in &entry.warnings {
                tracing::warn!(
                    endpoint = %entry.endpoint, delivery = %entry.delivery_id, attempt = entry.attempt,
                    "{warning}"
                );
            }
            log_attempt(entry);
        }));
        Ok(Arc::new(App {
            settings,
            runtime,
            metrics,
            stats,
            ready: AtomicBool::new(false),
            started: chrono::Utc::now(),
            address: std::sync::OnceLock::new(),
            config_differs: AtomicBool::new(false),
        }))
    }

    /// The runtime it serves.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The engine in use now.
    pub fn engine(&self) -> Arc<Engine> {
        self.runtime.engine()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.runtime.store()
    }

    fn clock(&self) -> &Clock {
        self.runtime.clock()
    }

    /// Re-reads the configuration; see [`Runtime::reload`].
    pub fn reload(&self) -> Result<(), crate::config::ConfigErrors> {
        self.runtime.reload()
    }

    /// Accepts events durably (see [`Runtime::accept`]) and counts them.
    pub async fn accept(&self, events: Vec<Event>) -> Result<Vec<Accepted>, ApiError> {
        for (i, event) in events.iter().enumerate() {
            crate::engine::event::check_keys(event).map_err(|e| {
                ApiError::bad_request(if events.len() > 1 {
                    format!("event {}: {e}", i + 1)
                } else {
                    e.0
                })
            })?;
        }
        let engine = self.engine();
        // Hook payloads choose their own types: label the ones no workflow knows as
        // "other", so that a sender cannot grow the metrics without bound.
        let labels: Vec<(String, String)> = events
            .iter()
            .map(|e| {
                let kind = if engine.knows_type(&e.kind) {
                    e.kind.clone()
                } else {
                    "other".to_string()
                };
                (kind, e.source.clone())
            })
            .collect();
        let accepted = self.runtime.accept(events).await?;
        for (result, (kind, source)) in accepted.iter().zip(&labels) {
            if !result.duplicate {
                self.metrics.event(kind, source);
            }
        }
        Ok(accepted)
    }

    /// Reads a request body up to `--max-body`.
    pub async fn body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
        let limit = self.settings.max_body;
        let declared = headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(ApiError::too_large(limit));
        }
        axum::body::to_bytes(body, limit).await.map_err(|e| {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(error) = cause {
                if let Some(late) = error.downcast_ref::<listen::BodyTimeout>() {
                    return ApiError::timeout(late.to_string());
                }
                cause = error.source();
            }
            if e.to_string().contains("length limit") {
                ApiError::too_large(limit)
            } else {
                ApiError::bad_request(format!("cannot read the body: {e}"))
            }
        })
    }

    fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> Result<std::net::IpAddr, ApiError> {
        access::client_ip(peer, headers, &self.settings.trust_proxy)
    }
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/events", post(ingest::envelopes))
        .route("/events/{kind}", post(ingest::raw))
        .route("/hooks/{*path}", axum::routing::any(hooks::receive))
        .route("/api/logs", get(api::logs))
        .route("/api/logs/export", get(api::export))
        .route("/api/logs/{id}", get(api::entry))
        .route("/api/deliveries/{id}", get(api::delivery))
        .route("/api/deliveries/{id}/replay", post(api::replay))
        .route("/api/render", post(api::render))
        .route("/api/meta", get(api::meta))
        .route("/api/stats", get(api::stats))
        .route("/api/cluster", get(cluster::list))
        .route("/api/openapi.json", get(api::openapi))
        .route("/ui", get(ui::page))
        .route("/ui/", get(ui::page))
        .route("/ui/{file}", get(ui::asset))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            edges::edges,
        ))
        .with_state(app)
}

/// Serves until `shutdown` resolves or a SIGINT/SIGTERM arrives; SIGHUP reloads the
/// configuration. Then stops accepting, finishes requests, drains attempts, flushes.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr()?;
    let address = Address {
        url: format!("http://{addr}"),
        pid: std::process::id(),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let _ = app.address.set(address.url.clone());
    tokio::spawn(cluster::heartbeat(app.clone(), stop_rx.clone()));
    let (files_before, open_files) = listen::raise_open_file_limit();
    app.runtime.start(app.settings.drain);
    // The chart's last day, from the connect log, without delaying the start.
    // Entries recorded from now on reach the chart through the dispatcher's listener.
    let (store, stats, until) = (app.store().clone(), app.stats.clone(), app.clock().now());
    tokio::spawn(async move {
        let since = until - chrono::Duration::days(1);
        let mut after: Option<String> = None;
        loop {
            match store
                .entries_between(since, until, after.as_deref(), 1000)
                .await
            {
                Ok(page) => {
                    for entry in &page {
                        stats.record(entry);
                    }
                    if page.len() < 1000 {
                        return;
                    }
                    after = page.last().map(|e| e.id.clone());
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot rebuild the per-endpoint chart from the connect log: {e}"
                    );
                    return;
                }
            }
        }
    });
    // Signal handlers are installed before anyone can learn our address: a SIGHUP that
    // arrives early must reload, not kill the process (its default action).
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    {
        let reloader = app.clone();
        let mut stop = stop_rx.clone();
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = hup.recv() => { let _ = reloader.reload(); }
                    _ = stop.changed() => return,
                }
            }
        });
    }
    // Said before the address file is written: whoever waits for it finds these lines.
    let limits = listen::Limits {
        timeouts: app.settings.timeouts,
        max_connections: app.settings.max_connections,
        drain: app.settings.drain,
    }
    .capped(open_files);
    match (files_before, open_files) {
        (Some(before), Some(now)) if now > before => tracing::info!(
            max_connections = limits.max_connections,
            "open-file limit raised from {before} to {now}"
        ),
        (_, now) => tracing::info!(
            max_connections = limits.max_connections,
            "open-file limit: {}",
            now.map_or("unknown".to_string(), |n| n.to_string())
        ),
    }
    if limits.max_connections < app.settings.max_connections {
        tracing::warn!(
            "serving at most {} connections at once, not --max-connections {}: the open-file limit keeps the rest for deliveries and the store",
            limits.max_connections,
            app.settings.max_connections
        );
    }
    app.ready.store(true, Ordering::SeqCst);
    let _ = std::fs::write(
        address_file(&app.settings.data),
        serde_json::to_vec(&address).unwrap_or_default(),
    );
    let connections = tokio::spawn(listen::serve(
        listener,
        router(app.clone()),
        limits,
        stop_rx.clone(),
    ));
    let connections = async move {
        let _ = connections.await;
    };
    tracing::info!(listen = %addr, config = %app.settings.config.display(), store = %app.settings.store, "switchboard is serving");
    #[cfg(unix)]
    tokio::select! {
        _ = shutdown => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    #[cfg(not(unix))]
    tokio::select! {
        _ = shutdown => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    app.ready.store(false, Ordering::SeqCst);
    tracing::info!(drain = ?app.settings.drain, "stopping: no new connections; finishing requests and attempts in progress");
    // Connections and attempts drain together, so that the stop takes at most --drain.
    let _ = stop_tx.send(true);
    let (_, stopped) = tokio::join!(connections, app.runtime.shutdown());
    stopped?;
    let _ = std::fs::remove_file(address_file(&app.settings.data));
    tracing::info!("stopped; everything accepted is on disk");
    Ok(())
}
