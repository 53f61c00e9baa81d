//! `auth: {type: oauth2}` through the real binary: a token server written here (axum on
//! 127.0.0.1:0) whose tokens expire, and a receiver that accepts only a token it issued
//! and that has not expired. Fetched once and cached, renewed after expiry and after a
//! 401 (one renewal, one resend, in the same attempt), a refused token request is error
//! kind `auth`, a rotated refresh token is used next, Basic client authentication; and no
//! token or secret is left anywhere: data folder, `/api/logs`, exports, serve's stderr.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use common::ConfigDir;
use common::cli;
use common::process::Serve;
use common::server::{get, post};

const CLIENT_ID: &str = "client-7f3a";
const CLIENT_SECRET: &str = "cs-9c1d7e55aa01";
const REFRESH: &str = "rt-0-5b8e2f41c3";

/// How the token server answers.
/// A scripted token server's answer to its n-th request (from 1), given the request's form.
type Script = Arc<dyn Fn(usize, &[(String, String)]) -> (StatusCode, String) + Send + Sync>;

#[derive(Clone)]
enum Mode {
    /// Tokens that live this long (rotating the refresh token when asked).
    Issue { lifetime: Duration, rotate: bool },
    /// 400 with an OAuth2 error.
    Refuse,
    /// Answers as the function says, given the request's number (from 1) and form.
    Script(Script),
    /// Never answers (within this long).
    Hang(Duration),
}

/// One token request: its Authorization header and its form.
type TokenRequest = (Option<String>, Vec<(String, String)>);

#[derive(Default)]
struct Issued {
    /// Each token request: its Authorization header and form.
    requests: Vec<TokenRequest>,
    /// Each access token with when it expires.
    tokens: Vec<(String, Instant)>,
    /// Every refresh token handed out.
    refresh: Vec<String>,
}

struct TokenServer {
    url: String,
    issued: Arc<Mutex<Issued>>,
}

