//! The real `switchboard serve` process: kill -9 in the middle of a backlog and restart,
//! SIGHUP with a broken configuration, SIGTERM, the listen rule, and the CLI reaching a
//! running server's API.

mod common;

use std::time::{Duration, Instant};

use common::process::Serve;
use common::receiver::{Receiver, Reply};
use common::{ConfigDir, cli};
use serde_json::Value;

fn config(rx: &Receiver) -> ConfigDir {
    ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - {from: phone_number, to: phone}\n",
        ),
        (
            "endpoints/crm.yaml",
            &format!(
                "url: {}\nadaptor: contact\nconcurrency: 1\n",
                rx.url("/contacts")
            ),
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\nactions:\n  - endpoint: crm\n",
        ),
    ])
}

async fn serve(config: &ConfigDir, data: &std::path::Path) -> Serve {
    Serve::start(config.path(), data, &[]).await
}

async fn post_event(url: &str, i: usize) -> u16 {
    let body = format!(
        r#"{{"type": "call.disposition", "id": "ev-{i}", "data": {{"phone_number": "+1555{i:07}"}}}}"#
    );
    reqwest::Client::new()
        .post(format!("{url}/events"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn distinct_deliveries(rx: &Receiver, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut keys: Vec<String> = rx
            .requests()
            .iter()
            .filter_map(|r| r.header("idempotency-key").map(str::to_string))
            .collect();
        keys.sort();
        keys.dedup();
        if keys.len() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} deliveries arrived",
            keys.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_event_answered_2xx_is_delivered_after_a_kill_9() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rx = Receiver::start(vec![], Reply::Stall(Duration::from_millis(100))).await;
    let config = config(&rx);
    let data = tempfile::tempdir().unwrap();
    let server = serve(&config, data.path()).await;
    for i in 0..30 {
        assert_eq!(post_event(&server.url, i).await, 202);
    }
    while rx.requests().len() < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    assert!(
        rx.requests().len() < 30,
        "the backlog was still going when killed"
    );
    let server = serve(&config, data.path()).await;
    distinct_deliveries(&rx, 30).await;
    server.stop();
}

#[tokio::test]
async fn sighup_with_a_broken_configuration_keeps_serving() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx);
    let data = tempfile::tempdir().unwrap();
    let server = serve(&config, data.path()).await;
    let url = server.url.clone();
    std::fs::write(
        config.path().join("workflows/sale.yaml"),
        "when:\n  - event: call.disposition\nactions:\n  - endpoint: gone\n",
    )
    .unwrap();
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        post_event(&url, 1).await,
        202,
        "still serving with the running configuration"
    );
    distinct_deliveries(&rx, 1).await;
    let log = server.stop();
    assert!(
        log.contains("workflows/sale.yaml:4:15: unknown endpoint \"gone\" (known: crm)"),
        "{log}"
    );
    assert!(
        log.contains("configuration rejected (1 errors); still running the previous one"),
        "{log}"
    );
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_loses_nothing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rx = Receiver::start(vec![], Reply::Stall(Duration::from_millis(100))).await;
    let config = config(&rx);
    let data = tempfile::tempdir().unwrap();
    let server = serve(&config, data.path()).await;
    for i in 0..10 {
        assert_eq!(post_event(&server.url, i).await, 202);
    }
    let log = server.stop();
    assert!(
        log.contains("stopped; everything accepted is on disk"),
        "{log}"
    );
    assert!(
        !data.path().join("server.json").exists(),
        "the address file is removed"
    );
    let server = serve(&config, data.path()).await;
    distinct_deliveries(&rx, 10).await;
    server.stop();
}

