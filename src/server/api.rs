//! The admin API and the operations endpoints: connect log search with cursor
//! paging, a streamed export, deliveries and replay, dry runs, health and metrics, and the
//! API's own OpenAPI document.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::{App, access};
use crate::engine::event::parse_events;
use crate::report::{CSV_HEADER, csv_row, parse_since, parse_until};
use crate::store::{DeliveryId, LogEntry, LogQuery, Outcome};

type Params = Query<HashMap<String, String>>;

pub(super) fn allow(app: &App, peer: SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    access::check_api(
        app.settings.api_token.as_deref(),
        app.client(peer, headers)?,
        headers,
    )
}

/// The CLI's filters, from query parameters (`cursor` pages: entries older than it).
fn query(
    params: &HashMap<String, String>,
    default_limit: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<LogQuery, ApiError> {
    const KNOWN: [&str; 11] = [
        "endpoint", "workflow", "outcome", "search", "delivery", "since", "until", "limit",
        "cursor", "after", "format",
    ];
    if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {unknown:?} (known: {})",
            KNOWN.join(", ")
        )));
    }
    let text = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
    let limit = match text("limit") {
        None => default_limit,
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("limit must be a number from 1 to 1000, not {n:?}"))
            })?,
    };
    Ok(LogQuery {
        endpoint: text("endpoint"),
        workflow: text("workflow"),
        outcome: text("outcome")
            .map(|o| Outcome::parse(&o))
            .transpose()
            .map_err(ApiError::bad_request)?,
        search: text("search"),
        delivery: text("delivery").map(DeliveryId::new),
        since: text("since")
            .map(|s| parse_since(&s, now))
            .transpose()
            .map_err(ApiError::bad_request)?,
        until: text("until")
            .map(|s| parse_until(&s))
            .transpose()
            .map_err(ApiError::bad_request)?,
        before: text("cursor"),
        after: text("after"),
        limit,
    })
}

/// `GET /api/logs`: `{"entries": [...], "next_cursor": id or null}`, newest first; the next
/// page is `cursor=next_cursor`. Following with `after=ID` the entries come oldest first,
/// and a full page names the next one as `next_after` instead.
pub(super) async fn logs(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    allow(&app, peer, &headers)?;
    let q = query(&params, 50, app.clock().now())?;
    let entries = app.store().search(&q).await?;
    let next = (entries.len() == q.limit)
        .then(|| entries.last().map(|e| e.id.clone()))
        .flatten();
    if q.after.is_some() {
        return Ok(Json(
            json!({"entries": entries, "next_cursor": null, "next_after": next}),
        ));
    }
    Ok(Json(json!({"entries": entries, "next_cursor": next})))
}

/// `GET /api/logs/{id}`.
pub(super) async fn entry(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<LogEntry>, ApiError> {
    allow(&app, peer, &headers)?;
    app.store()
        .entry(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no connect log entry {id}")))
}

/// `GET /api/logs/export?format=csv|jsonl`: every matching entry, newest first, streamed
/// page by page so that a million entries never sit in memory at once.
pub(super) async fn export(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    allow(&app, peer, &headers)?;
    let csv = match params.get("format").map(String::as_str) {
        Some("csv") => true,
        Some("jsonl") | None => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown format {other:?} (known: csv, jsonl)"
            )));
        }
    };
    let mut first = query(&params, 500, app.clock().now())?;
    first.limit = 500;
    struct Page {
        query: Option<LogQuery>,
        header: bool,
    }
    let start = Page {
        query: Some(first),
        header: csv,
    };
    let store = app.store().clone();
    let stream = futures_util::stream::unfold(start, move |mut page| {
        let store = store.clone();
        async move {
            let query = page.query.take()?;
            let entries = match store.search(&query).await {
                Ok(entries) => entries,
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), page)),
            };
            let mut chunk = String::new();
            if page.header {
                chunk.push_str(CSV_HEADER);
                chunk.push('\n');
                page.header = false;
            }
            for e in &entries {
                if csv {
                    chunk.push_str(&csv_row(e));
                } else {
                    chunk.push_str(&serde_json::to_string(e).unwrap_or_default());
                }
                chunk.push('\n');
            }
            if entries.len() == query.limit {
                page.query = Some(LogQuery {
                    before: entries.last().map(|e| e.id.clone()),
                    ..query
                });
            }
            if chunk.is_empty() {
                return None;
            }
            Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), page))
        }
    });
    let (content_type, name) = if csv {
        ("text/csv; charset=utf-8", "connect-log.csv")
    } else {
        ("application/x-ndjson", "connect-log.jsonl")
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `GET /api/deliveries/{id}`: the delivery and its attempts, oldest first.
pub(super) async fn delivery(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    allow(&app, peer, &headers)?;
    let id = DeliveryId::new(id);
    let Some(delivery) = app.store().delivery(&id).await? else {
        return Err(ApiError::not_found(format!("no delivery {id}")));
    };
    let delivery = shown(&app, delivery);
    let attempts = app
        .store()
        .search(&LogQuery {
            delivery: Some(id),
            after: Some(String::new()),
            ..LogQuery::default()
        })
        .await?;
    Ok(Json(json!({"delivery": delivery, "attempts": attempts})))
}

/// A delivery as the API shows it: the values a step captured (kept as received for the
/// steps after it) with every secret masked, as the connect log has them.
fn shown(app: &App, mut delivery: crate::store::Delivery) -> crate::store::Delivery {
    if let Some(values) = &delivery.captured {
        delivery.captured = Some(app.engine().redact_json(values));
    }
    delivery
}

/// `POST /api/deliveries/{id}/replay[?with_followers=true]`: queue it again now (with the
/// steps that run after it); 202 with the delivery (and the followers' ids).
pub(super) async fn replay(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    allow(&app, peer, &headers)?;
    let with_followers = match params.get("with_followers").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "with_followers is true or false, got {other:?}"
            )));
        }
    };
    let id = DeliveryId::new(id);
    let not_found = |e| match e {
        crate::store::StoreError::NotFound(_) => ApiError::not_found(format!("no delivery {id}")),
        e => e.into(),
    };
    let mut ids = vec![id.clone()];
    if with_followers {
        ids = app
            .runtime()
            .with_followers(&ids)
            .await
            .map_err(not_found)?;
    }
    let mut replayed = app.runtime().replay(&ids).await.map_err(not_found)?;
    let delivery = shown(&app, replayed.remove(0));
    let followers: Vec<&DeliveryId> = replayed.iter().map(|d| &d.id).collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"delivery": delivery, "followers": followers})),
    ))
}

