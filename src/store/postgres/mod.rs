//! The shared backend: the only place that knows PostgreSQL (tokio-postgres, pooled by
//! deadpool). Any number of nodes share one database: each accepts, takes due deliveries
//! under leases that name it, records attempts, and reads what every node wrote.
//!
//! **Invariant:** every trait call that writes is written by one transaction, committed
//! before it returns (`accept` of many events too: multi-row inserts); accepts and records
//! that arrive together share one (group commit, `group.rs`).
//! **Invariant:** a delivery is handed out by `take` only when no live lease holds it
//! (`FOR UPDATE SKIP LOCKED` over the queue, then `lease_owner` and `lease_until` set in
//! the same statement); an expired lease is a dead node's and is taken over.
//! **Invariant:** connect log entry ids are handed out under the lock of the one
//! `switchboard_log_clock` row, held until the recording transaction commits, so that ids
//! increase in commit order across nodes and a reader following with `after` misses none.
//! **Invariant:** the database password never leaves this module: `describe` and every
//! error show the URL masked.
//!
//! TLS (rustls) is used with `sslmode=require`, and the server's certificate is then
//! always verified, for the host name connected to (libpq's `verify-full`), against the
//! CA certificates of `sslrootcert=FILE` (PEM) or else the system's roots.
//! `sslmode=disable`, and the default `prefer`, talk plain (on a trusted network).

mod firings;
mod group;
mod nodes;
mod order;
mod read;
mod rows;
mod schema;
mod write;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

use group::Group;
use write::Accepting;

use crate::engine::event::EventId;
use crate::store::{
    Accepted, DEFAULT_DEDUPE_WINDOW, Delivery, DeliveryId, LogEntry, LogQuery, NewEvent, NodeInfo,
    Pace, Purged, StoreError, StoredEvent, Taken,
};

/// Connections a node keeps to the database at most: the writers' five (below) and seven
/// for takes, reads and the rest.
const POOL_SIZE: usize = 12;

/// Transactions of accepted events one node writes at once (each with every accept
/// waiting when it began).
const ACCEPT_WRITERS: usize = 3;

/// The same for recorded attempts (they also share the log clock's lock).
const RECORD_WRITERS: usize = 2;

/// Run on every new connection. Plans are made for each execution rather than cached per
/// connection: the tables start empty and grow by thousands of rows a second, and a plan
/// cached while they were small (a sequential scan to lock a few deliveries by id) was
/// measured slowing a node's deliveries sevenfold until the connection was replaced.
const SESSION_SETTINGS: &str = "SET plan_cache_mode = force_custom_plan";

/// How long one store call (waiting for a connection included) may take: a database that
/// stops answering with its connections open (a hung host, a network partition) is then
/// `Unavailable` (503, deliveries held) rather than waited for until TCP gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The same for a connect log search or export page, which may read much more.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the queue depth is counted again (other nodes change it too).
const RECOUNT_EVERY: Duration = Duration::from_secs(5);

/// A store in a PostgreSQL database, shared by every node that connects to it. Accepts
/// and records that arrive while one of their kind is being written are written together
/// in the next transaction (group commit: see `group.rs`).
pub struct PostgresStore {
    db: Arc<Db>,
    accepts: Group<Accepting, Vec<Accepted>>,
    records: Group<(LogEntry, Delivery), String>,
}

impl std::ops::Deref for PostgresStore {
    type Target = Db;

    fn deref(&self) -> &Db {
        &self.db
    }
}

