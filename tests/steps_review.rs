//! A break-it pass over steps (a review): each test names the behaviour that should hold.
//! A CRM written here finds a contact by phone (it can answer 500 a few times first, and
//! be slow), updates it, or creates one; the workflow looks the caller up (`find`), then
//! updates the contact found or creates one.

mod common;
#[path = "common/postgres.rs"]
mod postgres_server;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
use serde_json::{Value, json};

use common::ConfigDir;
use common::cli;
use common::process::Serve;
use common::server::{get, post};

#[derive(Default)]
struct Crm {
    /// The id a search finds.
    id: Mutex<String>,
    /// How many searches answer 500 before they answer.
    failures: AtomicUsize,
    /// How long a search takes, in ms.
    slow_ms: AtomicU64,
    /// (method, path) of every request.
    hits: Mutex<Vec<(String, String)>>,
}

struct CrmServer {
    url: String,
    crm: Arc<Crm>,
}

impl CrmServer {
    async fn start(id: &str) -> CrmServer {
        let crm = Arc::new(Crm {
            id: Mutex::new(id.to_string()),
            ..Crm::default()
        });
        let (a, b, c) = (crm.clone(), crm.clone(), crm.clone());
        let app = axum::Router::new()
            .route(
                "/search",
                axum::routing::get(move || {
                    let crm = a.clone();
                    async move {
                        crm.hits
                            .lock()
                            .unwrap()
                            .push(("GET".into(), "/search".into()));
                        let slow = crm.slow_ms.load(Ordering::SeqCst);
                        if slow > 0 {
                            tokio::time::sleep(Duration::from_millis(slow)).await;
                        }
                        if crm
                            .failures
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok()
                        {
                            return (StatusCode::INTERNAL_SERVER_ERROR, "down".to_string());
                        }
                        let id = crm.id.lock().unwrap().clone();
                        (StatusCode::OK, json!({"results": [{"id": id}]}).to_string())
                    }
                }),
            )
            .route(
                "/contacts/{id}",
                axum::routing::patch(move |UrlPath(id): UrlPath<String>| {
                    let crm = b.clone();
                    async move {
                        crm.hits
                            .lock()
                            .unwrap()
                            .push(("PATCH".into(), format!("/contacts/{id}")));
                        (StatusCode::OK, "{}".to_string())
                    }
                }),
            )
            .route(
                "/contacts",
                axum::routing::post(move || {
                    let crm = c.clone();
                    async move {
                        crm.hits
                            .lock()
                            .unwrap()
                            .push(("POST".into(), "/contacts".into()));
                        (StatusCode::CREATED, "{}".to_string())
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        CrmServer { url, crm }
    }

    fn hits(&self) -> Vec<(String, String)> {
        self.crm.hits.lock().unwrap().clone()
    }

    /// Waits up to `secs` for `n` requests matching `test`; returns what arrived.
    async fn wait_for(
        &self,
        n: usize,
        secs: u64,
        test: impl Fn(&(String, String)) -> bool,
    ) -> Vec<(String, String)> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let found: Vec<_> = self.hits().into_iter().filter(|h| test(h)).collect();
            if found.len() >= n || Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// find (a search that retries once after `retry`), then update the contact found, or
/// create one.
fn config(crm: &str, retry: &str, find: &str) -> ConfigDir {
    config_delayed(crm, retry, find, "0s")
}

/// As [`config`], the followers sent no earlier than `delay` after the event.
fn config_delayed(crm: &str, retry: &str, find: &str, delay: &str) -> ConfigDir {
    let search = format!(
        "url: \"{crm}/search?phone={{{{ phone_number }}}}\"\nmethod: GET\nresponse:\n  format: json\n  capture:\n    contact_id: $.results[0].id\nretry:\n  schedule: [{retry}]\n"
    );
    let update = format!(
        "url: \"{crm}/contacts/{{{{ steps.{find}.contact_id }}}}\"\nmethod: PATCH\nadaptor: contact\n"
    );
    let create =
        format!("url: \"{crm}/contacts\"\nmethod: POST\nadaptor: contact\nsuccess_codes: [201]\n");
    let workflow = format!(
        r#"when:
  - event: call.ended
actions:
  - step: {find}
    endpoint: crm-search
  - endpoint: crm-update
    after: {find}
    delay: {delay}
    when:
      - field: "@steps.{find}.contact_id"
        exists: true
  - endpoint: crm-create
    after: {find}
    delay: {delay}
    when:
      - field: "@steps.{find}.contact_id"
        exists: false
"#
    );
    ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - from: phone_number\n    to: phone\n",
        ),
        ("endpoints/crm-search.yaml", &search),
        ("endpoints/crm-update.yaml", &update),
        ("endpoints/crm-create.yaml", &create),
        ("workflows/call-to-crm.yaml", &workflow),
    ])
}

/// Posts an event; the ids of its deliveries (find, update, create).
async fn send_event(serve: &Serve, id: &str) -> Vec<String> {
    let body = json!({"type": "call.ended", "id": id, "data": {"phone_number": "5550001"}});
    let (status, answer) = post(&format!("{}/events", serve.url), &body.to_string(), &[]).await;
    assert_eq!(status, 202, "{answer}");
    answer["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

async fn entries(serve: &Serve) -> Vec<Value> {
    let (status, text) = get(&format!("{}/api/logs?limit=1000", serve.url), &[]).await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let mut entries = body["entries"].as_array().cloned().unwrap_or_default();
    entries.reverse();
    entries
}

async fn wait_entries(serve: &Serve, n: usize, test: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found: Vec<Value> = entries(serve)
            .await
            .into_iter()
            .filter(|e| test(e))
            .collect();
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {n} entries, the log holds {:#?}",
            entries(serve).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replaying a step that still waits for its leader (the lookup is retrying) must not
/// run it before the leader is delivered, nor lose it: once the lookup is delivered, the
/// update goes with the id it found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_waiting_follower_alone_still_sends_it_once_its_leader_is_delivered() {
    replay_a_waiting_follower(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_waiting_follower_alone_on_postgresql_still_sends_it_once_its_leader_is_delivered()
 {
    let Some(pg) = postgres_server::Postgres::start() else {
        return;
    };
    replay_a_waiting_follower(&["--store", &pg.url, "--node", "n1"]).await;
}

async fn replay_a_waiting_follower(store: &[&str]) {
    let crm = CrmServer::start("901").await;
    crm.crm.failures.store(1, Ordering::SeqCst);
    let config = config(&crm.url, "3s", "find");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), store).await;
    let ids = send_event(&serve, "known").await;
    wait_entries(&serve, 1, |e| e["outcome"] == "retrying").await;
    // The lookup retries in 3 s; the update waits for it. Replay the update alone.
    let (status, answer) = post(
        &format!("{}/api/deliveries/{}/replay", serve.url, ids[1]),
        "",
        &[],
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let patches = crm.wait_for(1, 10, |h| h.0 == "PATCH").await;
    let log = entries(&serve).await;
    let update: Vec<(&Value, &Value)> = log
        .iter()
        .filter(|e| e["step"] == "crm-update")
        .map(|e| (&e["outcome"], &e["error"]["message"]))
        .collect();
    assert_eq!(
        patches,
        [("PATCH".to_string(), "/contacts/901".to_string())],
        "the update was lost; its log: {update:?}"
    );
    serve.stop();
}

/// `replay --with-followers FIND UPDATE` through a running server (the remote path) must
/// do what it does locally: the update waits for the lookup's new attempt and is sent with
/// what that one captures (902), not with the lookup's earlier capture (901).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_replay_with_followers_of_a_leader_and_its_follower_waits_for_the_new_capture() {
    let crm = CrmServer::start("901").await;
    let config = config(&crm.url, "1s", "find");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let ids = send_event(&serve, "known").await;
    crm.wait_for(1, 20, |h| h.0 == "PATCH").await;
    wait_entries(&serve, 3, |_| true).await;
    // The CRM now knows the caller as 902, and answers searches slowly.
    *crm.crm.id.lock().unwrap() = "902".into();
    crm.crm.slow_ms.store(1000, Ordering::SeqCst);
    let out = cli()
        .args(["replay", "--config"])
        .arg(config.path())
        .arg("--data")
        .arg(data.path())
        .args(["--with-followers", "--wait", "10s", &ids[0], &ids[1]])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("through the server"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crm.wait_for(2, 10, |h| h.0 == "PATCH").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let patches: Vec<String> = crm
        .hits()
        .into_iter()
        .filter(|h| h.0 == "PATCH")
        .map(|h| h.1)
        .collect();
    assert_eq!(patches, ["/contacts/901", "/contacts/902"], "{stdout}");
    serve.stop();
}

/// A reload that renames a step while its followers wait for it (the lookup is retrying)
/// must not change what they do: the update still goes with the id the lookup finds, and
/// no contact is created twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_renames_a_step_while_its_followers_wait_keeps_their_branch() {
    let crm = CrmServer::start("901").await;
    crm.crm.failures.store(1, Ordering::SeqCst);
    let config = config(&crm.url, "3s", "find");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    send_event(&serve, "known").await;
    wait_entries(&serve, 1, |e| e["outcome"] == "retrying").await;
    let renamed = config_delayed(&crm.url, "3s", "lookup", "0s");
    for file in ["endpoints/crm-update.yaml", "workflows/call-to-crm.yaml"] {
        std::fs::copy(renamed.path().join(file), config.path().join(file)).unwrap();
    }
    serve.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !serve
        .log()
        .iter()
        .any(|l| l.contains("configuration reloaded"))
    {
        assert!(Instant::now() < deadline, "{:#?}", serve.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_entries(&serve, 3, |e| e["outcome"] != "retrying").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent: Vec<(String, String)> = crm.hits().into_iter().filter(|h| h.0 != "GET").collect();
    assert_eq!(
        sent,
        [("PATCH".to_string(), "/contacts/901".to_string())],
        "the known caller was created again"
    );
    serve.stop();
}

/// A follower still waiting for its `delay` when the connect log's older entries are
/// purged (here a restart with `--retention 1s`) keeps what its delivered leader
/// captured: the event and both deliveries are still stored, and the update must go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_a_delivered_leaders_entries_does_not_skip_its_waiting_follower() {
    let crm = CrmServer::start("901").await;
    let config = config_delayed(&crm.url, "1s", "find", "6s");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    send_event(&serve, "known").await;
    wait_entries(&serve, 1, |e| e["outcome"] == "delivered").await;
    serve.stop();
    common::wait_released(data.path());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let serve = Serve::start(config.path(), data.path(), &["--retention", "1s"]).await;
    let patches = crm.wait_for(1, 15, |h| h.0 == "PATCH").await;
    let log = entries(&serve).await;
    let update: Vec<(&Value, &Value)> = log
        .iter()
        .filter(|e| e["step"] == "crm-update")
        .map(|e| (&e["outcome"], &e["error"]["message"]))
        .collect();
    assert_eq!(
        patches,
        [("PATCH".to_string(), "/contacts/901".to_string())],
        "the update's log: {update:?}"
    );
    serve.stop();
}

/// Values from the environment are masked in the connect log, but a value a step
/// captured is data the next step sends: a contact id that happens to contain one
/// (here the account name, `acme`, in `acme-901`) must reach the follower whole, not as
/// `***-901` (the update went to another contact).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_value_containing_an_environment_value_reaches_the_follower_whole() {
    let crm = CrmServer::start("acme-901").await;
    let config = config(&crm.url, "1s", "find");
    let search = std::fs::read_to_string(config.path().join("endpoints/crm-search.yaml")).unwrap();
    std::fs::write(
        config.path().join("endpoints/crm-search.yaml"),
        format!("{search}headers:\n  X-Account: ${{CRM_ACCOUNT}}\n"),
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut command = cli();
    command.env("CRM_ACCOUNT", "acme");
    let serve = Serve::start_with(command, config.path(), data.path(), &[]).await;
    send_event(&serve, "known").await;
    let patches = crm.wait_for(1, 20, |h| h.0 != "GET").await;
    assert_eq!(
        patches,
        [("PATCH".to_string(), "/contacts/acme-901".to_string())]
    );
    serve.stop();
}

/// `@steps.STEP.status` is the HTTP status, so a capture named `status` (a common field
/// in CRM answers) is silently replaced for the steps after it: the configuration must say
/// so when it is loaded.
#[test]
fn a_capture_named_status_on_a_step_with_followers_is_reported_at_load() {
    let config = ConfigDir::new(&[
        (
            "endpoints/a.yaml",
            "url: https://a.example.com\nmethod: GET\nresponse:\n  format: json\n  capture:\n    status: $.state\n",
        ),
        (
            "endpoints/b.yaml",
            "url: \"https://b.example.com/{{ steps.find.status }}\"\nmethod: GET\n",
        ),
        (
            "workflows/w.yaml",
            "when:\n  - event: x\nactions:\n  - step: find\n    endpoint: a\n  - endpoint: b\n    after: find\n",
        ),
    ]);
    let out = cli()
        .args(["validate", "--strict", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && text.contains("status"),
        "validate --strict accepts a capture the steps after it cannot read: {text}"
    );
}

/// `render --capture` for a step the configuration does not have (a typo) must be
/// refused, as `switchboard test` refuses such a step in `steps:` — not silently shown
/// as if the step captured nothing.
#[test]
fn render_capture_for_an_unknown_step_is_an_error() {
    let config = config("https://crm.example.com", "1s", "find");
    let event = config.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"type": "call.ended", "data": {"phone_number": "5550001"}}"#,
    )
    .unwrap();
    let out = cli()
        .args(["render", "--config"])
        .arg(config.path())
        .arg("--event")
        .arg(&event)
        .args(["--capture", "fnid.contact_id=901"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("fnid"), "{stderr}");
}

/// `replay --with-followers ID` through a running server reports (and waits for) the
/// steps it sends again, as it does without a server: each one's line, with its outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_replay_with_followers_reports_the_followers_like_a_local_one() {
    let crm = CrmServer::start("901").await;
    let config = config(&crm.url, "1s", "find");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let ids = send_event(&serve, "known").await;
    wait_entries(&serve, 3, |_| true).await;
    let out = cli()
        .args(["replay", "--config"])
        .arg(config.path())
        .arg("--data")
        .arg(data.path())
        .args(["--with-followers", "--wait", "10s", &ids[0]])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("through the server"), "{stdout}");
    for id in &ids {
        assert!(
            stdout.contains(id.as_str()),
            "{id} is not reported: {stdout}"
        );
    }
    serve.stop();
}

/// `send` accepts the event and settles the whole chain: the lookup, the update sent with
/// what it captured, the create skipped; exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_settles_a_chain_and_reports_every_step() {
    let crm = CrmServer::start("901").await;
    crm.crm.failures.store(1, Ordering::SeqCst);
    let config = config(&crm.url, "1s", "find");
    let data = tempfile::tempdir().unwrap();
    let event = config.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"type": "call.ended", "id": "s1", "data": {"phone_number": "5550001"}}"#,
    )
    .unwrap();
    let cfg = config.path().to_path_buf();
    let dat = data.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        cli()
            .args(["send", "--config"])
            .arg(&cfg)
            .arg("--data")
            .arg(&dat)
            .arg("--event")
            .arg(&event)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].contains("crm-search: delivered after 2 attempts"),
        "{stdout}"
    );
    assert!(
        lines[1].contains("crm-update: delivered after 1 attempt"),
        "{stdout}"
    );
    assert!(lines[2].contains("crm-create: skipped"), "{stdout}");
    let sent: Vec<(String, String)> = crm.hits().into_iter().filter(|h| h.0 != "GET").collect();
    assert_eq!(sent, [("PATCH".to_string(), "/contacts/901".to_string())]);
}

