//! Test files (`*.test.yaml`): what the user wrote, read with every error located
//! (`file:line:col`), as configuration files are; then each test's event is built and its
//! expectations' names are checked against the loaded engine.
//!
//! Reads files and nothing else: it runs nothing and compares nothing (`compare.rs` does).

use std::path::Path;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use crate::config::locate::{Limits, Locator, Refused, Spot};
use crate::config::{self, ConfigError};
use crate::engine::event::{Event, check_depth, event_from_value, parse_events};
use crate::engine::{Engine, StepValues};

/// A test file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with a `tests:` list")]
struct FileSpec {
    tests: Vec<TestSpec>,
}

/// One test as written.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a test: a mapping with `name`, `event` or `event_file`, and `expect`"
)]
struct TestSpec {
    name: String,
    #[serde(default)]
    event: Option<Value>,
    #[serde(default)]
    event_file: Option<String>,
    #[serde(default)]
    now: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "given")]
    steps: Option<serde_yaml::Value>,
    /// Firings a workflow's `limit` has counted for this event's value, as if served.
    #[serde(default)]
    fired: IndexMap<String, u32>,
    expect: Expect,
}

/// What a test expects of its event's dry run; every part is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Exactly these workflows match (in any order).
    #[serde(default)]
    pub matched: Option<Vec<String>>,
    /// The requests that would be sent, in order, each a subset of the real one.
    #[serde(default)]
    pub requests: Option<Vec<RequestExpect>>,
    /// No request goes to these endpoints.
    #[serde(default)]
    pub no_requests_to: Vec<String>,
}

/// One expected request: every key given must match; the others are not looked at.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestExpect {
    /// The endpoint it goes to.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The workflow that sends it.
    #[serde(default)]
    pub workflow: Option<String>,
    /// The HTTP method (any case).
    #[serde(default)]
    pub method: Option<String>,
    /// The whole URL, query included.
    #[serde(default)]
    pub url: Option<String>,
    /// Headers that must be present with these values (names in any case); secrets read
    /// `***`, as `render` shows them.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// A JSON body: every key and item given must match (a subset); `null`: no body.
    #[serde(default, deserialize_with = "given")]
    pub body: Option<Value>,
    /// Any body: the exact text.
    #[serde(default)]
    pub body_text: Option<String>,
    /// The action's sending window as `render` explains it at the test's `now`, exactly:
    /// `mon–fri 09:00–20:00 America/New_York; due 2026-03-09T13:00:00Z (opens Monday 09:00 EDT)`.
    #[serde(default)]
    pub window: Option<String>,
}

/// One test, ready to run.
#[derive(Debug)]
pub struct Case {
    /// The file as shown in reports.
    pub file: String,
    /// The line the test starts at.
    pub line: usize,
    /// Its name.
    pub name: String,
    /// The event it runs.
    pub event: Event,
    /// The time it is evaluated at.
    pub now: DateTime<Utc>,
    /// Values of earlier steps, for the steps that run after them.
    pub steps: StepValues,
    /// Firings each named workflow's `limit` is taken to have counted (`fired:`).
    pub fired: IndexMap<String, u32>,
    /// What it expects.
    pub expect: Expect,
}

/// Reads the test file at `path`, shown as `file`: its tests, or every error found.
/// Events without `now` are evaluated at `default_now`; names are checked against `engine`
/// when the configuration loaded.
pub fn read(
    path: &Path,
    file: &str,
    engine: Option<&Engine>,
    default_now: DateTime<Utc>,
    errors: &mut Vec<ConfigError>,
) -> Vec<Case> {
    let Some((spec, locator)) = parse(path, file, errors) else {
        return Vec::new();
    };
    let place = Place {
        dir: path.parent().unwrap_or(Path::new(".")),
        file,
        locator: &locator,
    };
    spec.tests
        .into_iter()
        .enumerate()
        .filter_map(|(i, test)| case(&place, i, test, engine, default_now, errors))
        .collect()
}

/// Where the tests of one file are: for event files and for errors.
struct Place<'a> {
    /// The folder of the test file (event files are relative to it).
    dir: &'a Path,
    /// The file as shown in reports.
    file: &'a str,
    locator: &'a Locator,
}

