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
    /// A value an earlier step captured: `@steps.find.contact_id` (step `find`, then the
    /// path into its values; `status` is the step's HTTP status).
    Step {
        /// The step's name.
        step: String,
        /// The path into its values.
        parts: Vec<String>,
    },
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
            if let Some(rest) = meta
                .strip_prefix("steps.")
                .or((meta == "steps").then_some(""))
            {
                let mut parts = rest.split('.').map(str::to_string);
                let step = parts.next().unwrap_or_default();
                let parts: Vec<String> = parts.collect();
                if step.is_empty() || parts.is_empty() || parts.iter().any(String::is_empty) {
                    return Err(format!(
                        "@{meta} names no value of a step: write @steps.STEP.NAME (a captured name, or status)"
                    ));
                }
                return Ok(FieldRef::Step { step, parts });
            }
            return match meta {
                "id" => Ok(FieldRef::Meta(Meta::Id)),
                "type" => Ok(FieldRef::Meta(Meta::Type)),
                "source" => Ok(FieldRef::Meta(Meta::Source)),
                "received_at" => Ok(FieldRef::Meta(Meta::ReceivedAt)),
                other => Err(format!(
                    "unknown metadata @{other} (known: @id, @type, @source, @received_at, @steps.STEP.NAME)"
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
            FieldRef::Step { step, parts } => event
                .steps
                .as_deref()
                .and_then(|steps| steps.get(step))
                .and_then(|values| walk(values, parts))
                .map(Cow::Borrowed),
            other => other.resolve_in(&event.data).map(Cow::Borrowed),
        }
    }

    /// The step a `@steps.STEP.NAME` reference reads from.
    pub fn step(&self) -> Option<&str> {
        match self {
            FieldRef::Step { step, .. } => Some(step),
            _ => None,
        }
    }

    /// The first name after the step in a step reference (`contact_id` of
    /// `@steps.find.contact_id`): what the step must capture.
    pub fn step_value(&self) -> Option<&str> {
        match self {
            FieldRef::Step { parts, .. } => parts.first().map(String::as_str),
            _ => None,
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
            FieldRef::Meta(_) | FieldRef::Step { .. } => None,
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
        assert!(
            FieldRef::parse("@steps.find")
                .unwrap_err()
                .contains("@steps.STEP.NAME")
        );
    }

    #[test]
    fn step_references_read_the_steps_values_only() {
        let mut event = Event::new("x", json!({"steps": {"find": {"id": "data"}}}));
        let id = FieldRef::parse("@steps.find.id").unwrap();
        assert_eq!(id.step(), Some("find"));
        assert_eq!(id.resolve(&event), None);
        event.steps = Some(std::sync::Arc::new(
            json!({"find": {"id": "901", "status": 200, "deal": {"ids": [7]}}}),
        ));
        assert_eq!(id.resolve(&event).as_deref(), Some(&json!("901")));
        let nested = FieldRef::parse("@steps.find.deal.ids.0").unwrap();
        assert_eq!(nested.resolve(&event).as_deref(), Some(&json!(7)));
        let status = FieldRef::parse("@steps.find.status").unwrap();
        assert_eq!(status.resolve(&event).as_deref(), Some(&json!(200)));
        assert_eq!(
            FieldRef::parse("@steps.other.id").unwrap().resolve(&event),
            None
        );
    }
}
