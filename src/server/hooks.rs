//! Inbound endpoints at `/hooks/...`: other systems send events here, as GET
//! query parameters, JSON bodies or form bodies. Checked in this order: the path and method,
//! the client's address (`allow_from`), the credentials, then the payload.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::App;
use super::access::same_secret;
use super::error::ApiError;
use super::ingest::answer;
use crate::config::spec::Method as HookMethod;
use crate::engine::event::EventId;
use crate::engine::inbound::InboundEndpoint;
use crate::engine::request::Auth;

/// How far a signed request's timestamp may be from now (Standard Webhooks' tolerance).
const SIGNATURE_TOLERANCE_SECS: u64 = 300;

/// Any request under `/hooks/`.
pub(super) async fn receive(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let engine = app.engine();
    let path = uri.path();
    // Hooks are served at their paths without repeated or trailing slashes, and so are
    // requests read; a path with `.` or `..` parts names no hook.
    let served = crate::config::hook_path(path).unwrap_or_default();
    // The 404 does not list the hooks: their paths may be secrets of their own.
    let Some(hook) = engine
        .inbound()
        .iter()
        .find(|h| h.path == served && h.active)
    else {
        return Err(ApiError::not_found(format!(
            "no inbound endpoint at {path}"
        )));
    };
    let allowed = match method {
        Method::GET => hook.methods.contains(&HookMethod::Get),
        Method::POST => hook.methods.contains(&HookMethod::Post),
        _ => false,
    };
    if !allowed {
        let allow: Vec<&str> = hook.methods.iter().map(|m| m.as_str()).collect();
        return Ok((
            StatusCode::METHOD_NOT_ALLOWED,
            [("allow", allow.join(", "))],
            Json(serde_json::json!({"error": format!("{path} accepts {}, not {method}", allow.join(" and "))})),
        )
            .into_response());
    }
    let client = app.client(peer, &headers)?;
    if !hook.allows(client) {
        return Err(ApiError::forbidden(format!(
            "{client} is not allowed to send to {path} (allow_from)"
        )));
    }
    let mut query: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let now = app.clock().now();
    // Credentials before the body: a stranger cannot make the server read (and hold)
    // a megabyte. A signature covers the body, so it is checked after.
    let signed = matches!(hook.auth, Some(Auth::Signature(_)));
    if !signed {
        authenticate(hook, &headers, &mut query, &[], now.timestamp())?;
    }
    let kind = match method {
        Method::GET => None,
        _ => Some(body_kind(&headers)?),
    };
    let bytes = match kind {
        Some(_) => app.body(&headers, body).await?,
        None => Default::default(),
    };
    if kind.is_some() && bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!(
            "the body is empty: {path} takes a JSON object or a form"
        )));
    }
    if signed {
        authenticate(hook, &headers, &mut query, &bytes, now.timestamp())?;
    }
    let payload = match kind {
        None => pairs_to_map(query),
        Some(kind) => body_payload(kind, &bytes)?,
    };
    let (mut event, warnings) = hook
        .event(payload, engine.templates(), engine.adaptors(), now)
        .map_err(|e| ApiError::bad_request(format!("{path}: {e}")))?;
    for warning in warnings {
        tracing::warn!(hook = %hook.name, "{}", engine.redact(&warning));
    }
    // Without an event_id template, the sender's own id dedupes: a Standard Webhooks
    // `webhook-id` (so that a signed request cannot be replayed), else `Idempotency-Key`.
    if hook.event_id.is_none() {
        let signed = matches!(hook.auth, Some(Auth::Signature(_)));
        let given = if signed {
            "webhook-id"
        } else {
            "idempotency-key"
        };
        if let Some(key) = headers
            .get(given)
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.trim().is_empty())
        {
            event.id = EventId::new(key.trim());
        }
    }
    if event.id.as_str().is_empty() {
        return Err(ApiError::bad_request(format!(
            "{path}: the event id is empty: send an Idempotency-Key header or set event_id"
        )));
    }
    let accepted = app.accept(vec![event]).await?;
    let status = StatusCode::from_u16(hook.respond).unwrap_or(StatusCode::ACCEPTED);
    Ok((status, Json(answer(&accepted[0]))).into_response())
}