/// `send --wait 2s` with a lookup whose retry is 20 s away returns at once, the lookup
/// retrying and its followers reported waiting (left for `serve`); exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_returns_with_followers_waiting_when_their_leader_retries_beyond_wait() {
    let crm = CrmServer::start("901").await;
    crm.crm.failures.store(1, Ordering::SeqCst);
    let config = config(&crm.url, "20s", "find");
    let data = tempfile::tempdir().unwrap();
    let event = config.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"type": "call.ended", "id": "s1", "data": {"phone_number": "5550001"}}"#,
    )
    .unwrap();
    let cfg = config.path().to_path_buf();
    let dat = data.path().to_path_buf();
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        cli()
            .args(["send", "--wait", "2s", "--config"])
            .arg(&cfg)
            .arg("--data")
            .arg(&dat)
            .arg("--event")
            .arg(&event)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(started.elapsed() < Duration::from_secs(8), "{stdout}");
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].contains("crm-search: retrying after 1 attempt"),
        "{stdout}"
    );
    assert!(
        lines[1].contains("waiting for the step it runs after"),
        "{stdout}"
    );
    assert!(
        lines[2].contains("waiting for the step it runs after"),
        "{stdout}"
    );
}

/// A step's default name is its endpoint's, typically with a dash (`crm-search`): the
/// documented `{{ steps.STEP.NAME }}` would read `steps.crm - search.id`, a subtraction
/// that fails every delivery at its first attempt (`invalid operation`): it reads the
/// step `crm-search` instead.
#[test]
fn a_template_reading_a_dashed_step_name_with_dots_reads_that_step() {
    let config = ConfigDir::new(&[
        (
            "endpoints/crm-search.yaml",
            "url: https://a.example.com\nmethod: GET\nresponse:\n  format: json\n  capture:\n    id: $.id\n",
        ),
        (
            "endpoints/b.yaml",
            "url: \"https://b.example.com/{{ steps.crm-search.id }}\"\nmethod: GET\n",
        ),
        (
            "workflows/w.yaml",
            "when:\n  - event: x\nactions:\n  - endpoint: crm-search\n  - endpoint: b\n    after: crm-search\n",
        ),
    ]);
    let event = config.path().join("e.json");
    std::fs::write(&event, r#"{"type": "x", "data": {}}"#).unwrap();
    let out = cli()
        .args([
            "render",
            "--json",
            "--capture",
            "crm-search.id=7",
            "--config",
        ])
        .arg(config.path())
        .arg("--event")
        .arg(&event)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        run["requests"][1]["url"], "https://b.example.com/7",
        "{text}"
    );
}

