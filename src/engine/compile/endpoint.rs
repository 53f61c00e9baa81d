//! Endpoint specs → compiled outbound and inbound endpoints.

use std::time::Duration;

use super::adaptor::output_keys;
use super::{DEFAULT_SCHEDULE, MAX_RETRIES, RETRY_DELAYS, Refs};
use crate::config::spec::{AuthSpec, CodeSpec, EndpointSpec, Format, Headers, Method, OAuth2Grant};
use crate::config::{Doc, Problems, hook_path};
use crate::engine::adaptor::Adaptor;
use crate::engine::encode::is_xml_name;
use crate::engine::field::FieldRef;
use crate::engine::inbound::InboundEndpoint;
use crate::engine::request::{
    Auth, Body, Endpoint, OAuth2, OrderBy, Policy, ResponseCheck, Text, check_url, header_line,
    is_header_name, is_template,
};
use crate::engine::signing::SigningKey;
use crate::engine::template::{Escape, Templates};
use crate::engine::units::{CodeSet, parse_duration, parse_rate};

fn text(
    doc: &Doc<EndpointSpec>,
    path: &str,
    source: &str,
    escape: Escape,
    templates: &mut Templates,
    problems: &mut Problems,
) -> Text {
    if !is_template(source) {
        return Text::Const(source.to_string());
    }
    match templates.add(source, escape) {
        Ok(id) => Text::Template(id),
        Err(e) => {
            problems.error(doc.error_at(path, format!("invalid template: {e}")));
            Text::Const(String::new())
        }
    }
}

pub(super) fn outbound(
    doc: &Doc<EndpointSpec>,
    refs: &Refs,
    adaptors: &[Adaptor],
    templates: &mut Templates,
    problems: &mut Problems,
) -> Endpoint {
    let spec = &doc.spec;
    let method = spec.method.unwrap_or(Method::Post);
    let format = spec.format.unwrap_or(if method.has_body() {
        Format::Json
    } else {
        Format::Query
    });
    if !method.has_body() && format != Format::Query {
        problems.error(doc.error_at(
            "format",
            format!(
                "{} requests carry no body: use format: query (the payload goes in the URL)",
                method.as_str()
            ),
        ));
    }
    if !method.has_body() && spec.body_template.is_some() {
        problems.error(doc.error_at(
            "body_template",
            format!(
                "{} requests carry no body: remove body_template or use POST, PUT or PATCH",
                method.as_str()
            ),
        ));
    }
    let adaptor = spec
        .adaptor
        .as_ref()
        .and_then(|name| refs.adaptor(doc, "adaptor", name, problems));
    let url = spec.url.clone().unwrap_or_default();
    let url_text = text(doc, "url", &url, Escape::Url, templates, problems);
    if let Text::Const(url) = &url_text
        && !url.is_empty()
        && let Err(e) = crate::engine::request::check_url(url)
    {
        problems.error(doc.error_at("url", e));
    }
    let xml_root = spec.xml_root.clone().unwrap_or_else(|| "payload".into());
    if !is_xml_name(&xml_root) {
        problems.error(doc.error_at(
            "xml_root",
            format!("{xml_root:?} is not a valid XML element name"),
        ));
    }
    if format == Format::Xml
        && let Some(a) = adaptor
    {
        let bad: Vec<String> = output_keys(&adaptors[a])
            .filter(|k| !k.iter().all(|p| is_xml_name(p)))
            .map(|k| k.join("."))
            .collect();
        if !bad.is_empty() {
            problems.error(doc.error_at(
                "adaptor",
                format!(
                    "adaptor {} has keys that are not valid XML element names: {}",
                    adaptors[a].name,
                    bad.join(", ")
                ),
            ));
        }
    }
    let (body, body_escape) = match &spec.body_template {
        Some(source) => {
            let escape = body_escape(spec.format, spec.content_type.as_deref(), source);
            match templates.add(source, escape) {
                Ok(id) => (Body::Template(id), Some(escape)),
                Err(e) => {
                    problems.error(doc.error_at("body_template", format!("invalid template: {e}")));
                    (Body::None, None)
                }
            }
        }
        None => (Body::Adaptor, None),
    };
    let content_type = spec
        .content_type
        .clone()
        .or_else(|| match (&body, body_escape) {
            (Body::Template(_), Some(Escape::Json)) => Some("application/json".into()),
            (Body::Template(_), Some(Escape::Xml)) => Some("application/xml".into()),
            (Body::Template(_), _) => Some("text/plain; charset=utf-8".into()),
            (Body::Adaptor, _) if !method.has_body() => None,
            (Body::Adaptor, _) => match format {
                Format::Json => Some("application/json".into()),
                Format::Form => Some("application/x-www-form-urlencoded".into()),
                Format::Xml => Some("application/xml".into()),
                Format::Query => None,
            },
            (Body::None, _) => None,
        });
    let headers = headers(doc, templates, problems);
    let auth = spec.auth.as_ref().and_then(|a| auth(doc, a, problems));
    let signing = spec.signing.as_ref().and_then(|s| {
        SigningKey::parse(&s.secret)
            .map_err(|e| problems.error(doc.error_at("signing.secret", e)))
            .ok()
    });
    Endpoint {
        name: doc.name.clone(),
        active: spec.active,
        method,
        url: url_text,
        format,
        adaptor,
        body,
        content_type,
        headers,
        xml_root,
        delimiter: spec.delimiter.clone().unwrap_or_else(|| ",".into()),
        auth,
        signing,
        policy: policy(doc, problems),
        order_by: spec
            .order_by
            .as_ref()
            .and_then(|o| order_by(doc, o, templates, problems)),
    }
}

