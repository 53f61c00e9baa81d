//! Delivery throughput and connect-log search, measured against baselines in the same run.
//!
//! - deliveries/s: events accepted into a fresh data folder and delivered to a fast local
//!   receiver with the connect log on, beside a bare reqwest client posting the same bodies
//!   to the same receiver at the same concurrency (the HTTP limit of this machine);
//! - search: a connect-log search by phone among LOG entries (default 1,000,000), beside a
//!   point lookup of one entry by id.
//!
//! Run: `cargo bench --bench delivery` (env: DELIVERIES=5000 LOG=1000000 ROUNDS=3).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use common::{env, median};

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use chrono::{DateTime, Utc};
use switchboard::dispatch::{Clock, Dispatcher, NetworkPolicy};
use switchboard::engine::Match;
use switchboard::engine::event::{Event, EventId};
use switchboard::store::record::{LogEntry, LoggedRequest, LoggedResponse};
use switchboard::store::{Delivery, DeliveryId, DeliveryState, LogQuery, Outcome, Store};

const CONCURRENCY: usize = 32;
const BODY: &str = r#"{"external_id":"812","contact":{"first_name":"John","last_name":"Doe","phone":"+15551234567","email":"john.doe@example.com"},"disposition":"won","talk_seconds":95,"source":"switchboard"}"#;

async fn receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/contacts", post(|| async { "ok" }));
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

async fn switchboard_rate(url: &str, n: usize) -> f64 {
    let config = tempfile::tempdir().unwrap();
    for sub in ["adaptors", "endpoints", "workflows"] {
        std::fs::create_dir_all(config.path().join(sub)).unwrap();
    }
    std::fs::write(config.path().join("adaptors/contact.yaml"), "fields:\n  - {from: lead_id, to: external_id}\n  - {from: first_name, to: contact.first_name}\n  - {from: last_name, to: contact.last_name}\n  - {to: contact.phone, template: \"{{ phone_number|e164 }}\"}\n  - {from: email, to: contact.email}\n  - {from: status, to: disposition, values: {SALE: won}}\n  - {from: length_in_sec, to: talk_seconds, type: integer}\nextra_fields:\n  source: switchboard\n").unwrap();
    std::fs::write(config.path().join("endpoints/crm.yaml"), format!("url: {url}\nadaptor: contact\nconcurrency: {CONCURRENCY}\nauth:\n  type: bearer\n  token: bench\n")).unwrap();
    std::fs::write(config.path().join("workflows/sale.yaml"), "when:\n  - event: call.disposition\n  - field: status\n    equals: SALE\nactions:\n  - endpoint: crm\n").unwrap();
    let engine = switchboard::load(config.path()).unwrap().engine;
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(data.path()).unwrap());
    let engine = Arc::new(RwLock::new(Arc::new(engine)));
    let dispatcher = Dispatcher::new(
        store.clone(),
        engine.clone(),
        NetworkPolicy::default(),
        Clock::new(),
    );
    let started = Instant::now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(dispatcher.clone().run(stopped, Duration::from_secs(10)));
    let e = dispatcher.engine();
    for i in 0..n {
        let data = serde_json::json!({"lead_id": i.to_string(), "first_name": "John", "last_name": "Doe", "phone_number": "5551234567", "email": "john.doe@example.com", "status": "SALE", "length_in_sec": "95"});
        let mut event = Event::new("call.disposition", data);
        event.id = EventId::new(format!("bench-{i}"));
        let now = Utc::now();
        store
            .accept(&event, &e.matches(&event, now), &e.audit_keys(&event), now)
            .unwrap();
        if i % 64 == 0 {
            store.commit().await.unwrap();
            dispatcher.wake();
        }
    }
    store.commit().await.unwrap();
    dispatcher.wake();
    while store.queue_depth() > 0 || dispatcher.in_flight() > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    stop.send(true).unwrap();
    runner.await.unwrap();
    rate
}

fn entry(i: usize, at: DateTime<Utc>, phones: usize) -> (LogEntry, Delivery) {
    let id = ulid::Ulid::from_parts(u64::try_from(at.timestamp_millis()).unwrap(), i as u128)
        .to_string();
    let phone = format!("+1555{:07}", i % phones);
    let keys: indexmap::IndexMap<String, String> = [
        ("phone_number".to_string(), phone),
        ("lead_id".to_string(), format!("L{i}")),
    ]
    .into_iter()
    .collect();
    let entry = LogEntry {
        id: id.clone(),
        delivery_id: DeliveryId::new(format!("D{i:09}")),
        attempt: 1,
        at,
        event_id: EventId::new(format!("E{i:09}")),
        event_type: "call.disposition".into(),
        workflow: "sale".into(),
        endpoint: if i.is_multiple_of(2) {
            "hubspot".into()
        } else {
            "slack".into()
        },
        request: Some(LoggedRequest {
            method: "POST".into(),
            url: "https://api.hubapi.com/crm/v3/objects/contacts".into(),
            headers: [("Authorization".to_string(), "***".to_string())]
                .into_iter()
                .collect(),
            body: Some(BODY.into()),
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
        captured: Default::default(),
        warnings: vec![],
        keys: keys.clone(),
    };
    let delivery = Delivery {
        id: entry.delivery_id.clone(),
        event_id: entry.event_id.clone(),
        event_source: "api".into(),
        event_type: entry.event_type.clone(),
        target: Match {
            workflow: "sale".into(),
            action: 0,
            endpoint: entry.endpoint.clone(),
            delay: None,
        },
        created_at: at,
        state: DeliveryState::Delivered,
        attempts: 1,
        retry_base: 0,
        generation: 0,
        due_at: None,
        keys,
        last_entry: Some(id),
    };
    (entry, delivery)
}

fn search(size: usize) -> (f64, f64, f64, usize) {
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(data.path()).unwrap();
    let phones = size / 20; // each phone has 20 attempts
    let start: DateTime<Utc> = "2026-10-01T00:00:00Z".parse().unwrap();
    let fill = Instant::now();
    for i in 0..size {
        let (e, d) = entry(
            i,
            start + chrono::Duration::milliseconds(i as i64 * 2000),
            phones,
        );
        store.record(&e, &d, None).unwrap();
    }
    let fill_rate = size as f64 / fill.elapsed().as_secs_f64();
    store.commit_blocking().unwrap();
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
            .unwrap();
        by_phone.push(t.elapsed().as_secs_f64() * 1000.0);
        found = found.max(hits.len());
        let (e, _) = entry(k * 4999 % size, start, phones);
        let t = Instant::now();
        let _ = store.entry(&e.id).unwrap();
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
    let (mut bare_rates, mut sb_rates) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        bare_rates.push(bare(&url, n).await);
        sb_rates.push(switchboard_rate(&url, n).await);
    }
    let (b, s) = (median(bare_rates), median(sb_rates));
    println!("| measure | value | baseline | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| deliveries/s to a local receiver, connect log on ({n} per round, median of {rounds}) | {s:.0} | {b:.0} req/s bare reqwest | {:.2} |",
        s / b
    );
    let (phone_ms, id_ms, fill, found) = tokio::task::spawn_blocking(move || search(size))
        .await
        .unwrap();
    println!(
        "| connect-log search by phone among {size} entries (median of 200, {found} hits each) | {phone_ms:.3} ms | {id_ms:.3} ms point lookup by id | {:.1} |",
        phone_ms / id_ms
    );
    println!("| (filling the log: {fill:.0} entries/s) | | | |");
}
