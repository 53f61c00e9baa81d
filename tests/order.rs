//! `order_by` through the real binary: 50 events for 5 leads, interleaved, to a receiver
//! (axum on 127.0.0.1:0) that records every arrival, answers slowly, and fails the first
//! attempt of some events. Per lead, arrivals follow acceptance order — every attempt of
//! an event, retries included, before any attempt of the lead's next event — while leads
//! overlap (measured). The same on PostgreSQL, and across a kill -9; `render` explains it.

mod common;
#[path = "common/postgres.rs"]
mod postgres_server;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use common::ConfigDir;
use common::cli;
use common::process::Serve;
use common::server::post;

/// One arrival: the lead, the event's number, the attempt.
type Arrival = (String, usize, u32);

#[derive(Default)]
struct Seen {
    arrivals: Mutex<Vec<Arrival>>,
    now: AtomicUsize,
    most: AtomicUsize,
}

/// A CRM that takes 40 ms per request and answers 500 to the first attempt of every
/// event whose number is a multiple of `fail_every`.
async fn receiver(fail_every: usize) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let state = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
        let seen = state.clone();
        async move {
            let in_flight = seen.now.fetch_add(1, Ordering::SeqCst) + 1;
            seen.most.fetch_max(in_flight, Ordering::SeqCst);
            let body: Value = serde_json::from_str(&body).unwrap_or_default();
            let lead = body["lead"].as_str().unwrap_or_default().to_string();
            let n: usize = body["n"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0);
            let attempt: u32 = headers
                .get("x-switchboard-attempt")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            seen.arrivals.lock().unwrap().push((lead, n, attempt));
            tokio::time::sleep(Duration::from_millis(40)).await;
            seen.now.fetch_sub(1, Ordering::SeqCst);
            if n.is_multiple_of(fail_every) && attempt == 1 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/crm", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (url, seen)
}

fn config(url: &str, order_by: &str) -> ConfigDir {
    ConfigDir::new(&[
        (
            "adaptors/lead.yaml",
            "fields:\n  - from: lead_id\n    to: lead\n  - from: n\n    to: n\n",
        ),
        (
            "endpoints/crm.yaml",
            &format!(
                "url: {url}\nadaptor: lead\nconcurrency: 8\n{order_by}retry:\n  schedule: [1s]\n"
            ),
        ),
        (
            "workflows/w.yaml",
            "when:\n  - event: lead.changed\nactions:\n  - endpoint: crm\n",
        ),
    ])
}

const LEADS: [&str; 5] = ["812", "813", "814", "815", "816"];

/// Posts events `from..to`, lead by `n % 5`, one request each (acceptance order is `n`).
async fn post_events(serve: &Serve, from: usize, to: usize) {
    for n in from..to {
        let body = json!({"type": "lead.changed", "id": format!("ev-{n}"),
            "data": {"lead_id": LEADS[n % LEADS.len()], "n": n.to_string()}});
        let (status, answer) = post(&format!("{}/events", serve.url), &body.to_string(), &[]).await;
        assert_eq!(status, 202, "{answer}");
    }
}

/// Waits until every event of `0..n` has a successful arrival.
async fn wait_delivered(seen: &Seen, n: usize, fail_every: usize) -> Vec<Arrival> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let arrivals = seen.arrivals.lock().unwrap().clone();
        let done = (0..n).all(|i| {
            arrivals
                .iter()
                .any(|(_, m, a)| *m == i && (!i.is_multiple_of(fail_every) || *a >= 2))
        });
        if done {
            return arrivals;
        }
        assert!(Instant::now() < deadline, "not all delivered: {arrivals:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Per lead, the arrivals' event numbers never go down: every attempt of an event (its
/// retries included) came before any attempt of the lead's next event.
fn assert_in_order_per_lead(arrivals: &[Arrival]) {
    let mut by_lead: BTreeMap<&str, Vec<(usize, u32)>> = BTreeMap::new();
    for (lead, n, attempt) in arrivals {
        by_lead.entry(lead).or_default().push((*n, *attempt));
    }
    assert_eq!(by_lead.len(), LEADS.len(), "{arrivals:?}");
    for (lead, seq) in by_lead {
        assert!(
            seq.windows(2).all(|w| w[0].0 <= w[1].0),
            "lead {lead} out of order: {seq:?}"
        );
    }
}

async fn fifty_events_for_five_leads(store: &[&str]) {
    let fail_every = 7;
    let (url, seen) = receiver(fail_every).await;
    let config = config(&url, "order_by: lead_id\n");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), store).await;
    post_events(&serve, 0, 50).await;
    let arrivals = wait_delivered(&seen, 50, fail_every).await;
    assert_in_order_per_lead(&arrivals);
    // Retries happened (1 s each), and the leads did not wait for each other.
    assert!(arrivals.iter().any(|(_, _, a)| *a == 2), "{arrivals:?}");
    let most = seen.most.load(Ordering::SeqCst);
    assert!(
        (2..=LEADS.len()).contains(&most),
        "at most one request per lead in flight, several leads at once: {most}"
    );
    eprintln!(
        "order_by: at most {most} requests in flight for {} leads",
        LEADS.len()
    );
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lead_is_sent_in_acceptance_order_and_leads_overlap() {
    fifty_events_for_five_leads(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lead_is_sent_in_acceptance_order_on_postgresql() {
    let Some(pg) = postgres_server::Postgres::start() else {
        return;
    };
    fifty_events_for_five_leads(&["--store", &pg.url, "--node", "n1"]).await;
}

/// Without `order_by`, the same load overtakes itself: the test above can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_order_by_a_retry_is_overtaken() {
    let fail_every = 7;
    let (url, seen) = receiver(fail_every).await;
    let config = config(&url, "");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    post_events(&serve, 0, 50).await;
    let arrivals = wait_delivered(&seen, 50, fail_every).await;
    let lead_of_0: Vec<usize> = arrivals
        .iter()
        .filter(|(lead, _, _)| lead == "812")
        .map(|(_, n, _)| *n)
        .collect();
    assert!(
        lead_of_0.windows(2).any(|w| w[0] > w[1]),
        "event 0's retry comes after lead 812's later events: {lead_of_0:?}"
    );
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_holds_across_a_kill_9() {
    // Every event's first attempt fails: each lead's line is held by a retry (1 s).
    let (url, seen) = receiver(1).await;
    let config = config(&url, "order_by: lead_id\n");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    post_events(&serve, 0, 15).await;
    // The first event of each lead has been tried once; the others wait behind it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.arrivals.lock().unwrap().len() < LEADS.len() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    serve.kill();
    common::wait_released(data.path());
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let arrivals = wait_delivered(&seen, 15, 1).await;
    assert_in_order_per_lead(&arrivals);
    serve.stop();
}

#[test]
fn render_explains_the_order() {
    let config = config("https://crm.example.com/leads", "order_by: lead_id\n");
    let event = config.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"type": "lead.changed", "data": {"lead_id": "812", "n": "1"}}"#,
    )
    .unwrap();
    let out = cli()
        .args(["render", "--config"])
        .arg(config.path())
        .arg("--event")
        .arg(&event)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("(order_by lead_id = \"812\": sent after every earlier delivery to crm with that value is finished, one at a time)"),
        "{text}"
    );
}
