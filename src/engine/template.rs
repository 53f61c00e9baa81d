//! Templates: every template string of the configuration, compiled once into one minijinja
//! environment, and the context an event gives them.
//!
//! A template is rendered with escaping chosen by where its output goes: percent-encoding
//! for URLs, XML escaping for XML bodies, JSON string escaping for JSON bodies, none
//! elsewhere. `|safe` opts a value out. Templates cannot read files or the environment
//! (no loader is installed) and run on a fuel budget, so a bad loop cannot hang a worker.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock, RwLock};

use chrono::{DateTime, Utc};
use minijinja::value::{Object, Serde, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::date::{DateFormat, parse_input, parse_timezone};
use super::event::Event;
use super::phone::e164;

/// Characters left as they are in a URL component: RFC 3986 unreserved.
pub const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How a template's output is escaped, by where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Plain text: headers, field values, event types.
    None,
    /// A URL: values are percent-encoded.
    Url,
    /// An XML body: values are XML-escaped.
    Xml,
    /// A JSON body: string values are escaped for use inside "…"; lists and maps become JSON.
    Json,
}

impl Escape {
    fn suffix(self) -> &'static str {
        match self {
            Escape::None => "",
            Escape::Url => ".url",
            Escape::Xml => ".xml",
            Escape::Json => ".json",
        }
    }
}

/// A compiled template in [`Templates`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateId(usize);

/// Every template of a configuration, compiled.
pub struct Templates {
    env: Environment<'static>,
    names: Vec<String>,
    /// Per template, its pieces when it only substitutes plain names (`{{ lead_id }}`):
    /// those are rendered without minijinja.
    simple: Vec<Option<Simple>>,
    /// Filter and test names already looked up in the environment, and whether it has
    /// them: a configuration of many templates asks about the same few.
    known: HashMap<(Kind, String), bool>,
}

/// A template made only of text and `{{ name }}` / `{{ a.b }}` substitutions.
#[derive(Debug, Clone)]
struct Simple {
    parts: Vec<Part>,
    escape: Escape,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Name(Vec<String>),
}

impl Simple {
    /// Splits `source` into text and plain names; None if it uses anything else.
    fn parse(source: &str, escape: Escape) -> Option<Simple> {
        if source.contains("{%") || source.contains("{#") {
            return None;
        }
        // minijinja drops one trailing newline (`\n`, then `\r`) of every template.
        let source = source.strip_suffix('\n').unwrap_or(source);
        let source = source.strip_suffix('\r').unwrap_or(source);
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let end = rest[start..].find("}}")? + start;
            let name = rest[start + 2..end].trim();
            let path: Vec<String> = name.split('.').map(str::to_string).collect();
            let plain = |p: &String| {
                let mut chars = p.chars();
                matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            // Keywords and literals look like names but are not lookups.
            let reserved = [
                "true", "false", "none", "True", "False", "None", "loop", "self",
            ];
            if path.is_empty() || !path.iter().all(plain) || reserved.contains(&path[0].as_str()) {
                return None;
            }
            parts.push(Part::Name(path));
            rest = &rest[end + 2..];
        }
        if rest.contains("}}") {
            return None;
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Some(Simple { parts, escape })
    }

    /// The first name of every substitution (`a` of `{{ a.b }}`).
    fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Name(path) => path.first().map(String::as_str),
            Part::Text(_) => None,
        })
    }

    /// Renders against an event, or None when a value is one minijinja formats its own way
    /// (lists, maps, decimals): the caller then renders the template normally.
    fn render(&self, event: &Event) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Name(path) => {
                    let found = lookup(event, path)?;
                    let text: std::borrow::Cow<'_, str> = match &found {
                        Looked::Missing => continue,
                        Looked::Text(t) => std::borrow::Cow::Borrowed(t.as_str()),
                        Looked::Json(serde_json::Value::Null) => continue,
                        Looked::Json(serde_json::Value::String(s)) => {
                            std::borrow::Cow::Borrowed(s.as_str())
                        }
                        Looked::Json(serde_json::Value::Bool(b)) => {
                            std::borrow::Cow::Borrowed(if *b { "true" } else { "false" })
                        }
                        Looked::Json(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => {
                            std::borrow::Cow::Owned(n.to_string())
                        }
                        Looked::Json(_) => return None,
                    };
                    let is_string = matches!(
                        found,
                        Looked::Text(_) | Looked::Json(serde_json::Value::String(_))
                    );
                    match self.escape {
                        Escape::None => out.push_str(&text),
                        Escape::Url => out.extend(utf8_percent_encode(&text, COMPONENT)),
                        Escape::Xml => out.push_str(&xml_escape(&text)),
                        Escape::Json if is_string => out.push_str(&json_string_body(&text)),
                        Escape::Json => out.push_str(&text),
                    }
                }
            }
        }
        Some(out)
    }
}