/// `order_by`: a template when it has `{{`, else a field reference.
fn order_by(
    doc: &Doc<EndpointSpec>,
    source: &str,
    templates: &mut Templates,
    problems: &mut Problems,
) -> Option<OrderBy> {
    if is_template(source) {
        return match templates.add(source, Escape::None) {
            Ok(id) => Some(OrderBy::Template(id)),
            Err(e) => {
                problems.error(doc.error_at("order_by", format!("invalid template: {e}")));
                None
            }
        };
    }
    match FieldRef::parse(source) {
        Ok(FieldRef::Step { .. }) => {
            problems.error(doc.error_at(
                "order_by",
                "order_by is read when the event is accepted, before any step has run: use a field of the event",
            ));
            None
        }
        Ok(field) => Some(OrderBy::Field(source.trim().to_string(), field)),
        Err(e) => {
            problems.error(doc.error_at("order_by", e));
            None
        }
    }
}

/// The escaping of a body template: from `format`, else `content_type`, else its first
/// character (`<` XML, `{`/`[` JSON).
fn body_escape(format: Option<Format>, content_type: Option<&str>, source: &str) -> Escape {
    match format {
        Some(Format::Json) => return Escape::Json,
        Some(Format::Xml) => return Escape::Xml,
        Some(_) => return Escape::None,
        None => {}
    }
    if let Some(ct) = content_type.map(str::to_ascii_lowercase) {
        if ct.contains("json") {
            return Escape::Json;
        }
        if ct.contains("xml") {
            return Escape::Xml;
        }
        return Escape::None;
    }
    match source.trim_start().chars().next() {
        Some('<') => Escape::Xml,
        Some('{' | '[') => Escape::Json,
        _ => Escape::None,
    }
}

fn headers(
    doc: &Doc<EndpointSpec>,
    templates: &mut Templates,
    problems: &mut Problems,
) -> Vec<(String, Text)> {
    let pairs: Vec<(String, String, String)> = match &doc.spec.headers {
        None => Vec::new(),
        Some(Headers::Map(map)) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), format!("headers.{k}")))
            .collect(),
        Some(Headers::Line(line)) => match header_line(line) {
            Ok(pairs) => pairs
                .into_iter()
                .map(|(k, v)| (k, v, "headers".to_string()))
                .collect(),
            Err(e) => {
                problems.error(doc.error_at("headers", e));
                Vec::new()
            }
        },
    };
    pairs
        .into_iter()
        .filter_map(|(name, value, path)| {
            if !is_header_name(&name) {
                problems.error(doc.error_at(&path, format!("{name:?} is not a valid header name")));
                return None;
            }
            if name.eq_ignore_ascii_case("authorization") {
                problems.warn(doc.error_at(
                    &path,
                    "an Authorization header here is shown in dry runs; prefer `auth:`, whose values are always masked",
                ));
            }
            Some((name, text(doc, &path, &value, Escape::None, templates, problems)))
        })
        .collect()
}

