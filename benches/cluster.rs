//! Cluster mode under load: `serve` on the embedded sled store, then 1 and 3 nodes on one
//! PostgreSQL database (a throwaway server this program starts), each driven by the same
//! load generator for SECS seconds (CONNS connections, spread round robin over the nodes),
//! all delivering to one `switchboard mock`. Reports events/s accepted (202 after the
//! durable write), attempts delivered per second in the same window, latency, and what
//! each event cost the database: transactions, rows
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
    /// Attempts delivered per second during the run, by all the nodes (accepting can run
    /// ahead of delivering: the rest stays queued).
    delivered: f64,
    /// Attempts delivered per second after the run, while the nodes empty the queue with
    /// nothing else to do: the delivery throughput on its own.
    drained: f64,
    per_event: Option<(f64, f64, f64)>,
    /// CPU milliseconds per event: the nodes, PostgreSQL; and how busy the machine was.
    cpu: Cpu,
}

/// Where the CPU went during a run.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    nodes_ms: f64,
    postgres_ms: f64,
    busy: f64,
}

/// CPU time (clock ticks of 10 ms) a process has used.
fn ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// CPU ticks of every PostgreSQL process on the machine (the bench's throwaway server).
fn postgres_ticks() -> u64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(ticks)
        .sum()
}

/// The machine's busy and total ticks, from /proc/stat.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = cpu.iter().sum();
    let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Snapshots around a run: `(nodes, postgres, machine busy, machine total)`.
fn cpu_snapshot(pids: &[u32]) -> (u64, u64, u64, u64) {
    let nodes = pids.iter().map(|p| ticks(*p)).sum();
    let (busy, total) = machine_ticks();
    (nodes, postgres_ticks(), busy, total)
}

fn cpu_between(before: (u64, u64, u64, u64), after: (u64, u64, u64, u64), events: f64) -> Cpu {
    let ms = |ticks: u64| ticks as f64 * 10.0 / events.max(1.0);
    Cpu {
        nodes_ms: ms(after.0 - before.0),
        postgres_ms: ms(after.1 - before.1),
        busy: (after.2 - before.2) as f64 / (after.3 - before.3).max(1) as f64,
    }
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
    let pids: Vec<u32> = served.iter().map(|s| s.child.id()).collect();
    let bases: Vec<&str> = served.iter().map(|s| s.base.as_str()).collect();
    let before = db_counts(&pg.url).await;
    let sent_before = delivered_by(&bases).await;
    let cpu_before = cpu_snapshot(&pids);
    let run = load_spread(&urls, event, conns, secs, None).await;
    let cpu_after = cpu_snapshot(&pids);
    let sent = delivered_by(&bases).await - sent_before;
    let after = db_counts(&pg.url).await;
    let drained = drain_rate(&bases).await;
    let events = run.rate * secs as f64;
    let cpu = cpu_between(cpu_before, cpu_after, events);
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
        delivered: sent / secs as f64,
        drained,
        per_event,
        cpu,
    })
}

/// Delivered attempts per second while the nodes empty their queue after a run: counted
/// from the end of the run to the last delivery seen (none for a second: the queue is
/// empty), at most a minute.
async fn drain_rate(bases: &[&str]) -> f64 {
    let started = std::time::Instant::now();
    let first = delivered_by(bases).await;
    let (mut last, mut last_at) = (first, started);
    while started.elapsed() < std::time::Duration::from_secs(60)
        && last_at.elapsed() < std::time::Duration::from_secs(1)
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let now = delivered_by(bases).await;
        if now > last {
            (last, last_at) = (now, std::time::Instant::now());
        }
    }
    let secs = (last_at - started).as_secs_f64();
    if secs > 0.0 {
        (last - first) / secs
    } else {
        0.0
    }
}

/// Attempts delivered so far by these nodes, from their `/metrics`.
async fn delivered_by(bases: &[&str]) -> f64 {
    let client = reqwest::Client::new();
    let mut total = 0.0;
    for base in bases {
        total += delivered(&client, base).await;
    }
    total
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
        let pids = [serve.child.id()];
        let sent_before = delivered_by(&[&serve.base]).await;
        let before = cpu_snapshot(&pids);
        let run = load(&url, event, conns, secs, None).await;
        let cpu = cpu_between(before, cpu_snapshot(&pids), run.rate * secs as f64);
        let sent = delivered_by(&[&serve.base]).await - sent_before;
        let drained = drain_rate(&[&serve.base]).await;
        Measured {
            label: "1 node on sled (the default)".into(),
            run,
            delivered: sent / secs as f64,
            drained,
            per_event: None,
            cpu,
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
        "| run | events/s accepted | delivered/s meanwhile | delivered/s after (queue draining) | p50 ms | p99 ms | errors | vs 1 node on PostgreSQL | database per event: commits · rows · blocks touched | CPU ms per event: nodes · PostgreSQL | machine busy |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|");
    for m in [&sled, &one, &three] {
        let cost = m
            .per_event
            .map(|(c, r, b)| format!("{c:.2} · {r:.1} · {b:.0}"))
            .unwrap_or_else(|| "—".into());
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {:.2} | {} | {:.3} · {:.3} | {:.0}% |",
            m.label,
            m.run.rate,
            m.delivered,
            m.drained,
            m.run.p50_ms,
            m.run.p99_ms,
            m.run.errors,
            m.run.rate / one.run.rate,
            cost,
            m.cpu.nodes_ms,
            m.cpu.postgres_ms,
            m.cpu.busy * 100.0
        );
    }
}
