//! Configuration loading: configurations built from the real keys with wrong, odd and
//! missing values, and the example configurations with bytes flipped, cut and spliced,
//! loaded through the library's loader.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::{cases, json, within};
use crate::common::{ConfigDir, root};

/// A configuration as files: (path under the folder, contents).
type Files = Vec<(String, Vec<u8>)>;

/// One example configuration, with the environment its env.example gives.
struct Example {
    files: Files,
    env: HashMap<String, String>,
}

/// The repository's own configuration and every example under examples/.
fn examples() -> &'static [Example] {
    static EXAMPLES: OnceLock<Vec<Example>> = OnceLock::new();
    EXAMPLES.get_or_init(|| {
        let mut dirs = vec![root()];
        let mut found: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
            .expect("examples folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("workflows").is_dir())
            .collect();
        found.sort();
        dirs.extend(found);
        dirs.iter()
            .map(|dir| {
                let mut files = Files::new();
                for kind in ["adaptors", "endpoints", "workflows"] {
                    let Ok(entries) = std::fs::read_dir(dir.join(kind)) else {
                        continue;
                    };
                    let mut paths: Vec<PathBuf> =
                        entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                    paths.sort();
                    for path in paths {
                        let name = path.file_name().unwrap().to_string_lossy();
                        files.push((format!("{kind}/{name}"), std::fs::read(&path).unwrap()));
                    }
                }
                let env = std::fs::read_to_string(dir.join("env.example"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect();
                Example { files, env }
            })
            .collect()
    })
}

/// Loads `files` with `env` and checks the outcome: a configuration, or errors that each
/// name one of the files and say something.
fn load_and_check(files: &Files, env: HashMap<String, String>) -> Result<bool, TestCaseError> {
    let written: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_slice()))
        .collect();
    let dir = write(&written);
    let path = dir.path().to_path_buf();
    let outcome = within("loading the configuration", move || {
        switchboard::load_with_env(&path, &|name| env.get(name).cloned()).map(|_| ())
    });
    let Err(errors) = outcome else {
        return Ok(true);
    };
    prop_assert!(!errors.errors.is_empty());
    for error in &errors.errors {
        prop_assert!(
            files.iter().any(|(p, _)| *p == error.file),
            "an error names no file of the configuration: {}",
            error
        );
        prop_assert!(
            !error.message.trim().is_empty(),
            "an empty message: {}",
            error
        );
        prop_assert!(error.to_string().starts_with(&error.file));
    }
    Ok(false)
}

/// A configuration folder with files given as bytes (they need not be UTF-8).
fn write(files: &[(&str, &[u8])]) -> ConfigDir {
    let dir = ConfigDir::new(&[]);
    for (path, bytes) in files {
        std::fs::write(dir.path().join(path), bytes).expect("write");
    }
    dir
}

/// Text that YAML parsers and the loader find hard.
#[rustfmt::skip]
const SNIPPETS: &[&str] = &[
    "\n", ":", ": ", "- ", "\t", "#", "'", "\"", "{", "}", "[", "]", "&a ", "*a", "<<: *a\n",
    "!!binary ", "!!str ", "!custom ", "? ", "|\n", ">-\n", "---\n", "...\n", "%YAML 1.2\n",
    "~", "null", "1e400", "-.inf", ".nan", "0x7fffffffffffffffff", "99999999999999999999999",
    "0o777", "\u{feff}", "\u{0}", "\u{202e}", "\u{85}", "\u{2028}", "é", "👍🏽", "${", "${A}",
    "${A:-", "${A:-x}", "$${A}", "${A_FILE}", "{{", "}}", "{%", "%}", "{{ a|date('Y') }}",
];

/// A deeply nested value in flow and block style, and a chain of aliases that would
/// expand exponentially.
fn deep_snippet() -> impl Strategy<Value = String> {
    prop_oneof![
        (1usize..300).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n))),
        (1usize..300).prop_map(|n| format!("{}1{}", "{a: ".repeat(n), "}".repeat(n))),
        (1usize..200).prop_map(|n| {
            (0..n)
                .map(|i| format!("{}- \n", "  ".repeat(i)))
                .collect::<String>()
        }),
        (1usize..12).prop_map(|n| {
            let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
            for i in 1..=n {
                let p = i - 1;
                text.push_str(&format!(
                    "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
                ));
            }
            text
        }),
    ]
}

