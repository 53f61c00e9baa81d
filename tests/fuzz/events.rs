//! Event parsing: any bytes, any JSON, any nesting through `parse_events`,
//! `event_from_value` and `check_depth`.

use proptest::prelude::*;
use serde_json::{Value, json};
use switchboard::engine::event::{MAX_DEPTH, check_depth, event_from_value, parse_events};

use super::{cases, json, levels, nested, object};
use crate::common::now;

/// Text that is JSON-ish often enough to get past the first character: fragments of
/// envelopes, NDJSON lines and arrays, glued in any order, then cut anywhere.
fn jsonish() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\n",
        " ",
        "\"type\"",
        "\"data\"",
        "\"id\"",
        "\"source\"",
        "\"received_at\"",
        "\"a\"",
        "\"2024-01-02T03:04:05Z\"",
        "\"+262143-01-01T00:00:00Z\"",
        "1",
        "-0",
        "1e999",
        "18446744073709551616",
        "null",
        "true",
        "\"\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "{\"type\": \"t\", \"data\": {}}",
        "\u{feff}",
    ]);
    (
        prop::collection::vec(piece, 0..40),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(pieces, cut)| {
            let text = pieces.concat();
            let mut at = cut.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text[..at].to_string()
        })
}

proptest! {
    #![proptest_config(cases(300))]

    /// Whatever the bytes, reading them gives events or one error; every event read has
    /// a type, and object data no deeper than the limit.
    #[test]
    fn any_text_reads_as_valid_events_or_an_error(
        text in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            jsonish(),
            any::<String>(),
        ],
        kind in proptest::option::of(prop_oneof![Just("t".to_string()), any::<String>()]),
    ) {
        match parse_events(&text, kind.as_deref(), now()) {
            Ok(events) => {
                prop_assert!(!events.is_empty());
                for event in events {
                    prop_assert!(!event.kind.trim().is_empty());
                    prop_assert!(!event.id.as_str().trim().is_empty());
                    prop_assert!(event.data.is_object());
                    prop_assert!(levels(&event.data) <= MAX_DEPTH);
                }
            }
            Err(e) => prop_assert!(!e.0.is_empty()),
        }
    }

    /// The depth check refuses exactly the values nested deeper than the limit.
    #[test]
    fn the_depth_limit_is_exact(
        levels_wanted in 0usize..200,
        leaf in json(3),
    ) {
        let value = nested(levels_wanted, leaf);
        prop_assert_eq!(check_depth(&value).is_err(), levels(&value) > MAX_DEPTH);
    }

    /// Any JSON value checks as the obvious recursive count says.
    #[test]
    fn the_depth_check_agrees_with_a_recursive_count(value in json(8)) {
        let deeper = nested(60, value);
        prop_assert_eq!(check_depth(&deeper).is_err(), levels(&deeper) > MAX_DEPTH);
    }

    /// An envelope written as JSON reads back as the same event: alone, in an array, and
    /// as NDJSON; its data is refused only for being nested too deep.
    #[test]
    fn envelopes_read_back_as_written(
        items in prop::collection::vec(
            (
                "[a-z][a-z._]{0,12}",
                prop_oneof![
                    "[A-Za-z0-9:_-]{1,16}".prop_map(Value::from),
                    any::<u64>().prop_map(Value::from),
                ],
                object(4),
                0usize..70,
            ),
            1..4,
        ),
    ) {
        let envelopes: Vec<Value> = items
            .iter()
            .map(|(kind, id, data, depth)| {
                let data = match nested(*depth, data.clone()) {
                    Value::Array(inner) => json!({ "list": inner }),
                    object => object,
                };
                json!({ "type": kind, "id": id, "data": data })
            })
            .collect();
        let too_deep = envelopes.iter().any(|e| levels(&e["data"]) > MAX_DEPTH);
        let texts = [
            envelopes[0].to_string(),
            Value::Array(envelopes.clone()).to_string(),
            envelopes.iter().map(Value::to_string).collect::<Vec<_>>().join("\n"),
        ];
        for (i, text) in texts.iter().enumerate() {
            let wanted = if i == 0 { &envelopes[..1] } else { &envelopes[..] };
            let deep = if i == 0 { levels(&envelopes[0]["data"]) > MAX_DEPTH } else { too_deep };
            match parse_events(text, None, now()) {
                Ok(events) => {
                    prop_assert!(!deep, "data past the limit was taken: {}", text);
                    prop_assert_eq!(events.len(), wanted.len());
                    for (event, envelope) in events.iter().zip(wanted) {
                        prop_assert_eq!(&event.kind, envelope["type"].as_str().unwrap());
                        let id = match &envelope["id"] {
                            Value::String(s) => s.clone(),
                            n => n.to_string(),
                        };
                        prop_assert_eq!(event.id.as_str(), id);
                        prop_assert_eq!(&*event.data, &envelope["data"]);
                        prop_assert_eq!(event.received_at, now());
                    }
                }
                Err(e) => {
                    prop_assert!(deep, "{} refused: {}", text, e);
                    prop_assert!(e.0.contains("nested more than 64 levels"), "{}", e);
                }
            }
        }
    }

    /// A raw payload of a given type is its data, unchanged, when it is an object.
    #[test]
    fn raw_payloads_become_the_data(value in json(5)) {
        match event_from_value(value.clone(), Some("call.disposition"), now()) {
            Ok(event) => {
                prop_assert_eq!(&*event.data, &value);
                prop_assert_eq!(event.kind, "call.disposition");
            }
            Err(_) => prop_assert!(!value.is_object() || levels(&value) > MAX_DEPTH),
        }
    }
}

/// JSON text nested past serde_json's own limit of 128 levels is an error, not a stack
/// overflow, and JSON at the limit reads.
#[test]
fn json_text_nested_past_every_limit_is_an_error() {
    for levels_wanted in [MAX_DEPTH, MAX_DEPTH + 2, 126, 128, 130, 10_000] {
        let text = format!(
            "{{\"type\": \"t\", \"data\": {}1{}}}",
            "{\"a\": [".repeat(levels_wanted / 2),
            "]}".repeat(levels_wanted / 2)
        );
        let result = parse_events(&text, None, now());
        assert_eq!(
            result.is_ok(),
            levels_wanted <= MAX_DEPTH,
            "{levels_wanted} levels: {result:?}"
        );
    }
}

/// Found by `envelopes_read_back_as_written`: serde_json's default float parser is off by
/// one unit in the last place for some numbers, so a number in an event changed on the
/// way in (and again on each trip through the store).
#[test]
fn numbers_read_back_exactly() {
    for n in [9.11029588473612e210, -2.1792174879496733e-308] {
        let text = json!({"type": "t", "data": {"n": n}}).to_string();
        let events = parse_events(&text, None, now()).unwrap();
        assert_eq!(events[0].data["n"].as_f64(), Some(n), "{text}");
    }
}
