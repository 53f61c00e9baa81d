//! A test's expectations against a dry run: one line per difference, naming the path
//! (`requests[0].body.properties.phone: expected "+15551234567", got "5551234567"`).
//!
//! Pure: a dry run and expectations in, problems out.

use serde_json::Value;

use super::spec::{Expect, RequestExpect};
use crate::engine::value::kind;
use crate::engine::{DryRun, RequestReport};

/// Every difference between what `expect` says and what `run` shows; empty when it holds.
pub fn problems(expect: &Expect, run: &DryRun) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(wanted) = &expect.matched {
        let got: Vec<&str> = run
            .workflows
            .iter()
            .filter(|w| w.matched)
            .map(|w| w.name.as_str())
            .collect();
        let mut wanted_sorted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let mut got_sorted = got.clone();
        wanted_sorted.sort_unstable();
        got_sorted.sort_unstable();
        if wanted_sorted != got_sorted {
            out.push(format!(
                "matched: expected {}, got {}",
                list(&wanted_sorted),
                list(&got)
            ));
            // Why an expected workflow did not match is what the user needs next.
            for w in run.workflows.iter().filter(|w| !w.matched) {
                if wanted.contains(&w.name) {
                    let why = w.reasons.join("; ");
                    out.push(format!("matched: {} did not match: {why}", w.name));
                }
            }
        }
    }
    // Requests to an inactive endpoint are not sent: they are not among the requests.
    let sent: Vec<&RequestReport> = run
        .requests
        .iter()
        .filter(|r| r.skipped.is_none())
        .collect();
    if let Some(wanted) = &expect.requests {
        if wanted.len() != sent.len() {
            let shown: Vec<String> = sent
                .iter()
                .map(|r| format!("{} → {}", r.workflow, r.endpoint))
                .collect();
            out.push(format!(
                "requests: expected {} request{}, got {}{}",
                wanted.len(),
                if wanted.len() == 1 { "" } else { "s" },
                sent.len(),
                if shown.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", shown.join(", "))
                }
            ));
        }
        for (i, (want, got)) in wanted.iter().zip(&sent).enumerate() {
            request(&format!("requests[{i}]"), want, got, &mut out);
        }
    }
    // A request that cannot be built fails its test whatever the test expects.
    for (i, r) in sent.iter().enumerate() {
        if let Some(error) = &r.error {
            out.push(format!(
                "requests[{i}] ({} → {}): could not be built: {error}",
                r.workflow, r.endpoint
            ));
        }
    }
    for name in &expect.no_requests_to {
        let n = sent.iter().filter(|r| &r.endpoint == name).count();
        if n > 0 {
            out.push(format!(
                "no_requests_to: expected no request to {name}, got {n}"
            ));
        }
    }
    out
}

/// One request against its expectation.
fn request(at: &str, want: &RequestExpect, got: &RequestReport, out: &mut Vec<String>) {
    let mut text = |key: &str, wanted: &Option<String>, actual: &str, same: bool| {
        if let Some(wanted) = wanted
            && !same
        {
            out.push(format!("{at}.{key}: expected {wanted:?}, got {actual:?}"));
        }
    };
    text(
        "endpoint",
        &want.endpoint,
        &got.endpoint,
        want.endpoint.as_deref() == Some(&got.endpoint),
    );
    text(
        "workflow",
        &want.workflow,
        &got.workflow,
        want.workflow.as_deref() == Some(&got.workflow),
    );
    let window = got.window.as_deref().unwrap_or("none");
    text(
        "window",
        &want.window,
        window,
        want.window.as_deref() == Some(window),
    );
    if got.error.is_some() {
        return; // said once for every test, by `problems`
    }
    let same_method = want
        .method
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case(&got.method));
    text("method", &want.method, &got.method, same_method);
    text(
        "url",
        &want.url,
        &got.url,
        want.url.as_deref() == Some(&got.url),
    );
    for (name, wanted) in &want.headers {
        let actual = got
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v);
        match actual {
            Some(actual) if actual == wanted => {}
            Some(actual) => out.push(format!(
                "{at}.headers.{name}: expected {wanted:?}, got {actual:?}"
            )),
            None => out.push(format!(
                "{at}.headers.{name}: expected {wanted:?}, got no such header"
            )),
        }
    }
    if let Some(wanted) = &want.body_text {
        match &got.body {
            Some(actual) if actual == wanted => {}
            Some(actual) => out.push(format!(
                "{at}.body_text: expected {wanted:?}, got {actual:?}"
            )),
            None => out.push(format!("{at}.body_text: expected {wanted:?}, got no body")),
        }
    }
    if let Some(Value::Null) = &want.body {
        // `body: null`: no body is expected.
        if let Some(actual) = got.body.as_deref().filter(|b| !b.is_empty()) {
            out.push(format!("{at}.body: expected no body, got {actual:?}"));
        }
    } else if let Some(wanted) = &want.body {
        let at = format!("{at}.body");
        match got.body.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(actual)) => subset(&at, wanted, &actual, out),
            Some(Err(_)) => out.push(format!(
                "{at}: expected JSON, got {:?} (compare other bodies with body_text)",
                got.body.as_deref().unwrap_or_default()
            )),
            None => out.push(format!("{at}: expected {}, got no body", show(wanted))),
        }
    }
}

