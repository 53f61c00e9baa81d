//! Events: metadata plus a JSON object of data, and how they are read from files and
//! request bodies (an envelope, a raw payload with a type, an array, or NDJSON).

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An event's unique id: from the envelope, the `Idempotency-Key` header or an inbound
/// endpoint's `event_id`, else a generated ULID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// A new, time-ordered id.
    pub fn generate() -> EventId {
        EventId(ulid::Ulid::new().to_string())
    }

    /// An id given by the sender.
    pub fn new(id: impl Into<String>) -> EventId {
        EventId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One event: what happened (`kind`, e.g. `call.disposition`), its metadata, and its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id.
    pub id: EventId,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `api` or the inbound endpoint's name.
    pub source: String,
    /// Time of arrival.
    pub received_at: DateTime<Utc>,
    /// The payload: always a JSON object. Shared, so that templates can read it without
    /// copying it.
    pub data: std::sync::Arc<Value>,
    /// What the earlier steps of the action being rendered captured, by step name (with
    /// each one's HTTP `status`): what `@steps.STEP.NAME` and the templates' `steps` read.
    /// Set only while an action that runs after a step is rendered; never stored.
    #[serde(skip)]
    pub steps: Option<std::sync::Arc<Value>>,
}

impl Event {
    /// An event from the API, received now, with a generated id. `data` should be an object.
    pub fn new(kind: impl Into<String>, data: Value) -> Event {
        Event {
            id: EventId::generate(),
            kind: kind.into(),
            source: "api".into(),
            received_at: Utc::now(),
            data: std::sync::Arc::new(data),
            steps: None,
        }
    }

    /// `received_at` in RFC 3339 UTC with milliseconds, as logs and templates show it.
    pub fn received_at_text(&self) -> String {
        self.received_at
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

/// An envelope as posted to `/events` or written in an event file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<IdValue>,
    data: Value,
    source: Option<String>,
    received_at: Option<DateTime<Utc>>,
}

/// Ids may be sent as strings or numbers.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum IdValue {
    Text(String),
    Number(serde_json::Number),
}

/// Why an event could not be read; one line, naming the place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventError(pub String);

/// Reads events from `text`: one envelope, a raw payload (when `kind` is given), a JSON
/// array of those, or NDJSON (one per line). Events without `received_at` get `now`.
pub fn parse_events(
    text: &str,
    kind: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, EventError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(EventError("no event: the input is empty".into()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                event_from_value(item, kind, now)
                    .map_err(|e| EventError(format!("item {}: {e}", i + 1)))
            })
            .collect(),
        Ok(value) => Ok(vec![event_from_value(value, kind, now)?]),
        Err(e) if e.is_syntax() && e.line() > 1 && looks_like_ndjson(trimmed) => {
            parse_ndjson(text, kind, now)
        }
        Err(e) => Err(EventError(format!("invalid JSON: {}", json_message(&e)))),
    }
}

/// NDJSON: the first line is a complete JSON value on its own.
fn looks_like_ndjson(text: &str) -> bool {
    let first = text.lines().next().unwrap_or_default();
    serde_json::from_str::<Value>(first).is_ok()
}

fn parse_ndjson(
    text: &str,
    kind: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, EventError> {
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| {
            EventError(format!(
                "line {}: invalid JSON: {}",
                i + 1,
                json_message(&e)
            ))
        })?;
        events.push(
            event_from_value(value, kind, now)
                .map_err(|e| EventError(format!("line {}: {e}", i + 1)))?,
        );
    }
    Ok(events)
}

/// serde_json's message with its position in our words.
fn json_message(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let bare = match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => &message,
    };
    format!("{bare} (line {}, column {})", e.line(), e.column())
}

