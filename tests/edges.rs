//! The server's edges, tried as a hostile client would, against the real `serve` binary on
//! loopback: slow and idle clients, the open-file limit, a stop with half-sent requests,
//! credentials echoed back, the unspecified addresses, forged X-Forwarded-For, signature
//! timestamps far away, errors hyper answers itself, bodies of the wrong kind, /metrics.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::process::Serve;
use common::receiver::{Receiver, Reply};
use common::{ConfigDir, cli};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADAPTOR: &str = "fields:\n  - {from: phone, to: phone}\n  - {from: status, to: status}\n";

/// A hook with header credentials, a workflow and an endpoint at `rx`.
fn config(rx: &Receiver, extra: &[(&str, &str)]) -> ConfigDir {
    let endpoint = format!("url: {}\nadaptor: contact\n", rx.url("/contacts"));
    let mut files: Vec<(&str, &str)> = vec![
        ("adaptors/contact.yaml", ADAPTOR),
        ("endpoints/crm.yaml", &endpoint),
        (
            "endpoints/leads.yaml",
            "direction: inbound\npath: /hooks/leads\nevent_type: lead.created\nauth:\n  type: header\n  name: X-Token\n  value: s3cret-token\n",
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: [call.disposition, lead.created]\nactions:\n  - endpoint: crm\n",
        ),
    ];
    files.extend_from_slice(extra);
    ConfigDir::new(&files)
}

fn http() -> reqwest::Client {
    common::server::client()
}

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("host:port")
}

/// Reads until the server closes the connection (or resets it); how long that took.
async fn closed_after(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + within).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// One raw request; the status, headers (lower-cased) and body of the answer, read until
/// the server closes or the answer's length is complete.
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => 0,
            Err(_) => panic!(
                "no complete answer to {:?}: {:?}",
                String::from_utf8_lossy(&request[..request.len().min(80)]),
                String::from_utf8_lossy(&bytes)
            ),
        };
        bytes.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&bytes).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .to_ascii_lowercase()
                .lines()
                .find_map(|l| l.strip_prefix("content-length: ").map(str::to_string))
                .and_then(|l| l.trim().parse::<usize>().ok());
            if n == 0 || length.is_some_and(|l| body.len() >= l) {
                let status = head[9..12].parse().expect("status");
                return (status, head.to_ascii_lowercase(), body.to_string());
            }
        }
        assert!(n > 0, "closed without an answer: {text:?}");
    }
}

fn error_of(head: &str, body: &str) -> String {
    assert!(
        head.contains("content-type: application/json"),
        "not JSON: {head}\n{body}"
    );
    let json: Value = serde_json::from_str(body).expect("a JSON body");
    json["error"]
        .as_str()
        .expect("an error message")
        .to_string()
}