fn auth(doc: &Doc<EndpointSpec>, spec: &AuthSpec, problems: &mut Problems) -> Option<Auth> {
    let empty = |key: &str, value: &str, problems: &mut Problems| {
        if value.is_empty() {
            problems.error(doc.error_at(
                &format!("auth.{key}"),
                format!("auth {key} is empty (is its environment variable set to \"\"?)"),
            ));
        }
    };
    Some(match spec {
        AuthSpec::Bearer { token } => {
            empty("token", token, problems);
            Auth::Bearer(token.clone())
        }
        AuthSpec::Basic { username, password } => {
            empty("username", username, problems);
            Auth::basic(username, password)
        }
        AuthSpec::Header { name, value } => {
            if !is_header_name(name) {
                problems.error(
                    doc.error_at("auth.name", format!("{name:?} is not a valid header name")),
                );
            }
            empty("value", value, problems);
            Auth::Header {
                name: name.clone(),
                value: value.clone(),
            }
        }
        AuthSpec::Query { params } => {
            if params.is_empty() {
                problems.error(doc.error_at("auth.params", "auth params is empty"));
            }
            Auth::Query(params.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        AuthSpec::Oauth2 {
            token_url,
            grant,
            client_id,
            client_secret,
            refresh_token,
            scope,
            params,
            client_auth,
        } => {
            if let Err(e) = check_url(token_url) {
                problems.error(doc.error_at("auth.token_url", format!("auth token_url: {e}")));
            }
            empty("client_id", client_id, problems);
            empty("client_secret", client_secret, problems);
            match (grant, refresh_token) {
                (OAuth2Grant::RefreshToken, None) => problems.error(doc.error_at(
                    "auth.grant",
                    "auth grant refresh_token needs a refresh_token (e.g. refresh_token: ${REFRESH_TOKEN})",
                )),
                (OAuth2Grant::RefreshToken, Some(token)) => {
                    empty("refresh_token", token, problems)
                }
                (OAuth2Grant::ClientCredentials, _) => {}
            }
            Auth::OAuth2(std::sync::Arc::new(OAuth2 {
                token_url: token_url.clone(),
                grant: *grant,
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                refresh_token: refresh_token.clone(),
                scope: scope.clone(),
                params: params
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                client_auth: client_auth.unwrap_or_default(),
            }))
        }
        AuthSpec::Signature { secret } => match SigningKey::parse(secret) {
            Ok(key) => Auth::Signature(key),
            Err(e) => {
                problems.error(doc.error_at("auth.secret", e));
                return None;
            }
        },
    })
}

fn policy(doc: &Doc<EndpointSpec>, problems: &mut Problems) -> Policy {
    let spec = &doc.spec;
    let codes =
        |path: &str, items: Option<&Vec<CodeSpec>>, default: &[&str], problems: &mut Problems| {
            let default: Vec<CodeSpec> = default
                .iter()
                .map(|s| CodeSpec::Text((*s).into()))
                .collect();
            let items = items.unwrap_or(&default);
            match CodeSet::parse(items) {
                Ok(set) => set,
                Err((i, e)) => {
                    problems.error(doc.error_at(&format!("{path}[{i}]"), e));
                    CodeSet::new(Vec::new())
                }
            }
        };
    let retry = spec.retry.as_ref();
    let schedule = match retry.and_then(|r| r.schedule.as_ref()) {
        Some(items) if items.len() > MAX_RETRIES => {
            problems.error(doc.error_at(
                "retry.schedule",
                format!(
                    "retry.schedule lists {} retries; at most {MAX_RETRIES} are allowed",
                    items.len()
                ),
            ));
            Vec::new()
        }
        Some(items) => items
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let path = format!("retry.schedule[{i}]");
                match parse_duration(s) {
                    Ok(delay) if RETRY_DELAYS.contains(&delay) => delay,
                    Ok(_) => {
                        problems.error(doc.error_at(
                            &path,
                            format!("a retry waits from 1s to 7d, not {}", s.trim()),
                        ));
                        Duration::ZERO
                    }
                    Err(e) => {
                        problems.error(doc.error_at(&path, e));
                        Duration::ZERO
                    }
                }
            })
            .collect(),
        None => DEFAULT_SCHEDULE
            .iter()
            .map(|s| parse_duration(s).expect("default schedule parses"))
            .collect(),
    };
    let timeout = match spec.timeout.as_deref().map(parse_duration) {
        None => Duration::from_secs(10),
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => {
            problems.error(doc.error_at("timeout", "timeout must be above zero"));
            Duration::from_secs(10)
        }
        Some(Err(e)) => {
            problems.error(doc.error_at("timeout", e));
            Duration::from_secs(10)
        }
    };
    let response = spec.response.as_ref().map(|r| {
        let field = |path: String, text: &str, problems: &mut Problems| {
            FieldRef::parse(text)
                .map_err(|e| problems.error(doc.error_at(&path, e)))
                .ok()
        };
        if r.success_value.is_some() && r.success_key.is_none() {
            problems.error(doc.error_at(
                "response.success_value",
                "success_value needs success_key: the field to compare",
            ));
        }
        ResponseCheck {
            format: r.format,
            success_key: r
                .success_key
                .as_ref()
                .and_then(|k| field("response.success_key".into(), k, problems)),
            success_value: r.success_value.clone(),
            capture: r
                .capture
                .iter()
                .filter_map(|(name, text)| {
                    Some((
                        name.clone(),
                        field(format!("response.capture.{name}"), text, problems)?,
                    ))
                })
                .collect(),
        }
    });
    Policy {
        success_codes: codes(
            "success_codes",
            spec.success_codes.as_ref(),
            &["200-299"],
            problems,
        ),
        retry_on: codes(
            "retry.retry_on",
            retry.and_then(|r| r.retry_on.as_ref()),
            &["408", "429", "5xx"],
            problems,
        ),
        schedule,
        timeout,
        concurrency: spec.concurrency.unwrap_or(8),
        rate_limit: spec.rate_limit.as_ref().and_then(|r| {
            parse_rate(r)
                .map_err(|e| problems.error(doc.error_at("rate_limit", e)))
                .ok()
        }),
        response: response.unwrap_or_default(),
    }
}

