//! End-to-end ingest under load, from a separate process. Starts `switchboard mock` (a bare
//! HTTP server that answers 200: the limit of HTTP on this machine) and `switchboard serve`
//! delivering to that mock, then drives both with the same load generator (this program):
//! CONNS connections posting as fast as they are answered for SECS seconds; then serve again
//! at half the rate it reached, for latency. Reports events/s, p50/p99 latency, deliveries
//! completed, and serve's peak RSS.
//!
//! Then the same load on 1,000 leads to an endpoint without and with
//! `order_by: lead_id`, in the same run.
//!
//! Run: `cargo bench --bench ingest` (env: SECS=10 CONNS=32).

mod common;

use common::*;

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

    let serve = Served::start(&mock_url).await;
    let idle_rss = peak_rss_mb(serve.child.id());

    let bare = load(
        &mock_url,
        |_| r#"{"external_id":"L1","contact":{"first_name":"John"}}"#.to_string(),
        conns,
        secs,
        None,
    )
    .await;
    let base = serve.base.clone();
    let events_url = format!("{base}/events");
    let started = std::time::Instant::now();
    let full = load(&events_url, event, conns, secs, None).await;
    let half = load(
        &events_url,
        |n| event(n + 10_000_000),
        conns,
        secs,
        Some(full.rate / 2.0),
    )
    .await;
    // Deliveries go on after the load stops; wait for the queue to empty.
    let client = reqwest::Client::new();
    let drained = drained(&client, &base, std::time::Duration::from_secs(600)).await;
    let delivered = delivered(&client, &base).await;
    let rss = peak_rss_mb(serve.child.id());
    let deliveries_per_sec = drained.map(|at| delivered / at.duration_since(started).as_secs_f64());
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
    match deliveries_per_sec {
        Some(rate) => println!(
            "\n{delivered} deliveries reached the receiver, the last {:.1} s after the load began: {rate:.0} deliveries/s",
            drained.unwrap().duration_since(started).as_secs_f64()
        ),
        None => println!(
            "\n{delivered} deliveries reached the receiver; the queue did not empty within 600 s"
        ),
    }
    println!("serve RSS: {idle_rss:.1} MB idle (peak before load), {rss:.1} MB peak");
    drop(serve);
    // The cost of order_by: the same load on 1,000 leads, without and with ordering.
    let keys = 1000;
    println!(
        "\norder_by on {keys} distinct leads ({secs} s of load each, then until the queue is empty):\n"
    );
    println!("| run | events/s accepted | p99 ms | deliveries/s (load and drain) | vs no order |");
    println!("|---|---:|---:|---:|---:|");
    let mut first: Option<(f64, f64)> = None;
    for (label, order_by) in [("no order", None), ("`order_by: lead_id`", Some("lead_id"))] {
        let serve = Served::start_ordered(&mock_url, &[], order_by).await;
        let events_url = format!("{}/events", serve.base);
        let started = std::time::Instant::now();
        let run = load(&events_url, |n| event_keyed(n, 1000), conns, secs, None).await;
        let drained =
            common::drained(&client, &serve.base, std::time::Duration::from_secs(600)).await;
        let delivered = common::delivered(&client, &serve.base).await;
        let rate = drained.map_or(f64::NAN, |at| {
            delivered / at.duration_since(started).as_secs_f64()
        });
        let (accepted0, rate0) = *first.get_or_insert((run.rate, rate));
        println!(
            "| {label} | {:.0} | {:.2} | {rate:.0} | {:.2} accepted, {:.2} delivered |",
            run.rate,
            run.p99_ms,
            run.rate / accepted0,
            rate / rate0
        );
        drop(serve);
    }
    let _ = mock.kill();
    let _ = mock.wait();
}