#[tokio::test]
async fn logs_and_replay_go_through_a_running_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rx = Receiver::start(vec![Reply::Status(400)], Reply::Status(200)).await;
    let config = config(&rx);
    let data = tempfile::tempdir().unwrap();
    let server = serve(&config, data.path()).await;
    assert_eq!(post_event(&server.url, 7).await, 202);
    distinct_deliveries(&rx, 1).await;
    // The CLI runs on a blocking thread: the receiver lives on this test's runtime.
    let run = |args: &[&str]| {
        let mut cmd = cli();
        cmd.args(args).arg("--data").arg(data.path());
        let shown = format!("{args:?}");
        tokio::task::spawn_blocking(move || {
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{shown}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        })
    };
    // The receiver has answered; poll until the attempt is recorded.
    let deadline = Instant::now() + Duration::from_secs(20);
    let entries: Vec<Value> = loop {
        let out = run(&["logs", "--json", "--search", "+15550000007"])
            .await
            .unwrap();
        let entries: Vec<Value> = serde_json::from_str(&out).unwrap();
        if !entries.is_empty() {
            break entries;
        }
        assert!(Instant::now() < deadline, "the attempt was not recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["outcome"], "failed");
    let delivery = entries[0]["delivery_id"].as_str().unwrap().to_string();
    let out = run(&["replay", &delivery]).await.unwrap();
    assert!(
        out.contains("through the server at") && out.contains("delivered after 2 attempts"),
        "{out}"
    );
    server.stop();
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let data = tempfile::tempdir().unwrap();
    let out = cli()
        .args(["serve", "--listen", "0.0.0.0:0", "--data"])
        .arg(data.path())
        .env_remove("SWITCHBOARD_API_TOKEN")
        .current_dir(common::root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: refusing to listen on 0.0.0.0:0 without an API token: set SWITCHBOARD_API_TOKEN (or listen on 127.0.0.1)\n"
    );
}

#[tokio::test]
async fn entries_carry_the_node_that_made_the_attempt() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx);
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(config.path(), data.path(), &["--node", "alpha"]).await;
    assert_eq!(post_event(&server.url, 1).await, 202);
    distinct_deliveries(&rx, 1).await;
    // The cluster is this one node, with its configuration's fingerprint.
    let cluster: Value = serde_json::from_str(
        &reqwest::Client::new()
            .get(format!("{}/api/cluster", server.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(cluster["node"], "alpha", "{cluster}");
    let nodes = cluster["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{cluster}");
    assert_eq!(nodes[0]["name"], "alpha");
    assert_eq!(nodes[0]["address"], server.url.as_str());
    assert_eq!(nodes[0]["alive"], true);
    assert_eq!(nodes[0]["config_differs"], false);
    assert_eq!(nodes[0]["config_hash"].as_str().unwrap().len(), 16);
    server.stop();
    let out = cli()
        .args(["logs", "--json", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    let entries: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(entries[0]["node"], "alpha", "{entries}");
}

/// A capture that matches nothing, or a response body that does not parse as the
/// endpoint's format, is no longer silent: a warning in the entry and in the log.
#[tokio::test]
async fn a_capture_that_finds_nothing_is_a_warning_in_the_entry_and_the_log() {
    let rx = Receiver::start(
        vec![Reply::Full(
            200,
            vec![("content-type", "text/html".into())],
            "<html>thanks</html>".into(),
        )],
        Reply::Full(
            201,
            vec![("content-type", "application/json".into())],
            r#"{"data": {}}"#.into(),
        ),
    )
    .await;
    let config = ConfigDir::new(&[
        (
            "endpoints/crm.yaml",
            &format!(
                "url: {}\nmethod: POST\nbody_template: '{{}}'\nconcurrency: 1\nresponse:\n  format: json\n  capture:\n    crm_id: $.id\n",
                rx.url("/contacts")
            ),
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    let data = tempfile::tempdir().unwrap();
    let s = serve(&config, data.path()).await;
    for i in 1..=2 {
        let body = format!(r#"{{"type": "call.disposition", "id": "ev-{i}", "data": {{}}}}"#);
        let (status, _) = common::server::post(&format!("{}/events", s.url), &body, &[]).await;
        assert_eq!(status, 202);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let entries = loop {
        let (_, text) = common::server::get(&format!("{}/api/logs?after=0", s.url), &[]).await;
        let page: Value = serde_json::from_str(&text).unwrap();
        let entries = page["entries"].as_array().unwrap().clone();
        if entries.len() == 2 || Instant::now() > deadline {
            break entries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(entries.len(), 2, "{entries:?}");
    let warnings = |i: usize| -> Vec<String> {
        serde_json::from_value(entries[i]["warnings"].clone()).unwrap()
    };
    let first = warnings(0);
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(
        first[0].starts_with("the response body is not JSON (")
            && first[0].ends_with("; read as text"),
        "{first:?}"
    );
    assert_eq!(first[1], "capture crm_id matched nothing in the response");
    assert_eq!(
        warnings(1),
        ["capture crm_id matched nothing in the response"]
    );
    assert_eq!(
        entries[0]["outcome"], "delivered",
        "a warning is not a failure"
    );
    let log = s.stop();
    assert_eq!(
        log.matches("capture crm_id matched nothing in the response")
            .count(),
        2,
        "{log}"
    );
}

/// A failed attempt that will be retried is a warning in serve's log; the attempt after
/// which the delivery gives up is an error; a delivery is information.
#[tokio::test]
async fn retries_are_warnings_and_final_failures_errors_in_the_log() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rx = Receiver::start(vec![Reply::Status(503)], Reply::Status(500)).await;
    let config = ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - {from: phone_number, to: phone}\n",
        ),
        (
            "endpoints/crm.yaml",
            &format!(
                "url: {}\nadaptor: contact\nretry: {{schedule: [1s]}}\n",
                rx.url("/contacts")
            ),
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    let data = tempfile::tempdir().unwrap();
    let serve = serve(&config, data.path()).await;
    assert_eq!(post_event(&serve.url, 1).await, 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    let attempt = |level: &str, outcome: &str, log: &[String]| {
        log.iter()
            .any(|l| l.contains(level) && l.contains(&format!("outcome=\"{outcome}\"")))
    };
    loop {
        let log = serve.log();
        if attempt("ERROR", "failed", &log) {
            assert!(attempt("WARN", "retrying", &log), "{log:#?}");
            assert!(
                log.iter()
                    .any(|l| l.contains("gave up after 2 attempts (retry.schedule has 1 retry)")),
                "{log:#?}"
            );
            assert!(
                !log.iter()
                    .any(|l| l.contains("INFO") && l.contains("outcome")),
                "{log:#?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no final failure logged:\n{log:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
