//! Adaptor specs → compiled adaptors.

use std::collections::HashMap;

use serde_json::Value;

use crate::config::spec::AdaptorSpec;
use crate::config::{Doc, Problems};
use crate::engine::adaptor::{Adaptor, DateSpec, Extra, Field, KeyPath, Source};
use crate::engine::date::{DateFormat, parse_timezone, php_equivalent, zone_warning};
use crate::engine::field::FieldRef;
use crate::engine::request::is_template;
use crate::engine::template::{Escape, Templates};

pub(super) fn adaptor(
    doc: &Doc<AdaptorSpec>,
    templates: &mut Templates,
    problems: &mut Problems,
) -> Adaptor {
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
            let at = format!("{path}.date_format");
            if let Some(php) = php_equivalent(format) {
                problems.warn(doc.error_at(
                    &at,
                    format!(
                        "date_format {format:?} looks like a Java/ICU/moment pattern, but date_format takes PHP date() letters: write {php:?}"
                    ),
                ));
            }
            let format = DateFormat::parse(format)
                .map_err(|e| problems.error(doc.error_at(&at, e)))
                .ok();
            let zone = |key: &str, name: &Option<String>, problems: &mut Problems| match name {
                None => Some(chrono_tz::UTC),
                Some(name) => {
                    let at = format!("{path}.{key}");
                    if let Some(warning) = zone_warning(name) {
                        problems.warn(doc.error_at(&at, format!("{key}: {warning}")));
                    }
                    parse_timezone(name)
                        .map_err(|e| problems.error(doc.error_at(&at, e)))
                        .ok()
                }
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
///
/// The keys go into a tree of their parts one by one, so that a key meets the earlier keys
/// it clashes with on its way down: time grows with the length of all keys (comparing every
/// pair took 13 s for an adaptor of 64k fields). Each key reports at most one shorter key
/// and one equal or longer key it clashes with.
fn key_conflicts(doc: &Doc<AdaptorSpec>, keys: &[(KeyPath, String)], problems: &mut Problems) {
    struct Node {
        /// The first key that ends here, if any.
        ends: Option<usize>,
        /// The first key that passes through or ends here.
        first: usize,
        /// Whether a longer key passes through.
        inner: bool,
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut edges: HashMap<(usize, &str), usize> = HashMap::new();
    let root = usize::MAX;
    for (index, (key, at)) in keys.iter().enumerate() {
        let mut node = root;
        let mut shorter = None;
        for part in key {
            if node != root {
                nodes[node].inner = true;
                if shorter.is_none() {
                    shorter = nodes[node].ends;
                }
            }
            node = *edges.entry((node, part.as_str())).or_insert_with(|| {
                nodes.push(Node {
                    ends: None,
                    first: index,
                    inner: false,
                });
                nodes.len() - 1
            });
        }
        if node == root {
            continue;
        }
        let conflict = |short: &KeyPath, long: &KeyPath| {
            doc.error_at(
                at,
                format!(
                    "output keys {} and {} conflict: {} cannot be both a value and an object",
                    short.join("."),
                    long.join("."),
                    short.join(".")
                ),
            )
        };
        if let Some(short) = shorter {
            problems.error(conflict(&keys[short].0, key));
        }
        let end = &mut nodes[node];
        if end.ends.is_some() {
            problems.warn(doc.error_at(
                at,
                format!(
                    "output key {} is written twice; the later value wins",
                    key.join(".")
                ),
            ));
        } else if end.inner {
            problems.error(conflict(key, &keys[end.first].0));
        }
        end.ends.get_or_insert(index);
    }
}

/// Every output key of an adaptor, as paths.
pub(super) fn output_keys(adaptor: &Adaptor) -> impl Iterator<Item = &KeyPath> {
    adaptor
        .fields
        .iter()
        .flat_map(|f| f.to.iter())
        .chain(adaptor.extra.iter().map(|(k, _)| k))
}