/// One event from one JSON value: an envelope, or a raw payload of type `kind`, received
/// at `now` unless the envelope says otherwise.
pub fn event_from_value(
    value: Value,
    kind: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Event, EventError> {
    let mut event = envelope_or_payload(value, kind)?;
    if event.received_at == DateTime::<Utc>::MIN_UTC {
        event.received_at = now;
    }
    Ok(event)
}

fn envelope_or_payload(value: Value, kind: Option<&str>) -> Result<Event, EventError> {
    if let Some(kind) = kind {
        return raw_payload(value, kind, None);
    }
    let Value::Object(map) = &value else {
        return Err(EventError(format!(
            "expected a JSON object (an envelope {{\"type\", \"data\"}}), got {}",
            super::value::kind(&value)
        )));
    };
    if !map.contains_key("data") {
        let hint = match map.get("type").and_then(Value::as_str) {
            Some(t) => format!(" (its \"type\" field says {t:?}: --type {t})"),
            None => String::new(),
        };
        return Err(EventError(format!(
            "this is a raw payload, not an envelope {{\"type\", \"data\"}}: give its event type with --type{hint}"
        )));
    }
    let envelope: Envelope =
        serde_json::from_value(value).map_err(|e| EventError(format!("invalid envelope: {e}")))?;
    let mut event = raw_payload(envelope.data, &envelope.kind, envelope.id)?;
    if let Some(source) = envelope.source {
        event.source = source;
    }
    if let Some(at) = envelope.received_at {
        event.received_at = at;
    }
    Ok(event)
}

/// Event data nests at most this many levels of objects and arrays. One limit for every
/// door (`/events`, hooks, `send`): the store reads back what it wrote with serde_json's
/// limit of 128 levels, and a stored record wraps the data in a few levels more, so data
/// accepted at this depth always reads back.
pub const MAX_DEPTH: usize = 64;

/// Refuses data nested deeper than [`MAX_DEPTH`] (checked without recursion).
pub fn check_depth(data: &Value) -> Result<(), EventError> {
    let mut stack = vec![(data, 1usize)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Object(map) => Box::new(map.values()),
            Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        if depth > MAX_DEPTH {
            return Err(EventError(format!(
                "event data is nested more than {MAX_DEPTH} levels deep"
            )));
        }
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    Ok(())
}

/// An event id (and source) is at most this many bytes: they are keys in every store, and
/// PostgreSQL's indexes refuse a key much over 2 KB.
pub const MAX_ID_BYTES: usize = 512;

/// Refuses an event whose id or source no store keeps as a key (the source is the other
/// half of the dedupe key, and an envelope may set it): one longer than [`MAX_ID_BYTES`],
/// or with a control character (PostgreSQL refuses NUL in text; the others make logs and
/// CSV exports ambiguous). Checked at every door, once the id is final.
/// The source `switchboard` is switchboard's own (its operational events): no door takes
/// an event that claims it.
pub fn check_keys(event: &Event) -> Result<(), EventError> {
    check_key("id", event.id.as_str())?;
    if event.source.eq_ignore_ascii_case("switchboard") {
        return Err(EventError(
            "the event source \"switchboard\" is reserved for switchboard's own operational events"
                .into(),
        ));
    }
    check_key("source", &event.source)
}

fn check_key(what: &str, value: &str) -> Result<(), EventError> {
    if value.len() > MAX_ID_BYTES {
        return Err(EventError(format!(
            "the event {what} is {} bytes long; at most {MAX_ID_BYTES} are accepted",
            value.len()
        )));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(EventError(format!(
            "the event {what} contains the control character U+{:04X}",
            u32::from(c)
        )));
    }
    Ok(())
}

fn raw_payload(data: Value, kind: &str, id: Option<IdValue>) -> Result<Event, EventError> {
    if kind.trim().is_empty() {
        return Err(EventError("the event type is empty".into()));
    }
    check_depth(&data)?;
    if !data.is_object() {
        return Err(EventError(format!(
            "event data must be a JSON object, got {}",
            super::value::kind(&data)
        )));
    }
    let mut event = Event::new(kind, data);
    // Marks "not given": event_from_value replaces it with the caller's clock.
    event.received_at = DateTime::<Utc>::MIN_UTC;
    match id {
        Some(IdValue::Text(id)) if id.trim().is_empty() => {
            return Err(EventError("the event id is empty".into()));
        }
        Some(IdValue::Text(id)) => event.id = EventId::new(id),
        Some(IdValue::Number(n)) => event.id = EventId::new(n.to_string()),
        None => {}
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn nested(levels: usize) -> Value {
        let mut value = json!(1);
        for i in 0..levels {
            value = if i % 2 == 0 {
                json!({ "a": value })
            } else {
                json!([value])
            };
        }
        value
    }

    #[test]
    fn data_nested_past_the_limit_is_refused_and_data_at_it_is_not() {
        assert!(check_depth(&nested(MAX_DEPTH)).is_ok());
        let error = check_depth(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert!(
            error.0.contains("nested more than 64 levels"),
            "{}",
            error.0
        );
        let envelope = json!({"type": "t", "data": nested(MAX_DEPTH + 1)});
        assert!(event_from_value(envelope, None, Utc::now()).is_err());
    }

    #[test]
    fn reads_envelopes_raw_payloads_arrays_and_ndjson() {
        let one = parse_events(
            r#"{"type": "lead.created", "id": 42, "data": {"a": 1}}"#,
            None,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(
            (one[0].kind.as_str(), one[0].id.as_str()),
            ("lead.created", "42")
        );
        let raw = parse_events(
            r#"{"type": "start_call", "call_id": "x"}"#,
            Some("start_call"),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(raw[0].data["call_id"], "x");
        let many = parse_events(
            r#"[{"type": "a", "data": {}}, {"type": "b", "data": {}}]"#,
            None,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(many.len(), 2);
        let nd = parse_events(
            "{\"type\": \"a\", \"data\": {}}\n\n{\"type\": \"b\", \"data\": {}}\n",
            None,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(nd[1].kind, "b");
        let at: DateTime<Utc> = "2024-01-02T03:04:05Z".parse().unwrap();
        let given = parse_events(
            r#"{"type": "a", "data": {}, "received_at": "2020-01-01T00:00:00Z"}"#,
            None,
            at,
        )
        .unwrap();
        assert_eq!(
            given[0].received_at.to_rfc3339(),
            "2020-01-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_events(r#"{"type": "a", "data": {}}"#, None, at).unwrap()[0].received_at,
            at
        );
    }

    #[test]
    fn bad_input_is_one_clear_line() {
        let cases = [
            ("", "no event: the input is empty"),
            (
                "{\"type\": ",
                "invalid JSON: EOF while parsing a value (line 1, column 9)",
            ),
            (
                r#"{"type": "start_call", "call_id": "x"}"#,
                "this is a raw payload, not an envelope {\"type\", \"data\"}: give its event type with --type (its \"type\" field says \"start_call\": --type start_call)",
            ),
            (
                r#"{"type": "a", "data": []}"#,
                "event data must be a JSON object, got an array",
            ),
            (
                r#"{"type": "a", "data": {}, "extra": 1}"#,
                "invalid envelope: unknown field `extra`, expected one of `type`, `id`, `data`, `source`, `received_at`",
            ),
            (
                "{\"type\": \"a\", \"data\": {}}\n{oops}",
                "line 2: invalid JSON: key must be a string (line 1, column 2)",
            ),
            (
                "[1]",
                "item 1: expected a JSON object (an envelope {\"type\", \"data\"}), got a number",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_events(input, None, Utc::now()).unwrap_err().0,
                expected,
                "{input}"
            );
        }
    }
}
