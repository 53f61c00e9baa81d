//! Specs → Engine: resolves every reference between files and compiles every template,
//! field reference, regex, duration, CIDR and date format, once. Problems are collected,
//! never returned early, so `validate` shows all of them in one run.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use regex::RegexBuilder;
use serde_json::Value;

use super::adaptor::{Adaptor, DateSpec, Extra, Field, KeyPath, Source};
use super::date::{DateFormat, parse_timezone};
use super::encode::is_xml_name;
use super::field::FieldRef;
use super::inbound::InboundEndpoint;
use super::request::{
    Auth, Body, Endpoint, Policy, ResponseCheck, Text, header_line, is_header_name, is_template,
};
use super::signing::SigningKey;
use super::template::{Escape, Templates};
use super::units::{CodeSet, parse_duration, parse_rate};
use super::workflow::{Action, Op, Test, Trigger, TypeIndex, TypePattern, Workflow};
use super::{Engine, default_audit_keys};
use crate::config::spec::{
    AdaptorSpec, AuthSpec, CodeSpec, Direction, EndpointSpec, Format, Headers, Method, TriggerSpec,
    WorkflowSpec,
};
use crate::config::{Config, Doc, Problems};

/// The default retry schedule (§4).
pub const DEFAULT_SCHEDULE: [&str; 7] = ["5s", "5m", "30m", "2h", "5h", "10h", "10h"];

/// Compiles a parsed configuration; None when anything is wrong (see `problems`).
pub fn compile(config: &Config, problems: &mut Problems) -> Option<Engine> {
    let errors_before = problems.errors.len();
    let mut templates = Templates::new();

    let adaptor_names: HashMap<&str, usize> = config
        .adaptors
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    let adaptors: Vec<Adaptor> = config
        .adaptors
        .iter()
        .map(|doc| adaptor(doc, &mut templates, problems))
        .collect();

    let refs = Refs {
        config,
        adaptors: &adaptor_names,
    };
    let mut endpoints = Vec::new();
    let mut inbound = Vec::new();
    let mut outbound_names: HashMap<&str, usize> = HashMap::new();
    let mut inbound_names: HashSet<&str> = HashSet::new();
    let mut paths: HashMap<String, &str> = HashMap::new();
    for doc in &config.endpoints {
        match doc.spec.direction {
            Direction::Outbound => {
                outbound_names.insert(&doc.name, endpoints.len());
                endpoints.push(outbound(doc, &refs, &adaptors, &mut templates, problems));
            }
            Direction::Inbound => {
                inbound_names.insert(&doc.name);
                let endpoint = inbound_endpoint(doc, &refs, &mut templates, problems);
                if let Some(first) = paths.get(&endpoint.path) {
                    problems.error(doc.error_at(
                        "path",
                        format!(
                            "path {} is already used by inbound endpoint {first}",
                            endpoint.path
                        ),
                    ));
                } else {
                    paths.insert(endpoint.path.clone(), &doc.name);
                }
                inbound.push(endpoint);
            }
        }
    }

    let specs: Vec<&EndpointSpec> = config
        .endpoints
        .iter()
        .filter(|d| d.spec.direction == Direction::Outbound)
        .map(|d| &d.spec)
        .collect();
    let mut used_endpoints = HashSet::new();
    let mut used_adaptors: HashSet<usize> = endpoints
        .iter()
        .filter_map(|e| e.adaptor)
        .chain(inbound.iter().filter_map(|e| e.adaptor))
        .collect();
    let workflows: Vec<Workflow> = config
        .workflows
        .iter()
        .map(|doc| {
            let ctx = WorkflowRefs {
                refs: &refs,
                outbound: &outbound_names,
                inbound: &inbound_names,
                endpoints: &endpoints,
                specs: &specs,
            };
            let workflow = workflow(doc, &ctx, problems);
            for action in &workflow.actions {
                used_endpoints.insert(action.endpoint);
                used_adaptors.extend(action.adaptor);
            }
            workflow
        })
        .collect();

    for (i, doc) in config.adaptors.iter().enumerate() {
        if !used_adaptors.contains(&i) {
            problems.warn(doc.error_at(
                "",
                format!("adaptor {} is not used by any endpoint or action", doc.name),
            ));
        }
    }
    for doc in config
        .endpoints
        .iter()
        .filter(|d| d.spec.direction == Direction::Outbound)
    {
        if !outbound_names
            .get(doc.name.as_str())
            .is_some_and(|i| used_endpoints.contains(i))
        {
            problems.warn(doc.error_at(
                "",
                format!("endpoint {} is not used by any workflow", doc.name),
            ));
        }
    }

    if problems.errors.len() > errors_before {
        return None;
    }
    let index = TypeIndex::new(&workflows);
    Some(Engine {
        templates,
        adaptors,
        endpoints,
        inbound,
        workflows,
        index,
        redactor: super::secrets::Redactor::new(&config.secrets),
        audit_keys: default_audit_keys(),
    })
}

