//! `POST /events` (an envelope or an array of them) and `POST /events/{type}` (a raw
//! payload): checked, stored durably with their deliveries, then answered 202.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::error::ApiError;
use super::{App, access};
use crate::engine::event::{Event, EventId, event_from_value};
use crate::store::Accepted;

/// The answer for one accepted event.
pub(super) fn answer(accepted: &Accepted) -> Value {
    json!({
        "id": accepted.event_id,
        "deliveries": accepted.deliveries,
        "duplicate": accepted.duplicate,
    })
}

fn parse(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))
}

/// The `Idempotency-Key` header, as an event id.
fn idempotency_key(headers: &HeaderMap) -> Option<EventId> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(EventId::new)
}

/// Refuses events of a type no workflow listens for (unknown type: 404).
fn known(app: &App, events: &[Event]) -> Result<(), ApiError> {
    let engine = app.engine();
    match events.iter().find(|e| !engine.knows_type(&e.kind)) {
        None => Ok(()),
        Some(e) => {
            let types = engine.event_types();
            let known = if types.is_empty() {
                "none".to_string()
            } else {
                types.join(", ")
            };
            Err(ApiError::not_found(format!(
                "unknown event type {:?}: no workflow listens for it (known: {known})",
                e.kind
            )))
        }
    }
}

/// `POST /events`.
pub(super) async fn envelopes(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    access::check_api(
        app.settings.api_token.as_deref(),
        app.client(peer, &headers)?,
        &headers,
    )?;
    let bytes = app.body(&headers, body).await?;
    let now = app.clock().now();
    let (items, many) = match parse(&bytes)? {
        Value::Array(items) if items.is_empty() => {
            return Err(ApiError::bad_request("an empty array: no events to accept"));
        }
        Value::Array(items) => (items, true),
        other => (vec![other], false),
    };
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let had_id = item.get("id").is_some();
        let mut event = event_from_value(item, None, now).map_err(|e| {
            ApiError::bad_request(if many {
                format!("event {}: {e}", i + 1)
            } else {
                e.0
            })
        })?;
        if !many
            && !had_id
            && let Some(key) = idempotency_key(&headers)
        {
            event.id = key;
        }
        // `received_at` is the time of arrival, whatever the sender wrote.
        event.received_at = now;
        events.push(event);
    }
    known(&app, &events)?;
    let accepted = app.accept(events).await?;
    let body = if many {
        Value::Array(accepted.iter().map(answer).collect())
    } else {
        answer(&accepted[0])
    };
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// `POST /events/{type}`: the body is the event data.
pub(super) async fn raw(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    access::check_api(
        app.settings.api_token.as_deref(),
        app.client(peer, &headers)?,
        &headers,
    )?;
    let bytes = app.body(&headers, body).await?;
    let now = app.clock().now();
    let mut event = event_from_value(parse(&bytes)?, Some(&kind), now)
        .map_err(|e| ApiError::bad_request(e.0))?;
    if let Some(key) = idempotency_key(&headers) {
        event.id = key;
    }
    let events = vec![event];
    known(&app, &events)?;
    let accepted = app.accept(events).await?;
    Ok((StatusCode::ACCEPTED, Json(answer(&accepted[0]))))
}
