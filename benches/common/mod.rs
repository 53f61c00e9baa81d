//! What the end-to-end benches share: spawning the real binary, a load generator, the
//! reference configuration, and reading a process's memory.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

pub async fn wait_up(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..500 {
        if client.get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{url} did not come up");
}

pub struct Run {
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
}

/// Posts to `url` from `conns` connections for `secs`; `per_sec` paces the total rate.
pub async fn load(
    url: &str,
    body: fn(usize) -> String,
    conns: usize,
    secs: u64,
    per_sec: Option<f64>,
) -> Run {
    load_spread(&[url.to_string()], body, conns, secs, per_sec).await
}

/// As [`load`], connection `c` posting to `urls[c % urls.len()]` (round robin over nodes).
pub async fn load_spread(
    urls: &[String],
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
            urls[c % urls.len()].clone(),
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

pub fn event(n: usize) -> String {
    format!(
        r#"{{"type": "call.disposition", "id": "load-{n}", "data": {{"call_log_id": "{n}", "lead_id": "L{n}", "status": "SALE", "phone_number": "555{n:07}", "first_name": "John", "last_name": "Doe", "length_in_sec": "95", "call_date": "2024-03-15 14:30:00"}}}}"#
    )
}

pub fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The current resident set of a process, in MB.
pub fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The reference configuration of the end-to-end benches: `call.disposition` events with
/// status SALE or APPT go to `crm` (a 7-field adaptor with a template, a lookup, a date and
/// a type) at `url`, 32 at a time.
/// Event `n` of a load whose leads repeat: lead `L{n % keys}`.
pub fn event_keyed(n: usize, keys: usize) -> String {
    event(n).replace(
        &format!(r#""lead_id": "L{n}""#),
        &format!(r#""lead_id": "L{}""#, n % keys),
    )
}

pub fn write_config(dir: &Path, url: &str) {
    write_config_ordered(dir, url, None);
}

/// The bench configuration, its endpoint with `order_by` if given.
pub fn write_config_ordered(dir: &Path, url: &str, order_by: Option<&str>) {
    for sub in ["adaptors", "endpoints", "workflows"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(dir.join("adaptors/contact.yaml"), "fields:\n  - {from: lead_id, to: external_id}\n  - {from: first_name, to: contact.first_name}\n  - {from: last_name, to: contact.last_name}\n  - {to: contact.phone, template: \"{{ phone_number|e164 }}\"}\n  - {from: status, to: disposition, values: {SALE: won}}\n  - {from: call_date, to: called_at, date_format: iso8601, input_timezone: America/New_York}\n  - {from: length_in_sec, to: talk_seconds, type: integer}\n").unwrap();
    std::fs::write(
        dir.join("endpoints/crm.yaml"),
        match order_by {
            None => format!("url: {url}\nadaptor: contact\nconcurrency: 32\n"),
            Some(field) => {
                format!("url: {url}\nadaptor: contact\nconcurrency: 32\norder_by: {field}\n")
            }
        },
    )
    .unwrap();
    std::fs::write(dir.join("workflows/sale.yaml"), "when:\n  - event: call.disposition\n  - field: status\n    in: [SALE, APPT]\nactions:\n  - endpoint: crm\n").unwrap();
}

/// A number from a Prometheus text exposition: the first line starting with `prefix`.
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `serve`'s queue depth, from `/readyz`.
pub async fn queue_depth(client: &reqwest::Client, base: &str) -> Option<u64> {
    let text = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let body: serde_json::Value = serde_json::from_str(&text).ok()?;
    body["queue_depth"].as_u64()
}

/// `serve`'s count of delivered attempts to `crm`, from `/metrics`.
pub async fn delivered(client: &reqwest::Client, base: &str) -> f64 {
    let text = match client.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    metric(
        &text,
        "switchboard_deliveries_total{endpoint=\"crm\",outcome=\"delivered\"}",
    )
    .unwrap_or(0.0)
}

/// Waits (up to `limit`) until `serve`'s queue is empty; returns when it was.
pub async fn drained(client: &reqwest::Client, base: &str, limit: Duration) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if queue_depth(client, base).await == Some(0) {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// The median of some figures.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A `switchboard serve` on a fresh data folder with the reference configuration
/// delivering to `url`; stopped when dropped.
pub struct Served {
    pub child: Child,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    _config: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl Served {
    pub async fn start(url: &str) -> Served {
        Served::start_with(url, &[]).await
    }

    /// As [`Served::start`], with more flags (`--store`, `--node`).
    pub async fn start_with(url: &str, extra: &[&str]) -> Served {
        Served::start_ordered(url, extra, None).await
    }

    /// As [`Served::start_with`], the endpoint with `order_by` if given.
    pub async fn start_ordered(url: &str, extra: &[&str], order_by: Option<&str>) -> Served {
        let config = tempfile::tempdir().unwrap();
        write_config_ordered(config.path(), url, order_by);
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = spawn(
            &[
                "serve",
                "--config",
                &config.path().to_string_lossy(),
                "--data",
                &data.path().to_string_lossy(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ]
            .into_iter()
            .chain(extra.iter().copied())
            .collect::<Vec<_>>(),
        );
        let base = format!("http://127.0.0.1:{port}");
        wait_up(&format!("{base}/healthz")).await;
        Served {
            child,
            base,
            _config: config,
            _data: data,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
