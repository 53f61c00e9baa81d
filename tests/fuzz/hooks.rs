//! The inbound hook path of the real server, over real HTTP on 127.0.0.1: generated
//! requests, written byte by byte (any method, target, header value and body), to hooks
//! with header, signature and query credentials, behind a trusted proxy.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::Value;
use switchboard::engine::signing::SigningKey;

use super::{cases, json, nested, object};
use crate::common::ConfigDir;
use crate::common::server::Server;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Three hooks: header credentials, an inbound adaptor and templated type and id; a
/// Standard Webhooks signature; query credentials on GET. Senders are allowed from 10/8
/// only, so the (trusted) proxy's X-Forwarded-For decides.
fn config() -> ConfigDir {
    ConfigDir::new(&[
        (
            "adaptors/hook-in.yaml",
            "fields:\n  - {to: phone_number, template: \"{{ lead.phone|e164 }}\"}\n  - {from: disposition, to: status, values: {Sale: SALE}, default: NEW}\n  - {from: '@source', to: via}\n  - {from: at, to: at, date_format: iso8601}\n  - {from: n, to: n, type: integer}\n",
        ),
        (
            "endpoints/in.yaml",
            "direction: inbound\npath: /hooks/in\nmethods: [GET, POST]\nevent_type: \"{{ type or 'call.disposition' }}\"\nevent_id: \"{{ id }}\"\nadaptor: hook-in\nallow_from: [10.0.0.0/8]\nauth:\n  type: header\n  name: X-Token\n  value: h3ader\n",
        ),
        (
            "endpoints/signed.yaml",
            &format!(
                "direction: inbound\npath: /hooks/signed\nevent_type: call.disposition\nauth:\n  type: signature\n  secret: {SECRET}\n"
            ),
        ),
        (
            "endpoints/query.yaml",
            "direction: inbound\npath: /hooks/query\nmethods: [GET]\nevent_type: call.disposition\nevent_id: \"{{ call_log_id }}\"\nauth:\n  type: query\n  params:\n    token: t0ken\nrespond: 200\n",
        ),
    ])
}

/// Header names and values, as they go on the wire.
type Headers = Vec<(String, Vec<u8>)>;

/// A webhook-id to sign the body with, and the timestamp to sign at (None: now).
type Signed = (String, Option<i64>);

/// One request, as the bytes that go on the wire.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: Vec<u8>,
    headers: Headers,
    body: Vec<u8>,
}

impl Request {
    fn bytes(&self) -> Vec<u8> {
        let mut out = format!("{} ", self.method).into_bytes();
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(list).prop_map(str::to_string)
}

/// Bytes for a query string or a header value: mostly printable, sometimes not.
fn wire_text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => "[ -~]{0,24}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..16),
        1 => any::<String>().prop_map(String::into_bytes),
    ]
}

