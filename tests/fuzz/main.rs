//! Fuzz-style property tests that run with the rest of the suite, in bounded time:
//! generated and mutated input through configuration loading, event parsing, templates and
//! the inbound hook path of the real server. Each property says what must hold for *any*
//! input; every crash a property has found is kept beside it as a plain, named test with
//! the minimized input, so it stays fixed even if the generators change.
//!
//! Each property runs a small number of cases by default (the whole file takes seconds).
//! `SWITCHBOARD_FUZZ_CASES=N` runs N cases per property instead, for a longer search:
//! `SWITCHBOARD_FUZZ_CASES=20000 cargo test --release --test fuzz`.

#[path = "../common/mod.rs"]
mod common;

mod config;
mod events;
mod hooks;
mod templates;

use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value};

/// The runner's settings: `default` cases unless `SWITCHBOARD_FUZZ_CASES` says otherwise.
/// Failures are not persisted to files: a failure found here becomes a named test.
pub fn cases(default: u32) -> Config {
    let cases = std::env::var("SWITCHBOARD_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// How long one case may take before it counts as a hang. Far above what any case needs
/// (milliseconds), so that only a real hang, not a slow machine, trips it.
pub const HANG: Duration = Duration::from_secs(30);

/// Runs `f` on its own thread and fails if it has not finished within [`HANG`]: a hang
/// becomes a failing case that shows its input, instead of a test run that never ends.
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = done.send(f());
    });
    match result.recv_timeout(HANG) {
        Ok(value) => value,
        // The worker panicked: show its panic, not a hang.
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker sends before it ends"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not finish within {HANG:?}"),
    }
}

/// Object keys: plain names, names that mean something to the engine, and odd text.
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z_]{1,8}",
        1 => prop::sample::select(vec![
            "type", "id", "data", "event", "source", "received_at", "", " ", "$", "@source",
            "a.b", "[0]", "{{", "__proto__", "\u{0}", "\u{202e}rtl", "é", "👍", "loop", "range",
        ])
        .prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

/// Scalars: big and odd numbers, and strings with the characters that break escaping.
pub fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        prop::sample::select(vec![
            "",
            " ",
            "0",
            "-0",
            "1e400",
            "SALE",
            "2024-03-15 14:30:00",
            "(555) 123-4567",
            "+15551234567",
            "<&>\"'",
            "\u{0}\u{1f}",
            "\u{fffe}",
            "{{ x }}",
            "{% if %}",
            "${VAR}",
            "a\nb\r\nc",
            "\u{202e}",
            "👍🏽",
        ])
        .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

/// Any JSON value, up to `depth` levels of objects and arrays.
pub fn json(depth: u32) -> impl Strategy<Value = Value> {
    scalar().prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A JSON object, as event data is.
pub fn object(depth: u32) -> impl Strategy<Value = Value> {
    prop::collection::vec((key(), json(depth)), 0..8)
        .prop_map(|pairs| Value::Object(pairs.into_iter().collect()))
}

/// `value` wrapped in `levels` objects and arrays, alternately.
pub fn nested(levels: usize, value: Value) -> Value {
    (0..levels).fold(value, |inner, i| {
        if i % 2 == 0 {
            serde_json::json!({ "a": inner })
        } else {
            Value::Array(vec![inner])
        }
    })
}

/// How many levels of objects and arrays `value` nests (a scalar: 0): the depth the
/// engine's limit counts, computed the obvious, recursive way.
pub fn levels(value: &Value) -> usize {
    let deepest = |children: &mut dyn Iterator<Item = &Value>| children.map(levels).max();
    match value {
        Value::Object(map) => 1 + deepest(&mut map.values()).unwrap_or(0),
        Value::Array(items) => 1 + deepest(&mut items.iter()).unwrap_or(0),
        _ => 0,
    }
}
