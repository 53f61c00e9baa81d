//! `sample` and `limit` on workflows: a deterministic share of events, and at most `max`
//! firings per value in a sliding period — explained by `render` and `test`, counted
//! durably by `serve` (sled, and PostgreSQL) across a kill -9, and stopping a receiver
//! that posts back into switchboard on every delivery (the loop guard).

mod common;
#[path = "common/postgres.rs"]
mod postgres_server;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::Serve;
use common::receiver::{Receiver, Reply};
use common::server::{get, post, seen};
use common::{ConfigDir, cli, event, now};
use serde_json::{Value, json};
use switchboard::engine::sample::bucket;

const CRM: (&str, &str) = (
    "endpoints/crm.yaml",
    "url: https://crm.example.com/x\nmethod: GET\n",
);

fn sampled_config(share: &str) -> ConfigDir {
    ConfigDir::new(&[
        CRM,
        (
            "workflows/sampled.yaml",
            &format!(
                "when:\n  - event: call.disposition\nsample: {share}\nsample_by: lead_id\nactions:\n  - endpoint: crm\n"
            ),
        ),
    ])
}

/// The lead ids among `0..n` that an engine loaded from `config` fires for.
fn chosen(config: &ConfigDir, n: usize) -> BTreeSet<usize> {
    let engine = config.engine();
    (0..n)
        .filter(|i| {
            let e = event("call.disposition", json!({"lead_id": format!("L{i}")}));
            engine.workflows()[0].matches(&e, now())
        })
        .collect()
}

#[test]
fn a_sample_takes_its_share_of_ten_thousand_events_and_the_same_ones_every_time() {
    for (share, expected) in [("25%", 2500.0), ("12.5%", 1250.0), ("80%", 8000.0)] {
        let config = sampled_config(share);
        let first = chosen(&config, 10_000);
        let off = (first.len() as f64 - expected).abs() / 10_000.0;
        assert!(off < 0.01, "{share}: {} of 10000 chosen", first.len());
        // A second run (a new engine, as a restart or another node would load) chooses
        // exactly the same events.
        let again = chosen(&sampled_config(share), 10_000);
        assert_eq!(first, again, "{share}");
    }
    // A smaller share chooses a subset of a larger one's events (same buckets).
    let quarter = chosen(&sampled_config("25%"), 2000);
    let half = chosen(&sampled_config("50%"), 2000);
    assert!(quarter.is_subset(&half));
}

#[test]
fn an_event_without_the_sample_by_field_is_sampled_by_its_id() {
    let config = sampled_config("50%");
    let engine = config.engine();
    let mut sampled = 0;
    for i in 0..1000 {
        let e = switchboard::engine::event::event_from_value(
            json!({"type": "call.disposition", "id": format!("ev-{i}"), "data": {}}),
            None,
            now(),
        )
        .unwrap();
        let run = engine.dry_run(&e, now());
        let reasons = run.workflows[0].reasons.join("; ");
        assert!(
            reasons.contains(&format!("lead_id is empty: event id ev-{i} → ")),
            "{reasons}"
        );
        let by_id = bucket("sampled", &format!("ev-{i}")) < 5000;
        assert_eq!(run.workflows[0].matched, by_id, "{reasons}");
        sampled += usize::from(by_id);
    }
    assert!((400..600).contains(&sampled), "{sampled}");
}