pub(super) fn inbound_endpoint(
    doc: &Doc<EndpointSpec>,
    refs: &Refs,
    templates: &mut Templates,
    problems: &mut Problems,
) -> InboundEndpoint {
    let spec = &doc.spec;
    let allow_from = spec
        .allow_from
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, cidr)| {
            parse_cidr(cidr)
                .map_err(|e| problems.error(doc.error_at(&format!("allow_from[{i}]"), e)))
                .ok()
        })
        .collect();
    InboundEndpoint {
        name: doc.name.clone(),
        active: spec.active,
        // An invalid path was reported by config; it is kept as written, so that it is
        // not also reported as the duplicate of another invalid one.
        path: spec
            .path
            .as_deref()
            .map(|path| hook_path(path).unwrap_or_else(|_| path.to_string()))
            .unwrap_or_default(),
        methods: spec.methods.clone().unwrap_or_else(|| vec![Method::Post]),
        event_type: text(
            doc,
            "event_type",
            spec.event_type.as_deref().unwrap_or_default(),
            Escape::None,
            templates,
            problems,
        ),
        event_id: spec
            .event_id
            .as_ref()
            .map(|id| text(doc, "event_id", id, Escape::None, templates, problems)),
        adaptor: spec
            .adaptor
            .as_ref()
            .and_then(|name| refs.adaptor(doc, "adaptor", name, problems)),
        auth: spec.auth.as_ref().and_then(|a| match a {
            AuthSpec::Oauth2 { .. } => {
                problems.error(doc.error_at(
                    "auth.type",
                    "auth type oauth2 is for outbound endpoints: an inbound endpoint checks credentials, it does not fetch them (use bearer, basic, header, query or signature)",
                ));
                None
            }
            a => auth(doc, a, problems),
        }),
        allow_from,
        respond: spec.respond.unwrap_or(202),
    }
}

/// A CIDR (`66.85.240.0/21`) or a single address (`10.0.0.1`, taken as /32 or /128).
pub fn parse_cidr(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            format!("invalid CIDR {text:?}: write an address range such as 66.85.240.0/21")
        })
}
