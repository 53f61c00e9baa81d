//! Every example, served: the real `switchboard serve` on the example's folder, each
//! endpoint's URL variable pointed at a receiver on 127.0.0.1:0 that answers as the real
//! service does (the same answers as the `switchboard mock` commands in the example's
//! README), the sample events posted (to `/events`, or their payload to the inbound hook),
//! and the requests that arrive compared with the example's `expected/` folder.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::Value;

use common::process::Serve;
use common::root;
use common::server::client;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
struct Got {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// A receiver that answers by path prefix: (prefix, status, body).
struct Receiver {
    base: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    async fn start(answers: &[(&'static str, u16, &'static str)]) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        let answers = answers.to_vec();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let seen = seen.clone();
                let answers = answers.clone();
                async move {
                    seen.lock().unwrap().push(Got {
                        method: method.to_string(),
                        path: uri.to_string(),
                        headers: headers
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect(),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    let (_, status, body) = answers
                        .iter()
                        .find(|(prefix, _, _)| uri.path().starts_with(prefix))
                        .copied()
                        .unwrap_or(("", 404, "no such service"));
                    (
                        axum::http::StatusCode::from_u16(status).expect("status"),
                        body,
                    )
                }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Receiver { base, got }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

/// How one example is served.
struct Example {
    /// The example's folder under examples/.
    name: &'static str,
    /// The configuration folder, when it is not the example's own (the starter's is the
    /// repository root).
    config: Option<PathBuf>,
    /// (variable, its default base URL, the receiver's path for that service).
    urls: &'static [(&'static str, &'static str, &'static str)],
    /// How the receiver answers: (path prefix, status, body).
    answers: &'static [(&'static str, u16, &'static str)],
    /// Events whose `source` is this inbound endpoint are posted as their `data` to the
    /// hook's path (with `?token=` the value of the variable named).
    hook: Option<(&'static str, &'static str, &'static str)>,
}

/// KEY=value lines of an example's env.example (`#` lines are comments).
fn example_env(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("env.example")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Replaces every secret with `***`, as the expected files show them.
fn masked(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text.to_string(), |text, secret| text.replace(secret, "***"))
}

/// One request, as text that compares: method, path, the expected headers, the body.
fn shown(method: &str, path: &str, headers: &BTreeMap<String, String>, body: &str) -> String {
    let headers: Vec<String> = headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
    format!("{method} {path}\n{}\n{body}", headers.join("\n"))
}

async fn serve_example(example: Example) {
    let dir = root().join("examples").join(example.name);
    let config = example.config.clone().unwrap_or_else(|| dir.clone());
    let env = example_env(&dir);
    let secrets: Vec<String> = env
        .iter()
        .map(|(_, v)| v.clone())
        .filter(|v| v.len() >= 4)
        .collect();
    let receiver = Receiver::start(example.answers).await;

    // What should arrive: every expected request, its URL moved onto the receiver.
    let mut events: Vec<PathBuf> = std::fs::read_dir(dir.join("events"))
        .expect("events/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    events.sort();
    let mut expected = Vec::new();
    // The headers each request is expected to carry (others, such as Accept, are not pinned).
    let mut header_names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in &events {
        let file = dir.join("expected").join(event.file_name().expect("name"));
        let pinned: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("expected file"))
                .expect("expected JSON");
        for request in pinned["requests"].as_array().expect("requests") {
            let url = request["url"].as_str().expect("url");
            let (_, default, path) = example
                .urls
                .iter()
                .find(|(_, default, _)| url.starts_with(default))
                .unwrap_or_else(|| panic!("{url} is not behind a URL variable"));
            let headers: BTreeMap<String, String> = request["headers"]
                .as_object()
                .expect("headers")
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_ascii_lowercase(),
                        v.as_str().expect("text").to_string(),
                    )
                })
                .collect();
            let method = request["method"].as_str().expect("method");
            let path = format!("{path}{}", &url[default.len()..]);
            header_names.insert(
                format!("{method} {path}"),
                headers.keys().cloned().collect::<Vec<_>>(),
            );
            expected.push(shown(
                method,
                &path,
                &headers,
                request["body"].as_str().unwrap_or(""),
            ));
        }
    }
    assert!(!expected.is_empty(), "{} sends nothing", example.name);

    let data = tempfile::tempdir().expect("temp dir");
    let mut command = common::cli();
    command.envs(env.clone());
    for (var, _, path) in example.urls {
        command.env(var, format!("{}{path}", receiver.base));
    }
    let serve = Serve::start_with(command, &config, data.path(), &[]).await;