enum Looked<'a> {
    Missing,
    Text(String),
    Json(&'a serde_json::Value),
}

/// A name as the template context resolves it: `event.*`, `data.*`, `steps.*` (while
/// a step after another renders), or a data key.
fn lookup<'a>(event: &'a Event, path: &[String]) -> Option<Looked<'a>> {
    let (first, rest) = path.split_first()?;
    let mut node: &serde_json::Value = match first.as_str() {
        "event" => {
            let [field] = rest else { return None };
            return Some(match field.as_str() {
                "id" => Looked::Text(event.id.to_string()),
                "type" => Looked::Text(event.kind.clone()),
                "source" => Looked::Text(event.source.clone()),
                "received_at" => Looked::Text(event.received_at_text()),
                _ => Looked::Missing,
            });
        }
        "data" => &event.data,
        "steps" if event.steps.is_some() => event.steps.as_deref()?,
        key => match event.data.get(key) {
            Some(v) if rest.is_empty() => return Some(Looked::Json(v)),
            Some(v) => v,
            None => return Some(Looked::Missing),
        },
    };
    for part in rest {
        node = match node {
            serde_json::Value::Object(map) => match map.get(part) {
                Some(v) => v,
                None => return Some(Looked::Missing),
            },
            // minijinja indexes lists by number and strings not at all: leave those to it.
            _ => return None,
        };
    }
    Some(Looked::Json(node))
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Templates({})", self.names.len())
    }
}

