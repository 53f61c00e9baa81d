//! Adaptors: mapping, lists and nesting, defaults, omit_empty, lookups, types,
//! templates, extra fields, key order, per-field dates in zones, and warnings.

mod common;

use common::{ConfigDir, event, now};
use serde_json::{Value, json};
use switchboard::engine::Plan;

/// The JSON body and warnings an adaptor produces for `data`.
fn build(adaptor: &str, data: Value) -> (String, Vec<String>) {
    let dir = ConfigDir::new(&[
        ("adaptors/a.yaml", adaptor),
        (
            "endpoints/out.yaml",
            "url: https://out.example.com/\nadaptor: a\n",
        ),
        (
            "workflows/w.yaml",
            "when:\n  - event: e\nactions:\n  - endpoint: out\n",
        ),
    ]);
    let planned = dir.engine().process(&event("e", data), now());
    let [one] = planned.as_slice() else {
        panic!("one delivery expected")
    };
    match &one.plan {
        Plan::Send(request) => (request.body.clone().expect("a body"), one.warnings.clone()),
        other => panic!("{other:?}"),
    }
}

fn body(adaptor: &str, data: Value) -> String {
    build(adaptor, data).0
}

#[test]
fn only_mapped_fields_are_sent_in_the_order_written() {
    let adaptor = "fields:\n  - from: z\n    to: last\n  - from: a\n    to: first\n";
    assert_eq!(
        body(adaptor, json!({"a": 1, "z": 2, "unmapped": 3})),
        r#"{"last":2,"first":1}"#
    );
}

#[test]
fn lists_nesting_and_coalescing() {
    let adaptor = "\
fields:
  - from: phone
    to: [phone, properties.mobile, properties.contact.phone]
  - from: [missing, empty, lead.lead_phone]
    to: alt
  - from: name
    to: properties.name
";
    assert_eq!(
        body(
            adaptor,
            json!({"phone": "+1555", "empty": "", "lead": {"lead_phone": "+46"}, "name": "Ann"})
        ),
        r#"{"phone":"+1555","properties":{"mobile":"+1555","contact":{"phone":"+1555"},"name":"Ann"},"alt":"+46"}"#
    );
}