fn query() -> impl Strategy<Value = Vec<u8>> {
    let pair = prop_oneof![
        pick(&[
            "token=t0ken",
            "token=wrong",
            "token=",
            "token",
            "call_log_id=41",
            "id=1",
            "call_log_id=",
            "a=%zz",
            "a=%E2%82",
            "=",
            "&&",
            "a=1&a=2&a=3",
            "a[b]=c"
        ]),
        "[a-z%0-9+=&]{0,12}",
    ];
    prop_oneof![
        1 => Just(Vec::new()),
        4 => ("[a-z0-9]{1,8}", prop::collection::vec(pair.clone(), 0..3))
            .prop_map(|(id, p)| format!("?token=t0ken&call_log_id={id}&{}", p.join("&")).into_bytes()),
        2 => prop::collection::vec(pair, 1..4)
            .prop_map(|p| format!("?{}", p.join("&")).into_bytes()),
        1 => prop_oneof![
            "[!-~]{0,24}".prop_map(String::into_bytes),
            wire_text(),
        ].prop_map(|t| [b"?".as_slice(), &t].concat()),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let id = prop_oneof![4 => "[a-z0-9]{1,8}".prop_map(|id| Some(Value::from(id))), 1 => proptest::option::of(json(1))];
    let payload =
        (object(3), id, proptest::option::of(json(1))).prop_map(|(mut data, id, kind)| {
            if let Some(id) = id {
                data["id"] = id;
            }
            if let Some(kind) = kind {
                data["type"] = kind;
            }
            data["lead"] = serde_json::json!({"phone": "(555) 123-4567"});
            data.to_string().into_bytes()
        });
    prop_oneof![
        1 => Just(Vec::new()),
        1 => pick(&[" ", "\r\n\t", "{}", "[]", "null", "1", "\"x\"", "{", "{\"id\": \"\"}",
                    "{\"id\": \"  \"}", "{\"id\": 1e999}", "{\"id\": 18446744073709551616}",
                    "id=41&disposition=Sale", "id=&x=1", "a=%zz&b", "\u{feff}{\"id\": 1}"])
            .prop_map(String::into_bytes),
        4 => payload,
        1 => (50usize..200).prop_map(|n| {
            let deep = nested(n, Value::from(1));
            serde_json::json!({"id": "deep", "x": deep}).to_string().into_bytes()
        }),
        1 => (100usize..3000).prop_map(|n| {
            format!("{{\"id\": \"d\", \"x\": {}1{}}}", "[".repeat(n), "]".repeat(n)).into_bytes()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => "([a-z%0-9]{0,6}=[a-z%0-9+]{0,6}&){0,4}".prop_map(String::into_bytes),
    ]
}

/// Headers: content type, credentials right, wrong or missing, a proxy's forwarded-for,
/// signature headers (sometimes a valid signature of the body), and odd extras.
fn headers() -> impl Strategy<Value = (Headers, Option<Signed>)> {
    let content_type = proptest::option::of(
        prop_oneof![
            6 => pick(&["application/json", "application/json; charset=utf-8",
                        "application/x-www-form-urlencoded"]),
            2 => pick(&["APPLICATION/JSON", "application/xml", "text/plain",
                        "application/vnd.api+json", "multipart/form-data; boundary=x", "", ";",
                        "application/json;;;"]),
            1 => "[ -~]{0,20}",
        ]
        .prop_map(String::into_bytes),
    );
    let token = prop_oneof![
        6 => Just(Some(b"h3ader".to_vec())),
        1 => Just(Some(b" h3ader ".to_vec())),
        1 => Just(None),
        1 => wire_text().prop_map(Some),
    ];
    let forwarded = prop_oneof![
        6 => Just(vec![b"10.1.2.3".to_vec()]),
        1 => Just(vec![]),
        2 => prop::collection::vec(
            prop_oneof![
                pick(&["10.1.2.3", "1.2.3.4", "127.0.0.1", "10.1.2.3, 127.0.0.1", "::1",
                       "[::ffff:10.0.0.1]:80", "10.0.0.1:8080", "999.1.1.1", "", " , ",
                       "unknown", "0.0.0.0"]).prop_map(String::into_bytes),
                wire_text(),
            ],
            1..3,
        ),
    ];
    let timestamp = prop_oneof![
        Just(None),
        Just(Some(0)),
        Just(Some(i64::MIN)),
        Just(Some(i64::MAX)),
        Just(Some(-1)),
    ];
    let timestamp = prop_oneof![4 => Just(None), 1 => timestamp];
    let signature = proptest::option::of((
        prop_oneof![4 => "msg_[a-z0-9]{1,8}", 1 => pick(&["", " "]), 1 => "[ -~]{0,12}"],
        timestamp,
    ));
    let extras = prop_oneof![
        3 => Just(vec![]),
        1 => prop::collection::vec(
            (
                pick(&["Idempotency-Key", "webhook-signature", "webhook-timestamp", "X-Token",
                       "Authorization", "Expect", "Content-Encoding", "Accept", "X-Odd"]),
                wire_text(),
            ),
            1..3,
        ),
    ];
    (content_type, token, forwarded, signature, extras).prop_map(
        |(content_type, token, forwarded, signature, extras)| {
            let mut headers = Vec::new();
            if let Some(ct) = content_type {
                headers.push(("Content-Type".to_string(), ct));
            }
            if let Some(token) = token {
                headers.push(("X-Token".to_string(), token));
            }
            for value in forwarded {
                headers.push(("X-Forwarded-For".to_string(), value));
            }
            headers.extend(extras);
            // Signed once the body is known.
            (headers, signature)
        },
    )
}

fn request() -> impl Strategy<Value = Request> {
    // Mostly the method the hook takes (None), sometimes another or none at all.
    let method = prop_oneof![
        8 => Just(None),
        1 => pick(&["POST", "GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW", "post",
                    "G\u{0}T", "P OST"]).prop_map(Some),
    ];
    let path = prop_oneof![
        4 => Just("/hooks/in".to_string()),
        2 => Just("/hooks/signed".to_string()),
        2 => Just("/hooks/query".to_string()),
        1 => pick(&["/hooks/", "/hooks/IN", "/hooks/in/", "/hooks//in", "/hooks/%69n",
                    "/hooks/in/../in", "/healthz", "/events", "*", "http://x/hooks/in"]),
    ];
    (method, path, query(), headers(), body()).prop_map(
        |(method, path, query, (mut headers, signature), body)| {
            if let Some((id, ts)) = signature {
                let ts = ts.unwrap_or_else(|| chrono::Utc::now().timestamp());
                let key = SigningKey::parse(SECRET).expect("a valid secret");
                headers.push(("webhook-id".into(), id.clone().into_bytes()));
                headers.push(("webhook-timestamp".into(), ts.to_string().into_bytes()));
                headers.push((
                    "webhook-signature".into(),
                    key.sign(&id, ts, &body).into_bytes(),
                ));
            }
            let method = method.unwrap_or_else(|| {
                let get = path == "/hooks/query" || (path == "/hooks/in" && body.is_empty());
                if get { "GET" } else { "POST" }.to_string()
            });
            Request {
                method,
                target: [path.into_bytes(), query].concat(),
                headers,
                body,
            }
        },
    )
}

/// A response: its status and body (chunked bodies decoded).
#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Sends raw bytes and reads the answer until the server closes the connection.
fn exchange(address: &str, bytes: &[u8]) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(super::HANG))?;
    stream.set_write_timeout(Some(super::HANG))?;
    // The server may answer and close before it has read everything (a refused body):
    // a failed write is fine as long as an answer comes.
    let _ = stream.write_all(bytes);
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no response head in {raw:?}")))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok(Response { status, head, body })
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&raw[start..(start + size).min(raw.len())]);
        raw = &raw[(start + size + 2).min(raw.len())..];
    }
    out
}