/// One change to one file of a configuration.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: prop::sample::Index,
        byte: u8,
    },
    Cut {
        at: prop::sample::Index,
    },
    Insert {
        at: prop::sample::Index,
        text: String,
    },
    DropLine {
        at: prop::sample::Index,
    },
    RepeatLine {
        at: prop::sample::Index,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<prop::sample::Index>;
    prop_oneof![
        // Mostly ASCII: a byte past 0x7f makes most files unreadable UTF-8 at once.
        3 => (at(), prop_oneof![4 => 0u8..0x80, 1 => any::<u8>()])
            .prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        1 => at().prop_map(|at| Mutation::Cut { at }),
        4 => (at(), prop_oneof![
            4 => prop::sample::select(SNIPPETS).prop_map(str::to_string),
            1 => deep_snippet(),
            1 => any::<String>(),
        ])
            .prop_map(|(at, text)| Mutation::Insert { at, text }),
        1 => at().prop_map(|at| Mutation::DropLine { at }),
        1 => at().prop_map(|at| Mutation::RepeatLine { at }),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let line_spans = |bytes: &[u8]| {
        let mut spans = Vec::new();
        let mut start = 0;
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\n' {
                spans.push(start..i + 1);
                start = i + 1;
            }
        }
        if start < bytes.len() {
            spans.push(start..bytes.len());
        }
        spans
    };
    match mutation {
        Mutation::Flip { at, byte } if !bytes.is_empty() => {
            let i = at.index(bytes.len());
            bytes[i] = *byte;
        }
        Mutation::Flip { .. } => {}
        Mutation::Cut { at } => bytes.truncate(at.index(bytes.len() + 1)),
        Mutation::Insert { at, text } => {
            let i = at.index(bytes.len() + 1);
            bytes.splice(i..i, text.bytes());
        }
        Mutation::DropLine { at } | Mutation::RepeatLine { at } => {
            let spans = line_spans(bytes);
            if spans.is_empty() {
                return;
            }
            let span = spans[at.index(spans.len())].clone();
            if matches!(mutation, Mutation::DropLine { .. }) {
                bytes.drain(span);
            } else {
                let line = bytes[span.clone()].to_vec();
                bytes.splice(span.start..span.start, line);
            }
        }
    }
}

/// Names files and references are drawn from, so that references sometimes resolve.
const NAMES: &[&str] = &["crm", "hook", "contact", "a"];

/// Scalars a key could plausibly hold, for every kind of key: names, durations, templates,
/// URLs, methods, formats, paths, status codes, rates, regexes, date formats, time zones,
/// JSONPaths, `${VAR}` references, networks; all of them wrong somewhere.
#[rustfmt::skip]
const PLAUSIBLE: &[&str] = &[
    "crm", "hook", "contact", "a", "", " ", "10s", "5m", "0s", "-1s", "10", "1.5s", "s",
    "99999999999999h", "{{ a }}", "{{", "{% for %}", "{{ a|date('Y') }}", "{{ a }}:{{ b }}",
    "http://127.0.0.1:9/x", "https://{{ a }}.example.com/{{ b }}", "ftp://x", "not a url",
    "http://[::1", "POST", "GET", "PATCH", "post", "BREW", "json", "xml", "form", "query",
    "csv", "text", "inbound", "outbound", "/hooks/a", "hooks/a", "/hooks/", "/events",
    "/hooks/a?x", "/hooks/%zz", "2xx", "200-299", "600", "299-200", "abc", "10/s", "0/s",
    "1/0s", "5/m", "^a", "(", "a{99999}", "(?i)x", "Y-m-d", "iso8601", "\\", "%",
    "America/New_York", "UTC", "Mars/Base", "+05:00", "$.id", "$[", "$..a", "${A}", "${A:-x}",
    "${", "$${A}", "${A_FILE}", "10.0.0.0/8", "::/0", "999.1.1.1/33", "bearer", "basic",
    "header", "query", "signature", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "string",
    "number", "integer", "boolean", "true", "no", "call.disposition", "a.b.c", "@source",
    "@received_at", "X-Token", "Content-Type: x|Y: z",
];

/// A value for any key: mostly plausible scalars, sometimes numbers, lists or maps.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        10 => prop::sample::select(PLAUSIBLE).prop_map(Value::from),
        1 => prop_oneof![
            Just(Value::from(200)),
            Just(Value::from(-1)),
            Just(Value::from(u64::MAX)),
            Just(Value::from(1e300)),
            Just(Value::from(0.5)),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
        ],
        1 => json(2),
    ]
}