/// Checks the hook's credentials; query credentials are removed from the payload so that
/// the secret never becomes event data.
fn authenticate(
    hook: &InboundEndpoint,
    headers: &HeaderMap,
    query: &mut Vec<(String, String)>,
    body: &[u8],
    now: i64,
) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let denied =
        |what: &str| ApiError::unauthorized(format!("{what} (inbound endpoint {})", hook.name));
    match &hook.auth {
        None => Ok(()),
        Some(Auth::Bearer(token)) => {
            match header("authorization").and_then(|v| super::access::scheme(v, "bearer")) {
                Some(given) if same_secret(given.trim(), token) => Ok(()),
                Some(_) => Err(denied("wrong bearer token")),
                None => Err(denied(
                    "missing credentials: send Authorization: Bearer <token>",
                )),
            }
        }
        Some(Auth::Basic(expected)) => match header("authorization") {
            Some(given)
                if super::access::scheme(given, "basic").is_some()
                    && same_basic(given, expected) =>
            {
                Ok(())
            }
            Some(_) => Err(denied("wrong user name or password")),
            None => Err(denied(
                "missing credentials: send HTTP Basic authentication",
            )),
        },
        Some(Auth::Header { name, value }) => match header(name) {
            Some(given) if same_secret(given.trim(), value) => Ok(()),
            Some(_) => Err(denied(&format!("wrong {name} header"))),
            None => Err(denied(&format!(
                "missing credentials: send the {name} header"
            ))),
        },
        Some(Auth::Query(params)) => {
            for (name, value) in params {
                match query.iter().find(|(k, _)| k == name) {
                    Some((_, given)) if same_secret(given, value) => {}
                    Some(_) => return Err(denied(&format!("wrong {name} parameter"))),
                    None => {
                        return Err(denied(&format!(
                            "missing credentials: add ?{name}=… to the URL"
                        )));
                    }
                }
            }
            query.retain(|(k, _)| !params.iter().any(|(name, _)| name == k));
            Ok(())
        }
        // Refused at load: an inbound endpoint cannot use oauth2. Fail closed all the same.
        Some(Auth::OAuth2(_)) => Err(denied("oauth2 cannot authenticate inbound calls")),
        Some(Auth::Signature(key)) => {
            let (Some(id), Some(ts), Some(sig)) = (
                header("webhook-id"),
                header("webhook-timestamp"),
                header("webhook-signature"),
            ) else {
                return Err(denied(
                    "missing webhook-id, webhook-timestamp or webhook-signature header",
                ));
            };
            let ts: i64 = ts
                .trim()
                .parse()
                .map_err(|_| denied("webhook-timestamp is not a number"))?;
            // abs_diff: a timestamp near i64::MIN must not wrap into the window.
            if now.abs_diff(ts) > SIGNATURE_TOLERANCE_SECS {
                return Err(denied("webhook-timestamp is more than 5 minutes from now"));
            }
            if key.verify(id, ts, body, sig) {
                Ok(())
            } else {
                Err(denied("the webhook signature does not match"))
            }
        }
    }
}

/// Compares `Basic <base64>` headers by their decoded credentials.
fn same_basic(given: &str, expected: &str) -> bool {
    let decode = |h: &str| super::access::scheme(h, "basic").and_then(|b| STANDARD.decode(b).ok());
    match (decode(given), decode(expected)) {
        (Some(g), Some(e)) => {
            g.len() == e.len() && subtle::ConstantTimeEq::ct_eq(g.as_slice(), e.as_slice()).into()
        }
        _ => false,
    }
}

/// Query or form pairs as a JSON object; a repeated name becomes a list.
fn pairs_to_map(pairs: Vec<(String, String)>) -> Map<String, Value> {
    let mut map = Map::new();
    for (k, v) in pairs {
        match map.get_mut(&k) {
            Some(Value::Array(items)) => items.push(Value::String(v)),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(v)]);
            }
            None => {
                map.insert(k, Value::String(v));
            }
        }
    }
    map
}

/// What a POST body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Json,
    Form,
    /// No Content-Type: taken if it is a JSON object.
    Unlabelled,
}

/// The body's kind by its Content-Type: JSON (`application/json`, `application/*+json`)
/// or a form (`application/x-www-form-urlencoded`), as Convoso sends either; anything else
/// is 415.
fn body_kind(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
    let Some(value) = headers.get("content-type") else {
        return Ok(BodyKind::Unlabelled);
    };
    let value = value.to_str().unwrap_or_default();
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(BodyKind::Json)
    } else if essence == "application/x-www-form-urlencoded" {
        Ok(BodyKind::Form)
    } else {
        Err(ApiError::unsupported(format!(
            "Content-Type {value:?} is not taken here: send application/json or application/x-www-form-urlencoded"
        )))
    }
}

/// A POST body as the event's payload.
fn body_payload(kind: BodyKind, bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if kind == BodyKind::Form {
        return Ok(pairs_to_map(
            form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::bad_request(format!(
            "expected a JSON object, got {}",
            crate::engine::value::kind(&other)
        ))),
        Err(_) if kind == BodyKind::Unlabelled => Err(ApiError::unsupported(
            "the body has no Content-Type and is not a JSON object: send application/json or application/x-www-form-urlencoded",
        )),
        Err(e) => Err(ApiError::bad_request(format!("malformed JSON: {e}"))),
    }
}
