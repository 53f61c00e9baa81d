//! Reading a response body for `response.success_key` and `response.capture`: JSON as it
//! is, XML as nested objects (elements → keys, repeated elements → lists, attributes →
//! `@name`), text as one string.

use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::{Map, Value};

use crate::config::spec::ResponseFormat;
use crate::engine::event::{MAX_DEPTH, check_depth};

/// The body as a JSON value, by the configured format or else the Content-Type.
/// A body that does not parse as its format, or nests deeper than event data may
/// ([`MAX_DEPTH`]: what is captured from it must read back from the connect log), is kept
/// as text.
pub fn parse(format: Option<ResponseFormat>, content_type: Option<&str>, body: &str) -> Value {
    parse_checked(format, content_type, body).0
}

/// As [`parse`], with why the body was kept as text when it does not parse as its format
/// (for the entry's warnings: a capture that reads a body it cannot parse finds nothing).
pub fn parse_checked(
    format: Option<ResponseFormat>,
    content_type: Option<&str>,
    body: &str,
) -> (Value, Option<String>) {
    let format = format.unwrap_or_else(|| {
        let ct = content_type.unwrap_or_default().to_ascii_lowercase();
        if ct.contains("json") {
            ResponseFormat::Json
        } else if ct.contains("xml") {
            ResponseFormat::Xml
        } else {
            ResponseFormat::Text
        }
    });
    let as_text = || Value::String(body.to_string());
    match format {
        ResponseFormat::Json => match serde_json::from_str::<Value>(body) {
            Ok(doc) if check_depth(&doc).is_ok() => (doc, None),
            Ok(_) => (
                as_text(),
                Some(format!(
                    "the response body nests deeper than {MAX_DEPTH} levels; read as text"
                )),
            ),
            Err(e) => (
                as_text(),
                Some(format!("the response body is not JSON ({e}); read as text")),
            ),
        },
        // Text without elements reads as XML too: it is not what a receiver answering XML
        // sends, so it is reported.
        ResponseFormat::Xml => match xml_to_json(body) {
            Some(doc @ Value::Object(_)) => (doc, None),
            _ => (
                as_text(),
                Some("the response body is not XML; read as text".to_string()),
            ),
        },
        ResponseFormat::Text => (Value::String(body.trim().to_string()), None),
    }
}

/// An element while its children are read.
struct Element {
    name: String,
    children: Map<String, Value>,
    text: String,
}

impl Element {
    fn finish(self) -> Value {
        if self.children.is_empty() {
            return Value::String(self.text.trim().to_string());
        }
        let mut map = self.children;
        let text = self.text.trim();
        if !text.is_empty() {
            map.insert("#text".into(), Value::String(text.to_string()));
        }
        Value::Object(map)
    }
}

/// Adds a child, turning a repeated name into a list.
fn add_child(map: &mut Map<String, Value>, name: String, value: Value) {
    match map.get_mut(&name) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            map.insert(name, value);
        }
    }
}

fn xml_to_json(body: &str) -> Option<Value> {
    let mut reader = Reader::from_str(body);
    let mut stack = vec![Element {
        name: String::new(),
        children: Map::new(),
        text: String::new(),
    }];
    loop {
        match reader.read_event().ok()? {
            Event::Start(start) => {
                let mut element = Element {
                    name: start.local_name().as_ref().to_string(),
                    children: Map::new(),
                    text: String::new(),
                };
                for attr in start.attributes().flatten() {
                    let key = format!("@{}", attr.key.local_name().as_ref());
                    let value = attr
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map(|v| v.into_owned())
                        .unwrap_or_default();
                    element.children.insert(key, Value::String(value));
                }
                if stack.len() > MAX_DEPTH {
                    return None;
                }
                stack.push(element);
            }
            Event::Empty(start) => {
                let name = start.local_name().as_ref().to_string();
                let mut attrs = Map::new();
                for attr in start.attributes().flatten() {
                    let key = format!("@{}", attr.key.local_name().as_ref());
                    let value = attr
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map(|v| v.into_owned())
                        .unwrap_or_default();
                    attrs.insert(key, Value::String(value));
                }
                let value = if attrs.is_empty() {
                    Value::String(String::new())
                } else {
                    Value::Object(attrs)
                };
                add_child(&mut stack.last_mut()?.children, name, value);
            }
            Event::End(_) => {
                let element = stack.pop()?;
                let name = element.name.clone();
                add_child(&mut stack.last_mut()?.children, name, element.finish());
            }
            Event::Text(text) => stack.last_mut()?.text.push_str(&text.xml10_content()),
            Event::CData(data) => stack.last_mut()?.text.push_str(&data.xml10_content()),
            Event::GeneralRef(reference) => {
                let name = reference.xml10_content();
                let c = match name.as_ref() {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    other => other
                        .strip_prefix("#x")
                        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                        .or_else(|| other.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                        .and_then(char::from_u32),
                };
                stack.last_mut()?.text.extend(c);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let root = stack.pop()?;
    (stack.is_empty() && !root.children.is_empty()).then_some(Value::Object(root.children))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_its_format_says_why() {
        let json = Some(ResponseFormat::Json);
        let xml = Some(ResponseFormat::Xml);
        assert_eq!(parse_checked(json, None, r#"{"id":1}"#).1, None);
        let (doc, why) = parse_checked(json, None, "<html>");
        assert_eq!(doc, Value::String("<html>".into()));
        assert!(why.unwrap().starts_with("the response body is not JSON ("));
        assert_eq!(parse_checked(xml, None, "<r><id>1</id></r>").1, None);
        let why = parse_checked(xml, None, r#"{"id":1}"#).1;
        assert_eq!(
            why.as_deref(),
            Some("the response body is not XML; read as text")
        );
        assert_eq!(parse_checked(None, Some("text/plain"), "ok").1, None);
        assert!(
            parse_checked(None, Some("application/json"), "ok")
                .1
                .is_some()
        );
    }

    #[test]
    fn bodies_nested_past_the_limit_are_read_as_text() {
        let deep_json = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(
            parse(Some(ResponseFormat::Json), None, &deep_json),
            Value::String(deep_json.clone())
        );
        let deep_xml = format!("{}x{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        assert_eq!(
            parse(Some(ResponseFormat::Xml), None, &deep_xml),
            Value::String(deep_xml.clone())
        );
        let fine = format!("{}x{}", "<a>".repeat(10), "</a>".repeat(10));
        assert!(parse(Some(ResponseFormat::Xml), None, &fine).is_object());
    }
    use serde_json::json;

    #[test]
    fn xml_becomes_nested_objects() {
        let body = r#"<?xml version="1.0"?><result status="ok"><record><id>5011</id><tag>a</tag><tag>b &amp; c</tag></record><empty/></result>"#;
        assert_eq!(
            parse(Some(ResponseFormat::Xml), None, body),
            json!({"result": {"@status": "ok", "record": {"id": "5011", "tag": ["a", "b & c"]}, "empty": ""}})
        );
    }

    #[test]
    fn format_follows_content_type_and_falls_back_to_text() {
        assert_eq!(
            parse(
                None,
                Some("application/json; charset=utf-8"),
                r#"{"id": 1}"#
            ),
            json!({"id": 1})
        );
        assert_eq!(parse(None, Some("text/plain"), "ok\n"), json!("ok"));
        assert_eq!(
            parse(None, Some("application/json"), "not json"),
            json!("not json")
        );
        assert_eq!(parse(Some(ResponseFormat::Xml), None, "<<<"), json!("<<<"));
    }
}
