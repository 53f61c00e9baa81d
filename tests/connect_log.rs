//! The connect log from the command line (`send`, `logs`, `replay`), and crash safety: a
//! `send` killed mid-backlog loses nothing; the journal restores what sled had not written.
//! (The store's own behaviour is in `store_conformance.rs`.)

mod common;
#[path = "common/postgres.rs"]
mod postgres_server;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::receiver::{Receiver, Reply};
use common::{ConfigDir, cli};
use serde_json::{Value, json};
use switchboard::engine::event::{Event, EventId};
use switchboard::runtime::{Options, Runtime};
use switchboard::store::record::{LogEntry, LoggedRequest};
use switchboard::store::{
    DeliveryId, DeliveryState, LogQuery, NewEvent, Outcome, SledStore, Store,
};

fn config(url: &str) -> ConfigDir {
    ConfigDir::new(&[
        (
            "adaptors/lead.yaml",
            "fields:\n  - {from: phone_number, to: phone}\n  - {from: lead_id, to: lead}\nextra_fields:\n  api_key: ${TEST_API_KEY}\n",
        ),
        (
            "endpoints/crm.yaml",
            &format!(
                "url: {url}\nadaptor: lead\nauth:\n  type: bearer\n  token: ${{TEST_TOKEN}}\nconcurrency: 1\nretry:\n  schedule: [1h]\n"
            ),
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\n  - field: status\n    equals: SALE\nactions:\n  - endpoint: crm\n",
        ),
    ])
}

