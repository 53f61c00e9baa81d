//! Outbound endpoints (docs/configuration.md): how a payload becomes an HTTP request — URL, method, headers,
//! body — and how credentials are added (at send time, never stored).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RenderScope;
use super::encode;
use super::field::FieldRef;
use super::signing::SigningKey;
use super::template::TemplateId;
use super::units::{CodeSet, RateLimit};
use crate::config::spec::{ClientAuth, Format, Method, OAuth2Grant, ResponseFormat};

/// An HTTP request, ready to send (before credentials and send-time headers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// GET, POST, PUT, PATCH or DELETE.
    pub method: String,
    /// The full URL, query included.
    pub url: String,
    /// Headers in the order they are sent.
    pub headers: Vec<(String, String)>,
    /// The exact body text, if any.
    pub body: Option<String>,
}

/// A template or a constant: most strings of a configuration have no template syntax,
/// and rendering those would be wasted work.
#[derive(Debug, Clone)]
pub enum Text {
    /// Used as written.
    Const(String),
    /// Rendered per event.
    Template(TemplateId),
}

impl Text {
    /// The text for one event.
    pub fn render(&self, scope: &RenderScope) -> Result<String, String> {
        match self {
            Text::Const(s) => Ok(s.clone()),
            Text::Template(id) => scope.render(*id),
        }
    }
}

/// Whether a string uses template syntax.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// Compiled credentials.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>`
    Bearer(String),
    /// `Authorization: Basic <base64(user:password)>`, precomputed.
    Basic(String),
    /// An API key header.
    Header {
        /// Header name.
        name: String,
        /// Header value.
        value: String,
    },
    /// Query parameters appended to the URL.
    Query(Vec<(String, String)>),
    /// Inbound only: Standard Webhooks verification.
    Signature(SigningKey),
    /// `Authorization: Bearer <access token>`, the token fetched and cached by the
    /// dispatcher (`dispatch/oauth.rs`): never part of the engine.
    OAuth2(Arc<OAuth2>),
}

/// How an OAuth2 access token is obtained (docs/configuration.md, `type: oauth2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2 {
    /// The token endpoint.
    pub token_url: String,
    /// The grant.
    pub grant: OAuth2Grant,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// The configured refresh token (`grant: refresh_token`).
    pub refresh_token: Option<String>,
    /// The scope requested.
    pub scope: Option<String>,
    /// Extra form parameters.
    pub params: Vec<(String, String)>,
    /// Where the client credentials go.
    pub client_auth: ClientAuth,
}

impl Auth {
    /// `Authorization: Basic` from a user name and password.
    pub fn basic(username: &str, password: &str) -> Auth {
        Auth::Basic(format!(
            "Basic {}",
            STANDARD.encode(format!("{username}:{password}"))
        ))
    }

    /// Adds the credentials to a request.
    pub fn apply(&self, request: &mut Request) {
        match self {
            Auth::Bearer(token) => request
                .headers
                .push(("Authorization".into(), format!("Bearer {token}"))),
            Auth::Basic(value) => request
                .headers
                .push(("Authorization".into(), value.clone())),
            Auth::Header { name, value } => request.headers.push((name.clone(), value.clone())),
            Auth::Query(params) => request.url = encode::append_query(&request.url, params),
            // Added by the dispatcher, which holds the token.
            Auth::Signature(_) | Auth::OAuth2(_) => {}
        }
    }

    /// The header whose whole value is a credential, if any.
    pub fn header_name(&self) -> Option<&str> {
        match self {
            Auth::Bearer(_) | Auth::Basic(_) | Auth::OAuth2(_) => Some("Authorization"),
            Auth::Header { name, .. } => Some(name),
            Auth::Query(_) | Auth::Signature(_) => None,
        }
    }
}

/// How the body is made.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body and no payload (a body_template that failed to compile).
    None,
    /// The adaptor's payload (if any), encoded in the endpoint's format: a body, or the
    /// query string for `format: query`.
    Adaptor,
    /// A template producing the whole body.
    Template(TemplateId),
}

/// What decides an attempt's outcome, and how deliveries are paced and retried.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Statuses that mean success.
    pub success_codes: CodeSet,
    /// Statuses that retry (network errors and timeouts always do).
    pub retry_on: CodeSet,
    /// Delay before each retry.
    pub schedule: Vec<Duration>,
    /// Time allowed for one attempt.
    pub timeout: Duration,
    /// Requests in flight at most.
    pub concurrency: u32,
    /// Requests per period at most.
    pub rate_limit: Option<RateLimit>,
    /// Response checks and captures.
    pub response: ResponseCheck,
}

/// Checks on the response body, and values captured from it.
#[derive(Debug, Clone, Default)]
pub struct ResponseCheck {
    /// How to parse the body (None: from Content-Type).
    pub format: Option<ResponseFormat>,
    /// A field that must be present...
    pub success_key: Option<FieldRef>,
    /// ...and, when given, equal this.
    pub success_value: Option<Value>,
    /// name → reference.
    pub capture: Vec<(String, FieldRef)>,
}

