//! Mistakes that used to pass `validate` and fail silently later (a filter that does not
//! exist, `gt: thirty`, a Java date pattern, `EST`): each is a load error or a warning
//! with its file, line and column, and a message saying what to write instead.

mod common;

use common::{ConfigDir, cli};

/// A valid adaptor, endpoint and workflow, plus `path` with `text`.
fn config(path: &str, text: &str) -> ConfigDir {
    ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - from: phone_number\n    to: phone\n",
        ),
        (
            "endpoints/crm.yaml",
            "url: https://crm.example.com/contacts\nadaptor: contact\n",
        ),
        (
            "workflows/ok.yaml",
            "when:\n  - event: sale\nactions:\n  - endpoint: crm\n",
        ),
        (path, text),
    ])
}

fn assert_error(path: &str, text: &str, expected: &str) {
    assert_eq!(
        config(path, text).errors(),
        vec![expected.to_string()],
        "for {path}:\n{text}"
    );
}

/// The configuration loads, with exactly these warnings.
fn assert_warnings(path: &str, text: &str, expected: &[&str]) {
    let loaded = match config(path, text).load() {
        Ok(loaded) => loaded,
        Err(errors) => panic!("should load:\n{errors}"),
    };
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings, expected, "for {path}:\n{text}");
}

#[test]
fn unknown_template_filters_tests_and_functions_fail_at_load() {
    assert_error(
        "adaptors/a.yaml",
        "fields:\n  - template: \"{{ phone|e165 }}\"\n    to: phone\n",
        "adaptors/a.yaml:2:15: invalid template: unknown filter `e165` (did you mean `e164`?) (template line 1)",
    );
    assert_error(
        "endpoints/x.yaml",
        "url: https://x.example.com\nbody_template: |\n  {\n  {% if n is nubmer %}\"n\": {{ n }}{% endif %}\n  }\n",
        "endpoints/x.yaml:3:3: invalid template: unknown test `nubmer` (did you mean `number`?) (template line 2)",
    );
    assert_error(
        "endpoints/x.yaml",
        "url: https://x.example.com/{{ rnage(3) }}\nmethod: GET\n",
        "endpoints/x.yaml:1:6: invalid template: unknown function `rnage` (did you mean `range`?) (template line 1)",
    );
    assert_error(
        "adaptors/a.yaml",
        "fields:\n  - from: x\n    to: x\nextra_fields:\n  note: \"{{ x|frobnicate }}\"\n",
        "adaptors/a.yaml:5:9: invalid template: unknown filter `frobnicate` (template line 1)",
    );
}

#[test]
fn builtins_macros_and_our_filters_are_known() {
    let dir = config(
        "adaptors/a.yaml",
        "fields:\n  - template: \"{% macro m(v) %}{{ v|upper }}{% endmacro %}{{ m(x) }}{{ x|date('Y-m-d') }}{{ x|digits|e164 }}{% for i in range(2) %}{{ loop.index }}{% endfor %}{{ x is defined }}{{ x|default('') }}\"\n    to: x\n",
    );
    dir.engine();
}

#[test]
fn numeric_operators_take_numbers() {
    assert_error(
        "workflows/w.yaml",
        "when:\n  - field: age\n    gt: thirty\nactions:\n  - endpoint: crm\n",
        "workflows/w.yaml:3:9: the trigger on \"age\" compares numbers: gt takes a number or an ISO 8601 date, got \"thirty\"",
    );
    assert_error(
        "workflows/w.yaml",
        "when:\n  - field: duration\n    lte: \"30s\"\nactions:\n  - endpoint: crm\n",
        "workflows/w.yaml:3:10: the trigger on \"duration\" compares numbers: lte takes a number or an ISO 8601 date, got \"30s\"",
    );
    assert_error(
        "workflows/w.yaml",
        "when:\n  - field: n\n    between: [1, ten]\nactions:\n  - endpoint: crm\n",
        "workflows/w.yaml:3:18: the trigger on \"n\" compares numbers: between[1] takes a number or an ISO 8601 date, got \"ten\"",
    );
    // Numbers written as strings, and dates, compare as they always did.
    config(
        "workflows/w.yaml",
        "when:\n  - field: n\n    gte: \"10\"\n  - field: d\n    lt: 2025-01-01\nactions:\n  - endpoint: crm\n",
    )
    .engine();
}

#[test]
fn java_date_patterns_warn_with_the_php_pattern() {
    assert_warnings(
        "adaptors/contact.yaml",
        "fields:\n  - from: d\n    to: d\n    date_format: \"MM/dd/yyyy hh:mm a\"\n  - from: e\n    to: e\n    date_format: yyyy-MM-dd\n  - from: f\n    to: f\n    date_format: m/d/Y h:i A\n",
        &[
            "adaptors/contact.yaml:4:18: date_format \"MM/dd/yyyy hh:mm a\" looks like a Java/ICU/moment pattern, but date_format takes PHP date() letters: write \"m/d/Y h:i A\"",
            "adaptors/contact.yaml:7:18: date_format \"yyyy-MM-dd\" looks like a Java/ICU/moment pattern, but date_format takes PHP date() letters: write \"Y-m-d\"",
        ],
    );
}

