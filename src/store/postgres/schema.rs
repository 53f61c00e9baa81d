//! The PostgreSQL schema, created and migrated when a node connects. Versioned in
//! `switchboard_schema`; every migration runs in one transaction under a transaction-level
//! advisory lock, so that nodes that start together migrate once, one after another.
//!
//! Tables (all named `switchboard_*`, so that they can share a database with others):
//! - `events`: accepted events by (source, id), the dedupe key; the record as JSON.
//! - `deliveries`: each delivery's state, due time, lease (owner node, until) and record;
//!   the queue is the partial index of pending deliveries by (endpoint, due_at, id).
//! - `entries`: the connect log, by entry id (ULIDs, so by time), with the columns a
//!   search filters on (endpoint, workflow, outcome, node, delivery, audit forms).
//! - `log_clock`: one row holding the last entry id handed out (see `write.rs`).
//! - `nodes`: each node as it last announced itself (see `nodes.rs`).
//! - `buckets`: each endpoint's `rate_limit` tokens, shared by the nodes (see `write.rs`).
//! - `firings`: the firings each workflow's `limit` counted, per value (see `write.rs`).
//! - `order_lines`: the last delivery of each `order_by` line (see `order.rs`).
//! - `pauses`: each endpoint a node's breaker paused, until when (null: resumed), by which
//!   node, and the version of that node's change (a later change wins, whatever order the
//!   writes arrive in).
//!
//! Text that is compared or ordered (ids, names) is `COLLATE "C"`: byte order, as ULIDs and
//! sled's keys sort, whatever the database's locale.

use deadpool_postgres::Client;

use super::db_error;
use crate::store::StoreError;

/// The schema this code reads and writes.
pub const VERSION: i32 = 8;

/// Any constant shared by every node: the key of the advisory lock that migrations take.
const MIGRATION_LOCK: i64 = 0x5357_4254_4348_0001;

/// Version 1: events, deliveries (with the queue), the connect log, the log clock.
const V1: &str = r#"
CREATE TABLE switchboard_events (
    source text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    accepted_at timestamptz NOT NULL,
    record json NOT NULL,
    PRIMARY KEY (source, id)
);
CREATE INDEX switchboard_events_accepted ON switchboard_events (accepted_at);

CREATE TABLE switchboard_deliveries (
    id text COLLATE "C" PRIMARY KEY,
    event_source text COLLATE "C" NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    endpoint text COLLATE "C" NOT NULL,
    state text NOT NULL,
    due_at timestamptz,
    created_at timestamptz NOT NULL,
    last_entry text COLLATE "C",
    lease_owner text,
    lease_until timestamptz,
    record json NOT NULL
);
CREATE INDEX switchboard_queue ON switchboard_deliveries (endpoint, due_at, id)
    WHERE state = 'pending';
CREATE INDEX switchboard_deliveries_event ON switchboard_deliveries (event_source, event_id);
CREATE INDEX switchboard_deliveries_finished ON switchboard_deliveries (created_at)
    WHERE state <> 'pending';

CREATE TABLE switchboard_entries (
    id text COLLATE "C" PRIMARY KEY,
    at timestamptz NOT NULL,
    delivery_id text COLLATE "C" NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    endpoint text COLLATE "C" NOT NULL,
    workflow text COLLATE "C" NOT NULL,
    outcome text NOT NULL,
    node text NOT NULL,
    forms text[] NOT NULL,
    record json NOT NULL
);
CREATE INDEX switchboard_entries_endpoint ON switchboard_entries (endpoint, id);
CREATE INDEX switchboard_entries_workflow ON switchboard_entries (workflow, id);
CREATE INDEX switchboard_entries_outcome ON switchboard_entries (outcome, id);
CREATE INDEX switchboard_entries_delivery ON switchboard_entries (delivery_id, id);
CREATE INDEX switchboard_entries_node ON switchboard_entries (node, id);
CREATE INDEX switchboard_entries_at ON switchboard_entries (at);
CREATE INDEX switchboard_entries_forms ON switchboard_entries USING gin (forms);

CREATE TABLE switchboard_log_clock (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    last text COLLATE "C" NOT NULL
);
INSERT INTO switchboard_log_clock (last) VALUES ('');
"#;

/// Version 8: the last delivery of each `order_by` line (endpoint, value); the row is
/// locked while an acceptance lines deliveries up behind it (see `order.rs`).
const V8: &str = r#"
CREATE TABLE switchboard_order_lines (
    endpoint text COLLATE "C" NOT NULL,
    value text COLLATE "C" NOT NULL,
    last text COLLATE "C" NOT NULL,
    PRIMARY KEY (endpoint, value)
);
"#;

/// Version 7: the firings each workflow's `limit` counted, by (workflow, key value); the
/// row is locked while an acceptance counts (see `write.rs`), and purged once
/// `expires_at` (the last firing + the period) has passed. (Version 6 is not used by
/// this code; a database without it migrates all the same.)
const V7: &str = r#"
CREATE TABLE switchboard_firings (
    workflow text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    expires_at timestamptz NOT NULL,
    record json NOT NULL,
    PRIMARY KEY (workflow, key)
);
CREATE INDEX switchboard_firings_expiry ON switchboard_firings (expires_at);
"#;

/// Version 5: each endpoint's pause (the breaker), shared by the nodes (see `write.rs`).
const V5: &str = r#"
CREATE TABLE switchboard_pauses (
    endpoint text COLLATE "C" PRIMARY KEY,
    paused_until timestamptz,
    node text NOT NULL,
    version bigint NOT NULL
);
"#;

/// Version 4: each endpoint's `rate_limit` bucket, shared by the nodes (see `write.rs`).
const V4: &str = r#"
CREATE TABLE switchboard_buckets (
    endpoint text COLLATE "C" PRIMARY KEY,
    tokens double precision NOT NULL,
    updated_at timestamptz NOT NULL
);
"#;

/// Version 3: the live leases of each endpoint, counted by a capped take (an endpoint's
/// `concurrency` across the nodes); small, as a recorded attempt clears its lease.
const V3: &str = r#"
CREATE INDEX switchboard_leased ON switchboard_deliveries (endpoint, lease_until)
    WHERE lease_owner IS NOT NULL AND state = 'pending';
"#;

/// Version 2: the nodes, as each last announced itself (see `nodes.rs`).
const V2: &str = r#"
CREATE TABLE switchboard_nodes (
    name text COLLATE "C" PRIMARY KEY,
    last_seen timestamptz NOT NULL,
    record json NOT NULL
);
"#;

/// Creates the schema, or migrates it to [`VERSION`]; a database written by a newer
/// switchboard is refused.
pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(db_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_error)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS switchboard_schema (version integer NOT NULL)")
        .await
        .map_err(db_error)?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM switchboard_schema", &[])
        .await
        .map_err(db_error)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let found = applied.iter().copied().max().unwrap_or(0);
    if found > VERSION {
        return Err(StoreError::Corrupt {
            key: "switchboard_schema".into(),
            message: format!(
                "the database has schema version {found}, this switchboard reads version {VERSION}: use a newer switchboard"
            ),
        });
    }
    // Each migration that has not run, in order: the versions need not be consecutive.
    let migrations = [
        (1, V1),
        (2, V2),
        (3, V3),
        (4, V4),
        (5, V5),
        (7, V7),
        (8, V8),
    ];
    for (version, sql) in migrations {
        if applied.contains(&version) {
            continue;
        }
        tracing::info!("creating the PostgreSQL schema, version {version}");
        tx.batch_execute(sql).await.map_err(db_error)?;
        tx.execute(
            "INSERT INTO switchboard_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)
}