/// A kill -9 while the lookup's attempt is in flight (before its record): after the
/// restart the lookup is sent again (at least once) and the update goes once, with its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_during_the_leaders_attempt_still_sends_the_follower_once() {
    let crm = CrmServer::start("901").await;
    crm.crm.slow_ms.store(2000, Ordering::SeqCst);
    let config = config(&crm.url, "1s", "find");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    send_event(&serve, "known").await;
    crm.wait_for(1, 10, |h| h.0 == "GET").await;
    serve.kill();
    crm.crm.slow_ms.store(0, Ordering::SeqCst);
    common::wait_released(data.path());
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    crm.wait_for(1, 40, |h| h.0 == "PATCH").await;
    wait_entries(&serve, 1, |e| e["step"] == "crm-create").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent: Vec<(String, String)> = crm.hits().into_iter().filter(|h| h.0 != "GET").collect();
    assert_eq!(sent, [("PATCH".to_string(), "/contacts/901".to_string())]);
    serve.stop();
}

fn errors(workflow: &str) -> Vec<String> {
    ConfigDir::new(&[
        (
            "endpoints/a.yaml",
            "url: https://a.example.com\nmethod: GET\nresponse:\n  format: json\n  capture:\n    id: $.id\n",
        ),
        (
            "endpoints/b.yaml",
            "url: \"https://b.example.com/{{ steps.find.id }}\"\nmethod: GET\n",
        ),
        ("workflows/w.yaml", workflow),
    ])
    .errors()
}

