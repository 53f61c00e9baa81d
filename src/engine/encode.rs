//! Payload encoders (`format:` of endpoints): JSON, form, XML and query strings from an adaptor's output.
//!
//! Form and query nest keys as `a[b]` and join lists of scalars with the endpoint's
//! delimiter; XML nests elements, escapes text, joins scalar lists and repeats an element
//! for each object of a list.

use serde_json::{Map, Value};

use super::payload::{Node, Payload};

use super::template::xml_escape;
use super::value::text;

/// The payload as compact JSON.
pub fn json(payload: &Payload) -> String {
    serde_json::to_string(payload).expect("a payload always serializes")
}

/// The payload as `key=value` pairs, nested keys as `a[b]`, lists joined by `delimiter`.
pub fn pairs(payload: &Payload, delimiter: &str) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(payload.entries().len());
    flatten_payload(None, payload, delimiter, &mut out);
    out
}

fn flatten_payload(
    prefix: Option<&str>,
    payload: &Payload,
    delimiter: &str,
    out: &mut Vec<(String, String)>,
) {
    for (key, node) in payload.entries() {
        let key = match prefix {
            Some(p) => format!("{p}[{key}]"),
            None => key.to_string(),
        };
        match node {
            Node::Value(value) => flatten(key, value, delimiter, out),
            Node::Object(inner) => flatten_payload(Some(&key), inner, delimiter, out),
        }
    }
}

fn flatten(key: String, value: &Value, delimiter: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(format!("{key}[{k}]"), v, delimiter, out);
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
            for (i, item) in items.iter().enumerate() {
                flatten(format!("{key}[{i}]"), item, delimiter, out);
            }
        }
        Value::Array(items) => {
            let joined: Vec<String> = items.iter().map(|i| text(i).into_owned()).collect();
            out.push((key, joined.join(delimiter)));
        }
        scalar => out.push((key, text(scalar).into_owned())),
    }
}

/// `application/x-www-form-urlencoded` text of pairs (`+` for space, `%2B` for `+`).
pub fn urlencoded(pairs: &[(String, String)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        serializer.append_pair(k, v);
    }
    serializer.finish()
}

/// Appends encoded pairs to a URL's query, after any query it already has and before
/// its fragment.
pub fn append_query(url: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return url.to_string();
    }
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let separator = match base.find('?') {
        None => "?",
        Some(at) if at + 1 == base.len() || base.ends_with('&') => "",
        Some(_) => "&",
    };
    let mut out = format!("{base}{separator}{}", urlencoded(pairs));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// `<root>…</root>` with nested elements.
pub fn xml(payload: &Payload, root: &str, delimiter: &str) -> String {
    let mut out = String::with_capacity(64 + payload.entries().len() * 32);
    out.push('<');
    out.push_str(root);
    out.push('>');
    xml_payload(payload, delimiter, &mut out);
    out.push_str("</");
    out.push_str(root);
    out.push('>');
    out
}

fn xml_payload(payload: &Payload, delimiter: &str, out: &mut String) {
    for (key, node) in payload.entries() {
        let name = xml_name(key);
        match node {
            Node::Value(value) => xml_element(&name, value, delimiter, out),
            Node::Object(inner) => {
                out.push('<');
                out.push_str(&name);
                out.push('>');
                xml_payload(inner, delimiter, out);
                out.push_str("</");
                out.push_str(&name);
                out.push('>');
            }
        }
    }
}

fn xml_children(map: &Map<String, Value>, delimiter: &str, out: &mut String) {
    for (key, value) in map {
        xml_element(&xml_name(key), value, delimiter, out);
    }
}

fn xml_element(name: &str, value: &Value, delimiter: &str, out: &mut String) {
    if let Value::Array(items) = value
        && items.iter().any(|i| i.is_object() || i.is_array())
    {
        for item in items {
            xml_element(name, item, delimiter, out);
        }
        return;
    }
    out.push('<');
    out.push_str(name);
    out.push('>');
    match value {
        Value::Object(map) => xml_children(map, delimiter, out),
        Value::Array(items) => {
            let joined: Vec<String> = items.iter().map(|i| text(i).into_owned()).collect();
            out.push_str(&xml_escape(&joined.join(delimiter)));
        }
        scalar => out.push_str(&xml_escape(&text(scalar))),
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Whether `name` is a valid XML element name (the subset receivers accept).
pub fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A data key made into an element name: other characters become `_`, and a name that
/// cannot start an element gets a leading `_`.
fn xml_name(key: &str) -> String {
    if is_xml_name(key) {
        return key.to_string();
    }
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_alphabetic() || c == '_') {
        name.insert(0, '_');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Payload<'static> {
        Payload::from(v.as_object().cloned().unwrap())
    }

    #[test]
    fn form_nests_and_joins() {
        let p = map(
            json!({"phone": "+1 555", "properties": {"firstname": "Ann & Bo"}, "tags": ["a", "b"], "n": 3, "ok": true, "none": null}),
        );
        assert_eq!(
            urlencoded(&pairs(&p, "|")),
            "phone=%2B1+555&properties%5Bfirstname%5D=Ann+%26+Bo&tags=a%7Cb&n=3&ok=true&none="
        );
        let objs = map(json!({"agents": [{"name": "A"}, {"name": "B"}]}));
        assert_eq!(
            pairs(&objs, ","),
            vec![
                ("agents[0][name]".into(), "A".into()),
                ("agents[1][name]".into(), "B".into())
            ]
        );
    }

    #[test]
    fn query_appends_after_existing_query_and_before_fragment() {
        let p = vec![("lc_number".to_string(), "+1234".to_string())];
        assert_eq!(
            append_query("https://h/p", &p),
            "https://h/p?lc_number=%2B1234"
        );
        assert_eq!(
            append_query("https://h/p?a=1", &p),
            "https://h/p?a=1&lc_number=%2B1234"
        );
        assert_eq!(
            append_query("https://h/p?", &p),
            "https://h/p?lc_number=%2B1234"
        );
        assert_eq!(
            append_query("https://h/p?a=1#top", &p),
            "https://h/p?a=1&lc_number=%2B1234#top"
        );
        assert_eq!(append_query("https://h/p?a=1", &[]), "https://h/p?a=1");
    }

    #[test]
    fn xml_nests_escapes_and_repeats() {
        let p = map(
            json!({"id": "a<b", "contact": {"first": "Ann & \"Bo\""}, "tags": ["x", "y"], "item": [{"n": 1}, {"n": 2}], "bad key": 1, "9lives": 2}),
        );
        assert_eq!(
            xml(&p, "call", ","),
            "<call><id>a&lt;b</id><contact><first>Ann &amp; &quot;Bo&quot;</first></contact><tags>x,y</tags><item><n>1</n></item><item><n>2</n></item><bad_key>1</bad_key><_9lives>2</_9lives></call>"
        );
    }
}