#[test]
fn fixed_offset_zones_warn_with_the_zone_to_use() {
    assert_warnings(
        "adaptors/contact.yaml",
        "fields:\n  - from: d\n    to: d\n    date_format: Y-m-d\n    timezone: EST\n    input_timezone: PST8PDT\n",
        &[
            "adaptors/contact.yaml:5:15: timezone: time zone \"EST\" is a fixed offset that ignores daylight saving time: use \"America/New_York\" for local time",
            "adaptors/contact.yaml:6:21: input_timezone: time zone \"PST8PDT\" is a legacy POSIX zone (PST8PDT): use \"America/Los_Angeles\"",
        ],
    );
    // An abbreviation the tz database does not know is an error naming the zone.
    assert_error(
        "adaptors/contact.yaml",
        "fields:\n  - from: d\n    to: d\n    date_format: Y-m-d\n    timezone: PST\n",
        "adaptors/contact.yaml:5:15: unknown time zone \"PST\" (did you mean \"America/Los_Angeles\"?)",
    );
}

#[test]
fn an_unset_variable_does_not_hide_the_other_mistakes_of_its_file() {
    assert_eq!(
        config(
            "endpoints/x.yaml",
            "url: ${NOT_SET_BASE}/contacts\nadaptor: contact\ntimeout: forever\n",
        )
        .errors(),
        vec![
            "endpoints/x.yaml:1:6: environment variable NOT_SET_BASE is not set (set it, or write ${NOT_SET_BASE:-default})",
            "endpoints/x.yaml:3:10: invalid duration \"forever\": write a number and a unit (ms, s, m, h, d), e.g. 500ms, 10s, 5m, 2h, 1d",
        ]
    );
}

#[test]
fn a_duplicate_key_is_reported_where_it_is_written_again() {
    assert_error(
        "endpoints/x.yaml",
        "url: https://x.example.com\nadaptor: contact\ntimeout: 5s\ntimeout: 6s\n",
        "endpoints/x.yaml:4:1: duplicate key `timeout` (first written at line 3): keep one",
    );
    assert_error(
        "endpoints/x.yaml",
        "url: https://x.example.com\nadaptor: contact\nauth:\n  type: bearer\n  token: a\n  token: b\n",
        "endpoints/x.yaml:6:3: duplicate key `token` (first written at line 5): keep one",
    );
}

/// Two files defining one name: the error is in the second file read, naming the first.
#[test]
fn a_duplicate_name_points_at_the_second_file() {
    let dir = ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - from: phone_number\n    to: phone\n",
        ),
        (
            "adaptors/other.yaml",
            "description: a copy\nname: contact\nfields:\n  - from: phone_number\n    to: phone\n",
        ),
        (
            "endpoints/crm.yaml",
            "url: https://crm.example.com/contacts\nadaptor: contact\n",
        ),
    ]);
    assert_eq!(
        dir.errors(),
        vec![
            "adaptors/other.yaml:2:7: duplicate adaptor name \"contact\": adaptors/contact.yaml already uses it"
        ]
    );
}

/// `validate` with warnings only: they are listed after the ok line's count, exit 0; with
/// `--strict` the same configuration fails.
#[test]
fn validate_lists_warnings_apart_and_strict_makes_them_errors() {
    let dir = ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - from: d\n    to: d\n    date_format: yyyy-MM-dd\n",
        ),
        (
            "endpoints/crm.yaml",
            "url: https://crm.example.com/contacts\nadaptor: contact\n",
        ),
        (
            "workflows/ok.yaml",
            "when:\n  - event: sale\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    let validate = |strict: bool| {
        let mut cmd = cli();
        cmd.args(["validate", "--config"]).arg(dir.path());
        if strict {
            cmd.arg("--strict");
        }
        let out = cmd.output().expect("run");
        let text = |b: Vec<u8>| String::from_utf8(b).expect("utf-8");
        (out.status.code(), text(out.stdout), text(out.stderr))
    };
    let warning = "warning: adaptors/contact.yaml:4:18: date_format \"yyyy-MM-dd\" looks like a Java/ICU/moment pattern, but date_format takes PHP date() letters: write \"Y-m-d\"";
    let shown = dir.path().display();

    let (code, stdout, stderr) = validate(false);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        format!("ok: {shown} is valid: 1 adaptor, 1 outbound and 0 inbound endpoint, 1 workflow\n")
    );
    assert_eq!(
        stderr,
        format!("{warning}\n1 warning in {shown} (validate --strict fails on warnings)\n")
    );

    let (code, stdout, stderr) = validate(true);
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        format!("{warning}\n1 warning in {shown} (--strict: warnings are errors)\n")
    );
}

#[test]
fn counts_are_singular_for_one() {
    assert_error(
        "workflows/w.yaml",
        "when:\n  - field: n\n    between: [1]\nactions:\n  - endpoint: crm\n",
        "workflows/w.yaml:3:14: `between` takes [low, high], got 1 value",
    );
    // Positions in paths count from 0, as the paths of type errors do.
    assert_error(
        "adaptors/a.yaml",
        "fields:\n  - from: a\n    to: a\n  - to: phone\n",
        "adaptors/a.yaml:4:5: fields[1] (to: phone) needs `from` (a field to read) or `template`",
    );
}
