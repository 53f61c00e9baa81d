//! Every example, served: the real `switchboard serve` on the example's folder, each
//! endpoint's URL variable pointed at a receiver on 127.0.0.1:0 that answers as the real
//! service does (as the `switchboard mock` commands in the example's README, and where a
//! search must find some callers and not others, by what the request's body asks for), the
//! sample events posted (to `/events`, or their payload to the inbound hook), and the
//! requests that arrive compared with the example's `expected/` folder (a step that
//! `render` shows as skipped is expected not to arrive, and to be logged as skipped). Where
//! the example uses OAuth2, the receiver is its token endpoint too: the token requests are
//! checked apart, the token it gives must arrive as the bearer of every delivery, and it
//! appears in no log.

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
use common::server::{client, get};

/// One request as the receiver got it.
#[derive(Debug, Clone)]
struct Got {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// How the receiver answers: (path prefix, status, body).
type Answer = (&'static str, u16, &'static str);

/// An answer that depends on the request's body: (path prefix, text the body contains,
/// status, body), as a CRM's search answers by what it is asked.
type BodyAnswer = (&'static str, &'static str, u16, &'static str);

/// A receiver that answers by path prefix, or by path prefix and body first.
struct Receiver {
    base: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    async fn start(answers: &[Answer], by_body: &[BodyAnswer]) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        let answers = answers.to_vec();
        let by_body = by_body.to_vec();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let seen = seen.clone();
                let answers = answers.clone();
                let by_body = by_body.clone();
                async move {
                    let text = String::from_utf8_lossy(&body).into_owned();
                    seen.lock().unwrap().push(Got {
                        method: method.to_string(),
                        path: uri.to_string(),
                        headers: headers
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect(),
                        body: text.clone(),
                    });
                    let (_, status, body) = by_body
                        .iter()
                        .find(|(prefix, part, _, _)| {
                            uri.path().starts_with(prefix) && text.contains(part)
                        })
                        .map(|&(prefix, _, status, body)| (prefix, status, body))
                        .or_else(|| {
                            answers
                                .iter()
                                .find(|(prefix, _, _)| uri.path().starts_with(prefix))
                                .copied()
                        })
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
    answers: &'static [Answer],
    /// Answers chosen by the request's body, tried before `answers`.
    answers_by_body: &'static [BodyAnswer],
    /// The OAuth2 token endpoint the receiver plays, if the example uses one.
    token: Option<Token>,
    /// Events whose `source` is this inbound endpoint are posted as their `data` to the
    /// hook's path (with `?token=` the value of the variable named).
    hook: Option<(&'static str, &'static str, &'static str)>,
}

/// An OAuth2 token endpoint on the receiver (its answer is one of the example's `answers`).
struct Token {
    /// The receiver's path of the token endpoint.
    path: &'static str,
    /// The form parameters every token request must carry, e.g. `grant_type=refresh_token`.
    form: &'static [&'static str],
    /// The access token the receiver's answer gives.
    access_token: &'static str,
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
    let receiver = Receiver::start(example.answers, example.answers_by_body).await;
    let is_token = |got: &Got| {
        example
            .token
            .as_ref()
            .is_some_and(|token| got.path.starts_with(token.path))
    };

    // What should arrive: every expected request, its URL moved onto the receiver.
    let mut events: Vec<PathBuf> = std::fs::read_dir(dir.join("events"))
        .expect("events/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    events.sort();
    let mut expected = Vec::new();
    // (event id, endpoint) of the steps `render` shows as skipped: logged as skipped.
    let mut skipped: Vec<(String, String)> = Vec::new();
    // The headers each request is expected to carry (others, such as Accept, are not pinned).
    let mut header_names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in &events {
        let file = dir.join("expected").join(event.file_name().expect("name"));
        let pinned: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("expected file"))
                .expect("expected JSON");
        let requests = pinned["requests"].as_array().expect("requests");
        skipped.extend(
            requests
                .iter()
                .filter(|r| !r["skipped"].is_null())
                .map(|r| {
                    (
                        pinned["event"]["id"]
                            .as_str()
                            .expect("event id")
                            .to_string(),
                        r["endpoint"].as_str().expect("endpoint").to_string(),
                    )
                }),
        );
        // A step `render` shows as skipped (its `when` did not match) sends nothing.
        for request in requests.iter().filter(|r| r["skipped"].is_null()) {
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
    let deliveries = || receiver.got().into_iter().filter(|g| !is_token(g)).count();
    while deliveries() < expected.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut arrived: Vec<String> = receiver
        .got()
        .iter()
        .filter(|got| !is_token(got))
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
                    if let (Some(token), "authorization") = (&example.token, name.as_str()) {
                        assert_eq!(value, format!("Bearer {}", token.access_token), "{path}");
                    }
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
    let is_skipped = |entries: &[Value], (event, endpoint): &(String, String)| {
        entries.iter().any(|e| {
            e["event_id"] == event.as_str()
                && e["endpoint"] == endpoint.as_str()
                && e["outcome"] == "skipped"
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let connect_log = loop {
        let (status, text) = get(&format!("{}/api/logs?limit=1000", serve.url), &[]).await;
        assert_eq!(status, 200, "{text}");
        let log: Value = serde_json::from_str(&text).expect("JSON");
        let entries = log["entries"].as_array().cloned().unwrap_or_default();
        let missing: Vec<_> = skipped
            .iter()
            .filter(|s| !is_skipped(&entries, s))
            .collect();
        if missing.is_empty() {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "{}: not logged as skipped: {missing:?}",
            example.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = serve.stop();
    if let Some(token) = &example.token {
        check_token_requests(&receiver.got(), token, &env);
        for (what, text) in [("serve's output", &log), ("the connect log", &connect_log)] {
            assert!(
                !text.contains(token.access_token),
                "{}: the access token shows in {what}:\n{text}",
                example.name
            );
            for secret in &secrets {
                assert!(
                    !text.contains(secret.as_str()),
                    "{}: a secret of env.example shows in {what}",
                    example.name
                );
            }
        }
        for file in std::fs::read_dir(dir.join("expected")).expect("expected/") {
            let text = std::fs::read_to_string(file.expect("entry").path()).expect("read");
            assert!(!text.contains(token.access_token));
        }
    }
    assert_eq!(
        arrived.join("\n\n"),
        expected.join("\n\n"),
        "{}: the requests that arrived differ from expected/ (serve's log:\n{log})",
        example.name
    );
}

/// The token requests that reached the receiver: at least one, each a form POST with the
/// grant's parameters and the client's id from env.example.
fn check_token_requests(got: &[Got], token: &Token, env: &[(String, String)]) {
    let requests: Vec<&Got> = got.iter().filter(|g| g.path == token.path).collect();
    assert!(!requests.is_empty(), "no token request arrived: {got:#?}");
    let client_id = &env
        .iter()
        .find(|(k, _)| k.ends_with("CLIENT_ID"))
        .expect("a CLIENT_ID in env.example")
        .1;
    let form_of = |suffix: &str, param: &str| {
        env.iter()
            .find(|(k, _)| k.ends_with(suffix))
            .map(|(_, v)| format!("{param}={v}"))
    };
    for request in requests {
        assert_eq!(request.method, "POST");
        // Zoho's refresh grant sends the refresh token; both examples send the client's
        // credentials in the form (client_auth: body).
        for param in [
            form_of("REFRESH_TOKEN", "refresh_token"),
            form_of("CLIENT_SECRET", "client_secret"),
        ]
        .into_iter()
        .flatten()
        {
            assert!(
                request.body.split('&').any(|p| p == param),
                "{}",
                request.body
            );
        }
        let form: Vec<String> = request.body.split('&').map(str::to_string).collect();
        for param in token.form.iter().map(|p| p.to_string()) {
            assert!(form.contains(&param), "{param} not in {}", request.body);
        }
        assert!(
            form.contains(&format!("client_id={client_id}")),
            "{}",
            request.body
        );
    }
}

#[tokio::test]
async fn the_starter_serves_its_sample_events() {
    serve_example(Example {
        name: "starter",
        config: Some(root()),
        urls: &[("CRM_URL", "http://127.0.0.1:9000/contacts", "/crm/contacts")],
        answers: &[("/crm", 200, "{\"ok\":true}")],
        hook: None,
        answers_by_body: &[],
        token: None,
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
        answers_by_body: &[],
        token: None,
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
        answers_by_body: &[],
        token: None,
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
        answers_by_body: &[],
        token: None,
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
        answers_by_body: &[],
        token: None,
    })
    .await;
}

#[tokio::test]
async fn salesforce_oauth_fetches_a_token_upserts_the_lead_and_logs_the_call_on_its_id() {
    serve_example(Example {
        name: "salesforce-oauth",
        config: None,
        urls: &[
            ("SF_LOGIN_URL", "https://login.salesforce.com", "/login"),
            (
                "SF_INSTANCE_URL",
                "https://yourcompany.my.salesforce.com",
                "/salesforce",
            ),
        ],
        answers: &[
            (
                "/login/services/oauth2/token",
                200,
                r#"{"access_token":"00Dfake!sf-access-token-4711","instance_url":"https://yourcompany.my.salesforce.com","token_type":"Bearer","issued_at":"1700000000000"}"#,
            ),
            (
                "/salesforce/services/data/v60.0/sobjects/Task",
                201,
                r#"{"id":"00T5g00000TaSk1EAB","success":true,"errors":[]}"#,
            ),
        ],
        // As Salesforce answers: 201 and the new Lead's id, or 200 and the updated Lead's.
        answers_by_body: &[
            (
                "/salesforce/services/data/v60.0/sobjects/Lead/",
                "+15551234567",
                201,
                r#"{"id":"00Q5g00000AbCdEAF","success":true,"errors":[],"created":true}"#,
            ),
            (
                "/salesforce/services/data/v60.0/sobjects/Lead/",
                "+15559876543",
                200,
                r#"{"id":"00Q5g00000XyZ12EAB","success":true,"errors":[],"created":false}"#,
            ),
        ],
        hook: None,
        token: Some(Token {
            path: "/login/services/oauth2/token",
            form: &["grant_type=client_credentials"],
            access_token: "00Dfake!sf-access-token-4711",
        }),
    })
    .await;
}

#[tokio::test]
async fn hubspot_upsert_updates_a_contact_the_search_finds_and_creates_one_it_does_not() {
    serve_example(Example {
        name: "hubspot-upsert",
        config: None,
        urls: &[("HUBSPOT_URL", "https://api.hubapi.com", "/hubspot")],
        answers: &[
            (
                "/hubspot/crm/v3/objects/contacts/search",
                200,
                r#"{"total":0,"results":[]}"#,
            ),
            ("/hubspot/crm/v3/objects/contacts/", 200, r#"{"id":"901"}"#),
            ("/hubspot/crm/v3/objects/contacts", 201, r#"{"id":"902"}"#),
        ],
        // The search finds the known caller's number, and nobody else's.
        answers_by_body: &[(
            "/hubspot/crm/v3/objects/contacts/search",
            "+15551234567",
            200,
            r#"{"total":1,"results":[{"id":"901","properties":{"phone":"+15551234567"}}]}"#,
        )],
        hook: None,
        token: None,
    })
    .await;
}

#[tokio::test]
async fn zoho_refresh_token_fetches_a_token_and_upserts_the_leads() {
    serve_example(Example {
        name: "zoho-refresh-token",
        config: None,
        urls: &[
            ("ZOHO_ACCOUNTS_URL", "https://accounts.zoho.com", "/accounts"),
            ("ZOHO_API_URL", "https://www.zohoapis.com", "/zoho"),
        ],
        answers: &[
            (
                "/accounts/oauth/v2/token",
                200,
                r#"{"access_token":"1000.fake-zoho-access-token-4711","api_domain":"https://www.zohoapis.com","token_type":"Bearer","expires_in":3600}"#,
            ),
            (
                "/zoho/crm/v2/Leads/upsert",
                201,
                r#"{"data":[{"code":"SUCCESS","duplicate_field":null,"action":"insert","details":{"id":"5725767000000524157"},"message":"record added","status":"success"}]}"#,
            ),
        ],
        answers_by_body: &[],
        hook: None,
        token: Some(Token {
            path: "/accounts/oauth/v2/token",
            form: &["grant_type=refresh_token"],
            access_token: "1000.fake-zoho-access-token-4711",
        }),
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
        answers_by_body: &[],
        hook: None,
        token: None,
    })
    .await;
}
