//! The exchange with a receiver and its judgement, two stages of an attempt: send the
//! request within the endpoint's timeout and read the response (or classify the transport
//! failure), then judge the response by the endpoint's rules and take its captures.

use std::error::Error as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::Dispatcher;
use super::response;
use crate::engine::Engine;
use crate::engine::request::{Endpoint, Request};
use crate::engine::units::show_duration;
use crate::store::Outcome;
use crate::store::record::{AttemptError, ErrorKind, LoggedResponse};

/// The log keeps this much of a response body.
pub const LOGGED_BODY: usize = 64 * 1024;
/// Success checks and captures read this much of a response body.
const READ_LIMIT: usize = 1024 * 1024;
/// Requests with a larger body are not sent (`body_too_large`).
pub const MAX_REQUEST_BODY: usize = 10 * 1024 * 1024;

/// What one attempt came to, before it is written down.
pub(super) struct Verdict {
    pub(super) outcome: Outcome,
    pub(super) error: Option<AttemptError>,
    pub(super) response: Option<LoggedResponse>,
    pub(super) captured: IndexMap<String, serde_json::Value>,
    /// The same values as received, unmasked: what the steps after this one read (kept on
    /// the delivery record, never in the log).
    pub(super) values: IndexMap<String, serde_json::Value>,
    /// What did not stop the attempt but did not go as configured: a response body that
    /// does not parse as its format, a capture that matched nothing.
    pub(super) warnings: Vec<String>,
    pub(super) retryable: bool,
    pub(super) retry_after: Option<Duration>,
    /// Whether the endpoint answered: Some(true) once response headers arrived, Some(false)
    /// when it could not be reached (DNS, refused or failed connect, TLS, timeout before
    /// any answer), None when nothing went out or the failure says nothing either way.
    pub(super) reached: Option<bool>,
}

impl Verdict {
    pub(super) fn failed(kind: ErrorKind, message: String, retryable: bool) -> Verdict {
        Verdict {
            outcome: Outcome::Failed,
            error: Some(AttemptError { kind, message }),
            response: None,
            captured: IndexMap::new(),
            values: IndexMap::new(),
            warnings: Vec::new(),
            retryable,
            retry_after: None,
            reached: None,
        }
    }
}

/// `host:port` of a URL, for messages.
fn host_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or("?"),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => url.to_string(),
    }
}

/// A response as received: what [`judge`] reads.
pub(super) struct Exchanged {
    status: reqwest::StatusCode,
    headers: HeaderMap,
    /// The first [`READ_LIMIT`] bytes of the body.
    body: Vec<u8>,
    duration_ms: u64,
}

impl Exchanged {
    /// The response's status code.
    pub(super) fn status(&self) -> u16 {
        self.status.as_u16()
    }
}