/// What every answer must be: never a 5xx but 503; an error as JSON `{"error": "..."}`;
/// a success as JSON.
fn check(request: &Request, response: &Response) -> Result<(), TestCaseError> {
    let status = response.status;
    prop_assert!(
        !(500..600).contains(&status) || status == 503,
        "{} for {:?}\n{}",
        status,
        request,
        response.head
    );
    if request.method == "HEAD" {
        return Ok(());
    }
    let body: Value = serde_json::from_slice(&response.body).map_err(|e| {
        TestCaseError::fail(format!(
            "{status} with a body that is not JSON ({e}): {:?}\nfor {request:?}",
            String::from_utf8_lossy(&response.body)
        ))
    })?;
    if !(200..300).contains(&status) {
        let message = body["error"].as_str().unwrap_or_default();
        prop_assert!(
            !message.is_empty(),
            "{} without an error message: {} for {:?}",
            status,
            body,
            request
        );
    } else {
        prop_assert!(body.is_object(), "{} with {}", status, body);
    }
    Ok(())
}

/// Whatever the request, the server answers it as [`check`] says and goes on serving.
#[test]
fn hooks_answer_any_request_with_json_and_keep_serving() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let server = runtime.block_on(Server::start(config(), |settings| {
        settings.trust_proxy = vec!["127.0.0.1/32".parse().unwrap()];
        settings.timeouts.header = Duration::from_secs(5);
    }));
    let address = server.url.trim_start_matches("http://").to_string();
    let mut runner = TestRunner::new(cases(300));
    let seen = std::sync::Mutex::new(Vec::new());
    let outcome = runner.run(&request(), |request| {
        let response = exchange(&address, &request.bytes())
            .map_err(|e| TestCaseError::fail(format!("no answer ({e}) to {request:?}")))?;
        check(&request, &response)?;
        seen.lock().unwrap().push(response.status);
        let health = exchange(
            &address,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .map_err(|e| TestCaseError::fail(format!("stopped serving after {request:?}: {e}")))?;
        prop_assert_eq!(health.status, 200, "after {:?}", request);
        Ok(())
    });
    runtime.block_on(server.stop());
    if let Err(e) = outcome {
        panic!("{e}");
    }
    // The generator must reach past the checks to events taken, or the property says little.
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.iter().any(|s| (200..300).contains(s)),
        "no request was taken: {seen:?}"
    );
}
