//! End-to-end ingest under load, from a separate process. Starts `switchboard mock` (a bare
//! HTTP server that answers 200: the limit of HTTP on this machine) and `switchboard serve`
//! delivering to that mock, then drives both with the same load generator (this program):
//! CONNS connections posting as fast as they are answered for SECS seconds; then serve again
//! at half the rate it reached, for latency. Reports events/s, p50/p99 latency, deliveries
//! completed, and serve's peak RSS.
//!
//! Run: `cargo bench --bench ingest` (env: SECS=10 CONNS=32).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_up(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..500 {
        if client.get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{url} did not come up");
}

struct Run {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

/// Posts to `url` from `conns` connections for `secs`; `per_sec` paces the total rate.
async fn load(
    url: &str,
    body: fn(usize) -> String,
    conns: usize,
    secs: u64,
    per_sec: Option<f64>,
) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conns)
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (client, next, errors, stop, url) = (
            client.clone(),
            next.clone(),
            errors.clone(),
            stop.clone(),
            url.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let interval = per_sec.map(|r| Duration::from_secs_f64(conns as f64 / r));
            let mut due = Instant::now()
                + interval
                    .map(|i| i.mul_f64(c as f64 / conns as f64))
                    .unwrap_or_default();
            while !stop.load(Ordering::Relaxed) {
                if let Some(i) = interval {
                    tokio::time::sleep_until(due.into()).await;
                    due += i;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                match client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body(n))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Run {
        rate: all.len() as f64 / elapsed,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        errors: errors.load(Ordering::Relaxed),
    }
}

fn event(n: usize) -> String {
    format!(
        r#"{{"type": "call.disposition", "id": "load-{n}", "data": {{"call_log_id": "{n}", "lead_id": "L{n}", "status": "SALE", "phone_number": "555{n:07}", "first_name": "John", "last_name": "Doe", "length_in_sec": "95", "call_date": "2024-03-15 14:30:00"}}}}"#
    )
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
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

    let config = tempfile::tempdir().unwrap();
    for sub in ["adaptors", "endpoints", "workflows"] {
        std::fs::create_dir_all(config.path().join(sub)).unwrap();
    }
    std::fs::write(config.path().join("adaptors/contact.yaml"), "fields:\n  - {from: lead_id, to: external_id}\n  - {from: first_name, to: contact.first_name}\n  - {from: last_name, to: contact.last_name}\n  - {to: contact.phone, template: \"{{ phone_number|e164 }}\"}\n  - {from: status, to: disposition, values: {SALE: won}}\n  - {from: call_date, to: called_at, date_format: iso8601, input_timezone: America/New_York}\n  - {from: length_in_sec, to: talk_seconds, type: integer}\n").unwrap();
    std::fs::write(
        config.path().join("endpoints/crm.yaml"),
        format!("url: {mock_url}\nadaptor: contact\nconcurrency: 32\n"),
    )
    .unwrap();
    std::fs::write(config.path().join("workflows/sale.yaml"), "when:\n  - event: call.disposition\n  - field: status\n    in: [SALE, APPT]\nactions:\n  - endpoint: crm\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let serve_port = free_port();
    let config_dir = config.path().to_string_lossy().into_owned();
    let data_dir = data.path().to_string_lossy().into_owned();
    let mut serve = spawn(&[
        "serve",
        "--config",
        &config_dir,
        "--data",
        &data_dir,
        "--listen",
        &format!("127.0.0.1:{serve_port}"),
    ]);
    wait_up(&format!("http://127.0.0.1:{serve_port}/healthz")).await;
    let idle_rss = peak_rss_mb(serve.id());

    let bare = load(
        &mock_url,
        |_| r#"{"external_id":"L1","contact":{"first_name":"John"}}"#.to_string(),
        conns,
        secs,
        None,
    )
    .await;
    let events_url = format!("http://127.0.0.1:{serve_port}/events");
    let full = load(&events_url, event, conns, secs, None).await;
    let half = load(
        &events_url,
        |n| event(n + 10_000_000),
        conns,
        secs,
        Some(full.rate / 2.0),
    )
    .await;
    let rss = peak_rss_mb(serve.id());
    let metrics = reqwest::get(format!("http://127.0.0.1:{serve_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let delivered: u64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("switchboard_deliveries_total{endpoint=\"crm\",outcome=\"delivered\"}")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let queued = metrics
        .lines()
        .find_map(|l| l.strip_prefix("switchboard_queue_depth "))
        .unwrap_or("?")
        .to_string();

    println!(
        "{secs} s per run, {conns} connections, 2 cores shared by load generator, server and receiver\n"
    );
    println!("| run | events/s | p50 ms | p99 ms | errors | vs bare |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| bare HTTP server (`switchboard mock`), 200 | {:.0} | {:.2} | {:.2} | {} | 1.00 |",
        bare.rate, bare.p50_ms, bare.p99_ms, bare.errors
    );
    println!(
        "| `serve` POST /events, 202 after durable write | {:.0} | {:.2} | {:.2} | {} | {:.2} |",
        full.rate,
        full.p50_ms,
        full.p99_ms,
        full.errors,
        full.rate / bare.rate
    );
    println!(
        "| `serve` at half that rate | {:.0} | {:.2} | {:.2} | {} | |",
        half.rate, half.p50_ms, half.p99_ms, half.errors
    );
    println!(
        "\ndelivered to the receiver meanwhile: {delivered}; still queued at the end: {queued}"
    );
    println!("serve RSS: {idle_rss:.1} MB idle (peak before load), {rss:.1} MB peak");
    let _ = serve.kill();
    let _ = serve.wait();
    let _ = mock.kill();
    let _ = mock.wait();
}