/// The file's YAML as its spec, with the positions of its values; `None` once an error
/// is recorded.
fn parse(path: &Path, file: &str, errors: &mut Vec<ConfigError>) -> Option<(FileSpec, Locator)> {
    let mut fail = |spot: Option<Spot>, message: String| {
        errors.push(ConfigError {
            file: file.to_string(),
            spot,
            message,
        })
    };
    let text = match config::read_limited(path, config::MAX_FILE_SIZE) {
        Ok(Some(text)) => text,
        Ok(None) => {
            let mib = config::MAX_FILE_SIZE >> 20;
            fail(None, format!("the file is larger than {mib} MiB"));
            return None;
        }
        Err(e) => {
            fail(None, format!("cannot read the file: {e}"));
            return None;
        }
    };
    let limits = Limits {
        depth: config::MAX_DEPTH,
        size: config::MAX_EXPANDED_SIZE,
    };
    let locator = match Locator::new(&text, limits) {
        Ok(locator) => locator,
        Err(Refused::TooDeep(spot)) => {
            let message = format!(
                "collections nest more than {} levels deep",
                config::MAX_DEPTH
            );
            fail(Some(spot), message);
            return None;
        }
        Err(Refused::TooLarge(spot)) => {
            fail(
                Some(spot),
                "aliases (*name) expand the file too much".into(),
            );
            return None;
        }
    };
    let mut value: serde_yaml::Value = match serde_yaml::from_str(&text) {
        Ok(value) => value,
        Err(e) => {
            let spot = e.location().map(|l| Spot {
                line: l.line(),
                col: l.column(),
            });
            fail(spot, config::yaml_message(&e));
            return None;
        }
    };
    if value.is_null() {
        fail(
            None,
            "the file is empty: write `tests:` and a list of tests".into(),
        );
        return None;
    }
    if let Err(e) = value.apply_merge() {
        fail(None, format!("invalid merge key (<<): {e}"));
        return None;
    }
    match serde_path_to_error::deserialize(&value) {
        Ok(spec) => Some((spec, locator)),
        Err(e) => {
            let path = config::path_text(e.path());
            let message = e.inner().to_string();
            let shown = if path.is_empty() {
                message
            } else {
                format!("{path}: {message}")
            };
            // An unknown key is pointed at itself, any other error at the value.
            let spot = if shown.contains("unknown field") {
                locator.key(&path).or_else(|| locator.value(&path))
            } else {
                locator.value(&path)
            };
            fail(spot, shown);
            None
        }
    }
}

/// One test, ready to run; `None` once its errors are recorded.
fn case(
    place: &Place,
    i: usize,
    test: TestSpec,
    engine: Option<&Engine>,
    default_now: DateTime<Utc>,
    errors: &mut Vec<ConfigError>,
) -> Option<Case> {
    let (file, locator, dir) = (place.file, place.locator, place.dir);
    let at = |key: &str| {
        let path = if key.is_empty() {
            format!("tests[{i}]")
        } else {
            format!("tests[{i}].{key}")
        };
        locator.key(&path).or_else(|| locator.value(&path))
    };
    let value_at = |key: &str| locator.value(&format!("tests[{i}].{key}"));
    let before = errors.len();
    let mut fail = |spot: Option<Spot>, message: String| {
        errors.push(ConfigError {
            file: file.to_string(),
            spot,
            message,
        })
    };
    let steps = match test.steps.as_ref().map(step_values).transpose() {
        Ok(steps) => steps.unwrap_or_default(),
        Err(message) => {
            fail(at("steps"), format!("steps: {message}"));
            StepValues::new()
        }
    };
    if let Some(engine) = engine {
        let known: Vec<&str> = engine
            .workflows()
            .iter()
            .flat_map(|w| w.actions.iter().map(|a| a.step.as_str()))
            .collect();
        for step in steps.keys().filter(|s| !known.contains(&s.as_str())) {
            let message = crate::config::suggest::unknown("step", step, known.iter().copied());
            fail(
                locator.key(&format!("tests[{i}].steps.{step}")),
                format!("steps: {message}"),
            );
        }
        // A value no action of that name captures would pass a test while serving never
        // has it (unknown steps are reported above).
        for (step, values) in &steps {
            let Some(captured) = engine.step_captures(step) else {
                continue;
            };
            for name in values.keys().filter(|n| !captured.contains(&n.as_str())) {
                let message = crate::config::suggest::unknown(
                    "captured value",
                    name,
                    captured.iter().copied(),
                );
                fail(
                    locator.key(&format!("tests[{i}].steps.{step}.{name}")),
                    format!("steps.{step}: {message}"),
                );
            }
        }
    }
    let now = test.now.unwrap_or(default_now);
    let event = match (test.event, test.event_file) {
        (Some(value), None) => event_from_value(value, None, now)
            .and_then(|e| check_depth(&e.data).map(|()| e))
            .map_err(|e| (at("event"), format!("event: {e}"))),
        (None, Some(name)) => event_file(&dir.join(&name), now)
            .map_err(|message| (at("event_file"), format!("event_file: {message}"))),
        (Some(_), Some(_)) => Err((
            at("event_file"),
            "give event or event_file, not both".into(),
        )),
        (None, None) => Err((
            at(""),
            "a test needs an event (event: or event_file:)".into(),
        )),
    };
    if let Some(engine) = engine {
        check_names(engine, &test.expect, &value_at, &mut fail);
        for name in test.fired.keys() {
            let path = format!("fired.{name}");
            match engine.workflows().iter().find(|w| &w.name == name) {
                None => {
                    let known: Vec<&str> =
                        engine.workflows().iter().map(|w| w.name.as_str()).collect();
                    fail(at(&path), unknown("workflow", name, &known));
                }
                Some(w) if w.limit.is_none() => fail(
                    at(&path),
                    format!("fired: workflow {name} has no limit to count against"),
                ),
                Some(_) => {}
            }
        }
    }
    for (n, request) in test.expect.requests.iter().flatten().enumerate() {
        if request.body.is_some() && request.body_text.is_some() {
            let message = "give body (a JSON subset) or body_text (the exact text), not both";
            fail(
                at(&format!("expect.requests[{n}].body_text")),
                message.into(),
            );
        }
    }
    let event = match event {
        Ok(event) => event,
        Err((spot, message)) => {
            fail(spot, message);
            return None;
        }
    };
    if errors.len() > before {
        return None;
    }
    Some(Case {
        file: file.to_string(),
        line: at("").map_or(1, |s| s.line),
        name: test.name,
        event,
        now,
        steps,
        fired: test.fired,
        expect: test.expect,
    })
}

