//! Field references (docs/configuration.md): `phone_number`, `lead.lead_phone`, `$.lead['utm source']`, `@id`.
//! Parsed once at load; resolving one never parses anything.

use std::borrow::Cow;

use jsonpath_rust::parser::model::JpQuery;
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::Value;

use super::event::Event;

/// A compiled field reference.
#[derive(Debug, Clone)]
pub enum FieldRef {
    /// A top-level key.
    Key(String),
    /// Nested keys (numbers index lists): `lead.custom_params.utm_source`, `agents.0.name`.
    Path {
        /// The parts between the dots.
        parts: Vec<String>,
        /// The reference as written, tried as a literal key when the path finds nothing.
        whole: String,
    },
    /// A JSONPath; the first match is used.
    JsonPath(Box<JpQuery>),
    /// Event metadata.
    Meta(Meta),
}

/// Event metadata a reference can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meta {
    /// `@id`
    Id,
    /// `@type`
    Type,
    /// `@source`
    Source,
    /// `@received_at`
    ReceivedAt,
}

impl FieldRef {
    /// Parses a reference; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<FieldRef, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty field reference".into());
        }
        if let Some(meta) = text.strip_prefix('@') {
            return match meta {
                "id" => Ok(FieldRef::Meta(Meta::Id)),
                "type" => Ok(FieldRef::Meta(Meta::Type)),
                "source" => Ok(FieldRef::Meta(Meta::Source)),
                "received_at" => Ok(FieldRef::Meta(Meta::ReceivedAt)),
                other => Err(format!(
                    "unknown metadata @{other} (known: @id, @type, @source, @received_at)"
                )),
            };
        }
        if text.starts_with('$') {
            return parse_json_path(text)
                .map(|q| FieldRef::JsonPath(Box::new(q)))
                .map_err(|e| {
                    format!(
                        "invalid JSONPath {text:?}: {}",
                        jsonpath_problem(&e.to_string())
                    )
                });
        }
        if text.contains('.') {
            let parts: Vec<String> = text.split('.').map(str::to_string).collect();
            if parts.iter().any(String::is_empty) {
                return Err(format!(
                    "field reference {text:?} has an empty part between dots"
                ));
            }
            return Ok(FieldRef::Path {
                parts,
                whole: text.to_string(),
            });
        }
        Ok(FieldRef::Key(text.to_string()))
    }

    /// The value this reference finds in `event`, if any.
    pub fn resolve<'a>(&self, event: &'a Event) -> Option<Cow<'a, Value>> {
        match self {
            FieldRef::Meta(meta) => Some(Cow::Owned(Value::String(match meta {
                Meta::Id => event.id.to_string(),
                Meta::Type => event.kind.clone(),
                Meta::Source => event.source.clone(),
                Meta::ReceivedAt => event.received_at_text(),
            }))),
            other => other.resolve_in(&event.data).map(Cow::Borrowed),
        }
    }

    /// The value this reference finds in any JSON document (a response body, say);
    /// metadata references find nothing outside an event. `$` alone is the document.
    pub fn resolve_in<'a>(&self, data: &'a Value) -> Option<&'a Value> {
        match self {
            FieldRef::Key(key) => data.get(key),
            FieldRef::Path { parts, whole } => walk(data, parts).or_else(|| data.get(whole)),
            FieldRef::JsonPath(query) => js_path_process(query, data)
                .ok()?
                .into_iter()
                .next()
                .map(|found| found.val()),
            FieldRef::Meta(_) => None,
        }
    }
}

/// The parser's multi-line report as one phrase: `expected selector at character 5`.
fn jsonpath_problem(report: &str) -> String {
    let expected = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("= "))
        .unwrap_or("cannot parse it");
    let column = report
        .split_once("-->")
        .and_then(|(_, rest)| rest.trim().split_once(':'))
        .map(|(_, col)| {
            col.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|c| !c.is_empty());
    match column {
        Some(col) => format!("{expected} at character {col}"),
        None => expected.to_string(),
    }
}

/// Follows `parts` down through maps (by key) and lists (by index).
fn walk<'a>(mut node: &'a Value, parts: &[String]) -> Option<&'a Value> {
    for part in parts {
        node = match node {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn find(reference: &str) -> Option<Value> {
        let mut event = Event::new(
            "start_call",
            json!({
                "phone_number": "+15551234567",
                "lead": {"lead_phone": "+1555", "custom_params": {"utm source": "fb"}},
                "agents": [{"name": "Ann"}],
                "dotted.key": "literal",
            }),
        );
        event.id = crate::engine::event::EventId::new("ev1");
        FieldRef::parse(reference)
            .unwrap()
            .resolve(&event)
            .map(Cow::into_owned)
    }

    #[test]
    fn resolves_every_kind_of_reference() {
        assert_eq!(find("phone_number"), Some(json!("+15551234567")));
        assert_eq!(find("lead.lead_phone"), Some(json!("+1555")));
        assert_eq!(find("agents.0.name"), Some(json!("Ann")));
        assert_eq!(find("dotted.key"), Some(json!("literal")));
        assert_eq!(
            find("$.lead.custom_params['utm source']"),
            Some(json!("fb"))
        );
        assert_eq!(find("$.agents[*].name"), Some(json!("Ann")));
        assert_eq!(find("@id"), Some(json!("ev1")));
        assert_eq!(find("@type"), Some(json!("start_call")));
        assert_eq!(find("@source"), Some(json!("api")));
        assert_eq!(find("lead.missing"), None);
        assert_eq!(find("$.nope"), None);
    }

    #[test]
    fn bad_references_say_why() {
        assert!(FieldRef::parse("@when").unwrap_err().contains("known: @id"));
        assert!(
            FieldRef::parse("$.a[")
                .unwrap_err()
                .starts_with("invalid JSONPath")
        );
        assert!(FieldRef::parse("a..b").unwrap_err().contains("empty part"));
    }
}
