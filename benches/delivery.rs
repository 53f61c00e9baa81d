//! Delivery throughput and connect-log search, measured against baselines in the same run.
//!
//! - deliveries/s: events accepted into a fresh data folder and delivered to a fast local
//!   receiver with the connect log on, beside a bare reqwest client posting the same bodies
//!   to the same receiver at the same concurrency (the HTTP limit of this machine);
//! - a two-step chain per event (the second request after the first, with the id it
//!   captured), beside one delivery per event;
//! - search: a connect-log search by phone among LOG entries (default 1,000,000), beside a
//!   point lookup of one entry by id.
//!
//! Run: `cargo bench --bench delivery` (env: DELIVERIES=5000 LOG=1000000 ROUNDS=3).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use common::{env, median};

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use chrono::{DateTime, Utc};
use switchboard::dispatch::NetworkPolicy;
use switchboard::engine::Match;
use switchboard::engine::event::{Event, EventId};
use switchboard::runtime::{Options, Runtime};
use switchboard::store::record::{LogEntry, LoggedRequest, LoggedResponse};
use switchboard::store::{Delivery, DeliveryState, LogQuery, NewEvent, Outcome, SledStore, Store};

const CONCURRENCY: usize = 32;
const BODY: &str = r#"{"external_id":"812","contact":{"first_name":"John","last_name":"Doe","phone":"+15551234567","email":"john.doe@example.com"},"disposition":"won","talk_seconds":95,"source":"switchboard"}"#;