async fn get_json(url: &str) -> Value {
    let text = http().get(url).send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

fn vm(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("the field")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx, &[]);
    let data = tempfile::tempdir().unwrap();
    let timeouts = [
        "--header-timeout",
        "1s",
        "--body-timeout",
        "1s",
        "--idle-timeout",
        "3s",
    ];
    let serve = Serve::start(config.path(), data.path(), &timeouts).await;
    let addr = addr(&serve.url);
    let within = Duration::from_secs(10);

    // Connects and says nothing; sends half its headers; sends a tenth of its body.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-")
        .await
        .unwrap();
    let (silent_after, half_after) = tokio::join!(
        closed_after(&mut silent, within),
        closed_after(&mut half, within)
    );
    for (who, after) in [("silent", silent_after), ("half-sent headers", half_after)] {
        let after = after.unwrap_or_else(|| panic!("{who}: still open after {within:?}"));
        assert!(
            after < Duration::from_secs(3),
            "{who}: closed after {after:?}"
        );
    }
    let (status, head, body) = raw(
        addr,
        b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\"",
    )
    .await;
    assert_eq!(status, 408, "{head}\n{body}");
    assert!(error_of(&head, &body).contains("--body-timeout"), "{body}");

    // A kept-alive connection is closed after --idle-timeout, not --header-timeout.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let after = closed_after(&mut kept, within)
        .await
        .expect("an idle connection is closed");
    assert!(
        after >= Duration::from_millis(2500) && after < Duration::from_secs(6),
        "closed after {after:?}"
    );
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_credentials_are_checked_before_the_body_is_read() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx, &[]);
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let addr = addr(&serve.url);
    const MB: usize = 1_000_000;
    let head = format!(
        "POST /hooks/leads HTTP/1.1\r\nHost: x\r\nX-Token: wrong\r\nContent-Type: application/json\r\nContent-Length: {MB}\r\n\r\n"
    );
    // Without its body, a wrong token is refused at once.
    let (status, h, body) = raw(addr, head.as_bytes()).await;
    assert_eq!(status, 401, "{body}");
    assert!(error_of(&h, &body).contains("wrong X-Token"), "{body}");

    // 200 clients each send all but the last byte of a megabyte: the server holds none
    // of it (it held 200 MB when it read bodies before credentials).
    let pid = serve.child.id();
    let before = vm(pid, "VmHWM:");
    let mut clients = Vec::new();
    for _ in 0..200 {
        let head = head.clone();
        clients.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(head.as_bytes()).await.unwrap();
            let body = vec![b' '; MB - 1];
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&body)).await;
            let mut answer = vec![0u8; 256];
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
            String::from_utf8_lossy(&answer[..n]).to_string()
        }));
    }
    for client in clients {
        let answer = client.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
    }
    let grown_mb = vm(pid, "VmHWM:").saturating_sub(before) / 1024;
    assert!(grown_mb < 60, "peak memory grew by {grown_mb} MB");
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_open_file_limit_caps_connections_and_deliveries_still_go() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx, &[]);
    let data = tempfile::tempdir().unwrap();
    let serve =
        Serve::start_with_files(config.path(), data.path(), &["--header-timeout", "1s"], 200).await;
    // The lines are written before the address file, but read from the pipe by a thread.
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = serve.log().join("\n");
        if log.contains("connections at once") || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(log.contains("open-file limit: 200"), "{log}");
    assert!(
        log.contains("serving at most 136 connections at once"),
        "{log}"
    );
    let addr = addr(&serve.url);
    // 315 idle sockets: more than the process has files.
    let mut idle = Vec::new();
    for _ in 0..315 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let started = Instant::now();
    let response = http()
        .post(format!("{}/events", serve.url))
        .header("content-type", "application/json")
        .body(r#"{"type": "call.disposition", "id": "fd-1", "data": {}}"#)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("answered while idle sockets are parked");
    assert_eq!(response.status(), 202);
    assert!(started.elapsed() < Duration::from_secs(15));
    let deadline = Instant::now() + Duration::from_secs(15);
    while rx.requests().is_empty() {
        assert!(Instant::now() < deadline, "not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(idle);
    let log = serve.stop();
    assert!(!log.contains("Too many open files"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_within_the_drain_with_half_sent_requests_open() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx, &[]);
    let data = tempfile::tempdir().unwrap();
    // Serve::start sets --drain 5s; the client timeouts are far longer.
    let serve = Serve::start(
        config.path(),
        data.path(),
        &["--header-timeout", "120s", "--body-timeout", "120s"],
    )
    .await;
    let addr = addr(&serve.url);
    let mut open = Vec::new();
    for i in 0..20 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let half: &[u8] = if i % 2 == 0 {
            b"POST /events HTTP/1.1\r\nHost: x\r\n"
        } else {
            b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"ty"
        };
        stream.write_all(half).await.unwrap();
        open.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    serve.signal("TERM");
    let (status, log) = serve.wait();
    let took = started.elapsed();
    assert!(status.success(), "{log}");
    assert!(
        took < Duration::from_secs(8),
        "stopped after {took:?}:\n{log}"
    );
    assert!(
        log.contains("closing the connections still open after --drain"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_echoed_by_a_receiver_are_masked_everywhere() {
    // base64("agent:pa>ss?word") is YWdlbnQ6cGE+c3M/d29yZA==: + and / in it.
    let password = "pa>ss?word";
    let encoded = "YWdlbnQ6cGE+c3M/d29yZA==";
    let rx = Receiver::start(vec![], Reply::Echo).await;
    let endpoint = format!(
        "url: {}\nadaptor: contact\nauth:\n  type: basic\n  username: agent\n  password: ${{SECRET}}\nresponse:\n  capture:\n    echoed: $.headers.authorization\n",
        rx.url("/echo")
    );
    let (serve, (_config, data), entries) = one_delivery(&endpoint, password, "basic-1").await;
    // The receiver did get the real credentials.
    assert_eq!(
        rx.requests()[0].header("authorization"),
        Some(format!("Basic {encoded}").as_str())
    );
    let id = entries["entries"][0]["id"].as_str().unwrap().to_string();
    let mut seen = vec![("/api/logs".to_string(), entries.to_string())];
    for path in [
        format!("/api/logs/{id}"),
        "/api/logs/export?format=csv".to_string(),
        "/api/logs/export?format=jsonl".to_string(),
    ] {
        let text = http()
            .get(format!("{}{path}", serve.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        seen.push((path, text));
    }
    assert!(
        seen[1].1.contains("Basic ***"),
        "the echoed header is there, masked: {}",
        seen[1].1
    );
    let log = serve.stop();
    seen.push(("stderr".into(), log));
    let show = cli()
        .args(["logs", "show", &id, "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    seen.push((
        "logs show".into(),
        String::from_utf8_lossy(&show.stdout).into_owned(),
    ));
    for (what, text) in &seen {
        for secret in [password, encoded, "YWdlbnQ6cGE", "agent:pa"] {
            assert!(!text.contains(secret), "{secret} in {what}: {text}");
        }
    }
    for file in files_under(data.path()) {
        let bytes = std::fs::read(&file).unwrap();
        for secret in [password, encoded, "YWdlbnQ6cGE"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in {}",
                file.display()
            );
        }
    }
}

/// `serve` with one endpoint (`endpoint`, YAML, with `${SECRET}` set to `secret`) and a
/// workflow to it; posts one event and waits for its connect log entries.
async fn one_delivery(
    endpoint: &str,
    secret: &str,
    event_id: &str,
) -> (Serve, (ConfigDir, tempfile::TempDir), Value) {
    let config = ConfigDir::new(&[
        ("adaptors/contact.yaml", ADAPTOR),
        ("endpoints/crm.yaml", endpoint),
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    let data = tempfile::tempdir().unwrap();
    let mut command = cli();
    command.env("SECRET", secret);
    let serve = Serve::start_with(command, config.path(), data.path(), &[]).await;
    let response = http()
        .post(format!("{}/events", serve.url))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"type": "call.disposition", "id": "{event_id}", "data": {{"phone": "+15550001"}}}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(15);
    let entries = loop {
        let entries = get_json(&format!("{}/api/logs", serve.url)).await;
        if entries["entries"].as_array().is_some_and(|e| !e.is_empty()) {
            break entries;
        }
        assert!(Instant::now() < deadline, "no entry");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (serve, (config, data), entries)
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unspecified_addresses_are_always_denied() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let port = rx.addr.port();
    let config = ConfigDir::new(&[
        ("adaptors/contact.yaml", ADAPTOR),
        (
            "endpoints/zero.yaml",
            &format!("url: http://0.0.0.0:{port}/x\nadaptor: contact\n"),
        ),
        (
            "endpoints/zero6.yaml",
            &format!("url: http://[::]:{port}/x\nadaptor: contact\n"),
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\nactions:\n  - endpoint: zero\n  - endpoint: zero6\n",
        ),
    ]);
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        config.path(),
        data.path(),
        &["--deny-outbound", "127.0.0.0/8,::1/128"],
    )
    .await;
    let response = http()
        .post(format!("{}/events", serve.url))
        .header("content-type", "application/json")
        .body(r#"{"type": "call.disposition", "id": "zero-1", "data": {}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(15);
    let entries = loop {
        let body = get_json(&format!("{}/api/logs", serve.url)).await;
        let entries = body["entries"].as_array().cloned().unwrap_or_default();
        if entries.len() == 2 {
            break entries;
        }
        assert!(Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for entry in entries {
        assert_eq!(entry["outcome"], "failed", "{entry}");
        assert_eq!(entry["error"]["kind"], "blocked", "{entry}");
    }
    assert!(rx.requests().is_empty());
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_with_an_entry_that_is_not_an_address_is_refused() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(
        &rx,
        &[(
            "endpoints/office.yaml",
            "direction: inbound\npath: /hooks/office\nevent_type: call.disposition\nallow_from: [10.0.0.0/8]\n",
        )],
    );
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        config.path(),
        data.path(),
        &["--trust-proxy", "127.0.0.1/32"],
    )
    .await;
    let post = |xff: &'static str, id: &'static str| {
        let url = format!("{}/hooks/office", serve.url);
        async move {
            let response = http()
                .post(url)
                .header("content-type", "application/json")
                .header("x-forwarded-for", xff)
                .header("idempotency-key", id)
                .body(r#"{"status": "SALE"}"#)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    // The client is the last entry no trusted proxy wrote: 8.8.8.8 (a port is allowed).
    let (status, body) = post("10.1.2.3, 8.8.8.8:4711", "x1").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("8.8.8.8 is not allowed"), "{body}");
    let (status, body) = post("10.1.2.3, 8.8.8.8 junk", "x2").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("is not an address"), "{body}");
    let (status, body) = post("8.8.8.8, 10.1.2.3", "x3").await;
    assert_eq!(status, 202, "{body}");
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_timestamp_far_in_the_past_does_not_wrap_into_the_window() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let hook = format!(
        "direction: inbound\npath: /hooks/signed\nevent_type: call.disposition\nauth:\n  type: signature\n  secret: {secret}\n"
    );
    let config = config(&rx, &[("endpoints/signed.yaml", &hook)]);
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let key = switchboard::engine::signing::SigningKey::parse(secret).unwrap();
    let body = r#"{"status": "SALE"}"#;
    let now = chrono::Utc::now().timestamp();
    // now − 2^63, and i64::MIN itself: both are 292 billion years away.
    for (id, ts) in [("msg-1", now.wrapping_add(i64::MIN)), ("msg-2", i64::MIN)] {
        let response = http()
            .post(format!("{}/hooks/signed", serve.url))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", key.sign(id, ts, body.as_bytes()))
            .body(body)
            .send()
            .await
            .expect("answered, not dropped");
        assert_eq!(response.status(), 401);
        let text = response.text().await.unwrap();
        assert!(text.contains("more than 5 minutes from now"), "{text}");
    }
    // A fresh one passes.
    let response = http()
        .post(format!("{}/hooks/signed", serve.url))
        .header("content-type", "application/json")
        .header("webhook-id", "msg-3")
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", key.sign("msg-3", now, body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_the_server_makes_is_json() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx, &[]);
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let addr = addr(&serve.url);
    let long_url = format!("/api/logs?search={}", "a".repeat(10_000));
    let huge_header = format!("X-Big: {}\r\n", "b".repeat(80_000));
    let cases: Vec<(String, u16, &str)> = vec![
        (
            "GET /events HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            405,
            "does not take GET",
        ),
        (
            "DELETE /api/logs HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            405,
            "does not take DELETE",
        ),
        (
            format!("GET {long_url} HTTP/1.1\r\nHost: x\r\n\r\n"),
            414,
            "URL is over",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{huge_header}\r\n"),
            431,
            "byte limit",
        ),
        ("GARBAGE\r\n\r\n".into(), 400, "malformed HTTP request"),
        (
            "GET /x HTTP/1.1\r\nBad Header\r\n\r\n".into(),
            400,
            "malformed HTTP request",
        ),
        (
            "POST /events/%FF HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}".into(),
            400,
            "Invalid URL",
        ),
        (
            "GET /ui/nope HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            404,
            "no such file",
        ),
        (
            "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            404,
            "no route",
        ),
    ];
    for (request, expected, says) in cases {
        let (status, head, body) = raw(addr, request.as_bytes()).await;
        let shown = &request[..request.len().min(60)];
        assert_eq!(status, expected, "{shown:?}: {head}\n{body}");
        let message = error_of(&head, &body);
        assert!(message.contains(says), "{shown:?}: {message}");
    }
    // The server is fine after all that.
    let (status, _, _) = raw(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_refuse_bodies_of_the_wrong_kind_and_empty_ids() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(
        &rx,
        &[(
            "endpoints/calls.yaml",
            "direction: inbound\npath: /hooks/calls\nevent_type: call.disposition\nevent_id: \"{{ call_id }}-{{ type }}\"\n",
        )],
    );
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let url = format!("{}/hooks/calls", serve.url);
    let post = |content_type: Option<&'static str>, body: &'static str| {
        let url = url.clone();
        async move {
            let mut request = http().post(url).body(body);
            if let Some(kind) = content_type {
                request = request.header("content-type", kind);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let cases = [
        (
            Some("application/xml"),
            "<call_id>1</call_id>",
            415,
            "application/xml",
        ),
        (Some("text/plain"), "hello", 415, "text/plain"),
        (None, "hello", 415, "no Content-Type"),
        (Some("application/json"), "", 400, "the body is empty"),
        (Some("application/json"), "  \n", 400, "the body is empty"),
        (
            Some("application/json"),
            r#"{"status": "SALE"}"#,
            400,
            "event_id rendered \"-\"",
        ),
        (
            Some("application/x-www-form-urlencoded"),
            "status=SALE",
            400,
            "event_id rendered",
        ),
    ];
    for (kind, body, expected, says) in cases {
        let (status, text) = post(kind, body).await;
        assert_eq!(status, expected, "{kind:?} {body:?}: {text}");
        let json: Value = serde_json::from_str(&text).expect("JSON");
        assert!(json["error"].as_str().unwrap().contains(says), "{text}");
    }
    // Nothing was accepted, so a real event is new, and JSON with a charset or a +json
    // type is JSON.
    let (status, text) = post(
        Some("application/json; charset=utf-8"),
        r#"{"call_id": "c1", "type": "end"}"#,
    )
    .await;
    assert_eq!(status, 202, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["duplicate"], false);
    assert_eq!(answer["id"], "c1-end");
    let (status, text) = post(
        Some("application/vnd.convolo+json"),
        r#"{"call_id": "c2", "type": "end"}"#,
    )
    .await;
    assert_eq!(status, 202, "{text}");
    let (status, text) = post(None, r#"{"call_id": "c3", "type": "end"}"#).await;
    assert_eq!(status, 202, "an unlabelled JSON object is taken: {text}");
    // The hook is served without repeated or trailing slashes, whatever the sender adds;
    // `..` names no hook.
    for (path, expected) in [("/hooks//calls/", 202), ("/hooks/calls/", 202)] {
        let response = http()
            .post(format!("{}{path}", serve.url))
            .header("content-type", "application/json")
            .body(format!(r#"{{"call_id": "{path}", "type": "end"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{path}");
    }
    let (status, head, body) = raw(
        addr(&serve.url),
        b"POST /hooks/x/../calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    error_of(&head, &body);
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_from_a_present_field_or_from_no_field_is_taken() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(
        &rx,
        &[
            (
                "endpoints/seq.yaml",
                "direction: inbound\npath: /hooks/seq\nevent_type: lead.created\nevent_id: \"{{ seq | default(0) }}\"\n",
            ),
            (
                "endpoints/beat.yaml",
                "direction: inbound\npath: /hooks/beat\nevent_type: lead.created\nevent_id: heartbeat\n",
            ),
            (
                "endpoints/daily.yaml",
                "direction: inbound\npath: /hooks/daily\nevent_type: lead.created\nevent_id: \"{{ event.received_at | date('Y-m-d') }}\"\n",
            ),
        ],
    );
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let post = |path: &'static str, body: &'static str| {
        let url = format!("{}{path}", serve.url);
        async move {
            let response = http()
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    // `seq: 0` is the field's own value, not its default.
    let (status, text) = post("/hooks/seq", r#"{"seq": 0}"#).await;
    assert_eq!(status, 202, "{text}");
    let (status, text) = post("/hooks/seq", r#"{"other": 1}"#).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("lacks the fields"), "{text}");
    // An id that reads no field (one event per day, a heartbeat) is meant.
    for path in ["/hooks/beat", "/hooks/daily"] {
        let (status, text) = post(path, r#"{"any": 1}"#).await;
        assert_eq!(status, 202, "{path}: {text}");
        let (status, text) = post(path, r#"{"any": 2}"#).await;
        assert_eq!(status, 202, "{path}: {text}");
        assert!(text.contains(r#""duplicate":true"#), "{path}: {text}");
    }
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_url_echoed_as_basic_is_masked() {
    // reqwest sends https://bob:pass@host/ as Authorization: Basic base64("bob:pass");
    // "bob:" is 4 bytes, so base64 of the password alone is not in it.
    let password = "p\u{e4}55w\u{f6}rd";
    let encoded = "Ym9iOnDDpDU1d8O2cmQ=";
    let rx = Receiver::start(vec![], Reply::Echo).await;
    let endpoint = format!(
        "url: http://bob:${{SECRET}}@{}/echo\nadaptor: contact\n",
        rx.addr
    );
    let (serve, _data, entries) = one_delivery(&endpoint, password, "url-1").await;
    assert_eq!(
        rx.requests()[0].header("authorization"),
        Some(format!("Basic {encoded}").as_str())
    );
    let text = entries.to_string();
    assert!(text.contains("Basic ***"), "{text}");
    assert!(!text.contains("Ym9iOnDDpDU1d8O2cmQ"), "{text}");
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unicode_secret_echoed_in_php_json_is_masked() {
    // PHP's json_encode and Python's json.dumps write "pä55wörd" as "p\u00e455w\u00f6rd".
    let echoed = r#"{"token":"p\u00e455w\u00f6rd"}"#;
    let rx = Receiver::start(
        vec![],
        Reply::Full(
            200,
            vec![("content-type", "application/json".into())],
            echoed.into(),
        ),
    )
    .await;
    let endpoint = format!(
        "url: {}\nadaptor: contact\nauth:\n  type: bearer\n  token: ${{SECRET}}\n",
        rx.url("/echo")
    );
    let (serve, _data, entries) = one_delivery(&endpoint, "p\u{e4}55w\u{f6}rd", "php-1").await;
    let text = entries.to_string();
    assert!(text.contains("token"), "{text}");
    assert!(!text.contains("u00e455w"), "{text}");
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_unless_public() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx, &[]);
    let get = |url: String, token: Option<&'static str>| async move {
        let mut request = http().get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    };
    let data = tempfile::tempdir().unwrap();
    let mut command = cli();
    command.env("SWITCHBOARD_API_TOKEN", "t0ken-for-tests");
    let serve = Serve::start_with(command, config.path(), data.path(), &[]).await;
    let metrics = format!("{}/metrics", serve.url);
    let (status, text) = get(metrics.clone(), None).await;
    assert_eq!(status, 401, "{text}");
    assert!(
        !text.contains("/hooks/leads") && !text.contains("leads"),
        "{text}"
    );
    let (status, text) = get(metrics.clone(), Some("t0ken-for-tests")).await;
    assert_eq!(status, 200);
    assert!(text.contains("switchboard_"), "{text}");
    serve.stop();

    let mut command = cli();
    command.env("SWITCHBOARD_API_TOKEN", "t0ken-for-tests");
    let serve = Serve::start_with(command, config.path(), data.path(), &["--public-metrics"]).await;
    let (status, _) = get(format!("{}/metrics", serve.url), None).await;
    assert_eq!(status, 200);
    serve.stop();
}

#[test]
fn limits_that_would_refuse_everyone_are_refused_at_start() {
    let data = tempfile::tempdir().unwrap();
    for (flag, value, says) in [
        (
            "--header-timeout",
            "0s",
            "--header-timeout must be more than 0s",
        ),
        (
            "--idle-timeout",
            "0s",
            "--idle-timeout must be more than 0s",
        ),
        (
            "--max-connections",
            "0",
            "--max-connections must be at least 1",
        ),
    ] {
        let output = cli()
            .args(["serve", "--config"])
            .arg(common::root())
            .arg("--data")
            .arg(data.path())
            .args(["--listen", "127.0.0.1:0", flag, value])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{stderr}");
    }
}

/// Whether the server still holds its end of the connection from `client` (a closed end
/// with unsent data lingers in FIN-WAIT, but is no longer ESTABLISHED). Read from
/// /proc/net/tcp, since the client cannot tell while its buffers still hold data.
fn server_holds(server: SocketAddr, client: SocketAddr) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!("0100007F:{:04X}", server.port());
    let remote = format!("0100007F:{:04X}", client.port());
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 3 && fields[1] == local && fields[2] == remote && fields[3] == "01"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_its_answers_a_byte_at_a_time_is_cut_off() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx, &[]);
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(config.path(), data.path(), &["--idle-timeout", "2s"]).await;
    let server = addr(&serve.url);
    // A small receive buffer, and 300 pipelined requests for a 15 KB file: the answers
    // back up in the server's socket, and the client takes a byte every 200 ms.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let client = stream.local_addr().unwrap();
    let requests = "GET /ui/app.js HTTP/1.1\r\nHost: x\r\n\r\n".repeat(300);
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        stream.write_all(requests.as_bytes()),
    )
    .await;
    let started = Instant::now();
    let mut byte = [0u8; 1];
    while server_holds(server, client) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a byte-a-time reader is still served after 20 s"
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut byte)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let closed = started.elapsed();
    assert!(closed < Duration::from_secs(10), "closed after {closed:?}");
    serve.stop();
}