/// Sends the request (unless it is too large or its destination is not allowed) and reads
/// the response, within the endpoint's timeout. A transport failure is its verdict.
pub(super) async fn exchange(
    d: &Dispatcher,
    engine: &Engine,
    endpoint: &Endpoint,
    request: &Request,
) -> Result<Exchanged, Verdict> {
    let host = host_of(&request.url);
    if request
        .body
        .as_ref()
        .is_some_and(|b| b.len() > MAX_REQUEST_BODY)
    {
        return Err(Verdict::failed(
            ErrorKind::BodyTooLarge,
            format!(
                "the request body is {} bytes, over the {} byte limit",
                request.body.as_ref().map_or(0, String::len),
                MAX_REQUEST_BODY
            ),
            false,
        ));
    }
    if let Err(why) = d.policy.check_url(&request.url).await {
        return Err(Verdict::failed(ErrorKind::Blocked, why, false));
    }
    let http = build(d, request).map_err(|why| Verdict::failed(ErrorKind::Render, why, false))?;
    let timeout = endpoint.policy.timeout;
    let started = tokio::time::Instant::now();
    let answered = std::sync::atomic::AtomicBool::new(false);
    let exchange = async {
        let response = d.client.execute(http).await?;
        answered.store(true, std::sync::atomic::Ordering::Relaxed);
        let status = response.status();
        let headers = response.headers().clone();
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = READ_LIMIT.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room <= chunk.len() {
                break;
            }
        }
        Ok::<_, reqwest::Error>((status, headers, body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(Verdict {
            reached: Some(answered.load(std::sync::atomic::Ordering::Relaxed)),
            ..Verdict::failed(
                ErrorKind::Timeout,
                format!(
                    "no response from {host} within {} (the endpoint's timeout)",
                    show_duration(timeout)
                ),
                true,
            )
        }),
        Ok(Err(e)) => {
            // reqwest's messages include the URL, credentials of `auth: query` and all.
            let mut verdict = classify(&e, &host);
            if let Some(error) = verdict.error.as_mut() {
                error.message = engine.redact(&error.message).into_owned();
            }
            if answered.load(std::sync::atomic::Ordering::Relaxed) {
                verdict.reached = Some(true);
            }
            Err(verdict)
        }
        Ok(Ok((status, headers, body))) => Ok(Exchanged {
            status,
            headers,
            body,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }),
    }
}

/// Judges a response by the endpoint's rules: its success codes (and which failures are
/// retried, with `Retry-After` on 429 and 503), then `success_key`/`success_value`; takes
/// the captures. Pure: the same response always gets the same verdict.
pub(super) fn judge(
    engine: &Engine,
    endpoint: &Endpoint,
    url: &str,
    exchanged: Exchanged,
) -> Verdict {
    let host = host_of(url);
    let Exchanged {
        status,
        headers,
        body,
        duration_ms,
    } = exchanged;
    let text = String::from_utf8_lossy(&body);
    let logged_body = truncate(&text, LOGGED_BODY);
    let code = status.as_u16();
    let response = LoggedResponse {
        status: code,
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    engine
                        .redact(&String::from_utf8_lossy(v.as_bytes()))
                        .into_owned(),
                )
            })
            .collect(),
        body: engine.redact(logged_body).into_owned(),
        duration_ms,
    };
    let check = &endpoint.policy.response;
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let needs_parse = check.success_key.is_some() || !check.capture.is_empty();
    let (parsed, unparsed) =
        match needs_parse.then(|| response::parse_checked(check.format, content_type, &text)) {
            Some((doc, why)) => (Some(doc), why),
            None => (None, None),
        };
    let mut captured = IndexMap::new();
    let mut values = IndexMap::new();
    let mut missed = Vec::new();
    if let Some(doc) = &parsed {
        for (name, field) in &check.capture {
            match field.resolve_in(doc) {
                Some(value) => {
                    captured.insert(name.clone(), redact_value(engine, value.clone()));
                    values.insert(name.clone(), value.clone());
                }
                None => missed.push(name.as_str()),
            }
        }
    }
    // Only a success is expected to carry what the captures read: an error page that is
    // not JSON says nothing about the configuration.
    let mut warnings = Vec::new();
    if endpoint.policy.success_codes.contains(code) {
        warnings.extend(unparsed);
        warnings.extend(
            missed
                .iter()
                .map(|name| format!("capture {name} matched nothing in the response")),
        );
    }
    let mut verdict = Verdict {
        outcome: Outcome::Delivered,
        error: None,
        response: Some(response),
        captured,
        values,
        warnings,
        retryable: false,
        retry_after: None,
        reached: Some(true),
    };
    if !endpoint.policy.success_codes.contains(code) {
        let retryable = endpoint.policy.retry_on.contains(code);
        let reason = status.canonical_reason().unwrap_or("");
        let snippet = one_line(&engine.redact(truncate(&text, 200)));
        let mut message = format!("HTTP {code} {reason} from {host}");
        if !snippet.is_empty() {
            message.push_str(&format!(": {snippet}"));
        }
        if !retryable {
            message.push_str(&format!(
                " (not retried: {code} is not in retry_on [{}])",
                endpoint.policy.retry_on
            ));
        }
        verdict.outcome = Outcome::Failed;
        verdict.error = Some(AttemptError {
            kind: ErrorKind::Status,
            message,
        });
        verdict.retryable = retryable;
        if matches!(code, 429 | 503) {
            verdict.retry_after = headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(retry_after);
        }
        return verdict;
    }
    if let (Some(key), Some(doc)) = (&check.success_key, &parsed) {
        let found = key.resolve_in(doc);
        let ok = match (&check.success_value, found) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(want), Some(got)) => crate::engine::value::loose_eq(got, want, false),
        };
        if !ok {
            let seen = crate::engine::value::show(found);
            let wanted = match &check.success_value {
                Some(v) => format!("{v}"),
                None => "present".to_string(),
            };
            verdict.outcome = Outcome::Failed;
            verdict.retryable = true;
            verdict.error = Some(AttemptError {
                kind: ErrorKind::ResponseCheck,
                message: engine
                    .redact(&format!(
                        "HTTP {code}, but the response's success_key is {seen}, expected {wanted}"
                    ))
                    .into_owned(),
            });
        }
    }
    verdict
}

