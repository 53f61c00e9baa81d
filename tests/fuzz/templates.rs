//! Templates: random sources compiled and rendered against random events, and the fast
//! path for plain substitutions checked against minijinja itself.

use proptest::prelude::*;
use serde_json::{Value, json};
use switchboard::Event;
use switchboard::engine::event::event_from_value;
use switchboard::engine::template::{Escape, Templates, context};

use super::{cases, object, scalar, within};
use crate::common::now;

/// Names a template may read: data keys the events below have, metadata, globals and
/// keywords that look like names.
const NAMES: &[&str] = &[
    "first",
    "phone",
    "n",
    "list",
    "obj",
    "obj.x",
    "obj.y.z",
    "data",
    "data.first",
    "event",
    "event.id",
    "event.type",
    "event.received_at",
    "missing",
    "missing.deeper",
    "loop",
    "self",
    "range",
    "dict",
    "namespace",
    "debug",
    "super",
    "caller",
    "varargs",
    "kwargs",
    "__switchboard_now_ms",
    "none",
    "true",
    "True",
];

/// The engine's own filters with typical and odd arguments, and a few of minijinja's.
const FILTERS: &[&str] = &[
    "|date('Y-m-d')",
    "|date('age')",
    "|date('m/d/Y g:i a', 'America/New_York')",
    "|date('U')",
    "|date('Y', 'Nowhere/Zone')",
    "|date('')",
    "|date('iso8601')",
    "|date(1)",
    "|digits",
    "|e164",
    "|e164('GB')",
    "|e164('')",
    "|e164(1)",
    "|urlencode",
    "|tojson",
    "|safe",
    "|upper",
    "|default('x')",
    "|length",
    "|join(',')",
    "|first",
    "|int",
    "|float",
    "|round",
    "|replace('a', 'b')",
    "|list",
    "|items",
    "|sort",
    "|reverse",
    "|trim",
    "|abs",
    "|batch(2)",
    "|indent(2)",
    "|escape",
    "|string",
    "|unique",
    "|min",
];

/// Literals. None lies between 1000 and minijinja's own cap on repeated strings, so that
/// `*` cannot make this test build gigabytes: fuel counts instructions, not bytes.
const LITERALS: &[&str] = &[
    "0",
    "1",
    "-1",
    "3",
    "1000",
    "2.5",
    "1e308",
    "99999999999999999999",
    "9223372036854775807",
    "'a'",
    "''",
    "\"<&>\"",
    "[1, 'a']",
    "{'k': 1}",
    "none",
    "true",
];

const OPERATORS: &[&str] = &[
    " + ",
    " - ",
    " ~ ",
    " * ",
    " / ",
    " // ",
    " % ",
    " ** ",
    " == ",
    " != ",
    " < ",
    " and ",
    " or ",
    " in ",
    " is defined",
    " is number",
    " if ",
    " else ",
];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(list).prop_map(str::to_string)
}

/// An expression, mostly well formed.
fn expression() -> impl Strategy<Value = String> {
    let atom = prop_oneof![3 => pick(NAMES), 2 => pick(LITERALS)];
    atom.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), pick(FILTERS)).prop_map(|(e, f)| format!("{e}{f}")),
            (inner.clone(), pick(OPERATORS), inner.clone())
                .prop_map(|(a, op, b)| format!("{a}{op}{b}")),
            inner.clone().prop_map(|e| format!("({e})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("{a}[{b}]")),
        ]
    })
}

/// A template: text, substitutions and blocks, well formed or nearly.
fn source() -> impl Strategy<Value = String> {
    let text = prop_oneof![
        pick(&[
            "a", " ", "\n", "{", "}", "%", "#", "-", "\"", "<&>", "é", "\r\n"
        ]),
        "[^{}%#]{0,6}",
    ];
    let piece = prop_oneof![
        2 => text,
        3 => expression().prop_map(|e| format!("{{{{ {e} }}}}")),
        1 => pick(&[
            "{{", "}}", "{%", "%}", "{#", "#}", "{{-", "-}}", "{% endif %}", "{% else %}",
            "{% endfor %}", "{% raw %}", "{% endraw %}", "{% break %}", "{% include 'x' %}",
            "{% extends 'x' %}", "{% import 'x' as y %}", "{% macro m(a) %}{{ a }}{% endmacro %}",
            "{{ m(1) }}", "{% set x = 1 %}", "{% filter upper %}a{% endfilter %}",
            "{{ debug() }}", "{{ range(100000) }}", "{{ lipsum() }}",
        ]),
    ];
    let flat = prop::collection::vec(piece, 0..10).prop_map(|p| p.concat());
    flat.prop_recursive(2, 16, 3, |inner| {
        prop_oneof![
            (expression(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| { format!("{{% if {c} %}}{a}{{% else %}}{b}{{% endif %}}") }),
            (expression(), inner.clone()).prop_map(|(list, body)| {
                format!("{{% for item in {list} %}}{{{{ loop.index }}}}{body}{{% endfor %}}")
            }),
            (inner.clone(), inner).prop_map(|(a, b)| format!("{a}{b}")),
        ]
    })
}

fn escape() -> impl Strategy<Value = Escape> {
    prop::sample::select(vec![Escape::None, Escape::Url, Escape::Xml, Escape::Json])
}

/// An event whose data has the keys [`NAMES`] read, holding any kind of value.
fn event() -> impl Strategy<Value = Event> {
    let value = || prop_oneof![3 => scalar(), 1 => super::json(3)];
    (value(), value(), value(), value(), value(), object(2)).prop_map(
        |(first, phone, n, list, x, extra)| {
            let mut data = json!({
                "first": first, "phone": phone, "n": n, "list": list,
                "obj": {"x": x, "y": {"z": 1}},
            });
            if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
                for (k, v) in extra {
                    data.entry(k).or_insert(v);
                }
            }
            event_from_value(json!({"type": "t", "id": "e-1", "data": data}), None, now())
                .expect("an object of little depth is valid event data")
        },
    )
}

