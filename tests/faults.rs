//! Storage faults through the real `switchboard serve` binary: payloads the store could not
//! read back, a stored record that cannot be read, and a data folder on a small tmpfs
//! filled until writes fail, then freed. What must hold: nothing answered 2xx is lost, a
//! failing store is answered 503 (never 500) and sends nothing it cannot record, no fault
//! becomes a loop that floods the receiver or the log, and `serve` recovers by itself.

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::ConfigDir;
use common::process::Serve;
use common::receiver::{Receiver, Reply};
use serde_json::{Value, json};
use switchboard::engine::Match;
use switchboard::store::{NewEvent, SledStore, Store};

fn crm() -> Match {
    Match {
        workflow: "sale".into(),
        action: 0,
        endpoint: "crm".into(),
        delay: None,
        step: None,
        after: None,
        order: None,
    }
}

fn config(rx: &Receiver) -> ConfigDir {
    ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - {from: phone_number, to: phone}\n  - {from: lead_id, to: lead}\n",
        ),
        (
            "endpoints/crm.yaml",
            &format!(
                "url: {}\nadaptor: contact\nconcurrency: 4\n",
                rx.url("/contacts")
            ),
        ),
        (
            "endpoints/in.yaml",
            "direction: inbound\npath: /hooks/in\nevent_type: call.disposition\n",
        ),
        ("adaptors/wrap.yaml", "fields:\n  - {from: deep, to: a.b}\n"),
        (
            "endpoints/wrapped.yaml",
            "direction: inbound\npath: /hooks/wrapped\nevent_type: call.disposition\nadaptor: wrap\n",
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\nactions:\n  - endpoint: crm\n",
        ),
    ])
}

/// `{"a": [{"a": [ … 1 … ]}]}`, `levels` objects and arrays deep.
fn nested(levels: usize) -> Value {
    let mut value = json!(1);
    for i in 0..levels {
        value = if i % 2 == 0 {
            json!({ "a": value })
        } else {
            json!([value])
        };
    }
    value
}

async fn post(url: &str, body: &Value) -> (u16, Option<String>, Value) {
    let response = common::server::client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = response.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, retry_after, body)
}

fn event(id: &str, data: Value) -> Value {
    json!({"type": "call.disposition", "id": id, "data": data})
}

/// How many requests carried each `Idempotency-Key` (delivery id).
fn arrivals(rx: &Receiver) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for r in rx.requests() {
        if let Some(key) = r.header("idempotency-key") {
            *seen.entry(key.to_string()).or_insert(0) += 1;
        }
    }
    seen
}

async fn until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn payloads_the_store_could_not_read_back_are_refused_at_every_door() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx);
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let events = format!("{}/events", serve.url);
    // 125 levels passed ingest before and poisoned the queue; 65 is past the limit now.
    for levels in [65, 125, 126] {
        let (status, _, body) =
            post(&events, &event(&format!("deep-{levels}"), nested(levels))).await;
        assert_eq!(status, 400, "{levels} levels: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("nested more than 64 levels") || error.contains("recursion limit"),
            "{error}"
        );
    }
    let (status, _, body) = post(
        &format!("{}/events/call.disposition", serve.url),
        &nested(80),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Past the limit at a hook, and within it but nested past it by the hook's adaptor.
    for (hook, payload) in [
        ("in", json!({"x": nested(80)})),
        ("wrapped", json!({ "deep": nested(63) })),
    ] {
        let (status, _, body) = post(&format!("{}/hooks/{hook}", serve.url), &payload).await;
        assert_eq!(status, 400, "{hook}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("nested more than 64"), "{hook}: {body}");
    }
    // At the limit: accepted, stored, read back and delivered.
    let deep = json!({"phone_number": "+15551230000", "lead_id": "7", "deep": nested(62)});
    let (status, _, body) = post(&events, &event("deep-ok", deep)).await;
    assert_eq!(status, 202, "{body}");
    let delivery = body["deliveries"][0]["id"].as_str().unwrap().to_string();
    until("the deep event's delivery", 20, || {
        arrivals(&rx).contains_key(&delivery)
    })
    .await;
    let log = serve.log();
    assert!(
        !log.iter().any(|l| l.contains("could not be recorded")),
        "{log:#?}"
    );
    serve.stop();
}

#[tokio::test]
async fn a_stored_event_that_cannot_be_read_fails_once_with_kind_store() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx);
    let data = tempfile::tempdir().unwrap();
    // A delivery queued for an event whose stored record is then damaged on disk.
    {
        let store = SledStore::open(data.path()).unwrap();
        let event = switchboard::Event::new("call.disposition", json!({"phone_number": "1"}));
        let new = NewEvent {
            event,
            matches: vec![crm()],
            keys: Default::default(),
            limits: Vec::new(),
        };
        store.accept(vec![new], chrono::Utc::now()).await.unwrap();
    }
    {
        let db = common::raw_sled_when_free(data.path());
        let tree = db.open_tree("switchboard").unwrap();
        let keys: Vec<_> = tree.scan_prefix(b"E").map(|item| item.unwrap().0).collect();
        assert_eq!(keys.len(), 1);
        tree.insert(&keys[0], &b"{\"event\": {\"kind\": "[..])
            .unwrap();
        db.flush().unwrap();
    }
    common::wait_released(data.path());
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let logs = || {
        let out = common::cli()
            .args(["logs", "--json", "--data"])
            .arg(data.path())
            .output()
            .unwrap();
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap_or_default()
    };
    until("the failed entry", 20, || !logs().is_empty()).await;
    // Give a loop time to show itself.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let entries = logs();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["outcome"], "failed");
    assert_eq!(entries[0]["error"]["kind"], "store");
    assert!(rx.requests().is_empty(), "nothing can be sent for it");
    let log = serve.log();
    assert!(log.len() < 20, "the server kept logging: {log:#?}");
    serve.stop();
}