/// Names the other files can refer to.
struct Refs<'a> {
    config: &'a Config,
    adaptors: &'a HashMap<&'a str, usize>,
}

impl Refs<'_> {
    /// Resolves an adaptor name; an unknown one is reported at `path` of `doc`.
    fn adaptor<T>(
        &self,
        doc: &Doc<T>,
        path: &str,
        name: &str,
        problems: &mut Problems,
    ) -> Option<usize> {
        if let Some(i) = self.adaptors.get(name) {
            return Some(*i);
        }
        if !self.config.unreadable.adaptors.contains(name) {
            let known = self.config.adaptors.iter().map(|d| d.name.as_str());
            problems.error(doc.error_at(path, unknown("adaptor", name, known)));
        }
        None
    }
}

/// `unknown endpoint "hubspot" (known: hubspot-contacts, slack)`.
fn unknown<'a>(kind: &str, name: &str, known: impl Iterator<Item = &'a str>) -> String {
    let mut known: Vec<&str> = known.collect();
    known.sort_unstable();
    let list = if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    };
    format!("unknown {kind} {name:?} (known: {list})")
}

// ---------------------------------------------------------------------------------------
// Adaptors

fn adaptor(doc: &Doc<AdaptorSpec>, templates: &mut Templates, problems: &mut Problems) -> Adaptor {
    let spec = &doc.spec;
    let mut fields = Vec::with_capacity(spec.fields.len());
    let mut keys: Vec<(KeyPath, String)> = Vec::new();
    for (i, f) in spec.fields.iter().enumerate() {
        let path = format!("fields[{i}]");
        let label = f.to.as_slice().first().cloned().unwrap_or_default();
        let source = match (&f.from, &f.template) {
            (_, Some(template)) => match templates.add(template, Escape::None) {
                Ok(id) => Source::Template(id),
                Err(e) => {
                    problems.error(doc.error_at(
                        &format!("{path}.template"),
                        format!("invalid template: {e}"),
                    ));
                    Source::From(Vec::new())
                }
            },
            (Some(from), None) => {
                let many = matches!(from, crate::config::spec::OneOrMany::Many(_));
                let refs = from
                    .as_slice()
                    .iter()
                    .enumerate()
                    .filter_map(|(j, r)| {
                        let at = if many {
                            format!("{path}.from[{j}]")
                        } else {
                            format!("{path}.from")
                        };
                        FieldRef::parse(r)
                            .map_err(|e| problems.error(doc.error_at(&at, e)))
                            .ok()
                    })
                    .collect();
                Source::From(refs)
            }
            (None, None) => Source::From(Vec::new()),
        };
        let date = f.date_format.as_ref().and_then(|format| {
            let format = DateFormat::parse(format)
                .map_err(|e| problems.error(doc.error_at(&format!("{path}.date_format"), e)))
                .ok();
            let zone = |key: &str, name: &Option<String>, problems: &mut Problems| match name {
                None => Some(chrono_tz::UTC),
                Some(name) => parse_timezone(name)
                    .map_err(|e| problems.error(doc.error_at(&format!("{path}.{key}"), e)))
                    .ok(),
            };
            let timezone = zone("timezone", &f.timezone, problems);
            let input_timezone = zone("input_timezone", &f.input_timezone, problems);
            Some(DateSpec {
                format: format?,
                timezone: timezone?,
                input_timezone: input_timezone?,
            })
        });
        let to: Vec<KeyPath> =
            f.to.as_slice()
                .iter()
                .map(|k| k.split('.').map(str::to_string).collect())
                .collect();
        for key in &to {
            keys.push((key.clone(), format!("{path}.to")));
        }
        fields.push(Field {
            label,
            source,
            to,
            default: f.default.clone(),
            date,
            values: f.values.as_ref().map(|table| {
                table
                    .iter()
                    .map(|(k, v)| (k.0.clone(), v.clone()))
                    .collect()
            }),
            kind: f.kind,
            omit_empty: f.omit_empty.unwrap_or(spec.omit_empty),
        });
    }
    let mut extra = Vec::with_capacity(spec.extra_fields.len());
    for (key, value) in &spec.extra_fields {
        let path: KeyPath = key.split('.').map(str::to_string).collect();
        keys.push((path.clone(), format!("extra_fields.{key}")));
        let value = match value {
            Value::String(s) if is_template(s) => match templates.add(s, Escape::None) {
                Ok(id) => Extra::Template(id),
                Err(e) => {
                    problems.error(doc.error_at(
                        &format!("extra_fields.{key}"),
                        format!("invalid template: {e}"),
                    ));
                    continue;
                }
            },
            other => Extra::Const(other.clone()),
        };
        extra.push((path, value));
    }
    key_conflicts(doc, &keys, problems);
    Adaptor {
        name: doc.name.clone(),
        fields,
        extra,
    }
}