/// Instructions a single render may execute: far more than any payload needs, few enough
/// that a runaway loop ends in an error instead of a stuck worker.
const FUEL: u64 = 200_000;

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    /// An empty set with switchboard's filters installed.
    pub fn new() -> Templates {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_fuel(Some(FUEL));
        env.set_auto_escape_callback(|name| match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("url") => AutoEscape::Custom("url".into()),
            Some("xml") => AutoEscape::Custom("xml".into()),
            Some("json") => AutoEscape::Custom("json".into()),
            _ => AutoEscape::None,
        });
        env.set_formatter(format_value);
        let formats: Arc<RwLock<HashMap<String, Arc<DateFormat>>>> = Arc::default();
        env.add_filter(
            "date",
            move |state: &State, value: Value, format: String, tz: Option<String>| {
                let now = state
                    .lookup(NOW)
                    .and_then(|v| i64::try_from(v).ok())
                    .and_then(DateTime::from_timestamp_millis)
                    .ok_or_else(|| {
                        Error::new(ErrorKind::InvalidOperation, "date: no render time")
                    })?;
                date_filter(&formats, value, &format, tz.as_deref(), now)
            },
        );
        env.add_filter("digits", |value: Value| -> String {
            value
                .to_string()
                .chars()
                .filter(char::is_ascii_digit)
                .collect()
        });
        env.add_filter("e164", |value: Value, country: Option<String>| -> String {
            e164(&value.to_string(), country.as_deref().unwrap_or("US")).unwrap_or_default()
        });
        Templates {
            env,
            names: Vec::new(),
            simple: Vec::new(),
            known: HashMap::new(),
        }
    }

    /// Compiles `source`; the error says what is wrong and where in the template.
    pub fn add(&mut self, source: &str, escape: Escape) -> Result<TemplateId, String> {
        let id = self.names.len();
        let name = format!("t{id}{}", escape.suffix());
        let source = &dashed_steps(source);
        self.env
            .add_template_owned(name.clone(), source.to_string())
            .map_err(|e| describe(&e))?;
        if let Some(unknown) = self.unknown_name(&name) {
            self.env.remove_template(&name);
            return Err(unknown);
        }
        self.names.push(name);
        // A name the data lacks is minijinja's global of that name if it has one
        // (`{{ range }}` prints a function): such templates are left to minijinja.
        let simple = Simple::parse(source, escape).filter(|simple| {
            !simple
                .names()
                .any(|first| first == NOW || self.env.globals().any(|(global, _)| global == first))
        });
        self.simple.push(simple);
        Ok(TemplateId(id))
    }

    /// The first filter, test or function the template `name` uses that the environment
    /// lacks, as a message: minijinja itself finds them only when rendering, which for a
    /// webhook is too late (`{{ phone|e165 }}` would fail every delivery).
    fn unknown_name(&mut self, name: &str) -> Option<String> {
        use minijinja::machinery::{Instruction, get_compiled_template};
        let mut used: Vec<(Kind, String, Option<usize>)> = Vec::new();
        {
            let template = self.env.get_template(name).ok()?;
            let compiled = get_compiled_template(&template);
            let all = std::iter::once(&compiled.instructions).chain(compiled.blocks.values());
            // Macros and `{% set %}` names are locals a template may call.
            let mut locals: Vec<&str> =
                vec!["loop", "caller", "super", "varargs", "kwargs", "self"];
            let mut calls = Vec::new();
            for instructions in all {
                let mut idx = 0;
                while let Some(instruction) = instructions.get(idx) {
                    let line = instructions.get_line(idx);
                    match instruction {
                        Instruction::StoreLocal(local) => locals.push(local),
                        Instruction::ApplyFilter(f, ..) => {
                            used.push((Kind::Filter, f.to_string(), line))
                        }
                        Instruction::PerformTest(t, ..) => {
                            used.push((Kind::Test, t.to_string(), line))
                        }
                        Instruction::CallFunction(f, _) => calls.push((*f, line)),
                        _ => {}
                    }
                    idx += 1;
                }
            }
            let globals: Vec<&str> = self.env.globals().map(|(g, _)| g).collect();
            for (f, line) in calls {
                if !locals.contains(&f) && !globals.contains(&f) {
                    let hint = crate::config::suggest::did_you_mean(f, globals.iter().copied());
                    return Some(format!("unknown function `{f}`{hint}{}", at_line(line)));
                }
            }
        }
        for (kind, name, line) in used {
            if self.knows(kind, &name) {
                continue;
            }
            let known: Vec<&str> = kind
                .candidates()
                .iter()
                .copied()
                .filter(|candidate| self.knows(kind, candidate))
                .collect();
            let hint = crate::config::suggest::did_you_mean(&name, known);
            return Some(format!(
                "unknown {} `{name}`{hint}{}",
                kind.noun(),
                at_line(line)
            ));
        }
        None
    }

    /// Whether the environment has the filter or test `name`: asked of the environment
    /// itself (once per name), so that a builtin is never mistaken for a typo.
    fn knows(&mut self, kind: Kind, name: &str) -> bool {
        if let Some(&known) = self.known.get(&(kind, name.to_string())) {
            return known;
        }
        let probe = match kind {
            Kind::Filter => format!("{{{{ none|{name} }}}}"),
            Kind::Test => format!("{{{{ none is {name} }}}}"),
        };
        let known = match self.env.render_str(&probe, ()) {
            Ok(_) => true,
            Err(e) => !matches!(e.kind(), ErrorKind::UnknownFilter | ErrorKind::UnknownTest),
        };
        self.known.insert((kind, name.to_string()), known);
        known
    }

    /// The names a template reads from its context, nested attribute lookups included
    /// (`data.a.b`, `event.source`, `phone`).
    pub fn reads(&self, id: TemplateId) -> Vec<String> {
        self.env
            .get_template(&self.names[id.0])
            .map(|t| t.undeclared_variables(true).into_iter().collect())
            .unwrap_or_default()
    }

    /// Renders a template for an event; `context` builds the full template context, which
    /// templates of plain substitutions do not need.
    pub fn render<'c>(
        &self,
        id: TemplateId,
        event: &Event,
        context: impl FnOnce() -> &'c Value,
    ) -> Result<String, String> {
        if let Some(text) = self.simple[id.0].as_ref().and_then(|s| s.render(event)) {
            return Ok(text);
        }
        let template = self
            .env
            .get_template(&self.names[id.0])
            .map_err(|e| describe(&e))?;
        template.render(context()).map_err(|e| describe(&e))
    }
}