async fn receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Answers as a CRM that created a record: its id, for a step to capture.
    let app = Router::new().route(
        "/contacts",
        post(|| async { ([("content-type", "application/json")], r#"{"id":"5011"}"#) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/contacts")
}

async fn bare(url: &str, n: usize) -> f64 {
    let client = switchboard::dispatch::http_client(Arc::new(NetworkPolicy::default()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, next, url) = (client.clone(), next.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < n {
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(BODY)
                    .send()
                    .await
                    .unwrap();
                let _ = r.bytes().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// What each event sends: one delivery, or a two-step chain (the second step after the
/// first, with the id the first captured in its body).
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Single,
    Chain,
}

async fn switchboard_rate(url: &str, n: usize, shape: Shape) -> f64 {
    let config = tempfile::tempdir().unwrap();
    for sub in ["adaptors", "endpoints", "workflows"] {
        std::fs::create_dir_all(config.path().join(sub)).unwrap();
    }
    std::fs::write(config.path().join("adaptors/contact.yaml"), "fields:\n  - {from: lead_id, to: external_id}\n  - {from: first_name, to: contact.first_name}\n  - {from: last_name, to: contact.last_name}\n  - {to: contact.phone, template: \"{{ phone_number|e164 }}\"}\n  - {from: email, to: contact.email}\n  - {from: status, to: disposition, values: {SALE: won}}\n  - {from: length_in_sec, to: talk_seconds, type: integer}\nextra_fields:\n  source: switchboard\n").unwrap();
    std::fs::write(config.path().join("endpoints/crm.yaml"), format!("url: {url}\nadaptor: contact\nconcurrency: {CONCURRENCY}\nauth:\n  type: bearer\n  token: bench\nresponse:\n  format: json\n  capture:\n    crm_id: $.id\n")).unwrap();
    std::fs::write(config.path().join("endpoints/note.yaml"), format!("url: {url}\nbody_template: '{{\"who\": \"{{{{ steps.crm.crm_id }}}}\", \"subject\": \"call {{{{ lead_id }}}}\"}}'\nconcurrency: {CONCURRENCY}\n")).unwrap();
    let actions = match shape {
        Shape::Single => "  - endpoint: crm\n",
        Shape::Chain => "  - endpoint: crm\n  - endpoint: note\n    after: crm\n",
    };
    std::fs::write(config.path().join("workflows/sale.yaml"), format!("when:\n  - event: call.disposition\n  - field: status\n    equals: SALE\nactions:\n{actions}")).unwrap();
    let engine = switchboard::load(config.path()).unwrap().engine;
    let data = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(data.path()).unwrap());
    let runtime = Runtime::with_store(
        Options::new(config.path(), data.path()),
        engine,
        Vec::new(),
        store.clone(),
    );
    let started = Instant::now();
    runtime.start(Duration::from_secs(10));
    let mut batch = Vec::new();
    for i in 0..n {
        let data = serde_json::json!({"lead_id": i.to_string(), "first_name": "John", "last_name": "Doe", "phone_number": "5551234567", "email": "john.doe@example.com", "status": "SALE", "length_in_sec": "95"});
        let mut event = Event::new("call.disposition", data);
        event.id = EventId::new(format!("bench-{i}"));
        batch.push(event);
        if batch.len() == 64 {
            runtime.accept(std::mem::take(&mut batch)).await.unwrap();
        }
    }
    runtime.accept(batch).await.unwrap();
    while store.queue_depth() > 0 || runtime.dispatcher().in_flight() > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    runtime.shutdown().await.unwrap();
    rate
}

/// Event `i` of the search log: its phone is one of `phones`, 20 events each.
fn event(i: usize, phones: usize) -> NewEvent {
    let phone = format!("+1555{:07}", i % phones);
    let mut event = Event::new(
        "call.disposition",
        serde_json::json!({"phone_number": phone}),
    );
    event.id = EventId::new(format!("E{i:09}"));
    NewEvent {
        event,
        matches: vec![Match {
            workflow: "sale".into(),
            action: 0,
            endpoint: "crm".into(),
            delay: None,
            step: None,
            after: None,
            order: None,
        }],
        keys: [
            ("phone_number".to_string(), phone),
            ("lead_id".to_string(), format!("L{i}")),
        ]
        .into_iter()
        .collect(),
        limits: Vec::new(),
    }
}

/// A delivered attempt of a taken delivery, as the dispatcher records it.
fn delivered(d: &Delivery, at: DateTime<Utc>, n: u128) -> (LogEntry, Delivery) {
    let id = ulid::Ulid::from_parts(u64::try_from(at.timestamp_millis()).unwrap(), n).to_string();
    let entry = LogEntry {
        id: id.clone(),
        delivery_id: d.id.clone(),
        attempt: 1,
        at,
        event_id: d.event_id.clone(),
        event_type: d.event_type.clone(),
        workflow: d.target.workflow.clone(),
        endpoint: d.target.endpoint.clone(),
        step: None,
        after: None,
        node: "bench".into(),
        request: Some(LoggedRequest {
            method: "POST".into(),
            url: "https://crm.example.com/contacts".into(),
            headers: [("Authorization".to_string(), "***".to_string())]
                .into_iter()
                .collect(),
            body: Some(r#"{"external_id":"L1","contact":{"first_name":"John","last_name":"Doe","phone":"+15551234567"}}"#.into()),
        }),
        response: Some(LoggedResponse {
            status: 201,
            headers: Default::default(),
            body: r#"{"id":"5011"}"#.into(),
            duration_ms: 84,
        }),
        outcome: Outcome::Delivered,
        error: None,
        next_attempt_at: None,
        waiting: None,
        captured: Default::default(),
        warnings: vec![],
        keys: d.keys.clone(),
    };
    let mut delivery = d.clone();
    delivery.state = DeliveryState::Delivered;
    delivery.attempts = 1;
    delivery.due_at = None;
    delivery.last_entry = Some(id);
    (entry, delivery)
}

/// Fills a log of `size` entries (one delivered attempt per event, 20 events per phone),
/// then times searches by phone and lookups by id. Returns (phone ms, id ms, fill/s, hits).
async fn search(size: usize) -> (f64, f64, f64, usize) {
    let data = tempfile::tempdir().unwrap();
    let sled = SledStore::open(data.path()).unwrap();
    let store: &dyn Store = &sled;
    let phones = size / 20; // each phone has 20 attempts
    let start: DateTime<Utc> = "2026-10-01T00:00:00Z".parse().unwrap();
    let fill = Instant::now();
    let mut ids = Vec::new();
    for chunk in (0..size).collect::<Vec<_>>().chunks(250) {
        let at = start + chrono::Duration::milliseconds(chunk[0] as i64 * 2000);
        let batch = chunk.iter().map(|i| event(*i, phones)).collect();
        store.accept(batch, at).await.unwrap();
        let taken = store
            .take("crm", at, usize::MAX, at + chrono::Duration::minutes(1))
            .await
            .unwrap();
        for (k, lease) in taken.leases.iter().enumerate() {
            let (e, d) = delivered(&lease.delivery, at, (chunk[0] + k) as u128);
            let id = store.record(&e, &d, Some(lease.dequeued)).await.unwrap();
            if ids.len() < 200 {
                ids.push(id);
            }
        }
    }
    let fill_rate = size as f64 / fill.elapsed().as_secs_f64();
    sled.commit_blocking().unwrap();
    let mut by_phone = Vec::new();
    let mut by_id = Vec::new();
    let mut found = 0;
    for k in 0..200 {
        let phone = format!(
            "(555) {:03}-{:04}",
            (k * 7919 % phones) / 10_000,
            (k * 7919 % phones) % 10_000
        );
        let t = Instant::now();
        let hits = store
            .search(&LogQuery {
                search: Some(format!("+1 {phone}")),
                limit: 50,
                ..LogQuery::default()
            })
            .await
            .unwrap();
        by_phone.push(t.elapsed().as_secs_f64() * 1000.0);
        found = found.max(hits.len());
        let t = Instant::now();
        let _ = store.entry(&ids[k % ids.len()]).await.unwrap();
        by_id.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (median(by_phone), median(by_id), fill_rate, found)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env("DELIVERIES", 5000);
    let size = env("LOG", 1_000_000);
    let rounds = env("ROUNDS", 3);
    let url = receiver().await;
    let (mut bare_rates, mut sb_rates, mut chain_rates) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        bare_rates.push(bare(&url, n).await);
        sb_rates.push(switchboard_rate(&url, n, Shape::Single).await);
        chain_rates.push(switchboard_rate(&url, n, Shape::Chain).await);
    }
    let (b, s, c) = (median(bare_rates), median(sb_rates), median(chain_rates));
    println!("| measure | value | baseline | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| deliveries/s to a local receiver, connect log on ({n} per round, median of {rounds}) | {s:.0} | {b:.0} req/s bare reqwest | {:.2} |",
        s / b
    );
    println!(
        "| events/s with a two-step chain (2 requests each; the second after the first, with its captured id) | {c:.0} ({:.0} req/s) | {s:.0} events/s with one delivery | {:.2} |",
        2.0 * c,
        c / s
    );
    println!(
        "| time per event: chain / one delivery | {:.3} ms | {:.3} ms | {:.2} |",
        1000.0 / c,
        1000.0 / s,
        s / c
    );
    let (phone_ms, id_ms, fill, found) = search(size).await;
    println!(
        "| connect-log search by phone among {size} entries (median of 200, {found} hits each) | {phone_ms:.3} ms | {id_ms:.3} ms point lookup by id | {:.1} |",
        phone_ms / id_ms
    );
    println!("| (filling the log: {fill:.0} entries/s) | | | |");
}