/// `a` and `a.b` cannot both be output keys: one would overwrite the other.
fn key_conflicts(doc: &Doc<AdaptorSpec>, keys: &[(KeyPath, String)], problems: &mut Problems) {
    for (i, (a, _)) in keys.iter().enumerate() {
        for (b, at) in &keys[i + 1..] {
            if a == b {
                problems.warn(doc.error_at(
                    at,
                    format!(
                        "output key {} is written twice; the later value wins",
                        b.join(".")
                    ),
                ));
            } else if a.starts_with(b) || b.starts_with(a) {
                let (short, long) = if a.len() < b.len() { (a, b) } else { (b, a) };
                problems.error(doc.error_at(
                    at,
                    format!(
                        "output keys {} and {} conflict: {} cannot be both a value and an object",
                        short.join("."),
                        long.join("."),
                        short.join(".")
                    ),
                ));
            }
        }
    }
}

/// Every output key of an adaptor, as paths.
fn output_keys(adaptor: &Adaptor) -> impl Iterator<Item = &KeyPath> {
    adaptor
        .fields
        .iter()
        .flat_map(|f| f.to.iter())
        .chain(adaptor.extra.iter().map(|(k, _)| k))
}

// ---------------------------------------------------------------------------------------
// Endpoints

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

fn outbound(
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
        && let Err(e) = super::request::check_url(url)
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
    let duration = |path: &str, value: &str, problems: &mut Problems| {
        parse_duration(value)
            .map_err(|e| problems.error(doc.error_at(path, e)))
            .unwrap_or_default()
    };
    let retry = spec.retry.as_ref();
    let schedule = match retry.and_then(|r| r.schedule.as_ref()) {
        Some(items) => items
            .iter()
            .enumerate()
            .map(|(i, s)| duration(&format!("retry.schedule[{i}]"), s, problems))
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

fn inbound_endpoint(
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
        path: spec.path.clone().unwrap_or_default(),
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
        auth: spec.auth.as_ref().and_then(|a| auth(doc, a, problems)),
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

// ---------------------------------------------------------------------------------------
// Workflows

struct WorkflowRefs<'a> {
    refs: &'a Refs<'a>,
    outbound: &'a HashMap<&'a str, usize>,
    inbound: &'a HashSet<&'a str>,
    endpoints: &'a [Endpoint],
    /// The spec of each outbound endpoint, by the same index.
    specs: &'a [&'a EndpointSpec],
}

fn workflow(doc: &Doc<WorkflowSpec>, ctx: &WorkflowRefs, problems: &mut Problems) -> Workflow {
    let spec = &doc.spec;
    let triggers = spec
        .when
        .iter()
        .enumerate()
        .filter_map(|(i, t)| trigger(doc, &format!("when[{i}]"), t, problems))
        .collect();
    let mut actions = Vec::with_capacity(spec.actions.len());
    for (i, a) in spec.actions.iter().enumerate() {
        let path = format!("actions[{i}]");
        let Some(endpoint) = ctx.outbound.get(a.endpoint.as_str()).copied() else {
            let config = ctx.refs.config;
            if ctx.inbound.contains(a.endpoint.as_str()) {
                problems.error(doc.error_at(
                    &format!("{path}.endpoint"),
                    format!("endpoint {:?} is inbound (it receives events); actions send to outbound endpoints", a.endpoint),
                ));
            } else if !config.unreadable.endpoints.contains(&a.endpoint) {
                let known = ctx.outbound.keys().copied();
                problems.error(doc.error_at(
                    &format!("{path}.endpoint"),
                    unknown("endpoint", &a.endpoint, known),
                ));
            }
            continue;
        };
        let adaptor = a.adaptor.as_ref().and_then(|name| {
            ctx.refs
                .adaptor(doc, &format!("{path}.adaptor"), name, problems)
        });
        let target = &ctx.endpoints[endpoint];
        match (&target.body, adaptor.or(target.adaptor)) {
            (Body::Template(_), Some(_)) if a.adaptor.is_some() => problems.error(doc.error_at(
                &format!("{path}.adaptor"),
                format!("endpoint {} sends a body_template; an adaptor here would not be used", target.name),
            )),
            (Body::Adaptor, None)
                if ctx.specs[endpoint].adaptor.is_none() && target.method.has_body() && target.format != Format::Query =>
            {
                problems.error(doc.error_at(
                &format!("{path}.endpoint"),
                format!(
                    "endpoint {} sends {} bodies but has no adaptor or body_template: give the endpoint (or this action) an adaptor",
                    target.name,
                    target.method.as_str()
                ),
            ))
            }
            _ => {}
        }
        let delay = a.delay.as_ref().and_then(|d| {
            parse_duration(d)
                .map_err(|e| problems.error(doc.error_at(&format!("{path}.delay"), e)))
                .ok()
        });
        actions.push(Action {
            endpoint,
            adaptor,
            delay,
        });
    }
    Workflow {
        name: doc.name.clone(),
        active: spec.active,
        triggers,
        actions,
    }
}

fn trigger(
    doc: &Doc<WorkflowSpec>,
    path: &str,
    t: &TriggerSpec,
    problems: &mut Problems,
) -> Option<Trigger> {
    let active = t.active.unwrap_or(true);
    if let Some(types) = &t.event {
        let patterns = types
            .as_slice()
            .iter()
            .map(|s| TypePattern::parse(s.trim()))
            .collect();
        return Some(Trigger {
            active,
            test: Test::Event(patterns),
        });
    }
    let name = t.field.clone()?;
    let field = FieldRef::parse(&name)
        .map_err(|e| problems.error(doc.error_at(&format!("{path}.field"), e)))
        .ok()?;
    let ignore_case = t.ignore_case.unwrap_or(false);
    let lower = |v: &Value| -> String {
        let s = super::value::text(v).into_owned();
        if ignore_case { s.to_lowercase() } else { s }
    };
    let op = if let Some(v) = &t.equals {
        Op::Equals(v.clone())
    } else if let Some(v) = &t.not_equals {
        Op::NotEquals(v.clone())
    } else if let Some(v) = &t.in_ {
        Op::In(v.clone())
    } else if let Some(v) = &t.not_in {
        Op::NotIn(v.clone())
    } else if let Some(v) = &t.gt {
        Op::Gt(v.clone())
    } else if let Some(v) = &t.gte {
        Op::Gte(v.clone())
    } else if let Some(v) = &t.lt {
        Op::Lt(v.clone())
    } else if let Some(v) = &t.lte {
        Op::Lte(v.clone())
    } else if let Some(v) = &t.between {
        let [lo, hi] = v.as_slice() else { return None };
        Op::Between(lo.clone(), hi.clone())
    } else if let Some(v) = &t.contains {
        Op::Contains(v.clone())
    } else if let Some(v) = &t.not_contains {
        Op::NotContains(v.clone())
    } else if let Some(v) = &t.starts_with {
        Op::StartsWith(lower(v))
    } else if let Some(v) = &t.ends_with {
        Op::EndsWith(lower(v))
    } else if let Some(pattern) = &t.matches {
        let re = RegexBuilder::new(pattern)
            .case_insensitive(ignore_case)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                let detail = e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                problems.error(doc.error_at(
                    &format!("{path}.matches"),
                    format!("invalid regex {pattern:?}: {detail}"),
                ))
            })
            .ok()?;
        Op::Matches(re)
    } else if let Some(b) = t.is_blank {
        Op::IsBlank(b)
    } else if let Some(b) = t.is_numeric {
        Op::IsNumeric(b)
    } else if let Some(b) = t.exists {
        Op::Exists(b)
    } else if let Some(d) = &t.within {
        Op::Within(
            parse_duration(d)
                .map_err(|e| problems.error(doc.error_at(&format!("{path}.within"), e)))
                .ok()?,
        )
    } else {
        return None;
    };
    Some(Trigger {
        active,
        test: Test::Field {
            name,
            field,
            op,
            ignore_case,
        },
    })
}