/// A compiled outbound endpoint.
#[derive(Debug)]
pub struct Endpoint {
    /// Its name.
    pub name: String,
    /// Inactive endpoints are skipped.
    pub active: bool,
    /// HTTP method.
    pub method: Method,
    /// URL template (values percent-encoded).
    pub url: Text,
    /// Body format.
    pub format: Format,
    /// Adaptor index, when it has one.
    pub adaptor: Option<usize>,
    /// How the body is made.
    pub body: Body,
    /// Content-Type sent with a body.
    pub content_type: Option<String>,
    /// Configured headers.
    pub headers: Vec<(String, Text)>,
    /// Root element for XML.
    pub xml_root: String,
    /// Joins list values in form, query and XML.
    pub delimiter: String,
    /// Credentials, applied at send time.
    pub auth: Option<Auth>,
    /// Standard Webhooks signing, applied at send time.
    pub signing: Option<SigningKey>,
    /// Outcome, retry and pacing rules.
    pub policy: Policy,
    /// `order_by`: what keys its deliveries' order (one at a time per value).
    pub order_by: Option<OrderBy>,
}

/// An endpoint's `order_by`: a field reference, or a template over the event.
#[derive(Debug, Clone)]
pub enum OrderBy {
    /// A field reference, as written.
    Field(String, crate::engine::field::FieldRef),
    /// A template.
    Template(TemplateId),
}

impl OrderBy {
    /// Its value for the event in `scope`, as the store keys the order by (at most 200
    /// characters, no NUL); `None` when it is empty: such deliveries are not ordered.
    pub fn key(&self, scope: &crate::engine::RenderScope) -> Option<String> {
        let text = match self {
            OrderBy::Field(_, field) => {
                let value = field.resolve(scope.event)?;
                if value.is_object() || value.is_array() {
                    return None;
                }
                crate::engine::value::text(&value).into_owned()
            }
            OrderBy::Template(id) => scope.render(*id).ok()?,
        };
        let text = text.trim();
        (!text.is_empty()).then(|| {
            text.chars()
                .take(200)
                .map(|c| if c == '\0' { '\u{fffd}' } else { c })
                .collect()
        })
    }

    /// How it reads in explanations: `lead_id`, or the template.
    pub fn show(&self) -> &str {
        match self {
            OrderBy::Field(name, _) => name,
            OrderBy::Template(_) => "order_by",
        }
    }
}

impl Endpoint {
    /// The longest one attempt can take: the timeout, or for `oauth2` six times it (waiting
    /// for another attempt's token request, a token request, the request, and after a 401
    /// one more of each). Leases last this long plus a margin, so that no other node takes
    /// a delivery still being sent.
    pub fn longest_attempt(&self) -> Duration {
        match self.auth {
            Some(Auth::OAuth2(_)) => self.policy.timeout.saturating_mul(6),
            _ => self.policy.timeout,
        }
    }

    /// Builds the request for one event, from the payload the adaptor built (if any).
    /// The error says which part could not be rendered.
    pub fn request(
        &self,
        scope: &RenderScope,
        payload: Option<&super::payload::Payload>,
    ) -> Result<Request, String> {
        let mut url = self
            .url
            .render(scope)
            .map_err(|e| format!("url template failed: {e}"))?;
        let mut body = None;
        match (&self.body, payload) {
            (Body::Template(id), _) => {
                body = Some(
                    scope
                        .render(*id)
                        .map_err(|e| format!("body_template failed: {e}"))?,
                );
            }
            (Body::Adaptor, Some(payload)) => match self.format {
                Format::Json => body = Some(encode::json(payload)),
                Format::Form => {
                    body = Some(encode::urlencoded(&encode::pairs(payload, &self.delimiter)))
                }
                Format::Xml => body = Some(encode::xml(payload, &self.xml_root, &self.delimiter)),
                Format::Query => {
                    url = encode::append_query(&url, &encode::pairs(payload, &self.delimiter))
                }
            },
            _ => {}
        }
        check_url(&url)?;
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        if let (Some(_), Some(content_type)) = (&body, &self.content_type)
            && !self
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("Content-Type".to_string(), content_type.clone()));
        }
        for (name, value) in &self.headers {
            let value = value
                .render(scope)
                .map_err(|e| format!("header {name} template failed: {e}"))?;
            if value.contains(['\r', '\n']) {
                return Err(format!(
                    "header {name}: the rendered value contains a line break"
                ));
            }
            headers.push((name.clone(), value));
        }
        Ok(Request {
            method: self.method.as_str().to_string(),
            url,
            headers,
            body,
        })
    }
}

/// A rendered URL must be absolute http(s).
pub fn check_url(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(()),
        Ok(parsed) => Err(format!(
            "url {url:?} must be http or https with a host (scheme {:?})",
            parsed.scheme()
        )),
        Err(e) => Err(format!("url {url:?} is not a valid URL: {e}")),
    }
}

/// Parses `Name: value|Name: value`.
pub fn header_line(line: &str) -> Result<Vec<(String, String)>, String> {
    line.split('|')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (name, value) = part.split_once(':').ok_or_else(|| {
                format!("header {part:?} has no \":\": write Name: value|Name: value")
            })?;
            Ok((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

/// Whether `name` is a valid HTTP header name (RFC 9110 token).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