/// A map with some of `keys` (and now and then an unknown one), each holding `value`.
fn map_of(
    keys: &'static [&'static str],
    value: impl Strategy<Value = Value>,
) -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        12 => prop::sample::select(keys).prop_map(str::to_string),
        1 => prop::sample::select(&["tokn", "Name", "", "type "][..]).prop_map(str::to_string),
    ];
    prop::collection::vec((key, value), 0..keys.len().min(8) + 1)
        .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>()))
}

fn list_of(item: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    prop::collection::vec(item, 0..4).prop_map(Value::Array)
}

fn adaptor() -> impl Strategy<Value = Value> {
    let field = map_of(
        &[
            "from",
            "template",
            "to",
            "default",
            "date_format",
            "timezone",
            "input_timezone",
            "values",
            "type",
            "omit_empty",
        ],
        value(),
    );
    (
        map_of(&["name", "description", "omit_empty"], value()),
        list_of(field),
        json(2),
    )
        .prop_map(|(mut top, fields, extra)| {
            top["fields"] = fields;
            if extra.is_object() {
                top["extra_fields"] = extra;
            }
            top
        })
}

fn endpoint() -> impl Strategy<Value = Value> {
    #[rustfmt::skip]
    const KEYS: &[&str] = &[
        "name", "description", "direction", "active", "url", "method", "adaptor", "format",
        "xml_root", "delimiter", "body_template", "content_type", "headers", "timeout",
        "concurrency", "rate_limit", "path", "methods", "event_type", "event_id", "allow_from",
        "respond", "success_codes",
    ];
    let auth = map_of(
        &[
            "type", "token", "username", "password", "name", "value", "params", "secret",
        ],
        value(),
    );
    let response = map_of(
        &["format", "success_key", "success_value", "capture"],
        value(),
    );
    let retry = map_of(&["schedule", "retry_on"], list_of(value()));
    (
        map_of(KEYS, value()),
        proptest::option::of(auth),
        proptest::option::of(response),
        proptest::option::of(retry),
    )
        .prop_map(|(mut top, auth, response, retry)| {
            for (key, part) in [("auth", auth), ("response", response), ("retry", retry)] {
                if let Some(part) = part {
                    top[key] = part;
                }
            }
            top
        })
}

fn workflow() -> impl Strategy<Value = Value> {
    let trigger = map_of(
        &[
            "event",
            "field",
            "active",
            "ignore_case",
            "equals",
            "not_equals",
            "in",
            "not_in",
            "gt",
            "gte",
            "lt",
            "lte",
            "between",
            "contains",
            "not_contains",
            "starts_with",
            "ends_with",
            "matches",
            "is_blank",
            "is_numeric",
            "exists",
            "within",
        ],
        value(),
    );
    let action = map_of(&["endpoint", "adaptor", "delay"], value());
    (
        map_of(&["name", "description", "active"], value()),
        list_of(trigger),
        list_of(action),
    )
        .prop_map(|(mut top, when, actions)| {
            top["when"] = when;
            top["actions"] = actions;
            top
        })
}

/// A configuration of one to three files of each kind, written as YAML, some of them then
/// mutated.
fn built() -> impl Strategy<Value = Files> {
    let file = |kind: &'static str, spec: BoxedStrategy<Value>| {
        (
            prop::sample::select(NAMES),
            spec,
            prop::collection::vec(mutation(), 0..2),
        )
            .prop_map(move |(name, spec, mutations)| {
                let mut bytes = serde_yaml::to_string(&spec).unwrap().into_bytes();
                for m in &mutations {
                    apply(&mut bytes, m);
                }
                (format!("{kind}/{name}.yaml"), bytes)
            })
    };
    (
        prop::collection::vec(file("adaptors", adaptor().boxed()), 0..3),
        prop::collection::vec(file("endpoints", endpoint().boxed()), 1..4),
        prop::collection::vec(file("workflows", workflow().boxed()), 0..3),
    )
        .prop_map(|(a, e, w)| {
            let mut files: Files = a.into_iter().chain(e).chain(w).collect();
            files.sort_by(|x, y| x.0.cmp(&y.0));
            files.dedup_by(|x, y| x.0 == y.0);
            files
        })
}

