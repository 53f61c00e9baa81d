//! Operational events: a delivery that ends failed, and an endpoint that pauses and resumes,
//! become events of source `switchboard` that a workflow routes to an alert endpoint (a real
//! receiver on 127.0.0.1); an alert that fails is never alerted about. The failures go
//! through the real `switchboard serve`; the pause and resumption through the runtime.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::Serve;
use common::receiver::{Receiver, Reply};
use common::{ConfigDir, cli};
use serde_json::{Value, json};
use switchboard::Event;
use switchboard::runtime::{Options, Runtime};
use switchboard::store::{SledStore, Store};

/// The alert as the alert endpoint gets it: the operational event's metadata and data.
const ALERT_ADAPTOR: (&str, &str) = (
    "adaptors/alert.yaml",
    r#"fields:
  - {from: "@type", to: type}
  - {from: "@source", to: source}
  - {from: "@id", to: id}
  - {from: delivery_id, to: delivery_id}
  - {from: endpoint, to: endpoint}
  - {from: workflow, to: workflow}
  - {from: event_id, to: event_id}
  - {from: event_type, to: event_type}
  - {from: attempts, to: attempts}
  - {from: error.kind, to: error.kind}
  - {from: error.message, to: error.message}
  - {from: until, to: until}
  - {from: at, to: at}
"#,
);

const ALERT_WORKFLOW: (&str, &str) = (
    "workflows/alerts.yaml",
    "when:\n  - event: [switchboard.delivery.failed, switchboard.endpoint.paused, switchboard.endpoint.resumed]\nactions:\n  - endpoint: alerts\n",
);

fn config(crm: &str, alerts: &str, crm_retry: &str) -> ConfigDir {
    ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - {from: phone, to: phone}\n",
        ),
        ALERT_ADAPTOR,
        (
            "endpoints/crm.yaml",
            &format!("url: {crm}\nadaptor: contact\nretry: {{schedule: {crm_retry}}}\n"),
        ),
        (
            "endpoints/alerts.yaml",
            &format!("url: {alerts}\nadaptor: alert\nretry: {{schedule: [1s]}}\n"),
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: sale\nactions:\n  - endpoint: crm\n",
        ),
        ALERT_WORKFLOW,
    ])
}

async fn post(url: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{url}/events"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("serve answers");
    assert_eq!(response.status().as_u16(), 202);
    serde_json::from_str(&response.text().await.expect("body")).expect("JSON")
}

/// The connect log's entries of the alert endpoint.
async fn logs(url: &str) -> Value {
    let text = reqwest::get(format!("{url}/api/logs?endpoint=alerts"))
        .await
        .expect("serve answers")
        .text()
        .await
        .expect("body");
    serde_json::from_str(&text).expect("JSON")
}

/// Waits until `rx` has seen `n` requests (at most 30 s).
async fn requests(rx: &Receiver, n: usize, what: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while rx.requests().len() < n {
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {n} requests arrived",
            rx.requests().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rx.requests()
        .iter()
        .map(|r| serde_json::from_str(&r.body).expect("JSON body"))
        .collect()
}

#[tokio::test]
async fn a_delivery_that_runs_out_of_retries_is_alerted_with_its_data() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let crm = Receiver::start(vec![], Reply::Status(500)).await;
    let alerts = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&crm.url("/contacts"), &alerts.url("/alerts"), "[1s]");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let accepted = post(
        &serve.url,
        json!({"type": "sale", "id": "ev-1", "data": {"phone": "+15550100"}}),
    )
    .await;
    let delivery = accepted["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let got = requests(&alerts, 1, "the alert").await;
    assert_eq!(crm.requests().len(), 2, "two attempts, then it gave up");
    let alert = &got[0];
    assert_eq!(alert["type"], "switchboard.delivery.failed");
    assert_eq!(alert["source"], "switchboard");
    assert_eq!(alert["id"], format!("failed-{delivery}-2"));
    assert_eq!(alert["delivery_id"], delivery.as_str());
    assert_eq!(alert["endpoint"], "crm");
    assert_eq!(alert["workflow"], "sale");
    assert_eq!(alert["event_id"], "ev-1");
    assert_eq!(alert["event_type"], "sale");
    assert_eq!(alert["attempts"], 2);
    assert_eq!(alert["error"]["kind"], "status");
    let message = alert["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("HTTP 500")
            && message.ends_with("gave up after 2 attempts (retry.schedule has 1 retry)"),
        "{message}"
    );
    // The alert's own delivery is in the connect log like any other.
    let log = logs(&serve.url).await;
    let entries = log["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{log}");
    assert_eq!(entries[0]["outcome"], "delivered");
    assert_eq!(entries[0]["event_type"], "switchboard.delivery.failed");
    let _ = serve.stop();
}