/// A workflow's own `when` is tested when the event is accepted, before any step ran:
/// `@steps` there can never be known, and must be refused like one outside a chain.
#[test]
fn a_workflow_when_that_reads_steps_is_a_load_error() {
    let errors = errors(
        r#"when:
  - event: x
  - field: "@steps.find.id"
    exists: false
actions:
  - step: find
    endpoint: a
  - endpoint: b
    after: find
"#,
    );
    assert_eq!(errors.len(), 1, "accepted: {errors:?}");
    assert!(
        errors[0].starts_with("workflows/w.yaml:3:12: "),
        "{errors:?}"
    );
}

/// A step name with a dot can never be read (`@steps.find.me.id` reads step `find`), nor
/// given to `render --capture`: it must be refused where it is written.
#[test]
fn a_step_name_with_a_dot_is_a_load_error() {
    let errors = errors(
        r#"when:
  - event: x
actions:
  - step: find.me
    endpoint: a
  - endpoint: b
    after: find.me
"#,
    );
    assert_eq!(errors.len(), 1, "accepted: {errors:?}");
    assert!(
        errors[0].starts_with("workflows/w.yaml:4:11: "),
        "{errors:?}"
    );
}

/// An empty step name names nothing `after` or `@steps` can use.
#[test]
fn an_empty_step_name_is_a_load_error() {
    let errors = errors(
        r#"when:
  - event: x
actions:
  - step: ""
    endpoint: a
"#,
    );
    assert_eq!(errors.len(), 1, "accepted: {errors:?}");
    assert!(
        errors[0].starts_with("workflows/w.yaml:4:11: "),
        "{errors:?}"
    );
}