/// `steps.crm-search.id` inside `{{ }}` and `{% %}` read as the step `crm-search` (a step's
/// default name is its endpoint's, and endpoint names have dashes), not as a subtraction:
/// rewritten `steps["crm-search"].id`. Text outside the tags is left as it is.
fn dashed_steps(source: &str) -> String {
    static STEP: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\bsteps\.([A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)+)").expect("a valid pattern")
    });
    if !source.contains("steps.") {
        return source.to_string();
    }
    let mut out = String::with_capacity(source.len() + 8);
    let mut rest = source;
    while let Some(start) = rest.find("{{").into_iter().chain(rest.find("{%")).min() {
        let close = if rest[start..].starts_with("{{") {
            "}}"
        } else {
            "%}"
        };
        let Some(end) = rest[start..].find(close).map(|e| start + e + 2) else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str(&STEP.replace_all(&rest[start..end], r#"steps["$1"]"#));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// What a template applies by name (functions are the environment's globals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Filter,
    Test,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Filter => "filter",
            Kind::Test => "test",
        }
    }

    /// Names to suggest from (each confirmed against the environment before it is).
    fn candidates(self) -> &'static [&'static str] {
        match self {
            Kind::Filter => &[
                "date",
                "digits",
                "e164",
                "safe",
                "escape",
                "e",
                "lower",
                "upper",
                "title",
                "capitalize",
                "replace",
                "length",
                "count",
                "dictsort",
                "items",
                "reverse",
                "trim",
                "join",
                "split",
                "lines",
                "default",
                "d",
                "round",
                "abs",
                "int",
                "float",
                "attr",
                "first",
                "last",
                "min",
                "max",
                "sort",
                "list",
                "string",
                "bool",
                "batch",
                "slice",
                "sum",
                "indent",
                "select",
                "reject",
                "map",
                "selectattr",
                "rejectattr",
                "groupby",
                "unique",
                "chain",
                "zip",
                "pprint",
                "format",
                "tojson",
                "urlencode",
            ],
            Kind::Test => &[
                "defined",
                "undefined",
                "none",
                "safe",
                "escaped",
                "boolean",
                "odd",
                "even",
                "divisibleby",
                "number",
                "integer",
                "float",
                "string",
                "sequence",
                "iterable",
                "mapping",
                "startingwith",
                "endingwith",
                "lower",
                "upper",
                "sameas",
                "eq",
                "equalto",
                "ne",
                "lt",
                "lessthan",
                "le",
                "gt",
                "greaterthan",
                "ge",
                "in",
                "true",
                "false",
                "filter",
                "test",
            ],
        }
    }
}

/// ` (template line N)`, when the line is known.
fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" (template line {l})"))
        .unwrap_or_default()
}

/// A template error as one line: the problem and, when known, the line in the template.
fn describe(error: &Error) -> String {
    let mut text = match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    if let Some(line) = error.line() {
        let _ = write!(text, " (template line {line})");
    }
    text
}

/// Where the `date` filter finds the time it renders at (a name no payload uses).
const NOW: &str = "__switchboard_now_ms";

/// The template context of an event rendered at `now`: its top-level data keys, `data`,
/// and `event`. `now` is what the `date` filter measures relative formats (`age`) from:
/// the caller's clock, never the wall clock (`render --now`, and every retry of a delivery
/// renders at the event's arrival).
pub fn context(event: &Event, now: DateTime<Utc>) -> Value {
    Value::from_object(EventContext {
        now_ms: now.timestamp_millis(),
        data: event.data.clone(),
        id: event.id.to_string(),
        kind: event.kind.clone(),
        source: event.source.clone(),
        received_at: event.received_at_text(),
        steps: event.steps.clone(),
        whole: OnceLock::new(),
        meta: OnceLock::new(),
    })
}

/// Looks names up in the event data, except `data` and `event`, which always mean the
/// whole payload and the metadata (the metadata wins over a data key of the same name),
/// and `steps`, the earlier steps' values, in an action that runs after a step.
/// Values are converted for the template only when a template reads them.
#[derive(Debug)]
struct EventContext {
    now_ms: i64,
    data: Arc<serde_json::Value>,
    id: String,
    kind: String,
    source: String,
    received_at: String,
    /// The earlier steps' values, while an action after a step renders.
    steps: Option<Arc<serde_json::Value>>,
    whole: OnceLock<Value>,
    meta: OnceLock<Value>,
}

