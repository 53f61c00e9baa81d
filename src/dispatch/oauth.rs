//! OAuth2 access tokens for `auth: {type: oauth2}` endpoints: fetched from the token
//! endpoint on first use, cached per endpoint in this process's memory (each node holds its
//! own), renewed before `expires_in` runs out and when the endpoint answers 401. A refresh
//! token the server returns replaces the configured one, in memory only.
//!
//! Must not: store or log a token (access or refresh) or the client secret; send a token
//! request past the network policy (it goes through the dispatcher's client, whose resolver
//! checks every address) or past the endpoint's timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::time::Instant;

use super::Dispatcher;
use super::exchange::Verdict;
use crate::config::spec::{ClientAuth, OAuth2Grant};
use crate::engine::Engine;
use crate::engine::request::OAuth2;
use crate::engine::secrets::Redactor;
use crate::engine::units::show_duration;
use crate::store::record::ErrorKind;

/// A token is renewed this long before it expires...
const RENEW_EARLY: Duration = Duration::from_secs(60);
/// ...or, for a token that lives less than twice that, half-way through its life (a token
/// of 60 s or less would otherwise never be reused).
const RENEW_FRACTION: u32 = 2;
/// A token response is read up to this size.
const READ_LIMIT: usize = 64 * 1024;
/// Tokens an endpoint issued lately, kept to mask them in what its receiver echoes.
const REMEMBERED: usize = 4;
/// A token request's failure is quoted up to this many characters (after masking).
const MESSAGE_LIMIT: usize = 300;

/// The tokens of every oauth2 endpoint, by endpoint name.
#[derive(Default)]
pub(super) struct Tokens {
    slots: Mutex<HashMap<String, Arc<Entry>>>,
}

/// One endpoint's tokens: the state, whose lock is held through a token request (so that
/// concurrent attempts wait for one request rather than each making their own), and the
/// masking of its recent tokens, which never waits for a token request.
struct Entry {
    slot: tokio::sync::Mutex<Slot>,
    redactor: Mutex<Redactor>,
}

/// One endpoint's token state.
struct Slot {
    /// The configuration the state belongs to: a reload that changes it starts over.
    config: Arc<OAuth2>,
    access: Option<Access>,
    /// The refresh token in use: the configured one, or the last one the server returned.
    refresh: Option<String>,
    /// The latest tokens, access and refresh, for masking (kept across a reload).
    seen: Vec<String>,
    /// The last token request failed: attempts that were waiting for it fail with it.
    failed: Option<Failed>,
}

/// A token request that failed, as its attempt was told.
struct Failed {
    at: Instant,
    message: String,
    retryable: bool,
}

struct Access {
    token: String,
    /// When to renew it (None: only after a 401).
    renew_at: Option<Instant>,
}

/// What the token endpoint answered, when it gave a token.
#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
}