#[test]
fn sample_and_limit_are_load_errors_when_malformed() {
    let config = ConfigDir::new(&[
        CRM,
        (
            "workflows/a.yaml",
            "when:\n  - event: x\nsample: \"0.25\"\nactions:\n  - endpoint: crm\n",
        ),
        (
            "workflows/b.yaml",
            "when:\n  - event: x\nsample: 101%\nactions:\n  - endpoint: crm\n",
        ),
        (
            "workflows/c.yaml",
            "when:\n  - event: x\nsample_by: lead_id\nactions:\n  - endpoint: crm\n",
        ),
        (
            "workflows/d.yaml",
            "when:\n  - event: x\nlimit: {max: 0, per: lead_id, within: 3m}\nactions:\n  - endpoint: crm\n",
        ),
        (
            "workflows/e.yaml",
            "when:\n  - event: x\nlimit: {max: 9, per: lead_id, within: 3}\nactions:\n  - endpoint: crm\n",
        ),
        (
            "workflows/f.yaml",
            "when:\n  - event: x\nlimit: {max: 9, per: lead_id, within: 3m, every: 1}\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    let errors = config.errors().join("\n");
    for expected in [
        "workflows/a.yaml:3:9: invalid sample \"0.25\": write a percentage from 0% to 100% with at most two decimals, e.g. 25% or 12.5%",
        "workflows/b.yaml:3:9: invalid sample \"101%\"",
        "workflows/c.yaml:3:1: sample_by chooses which events a sample takes, but this workflow has no sample",
        "workflows/d.yaml:3:14: limit.max must be from 1 to 1000 (firings within the period), got 0",
        "workflows/e.yaml:3:39: invalid duration \"3\"",
        "workflows/f.yaml:3:",
    ] {
        assert!(errors.contains(expected), "{expected}\nnot in:\n{errors}");
    }
    assert!(errors.contains("every"), "{errors}");
}

fn limited_files(url: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "adaptors/lead.yaml",
            "fields:\n  - {from: lead_id, to: lead_id}\n  - {from: n, to: n}\n".to_string(),
        ),
        (
            "endpoints/crm.yaml",
            format!("url: {url}\nadaptor: lead\ntimeout: 5s\n"),
        ),
        (
            "workflows/touch.yaml",
            "when:\n  - event: lead.touched\nlimit: {max: 9, per: lead_id, within: 3m}\nactions:\n  - endpoint: crm\n"
                .to_string(),
        ),
    ]
}

fn config_of(files: &[(&'static str, String)]) -> ConfigDir {
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
    ConfigDir::new(&borrowed)
}

#[test]
fn render_and_test_explain_sample_and_limit() {
    let config = ConfigDir::new(&[
        (
            "endpoints/crm.yaml",
            "url: https://crm.example.com/x\nmethod: GET\n",
        ),
        (
            "workflows/sampled.yaml",
            "when:\n  - event: call.disposition\nsample: 25%\nsample_by: lead_id\nlimit: {max: 9, per: lead_id, within: 3m}\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    let lead_in = (0..)
        .map(|i| format!("{i}"))
        .find(|v| bucket("sampled", v) < 2500)
        .unwrap();
    let lead_out = (0..)
        .map(|i| format!("{i}"))
        .find(|v| bucket("sampled", v) >= 2500)
        .unwrap();
    let shown = |v: &str| {
        let b = bucket("sampled", v);
        let text = format!("{}.{:02}", b / 100, b % 100);
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    let render = |lead: &str| {
        let file = config.path().join(format!("event-{lead}.json"));
        std::fs::write(
            &file,
            json!({"type": "call.disposition", "data": {"lead_id": lead}}).to_string(),
        )
        .unwrap();
        let out = cli()
            .args(["render", "--config"])
            .arg(config.path())
            .arg("--event")
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let text = render(&lead_in);
    assert!(
        text.contains(&format!(
            "sampled (lead_id {lead_in} → {} < 25%)",
            shown(&lead_in)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "limit: at most 9 firings per lead_id {lead_in} in 3m (counted when served)"
        )),
        "{text}"
    );
    assert!(text.contains("requests: 1"), "{text}");
    let text = render(&lead_out);
    assert!(
        text.contains(&format!(
            "not sampled (lead_id {lead_out} → {} ≥ 25%)",
            shown(&lead_out)
        )),
        "{text}"
    );
    assert!(text.contains("requests: 0"), "{text}");

    // `switchboard test`: a test expecting the workflow for an event the sample leaves out
    // fails and says why; one expecting nothing passes.
    std::fs::write(
        config.path().join("workflows/sampled.test.yaml"),
        format!(
            "tests:\n  - name: left out\n    event: {{type: call.disposition, data: {{lead_id: \"{lead_out}\"}}}}\n    expect: {{matched: []}}\n  - name: expected in\n    event: {{type: call.disposition, data: {{lead_id: \"{lead_out}\"}}}}\n    expect: {{matched: [sampled]}}\n"
        ),
    )
    .unwrap();
    let out = cli()
        .args(["test", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("2 tests: 1 passed, 1 failed"), "{text}");
    assert!(
        text.contains(&format!(
            "sampled did not match: not sampled (lead_id {lead_out} →"
        )),
        "{text}"
    );
}

/// Posts one `lead.touched` event for `lead`; panics unless it is accepted.
async fn touch(url: &str, lead: &str, n: usize) {
    let body = json!({"type": "lead.touched", "data": {"lead_id": lead, "n": n}});
    let (status, answer) = post(&format!("{url}/events"), &body.to_string(), &[]).await;
    assert_eq!(status, 202, "{answer}");
}

async fn entries(url: &str, filter: &str) -> Vec<Value> {
    let (status, text) = get(&format!("{url}/api/logs?limit=1000&{filter}"), &[]).await;
    assert_eq!(status, 200, "{text}");
    let page: Value = serde_json::from_str(&text).unwrap();
    page["entries"].as_array().unwrap().clone()
}

/// The leads the receiver got, in order.
fn leads(rx: &Receiver) -> Vec<String> {
    rx.requests()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            body["lead_id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The tenth event of lead 812 within 3 minutes is skipped, logged once with the reason;
/// lead 813's is delivered; after a kill -9 the count holds (`extra`: the store flags).
async fn the_tenth_firing_is_skipped_and_the_count_survives_a_kill(
    data: &std::path::Path,
    extra: &[&str],
) {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config_of(&limited_files(&rx.url("/leads")));
    let serve = Serve::start(config.path(), data, extra).await;
    for n in 0..10 {
        touch(&serve.url, "812", n).await;
    }
    touch(&serve.url, "813", 10).await;
    seen(&rx, 10).await;
    let skipped = entries(&serve.url, "outcome=skipped").await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["workflow"], "touch");
    assert_eq!(skipped[0]["endpoint"], "crm");
    assert_eq!(skipped[0]["keys"]["lead_id"], "812");
    assert_eq!(skipped[0]["error"]["kind"], "limit");
    assert_eq!(
        skipped[0]["error"]["message"],
        "limit: 9 firings for lead_id 812 in the last 3m"
    );
    // Found by the lead, like every entry of it.
    let of_812 = entries(&serve.url, "search=812").await;
    assert_eq!(of_812.len(), 10, "nine delivered, one skipped");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = leads(&rx);
    assert_eq!(got.iter().filter(|l| *l == "812").count(), 9, "{got:?}");
    assert_eq!(got.iter().filter(|l| *l == "813").count(), 1, "{got:?}");
    serve.kill();

    let serve = Serve::start(config.path(), data, extra).await;
    touch(&serve.url, "812", 11).await;
    touch(&serve.url, "813", 12).await;
    seen(&rx, 11).await;
    let skipped = entries(&serve.url, "outcome=skipped").await;
    assert_eq!(skipped.len(), 2, "the count outlived the kill: {skipped:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = leads(&rx);
    assert_eq!(got.iter().filter(|l| *l == "812").count(), 9, "{got:?}");
    assert_eq!(got.iter().filter(|l| *l == "813").count(), 2, "{got:?}");
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_skips_the_tenth_firing_and_keeps_its_count_across_a_kill_on_sled() {
    let data = tempfile::tempdir().unwrap();
    the_tenth_firing_is_skipped_and_the_count_survives_a_kill(data.path(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_skips_the_tenth_firing_and_keeps_its_count_across_a_kill_on_postgres() {
    let Some(pg) = postgres_server::Postgres::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    the_tenth_firing_is_skipped_and_the_count_survives_a_kill(
        data.path(),
        &["--store", &pg.url, "--node", "node-a"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_delivers_the_sampled_share_and_the_same_leads_after_a_restart() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = ConfigDir::new(&[
        (
            "adaptors/lead.yaml",
            "fields:\n  - {from: lead_id, to: lead_id}\n",
        ),
        (
            "endpoints/crm.yaml",
            &format!("url: {}\nadaptor: lead\n", rx.url("/leads")),
        ),
        (
            "workflows/half.yaml",
            "when:\n  - event: lead.touched\nsample: 50%\nsample_by: lead_id\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    let expected: BTreeSet<String> = (0..200)
        .map(|i| format!("L{i}"))
        .filter(|l| bucket("half", l) < 5000)
        .collect();
    assert!((70..130).contains(&expected.len()), "{}", expected.len());
    let data = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let serve = Serve::start(config.path(), data.path(), &[]).await;
        // New event ids each round: only the leads decide.
        let batch: Vec<Value> = (0..200)
            .map(|i| json!({"type": "lead.touched", "id": format!("r{round}-{i}"), "data": {"lead_id": format!("L{i}")}}))
            .collect();
        let (status, answer) = post(
            &format!("{}/events", serve.url),
            &Value::Array(batch).to_string(),
            &[],
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        seen(&rx, expected.len() * (round + 1)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let got = leads(&rx);
        assert_eq!(got.len(), expected.len() * (round + 1));
        let this_round: BTreeSet<String> = got[expected.len() * round..].iter().cloned().collect();
        assert_eq!(this_round, expected, "round {round}");
        serve.stop();
    }
}

/// A receiver that posts a new event for the same lead back into switchboard on every
/// request it gets: without a limit, switchboard and it would call each other forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_stops_a_receiver_that_posts_back_on_every_delivery() {
    use axum::routing::post as route_post;
    let target: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let calls: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
    let (t, c) = (target.clone(), calls.clone());
    let app = axum::Router::new().route(
        "/echo",
        route_post(move |body: axum::body::Bytes| {
            let (t, c) = (t.clone(), c.clone());
            async move {
                let got: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                c.lock().unwrap().push(got.clone());
                let url = t.lock().unwrap().clone();
                if let Some(url) = url {
                    tokio::spawn(async move {
                        let back =
                            json!({"type": "lead.updated", "data": {"lead_id": got["lead_id"]}});
                        let _ = post(&format!("{url}/events"), &back.to_string(), &[]).await;
                    });
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let config = ConfigDir::new(&[
        (
            "adaptors/lead.yaml",
            "fields:\n  - {from: lead_id, to: lead_id}\n",
        ),
        (
            "endpoints/crm.yaml",
            &format!("url: http://{addr}/echo\nadaptor: lead\n"),
        ),
        (
            "workflows/sync.yaml",
            "when:\n  - event: lead.updated\nlimit: {max: 5, per: lead_id, within: 1h}\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    *target.lock().unwrap() = Some(serve.url.clone());
    let first = json!({"type": "lead.updated", "data": {"lead_id": "812"}});
    let (status, _) = post(&format!("{}/events", serve.url), &first.to_string(), &[]).await;
    assert_eq!(status, 202);
    // The loop runs until the limit stops it: five deliveries, one skipped event.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let skipped = entries(&serve.url, "outcome=skipped").await;
        if !skipped.is_empty() {
            assert_eq!(
                skipped[0]["error"]["message"],
                "limit: 5 firings for lead_id 812 in the last 1h"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the loop was not stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And it stays stopped.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(calls.lock().unwrap().len(), 5);
    assert_eq!(entries(&serve.url, "outcome=skipped").await.len(), 1);
    assert_eq!(entries(&serve.url, "outcome=delivered").await.len(), 5);
    serve.stop();
}

/// `switchboard test` with `fired:`: at `max` firings the workflow is stopped, below it it
/// fires; `fired:` for a workflow without a limit is a located error.
#[test]
fn a_test_says_how_many_firings_were_counted_with_fired() {
    let files = limited_files("https://crm.example.com/leads");
    let config = config_of(&files);
    let test_file = config.path().join("workflows/touch.test.yaml");
    std::fs::write(
        &test_file,
        "tests:\n  - name: the tenth is skipped\n    event: {type: lead.touched, data: {lead_id: \"812\"}}\n    fired: {touch: 9}\n    expect: {matched: [], no_requests_to: [crm]}\n  - name: the ninth fires\n    event: {type: lead.touched, data: {lead_id: \"812\"}}\n    fired: {touch: 8}\n    expect: {matched: [touch], requests: [{endpoint: crm}]}\n  - name: a wrong expectation shows the reason\n    event: {type: lead.touched, data: {lead_id: \"812\"}}\n    fired: {touch: 12}\n    expect: {matched: [touch]}\n",
    )
    .unwrap();
    let out = cli()
        .args(["test", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("3 tests: 2 passed, 1 failed"), "{text}");
    assert!(
        text.contains("touch did not match: stopped: limit: 12 firings for lead_id 812 in the last 3m (fired: 12 given by the test)"),
        "{text}"
    );
    std::fs::write(
        &test_file,
        "tests:\n  - name: no such workflow\n    event: {type: lead.touched, data: {lead_id: \"812\"}}\n    fired: {tuch: 9}\n    expect: {matched: []}\n",
    )
    .unwrap();
    let out = cli()
        .args(["test", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("workflows/touch.test.yaml:4:") && text.contains("unknown workflow \"tuch\""),
        "{text}"
    );
}