#[tokio::test]
async fn an_alert_that_fails_is_not_alerted_about() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let crm = Receiver::start(vec![], Reply::Status(500)).await;
    let alerts = Receiver::start(vec![], Reply::Status(500)).await;
    let config = config(&crm.url("/contacts"), &alerts.url("/alerts"), "[1s]");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    post(
        &serve.url,
        json!({"type": "sale", "id": "ev-2", "data": {"phone": "+15550100"}}),
    )
    .await;
    // The alert is tried twice (its schedule has one retry), then fails.
    let got = requests(&alerts, 2, "the alert's two attempts").await;
    assert!(got.iter().all(|a| a["event_id"] == "ev-2"), "{got:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = serve.log();
        if log
            .iter()
            .any(|l| l.contains("ERROR") && l.contains("endpoint=alerts"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the alert never failed:\n{log:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No alert about the alert: nothing more arrives, and the log has its one delivery.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(alerts.requests().len(), 2);
    let log = logs(&serve.url).await;
    let entries = log["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{log}");
    assert!(
        entries
            .iter()
            .all(|e| e["delivery_id"] == entries[0]["delivery_id"]),
        "{log}"
    );
    assert_eq!(entries[0]["outcome"], "failed");
    let _ = serve.stop();
}

#[tokio::test]
async fn an_endpoint_that_pauses_and_resumes_is_alerted_both_times() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A port that refuses connections until a receiver opens it again.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let alerts = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(
        &format!("http://{addr}/contacts"),
        &alerts.url("/alerts"),
        "[1s, 2s, 5s, 10s, 30s]",
    );
    let data = tempfile::tempdir().unwrap();
    let engine = config.engine();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(data.path()).expect("store"));
    let runtime = Runtime::with_store(
        Options::new(config.path(), data.path()),
        engine,
        Vec::new(),
        store,
    );
    runtime.start(Duration::from_secs(5));
    let events = (0..5)
        .map(|i| {
            let mut e = Event::new("sale", json!({"phone": format!("+1555010{i}")}));
            e.id = switchboard::EventId::new(format!("ev-{i}"));
            e
        })
        .collect();
    runtime.accept(events).await.expect("accept");

    let paused = requests(&alerts, 1, "the pause").await;
    let paused = &paused[0];
    assert_eq!(paused["type"], "switchboard.endpoint.paused");
    assert_eq!(paused["source"], "switchboard");
    assert_eq!(paused["endpoint"], "crm");
    assert_eq!(paused["workflow"], "sale");
    assert_eq!(paused["error"]["kind"], "connect");
    assert!(
        paused["until"].as_str().is_some_and(|u| u.ends_with('Z')),
        "{paused}"
    );
    assert!(
        paused["event_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("ev-")),
        "{paused}"
    );

    // The CRM answers again: the next probe gets through, and the lane resumes.
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    let crm = Receiver::start_on(listener, vec![], Reply::Status(200));
    let got = requests(&alerts, 2, "the resumption").await;
    let resumed = &got[1];
    assert_eq!(resumed["type"], "switchboard.endpoint.resumed");
    assert_eq!(resumed["endpoint"], "crm");
    assert!(resumed.get("error").is_none(), "{resumed}");
    assert!(resumed["at"].as_str().is_some(), "{resumed}");
    assert!(!crm.requests().is_empty());
    runtime.shutdown().await.expect("shutdown");
    // Only news: one pause, one resumption, no failed delivery.
    assert_eq!(alerts.requests().len(), 2);
}

#[test]
fn the_source_switchboard_is_refused_at_the_doors() {
    let config = ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - {from: phone, to: phone}\n",
        ),
        (
            "endpoints/crm.yaml",
            "url: https://crm.example.com\nadaptor: contact\n",
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: sale\nactions:\n  - endpoint: crm\n",
        ),
        (
            "endpoints/switchboard.yaml",
            "direction: inbound\npath: /hooks/sb\nevent_type: sale\n",
        ),
    ]);
    let out = cli()
        .args(["validate", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("an inbound endpoint cannot be named switchboard"),
        "{stderr}"
    );
    std::fs::remove_file(config.path().join("endpoints/switchboard.yaml")).unwrap();
    let event = config.path().join("ev.json");
    std::fs::write(
        &event,
        r#"{"type": "sale", "id": "x", "source": "switchboard", "data": {"phone": "1"}}"#,
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = cli()
        .args(["send", "--config"])
        .arg(config.path())
        .arg("--data")
        .arg(data.path())
        .arg("--event")
        .arg(&event)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the event source \"switchboard\" is reserved"),
        "{stderr}"
    );
}

