//! What every request passes through on its way in and out: URLs over [`MAX_URL`] are
//! refused, every error answer becomes JSON `{"error": ...}` (axum's own 405s and
//! extractor rejections are text or empty), and refusals are counted for `/metrics`.

use std::sync::Arc;

use super::App;
use super::error::ApiError;

/// The longest URL answered (nginx's default); longer ones get 414.
pub const MAX_URL: usize = 8 * 1024;

/// Every request passes here: URLs over [`MAX_URL`] are refused; every error answer is
/// JSON `{"error": ...}` (axum's own 405s and rejections are text, or empty); refused
/// requests are counted by status for `/metrics`.
pub(super) async fn edges(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let uri = request.uri();
    let length = uri.path().len() + uri.query().map_or(0, |q| q.len() + 1);
    let response = if length > MAX_URL {
        ApiError::new(
            axum::http::StatusCode::URI_TOO_LONG,
            format!("the URL is over the {MAX_URL} byte limit"),
        )
        .into_response()
    } else {
        next.run(request).await
    };
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    app.metrics.rejected(status.as_u16());
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = if status == axum::http::StatusCode::METHOD_NOT_ALLOWED {
        let allow = parts
            .headers
            .get(axum::http::header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        format!("{path} does not take {method} (it takes {allow})")
    } else if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    let body = serde_json::json!({ "error": message }).to_string();
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    axum::response::Response::from_parts(parts, axum::body::Body::from(body))
}
