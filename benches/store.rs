//! The write path, key by key: what one sled write costs on this machine, and how many
//! writes switchboard makes to accept an event and to record an attempt, in the same run.
//!
//! - baseline: inserts into a fresh sled tree opened as the store opens its own (32 MiB
//!   cache, high-throughput mode, flushed every 500 ms): a 1.2 KB value under a
//!   time-ordered key (like a connect-log entry), and an empty value under a 40-byte key at
//!   a random place (like an index key);
//! - `Store::accept` of events with one delivery each (64 per call, one group commit), and
//!   `Store::take` + `Store::record` of their attempts (the connect-log entry with four
//!   audit keys, its indexes, the delivery, the queue key), through the store seam as the
//!   runtime calls it, with the keys each writes (`Store::writes`, also
//!   `switchboard_store_writes_total`).
//!
//! Run: `cargo bench --bench store` (env: N=50000 ROUNDS=3).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use common::{env, median};

use std::time::Instant;

use chrono::Utc;
use indexmap::IndexMap;
use switchboard::engine::Match;
use switchboard::engine::event::{Event, EventId};
use switchboard::store::record::{LogEntry, LoggedRequest, LoggedResponse};
use switchboard::store::{DeliveryState, NewEvent, Outcome, SledStore, Store};

const BODY: &str = r#"{"external_id":"812","contact":{"first_name":"John","last_name":"Doe","phone":"+15551234567","email":"john.doe@example.com"},"disposition":"won","talk_seconds":95,"source":"switchboard"}"#;

/// µs per insert of `n` 1.2 KB values under time-ordered keys, and of `n` small keys at
/// random places, into a fresh tree.
fn sled_inserts(n: usize) -> (f64, f64) {
    let data = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(data.path())
        .cache_capacity(32 * 1024 * 1024)
        .flush_every_ms(Some(500))
        .mode(sled::Mode::HighThroughput)
        .open()
        .unwrap();
    let tree = db.open_tree("bench").unwrap();
    let value = vec![b'x'; 1200];
    let t = Instant::now();
    for i in 0..n {
        let key = ulid::Ulid::from_parts(1_800_000_000_000 + i as u64, i as u128).to_string();
        tree.insert(format!("L{key}").as_bytes(), value.as_slice())
            .unwrap();
    }
    let big = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t = Instant::now();
    for i in 0..n {
        // A multiplicative hash spreads the keys over the whole tree.
        let spread = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        tree.insert(format!("k{spread:020}-{i:018}").as_bytes(), &[])
            .unwrap();
    }
    let small = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    (big, small)
}

/// µs and writes per accepted event (one delivery; accepted 64 at a time, as a busy
/// server's group commit does) and per recorded attempt.
async fn store_ops(n: usize) -> (f64, f64, f64, f64) {
    let data = tempfile::tempdir().unwrap();
    let sled = SledStore::open(data.path()).unwrap();
    let store: &dyn Store = &sled;
    let target = Match {
        workflow: "sale".into(),
        action: 0,
        endpoint: "crm".into(),
        delay: None,
        step: None,
        after: None,
        order: None,
    };
    let keys = |i: usize| -> IndexMap<String, String> {
        [
            ("phone_number", format!("555{i:07}")),
            ("lead_id", format!("L{i}")),
            ("call_log_id", format!("{i}")),
            ("call_id", format!("c-{i}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    let before = store.writes();
    let t = Instant::now();
    let mut batch = Vec::new();
    for i in 0..n {
        let data = serde_json::json!({"lead_id": format!("L{i}"), "phone_number": format!("555{i:07}"), "status": "SALE", "first_name": "John", "last_name": "Doe", "call_log_id": i.to_string()});
        let mut event = Event::new("call.disposition", data);
        event.id = EventId::new(format!("bench-{i}"));
        batch.push(NewEvent {
            event,
            matches: vec![target.clone()],
            keys: keys(i),
            limits: Vec::new(),
        });
        if batch.len() == 64 || i + 1 == n {
            store
                .accept(std::mem::take(&mut batch), Utc::now())
                .await
                .unwrap();
        }
    }
    let accept_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let accept_writes = (store.writes() - before) as f64 / n as f64;

    let before = store.writes();
    let t = Instant::now();
    loop {
        let now = Utc::now();
        let taken = store
            .take("crm", now, 256, now + chrono::Duration::minutes(1))
            .await
            .unwrap();
        if taken.leases.is_empty() {
            break;
        }
        for lease in taken.leases {
            let mut delivery = lease.delivery;
            let now = Utc::now();
            let entry = LogEntry {
                id: ulid::Ulid::new().to_string(),
                delivery_id: delivery.id.clone(),
                attempt: 1,
                at: now,
                event_id: delivery.event_id.clone(),
                event_type: delivery.event_type.clone(),
                workflow: "sale".into(),
                endpoint: "crm".into(),
                step: None,
                after: None,
                node: "n".into(),
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
                waiting: None,
                captured: Default::default(),
                warnings: vec![],
                keys: delivery.keys.clone(),
            };
            delivery.state = DeliveryState::Delivered;
            delivery.attempts = 1;
            delivery.due_at = None;
            delivery.last_entry = Some(entry.id.clone());
            store
                .record(&entry, &delivery, Some(lease.dequeued))
                .await
                .unwrap();
        }
    }
    sled.commit_blocking().unwrap();
    let record_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let record_writes = (store.writes() - before) as f64 / n as f64;
    (accept_us, accept_writes, record_us, record_writes)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env("N", 50_000);
    let rounds = env("ROUNDS", 3);
    let (mut big, mut small, mut accept, mut record) = (vec![], vec![], vec![], vec![]);
    let (mut aw, mut rw) = (0.0, 0.0);
    for _ in 0..rounds {
        let (b, s) = sled_inserts(n);
        big.push(b);
        small.push(s);
        let (a, a_writes, r, r_writes) = store_ops(n).await;
        accept.push(a);
        record.push(r);
        (aw, rw) = (a_writes, r_writes);
    }
    let (big, small, accept, record) = (median(big), median(small), median(accept), median(record));
    let per_write = (big + small) / 2.0;
    println!("{n} operations per round, median of {rounds} rounds, one thread\n");
    println!("| operation | µs | sled writes | µs per write | ops/s |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| sled insert, 1.2 KB value, time-ordered key (baseline) | {big:.1} | 1 | {big:.1} | {:.0} |",
        1e6 / big
    );
    println!(
        "| sled insert, empty value, 40-byte key at a random place (baseline) | {small:.1} | 1 | {small:.1} | {:.0} |",
        1e6 / small
    );
    println!(
        "| `Store::accept`, one delivery (journal + sled) | {accept:.1} | {aw:.1} | {:.1} | {:.0} |",
        accept / aw,
        1e6 / accept
    );
    println!(
        "| `Store::record`, one attempt with 4 audit keys (journal + sled) | {record:.1} | {rw:.1} | {:.1} | {:.0} |",
        record / rw,
        1e6 / record
    );
    println!(
        "| accept + record: one delivered event | {:.1} | {:.1} | {:.1} | {:.0} |",
        accept + record,
        aw + rw,
        (accept + record) / (aw + rw),
        1e6 / (accept + record)
    );
    println!(
        "\nmean of the two baselines: {per_write:.1} µs per sled write; one delivered event at that cost: {:.0} µs, a ceiling of {:.0} events/s per core",
        per_write * (aw + rw),
        1e6 / (per_write * (aw + rw))
    );
}