/// `POST /api/render`: a dry run of an envelope (or a raw payload with `?type=`), as
/// `render --json` prints it. Sends nothing.
pub(super) async fn render(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Params,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    allow(&app, peer, &headers)?;
    let bytes = app.body(&headers, body).await?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
    let now = app.clock().now();
    let events = parse_events(text, params.get("type").map(String::as_str), now)
        .map_err(|e| ApiError::bad_request(e.0))?;
    let engine = app.engine();
    let runs: Vec<Value> = events
        .iter()
        .map(|e| serde_json::to_value(engine.dry_run(e, now)).unwrap_or_default())
        .collect();
    Ok(Json(match runs.len() {
        1 => runs.into_iter().next().unwrap_or_default(),
        _ => Value::Array(runs),
    }))
}

/// `GET /api/meta`: what the filters can choose from (endpoints, workflows, outcomes).
pub(super) async fn meta(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    allow(&app, peer, &headers)?;
    let engine = app.engine();
    let endpoints: Vec<&str> = engine.endpoints().iter().map(|e| e.name.as_str()).collect();
    let workflows: Vec<&str> = engine.workflows().iter().map(|w| w.name.as_str()).collect();
    Ok(Json(json!({
        "endpoints": endpoints,
        "workflows": workflows,
        "outcomes": ["delivered", "retrying", "failed", "skipped"],
        "notices": app.store().notices(),
    })))
}

/// `GET /api/stats?window=1h|24h`: attempts by endpoint and outcome in the window.
pub(super) async fn stats(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    allow(&app, peer, &headers)?;
    let minutes = match params.get("window").map(String::as_str) {
        None | Some("1h") => 60,
        Some("24h") | Some("1d") => 24 * 60,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown window {other:?} (known: 1h, 24h)"
            )));
        }
    };
    Ok(Json(
        json!({"window_minutes": minutes, "endpoints": app.stats.window(app.clock().now(), minutes)}),
    ))
}

/// The HTTP API as an OpenAPI 3.1 document (`tests/openapi.rs` checks it against the
/// routes).
const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// `GET /api/openapi.json`: [`OPENAPI`], under the API's rules like the rest of `/api`.
pub(super) async fn openapi(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    allow(&app, peer, &headers)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response())
}

/// `GET /healthz`: the process is up.
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: serving (configuration loaded, data folder open and writable, not
/// stopping), with the number of store notices (damage found and worked past).
pub(super) async fn readyz(State(app): State<Arc<App>>) -> Response {
    if let Err(e) = app.store().health() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": e.to_string()})),
        )
            .into_response()
    } else if app.ready.load(Ordering::SeqCst) {
        // Damage the store found and worked past (details in /api/meta: they name files).
        Json(json!({
            "status": "ready",
            "queue_depth": app.store().queue_depth(),
            "notices": app.store().notices().len(),
            "config_differs": app.config_differs.load(Ordering::SeqCst),
        }))
        .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready"})),
        )
            .into_response()
    }
}

/// `GET /metrics`: Prometheus text format. It names every endpoint and hook, so it asks
/// for the API token like `/api` unless `--public-metrics`.
pub(super) async fn metrics(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !app.settings.public_metrics {
        allow(&app, peer, &headers)?;
    }
    let text = app.metrics.render(
        app.store().queue_depth(),
        app.runtime().dispatcher().in_flight(),
        &app.runtime().dispatcher().paused(),
        app.store().writes(),
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// Anything else: 404 with the routes that exist.
pub(super) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {}: see /events, /events/{{type}}, /hooks/..., /api/logs, /api/deliveries/{{id}}, /api/render, /healthz, /readyz, /metrics",
        uri.path()
    ))
}