impl Tokens {
    /// An access token for the endpoint: the cached one while it is fresh and is not
    /// `rejected` (the token the endpoint just answered 401 to), else a new one. A failed
    /// token request is the attempt's verdict (`auth`).
    pub(super) async fn token(
        &self,
        d: &Dispatcher,
        engine: &Engine,
        endpoint: &str,
        config: &Arc<OAuth2>,
        timeout: Duration,
        rejected: Option<&str>,
    ) -> Result<String, Verdict> {
        let entry = self.entry(endpoint, config);
        // Another attempt's token request holds the lock: waited for no longer than one
        // request may take, and its failure is this attempt's too (no queue of requests
        // to a token server that does not answer).
        let waiting_since = Instant::now();
        let mut slot = match tokio::time::timeout(timeout, entry.slot.lock()).await {
            Ok(slot) => slot,
            Err(_) => {
                return Err(Verdict::failed(
                    ErrorKind::Auth,
                    format!(
                        "no access token: another attempt's token request to {} took longer than the endpoint's timeout",
                        config.token_url
                    ),
                    true,
                ));
            }
        };
        if let Some(failed) = &slot.failed
            && failed.at >= waiting_since
        {
            return Err(Verdict::failed(
                ErrorKind::Auth,
                failed.message.clone(),
                failed.retryable,
            ));
        }
        if *slot.config != **config {
            let seen = std::mem::take(&mut slot.seen);
            *slot = Slot {
                seen,
                ..Slot::new(config.clone())
            };
        }
        if let Some(access) = &slot.access {
            let fresh = access.renew_at.is_none_or(|at| Instant::now() < at);
            // Another attempt may have renewed it already after its own 401.
            if fresh && rejected != Some(access.token.as_str()) {
                return Ok(access.token.clone());
            }
        }
        slot.access = None;
        let refresh = slot.refresh.clone();
        // A lifetime counts from when the server was asked, not from when its answer came.
        let asked = Instant::now();
        let answer = match fetch(d, config, refresh.as_deref(), timeout).await {
            Ok(answer) => answer,
            Err(failure) => {
                // Masked whole, then shortened: a secret cut in two would not be found.
                let message = engine.redact(&entry.redact(&failure.message)).into_owned();
                let message = one_line(&message, MESSAGE_LIMIT);
                slot.failed = Some(Failed {
                    at: Instant::now(),
                    message: message.clone(),
                    retryable: failure.retryable,
                });
                return Err(Verdict::failed(ErrorKind::Auth, message, failure.retryable));
            }
        };
        slot.failed = None;
        let renew_at = answer.lifetime().and_then(|life| {
            let early = RENEW_EARLY.min(life / RENEW_FRACTION);
            asked.checked_add(life - early)
        });
        if let Some(rotated) = answer.refresh_token.filter(|t| !t.is_empty()) {
            slot.remember(rotated.clone());
            slot.refresh = Some(rotated);
        }
        slot.remember(answer.access_token.clone());
        // The refresh token in use is masked however many tokens came since it did.
        let masked: Vec<String> = slot.seen.iter().chain(&slot.refresh).cloned().collect();
        *entry.redactor.lock().unwrap_or_else(|p| p.into_inner()) = Redactor::new(&masked);
        slot.access = Some(Access {
            token: answer.access_token.clone(),
            renew_at,
        });
        Ok(answer.access_token)
    }

    /// Masks the endpoint's recent tokens in the verdict's response and error, as the
    /// engine's redaction does for configured secrets.
    pub(super) fn redact(&self, endpoint: &str, verdict: &mut Verdict) {
        let Some(entry) = self
            .slots
            .lock()
            .ok()
            .and_then(|s| s.get(endpoint).cloned())
        else {
            return;
        };
        let redact = |text: &mut String| *text = entry.redact(text);
        if let Some(error) = verdict.error.as_mut() {
            redact(&mut error.message);
        }
        if let Some(response) = verdict.response.as_mut() {
            redact(&mut response.body);
            response.headers.values_mut().for_each(redact);
        }
        for value in verdict.captured.values_mut() {
            if let serde_json::Value::String(s) = value {
                redact(s);
            }
        }
        verdict.warnings.iter_mut().for_each(redact);
    }

    fn entry(&self, endpoint: &str, config: &Arc<OAuth2>) -> Arc<Entry> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(endpoint.to_string())
            .or_insert_with(|| {
                Arc::new(Entry {
                    slot: tokio::sync::Mutex::new(Slot::new(config.clone())),
                    redactor: Mutex::new(Redactor::default()),
                })
            })
            .clone()
    }
}

impl Entry {
    /// `text` with the endpoint's recent tokens masked.
    fn redact(&self, text: &str) -> String {
        self.redactor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .redact(text)
            .into_owned()
    }
}

impl Slot {
    fn new(config: Arc<OAuth2>) -> Slot {
        Slot {
            refresh: config.refresh_token.clone(),
            config,
            access: None,
            seen: Vec::new(),
            failed: None,
        }
    }

    fn remember(&mut self, token: String) {
        self.seen.push(token);
        if self.seen.len() > REMEMBERED {
            self.seen.remove(0);
        }
    }
}

impl TokenAnswer {
    /// `expires_in`, a number of seconds (some servers send it as a string).
    fn lifetime(&self) -> Option<Duration> {
        let seconds = match self.expires_in.as_ref()? {
            serde_json::Value::Number(n) => n.as_f64()?,
            serde_json::Value::String(s) => s.trim().parse().ok()?,
            _ => return None,
        };
        // A lifetime too large for a Duration is as good as none: renewed after a 401.
        Duration::try_from_secs_f64(seconds)
            .ok()
            .filter(|life| !life.is_zero())
    }
}

