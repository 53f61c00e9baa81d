//! Steps through the real binary: a CRM written here (axum on 127.0.0.1:0) that finds
//! contacts by phone, updates and creates them. A workflow looks the caller up (`find`),
//! then updates the contact it found or creates one, on `@steps.find.contact_id`. The
//! found branch sends the update with the found id and the other branch is logged once as
//! skipped; a lookup that fails after its retries skips both followers with the reason; a
//! kill -9 between the lookup and its follower loses nothing; the same on PostgreSQL;
//! `render --capture` and `switchboard test` show both branches; and the load errors.

mod common;
#[path = "common/postgres.rs"]
mod postgres_server;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, Query};
use axum::http::StatusCode;
use serde_json::{Value, json};

use common::ConfigDir;
use common::cli;
use common::process::Serve;
use common::server::{get, post};

/// One request the CRM received: method, path, body.
type Hit = (String, String, String);

#[derive(Default)]
struct Crm {
    /// Phone → contact id.
    contacts: Mutex<HashMap<String, String>>,
    hits: Mutex<Vec<Hit>>,
    /// Searches answer 500.
    broken: bool,
}

struct CrmServer {
    url: String,
    crm: Arc<Crm>,
}

impl CrmServer {
    async fn start(contacts: &[(&str, &str)], broken: bool) -> CrmServer {
        let crm = Arc::new(Crm {
            contacts: Mutex::new(
                contacts
                    .iter()
                    .map(|(p, id)| (p.to_string(), id.to_string()))
                    .collect(),
            ),
            broken,
            ..Crm::default()
        });
        let (a, b, c) = (crm.clone(), crm.clone(), crm.clone());
        let app = axum::Router::new()
            .route(
                "/search",
                axum::routing::get(move |Query(q): Query<HashMap<String, String>>| {
                    let crm = a.clone();
                    async move {
                        let phone = q.get("phone").cloned().unwrap_or_default();
                        crm.hits.lock().unwrap().push((
                            "GET".into(),
                            format!("/search?phone={phone}"),
                            String::new(),
                        ));
                        if crm.broken {
                            return (
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "search is down".to_string(),
                            );
                        }
                        let found = crm.contacts.lock().unwrap().get(&phone).cloned();
                        let results: Vec<Value> =
                            found.into_iter().map(|id| json!({"id": id})).collect();
                        (StatusCode::OK, json!({"results": results}).to_string())
                    }
                }),
            )
            .route(
                "/contacts/{id}",
                axum::routing::patch(move |UrlPath(id): UrlPath<String>, body: String| {
                    let crm = b.clone();
                    async move {
                        crm.hits.lock().unwrap().push((
                            "PATCH".into(),
                            format!("/contacts/{id}"),
                            body,
                        ));
                        (StatusCode::OK, json!({"id": id}).to_string())
                    }
                }),
            )
            .route(
                "/contacts",
                axum::routing::post(move |body: String| {
                    let crm = c.clone();
                    async move {
                        let mut hits = crm.hits.lock().unwrap();
                        hits.push(("POST".into(), "/contacts".into(), body));
                        let id = format!("new-{}", hits.len());
                        (StatusCode::CREATED, json!({"id": id}).to_string())
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

    fn hits(&self) -> Vec<Hit> {
        self.crm.hits.lock().unwrap().clone()
    }

    /// Waits until `n` requests matching `test` arrived (at most 20 s).
    async fn wait_for(&self, n: usize, test: impl Fn(&Hit) -> bool) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found: Vec<Hit> = self.hits().into_iter().filter(|h| test(h)).collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {n} requests, got {:?}",
                self.hits()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The configuration: find by phone, then update the contact found or create one. The
/// follower waits `delay` (from the event) at least, and the lookup retries after 1 s once.
fn config(crm: &str, delay: &str) -> ConfigDir {
    let search = format!(
        r#"url: "{crm}/search?phone={{{{ phone_number }}}}"
method: GET
response:
  format: json
  capture:
    contact_id: $.results[0].id
retry:
  schedule: [1s]
"#
    );
    let update = format!(
        r#"url: "{crm}/contacts/{{{{ steps.find.contact_id }}}}"
method: PATCH
adaptor: contact
"#
    );
    let create = format!(
        r#"url: "{crm}/contacts"
method: POST
adaptor: contact
success_codes: [201]
"#
    );
    let delay_line = if delay.is_empty() {
        String::new()
    } else {
        format!("    delay: {delay}\n")
    };
    let workflow = format!(
        r#"when:
  - event: call.ended
actions:
  - step: find
    endpoint: crm-search
  - endpoint: crm-update
    after: find
{delay_line}    when:
      - field: "@steps.find.contact_id"
        exists: true
  - endpoint: crm-create
    after: find
{delay_line}    when:
      - field: "@steps.find.contact_id"
        exists: false
"#
    );
    ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - from: phone_number\n    to: phone\n  - from: status\n    to: status\n  - to: found_by\n    template: \"{{ steps.find.status }}\"\n",
        ),
        ("endpoints/crm-search.yaml", &search),
        ("endpoints/crm-update.yaml", &update),
        ("endpoints/crm-create.yaml", &create),
        ("workflows/call-to-crm.yaml", &workflow),
    ])
}

async fn send_event(serve: &Serve, id: &str, phone: &str) -> Value {
    let body =
        json!({"type": "call.ended", "id": id, "data": {"phone_number": phone, "status": "SALE"}});
    let (status, answer) = post(&format!("{}/events", serve.url), &body.to_string(), &[]).await;
    assert_eq!(status, 202, "{answer}");
    answer
}

/// Every connect log entry, oldest first.
async fn entries(serve: &Serve) -> Vec<Value> {
    let (status, text) = get(&format!("{}/api/logs?limit=1000", serve.url), &[]).await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let mut entries = body["entries"].as_array().cloned().unwrap_or_default();
    entries.reverse();
    entries
}

/// Waits until the log holds `n` entries matching `test`.
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

fn of_event<'a>(entries: &'a [Value], event: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["event_id"] == event).collect()
}

async fn found_updates_and_not_found_creates(store: &[&str]) {
    let crm = CrmServer::start(&[("5550001", "901")], false).await;
    let config = config(&crm.url, "");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), store).await;
    send_event(&serve, "known", "5550001").await;
    send_event(&serve, "stranger", "5550002").await;
    crm.wait_for(1, |h| h.0 == "PATCH").await;
    crm.wait_for(1, |h| h.0 == "POST").await;
    // Both skipped branches are logged too: 2 lookups, 1 update, 1 create, 2 skips.
    let all = wait_entries(&serve, 6, |_| true).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hits = crm.hits();
    let patches: Vec<&Hit> = hits.iter().filter(|h| h.0 == "PATCH").collect();
    let posts: Vec<&Hit> = hits.iter().filter(|h| h.0 == "POST").collect();
    assert_eq!(patches.len(), 1, "{hits:?}");
    assert_eq!(posts.len(), 1, "{hits:?}");
    assert_eq!(patches[0].1, "/contacts/901");
    let patch: Value = serde_json::from_str(&patches[0].2).unwrap();
    assert_eq!(
        patch,
        json!({"phone": "5550001", "status": "SALE", "found_by": "200"})
    );
    let post_body: Value = serde_json::from_str(&posts[0].2).unwrap();
    assert_eq!(post_body["phone"], "5550002");

    let known = of_event(&all, "known");
    let steps: Vec<(&str, &str, &str)> = known
        .iter()
        .map(|e| {
            (
                e["step"].as_str().unwrap_or(""),
                e["after"].as_str().unwrap_or(""),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(steps.contains(&("find", "", "delivered")), "{steps:?}");
    assert!(
        steps.contains(&("crm-update", "find", "delivered")),
        "{steps:?}"
    );
    assert!(
        steps.contains(&("crm-create", "find", "skipped")),
        "{steps:?}"
    );
    let lookup = known.iter().find(|e| e["step"] == "find").unwrap();
    assert_eq!(lookup["captured"], json!({"contact_id": "901"}));
    let skipped = known.iter().find(|e| e["outcome"] == "skipped").unwrap();
    assert_eq!(skipped["error"]["kind"], "step");
    let why = skipped["error"]["message"].as_str().unwrap();
    assert!(
        why.starts_with("`when` does not match: @steps.find.contact_id"),
        "{why}"
    );
    let stranger = of_event(&all, "stranger");
    let skipped = stranger.iter().find(|e| e["outcome"] == "skipped").unwrap();
    assert_eq!(skipped["step"], "crm-update");
    assert_eq!(stranger.len(), 3, "one entry each: {stranger:#?}");
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_found_contact_is_updated_with_its_id_and_an_unknown_caller_is_created() {
    found_updates_and_not_found_creates(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_on_postgresql_release_followers_in_the_record() {
    let Some(pg) = postgres_server::Postgres::start() else {
        return;
    };
    found_updates_and_not_found_creates(&["--store", &pg.url, "--node", "n1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_that_fails_after_its_retries_skips_its_followers_with_the_reason() {
    let crm = CrmServer::start(&[], true).await;
    let config = config(&crm.url, "");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    send_event(&serve, "down", "5550003").await;
    let skipped = wait_entries(&serve, 2, |e| e["outcome"] == "skipped").await;
    let all = entries(&serve).await;
    let outcomes: Vec<&str> = all.iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(
        outcomes,
        ["retrying", "failed", "skipped", "skipped"],
        "{all:#?}"
    );
    for entry in &skipped {
        assert_eq!(entry["error"]["kind"], "step");
        let why = entry["error"]["message"].as_str().unwrap();
        assert!(why.starts_with("step find failed: HTTP 500"), "{why}");
        assert!(why.contains("gave up after 2 attempts"), "{why}");
        assert!(entry["request"].is_null());
    }
    // Nothing was sent after the lookups, and nothing more is logged.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(entries(&serve).await.len(), 4);
    assert!(crm.hits().iter().all(|h| h.0 == "GET"));
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_still_goes_after_a_kill_9_between_its_lookup_and_itself() {
    let crm = CrmServer::start(&[("5550001", "901")], false).await;
    // The followers are due 3 s after the event: the kill lands between.
    let config = config(&crm.url, "3s");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    send_event(&serve, "known", "5550001").await;
    wait_entries(&serve, 1, |e| {
        e["step"] == "find" && e["outcome"] == "delivered"
    })
    .await;
    assert!(crm.hits().iter().all(|h| h.0 == "GET"));
    serve.kill();
    common::wait_released(data.path());
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let patches = crm.wait_for(1, |h| h.0 == "PATCH").await;
    assert_eq!(patches[0].1, "/contacts/901");
    wait_entries(&serve, 1, |e| {
        e["step"] == "crm-create" && e["outcome"] == "skipped"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits = crm.hits();
    assert_eq!(hits.iter().filter(|h| h.0 == "GET").count(), 1, "{hits:?}");
    assert_eq!(
        hits.iter().filter(|h| h.0 == "PATCH").count(),
        1,
        "{hits:?}"
    );
    assert_eq!(hits.iter().filter(|h| h.0 == "POST").count(), 0, "{hits:?}");
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_with_followers_runs_the_chain_again_and_without_it_only_the_step() {
    let crm = CrmServer::start(&[("5550001", "901")], false).await;
    let config = config(&crm.url, "");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let accepted = send_event(&serve, "known", "5550001").await;
    let find = accepted["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    crm.wait_for(1, |h| h.0 == "PATCH").await;
    wait_entries(&serve, 3, |_| true).await;
    // The CRM now knows the caller under another id.
    crm.crm
        .contacts
        .lock()
        .unwrap()
        .insert("5550001".into(), "902".into());
    let (status, answer) = post(
        &format!("{}/api/deliveries/{find}/replay", serve.url),
        "",
        &[],
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["followers"], json!([]));
    crm.wait_for(2, |h| h.0 == "GET").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(crm.hits().iter().filter(|h| h.0 == "PATCH").count(), 1);
    let (status, answer) = post(
        &format!(
            "{}/api/deliveries/{find}/replay?with_followers=true",
            serve.url
        ),
        "",
        &[],
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["followers"].as_array().unwrap().len(), 2);
    let patches = crm.wait_for(2, |h| h.0 == "PATCH").await;
    assert_eq!(patches[1].1, "/contacts/902");
    // The create branch is skipped again, once.
    wait_entries(&serve, 2, |e| {
        e["step"] == "crm-create" && e["outcome"] == "skipped"
    })
    .await;
    let (status, _) = post(
        &format!(
            "{}/api/deliveries/{find}/replay?with_followers=yes",
            serve.url
        ),
        "",
        &[],
    )
    .await;
    assert_eq!(status, 400);
    serve.stop();
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = cli().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn render_and_test_show_both_branches() {
    let config = config("https://crm.example.com", "");
    let dir = config.path().to_str().unwrap().to_string();
    let event = config.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"type": "call.ended", "id": "e1", "data": {"phone_number": "5550001", "status": "SALE"}}"#,
    )
    .unwrap();
    let event = event.to_str().unwrap();
    let (code, out, err) = run(&[
        "render",
        "--config",
        &dir,
        "--event",
        event,
        "--json",
        "--capture",
        "find.contact_id=901",
        "--capture",
        "find.status=200",
    ]);
    assert_eq!(code, 0, "{err}");
    let dry: Value = serde_json::from_str(&out).unwrap();
    let requests = dry["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0]["step"], "find");
    assert_eq!(
        requests[0]["url"],
        "https://crm.example.com/search?phone=5550001"
    );
    assert_eq!(requests[1]["after"], "find");
    assert_eq!(requests[1]["url"], "https://crm.example.com/contacts/901");
    assert_eq!(
        serde_json::from_str::<Value>(requests[1]["body"].as_str().unwrap()).unwrap(),
        json!({"phone": "5550001", "status": "SALE", "found_by": "200"})
    );
    assert!(requests[1]["skipped"].is_null());
    assert!(
        requests[2]["skipped"]
            .as_str()
            .unwrap()
            .starts_with("`when` does not match: @steps.find.contact_id = 901, expected absent")
    );
    // Without values the lookup is taken to have found nothing, and the report says so.
    let (code, out, _) = run(&["render", "--config", &dir, "--event", event]);
    assert_eq!(code, 0);
    assert!(out.contains("call-to-crm → crm-update (step crm-update, after find)\n     skipped: `when` does not match"), "{out}");
    assert!(
        out.contains("POST https://crm.example.com/contacts\n"),
        "{out}"
    );
    assert!(out.contains("warning: the values step find captures are not known: shown as if it captured none (render --capture find.NAME=VALUE)"), "{out}");
    let (code, _, err) = run(&[
        "render",
        "--config",
        &dir,
        "--event",
        event,
        "--capture",
        "find",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("\"find\" is not STEP.NAME=VALUE"), "{err}");

    std::fs::write(
        config.path().join("workflows/call-to-crm.test.yaml"),
        r#"tests:
  - name: a known caller is updated
    event: {type: call.ended, data: {phone_number: "5550001", status: SALE}}
    steps: {find: {contact_id: "901", status: 200}}
    expect:
      requests:
        - {endpoint: crm-search}
        - {endpoint: crm-update, method: PATCH, url: "https://crm.example.com/contacts/901"}
      no_requests_to: [crm-create]
  - name: an unknown caller is created
    event: {type: call.ended, data: {phone_number: "5550002", status: SALE}}
    steps: {find: {status: 200}}
    expect:
      requests:
        - {endpoint: crm-search}
        - {endpoint: crm-create, body: {phone: "5550002"}}
      no_requests_to: [crm-update]
  - name: this one fails on purpose
    event: {type: call.ended, data: {phone_number: "5550002"}}
    steps: {find: {contact_id: "7"}}
    expect:
      no_requests_to: [crm-update]
"#,
    )
    .unwrap();
    let (code, out, err) = run(&["test", "--config", &dir, "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["passed"], 2, "{out}");
    assert_eq!(report["failed"], 1, "{out}");
}

#[test]
fn steps_that_cannot_run_are_load_errors_at_their_place() {
    let config = ConfigDir::new(&[
        (
            "endpoints/a.yaml",
            "url: https://a.example.com\nmethod: GET\n",
        ),
        (
            "endpoints/b.yaml",
            "url: https://b.example.com\nmethod: GET\n",
        ),
        (
            "workflows/w.yaml",
            r#"when:
  - event: x
actions:
  - endpoint: a
    after: b
  - endpoint: b
    after: c
  - endpoint: a
  - step: d
    endpoint: b
    after: d
  - step: e
    endpoint: a
    when:
      - field: "@steps.a.id"
        exists: true
"#,
        ),
    ]);
    assert_eq!(
        config.errors(),
        [
            "workflows/w.yaml:5:12: step \"b\" comes later (actions[1]): `after` names an earlier step of the workflow",
            "workflows/w.yaml:7:12: unknown step \"c\" (did you mean \"a\"? known: a)",
            "workflows/w.yaml:8:15: step \"a\" is already actions[0]'s name: give one of them its own `step:`",
            "workflows/w.yaml:11:12: step \"d\" cannot run after itself",
            "workflows/w.yaml:15:16: @steps.a is not known here: this action runs after no step (add `after: a`)",
        ]
    );
}

#[test]
fn render_refuses_a_capture_no_step_makes() {
    // A typo in --capture would render as if the step captured nothing: the other branch.
    let config = config("https://crm.example.com", "");
    let dir = config.path().to_str().unwrap().to_string();
    let event = config.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"type": "call.ended", "data": {"phone_number": "5550001"}}"#,
    )
    .unwrap();
    let event = event.to_str().unwrap();
    let render = |capture: &str| {
        run(&[
            "render",
            "--config",
            &dir,
            "--event",
            event,
            "--capture",
            capture,
        ])
    };
    let (code, _, err) = render("find.contactid=901");
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "error: --capture find.contactid: unknown captured value \"contactid\" (did you mean \
         \"contact_id\"? known: contact_id, status)\n"
    );
    let (code, _, err) = render("fnd.contact_id=901");
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: --capture fnd: unknown step \"fnd\" (did you mean \"find\"?"),
        "{err}"
    );
    let (code, out, err) = render("find.status=404");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("POST https://crm.example.com/contacts\n"),
        "{out}"
    );
}

#[test]
fn a_when_on_a_value_its_step_never_captures_is_a_warning() {
    // crm-search captures contact_id: a follower testing @steps.find.contactid would
    // always find it missing, and every caller would be created.
    let config = config("https://crm.example.com", "");
    let workflow = config.path().join("workflows/call-to-crm.yaml");
    let text = std::fs::read_to_string(&workflow).unwrap();
    std::fs::write(
        &workflow,
        text.replace(
            "@steps.find.contact_id\"\n        exists: false",
            "@steps.find.contactid\"\n        exists: false",
        ),
    )
    .unwrap();
    let dir = config.path().to_str().unwrap();
    let (code, _, err) = run(&["validate", "--config", dir]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err,
        "warning: workflows/call-to-crm.yaml:14:16: @steps.find.contactid: step find (endpoint \
         crm-search) never captures it, so it is always missing: unknown captured value \
         \"contactid\" (did you mean \"contact_id\"? known: contact_id, status)\n\
         1 warning in DIR (validate --strict fails on warnings)\n"
            .replace("DIR", dir)
    );
    // status is every step's, and the value the search captures is known.
    std::fs::write(
        &workflow,
        text.replace(
            "@steps.find.contact_id\"\n        exists: false",
            "@steps.find.status\"\n        equals: 200",
        ),
    )
    .unwrap();
    let (code, _, err) = run(&["validate", "--config", dir]);
    assert_eq!((code, err.as_str()), (0, ""));
}

/// `replay --with-followers` without a server (the CLI on the data folder itself): the
/// lookup is sent again, its follower waits for it and goes with the new capture; without
/// the flag the follower is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_with_followers_on_the_data_folder_reruns_the_chain_with_the_new_capture() {
    let crm = CrmServer::start(&[("5550001", "901")], false).await;
    let config = config(&crm.url, "");
    let data = tempfile::tempdir().unwrap();
    let event = config.path().join("known.json");
    std::fs::write(
        &event,
        r#"{"type": "call.ended", "id": "known", "data": {"phone_number": "5550001", "status": "SALE"}}"#,
    )
    .unwrap();
    let (dir, data_dir) = (
        config.path().to_str().unwrap().to_string(),
        data.path().to_str().unwrap().to_string(),
    );
    let cli_run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&args)
        })
    };
    let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let (code, out, err) = cli_run(args(&[
        "send",
        "--config",
        &dir,
        "--data",
        &data_dir,
        "--event",
        event.to_str().unwrap(),
    ]))
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let find = out
        .lines()
        .find(|l| l.contains("→ crm-search"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the lookup's line")
        .to_string();
    assert_eq!(crm.hits().iter().filter(|h| h.0 == "PATCH").count(), 1);
    crm.crm
        .contacts
        .lock()
        .unwrap()
        .insert("5550001".into(), "902".into());
    // Without the flag: the lookup alone.
    let (code, out, err) = cli_run(args(&[
        "replay", "--config", &dir, "--data", &data_dir, &find,
    ]))
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(crm.hits().iter().filter(|h| h.0 == "GET").count(), 2);
    assert_eq!(crm.hits().iter().filter(|h| h.0 == "PATCH").count(), 1);
    // With it: the lookup, then the update with what it captures now.
    let (code, out, err) = cli_run(args(&[
        "replay",
        "--config",
        &dir,
        "--data",
        &data_dir,
        "--with-followers",
        &find,
    ]))
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("replaying 3 deliveries"), "{out}");
    let patches: Vec<Hit> = crm.hits().into_iter().filter(|h| h.0 == "PATCH").collect();
    assert_eq!(patches.len(), 2, "{:?}", crm.hits());
    assert_eq!(patches[1].1, "/contacts/902");
    assert_eq!(crm.hits().iter().filter(|h| h.0 == "POST").count(), 0);
}
