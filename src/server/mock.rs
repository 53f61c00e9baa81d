//! `switchboard mock`: a receiver for trying configurations. It prints every request it
//! gets (method, path, headers, body) and answers with the status, body and headers its
//! flags set. It holds no state and sends nothing; it is not part of the delivery path.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

/// One `--status`: `N` for every request, or `/PATH=N` for requests whose path starts with
/// `/PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRule {
    /// The path prefix, or `None` for the default.
    pub prefix: Option<String>,
    /// The status answered.
    pub status: StatusCode,
}

impl std::str::FromStr for StatusRule {
    type Err = String;

    fn from_str(text: &str) -> Result<StatusRule, String> {
        let (prefix, number) = match text.split_once('=') {
            Some((path, number)) => {
                if !path.starts_with('/') {
                    return Err(format!(
                        "`{text}`: a path must start with `/` (as in `/slack=500`)"
                    ));
                }
                (Some(path.to_string()), number)
            }
            None if text.starts_with('/') => {
                return Err(format!(
                    "`{text}`: a path needs its status after `=` (as in `{text}=500`)"
                ));
            }
            None => (None, text),
        };
        let status = number
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|n| (100..=599).contains(n))
            .and_then(|n| StatusCode::from_u16(n).ok())
            .ok_or_else(|| format!("`{number}` is not an HTTP status (100 to 599)"))?;
        Ok(StatusRule { prefix, status })
    }
}

/// One `--header "Name: value"`.
#[derive(Debug, Clone)]
pub struct MockHeader {
    /// The header's name.
    pub name: HeaderName,
    /// Its value.
    pub value: HeaderValue,
}

impl std::str::FromStr for MockHeader {
    type Err = String;

    fn from_str(text: &str) -> Result<MockHeader, String> {
        let Some((name, value)) = text.split_once(':') else {
            return Err(format!(
                "`{text}` is not a header: write it as \"Name: value\""
            ));
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("`{}` is not a header name", name.trim()))?;
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            return Err(format!(
                "{name} is set by the mock from the body it sends; it cannot be given"
            ));
        }
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("the value of {name} has characters a header cannot hold"))?;
        Ok(MockHeader { name, value })
    }
}

/// The largest `--body @FILE` read.
const MAX_BODY: u64 = 16 << 20;

/// `--body`: the text itself, or `@FILE` for a file's contents (at most 16 MiB).
pub fn read_body(text: &str) -> Result<String, String> {
    match text.strip_prefix('@') {
        Some(path) => match crate::config::read_limited(std::path::Path::new(path), MAX_BODY) {
            Ok(Some(text)) => Ok(text),
            Ok(None) => Err(format!("{path} is over {} MiB", MAX_BODY >> 20)),
            Err(e) => Err(format!("cannot read {path}: {e}")),
        },
        None => Ok(text.to_string()),
    }
}

/// What the flags asked for that they cannot say one at a time.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MockError {
    /// Two `--status N` without a path.
    #[error("--status {0} and --status {1}: give one status without a path (the default)")]
    TwoDefaults(u16, u16),
    /// Two `--status /PATH=N` for one path.
    #[error("--status {0} is given twice")]
    TwoForPath(String),
}

/// How the mock answers.
#[derive(Debug, Clone)]
pub struct MockSettings {
    /// The status for requests no rule's path matches (200 unless set).
    pub status: StatusCode,
    /// (path prefix, status), longest prefix first.
    pub rules: Vec<(String, StatusCode)>,
    /// The answer's body; `None` for `{"ok":true}` on 2xx and `{"error":"mock status N"}`
    /// otherwise.
    pub body: Option<String>,
    /// Headers added to every answer.
    pub headers: Vec<MockHeader>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Print nothing (for load tests).
    pub quiet: bool,
}

impl MockSettings {
    /// Settings from the flags: at most one default status, at most one per path.
    pub fn new(
        statuses: Vec<StatusRule>,
        body: Option<String>,
        headers: Vec<MockHeader>,
        delay: Duration,
        quiet: bool,
    ) -> Result<MockSettings, MockError> {
        let mut default: Option<StatusCode> = None;
        let mut rules: Vec<(String, StatusCode)> = Vec::new();
        for rule in statuses {
            match rule.prefix {
                None => match default {
                    Some(first) => {
                        return Err(MockError::TwoDefaults(first.as_u16(), rule.status.as_u16()));
                    }
                    None => default = Some(rule.status),
                },
                Some(path) => {
                    if rules.iter().any(|(p, _)| *p == path) {
                        return Err(MockError::TwoForPath(path));
                    }
                    rules.push((path, rule.status));
                }
            }
        }
        rules.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(MockSettings {
            status: default.unwrap_or(StatusCode::OK),
            rules,
            body,
            headers,
            delay,
            quiet,
        })
    }