/// Why a token request failed, in the user's terms, and whether trying later may help.
struct Failure {
    message: String,
    retryable: bool,
}

/// One token request.
async fn fetch(
    d: &Dispatcher,
    config: &OAuth2,
    refresh: Option<&str>,
    timeout: Duration,
) -> Result<TokenAnswer, Failure> {
    let url = &config.token_url;
    let fail = |message: String, retryable| Failure {
        message: format!("token request to {url} failed: {message}"),
        retryable,
    };
    if let Err(why) = d.policy.check_url(url).await {
        return Err(fail(why, false));
    }
    // The form is built apart: its serializer is not Send, and must not live across an await.
    let (body, basic) = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        match config.grant {
            OAuth2Grant::ClientCredentials => {
                form.append_pair("grant_type", "client_credentials");
            }
            OAuth2Grant::RefreshToken => {
                form.append_pair("grant_type", "refresh_token");
                form.append_pair("refresh_token", refresh.unwrap_or_default());
            }
        }
        if let Some(scope) = &config.scope {
            form.append_pair("scope", scope);
        }
        for (name, value) in &config.params {
            form.append_pair(name, value);
        }
        let mut basic = None;
        match config.client_auth {
            ClientAuth::Body => {
                form.append_pair("client_id", &config.client_id);
                form.append_pair("client_secret", &config.client_secret);
            }
            ClientAuth::Basic => {
                let pair = format!("{}:{}", config.client_id, config.client_secret);
                basic = Some(format!("Basic {}", STANDARD.encode(pair)));
            }
        }
        (form.finish(), basic)
    };
    let mut request = d
        .client
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json");
    if let Some(basic) = basic {
        request = request.header("Authorization", basic);
    }
    let request = request.body(body);
    let exchange = async {
        let mut response = request.send().await?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
            if body.len() >= READ_LIMIT {
                break;
            }
        }
        Ok::<_, reqwest::Error>((status, body))
    };
    let (status, body) = match tokio::time::timeout(timeout, exchange).await {
        Err(_) => {
            return Err(fail(
                format!(
                    "no response within {} (the endpoint's timeout)",
                    show_duration(timeout)
                ),
                true,
            ));
        }
        Ok(Err(e)) => {
            use std::error::Error as _;
            let mut detail = e.to_string();
            let mut source = e.source();
            while let Some(inner) = source {
                detail = inner.to_string();
                source = inner.source();
            }
            return Err(fail(detail, true));
        }
        Ok(Ok(answer)) => answer,
    };
    let text = String::from_utf8_lossy(&body);
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("");
    if !status.is_success() {
        let parsed: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let said = match (field("error"), field("error_description")) {
            (Some(error), Some(description)) => format!("{error}: {description}"),
            (Some(error), None) => error,
            (None, Some(description)) => description,
            (None, None) => text.to_string(),
        };
        let mut message = format!("HTTP {code} {reason}");
        if !said.is_empty() {
            message.push_str(&format!(": {said}"));
        }
        return Err(fail(message, code == 429 || status.is_server_error()));
    }
    serde_json::from_str::<TokenAnswer>(&text)
        .ok()
        .filter(|answer| !answer.access_token.is_empty())
        .ok_or_else(|| {
            fail(
                format!("HTTP {code} {reason}, but the answer has no access_token"),
                true,
            )
        })
}

/// At most `max` characters of `text`, on one line.
fn one_line(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_read_numbers_and_strings() {
        let answer = |expires: serde_json::Value| TokenAnswer {
            access_token: "t".into(),
            expires_in: Some(expires),
            refresh_token: None,
        };
        assert_eq!(
            answer(serde_json::json!(3600)).lifetime(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            answer(serde_json::json!("7200")).lifetime(),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(answer(serde_json::json!(0)).lifetime(), None);
        assert_eq!(answer(serde_json::json!(-5)).lifetime(), None);
        assert_eq!(answer(serde_json::json!(1e300)).lifetime(), None);
        assert_eq!(answer(serde_json::json!(null)).lifetime(), None);
    }
}