fn events_file(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let path = dir.join("events.ndjson");
    let lines: Vec<String> = (0..n)
        .map(|i| json!({"type": "call.disposition", "id": format!("call-{i}"), "data": {"status": "SALE", "phone_number": format!("(555) 010-{i:04}"), "lead_id": format!("L{i}")}}).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

/// The CLI with `command`, this configuration and data folder, and the test secrets.
fn switchboard(config: &ConfigDir, data: &std::path::Path, command: &str) -> std::process::Command {
    let mut cmd = cli();
    cmd.arg(command)
        .arg("--data")
        .arg(data)
        .env("SWITCHBOARD_CONFIG", config.path())
        .env("TEST_TOKEN", "tok-123+/=")
        .env("TEST_API_KEY", "key-4567");
    cmd
}

#[tokio::test]
async fn send_then_logs_then_replay_from_the_command_line() {
    let rx = Receiver::start(
        vec![
            Reply::Status(201),
            Reply::Full(422, vec![], "bad phone".into()),
        ],
        Reply::Status(201),
    )
    .await;
    let config = config(&rx.url("/contacts"));
    let data = tempfile::tempdir().unwrap();
    let events = events_file(data.path(), 2);
    let out = tokio::task::spawn_blocking({
        let mut cmd = switchboard(&config, data.path(), "send");
        cmd.arg("--event").arg(&events);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "one delivery failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].ends_with("sale → crm: delivered after 1 attempt (HTTP 201, ")
            || lines[0].contains("delivered after 1 attempt (HTTP 201"),
        "{stdout}"
    );
    assert!(
        lines[1].contains("failed after 1 attempt: HTTP 422 Unprocessable Entity"),
        "{stdout}"
    );
    let failed_delivery = lines[1].split_whitespace().next().unwrap().to_string();

    let logs = |args: &[&str]| {
        let mut cmd = switchboard(&config, data.path(), "logs");
        cmd.args(args);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let table = logs(&[]);
    assert!(table.starts_with("TIME (UTC)"), "{table}");
    assert_eq!(table.lines().count(), 3);
    let json: Vec<Value> =
        serde_json::from_str(&logs(&["--json", "--search", "+1 555-010-0001"])).unwrap();
    assert_eq!(
        json.len(),
        1,
        "the phone in another spelling finds its entry"
    );
    let entry = &json[0];
    for key in [
        "id",
        "delivery_id",
        "attempt",
        "at",
        "event_id",
        "event_type",
        "workflow",
        "endpoint",
        "request",
        "response",
        "outcome",
        "error",
        "next_attempt_at",
        "captured",
        "warnings",
        "keys",
    ] {
        assert!(entry.get(key).is_some(), "entry lacks {key}: {entry}");
    }
    assert_eq!(entry["outcome"], "failed");
    assert_eq!(entry["error"]["kind"], "status");
    assert_eq!(entry["keys"]["phone_number"], "(555) 010-0001");
    assert_eq!(entry["request"]["headers"]["Authorization"], "***");
    assert_eq!(
        entry["request"]["body"],
        r#"{"phone":"(555) 010-0001","lead":"L1","api_key":"***"}"#
    );
    let csv = logs(&["--csv", "--outcome", "delivered"]);
    assert!(csv.starts_with("id,at,delivery_id,attempt,"), "{csv}");
    assert_eq!(csv.lines().count(), 2);
    assert_eq!(
        logs(&["--endpoint", "crm", "--outcome", "skipped"]),
        "no connect log entries match\n"
    );
    let show = logs(&["show", entry["id"].as_str().unwrap()]);
    assert!(
        show.contains("outcome   failed (status): HTTP 422 Unprocessable Entity"),
        "{show}"
    );
    assert!(show.contains("Authorization: ***"));

    let out = tokio::task::spawn_blocking({
        let mut cmd = switchboard(&config, data.path(), "replay");
        cmd.arg(&failed_delivery);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("delivered after 2 attempts"));
    let attempts: Vec<Value> =
        serde_json::from_str(&logs(&["--json", "--delivery", &failed_delivery])).unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["attempt"], 2, "newest first");
    // Nothing in the data folder holds a credential.
    for file in walk(data.path()) {
        let bytes = std::fs::read(&file).unwrap();
        for secret in ["tok-123+/=", "key-4567"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in {}",
                file.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path))
        } else {
            files.push(path)
        }
    }
    files
}

#[test]
fn bad_input_is_one_line() {
    let config = config("http://127.0.0.1:1/");
    let data = tempfile::tempdir().unwrap();
    // An empty store: a folder without one is its own error (tests/cli_checks.rs).
    drop(common::open_when_free(data.path()));
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "logs",
            vec!["--outcome", "lost"],
            "unknown outcome \"lost\" (known: delivered, retrying, failed, skipped)",
        ),
        (
            "logs",
            vec!["--since", "yesterday"],
            "invalid --since \"yesterday\": write a duration (1h, 7d) or a time (2026-11-21T10:00:00Z, 2026-11-21)",
        ),
        (
            "logs",
            vec!["show", "nope"],
            "error: no connect log entry or delivery with id nope",
        ),
        (
            "replay",
            vec!["nope"],
            "error: no delivery or connect log entry with id nope",
        ),
    ];
    for (command, args, expected) in cases {
        let out = switchboard(&config, data.path(), command)
            .args(&args)
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(stderr.trim_end().lines().count() <= 3, "{stderr}");
    }
}

/// `send`, `logs` and `replay` on a PostgreSQL store (`--store` or `SWITCHBOARD_STORE`):
/// what one command stored the next reads, nothing goes to the data folder, and the
/// password in the URL is shown nowhere.
#[tokio::test]
async fn send_logs_and_replay_share_a_postgres_store() {
    let Some(server) = postgres_server::Postgres::start() else {
        return;
    };
    // The throwaway server trusts every local connection: the password is only there to
    // be masked.
    let url = server.url.replace("postgres@", "postgres:s3cret-pw@");
    let rx = Receiver::start(
        vec![Reply::Full(422, vec![], "bad phone".into())],
        Reply::Status(201),
    )
    .await;
    let config = config(&rx.url("/contacts"));
    let data = tempfile::tempdir().unwrap();
    let events = events_file(data.path(), 2);
    let command = |command: &str, args: &[&str], by_env: bool| {
        let mut cmd = switchboard(&config, &data.path().join("unused"), command);
        if by_env {
            cmd.env("SWITCHBOARD_STORE", &url);
        } else {
            cmd.args(["--store", &url]);
        }
        cmd.args(args);
        cmd
    };
    // Run off the test's runtime, which serves the receiver.
    let run = async |mut cmd: std::process::Command| {
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        );
        assert!(
            !stdout.contains("s3cret") && !stderr.contains("s3cret"),
            "{stdout}{stderr}"
        );
        (out.status.code(), stdout, stderr)
    };
    let events = events.to_str().unwrap();
    let (code, stdout, stderr) = run(command("send", &["--event", events], false)).await;
    assert_eq!(code, Some(4), "one delivery failed: {stdout}{stderr}");
    let failed = stdout
        .lines()
        .find(|l| l.contains("failed"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let (code, json, stderr) = run(command("logs", &["--json"], true)).await;
    assert_eq!(code, Some(0), "{stderr}");
    let entries: Vec<Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(entries.len(), 2, "{json}");
    let (code, json, _) = run(command(
        "logs",
        &["--json", "--search", "555-010-0001"],
        false,
    ))
    .await;
    assert_eq!(code, Some(0));
    assert_eq!(serde_json::from_str::<Vec<Value>>(&json).unwrap().len(), 1);
    let (code, stdout, stderr) = run(command("replay", &[&failed], true)).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("delivered"), "{stdout}");
    assert_eq!(rx.requests().len(), 3);
    assert!(
        !data.path().join("unused").exists(),
        "nothing is written to the data folder"
    );
    drop(server);
}

/// kill -9 in the middle of a backlog, reopen the data folder: every accepted delivery is
/// delivered (at least once).
#[tokio::test]
async fn a_killed_send_loses_nothing() {
    let rx = Receiver::start(vec![], Reply::Stall(Duration::from_millis(150))).await;
    let config = config(&rx.url("/contacts"));
    let data = tempfile::tempdir().unwrap();
    let events = events_file(data.path(), 20);
    let mut child = switchboard(&config, data.path(), "send")
        .arg("--event")
        .arg(&events)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Let it accept everything and deliver a few, then kill it hard.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while rx.requests().len() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "send never started delivering"
        );
        assert!(child.try_wait().unwrap().is_none(), "send exited early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = rx.requests().len();
    assert!(
        before < 20,
        "the backlog was still going when killed ({before} sent)"
    );

    let store: Arc<dyn Store> = Arc::new(SledStore::open(data.path()).unwrap());
    let engine = config.load_with(&|name| match name {
        "TEST_TOKEN" => Some("tok-123+/=".into()),
        "TEST_API_KEY" => Some("key-4567".into()),
        _ => None,
    });
    let runtime = Runtime::with_store(
        Options::new(config.path(), data.path()),
        engine.unwrap().engine,
        Vec::new(),
        store.clone(),
    );
    runtime.start(Duration::from_secs(5));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.queue_depth() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the backlog was not drained"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runtime.shutdown().await.unwrap();
    let mut keys: Vec<String> = rx
        .requests()
        .iter()
        .filter_map(|r| r.header("idempotency-key").map(str::to_string))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        20,
        "every accepted delivery reached the receiver"
    );
    for key in keys {
        let d = store
            .delivery(&DeliveryId::new(key))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.state, DeliveryState::Delivered);
    }
}