    /// The status for a request to `path`: the longest matching prefix's, or the default.
    pub fn status_for(&self, path: &str) -> StatusCode {
        self.rules
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map_or(self.status, |(_, status)| *status)
    }

    /// The whole answer to a request to `path`.
    fn answer(&self, path: &str) -> Response {
        let status = self.status_for(path);
        let body = match &self.body {
            Some(body) => body.clone(),
            None if status.is_success() => "{\"ok\":true}".to_string(),
            None => format!("{{\"error\":\"mock status {}\"}}", status.as_u16()),
        };
        let kind = if serde_json::from_str::<serde_json::Value>(&body).is_ok() {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        if !self.headers.iter().any(|h| h.name == header::CONTENT_TYPE) {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
        }
        // Repeated names are all sent (two Set-Cookie, say).
        for extra in &self.headers {
            headers.append(extra.name.clone(), extra.value.clone());
        }
        response
    }

    /// One line for the start: what it answers.
    pub fn describe(&self) -> String {
        let mut text = format!("answering {}", self.status.as_u16());
        for (prefix, status) in &self.rules {
            text.push_str(&format!(", {prefix}… {}", status.as_u16()));
        }
        text
    }
}

/// What is printed for one request: method, path, headers, body.
fn shown(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    status: StatusCode,
) -> String {
    let mut text = format!("{method} {uri} → {}\n", status.as_u16());
    for (name, value) in headers {
        text.push_str(&format!(
            "  {name}: {}\n",
            value.to_str().unwrap_or("<binary>")
        ));
    }
    if !body.is_empty() {
        text.push_str(&format!("\n  {}\n", String::from_utf8_lossy(body)));
    }
    text
}

/// Serves until the process is stopped.
pub async fn run(listener: TcpListener, settings: MockSettings) -> std::io::Result<()> {
    let settings = Arc::new(settings);
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let settings = settings.clone();
            async move {
                if !settings.quiet {
                    let status = settings.status_for(uri.path());
                    println!("{}", shown(&method, &uri, &headers, &body, status));
                }
                if !settings.delay.is_zero() {
                    tokio::time::sleep(settings.delay).await;
                }
                settings.answer(uri.path())
            }
        },
    );
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(statuses: &[&str]) -> MockSettings {
        let rules = statuses.iter().map(|s| s.parse().unwrap()).collect();
        MockSettings::new(rules, None, Vec::new(), Duration::ZERO, true).unwrap()
    }

    #[test]
    fn the_longest_prefix_wins_and_the_default_is_200() {
        let s = settings(&["/crm=500", "/crm/contacts=201"]);
        assert_eq!(s.status_for("/crm/contacts/1"), StatusCode::CREATED);
        assert_eq!(
            s.status_for("/crm/deals"),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(s.status_for("/slack"), StatusCode::OK);
        let s = settings(&["404", "/ok=200"]);
        assert_eq!(s.status_for("/x"), StatusCode::NOT_FOUND);
        assert_eq!(s.status_for("/ok"), StatusCode::OK);
    }

    #[test]
    fn bad_statuses_say_what_is_wrong() {
        let err = |t: &str| t.parse::<StatusRule>().unwrap_err();
        assert!(err("99").contains("100 to 599"), "{}", err("99"));
        assert!(err("600").contains("100 to 599"));
        assert!(err("ok").contains("not an HTTP status"));
        assert!(err("slack=500").contains("must start with `/`"));
        assert!(err("/slack").contains("after `=`"));
        let two = |a: &str, b: &str| {
            MockSettings::new(
                vec![a.parse().unwrap(), b.parse().unwrap()],
                None,
                Vec::new(),
                Duration::ZERO,
                true,
            )
            .unwrap_err()
        };
        assert_eq!(two("200", "500"), MockError::TwoDefaults(200, 500));
        assert_eq!(two("/a=200", "/a=500"), MockError::TwoForPath("/a".into()));
    }

    #[test]
    fn bad_headers_say_what_is_wrong() {
        assert!(
            "X-Id 1"
                .parse::<MockHeader>()
                .unwrap_err()
                .contains("Name: value")
        );
        assert!(
            "X Id: 1"
                .parse::<MockHeader>()
                .unwrap_err()
                .contains("header name")
        );
        let h: MockHeader = "X-Id:  7 ".parse().unwrap();
        assert_eq!((h.name.as_str(), h.value.to_str().unwrap()), ("x-id", "7"));
    }
}