/// Every key the three kinds of file know, at any level.
#[rustfmt::skip]
const KEYS: &[&str] = &[
    "name", "description", "fields", "extra_fields", "omit_empty", "from", "template", "to",
    "default", "date_format", "timezone", "input_timezone", "values", "type", "direction",
    "active", "url", "method", "adaptor", "format", "xml_root", "delimiter", "body_template",
    "content_type", "headers", "auth", "signing", "success_codes", "response", "timeout",
    "retry", "concurrency", "rate_limit", "path", "methods", "event_type", "event_id",
    "allow_from", "respond", "token", "username", "password", "value", "params", "secret",
    "success_key", "success_value", "capture", "schedule", "retry_on", "when", "actions",
    "event", "field", "ignore_case", "equals", "not_equals", "in", "not_in", "gt", "gte", "lt",
    "lte", "between", "contains", "not_contains", "starts_with", "ends_with", "matches",
    "is_blank", "is_numeric", "exists", "within", "endpoint", "delay",
];

/// Sets `key` to `value` in one of the mappings of a YAML document (the `at`-th, in
/// document order), or removes it when `value` is None.
fn set_key(doc: &mut serde_yaml::Value, at: prop::sample::Index, key: &str, value: Option<Value>) {
    /// Where each mapping is: the keys and indexes that lead to it.
    fn mappings(
        node: &serde_yaml::Value,
        path: &mut Vec<serde_yaml::Value>,
        out: &mut Vec<Vec<serde_yaml::Value>>,
    ) {
        match node {
            serde_yaml::Value::Mapping(map) => {
                out.push(path.clone());
                for (k, child) in map {
                    path.push(k.clone());
                    mappings(child, path, out);
                    path.pop();
                }
            }
            serde_yaml::Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(serde_yaml::Value::from(i));
                    mappings(item, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    mappings(doc, &mut Vec::new(), &mut found);
    if found.is_empty() {
        return;
    }
    let mut node = doc;
    for step in at.get(&found) {
        node = match (node, step) {
            (serde_yaml::Value::Sequence(items), serde_yaml::Value::Number(i)) => {
                &mut items[i.as_u64().unwrap() as usize]
            }
            (serde_yaml::Value::Mapping(map), key) => map.get_mut(key).unwrap(),
            _ => unreachable!("the path was taken from this document"),
        };
    }
    let map = node.as_mapping_mut().expect("the path leads to a mapping");
    match value {
        Some(value) => {
            map.insert(key.into(), serde_yaml::to_value(value).unwrap());
        }
        None => {
            map.remove(key);
        }
    }
}

fn built_env() -> HashMap<String, String> {
    HashMap::from([("A".to_string(), "from-env".to_string())])
}

proptest! {
    #![proptest_config(cases(150))]

    /// An example with a few bytes changed, cut or spliced loads, or fails with errors
    /// that each name one of its files.
    #[test]
    fn mutated_examples_load_or_name_the_file(
        example in any::<prop::sample::Index>(),
        changes in prop::collection::vec((any::<prop::sample::Index>(), mutation()), 1..4),
    ) {
        let example = example.get(examples());
        let mut files = example.files.clone();
        for (file, change) in &changes {
            apply(&mut file.get_mut(&mut files).1, change);
        }
        load_and_check(&files, example.env.clone())?;
    }

    /// An example with a few keys, anywhere, set to plausible or wrong values (or removed)
    /// loads, or fails with errors that each name one of its files.
    #[test]
    fn examples_with_keys_changed_load_or_name_the_file(
        example in any::<prop::sample::Index>(),
        changes in prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
                prop::sample::select(KEYS),
                proptest::option::weighted(0.9, value()),
            ),
            1..4,
        ),
    ) {
        let example = example.get(examples());
        let mut files = example.files.clone();
        for (file, at, key, value) in changes {
            let file = file.get_mut(&mut files);
            let mut doc: serde_yaml::Value = serde_yaml::from_slice(&file.1).unwrap();
            set_key(&mut doc, at, key, value);
            file.1 = serde_yaml::to_string(&doc).unwrap().into_bytes();
        }
        load_and_check(&files, example.env.clone())?;
    }

    /// A configuration built from the real keys with plausible and wrong values loads, or
    /// fails with errors that each name one of its files.
    #[test]
    fn built_configurations_load_or_name_the_file(files in built()) {
        load_and_check(&files, built_env())?;
    }
}

/// The examples load unchanged: the mutation property starts from valid configurations.
#[test]
fn every_example_loads_unchanged() {
    for example in examples() {
        let loaded = load_and_check(&example.files, example.env.clone()).unwrap();
        assert!(
            loaded,
            "{:?} does not load",
            example.files.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
    }
}