/// A tmpfs of `size` mounted on a new folder, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None when this process may not mount (not root): the caller says so and skips.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Tmpfs { dir })
    }

    /// Mounted; or, when this process may not mount, None after saying so (as root the
    /// mount must work: the test fails rather than skip).
    fn mount_or_skip(size: &str) -> Option<Tmpfs> {
        let disk = Tmpfs::mount(size);
        if disk.is_none() {
            assert!(
                !running_as_root(),
                "root could not mount a tmpfs: this test must run"
            );
            eprintln!("skipped: mounting a tmpfs needs root");
        }
        disk
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros to `path` until the file system is full; returns how much it wrote.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) | Err(_) => return written,
            Ok(n) => written += n as u64,
        }
    }
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[tokio::test]
async fn a_full_disk_is_answered_503_sends_nothing_unrecorded_and_recovers_by_itself() {
    let Some(disk) = Tmpfs::mount_or_skip("8m") else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx);
    let data = disk.path().join("data");
    let serve = Serve::start(config.path(), &data, &[]).await;
    let events = format!("{}/events", serve.url);
    let mut acknowledged: Vec<String> = Vec::new();
    let mut n = 0;
    let send = async |n: &mut usize, acknowledged: &mut Vec<String>| {
        *n += 1;
        let data = json!({"phone_number": format!("+1555{:07}", *n), "lead_id": n.to_string()});
        let (status, retry_after, body) = post(&events, &event(&format!("ev-{n}"), data)).await;
        if status == 202 {
            acknowledged.push(body["deliveries"][0]["id"].as_str().unwrap().to_string());
        }
        (status, retry_after, body)
    };
    for _ in 0..20 {
        assert_eq!(send(&mut n, &mut acknowledged).await.0, 202);
    }
    until("the first 20 deliveries", 30, || arrivals(&rx).len() == 20).await;

    // The disk fills up: new events are refused with 503 and Retry-After, never 500.
    let filler = disk.path().join("filler");
    fill(&filler);
    let mut refused = None;
    for _ in 0..2000 {
        let (status, retry_after, body) = send(&mut n, &mut acknowledged).await;
        assert!(status == 202 || status == 503, "{status} {body}");
        if status == 503 {
            refused = Some((retry_after, body));
            break;
        }
    }
    let (retry_after, body) = refused.expect("a full disk refuses events");
    assert!(retry_after.is_some(), "503 carries Retry-After");
    assert!(
        body["error"].as_str().unwrap().contains("storage"),
        "{body}"
    );
    let ready = common::server::client()
        .get(format!("{}/readyz", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);

    // While it fails: more events are refused, nothing floods the receiver or the log.
    let requests_then = rx.requests().len();
    let log_then = serve.log().len();
    for _ in 0..50 {
        assert_eq!(send(&mut n, &mut acknowledged).await.0, 503);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let undelivered = acknowledged.len() - 20;
    assert!(
        rx.requests().len() - requests_then <= undelivered,
        "{} requests while the store failed, {undelivered} deliveries were pending",
        rx.requests().len() - requests_then
    );
    let logged = serve.log().len() - log_then;
    assert!(
        logged < 20,
        "{logged} log lines while failing: {:#?}",
        serve.log()
    );

    // Space returns: serve recovers without a restart and loses nothing it acknowledged.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = common::server::client()
            .get(format!("{}/readyz", serve.url))
            .send()
            .await
            .unwrap();
        if ready.status().as_u16() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz did not recover: {:#?}",
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..10 {
        assert_eq!(send(&mut n, &mut acknowledged).await.0, 202);
    }
    until("every acknowledged delivery", 30, || {
        let seen = arrivals(&rx);
        acknowledged.iter().all(|id| seen.contains_key(id))
    })
    .await;
    let most = arrivals(&rx).into_values().max().unwrap_or(0);
    assert!(most <= 3, "a delivery was sent {most} times");
    let log = serve.log();
    assert!(
        log.iter().any(|l| l.contains("storage works again")),
        "{log:#?}"
    );
    serve.stop();
}

#[tokio::test]
async fn sled_failing_on_a_full_disk_is_reopened_and_keeps_what_the_journal_acknowledged() {
    let Some(disk) = Tmpfs::mount_or_skip("8m") else {
        return;
    };
    let data = disk.path().join("data");
    let sled = SledStore::open(&data).unwrap();
    let store: &dyn Store = &sled;
    let accept = async |i: usize| {
        let mut event =
            switchboard::Event::new("call.disposition", json!({"n": i, "pad": "x".repeat(2000)}));
        event.id = switchboard::EventId::new(format!("ev-{i}"));
        let new = NewEvent {
            event,
            matches: vec![crm()],
            keys: Default::default(),
            limits: Vec::new(),
        };
        store.accept(vec![new], chrono::Utc::now()).await
    };
    for i in 0..50 {
        accept(i).await.unwrap();
    }
    sled.commit_blocking().unwrap();
    for i in 50..100 {
        accept(i).await.unwrap();
    }
    let filler = disk.path().join("filler");
    fill(&filler);
    // sled's own flush of what it holds in memory hits the full disk; its error is sticky.
    std::thread::sleep(Duration::from_millis(1500));
    let error = sled.commit_blocking().unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    assert!(accept(1000).await.unwrap_err().is_unavailable());
    assert!(store.health().is_err());
    assert!(store.recover().await.is_err(), "no space yet");
    std::fs::remove_file(&filler).unwrap();
    assert!(
        store.recover().await.unwrap(),
        "recovers once space returns"
    );
    store.health().unwrap();
    accept(1001).await.unwrap();
    sled.commit_blocking().unwrap();
    assert_eq!(store.queue_depth(), 101);
    for i in (0..100).chain([1001]) {
        let id = switchboard::EventId::new(format!("ev-{i}"));
        let kept = store.event("api", &id).await.unwrap();
        assert!(kept.is_some(), "event {i} is kept");
    }
    drop(sled);
    let reopened = common::open_when_free(&data);
    assert_eq!(reopened.queue_depth(), 101);
}

#[tokio::test]
async fn an_unfinished_sled_snapshot_does_not_keep_the_folder_closed() {
    // What a start on a full disk leaves: sled began a snapshot and could not finish it.
    let data = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(data.path()).unwrap();
        let new = NewEvent {
            event: switchboard::Event::new("call.disposition", json!({"n": 1})),
            matches: vec![crm()],
            keys: Default::default(),
            limits: Vec::new(),
        };
        store.accept(vec![new], chrono::Utc::now()).await.unwrap();
    }
    common::wait_released(data.path());
    std::fs::write(
        data.path().join("snap.00000000FFFFFFFF.generating"),
        vec![0u8; 4096],
    )
    .unwrap();
    let store = SledStore::open(data.path()).expect("the folder opens");
    assert_eq!(store.queue_depth(), 1, "and keeps what it held");
    assert!(
        !data
            .path()
            .join("snap.00000000FFFFFFFF.generating")
            .exists()
    );
}
