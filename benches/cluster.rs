//! Cluster mode under load: `serve` on the embedded sled store, then 1 and 3 nodes on one
//! PostgreSQL database (a throwaway server this program starts), each driven by the same
//! load generator for SECS seconds (CONNS connections, spread round robin over the nodes),
//! all delivering to one `switchboard mock`. Reports events/s accepted (202 after the
//! durable write), latency, and what each event cost the database: transactions, rows
//! written and blocks written per event, from `pg_stat_database`.
//!
//! Run: `cargo bench --bench cluster` (env: SECS=10 CONNS=32). Needs PostgreSQL installed
//! (Debian's `postgresql`); says so and stops without it.

mod common;
#[path = "../tests/common/postgres.rs"]
mod postgres_server;

use common::*;

/// What the database did, as `pg_stat_database` counts it.
#[derive(Debug, Clone, Copy, Default)]
struct DbCounts {
    commits: i64,
    rows: i64,
    blocks: i64,
}

async fn db_counts(url: &str) -> DbCounts {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the bench's database answers");
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted, blks_hit + blks_read \
             FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await
        .expect("pg_stat_database");
    DbCounts {
        commits: row.get(0),
        rows: row.get(1),
        blocks: row.get(2),
    }
}

struct Measured {
    label: String,
    run: Run,
    per_event: Option<(f64, f64, f64)>,
}

/// `nodes` serve processes on a fresh database, loaded for `secs`.
async fn on_postgres(mock_url: &str, nodes: usize, conns: usize, secs: u64) -> Option<Measured> {
    let pg = postgres_server::Postgres::start()?;
    let mut served = Vec::new();
    for n in 0..nodes {
        let name = format!("node{}", n + 1);
        served.push(Served::start_with(mock_url, &["--store", &pg.url, "--node", &name]).await);
    }
    let urls: Vec<String> = served
        .iter()
        .map(|s| format!("{}/events", s.base))
        .collect();
    // Settle: the first requests of each node open its pool.
    let _ = load_spread(&urls, |n| event(n + 90_000_000), nodes, 1, None).await;
    let before = db_counts(&pg.url).await;
    let run = load_spread(&urls, event, conns, secs, None).await;
    let after = db_counts(&pg.url).await;
    let events = run.rate * secs as f64;
    let per_event = (events > 0.0).then(|| {
        (
            (after.commits - before.commits) as f64 / events,
            (after.rows - before.rows) as f64 / events,
            (after.blocks - before.blocks) as f64 / events,
        )
    });
    drop(served);
    drop(pg);
    Some(Measured {
        label: format!(
            "{nodes} node{} on PostgreSQL",
            if nodes == 1 { "" } else { "s" }
        ),
        run,
        per_event,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secs = env("SECS", 10) as u64;
    let conns = env("CONNS", 32);
    let mock_port = free_port();
    let mut mock = spawn(&[
        "mock",
        "--quiet",
        "--listen",
        &format!("127.0.0.1:{mock_port}"),
    ]);
    let mock_url = format!("http://127.0.0.1:{mock_port}/contacts");
    wait_up(&format!("http://127.0.0.1:{mock_port}/")).await;

    let sled = {
        let serve = Served::start(&mock_url).await;
        let url = format!("{}/events", serve.base);
        let _ = load(&url, |n| event(n + 90_000_000), 1, 1, None).await;
        Measured {
            label: "1 node on sled (the default)".into(),
            run: load(&url, event, conns, secs, None).await,
            per_event: None,
        }
    };
    let Some(one) = on_postgres(&mock_url, 1, conns, secs).await else {
        let _ = mock.kill();
        let _ = mock.wait();
        return;
    };
    let three = on_postgres(&mock_url, 3, conns, secs)
        .await
        .expect("PostgreSQL started once already");
    let _ = mock.kill();
    let _ = mock.wait();

    println!(
        "{secs} s per run, {conns} connections round robin over the nodes; 2 cores shared by the load generator, the nodes, PostgreSQL and the receiver\n"
    );
    println!(
        "| run | events/s | p50 ms | p99 ms | errors | vs 1 node on PostgreSQL | database per event: commits · rows · blocks touched |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    for m in [&sled, &one, &three] {
        let cost = m
            .per_event
            .map(|(c, r, b)| format!("{c:.2} · {r:.1} · {b:.0}"))
            .unwrap_or_else(|| "—".into());
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {:.2} | {} |",
            m.label,
            m.run.rate,
            m.run.p50_ms,
            m.run.p99_ms,
            m.run.errors,
            m.run.rate / one.run.rate,
            cost
        );
    }
}