fn entry(id: &str, at: DateTime<Utc>, endpoint: &str, outcome: Outcome, phone: &str) -> LogEntry {
    LogEntry {
        id: id.to_string(),
        delivery_id: DeliveryId::new(format!("d-{id}")),
        attempt: 1,
        at,
        event_id: EventId::new(format!("e-{id}")),
        event_type: "call.disposition".into(),
        workflow: "w".into(),
        endpoint: endpoint.into(),
        step: None,
        after: None,
        node: "n".into(),
        request: Some(LoggedRequest {
            method: "POST".into(),
            url: "http://x/".into(),
            headers: Default::default(),
            body: None,
        }),
        response: None,
        outcome,
        error: None,
        next_attempt_at: None,
        waiting: None,
        captured: Default::default(),
        warnings: vec![],
        keys: [("phone_number".to_string(), phone.to_string())]
            .into_iter()
            .collect(),
    }
}

#[test]
fn a_data_folder_is_held_by_one_process() {
    let data = tempfile::tempdir().unwrap();
    let _held = SledStore::open(data.path()).unwrap();
    let out = cli()
        .arg("logs")
        .arg("--data")
        .arg(data.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("is in use by another switchboard process"),
        "{stderr}"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
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
async fn after_a_crash_the_journal_restores_every_write_made_since_sled_last_reached_disk() {
    let data = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let sled = SledStore::open(data.path()).unwrap();
    let store: &dyn Store = &sled;
    let now = Utc::now();
    let to_crm = [switchboard::engine::Match {
        workflow: "sale".into(),
        action: 0,
        endpoint: "crm".into(),
        delay: None,
        step: None,
        after: None,
        order: None,
    }];
    let keys: indexmap::IndexMap<String, String> =
        [("phone_number".to_string(), "+15550001111".to_string())]
            .into_iter()
            .collect();
    let new = |n: u32| NewEvent {
        event: Event::new("sale", json!({ "n": n })),
        matches: to_crm.to_vec(),
        keys: keys.clone(),
        limits: Vec::new(),
    };
    let first = store.accept(vec![new(1)], now).await.unwrap().remove(0);
    sled.commit_blocking().unwrap();
    // What a crash now would leave of sled: its files as they are on disk.
    for item in std::fs::read_dir(data.path()).unwrap() {
        let item = item.unwrap();
        if item.file_name() != "journal" {
            let target = crashed.path().join(item.file_name());
            if item.file_type().unwrap().is_dir() {
                copy_dir(&item.path(), &target);
            } else {
                std::fs::copy(item.path(), target).unwrap();
            }
        }
    }
    // Writes that reach only the journal before the crash: a second acceptance, and an
    // attempt that delivered the first event's delivery.
    let second = store.accept(vec![new(2)], now).await.unwrap().remove(0);
    let mut delivery = store
        .delivery(&first.deliveries[0].id)
        .await
        .unwrap()
        .unwrap();
    let dequeued = delivery.due_at;
    delivery.state = DeliveryState::Delivered;
    delivery.attempts = 1;
    delivery.due_at = None;
    let mut attempt = entry(
        &switchboard::store::query::id_at(now),
        now,
        "crm",
        Outcome::Delivered,
        "+15550001111",
    );
    attempt.delivery_id = delivery.id.clone();
    store.record(&attempt, &delivery, dequeued).await.unwrap();
    sled.commit_blocking().unwrap();
    copy_dir(
        &data.path().join("journal"),
        &crashed.path().join("journal"),
    );
    drop(sled);

    let reopened = SledStore::open(crashed.path()).unwrap();
    assert!(
        reopened
            .event("api", &second.event_id)
            .await
            .unwrap()
            .is_some()
    );
    let restored = reopened
        .delivery(&first.deliveries[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        restored.state,
        DeliveryState::Delivered,
        "the attempt is not lost, so the delivery is not sent again"
    );
    assert!(
        reopened
            .delivery(&second.deliveries[0].id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        reopened.queue_depth(),
        1,
        "only the second event's delivery"
    );
    let found = reopened
        .search(&LogQuery {
            search: Some("(555) 000-1111".into()),
            ..LogQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].delivery_id, first.deliveries[0].id);
}

#[tokio::test]
async fn a_data_folder_of_layout_1_is_upgraded_in_place_and_keeps_its_log() {
    let data = tempfile::tempdir().unwrap();
    let now: DateTime<Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
    let delivery_id = DeliveryId::new("01KA0000000000000000000001");
    let mut attempt = entry(
        "01KA0000000000000000000002",
        now,
        "crm",
        Outcome::Delivered,
        "+15550001111",
    );
    attempt.delivery_id = delivery_id.clone();
    attempt.event_id = EventId::new("ev-1");
    let mut event = Event::new("sale", json!({"phone_number": "+15550001111"}));
    event.id = EventId::new("ev-1");
    let delivery = switchboard::store::Delivery {
        id: delivery_id.clone(),
        event_id: event.id.clone(),
        event_source: "api".into(),
        event_type: "sale".into(),
        target: switchboard::engine::Match {
            workflow: "w".into(),
            action: 0,
            endpoint: "crm".into(),
            delay: None,
            step: None,
            after: None,
            order: None,
        },
        created_at: now,
        state: DeliveryState::Delivered,
        attempts: 1,
        retry_base: 0,
        generation: 0,
        due_at: None,
        keys: attempt.keys.clone(),
        last_entry: Some(attempt.id.clone()),
        entries: Vec::new(),
        leader: None,
        behind: None,
        followers: Vec::new(),
        captured: None,
    };
    let stored = json!({
        "event": event,
        "accepted_at": now,
        "deliveries": [{"id": delivery_id, "workflow": "w", "endpoint": "crm"}],
    });
    // The keys layout 1 wrote, as it wrote them.
    {
        let db = sled::open(data.path()).unwrap();
        let tree = db.open_tree("switchboard").unwrap();
        let key = |space: &[u8], rest: &[&[u8]]| {
            let mut k = space.to_vec();
            for part in rest {
                k.extend_from_slice(part);
            }
            k
        };
        let ms = (now.timestamp_millis() as u64).to_be_bytes();
        tree.insert(
            key(b"E", &[b"api\0ev-1"]),
            serde_json::to_vec(&stored).unwrap(),
        )
        .unwrap();
        tree.insert(key(b"T", &[&ms, b"api\0ev-1"]), b"[]".to_vec())
            .unwrap();
        tree.insert(
            key(b"D", &[delivery_id.as_str().as_bytes()]),
            serde_json::to_vec(&delivery).unwrap(),
        )
        .unwrap();
        tree.insert(
            key(b"L", &[attempt.id.as_bytes()]),
            serde_json::to_vec(&attempt).unwrap(),
        )
        .unwrap();
        // An entry whose delivery was purged before (its event kept by a later acceptance),
        // and a record that no longer reads.
        let mut orphan = entry(
            "01KA0000000000000000000003",
            now,
            "erp",
            Outcome::Failed,
            "+15550002222",
        );
        orphan.delivery_id = DeliveryId::new("01KA0000000000000000000009");
        tree.insert(
            key(b"L", &[orphan.id.as_bytes()]),
            serde_json::to_vec(&orphan).unwrap(),
        )
        .unwrap();
        tree.insert(key(b"E", &[b"api\0broken"]), b"{\"event\":".to_vec())
            .unwrap();
        for (tag, value) in [("e", "crm"), ("o", "delivered"), ("k", "5550001111")] {
            tree.insert(
                key(
                    b"I",
                    &[
                        tag.as_bytes(),
                        value.as_bytes(),
                        b"\0",
                        attempt.id.as_bytes(),
                    ],
                ),
                Vec::new(),
            )
            .unwrap();
        }
        db.flush().unwrap();
    }
    let store = common::open_when_free(data.path());
    let find = async |f: &dyn Fn(&mut LogQuery)| {
        let mut query = LogQuery::default();
        f(&mut query);
        let found = store.search(&query).await.unwrap();
        found.into_iter().map(|e| e.id).collect::<Vec<_>>()
    };
    let expected = vec![attempt.id.clone()];
    assert_eq!(
        find(&|q| q.search = Some("(555) 000-1111".into())).await,
        expected
    );
    assert_eq!(find(&|q| q.search = Some("ev-1".into())).await, expected);
    assert_eq!(find(&|q| q.endpoint = Some("crm".into())).await, expected);
    assert_eq!(
        find(&|q| q.outcome = Some(Outcome::Delivered)).await,
        expected
    );
    assert_eq!(
        find(&|q| q.delivery = Some(delivery_id.clone())).await,
        expected
    );
    let orphan = vec!["01KA0000000000000000000003".to_string()];
    assert_eq!(
        find(&|q| q.search = Some("555-000-2222".into())).await,
        orphan
    );
    assert_eq!(
        find(&|q| q.delivery = Some(DeliveryId::new("01KA0000000000000000000009"))).await,
        orphan
    );
    assert_eq!(find(&|_| {}).await.len(), 2);
    // And it purges like a folder of the current layout.
    let purged = store.purge(now + chrono::Duration::days(1)).await.unwrap();
    assert_eq!((purged.entries, purged.events), (2, 1));
    assert!(find(&|_| {}).await.is_empty());
}