/// `steps:` as a dry run takes it: each step's captured names and values.
fn step_values(given: &serde_yaml::Value) -> Result<StepValues, String> {
    let shape = "give each step's captured values, e.g. {find: {contact_id: \"901\"}}";
    let Ok(Value::Object(steps)) = serde_json::to_value(given) else {
        return Err(format!("expected a mapping: {shape}"));
    };
    steps
        .into_iter()
        .map(|(step, values)| match values {
            Value::Object(values) => Ok((step, values)),
            _ => Err(format!("{step} is not a mapping: {shape}")),
        })
        .collect()
}

/// The one event of an event file (any form `render --event` reads).
fn event_file(path: &Path, now: DateTime<Utc>) -> Result<Event, String> {
    let text = match config::read_limited(path, config::MAX_FILE_SIZE) {
        Ok(Some(text)) => text,
        Ok(None) => return Err(format!("{} is too large", path.display())),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut events =
        parse_events(&text, None, now).map_err(|e| format!("{}: {e}", path.display()))?;
    if events.len() != 1 {
        return Err(format!(
            "{} holds {} events; a test runs one",
            path.display(),
            events.len()
        ));
    }
    let event = events.remove(0);
    check_depth(&event.data).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(event)
}

/// Every workflow and endpoint an expectation names must exist.
fn check_names(
    engine: &Engine,
    expect: &Expect,
    at: &dyn Fn(&str) -> Option<Spot>,
    fail: &mut dyn FnMut(Option<Spot>, String),
) {
    let workflows: Vec<&str> = engine.workflows().iter().map(|w| w.name.as_str()).collect();
    let endpoints: Vec<&str> = engine.endpoints().iter().map(|e| e.name.as_str()).collect();
    let mut check = |kind: &str, known: &[&str], name: &str, path: String| {
        if !known.contains(&name) {
            fail(at(&path), unknown(kind, name, known));
        }
    };
    for (i, name) in expect.matched.iter().flatten().enumerate() {
        check("workflow", &workflows, name, format!("expect.matched[{i}]"));
    }
    for (i, request) in expect.requests.iter().flatten().enumerate() {
        if let Some(name) = &request.endpoint {
            let path = format!("expect.requests[{i}].endpoint");
            check("endpoint", &endpoints, name, path);
        }
        if let Some(name) = &request.workflow {
            let path = format!("expect.requests[{i}].workflow");
            check("workflow", &workflows, name, path);
        }
    }
    for (i, name) in expect.no_requests_to.iter().enumerate() {
        check(
            "endpoint",
            &endpoints,
            name,
            format!("expect.no_requests_to[{i}]"),
        );
    }
}

/// `unknown endpoint "hubspot" (did you mean "hubspot-contacts"?)`, or the known names
/// when none is close.
fn unknown(kind: &str, name: &str, known: &[&str]) -> String {
    let close = known
        .iter()
        .map(|k| (distance(name, k), *k))
        .filter(|(d, k)| *d <= 1 + k.len() / 4 || k.contains(name) || name.contains(k))
        .min();
    if let Some((_, suggestion)) = close {
        return format!("unknown {kind} {name:?} (did you mean {suggestion:?}?)");
    }
    let mut known = known.to_vec();
    known.sort_unstable();
    let list = if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    };
    format!("unknown {kind} {name:?} (known: {list})")
}

/// Levenshtein distance (names are short).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// A key that is written is `Some`, even as `null` (which serde would read as absent):
/// `body: null` expects no body, and `steps: null` is not silently ignored.
fn given<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_name_suggests_the_closest_known_one() {
        let known = ["hubspot-contacts", "slack"];
        assert_eq!(
            unknown("endpoint", "hubspot-contact", &known),
            r#"unknown endpoint "hubspot-contact" (did you mean "hubspot-contacts"?)"#
        );
        assert_eq!(
            unknown("endpoint", "crm", &known),
            r#"unknown endpoint "crm" (known: hubspot-contacts, slack)"#
        );
    }
}
