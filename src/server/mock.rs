//! `switchboard mock`: a receiver for trying configurations. It prints every request it
//! gets (method, path, headers, body) and answers with a fixed status.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use tokio::net::TcpListener;

/// How the mock answers.
#[derive(Debug, Clone)]
pub struct MockSettings {
    /// Status of every answer.
    pub status: u16,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Print nothing (for load tests).
    pub quiet: bool,
}

/// Serves until the process is stopped.
pub async fn run(listener: TcpListener, settings: MockSettings) -> std::io::Result<()> {
    let settings = Arc::new(settings);
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let settings = settings.clone();
            async move {
                if !settings.quiet {
                    let mut text = format!("{method} {uri}\n");
                    for (name, value) in &headers {
                        text.push_str(&format!(
                            "  {name}: {}\n",
                            value.to_str().unwrap_or("<binary>")
                        ));
                    }
                    if !body.is_empty() {
                        text.push_str(&format!("\n  {}\n", String::from_utf8_lossy(&body)));
                    }
                    println!("{text}");
                }
                if !settings.delay.is_zero() {
                    tokio::time::sleep(settings.delay).await;
                }
                let status = StatusCode::from_u16(settings.status).unwrap_or(StatusCode::OK);
                (
                    status,
                    [("content-type", "application/json")],
                    "{\"ok\":true}",
                )
                    .into_response()
            }
        },
    );
    axum::serve(listener, app).await
}