#[test]
fn only_workflows_that_name_operational_types_match_them() {
    let config = ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - {from: endpoint, to: endpoint}\n",
        ),
        (
            "endpoints/archive.yaml",
            "url: https://archive.example.com\nadaptor: contact\n",
        ),
        (
            "endpoints/slack.yaml",
            "url: https://hooks.example.com\nadaptor: contact\n",
        ),
        (
            "workflows/everything.yaml",
            "when:\n  - event: \"*\"\nactions:\n  - endpoint: archive\n",
        ),
        (
            "workflows/by-field.yaml",
            "when:\n  - field: endpoint\n    exists: true\nactions:\n  - endpoint: archive\n",
        ),
        (
            "workflows/ops.yaml",
            "when:\n  - event: switchboard.*\nactions:\n  - endpoint: slack\n",
        ),
    ]);
    let engine = config.engine();
    let failed = common::event("switchboard.delivery.failed", json!({"endpoint": "crm"}));
    let matched: Vec<String> = engine
        .matches(&failed, common::now())
        .into_iter()
        .map(|m| m.workflow)
        .collect();
    assert_eq!(matched, vec!["ops".to_string()]);
    let run = engine.dry_run(&failed, common::now());
    let reasons = |name: &str| {
        run.workflows
            .iter()
            .find(|w| w.name == name)
            .map(|w| (w.matched, w.reasons.join("; ")))
            .unwrap()
    };
    let (matched, why) = reasons("everything");
    assert!(!matched && why.contains("is an operational event"), "{why}");
    let (matched, why) = reasons("by-field");
    assert!(!matched && why.contains("is an operational event"), "{why}");
    // Any other event still reaches the catch-alls.
    let sale = common::event("sale", json!({"endpoint": "crm"}));
    assert_eq!(engine.matches(&sale, common::now()).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_accepts_the_alerts_of_its_failures_and_serve_delivers_them() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // 400 is not retried: the delivery fails at its first attempt.
    let crm = Receiver::start(vec![], Reply::Status(400)).await;
    let alerts = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&crm.url("/contacts"), &alerts.url("/alerts"), "[1s]");
    let event = config.path().join("sale.json");
    std::fs::write(
        &event,
        r#"{"type": "sale", "id": "ev-send", "data": {"phone": "+15550100"}}"#,
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = cli()
        .args(["send", "--config"])
        .arg(config.path())
        .arg("--data")
        .arg(data.path())
        .arg("--event")
        .arg(&event)
        .output()
        .unwrap();
    assert_eq!(crm.requests().len(), 1);
    assert!(!out.status.success(), "the delivery failed");
    // The alert waits in the data folder; serve sends it.
    common::wait_released(data.path());
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let got = requests(&alerts, 1, "the alert of send's failure").await;
    assert_eq!(got[0]["type"], "switchboard.delivery.failed");
    assert_eq!(got[0]["event_id"], "ev-send");
    assert_eq!(got[0]["error"]["kind"], "status");
    let _ = serve.stop();
}