    for event in &events {
        let envelope: Value =
            serde_json::from_str(&std::fs::read_to_string(event).expect("event")).expect("JSON");
        let (url, body) = match example.hook {
            Some((source, path, token_var)) if envelope["source"] == source => {
                let token = &env.iter().find(|(k, _)| k == token_var).expect("token").1;
                (
                    format!("{}{path}?token={token}", serve.url),
                    envelope["data"].to_string(),
                )
            }
            _ => (format!("{}/events", serve.url), envelope.to_string()),
        };
        let response = client()
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("serve answers");
        let status = response.status().as_u16();
        assert!(
            (200..300).contains(&status),
            "{}: {status} {}",
            event.display(),
            response.text().await.unwrap_or_default()
        );
    }

    // Deliveries may be delayed (the Convolo example waits 30 s before HubSpot).
    let deadline = Instant::now() + Duration::from_secs(60);
    while receiver.got().len() < expected.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut arrived: Vec<String> = receiver
        .got()
        .iter()
        .map(|got| {
            let path = masked(&got.path, &secrets);
            let names = header_names
                .get(&format!("{} {path}", got.method))
                .cloned()
                .unwrap_or_default();
            let headers: BTreeMap<String, String> = names
                .iter()
                .filter_map(|name| {
                    let value = got.headers.iter().find(|(n, _)| n == name)?.1.clone();
                    // The credential header (Authorization) shows as *** whole; it must
                    // have arrived with a value (the starter's token is a default, not a secret).
                    let value = if name == "authorization" && !value.is_empty() {
                        "***".to_string()
                    } else {
                        masked(&value, &secrets)
                    };
                    Some((name.clone(), value))
                })
                .collect();
            shown(&got.method, &path, &headers, &masked(&got.body, &secrets))
        })
        .collect();
    arrived.sort();
    expected.sort();
    let log = serve.stop();
    assert_eq!(
        arrived.join("\n\n"),
        expected.join("\n\n"),
        "{}: the requests that arrived differ from expected/ (serve's log:\n{log})",
        example.name
    );
}

#[tokio::test]
async fn the_starter_serves_its_sample_events() {
    serve_example(Example {
        name: "starter",
        config: Some(root()),
        urls: &[("CRM_URL", "http://127.0.0.1:9000/contacts", "/crm/contacts")],
        answers: &[("/crm", 200, "{\"ok\":true}")],
        hook: None,
    })
    .await;
}

#[tokio::test]
async fn autoid_xml_serves_its_sample_events() {
    serve_example(Example {
        name: "autoid-xml",
        config: None,
        urls: &[(
            "DEALER_CRM_URL",
            "https://crm.example-dealer.com/api",
            "/dealer",
        )],
        answers: &[("/dealer", 200, "<record><id>crm-1</id></record>")],
        hook: None,
    })
    .await;
}

#[tokio::test]
async fn convolo_calls_to_crm_serves_its_hook() {
    serve_example(Example {
        name: "convolo-calls-to-crm",
        config: None,
        urls: &[
            ("HUBSPOT_URL", "https://api.hubapi.com", "/hubspot"),
            ("SLACK_URL", "https://hooks.slack.com/services", "/slack"),
        ],
        answers: &[("/hubspot", 201, "{\"id\":\"512\"}"), ("/slack", 200, "ok")],
        hook: Some(("convolo-webhooks", "/hooks/convolo", "CONVOLO_HOOK_TOKEN")),
    })
    .await;
}

#[tokio::test]
async fn convolo_speed_to_lead_serves_its_sample_events() {
    serve_example(Example {
        name: "convolo-speed-to-lead",
        config: None,
        urls: &[(
            "CONVOLO_URL",
            "https://app.convolo.ai/rest/v1/ext/add_call_api/",
            "/add_call_api/",
        )],
        answers: &[("/add_call_api", 200, "{\"call_id\":\"c-1\"}")],
        hook: None,
    })
    .await;
}

#[tokio::test]
async fn convoso_hubspot_serves_its_sample_events() {
    serve_example(Example {
        name: "convoso-hubspot",
        config: None,
        urls: &[("HUBSPOT_URL", "https://api.hubapi.com", "/hubspot")],
        answers: &[("/hubspot", 201, "{\"id\":\"501\"}")],
        hook: None,
    })
    .await;
}

#[tokio::test]
async fn ops_alerts_serves_its_sample_events() {
    serve_example(Example {
        name: "ops-alerts",
        config: None,
        urls: &[
            ("CRM_URL", "https://crm.example.com/api", "/crm"),
            (
                "SLACK_URL",
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "/slack",
            ),
        ],
        answers: &[("/crm", 201, "{\"id\":\"c-1\"}"), ("/slack", 200, "ok")],
        hook: None,
    })
    .await;
}