impl Object for EventContext {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "event" => Some(
                self.meta
                    .get_or_init(|| {
                        Value::from(Serde(serde_json::json!({
                            "id": self.id,
                            "type": self.kind,
                            "source": self.source,
                            "received_at": self.received_at,
                        })))
                    })
                    .clone(),
            ),
            "data" => Some(
                self.whole
                    .get_or_init(|| Value::from(Serde(&*self.data)))
                    .clone(),
            ),
            NOW => Some(Value::from(self.now_ms)),
            "steps" if self.steps.is_some() => self.steps.as_deref().map(|s| Value::from(Serde(s))),
            other => self.data.get(other).map(|v| Value::from(Serde(v))),
        }
    }
}

/// Writes a value, escaped for the template's destination. Unlike minijinja's default,
/// booleans print as `true`/`false` and none as nothing: payloads are not Python.
fn format_value(
    out: &mut minijinja::Output,
    state: &mut State,
    value: &Value,
) -> Result<(), Error> {
    let io = |_| Error::new(ErrorKind::WriteFailure, "cannot write template output");
    if value.is_undefined() || value.is_none() {
        return Ok(());
    }
    if value.kind() == minijinja::value::ValueKind::Bool {
        return out
            .write_str(if value.is_true() { "true" } else { "false" })
            .map_err(io);
    }
    let mode = match state.auto_escape() {
        AutoEscape::Custom(mode) => mode.clone(),
        _ => return minijinja::escape_formatter(out, state, value),
    };
    if value.is_safe() {
        return out.write_str(&value.to_string()).map_err(io);
    }
    let text = match mode.as_ref() {
        "json" => match value.as_str() {
            Some(s) => json_string_body(s),
            None => serde_json::to_string(value)
                .map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))?,
        },
        "xml" => xml_escape(&value.to_string()),
        "url" => utf8_percent_encode(&value.to_string(), COMPONENT).to_string(),
        _ => value.to_string(),
    };
    out.write_str(&text).map_err(io)
}