/// The connection pool and what this node counts, shared by the store and its writers.
pub struct Db {
    pool: Pool,
    /// The URL with its password masked.
    shown: String,
    /// This node's name, the owner of the leases it takes.
    node: String,
    dedupe_window: Duration,
    /// Pending deliveries: counted at connect and every few seconds, moved by this node's
    /// own writes in between.
    queued: AtomicI64,
    /// When `queued` was last counted (unix ms).
    counted: AtomicI64,
    /// Rows written since connect.
    writes: AtomicU64,
    /// Why the database cannot be reached, while it cannot.
    failing: Mutex<Option<String>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresStore({})", self.shown)
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`, libpq's
    /// options as query parameters) as node `node`, and creates or migrates the schema.
    pub async fn connect(url: &str, node: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_with(url, node, DEFAULT_DEDUPE_WINDOW).await
    }

    /// Connects; event ids repeated within `dedupe_window` are duplicates.
    pub async fn connect_with(
        url: &str,
        node: &str,
        dedupe_window: Duration,
    ) -> Result<PostgresStore, StoreError> {
        let shown = masked_url(url);
        let (url, root_cert) = without_root_cert(url);
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Database(format!("the store URL {shown} is not valid: {e}"))
        })?;
        if config.get_application_name().is_none() {
            config.application_name(format!("switchboard {node}"));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if config.get_ssl_mode() == SslMode::Require {
            Manager::from_config(config, tls(&shown, root_cert.as_deref())?, manager_config)
        } else {
            Manager::from_config(config, NoTls, manager_config)
        };
        let pool = Pool::builder(manager)
            .post_create(deadpool_postgres::Hook::async_fn(|client, _| {
                Box::pin(async move {
                    client
                        .batch_execute(SESSION_SETTINGS)
                        .await
                        .map_err(deadpool_postgres::HookError::Backend)
                })
            }))
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CALL_TIMEOUT))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::Database(format!("{shown}: {e}")))?;
        let db = Db {
            pool,
            shown,
            node: node.to_string(),
            dedupe_window,
            queued: AtomicI64::new(0),
            counted: AtomicI64::new(0),
            writes: AtomicU64::new(0),
            failing: Mutex::new(None),
        };
        let mut client = db.client().await?;
        schema::migrate(&mut client).await?;
        drop(client);
        db.recount().await?;
        let db = Arc::new(db);
        let accepts = Group::start(db.clone(), ACCEPT_WRITERS, |db, calls| {
            Box::pin(write::accept(db, calls))
        });
        let records = Group::start(db.clone(), RECORD_WRITERS, |db, calls| {
            Box::pin(write::record(db, calls))
        });
        Ok(PostgresStore {
            db,
            accepts,
            records,
        })
    }
}

impl Db {
    /// A connection from the pool.
    async fn client(&self) -> Result<Client, StoreError> {
        let client = self.pool.get().await.map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot reach the database {}: {}",
                self.shown,
                with_causes(&e)
            ))
        });
        self.noted(client)
    }

    /// Passes a result on, noting that the database cannot be reached if that is why it
    /// failed (cleared by `recover`).
    fn noted<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Unavailable(reason)) = &result {
            // A read-only server: the pool's connections are to it; new ones may reach
            // the primary (a multi-host URL with target_session_attrs=read-write).
            if reason.contains("(25006)") {
                self.pool.retain(|_, _| false);
            }
            let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
            if failing.is_none() {
                tracing::error!(
                    "storage failed: {reason}; refusing new events (503) and holding deliveries until it works again"
                );
                *failing = Some(reason.clone());
            }
        }
        result
    }

    /// Runs one store call, bounded by [`CALL_TIMEOUT`]; a call that runs out drops the
    /// pool's idle connections (the one it used may be stuck), and notes the outage.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.bounded_by(CALL_TIMEOUT, call).await
    }

    async fn bounded_by<T>(
        &self,
        limit: Duration,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let result = match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(self.stuck(limit)),
        };
        self.noted(result)
    }

    /// The database did not answer within `limit`: the pool's idle connections are dropped
    /// (the one that waited may be stuck), new ones are made as needed.
    fn stuck(&self, limit: Duration) -> StoreError {
        self.pool.retain(|_, _| false);
        StoreError::Unavailable(format!(
            "the database {} did not answer within {} s",
            self.shown,
            limit.as_secs()
        ))
    }

    /// Counts the pending deliveries again.
    async fn recount(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM switchboard_deliveries WHERE state = 'pending' AND due_at IS NOT NULL",
                &[],
            )
            .await
            .map_err(db_error)?
            .get(0);
        self.queued.store(n, Ordering::SeqCst);
        self.counted
            .store(Utc::now().timestamp_millis(), Ordering::SeqCst);
        Ok(())
    }

    fn count_queued(&self, delta: i64) {
        self.queued.fetch_add(delta, Ordering::SeqCst);
    }

    fn count_writes(&self, rows: u64) {
        self.writes.fetch_add(rows, Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl crate::store::Store for PostgresStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    async fn accept(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Accepted>, StoreError> {
        self.bounded(self.accepts.call(Accepting { events, now }))
            .await
    }

    async fn queued_endpoints(&self) -> Result<Vec<String>, StoreError> {
        let stale = Utc::now().timestamp_millis() - self.counted.load(Ordering::SeqCst);
        if stale > i64::try_from(RECOUNT_EVERY.as_millis()).unwrap_or(i64::MAX) {
            self.bounded(self.recount()).await?;
        }
        self.bounded(read::queued_endpoints(self)).await
    }

    async fn take(
        &self,
        endpoint: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease_until: DateTime<Utc>,
    ) -> Result<Taken, StoreError> {
        self.bounded(write::take(self, endpoint, now, limit, lease_until, None))
            .await
    }

    async fn take_capped(
        &self,
        endpoint: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease_until: DateTime<Utc>,
        pace: Pace,
    ) -> Result<Taken, StoreError> {
        self.bounded(write::take(
            self,
            endpoint,
            now,
            limit,
            lease_until,
            Some(pace),
        ))
        .await
    }

    async fn share_pause(
        &self,
        endpoint: &str,
        until: Option<DateTime<Utc>>,
        version: i64,
    ) -> Result<(), StoreError> {
        self.bounded(write::share_pause(self, endpoint, until, version))
            .await
    }

    async fn hold(&self, id: &DeliveryId, until: DateTime<Utc>) -> Result<(), StoreError> {
        self.bounded(write::hold(self, id, until)).await
    }

    async fn record(
        &self,
        entry: &LogEntry,
        delivery: &Delivery,
        dequeued: Option<DateTime<Utc>>,
    ) -> Result<String, StoreError> {
        // The queue is the pending deliveries themselves: the record's new state moves it.
        let _ = dequeued;
        self.bounded(self.records.call((entry.clone(), delivery.clone())))
            .await
    }

    async fn replay(
        &self,
        ids: &[DeliveryId],
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.bounded(write::replay(self, ids, now)).await
    }

    async fn delivery(&self, id: &DeliveryId) -> Result<Option<Delivery>, StoreError> {
        self.bounded(read::delivery(self, id)).await
    }

    async fn event(&self, source: &str, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.bounded(read::event(self, source, id)).await
    }

    async fn entry(&self, id: &str) -> Result<Option<LogEntry>, StoreError> {
        self.bounded(read::entry(self, id)).await
    }

    async fn search(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StoreError> {
        self.bounded_by(READ_TIMEOUT, read::search(self, query))
            .await
    }

    async fn entries_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.bounded_by(
            READ_TIMEOUT,
            read::entries_between(self, since, until, after, limit),
        )
        .await
    }

    async fn purge(&self, cutoff: DateTime<Utc>) -> Result<Purged, StoreError> {
        // Bounded batch by batch: a long purge is not a database that hangs.
        let result = write::purge(self, cutoff).await;
        self.noted(result)
    }

    async fn forget_firings(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.bounded(firings::forget(self, now)).await
    }

    fn health(&self) -> Result<(), StoreError> {
        match &*self.failing.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(reason) => Err(StoreError::Unavailable(reason.clone())),
            None => Ok(()),
        }
    }

    async fn recover(&self) -> Result<bool, StoreError> {
        if self.health().is_ok() {
            return Ok(false);
        }
        let probe = async {
            let client = self.pool.get().await.map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot reach the database {}: {}",
                    self.shown,
                    with_causes(&e)
                ))
            })?;
            // Answering is not enough: a server that came back read-only (a standby,
            // mid-failover) still cannot take writes.
            let writable: bool = client
                .query_one(
                    "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'",
                    &[],
                )
                .await
                .map_err(db_error)?
                .get(0);
            if !writable {
                drop(client);
                self.pool.retain(|_, _| false);
                return Err(StoreError::Unavailable(format!(
                    "the database {} is read-only (a standby?)",
                    self.shown
                )));
            }
            Ok::<(), StoreError>(())
        };
        match tokio::time::timeout(CALL_TIMEOUT, probe).await {
            Ok(result) => result?,
            Err(_) => return Err(self.stuck(CALL_TIMEOUT)),
        }
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.bounded(self.recount()).await?;
        tracing::info!(store = %self.shown, "storage works again: accepting events and delivering");
        Ok(true)
    }

    fn queue_depth(&self) -> usize {
        usize::try_from(self.queued.load(Ordering::SeqCst)).unwrap_or(0)
    }

    fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    async fn announce(&self, node: &NodeInfo) -> Result<(), StoreError> {
        self.bounded(self.upsert_node(node)).await
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        self.bounded(self.list_nodes()).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every write is committed before its call returns.
        Ok(())
    }
}

/// TLS for `sslmode=require`: rustls (ring), the server verified against the CA
/// certificates of `root_cert` (a PEM file), or else the system's roots.
fn tls(
    shown: &str,
    root_cert: Option<&str>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    use rustls_platform_verifier::ConfigVerifierExt as _;
    // rustls needs a process-wide crypto provider; a second install is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let failed = |e: &dyn std::fmt::Display| {
        StoreError::Database(format!("{shown}: TLS cannot be set up: {e}"))
    };
    let config = match root_cert {
        None => rustls::ClientConfig::with_platform_verifier().map_err(|e| failed(&e))?,
        Some(file) => {
            let unreadable =
                |e: &dyn std::fmt::Display| failed(&format!("sslrootcert {file}: {e}"));
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(file).map_err(|e| unreadable(&e))? {
                let cert = cert.map_err(|e| unreadable(&e))?;
                roots.add(cert).map_err(|e| unreadable(&e))?;
            }
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth()
        }
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The URL without its `sslrootcert` parameter (tokio-postgres does not read it), and
/// that parameter's value.
fn without_root_cert(url: &str) -> (String, Option<String>) {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return (url.to_string(), None);
    };
    let mut root_cert = None;
    let rest: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == "sslrootcert" {
                root_cert = Some(v.into_owned());
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    if root_cert.is_none() {
        return (url.to_string(), None);
    }
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    (parsed.to_string(), root_cert)
}

/// A PostgreSQL error in the store's terms: the database out of reach (connection lost,
/// shutting down, too many clients, a deadlock or serialization failure: try again) is
/// `Unavailable`; anything else is `Database`. Neither shows the URL.
fn db_error(e: tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        return StoreError::Unavailable(format!("PostgreSQL: {}", with_causes(&e)));
    };
    let code = db.code().code();
    let message = format!("{} ({code})", db.message());
    // Connection trouble, a transaction to try again, no resources, an operator's
    // intervention, or a read-only server (a standby, mid-failover): all pass.
    if ["08", "40", "53", "57"].iter().any(|c| code.starts_with(c)) || code == "25006" {
        StoreError::Unavailable(format!("PostgreSQL: {message}"))
    } else {
        StoreError::Database(message)
    }
}

/// An error with the errors that caused it (a pool's "error performing TLS handshake"
/// says why only in its sources).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

/// A record read back from its JSON column.
fn decode<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records always serialize")
}

/// `url` with its password as `***`, for messages: a URL's user info, or a key/value
/// connection string's `password=` value. A URL is split as tokio-postgres splits it (the
/// user info runs to the first `@`), not by a WHATWG parser, which refuses what libpq
/// accepts (several hosts: `postgres://u:pw@db1,db2/x`) and would leave it unmasked.
pub fn masked_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url
            .split(' ')
            .map(|part| match part.split_once('=') {
                Some((key, _)) if key.trim() == "password" => format!("{key}=***"),
                _ => part.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let (user, rest) = match rest.split_once('@') {
        Some((info, rest)) => match info.split_once(':') {
            Some((name, _)) => (format!("{name}:***@"), rest),
            None => (format!("{info}@"), rest),
        },
        None => (String::new(), rest),
    };
    // Also as a query parameter (libpq takes `?password=`).
    let rest = match rest.split_once('?') {
        Some((path, query)) => {
            let query = query
                .split('&')
                .map(|pair| {
                    let key = pair.split_once('=').map_or(pair, |(k, _)| k);
                    let decoded: String = url::form_urlencoded::parse(key.as_bytes())
                        .map(|(k, _)| k.into_owned())
                        .collect();
                    if decoded == "password" {
                        format!("{key}=***")
                    } else {
                        pair.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("&");
            format!("{path}?{query}")
        }
        None => rest.to_string(),
    };
    format!("{scheme}://{user}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_in_every_spelling() {
        assert_eq!(
            masked_url("postgres://sb:s3cret@db:5432/switchboard"),
            "postgres://sb:***@db:5432/switchboard"
        );
        assert_eq!(
            masked_url("postgresql://sb@db/switchboard?password=s3cret&sslmode=disable"),
            "postgresql://sb@db/switchboard?password=***&sslmode=disable"
        );
        assert_eq!(
            masked_url("host=db user=sb password=s3cret dbname=x"),
            "host=db user=sb password=*** dbname=x"
        );
        assert_eq!(masked_url("postgres://db/x"), "postgres://db/x");
        // URLs that libpq and tokio-postgres read but a WHATWG parser refuses.
        for url in [
            "postgres://sb:s3cret@db1:5432,db2:5432/switchboard",
            "postgresql://sb:s3cret@db1,db2/switchboard?sslmode=disable",
            "postgres://sb:s3cret@[::1]:5432,[::2]:5432/x?password=s3cret",
        ] {
            let shown = masked_url(url);
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(
                shown.contains("sb:***@db1") || shown.contains("sb:***@["),
                "{shown}"
            );
        }
    }

    #[tokio::test]
    async fn a_multi_host_url_is_never_shown_with_its_password() {
        // Nothing listens on these ports: the connect error must not show the password.
        let url = "postgres://sb:s3cret@127.0.0.1:1,127.0.0.1:2/x?connect_timeout=1";
        let e = PostgresStore::connect(url, "n").await.unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[tokio::test]
    async fn a_bad_url_is_refused_without_the_password() {
        for url in [
            "postgres://sb:s3cret@db/x?sslmode=bogus",
            "postgres://sb:s3cret@db/x?port=many",
        ] {
            let e = PostgresStore::connect(url, "n").await.unwrap_err();
            let text = e.to_string();
            assert!(!text.contains("s3cret"), "{text}");
            assert!(matches!(e, StoreError::Database(_)), "{text}");
        }
    }
}
