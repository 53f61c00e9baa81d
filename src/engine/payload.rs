//! An adaptor's output: keys in the order they are written, dotted keys as nested objects.
//!
//! A list with linear lookup rather than a map: payloads have tens of keys, and hashing
//! every key (serde_json's map uses SipHash) cost more than it saved — it was a fifth of
//! the engine's time.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

/// A payload: an ordered list of keys. Keys borrow from the adaptor, values from the event
/// when they are sent as they came: building one copies only what it computes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Payload<'a>(Vec<(Cow<'a, str>, Node<'a>)>);

/// A payload value: a JSON value, or a nested payload (from a dotted key).
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    /// A value as the adaptor produced it (which may itself be a JSON object or list).
    Value(Cow<'a, Value>),
    /// An object made of dotted keys.
    Object(Payload<'a>),
}

impl<'a> Payload<'a> {
    /// An empty payload.
    pub fn new() -> Payload<'a> {
        Payload(Vec::new())
    }

    /// The keys and values, in order.
    pub fn entries(&self) -> &[(Cow<'a, str>, Node<'a>)] {
        &self.0
    }

    /// Sets `path` (a dotted key, split), creating nested objects; a key keeps the position
    /// it was first written at.
    pub fn insert(&mut self, path: &'a [String], value: Cow<'a, Value>) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut node = self;
        for part in parents {
            let at = match node.0.iter().position(|(k, _)| k == part.as_str()) {
                Some(at) => {
                    if !matches!(node.0[at].1, Node::Object(_)) {
                        node.0[at].1 = Node::Object(Payload::new());
                    }
                    at
                }
                None => {
                    node.0
                        .push((Cow::Borrowed(part.as_str()), Node::Object(Payload::new())));
                    node.0.len() - 1
                }
            };
            node = match &mut node.0[at].1 {
                Node::Object(inner) => inner,
                Node::Value(_) => unreachable!("made an object just above"),
            };
        }
        match node.0.iter_mut().find(|(k, _)| k == last) {
            Some((_, slot)) => *slot = Node::Value(value),
            None => node
                .0
                .push((Cow::Borrowed(last.as_str()), Node::Value(value))),
        }
    }

    /// The payload as a JSON object (for inbound endpoints, whose output is event data).
    pub fn into_map(self) -> Map<String, Value> {
        self.0
            .into_iter()
            .map(|(k, node)| {
                let value = match node {
                    Node::Value(v) => v.into_owned(),
                    Node::Object(inner) => Value::Object(inner.into_map()),
                };
                (k.into_owned(), value)
            })
            .collect()
    }
}

impl From<Map<String, Value>> for Payload<'static> {
    fn from(map: Map<String, Value>) -> Payload<'static> {
        Payload(
            map.into_iter()
                .map(|(k, v)| (Cow::Owned(k), Node::Value(Cow::Owned(v))))
                .collect(),
        )
    }
}

impl Serialize for Payload<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, node) in &self.0 {
            map.serialize_entry(key.as_ref(), node)?;
        }
        map.end()
    }
}

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Value(v) => v.serialize(serializer),
            Node::Object(p) => p.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_insert_keeps_first_position() {
        let keys: Vec<Vec<String>> = vec![
            vec!["a".into()],
            vec!["p".into(), "x".into()],
            vec!["b".into()],
            vec!["p".into(), "y".into()],
        ];
        let mut out = Payload::new();
        out.insert(&keys[0], Cow::Owned(json!(1)));
        out.insert(&keys[1], Cow::Owned(json!(2)));
        out.insert(&keys[2], Cow::Owned(json!(3)));
        out.insert(&keys[3], Cow::Owned(json!(4)));
        out.insert(&keys[0], Cow::Owned(json!(5)));
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"a":5,"p":{"x":2,"y":4},"b":3}"#
        );
        assert_eq!(
            Value::Object(out.into_map()),
            json!({"a": 5, "p": {"x": 2, "y": 4}, "b": 3})
        );
    }
}