#[test]
fn defaults_and_omit_empty() {
    let adaptor = "\
fields:
  - from: first_name
    to: first
    default: Unknown
  - from: last_name
    to: last
  - from: age
    to: age
    type: integer
    default: 0
";
    assert_eq!(
        body(adaptor, json!({"first_name": "", "last_name": null})),
        r#"{"first":"Unknown","age":0}"#
    );
    let keep = format!("{adaptor}omit_empty: false\n");
    assert_eq!(
        body(&keep, json!({"first_name": null, "age": "40"})),
        r#"{"first":"Unknown","last":"","age":40}"#
    );
    let typed = "omit_empty: false\nfields:\n  - from: n\n    to: n\n    type: number\n  - from: s\n    to: s\n    type: string\n  - from: b\n    to: b\n    type: boolean\n  - from: x\n    to: x\n    omit_empty: true\n";
    assert_eq!(body(typed, json!({})), r#"{"n":null,"s":"","b":null}"#);
}

#[test]
fn value_lookups_pass_unmatched_values_through() {
    let adaptor = "fields:\n  - from: status\n    to: stage\n    values: { SALE: closedwon, NI: closedlost, 1: one }\n";
    assert_eq!(
        body(adaptor, json!({"status": "SALE"})),
        r#"{"stage":"closedwon"}"#
    );
    assert_eq!(
        body(adaptor, json!({"status": "CALLBK"})),
        r#"{"stage":"CALLBK"}"#
    );
    assert_eq!(body(adaptor, json!({"status": 1})), r#"{"stage":"one"}"#);
}

#[test]
fn type_coercion_and_its_warnings() {
    let adaptor = "\
fields:
  - {from: a, to: a, type: number}
  - {from: b, to: b, type: integer}
  - {from: c, to: c, type: boolean}
  - {from: d, to: d, type: string}
  - {from: e, to: e, type: json}
  - {from: f, to: f, type: number, default: -1}
";
    let (body, warnings) = build(
        adaptor,
        json!({"a": "2.50", "b": "45", "c": "yes", "d": 1042, "e": "{\"k\":[1,2]}", "f": "n/a"}),
    );
    assert_eq!(
        body,
        r#"{"a":2.5,"b":45,"c":true,"d":"1042","e":{"k":[1,2]},"f":-1}"#
    );
    assert_eq!(
        warnings,
        vec!["field f: \"n/a\" is not a number; treated as empty"]
    );
}

#[test]
fn templates_and_extra_fields() {
    let adaptor = "\
fields:
  - to: full_name
    template: \"{{ first_name }} {{ last_name }}\"
  - to: summary
    template: \"{{ event.type }} #{{ event.id }}: {{ data.status|lower }}\"
extra_fields:
  source: switchboard
  version: 2
  meta.received: \"{{ event.received_at }}\"
";
    assert_eq!(
        body(
            adaptor,
            json!({"first_name": "Ann", "last_name": "Lee", "status": "SALE"})
        ),
        r#"{"full_name":"Ann Lee","summary":"e #ev-1: sale","source":"switchboard","version":2,"meta":{"received":"2026-11-21T10:00:00.000Z"}}"#
    );
}

#[test]
fn dates_per_field_with_zones() {
    let adaptor = "\
fields:
  - {from: d, to: php, date_format: \"Y-m-d H:i:s\", timezone: America/New_York}
  - {from: d, to: us, date_format: \"m/d/y g:i a\", timezone: America/Los_Angeles}
  - {from: d, to: long, date_format: \"D M j G:i:s T Y\", timezone: Europe/Stockholm}
  - {from: d, to: strf, date_format: \"%Y-%m-%dT%H:%M:%S%z\", timezone: Asia/Kolkata}
  - {from: d, to: iso, date_format: iso8601}
  - {from: d, to: unix, date_format: timestamp}
  - {from: d, to: ms, date_format: unix_ms}
  - {from: local, to: local, date_format: c, input_timezone: America/Chicago}
  - {from: dob, to: age, date_format: age}
  - {from: bad, to: bad, date_format: Y-m-d, default: unknown}
";
    let (body, warnings) = build(
        adaptor,
        json!({"d": "2024-03-15T14:30:00Z", "local": "03/15/2024 09:30:00", "dob": "1990-11-22", "bad": "15th of March"}),
    );
    assert_eq!(
        body,
        concat!(
            r#"{"php":"2024-03-15 10:30:00","us":"03/15/24 7:30 am","long":"Fri Mar 15 15:30:00 CET 2024","#,
            r#""strf":"2024-03-15T20:00:00+0530","iso":"2024-03-15T14:30:00+00:00","unix":"1710513000","#,
            r#""ms":"1710513000000","local":"2024-03-15T14:30:00+00:00","age":"35","bad":"unknown"}"#
        )
    );
    assert_eq!(
        warnings,
        vec!["field bad: \"15th of March\" is not a date; treated as empty"]
    );
}

#[test]
fn date_inputs_of_every_accepted_shape() {
    let adaptor = "fields:\n  - {from: d, to: d, date_format: \"Y-m-d H:i:s\"}\n";
    for (input, expected) in [
        (json!("2024-03-15T14:30:00Z"), "2024-03-15 14:30:00"),
        (
            json!("2024-03-15T14:30:00.123+02:00"),
            "2024-03-15 12:30:00",
        ),
        (json!("2024-03-15T14:30:00"), "2024-03-15 14:30:00"),
        (json!("2024-03-15 14:30:00"), "2024-03-15 14:30:00"),
        (json!("2024-03-15"), "2024-03-15 00:00:00"),
        (json!("03/15/2024"), "2024-03-15 00:00:00"),
        (json!("03/15/2024 14:30:00"), "2024-03-15 14:30:00"),
        (json!(1710513000), "2024-03-15 14:30:00"),
        (json!("1710513000000"), "2024-03-15 14:30:00"),
    ] {
        assert_eq!(
            body(adaptor, json!({"d": input})),
            format!(r#"{{"d":"{expected}"}}"#),
            "{input}"
        );
    }
}