proptest! {
    #![proptest_config(cases(300))]

    /// Any source compiles or is refused with a message; a compiled one renders, or fails
    /// with a message, within bounded time, against any event.
    #[test]
    fn any_template_compiles_and_renders_or_says_why(
        source in prop_oneof![source(), any::<String>()],
        escape in escape(),
        event in event(),
    ) {
        let outcome = within("rendering", move || {
            let mut templates = Templates::new();
            let id = match templates.add(&source, escape) {
                Ok(id) => id,
                Err(e) => return Err(("compile", e)),
            };
            let context = context(&event, now());
            templates.render(id, &event, || &context).map_err(|e| ("render", e))
        });
        if let Err((stage, message)) = outcome {
            prop_assert!(!message.trim().is_empty(), "{} error without a message", stage);
        }
    }

    /// Templates of plain substitutions skip minijinja; whatever the data, the result must
    /// be what minijinja renders for the same source (a leading comment sends the same
    /// source down the full path).
    #[test]
    fn the_fast_path_renders_what_minijinja_renders(
        parts in prop::collection::vec(
            prop_oneof![
                pick(NAMES).prop_map(|n| format!("{{{{ {n} }}}}")),
                pick(NAMES).prop_map(|n| format!("{{{{{n}}}}}")),
                "[^{}%#]{0,5}",
            ],
            0..6,
        ),
        escape in escape(),
        event in event(),
    ) {
        let source = parts.concat();
        let mut templates = Templates::new();
        let fast = templates.add(&source, escape).expect("plain substitutions compile");
        let full = templates.add(&format!("{{# full #}}{source}"), escape).expect("compiles");
        let context = context(&event, now());
        let fast = templates.render(fast, &event, || &context);
        let full = templates.render(full, &event, || &context);
        prop_assert_eq!(fast, full, "{:?} with {}", source, event.data);
    }
}

/// The fast path against the full one for one source and one event's data.
fn both_paths(source: &str, data: Value) -> (Result<String, String>, Result<String, String>) {
    let event = event_from_value(json!({"type": "t", "data": data}), None, now()).unwrap();
    let mut templates = Templates::new();
    let fast = templates.add(source, Escape::None).unwrap();
    let full = templates
        .add(&format!("{{# full #}}{source}"), Escape::None)
        .unwrap();
    let context = context(&event, now());
    (
        templates.render(fast, &event, || &context),
        templates.render(full, &event, || &context),
    )
}

/// Found by `the_fast_path_renders_what_minijinja_renders`: a name the data lacks that
/// minijinja knows as a global rendered as nothing on the fast path and as the global
/// ("function") in minijinja; a payload key named like the render time's slot rendered
/// as the data on the fast path and as the time in minijinja.
#[test]
fn names_of_globals_render_as_minijinja_renders_them() {
    for source in [
        "{{ range }}",
        "{{ dict }}",
        "{{ namespace }}",
        "{{ debug }}",
    ] {
        let (fast, full) = both_paths(source, json!({}));
        assert_eq!(fast, full, "{source}");
        let (fast, full) = both_paths(
            source,
            json!({"range": "r", "dict": "d", "namespace": "n", "debug": "g"}),
        );
        assert_eq!(fast, full, "{source} with the name in the data");
    }
    let (fast, full) = both_paths(
        "{{ __switchboard_now_ms }}",
        json!({"__switchboard_now_ms": "x"}),
    );
    assert_eq!(fast, full);
}

/// Found by `the_fast_path_renders_what_minijinja_renders`: minijinja drops a template's
/// trailing newline and the fast path kept it, so `body_template: |` with only
/// substitutions ended in a newline and the same body with an `{% if %}` did not.
#[test]
fn a_trailing_newline_is_dropped_on_both_paths() {
    for source in ["\n", "{{ a }}\n", "{{ a }}\r\n", "{{ a }}\n\n", "x\r"] {
        let (fast, full) = both_paths(source, json!({"a": "A"}));
        assert_eq!(fast, full, "{source:?}");
    }
}
