//! Scale: one million pending deliveries while the receiver is down, then the drain.
//!
//! Starts `switchboard serve` with its only endpoint pointing at a port where nothing
//! listens, and in the same run:
//! 1. ingest rate with an empty queue (single events, CONNS connections, SECS seconds): the
//!    baseline for step 3;
//! 2. adds PENDING deliveries to the queue (arrays of BATCH events per request) and reports
//!    serve's RSS;
//! 3. ingest rate with PENDING deliveries waiting (the same load as step 1);
//! 4. starts `switchboard mock` on the endpoint's port and times the drain to an empty queue
//!    (the first delivery waits for the paused endpoint's next probe);
//! 5. searches the connect log (over a million entries by then) by phone through
//!    `GET /api/logs?search=`, beside `GET /api/logs/{id}` of one entry.
//!
//! Run: `cargo bench --bench scale` (env: PENDING=1000000 BATCH=250 SECS=10 CONNS=32).
//! It takes ~15 minutes and a few GB of disk in the temp folder.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Posts arrays of `batch` events from `conns` connections until `total` are accepted.
async fn fill(url: &str, total: usize, batch: usize, conns: usize) -> f64 {
    let client = reqwest::Client::new();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, next, url) = (client.clone(), next.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(batch, std::sync::atomic::Ordering::SeqCst);
                if first >= total {
                    break;
                }
                let last = (first + batch).min(total);
                let body = format!(
                    "[{}]",
                    (first..last)
                        .map(|n| event(n + 100_000_000))
                        .collect::<Vec<_>>()
                        .join(",")
                );
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("post");
                assert!(r.status().is_success(), "{}", r.status());
                if (last / batch).is_multiple_of((100_000 / batch).max(1)) {
                    eprintln!("  {last} accepted");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Median milliseconds of `GET url(i)` over `n` requests.
async fn time_gets(client: &reqwest::Client, n: usize, url: impl Fn(usize) -> String) -> f64 {
    let mut times = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let r = client.get(url(i)).send().await.expect("get");
        assert!(r.status().is_success(), "{}", r.status());
        let _ = r.bytes().await;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    median(times)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pending = env("PENDING", 1_000_000);
    let batch = env("BATCH", 250);
    let secs = env("SECS", 10) as u64;
    let conns = env("CONNS", 32);

    let receiver_port = free_port();
    let serve = Served::start(&format!("http://127.0.0.1:{receiver_port}/contacts")).await;
    let base = serve.base.clone();
    let client = reqwest::Client::new();
    let idle_rss = rss_mb(serve.child.id());
    let events_url = format!("{base}/events");

    eprintln!("ingest with an empty queue");
    let empty = load(&events_url, event, conns, secs, None).await;
    eprintln!("filling the queue to {pending}");
    let fill_rate = fill(&events_url, pending, batch, 4).await;
    // Let sled's page cache settle after the burst before reading RSS.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let filled = queue_depth(&client, &base).await.unwrap_or(0);
    let full_rss = rss_mb(serve.child.id());
    let fill_peak = peak_rss_mb(serve.child.id());
    eprintln!("ingest with {filled} pending");
    let loaded = load(&events_url, |n| event(n + 200_000_000), conns, secs, None).await;
    let depth = queue_depth(&client, &base).await.unwrap_or(0);

    eprintln!("receiver up: draining {depth}");
    let mut mock = spawn(&[
        "mock",
        "--quiet",
        "--listen",
        &format!("127.0.0.1:{receiver_port}"),
    ]);
    let up = Instant::now();
    let mut first = None;
    let mut last_report = Instant::now();
    let drained_at = loop {
        let left = queue_depth(&client, &base).await.unwrap_or(u64::MAX);
        if left == 0 {
            break up.elapsed();
        }
        if first.is_none() && delivered(&client, &base).await > 0.0 {
            first = Some(up.elapsed());
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!("  {left} left after {:.0} s", up.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let first = first.unwrap_or(drained_at);
    let drain_peak = peak_rss_mb(serve.child.id());
    let sent = delivered(&client, &base).await;

    eprintln!("searching");
    // Every event has its own phone, 555 then its number (555100012345 for event
    // 100012345), searched in another spelling (555-100-012345).
    let spelled = |n: usize| format!("555-{}-{:06}", n / 1_000_000, n % 1_000_000);
    let search = time_gets(&client, 101, |i| {
        let n = 100_000_000 + (i * 9_973) % pending;
        format!("{base}/api/logs?search={}", spelled(n))
    })
    .await;
    let one: serde_json::Value = serde_json::from_str(
        &client
            .get(format!("{base}/api/logs?limit=1"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let id = one["entries"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let lookup = time_gets(&client, 101, |_| format!("{base}/api/logs/{id}")).await;
    let hits: serde_json::Value = serde_json::from_str(
        &client
            .get(format!("{base}/api/logs?search={}", spelled(100_012_345)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();

    println!(
        "2 cores shared by load generator, server and receiver; {conns} connections, {secs} s per ingest run\n"
    );
    println!("| measure | value | baseline | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| ingest with {filled} pending, events/s (p50 / p99 ms) | {:.0} ({:.1} / {:.1}) | {:.0} ({:.1} / {:.1}), empty queue | {:.2} |",
        loaded.rate,
        loaded.p50_ms,
        loaded.p99_ms,
        empty.rate,
        empty.p50_ms,
        empty.p99_ms,
        loaded.rate / empty.rate
    );
    println!(
        "| filling the queue, arrays of {batch}, events/s | {fill_rate:.0} | {:.0}, single events | {:.2} |",
        empty.rate,
        fill_rate / empty.rate
    );
    println!(
        "| serve RSS with {filled} pending (peak while filling) | {full_rss:.1} MB ({fill_peak:.1} MB) | {idle_rss:.1} MB idle | {:.1} |",
        full_rss / idle_rss
    );
    println!(
        "| drain of {depth} after the receiver came up | {:.0} s ({:.0} deliveries/s; first after {:.1} s, the next probe) | | |",
        drained_at.as_secs_f64(),
        depth as f64 / (drained_at - first).as_secs_f64(),
        first.as_secs_f64()
    );
    println!(
        "| serve peak RSS while draining | {drain_peak:.1} MB | {idle_rss:.1} MB idle | {:.1} |",
        drain_peak / idle_rss
    );
    println!(
        "| search by phone among {sent:.0}+ entries, `GET /api/logs?search=` (median of 101) | {search:.2} ms | {lookup:.2} ms, `GET /api/logs/{{id}}` | {:.1} |",
        search / lookup
    );
    println!(
        "\nerrors: {} (empty) / {} (loaded); a sample search returned {} entries",
        empty.errors,
        loaded.errors,
        hits["entries"].as_array().map_or(0, |a| a.len())
    );
    let _ = mock.kill();
    let _ = mock.wait();
}
