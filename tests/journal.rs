//! The journal after a crash, through the real `switchboard serve` binary: `serve` accepts
//! events and is killed (-9) before sled checkpoints them, so that the journal alone holds
//! them; then the journal is damaged on disk and `serve` started again. What must hold: a
//! flipped bit costs only the record it is in, is logged as an error that says which file,
//! which bytes and which record, and the damaged file is kept aside exactly as it was; a
//! record that a crash cut short at the end is cut off with a warning and nothing else.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::ConfigDir;
use common::process::Serve;
use common::receiver::{Receiver, Reply};
use serde_json::{Value, json};
use switchboard::store::{SledStore, Store};

fn config(rx: &Receiver) -> ConfigDir {
    ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - {from: phone_number, to: phone}\n  - {from: lead_id, to: lead}\n",
        ),
        (
            "endpoints/crm.yaml",
            &format!(
                "url: {}\nadaptor: contact\nconcurrency: 4\ntimeout: 60s\n",
                rx.url("/contacts")
            ),
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\nactions:\n  - endpoint: crm\n",
        ),
    ])
}

/// Starts `serve` with a receiver that holds every request, accepts events `1..=n` (lead
/// ids 1 … n) in one request, and kills it: the journal holds one record per event
/// (record i is event i) and no attempt was recorded. Returns the first journal segment.
///
/// `serve` checkpoints sled (so that the journal is no longer needed for what it holds) on
/// a commit 5 s or more after it opened the folder; on a machine so slow that this could
/// have happened, the folder is emptied and it is done again.
async fn accept_then_kill(data: &Path, n: usize) -> PathBuf {
    let stalled = Receiver::start(vec![], Reply::Stall(Duration::from_secs(30))).await;
    let config = config(&stalled);
    let events: Vec<Value> = (1..=n)
        .map(|i| {
            json!({"type": "call.disposition", "id": format!("ev-{i}"),
                   "data": {"phone_number": format!("+1555{i:07}"), "lead_id": i.to_string()}})
        })
        .collect();
    for _ in 0..5 {
        let started = Instant::now();
        let serve = Serve::start(config.path(), data, &[]).await;
        let response = common::server::client()
            .post(format!("{}/events", serve.url))
            .header("content-type", "application/json")
            .body(Value::from(events.clone()).to_string())
            .send()
            .await
            .expect("serve answers");
        assert_eq!(
            response.status().as_u16(),
            202,
            "{:?}",
            response.text().await
        );
        serve.kill();
        if started.elapsed() < Duration::from_millis(4500) {
            return data.join("journal").join(format!("{:020}.log", 1));
        }
        common::wait_released(data);
        for item in std::fs::read_dir(data).unwrap() {
            let path = item.unwrap().path();
            if path.is_dir() {
                std::fs::remove_dir_all(path).unwrap();
            } else {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
    panic!("serve never accepted the events within 4.5 s of starting");
}

/// Where each record of a segment starts, and where the last one ends (a record is its
/// payload's length, a checksum, then the payload).
fn record_starts(segment: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at + 8 <= segment.len() {
        starts.push(at);
        let len = u32::from_le_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
    }
    assert_eq!(at, segment.len(), "whole records");
    starts.push(at);
    starts
}

/// The lead ids the receiver has been sent.
fn leads(rx: &Receiver) -> std::collections::BTreeSet<usize> {
    rx.requests()
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .filter_map(|body| body["lead"].as_str()?.parse().ok())
        .collect()
}

async fn until(what: &str, mut done: impl FnMut() -> bool, log: impl Fn() -> Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:#?}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn http_get(url: &str) -> String {
    common::server::client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let target = to.join(item.file_name());
        if item.file_type().unwrap().is_dir() {
            copy_dir(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn a_flipped_bit_mid_journal_is_reported_kept_aside_and_costs_only_its_record() {
    let data = tempfile::tempdir().unwrap();
    let segment = accept_then_kill(data.path(), 30).await;
    let mut bytes = std::fs::read(&segment).unwrap();
    let starts = record_starts(&bytes);
    assert_eq!(starts.len(), 31, "one record per event");
    // One bit in the payload of record 15 (event 15).
    bytes[starts[14] + 40] ^= 0x08;
    std::fs::write(&segment, &bytes).unwrap();

    // The store says so to whoever opens it (on a copy of the folder).
    let copy = tempfile::tempdir().unwrap();
    copy_dir(data.path(), copy.path());
    let store = SledStore::open(copy.path()).unwrap();
    let notices = store.notices();
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert!(notices[0].contains("held record 15, lost"), "{notices:#?}");
    drop(store);

    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx);
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    // Every event after the damaged record is recovered and delivered (event 15 itself
    // only if sled had saved it before the kill).
    let after: Vec<usize> = (16..=30).collect();
    until(
        "the events after the damage",
        || {
            let seen = leads(&rx);
            (1..=14)
                .chain(after.iter().copied())
                .all(|i| seen.contains(&i))
        },
        || serve.log(),
    )
    .await;
    // Operators see it without reading the log: /readyz counts it, /api/meta says it.
    let ready: serde_json::Value =
        serde_json::from_str(&http_get(&format!("{}/readyz", serve.url)).await).unwrap();
    assert_eq!(ready["notices"], 1, "{ready}");
    let meta: serde_json::Value =
        serde_json::from_str(&http_get(&format!("{}/api/meta", serve.url)).await).unwrap();
    assert!(
        meta["notices"][0]
            .as_str()
            .unwrap()
            .contains("held record 15, lost"),
        "{meta}"
    );
    let log = serve.log();
    let errors: Vec<&String> = log.iter().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{log:#?}");
    let error = errors[0];
    let kept: Vec<PathBuf> = std::fs::read_dir(data.path().join("journal/corrupt"))
        .expect("a corrupt folder")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    for says in [
        format!("journal segment {}", segment.display()),
        format!("bytes {}..{} held record 15, lost", starts[14], starts[15]),
        "15 records after the damage were read and recovered".to_string(),
        format!("kept, unchanged, at {}", kept[0].display()),
    ] {
        assert!(error.contains(&says), "{says:?} in {error}");
    }
    assert_eq!(
        std::fs::read(&kept[0]).unwrap(),
        bytes,
        "the copy is the damaged file as it was found"
    );
    serve.stop();

    // The damage is not found, copied or reported again.
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let log = serve.stop();
    assert!(!log.contains("journal segment"), "{log}");
    let copies = std::fs::read_dir(data.path().join("journal/corrupt")).unwrap();
    assert_eq!(copies.count(), 1);
}

#[tokio::test]
async fn a_record_a_crash_cut_short_is_cut_off_with_a_warning_and_nothing_is_lost() {
    let data = tempfile::tempdir().unwrap();
    let segment = accept_then_kill(data.path(), 10).await;
    // What a crash mid-write leaves: the start of one more record.
    let mut bytes = std::fs::read(&segment).unwrap();
    let whole = bytes.len();
    let starts = record_starts(&bytes);
    let last = bytes[starts[9]..starts[10]].to_vec();
    bytes.extend_from_slice(&last[..30]);
    std::fs::write(&segment, &bytes).unwrap();

    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx);
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    until("every event", || leads(&rx).len() == 10, || serve.log()).await;
    let log = serve.stop();
    assert!(!log.contains("ERROR"), "{log}");
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains(&format!(
                "{} ends in a write that a crash cut short (bytes {whole}..{}",
                segment.display(),
                bytes.len()
            ))),
        "{log}"
    );
    assert!(!data.path().join("journal/corrupt").exists());
}