/// A string as it goes between the quotes of a JSON string.
fn json_string_body(s: &str) -> String {
    let quoted = serde_json::Value::from(s).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// Escapes text for XML element content and attribute values. Characters XML 1.0 does
/// not allow at all (most control characters) are dropped: no escape makes them valid.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{0}'..='\u{8}'
            | '\u{b}'
            | '\u{c}'
            | '\u{e}'..='\u{1f}'
            | '\u{fffe}'
            | '\u{ffff}' => {}
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `{{ value|date("Y-m-d", "America/New_York") }}`: formats are compiled once and cached.
fn date_filter(
    formats: &RwLock<HashMap<String, Arc<DateFormat>>>,
    value: Value,
    format: &str,
    tz: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, Error> {
    let invalid = |message: String| Error::new(ErrorKind::InvalidOperation, message);
    let cached = formats
        .read()
        .ok()
        .and_then(|cache| cache.get(format).cloned());
    let compiled = match cached {
        Some(compiled) => compiled,
        None => {
            let compiled = Arc::new(DateFormat::parse(format).map_err(invalid)?);
            if let Ok(mut cache) = formats.write() {
                cache.insert(format.to_string(), compiled.clone());
            }
            compiled
        }
    };
    let tz = match tz {
        Some(name) => parse_timezone(name).map_err(invalid)?,
        None => chrono_tz::UTC,
    };
    let input: serde_json::Value = serde_json::to_value(&value).unwrap_or_default();
    match parse_input(&input, chrono_tz::UTC) {
        Some(at) => Ok(compiled.format(at, tz, now)),
        None if value.is_undefined() || value.is_none() || input == "" => Ok(String::new()),
        None => Err(invalid(format!("date: cannot read {value} as a date"))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dashed_step_names_are_read_as_steps_inside_tags_only() {
        assert_eq!(
            super::dashed_steps("{{ steps.crm-search.id }}/steps.crm-search {% if steps.a-b.x %}"),
            r#"{{ steps["crm-search"].id }}/steps.crm-search {% if steps["a-b"].x %}"#
        );
        assert_eq!(
            super::dashed_steps("{{ steps.find.id - 1 }}"),
            "{{ steps.find.id - 1 }}"
        );
    }

    use super::*;
    use crate::engine::event::Event;

    fn event() -> Event {
        Event::new(
            "call.disposition",
            serde_json::json!({
                "first_name": "Ann & \"Bo\"",
                "phone_number": "(555) 123-4567",
                "call_date": "2024-03-15 14:30:00",
                "tags": ["a", "b"],
                "nested": {"n": 42, "b": false, "f": 2.5, "z": null},
                "event": "shadowed",
                "id": "a/b c",
            }),
        )
    }

    #[test]
    fn the_date_filter_measures_age_from_the_render_time_not_the_wall_clock() {
        let mut templates = Templates::new();
        let id = templates
            .add("{{ '1990-06-15'|date('age') }}", Escape::None)
            .unwrap();
        let event = event();
        for (now, age) in [
            ("2000-06-14T00:00:00Z", "9"),
            ("2000-06-15T00:00:00Z", "10"),
        ] {
            let context = context(&event, now.parse().unwrap());
            assert_eq!(templates.render(id, &event, || &context).unwrap(), age);
        }
    }

    fn render(source: &str, escape: Escape) -> String {
        let mut templates = Templates::new();
        let id = templates.add(source, escape).unwrap();
        let event = event();
        let context = context(&event, event.received_at);
        // Plain substitutions take the fast path; the full engine must agree with it.
        let fast = templates.render(id, &event, || &context).unwrap();
        let mut full_only = Templates::new();
        let id_full = full_only
            .add(&format!("{source}{{# full #}}"), escape)
            .unwrap();
        let full = full_only.render(id_full, &event, || &context).unwrap();
        assert_eq!(fast, full, "fast path and minijinja differ for {source:?}");
        fast
    }

    #[test]
    fn context_has_data_keys_data_and_event() {
        assert_eq!(
            render(
                "{{ phone_number }}|{{ data.id }}|{{ event.type }}",
                Escape::None
            ),
            "(555) 123-4567|a/b c|call.disposition"
        );
        assert_eq!(render("{{ event.id == data.id }}", Escape::None), "false");
        assert_eq!(
            render("{{ missing.deeper }}|{{ none }}|{{ true }}", Escape::None),
            "||true"
        );
    }

    #[test]
    fn escapes_by_destination() {
        assert_eq!(
            render("/c/{{ id }}?x={{ id|safe }}", Escape::Url),
            "/c/a%2Fb%20c?x=a/b c"
        );
        assert_eq!(
            render("<n>{{ first_name }}</n>", Escape::Xml),
            "<n>Ann &amp; &quot;Bo&quot;</n>"
        );
        assert_eq!(
            render(
                r#"{"n": "{{ first_name }}", "t": {{ tags }}}"#,
                Escape::Json
            ),
            r#"{"n": "Ann & \"Bo\"", "t": ["a","b"]}"#
        );
        assert_eq!(
            render(r#"{"t": {{ tags|tojson }}}"#, Escape::Json),
            r#"{"t": ["a", "b"]}"#
        );
    }

    /// Plain substitutions skip minijinja; every case must render as minijinja would.
    #[test]
    fn the_fast_path_agrees_with_minijinja() {
        for escape in [Escape::None, Escape::Url, Escape::Xml, Escape::Json] {
            for source in [
                "{{ first_name }}",
                "a/{{ id }}/b?c={{ phone_number }}",
                "{{ event.type }} {{ event.id }} {{ event.source }} {{ event.received_at }}",
                "{{ data.first_name }}",
                "{{ missing }}{{ missing.deeper }}",
                "{{ tags }}",
                "{{ event }}",
                "{{ nested.n }} {{ nested.b }} {{ nested.f }} {{ nested.z }}",
                "{{ true }}",
            ] {
                render(source, escape);
            }
        }
    }

    #[test]
    fn extra_filters() {
        assert_eq!(
            render("{{ phone_number|digits }}", Escape::None),
            "5551234567"
        );
        assert_eq!(
            render("{{ phone_number|e164 }}", Escape::None),
            "+15551234567"
        );
        assert_eq!(
            render("{{ call_date|date('m/d/Y g:i a') }}", Escape::None),
            "03/15/2024 2:30 pm"
        );
        assert_eq!(
            render(
                "{{ call_date|date('H:i T', 'America/New_York') }}",
                Escape::None
            ),
            "10:30 EDT"
        );
        assert_eq!(render("{{ 'a b&c'|urlencode }}", Escape::None), "a%20b%26c");
    }

    #[test]
    fn errors_name_the_problem() {
        let mut templates = Templates::new();
        let err = templates.add("{{ broken", Escape::None).unwrap_err();
        assert!(err.contains("syntax error"), "{err}");
        let id = templates
            .add(
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
                Escape::None,
            )
            .unwrap();
        let event = event();
        let ctx = context(&event, event.received_at);
        let err = templates.render(id, &event, || &ctx).unwrap_err();
        assert!(err.contains("fuel"), "{err}");
    }
}