/// A reqwest request from ours.
fn build(d: &Dispatcher, request: &Request) -> Result<reqwest::Request, String> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|e| format!("invalid method: {e}"))?;
    let url = reqwest::Url::parse(&request.url).map_err(|e| format!("invalid URL: {e}"))?;
    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            format!(
                "header {name} has a value that cannot be sent (non-ASCII or control characters)"
            )
        })?;
        headers.append(header, value);
    }
    let mut builder = d.client.request(method, url).headers(headers);
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the request: {e}"))
}

/// A transport error as a kind and a message a person can act on.
fn classify(error: &reqwest::Error, host: &str) -> Verdict {
    let mut chain = Vec::new();
    let mut io_kind = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io_kind = io_kind.or(Some(io.kind()));
        }
        chain.push(e.to_string());
        source = e.source();
    }
    let detail = chain.last().cloned().unwrap_or_else(|| error.to_string());
    let all = chain.join(": ").to_lowercase();
    if let Some(blocked) = chain
        .iter()
        .find(|c| c.contains(super::policy::BLOCKED_MARK))
    {
        return Verdict::failed(ErrorKind::Blocked, blocked.clone(), false);
    }
    // Refused, unresolvable, failed connects and handshakes mean no answer; a connection
    // closed mid-exchange may be a stale pooled connection and says nothing either way.
    let unreachable = io_kind == Some(std::io::ErrorKind::ConnectionRefused)
        || error.is_connect()
        || all.contains("dns error")
        || all.contains("failed to lookup address")
        || all.contains("name or service not known");
    let (kind, message) = if io_kind == Some(std::io::ErrorKind::ConnectionRefused) {
        (
            ErrorKind::Connect,
            format!("connection refused by {host}: is the receiver running and reachable?"),
        )
    } else if all.contains("dns error")
        || all.contains("failed to lookup address")
        || all.contains("name or service not known")
    {
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        (
            ErrorKind::Dns,
            format!("cannot resolve the host name {name}: check the endpoint's URL ({detail})"),
        )
    } else if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
        (
            ErrorKind::Tls,
            format!("TLS handshake with {host} failed: {detail}"),
        )
    } else if io_kind == Some(std::io::ErrorKind::ConnectionReset)
        || all.contains("connection closed before message completed")
        || all.contains("connection reset")
        || error.is_body()
        || error.is_decode()
    {
        (
            ErrorKind::Connect,
            format!("{host} closed the connection before a complete response ({detail})"),
        )
    } else if error.is_connect() {
        (
            ErrorKind::Connect,
            format!("cannot connect to {host}: {detail}"),
        )
    } else {
        (
            ErrorKind::Connect,
            format!("request to {host} failed: {detail}"),
        )
    };
    Verdict {
        reached: (unreachable || kind == ErrorKind::Tls).then_some(false),
        ..Verdict::failed(kind, message, true)
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(text).ok()?;
    at.with_timezone(&Utc)
        .signed_duration_since(Utc::now())
        .to_std()
        .ok()
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn redact_value(engine: &Engine, value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::String(s) => serde_json::Value::String(engine.redact(&s).into_owned()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(
            retry_after(&HeaderValue::from_static("120")),
            Some(Duration::from_secs(120))
        );
        assert_eq!(retry_after(&HeaderValue::from_static("soon")), None);
        let future = (Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let d = retry_after(&HeaderValue::from_str(&future).unwrap()).unwrap();
        assert!(
            d > Duration::from_secs(85) && d <= Duration::from_secs(90),
            "{d:?}"
        );
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
