//! Real HTTP receivers on 127.0.0.1:0 for delivery tests: scripted answers, every request
//! recorded, the most requests seen at once counted; and peers that reset the connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status, empty body.
    Status(u16),
    /// This status, headers and body.
    Full(u16, Vec<(&'static str, String)>, String),
    /// Wait this long, then 200.
    Stall(Duration),
    /// 200 with the request's headers as a JSON object, as echo services answer.
    Echo,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    seen: Mutex<Vec<Received>>,
    now: AtomicUsize,
    most: AtomicUsize,
}

/// A receiver on 127.0.0.1, answering from a script then with a default.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl Receiver {
    pub async fn start(script: Vec<Reply>, default: Reply) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Receiver::start_on(listener, script, default)
    }

    /// A receiver on a listener the caller opened (for example on a port that refused
    /// connections until now).
    pub fn start_on(
        listener: tokio::net::TcpListener,
        script: Vec<Reply>,
        default: Reply,
    ) -> Receiver {
        let state = Arc::new(State::default());
        *state.script.lock().unwrap() = script.into();
        *state.default.lock().unwrap() = Some(default);
        let addr = listener.local_addr().expect("addr");
        let shared = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move { answer(state, method, uri, headers, body).await }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Receiver { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The most requests that were being answered at the same time.
    pub fn most_at_once(&self) -> usize {
        self.state.most.load(Ordering::SeqCst)
    }
}

async fn answer(
    state: Arc<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = state.now.fetch_add(1, Ordering::SeqCst) + 1;
    state.most.fetch_max(now, Ordering::SeqCst);
    state.seen.lock().unwrap().push(Received {
        at: std::time::Instant::now(),
        method: method.to_string(),
        uri: uri.to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| state.default.lock().unwrap().clone());
    let response = match reply.unwrap_or(Reply::Status(200)) {
        Reply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Reply::Full(code, headers, body) => {
            let mut response = (StatusCode::from_u16(code).unwrap(), body).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Reply::Echo => {
            let echoed: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().into()))
                .collect();
            (
                [("content-type", "application/json")],
                serde_json::json!({ "headers": echoed }).to_string(),
            )
                .into_response()
        }
        Reply::Stall(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
    };
    state.now.fetch_sub(1, Ordering::SeqCst);
    response
}

/// A peer that accepts connections, reads the request, and resets the connection.
pub async fn resetting() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
            let _ = stream.set_zero_linger();
            drop(stream);
        }
    });
    addr
}