/// `actual` holds `wanted`: objects recursively (every expected key present and holding),
/// arrays item by item with equal length, scalars equal (a number is not a string).
pub fn subset(at: &str, wanted: &Value, actual: &Value, out: &mut Vec<String>) {
    match (wanted, actual) {
        (Value::Object(wanted), Value::Object(actual)) => {
            for (key, want) in wanted {
                let path = format!("{at}.{key}");
                match actual.get(key) {
                    Some(got) => subset(&path, want, got, out),
                    None => out.push(format!("{path}: expected {}, got no such key", show(want))),
                }
            }
        }
        (Value::Array(wanted), Value::Array(actual)) => {
            if wanted.len() != actual.len() {
                out.push(format!(
                    "{at}: expected {} item{}, got {}: {}",
                    wanted.len(),
                    if wanted.len() == 1 { "" } else { "s" },
                    actual.len(),
                    show(&Value::Array(actual.clone()))
                ));
                return;
            }
            for (i, (want, got)) in wanted.iter().zip(actual).enumerate() {
                subset(&format!("{at}[{i}]"), want, got, out);
            }
        }
        (Value::Number(w), Value::Number(a)) if same_number(w, a) => {}
        (w, a) if w == a => {}
        (w, a) if kind(w) != kind(a) => out.push(format!(
            "{at}: expected {} ({}), got {} ({})",
            show(w),
            kind(w),
            show(a),
            kind(a)
        )),
        (w, a) => out.push(format!("{at}: expected {}, got {}", show(w), show(a))),
    }
}

/// A value as JSON text, on one line.
fn show(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `[a, b]`, or `none`.
fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        format!("[{}]", names.join(", "))
    }
}

/// Two JSON numbers are the same: whole numbers exactly (ids past 2^53 differ in their last
/// digits, which floats would lose), otherwise as floats (`45` is `45.0`).
fn same_number(w: &serde_json::Number, a: &serde_json::Number) -> bool {
    let whole = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (whole(w), whole(a)) {
        (Some(w), Some(a)) => w == a,
        _ => w.as_f64() == a.as_f64(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn diff(wanted: Value, actual: Value) -> Vec<String> {
        let mut out = Vec::new();
        subset("body", &wanted, &actual, &mut out);
        out
    }

    #[test]
    fn objects_match_as_subsets_and_name_the_differing_path() {
        let actual = json!({"properties": {"phone": "5551234567", "email": "a@b.c"}, "n": 1});
        assert!(diff(json!({"properties": {"email": "a@b.c"}}), actual.clone()).is_empty());
        assert_eq!(
            diff(
                json!({"properties": {"phone": "+15551234567"}}),
                actual.clone()
            ),
            [r#"body.properties.phone: expected "+15551234567", got "5551234567""#]
        );
        assert_eq!(
            diff(json!({"missing": true}), actual),
            ["body.missing: expected true, got no such key"]
        );
    }

    #[test]
    fn a_number_is_not_a_string() {
        assert_eq!(
            diff(json!({"n": "45"}), json!({"n": 45})),
            [r#"body.n: expected "45" (a string), got 45 (a number)"#]
        );
        assert!(diff(json!({"n": 45}), json!({"n": 45.0})).is_empty());
    }

    #[test]
    fn arrays_match_item_by_item_with_equal_length() {
        assert!(diff(json!([{"a": 1}, 2]), json!([{"a": 1, "b": 0}, 2])).is_empty());
        assert_eq!(
            diff(json!([1]), json!([1, 2])),
            ["body: expected 1 item, got 2: [1,2]"]
        );
        assert_eq!(
            diff(json!([1, 3]), json!([1, 2])),
            ["body[1]: expected 3, got 2"]
        );
    }
}