impl TokenServer {
    async fn start(mode: Mode) -> TokenServer {
        let issued = Arc::new(Mutex::new(Issued::default()));
        let state = issued.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            let mode = mode.clone();
            async move {
                let form: Vec<(String, String)> = form_urlencoded::parse(&body)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let basic = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                if let Mode::Hang(wait) = mode {
                    state.lock().unwrap().requests.push((basic, form));
                    tokio::time::sleep(wait).await;
                    return (StatusCode::SERVICE_UNAVAILABLE, String::new());
                }
                let mut issued = state.lock().unwrap();
                issued.requests.push((basic, form.clone()));
                let n = issued.requests.len();
                match mode {
                    Mode::Hang(_) => unreachable!(),
                    Mode::Script(answer) => answer(n, &form),
                    Mode::Refuse => (
                        StatusCode::BAD_REQUEST,
                        json!({"error": "invalid_client", "error_description": "client authentication failed for client-7f3a"})
                            .to_string(),
                    ),
                    Mode::Issue { lifetime, rotate } => {
                        let token = format!("at-{n}-e4d1c9b07a26");
                        issued
                            .tokens
                            .push((token.clone(), Instant::now() + lifetime));
                        let mut answer = json!({
                            "access_token": token,
                            "token_type": "Bearer",
                            "expires_in": lifetime.as_secs(),
                        });
                        if rotate {
                            let refresh = format!("rt-{n}-d72a90c6e1");
                            issued.refresh.push(refresh.clone());
                            answer["refresh_token"] = json!(refresh);
                        }
                        (StatusCode::OK, answer.to_string())
                    }
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/oauth/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        TokenServer { url, issued }
    }

    fn requests(&self) -> Vec<TokenRequest> {
        self.issued.lock().unwrap().requests.clone()
    }

    /// Every secret the run saw: issued access and refresh tokens, the configured ones.
    fn secrets(&self) -> Vec<String> {
        let issued = self.issued.lock().unwrap();
        let mut all: Vec<String> = issued.tokens.iter().map(|(t, _)| t.clone()).collect();
        all.extend(issued.refresh.iter().cloned());
        all.extend([CLIENT_SECRET.to_string(), REFRESH.to_string()]);
        all
    }
}

/// What the receiver saw: each request's bearer token and whether it was valid then.
type Seen = Arc<Mutex<Vec<(String, bool)>>>;

/// A receiver that answers 200 to a token the server issued and that has not expired, and
/// 401 otherwise; `/once` answers the first request 401 whatever it carries, `/never`
/// answers every request 401, `/echo` answers with the token it got in the body.
async fn receiver(tokens: &TokenServer) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let issued = tokens.issued.clone();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let issued = issued.clone();
        let log = log.clone();
        async move {
            let token = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_string();
            let valid = issued
                .lock()
                .unwrap()
                .tokens
                .iter()
                .any(|(t, until)| *t == token && Instant::now() < *until);
            let mut log = log.lock().unwrap();
            let first = log.is_empty();
            log.push((token, valid));
            let refused = !valid || uri.path() == "/never" || (uri.path() == "/once" && first);
            let echo = if uri.path() == "/echo" {
                format!(r#"{{"you_sent":"Bearer {}"}}"#, log.last().unwrap().0)
            } else {
                String::new()
            };
            if refused {
                (StatusCode::UNAUTHORIZED, echo)
            } else {
                (StatusCode::OK, echo)
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (url, seen)
}

/// One endpoint `crm` posting to `url` with oauth2 `auth` (extra keys in `auth`), and a
/// workflow sending every `sale` to it.
fn config(url: &str, token_url: &str, auth: &str) -> ConfigDir {
    let endpoint = format!(
        "url: {url}\nmethod: POST\nbody_template: '{{\"to\":\"{{{{ phone }}}}\"}}'\nretry:\n  schedule: [1h]\n\
         auth:\n  type: oauth2\n  token_url: {token_url}\n  client_id: {CLIENT_ID}\n  client_secret: ${{OAUTH_SECRET}}\n{auth}"
    );
    ConfigDir::new(&[
        ("endpoints/crm.yaml", endpoint.as_str()),
        (
            "workflows/sales.yaml",
            "when:\n  - event: sale\nactions:\n  - endpoint: crm\n",
        ),
    ])
}

async fn serve(config: &ConfigDir, data: &Path) -> Serve {
    let mut command = cli();
    command
        .env("OAUTH_SECRET", CLIENT_SECRET)
        .env("OAUTH_REFRESH", REFRESH);
    Serve::start_with(command, config.path(), data, &[]).await
}

async fn send(serve: &Serve, id: &str) {
    let event = format!(r#"{{"type":"sale","id":"{id}","data":{{"phone":"+15550100007"}}}}"#);
    let (status, body) = post(&format!("{}/events", serve.url), &event, &[]).await;
    assert_eq!(status, 202, "{body}");
}

/// The log's entries once there are `n` (newest first, as the API lists them).
async fn entries(serve: &Serve, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, text) = get(&format!("{}/api/logs", serve.url), &[]).await;
        assert_eq!(status, 200, "{text}");
        let page: Value = serde_json::from_str(&text).expect("JSON");
        let entries = page["entries"].as_array().expect("entries").clone();
        if entries.len() >= n {
            assert_eq!(entries.len(), n, "{entries:#?}");
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "{n} entries expected: {entries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// No secret, in any spelling the masking knows of (raw, base64 of it or of the Basic
/// pair), is in the data folder, the log API, the exports or serve's stderr.
async fn assert_hidden(secrets: &[String], data: &Path, serve: Serve) {
    let mut texts: Vec<(String, Vec<u8>)> = Vec::new();
    for path in [
        "/api/logs",
        "/api/logs/export?format=jsonl",
        "/api/logs/export?format=csv",
    ] {
        let (status, text) = get(&format!("{}{path}", serve.url), &[]).await;
        assert_eq!(status, 200, "{path}: {text}");
        texts.push((path.to_string(), text.into_bytes()));
    }
    let stderr = serve.stop();
    texts.push(("stderr".into(), stderr.into_bytes()));
    let mut folders = vec![data.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("read data folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else {
                texts.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut spellings = Vec::new();
    for secret in secrets {
        spellings.push(secret.clone());
        spellings.push(STANDARD.encode(secret));
        spellings.push(URL_SAFE_NO_PAD.encode(secret));
    }
    let pair = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    spellings.push(STANDARD.encode(&pair));
    for (name, bytes) in &texts {
        for spelling in &spellings {
            assert!(
                !bytes
                    .windows(spelling.len())
                    .any(|w| w == spelling.as_bytes()),
                "{spelling} found in {name}"
            );
        }
    }
}

#[tokio::test]
async fn tokens_are_cached_then_renewed_when_they_expire_and_never_shown() {
    let tokens = TokenServer::start(Mode::Issue {
        lifetime: Duration::from_secs(2),
        rotate: false,
    })
    .await;
    let (url, seen) = receiver(&tokens).await;
    let config = config(
        &format!("{url}/crm"),
        &tokens.url,
        "  grant: client_credentials\n  scope: api\n  params: {audience: crm}\n",
    );
    let data = tempfile::tempdir().expect("temp dir");
    let serve = serve(&config, data.path()).await;
    send(&serve, "e1").await;
    entries(&serve, 1).await;
    send(&serve, "e2").await;
    entries(&serve, 2).await;
    assert_eq!(
        tokens.requests().len(),
        1,
        "the second delivery reuses the token"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    send(&serve, "e3").await;
    let log = entries(&serve, 3).await;
    for entry in &log {
        assert_eq!(entry["outcome"], "delivered", "{entry:#}");
        assert_eq!(entry["attempt"], 1);
        assert_eq!(entry["request"]["headers"]["Authorization"], "***");
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "no resend: {seen:?}");
    assert!(seen.iter().all(|(_, valid)| *valid), "{seen:?}");
    assert_eq!(seen[0].0, seen[1].0);
    assert_ne!(seen[1].0, seen[2].0, "a new token after expiry");
    let requests = tokens.requests();
    assert_eq!(requests.len(), 2);
    let (basic, form) = &requests[0];
    assert_eq!(basic, &None, "client_auth: body");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("grant_type", "client_credentials"),
            ("scope", "api"),
            ("audience", "crm"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ]
    );
    // render shows the header masked, without asking for a token.
    let event = data.path().join("event.json");
    std::fs::write(&event, r#"{"type":"sale","data":{"phone":"+15550100007"}}"#).unwrap();
    let out = cli()
        .args(["render", "--json", "--config"])
        .arg(config.path())
        .arg("--event")
        .arg(&event)
        .env("OAUTH_SECRET", CLIENT_SECRET)
        .output()
        .expect("run switchboard");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        rendered["requests"][0]["headers"]["Authorization"], "***",
        "{rendered:#}"
    );
    assert_eq!(tokens.requests().len(), 2, "render fetched no token");
    assert_hidden(&tokens.secrets(), data.path(), serve).await;
}

#[tokio::test]
async fn a_401_renews_the_token_once_and_resends_in_the_same_attempt() {
    let tokens = TokenServer::start(Mode::Issue {
        lifetime: Duration::from_secs(3600),
        rotate: false,
    })
    .await;
    let (url, seen) = receiver(&tokens).await;
    let config = config(
        &format!("{url}/once"),
        &tokens.url,
        "  grant: client_credentials\n",
    );
    let data = tempfile::tempdir().expect("temp dir");
    let serve = serve(&config, data.path()).await;
    send(&serve, "e1").await;
    let log = entries(&serve, 1).await;
    assert_eq!(log[0]["outcome"], "delivered", "{:#}", log[0]);
    assert_eq!(log[0]["attempt"], 1);
    assert_eq!(tokens.requests().len(), 2, "exactly one renewal");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "exactly one resend: {seen:?}");
    assert_ne!(seen[0].0, seen[1].0, "the resend carries the new token");
    assert_hidden(&tokens.secrets(), data.path(), serve).await;
}

#[tokio::test]
async fn a_second_401_ends_the_attempt_after_one_renewal() {
    let tokens = TokenServer::start(Mode::Issue {
        lifetime: Duration::from_secs(3600),
        rotate: false,
    })
    .await;
    let (url, seen) = receiver(&tokens).await;
    let config = config(
        &format!("{url}/never"),
        &tokens.url,
        "  grant: client_credentials\n",
    );
    let data = tempfile::tempdir().expect("temp dir");
    let serve = serve(&config, data.path()).await;
    send(&serve, "e1").await;
    let log = entries(&serve, 1).await;
    assert_eq!(log[0]["outcome"], "failed", "{:#}", log[0]);
    assert_eq!(log[0]["error"]["kind"], "status");
    assert_eq!(tokens.requests().len(), 2);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_refused_token_request_ends_the_attempt_with_kind_auth() {
    let tokens = TokenServer::start(Mode::Refuse).await;
    let (url, seen) = receiver(&tokens).await;
    let config = config(
        &format!("{url}/crm"),
        &tokens.url,
        "  grant: client_credentials\n",
    );
    let data = tempfile::tempdir().expect("temp dir");
    let serve = serve(&config, data.path()).await;
    send(&serve, "e1").await;
    let log = entries(&serve, 1).await;
    assert_eq!(log[0]["outcome"], "failed", "{:#}", log[0]);
    assert_eq!(log[0]["error"]["kind"], "auth");
    assert_eq!(
        log[0]["error"]["message"],
        format!(
            "token request to {} failed: HTTP 400 Bad Request: invalid_client: client authentication failed for client-7f3a",
            tokens.url
        )
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing sent without a token"
    );
    assert_hidden(&tokens.secrets(), data.path(), serve).await;
}

#[tokio::test]
async fn a_rotated_refresh_token_is_used_next_with_basic_client_auth() {
    let tokens = TokenServer::start(Mode::Issue {
        lifetime: Duration::from_secs(1),
        rotate: true,
    })
    .await;
    let (url, _seen) = receiver(&tokens).await;
    let config = config(
        &format!("{url}/crm"),
        &tokens.url,
        "  grant: refresh_token\n  refresh_token: ${OAUTH_REFRESH}\n  client_auth: basic\n",
    );
    let data = tempfile::tempdir().expect("temp dir");
    let serve = serve(&config, data.path()).await;
    send(&serve, "e1").await;
    entries(&serve, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send(&serve, "e2").await;
    let log = entries(&serve, 2).await;
    assert!(log.iter().all(|e| e["outcome"] == "delivered"), "{log:#?}");
    let requests = tokens.requests();
    assert_eq!(requests.len(), 2);
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let refresh = |form: &[(String, String)]| {
        assert!(
            form.iter()
                .all(|(k, _)| k != "client_secret" && k != "client_id")
        );
        form.iter()
            .find(|(k, _)| k == "refresh_token")
            .map(|(_, v)| v.clone())
    };
    assert_eq!(requests[0].0.as_deref(), Some(basic.as_str()));
    assert_eq!(requests[1].0.as_deref(), Some(basic.as_str()));
    assert_eq!(refresh(&requests[0].1).as_deref(), Some(REFRESH));
    assert_eq!(
        refresh(&requests[1].1).as_deref(),
        Some("rt-1-d72a90c6e1"),
        "the second request uses the rotated refresh token"
    );
    assert_hidden(&tokens.secrets(), data.path(), serve).await;
}

#[tokio::test]
async fn a_token_the_receiver_echoes_is_masked_in_the_log() {
    let tokens = TokenServer::start(Mode::Issue {
        lifetime: Duration::from_secs(3600),
        rotate: true,
    })
    .await;
    let (url, seen) = receiver(&tokens).await;
    let config = config(
        &format!("{url}/echo"),
        &tokens.url,
        "  grant: refresh_token\n  refresh_token: ${OAUTH_REFRESH}\n",
    );
    let data = tempfile::tempdir().expect("temp dir");
    let serve = serve(&config, data.path()).await;
    send(&serve, "e1").await;
    let log = entries(&serve, 1).await;
    assert_eq!(log[0]["outcome"], "delivered", "{:#}", log[0]);
    assert_eq!(log[0]["response"]["body"], r#"{"you_sent":"Bearer ***"}"#);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_hidden(&tokens.secrets(), data.path(), serve).await;
}

#[tokio::test]
async fn the_token_request_obeys_the_network_policy() {
    let tokens = TokenServer::start(Mode::Refuse).await;
    let (url, seen) = receiver(&tokens).await;
    let config = config(
        &format!("{url}/crm"),
        "http://169.254.169.254/token",
        "  grant: client_credentials\n",
    );
    let data = tempfile::tempdir().expect("temp dir");
    let serve = serve(&config, data.path()).await;
    send(&serve, "e1").await;
    let log = entries(&serve, 1).await;
    assert_eq!(log[0]["error"]["kind"], "auth", "{:#}", log[0]);
    let message = log[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("token request to http://169.254.169.254/token failed: ")
            && message.contains("blocked by the outbound network policy"),
        "{message}"
    );
    assert!(seen.lock().unwrap().is_empty());
    assert!(tokens.requests().is_empty());
}

// ---- review findings (failing tests) ----

/// The token server rotates the refresh token once (allowed: RFC 6749, section 6, a new refresh
/// token is optional), then issues access tokens only; after 5 requests it refuses the
/// refresh token it is sent, quoting it in error_description. The refresh token in use
/// was pushed out of the endpoint's 4 remembered tokens by the access tokens since, so the
/// error message quotes it unmasked.
#[tokio::test]
async fn a_rotated_refresh_token_still_in_use_stays_masked_after_several_renewals() {
    const ROTATED: &str = "rt-rotated-5a0c93e2d1";
    let tokens = TokenServer::start(Mode::Script(Arc::new(|n, form| {
        let sent = form
            .iter()
            .find(|(k, _)| k == "refresh_token")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        match n {
            1 => (
                StatusCode::OK,
                json!({"access_token": "at-1-0b9e7c", "expires_in": 3600, "refresh_token": ROTATED})
                    .to_string(),
            ),
            2..=5 => (
                StatusCode::OK,
                json!({"access_token": format!("at-{n}-0b9e7c"), "expires_in": 3600}).to_string(),
            ),
            _ => (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_grant", "error_description": format!("refresh token {sent} was revoked")})
                    .to_string(),
            ),
        }
    })))
    .await;
    let (url, _seen) = receiver(&tokens).await;
    let config = config(
        &format!("{url}/never"),
        &tokens.url,
        "  grant: refresh_token\n  refresh_token: ${OAUTH_REFRESH}\n",
    );
    let data = tempfile::tempdir().expect("temp dir");
    let serve = serve(&config, data.path()).await;
    // Each attempt renews once after the receiver's 401 (the first also fetches first).
    for (i, id) in ["e1", "e2", "e3", "e4", "e5"].iter().enumerate() {
        send(&serve, id).await;
        entries(&serve, i + 1).await;
    }
    assert_eq!(tokens.requests().len(), 6);
    let log = entries(&serve, 5).await;
    assert_eq!(log[0]["error"]["kind"], "auth", "{:#}", log[0]);
    let mut secrets = vec![ROTATED.to_string()];
    secrets.extend((1..=5).map(|n| format!("at-{n}-0b9e7c")));
    assert_hidden(&secrets, data.path(), serve).await;
}

/// A token server's plain-text error body is cut to 200 characters before the masking
/// runs: a secret straddling the cut is no longer whole, and its first characters show.
#[tokio::test]
async fn a_secret_cut_by_the_200_character_limit_is_not_partly_shown() {
    let tokens = TokenServer::start(Mode::Script(Arc::new(|_, form| {
        let secret = form
            .iter()
            .find(|(k, _)| k == "client_secret")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        (
            StatusCode::BAD_REQUEST,
            format!("{} {secret} is not a valid client secret", "x".repeat(185)),
        )
    })))
    .await;
    let (url, _seen) = receiver(&tokens).await;
    let config = config(
        &format!("{url}/crm"),
        &tokens.url,
        "  grant: client_credentials\n",
    );
    let data = tempfile::tempdir().expect("temp dir");
    let serve = serve(&config, data.path()).await;
    send(&serve, "e1").await;
    let log = entries(&serve, 1).await;
    let message = log[0]["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains(&CLIENT_SECRET[..10]),
        "a prefix of the client secret is shown: {message}"
    );
}

/// The endpoint's lock is held through a token request, and a waiter does not share the
/// failure: with a token server that never answers, `concurrency: 8` attempts each wait
/// for the one before, then make their own request: the last ends after 8 x the timeout,
/// past `longest_attempt` (4 x timeout, what the lease is made for), and the hung token
/// server gets one request per attempt, one after another.
#[tokio::test]
async fn a_hung_token_server_does_not_stretch_attempts_past_their_lease() {
    let tokens = TokenServer::start(Mode::Hang(Duration::from_secs(60))).await;
    let (url, seen) = receiver(&tokens).await;
    let endpoint = format!(
        "url: {url}/crm\nmethod: POST\ntimeout: 1s\nconcurrency: 8\nbody_template: '{{\"to\":\"{{{{ phone }}}}\"}}'\nretry:\n  schedule: [1h]\n\
         auth:\n  type: oauth2\n  token_url: {}\n  client_id: {CLIENT_ID}\n  client_secret: ${{OAUTH_SECRET}}\n  grant: client_credentials\n",
        tokens.url
    );
    let config = ConfigDir::new(&[
        ("endpoints/crm.yaml", endpoint.as_str()),
        (
            "workflows/sales.yaml",
            "when:\n  - event: sale\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    let data = tempfile::tempdir().expect("temp dir");
    let serve = serve(&config, data.path()).await;
    let started = Instant::now();
    for i in 0..8 {
        send(&serve, &format!("e{i}")).await;
    }
    let log = entries(&serve, 8).await;
    let took = started.elapsed();
    assert!(log.iter().all(|e| e["error"]["kind"] == "auth"), "{log:#?}");
    assert!(seen.lock().unwrap().is_empty());
    assert!(
        took < Duration::from_millis(4 * 1000 + 1500),
        "the last attempt ended after {took:?}, past 4 x the 1 s timeout; token requests: {}",
        tokens.requests().len()
    );
}

/// Checked fine: at SWITCHBOARD_LOG=debug (every crate, reqwest and hyper included) no
/// token or secret reaches serve's stderr.
#[tokio::test]
async fn debug_logs_show_no_token_or_secret() {
    let tokens = TokenServer::start(Mode::Issue {
        lifetime: Duration::from_secs(3600),
        rotate: true,
    })
    .await;
    let (url, _seen) = receiver(&tokens).await;
    let config = config(
        &format!("{url}/once"),
        &tokens.url,
        "  grant: refresh_token\n  refresh_token: ${OAUTH_REFRESH}\n  client_auth: basic\n",
    );
    let data = tempfile::tempdir().expect("temp dir");
    let mut command = cli();
    command
        .env("OAUTH_SECRET", CLIENT_SECRET)
        .env("OAUTH_REFRESH", REFRESH)
        .env("SWITCHBOARD_LOG", "trace");
    let serve = Serve::start_with(command, config.path(), data.path(), &[]).await;
    send(&serve, "e1").await;
    let log = entries(&serve, 1).await;
    assert_eq!(log[0]["outcome"], "delivered", "{:#}", log[0]);
    assert_eq!(tokens.requests().len(), 2);
    assert_hidden(&tokens.secrets(), data.path(), serve).await;
}
