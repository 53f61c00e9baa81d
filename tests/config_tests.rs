//! `switchboard test`, through the real binary: every example passes its own tests, and
//! they cover its sample events; a wrong expectation fails (exit 1) with each difference
//! by path; a malformed test file or an unknown name is an error (exit 2) at file:line:col;
//! `--json` reports every test.
//!
//! Only the examples' secrets are set (from env.example): URLs keep their defaults.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{cli, root};
use serde_json::Value;

/// (configuration folder, folder with events/): the starter's configuration is the
/// repository's own.
fn examples() -> Vec<(PathBuf, PathBuf)> {
    let mut found = vec![(root(), root().join("examples/starter"))];
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("workflows").is_dir())
        .collect();
    dirs.sort();
    found.extend(dirs.into_iter().map(|d| (d.clone(), d)));
    found
}

/// The credentials among the KEY=value lines of an example's env.example (names with TOKEN,
/// KEY, SECRET, PASS or CLIENT_ID, an OAuth2 client's id): anything else, such as a URL,
/// keeps the default the files give it.
fn example_env(dir: &Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(dir.join("env.example")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| {
            ["TOKEN", "KEY", "SECRET", "PASS", "CLIENT_ID"]
                .iter()
                .any(|w| k.contains(w))
        })
        .collect()
}

/// `switchboard test --config <config> <args…>` with the example's secrets.
fn test(config: &Path, env_of: &Path, args: &[&str]) -> Output {
    cli()
        .arg("test")
        .arg("--config")
        .arg(config)
        .args(args)
        .envs(example_env(env_of))
        .output()
        .expect("run switchboard")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("utf-8")
}

fn hubspot() -> PathBuf {
    root().join("examples/convoso-hubspot")
}

/// A test file in a fresh folder; the folder is kept alive by the returned guard.
fn test_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("check.test.yaml");
    std::fs::write(&path, text).expect("write test file");
    (dir, path)
}

/// The test files of a configuration, as one text.
fn test_files_text(config: &Path) -> String {
    let mut text = String::new();
    for folder in ["", "adaptors", "endpoints", "workflows", "tests"] {
        let Ok(entries) = std::fs::read_dir(config.join(folder)) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            if entry.file_name().to_string_lossy().ends_with(".test.yaml") {
                text += &std::fs::read_to_string(entry.path()).expect("read test file");
            }
        }
    }
    text
}

#[test]
fn every_example_passes_its_tests_and_they_cover_its_sample_events() {
    for (config, dir) in examples() {
        let out = test(&config, &dir, &[]);
        let text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}:\n{text}{}",
            config.display(),
            stderr(&out)
        );
        assert!(!text.contains("FAIL"), "{text}");
        let tests = test_files_text(&config);
        for event in std::fs::read_dir(dir.join("events")).expect("events") {
            let name = event.expect("entry").file_name();
            let name = name.to_string_lossy();
            assert!(
                tests.contains(&format!("events/{name}")),
                "no test of {} runs {name}",
                config.display()
            );
        }
    }
}

#[test]
fn a_wrong_expectation_fails_with_every_difference_by_path() {
    let (_dir, file) = test_file(
        r#"tests:
  - name: a sale goes to HubSpot
    event:
      type: call.disposition
      data: {phone_number: "5551234567", status: SALE, length_in_sec: 45, campaign_id: "1042"}
    expect:
      matched: []
      requests:
        - endpoint: hubspot-contacts
          method: PUT
          headers: {content-type: text/plain, X-Missing: "1"}
          body: {properties: {phone: "5551234567", convoso_phone_number: 5551234567, nope: true}}
      no_requests_to: [hubspot-contacts]
  - name: passes
    event:
      type: call.disposition
      data: {status: SALE, length_in_sec: 45, campaign_id: "1043"}
    expect:
      requests: [{endpoint: hubspot-contacts}]
"#,
    );
    let shown = file.display().to_string();
    let out = test(&hubspot(), &hubspot(), &[&shown]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            r#"FAIL {shown}:2: a sale goes to HubSpot
       matched: expected none, got [sale-to-hubspot]
       requests[0].method: expected "PUT", got "POST"
       requests[0].headers.content-type: expected "text/plain", got "application/json"
       requests[0].headers.X-Missing: expected "1", got no such header
       requests[0].body.properties.phone: expected "5551234567", got "+15551234567"
       requests[0].body.properties.convoso_phone_number: expected 5551234567 (a number), got "5551234567" (a string)
       requests[0].body.properties.nope: expected true, got no such key
       no_requests_to: expected no request to hubspot-contacts, got 1
ok   {shown}:14: passes

2 tests: 1 passed, 1 failed
"#
        )
    );
}

#[test]
fn a_different_number_of_requests_is_a_failure_that_names_the_real_ones() {
    let (_dir, file) = test_file(
        r#"tests:
  - name: too few
    event_file: EVENT
    expect:
      requests: []
"#
        .replace(
            "EVENT",
            &hubspot().join("events/sale.json").display().to_string(),
        )
        .as_str(),
    );
    let out = test(&hubspot(), &hubspot(), &[&file.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out)
            .contains("requests: expected 0 requests, got 1 (sale-to-hubspot → hubspot-contacts)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn json_reports_every_test() {
    let (_dir, file) = test_file(
        r#"tests:
  - name: good
    event: {type: call.disposition, data: {status: SALE, length_in_sec: 45, campaign_id: "1042"}}
    expect: {matched: [sale-to-hubspot]}
  - name: bad
    event: {type: call.disposition, data: {status: SALE, length_in_sec: 5, campaign_id: "1042"}}
    expect: {matched: [sale-to-hubspot]}
"#,
    );
    let shown = file.display().to_string();
    let out = test(&hubspot(), &hubspot(), &[&shown, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(
        report,
        serde_json::json!({
            "passed": 1,
            "failed": 1,
            "tests": [
                {"file": shown, "line": 2, "name": "good", "passed": true, "problems": []},
                {"file": shown, "line": 5, "name": "bad", "passed": false,
                 "problems": [
                     "matched: expected [sale-to-hubspot], got none",
                     "matched: sale-to-hubspot did not match: length_in_sec = 5, expected >= 30",
                 ]},
            ]
        })
    );
}

#[test]
fn a_malformed_test_file_is_an_error_at_its_line_and_column() {
    let (_dir, file) = test_file(
        r#"tests:
  - name: typo
    event: {type: call.disposition, data: {}}
    expect:
      requests:
        - endpoint: hubspot-contacts
          bdy: {}
"#,
    );
    let shown = file.display().to_string();
    let out = test(&hubspot(), &hubspot(), &[&shown]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        format!(
            "{shown}:7:11: tests[0].expect.requests[0].bdy: unknown field `bdy`, expected one of \
             `endpoint`, `workflow`, `method`, `url`, `headers`, `body`, `body_text`, `window`\n\
             1 error: no test was run\n"
        )
    );
}

#[test]
fn unknown_names_and_unsupported_keys_are_errors_at_their_place() {
    let (_dir, file) = test_file(
        r#"tests:
  - name: names
    event: {type: call.disposition, data: {}}
    steps: {find: {contact_id: "901"}}
    expect:
      matched: [sale-to-hubspt]
      requests: [{endpoint: hubspot-contact, body: {}, body_text: ""}]
      no_requests_to: [slack]
  - name: no event
    expect: {}
"#,
    );
    let shown = file.display().to_string();
    let out = test(&hubspot(), &hubspot(), &[&shown]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            r#"{shown}:4:13: steps: unknown step "find" (known: hubspot-contacts)
{shown}:6:17: unknown workflow "sale-to-hubspt" (did you mean "sale-to-hubspot"?)
{shown}:7:29: unknown endpoint "hubspot-contact" (did you mean "hubspot-contacts"?)
{shown}:7:56: give body (a JSON subset) or body_text (the exact text), not both
{shown}:8:24: unknown endpoint "slack" (known: hubspot-contacts)
{shown}:9:5: a test needs an event (event: or event_file:)
6 errors: no test was run
"#
        )
    );
}

#[test]
fn an_invalid_configuration_is_an_error_and_runs_nothing() {
    // Without HUBSPOT_TOKEN the endpoint file cannot be read: exit 2, as validate says.
    let out = cli()
        .args(["test", "--config"])
        .arg(hubspot())
        .env_remove("HUBSPOT_TOKEN")
        .output()
        .expect("run switchboard");
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(
        text.starts_with("endpoints/hubspot-contacts.yaml:")
            && text.contains(": environment variable HUBSPOT_TOKEN is not set"),
        "{text}"
    );
    assert!(text.ends_with("1 error: no test was run\n"), "{text}");
}

#[test]
fn a_test_file_of_the_wrong_shape_says_what_it_should_be() {
    let (_dir, file) = test_file("tests:\n  - 1\n");
    let shown = file.display().to_string();
    let out = test(&hubspot(), &hubspot(), &[&shown]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "{shown}:2:5: tests[0]: invalid type: integer `1`, expected a test: a mapping with \
             `name`, `event` or `event_file`, and `expect`\n1 error: no test was run\n"
        )
    );
    std::fs::write(&file, "").expect("empty the file");
    let out = test(&hubspot(), &hubspot(), &[&shown]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(&format!("{shown}: the file is empty")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn secrets_read_masked_and_an_expectation_quoting_one_is_masked_too() {
    let token = example_env(&hubspot())
        .into_iter()
        .find(|(name, _)| name == "HUBSPOT_TOKEN")
        .expect("HUBSPOT_TOKEN in env.example")
        .1;
    let (_dir, file) = test_file(&format!(
        r#"tests:
  - name: the token
    event: {{type: call.disposition, data: {{status: SALE, length_in_sec: 45, campaign_id: "1042"}}}}
    expect:
      requests:
        - headers: {{Authorization: "Bearer {token}"}}
  - name: masked
    event: {{type: call.disposition, data: {{status: SALE, length_in_sec: 45, campaign_id: "1042"}}}}
    expect:
      requests:
        - headers: {{authorization: "***"}}
"#
    ));
    let shown = file.display().to_string();
    let out = test(&hubspot(), &hubspot(), &[&shown]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(!text.contains(&token), "{text}");
    assert!(
        text.contains(r#"requests[0].headers.Authorization: expected "Bearer ***", got "***""#),
        "{text}"
    );
    assert!(text.contains(&format!("ok   {shown}:7: masked")), "{text}");
}

/// A copy of the starter configuration (the repository's own), without its tests.
fn starter_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for folder in ["adaptors", "endpoints", "workflows"] {
        std::fs::create_dir_all(dir.path().join(folder)).expect("mkdir");
        for entry in std::fs::read_dir(root().join(folder)).expect("read folder") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            if !name.ends_with(".test.yaml") {
                std::fs::copy(&path, dir.path().join(folder).join(name)).expect("copy");
            }
        }
    }
    dir
}

#[test]
fn test_files_are_found_beside_the_configuration_and_are_not_configuration() {
    let config = starter_copy();
    let out = test(config.path(), config.path(), &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "\n0 tests: 0 passed, 0 failed\n");
    assert!(stderr(&out).starts_with("no test files (*.test.yaml) in "));

    // A test file is no workflow: the loader would refuse `tests:` in one.
    let a_test = |name: &str| {
        format!(
            "tests:\n  - name: {name}\n    event: {{type: call.disposition, data: {{status: SALE}}}}\n    expect: {{matched: [disposition-to-crm]}}\n"
        )
    };
    let write = |file: &str, text: String| {
        let path = config.path().join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("workflows/sale.test.yaml", a_test("in workflows"));
    write("tests/more.test.yaml", a_test("in tests"));
    write("top.test.yml", a_test("at the top"));
    write("tests/deeper/not-found.test.yaml", a_test("not looked for"));
    let validate = cli()
        .args(["validate", "--config"])
        .arg(config.path())
        .output()
        .expect("run switchboard");
    assert!(validate.status.success(), "{}", stderr(&validate));
    let out = test(config.path(), config.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "ok   tests/more.test.yaml:2: in tests\n\
         ok   top.test.yml:2: at the top\n\
         ok   workflows/sale.test.yaml:2: in workflows\n\
         \n3 tests: 3 passed, 0 failed\n"
    );
}

#[test]
fn a_request_that_cannot_be_built_fails_its_test_whatever_it_expects() {
    let config = starter_copy();
    let path = config.path();
    std::fs::write(
        path.join("endpoints/broken.yaml"),
        "url: \"{{ data.site }}/hook\"\nmethod: GET\n",
    )
    .expect("write endpoint");
    std::fs::write(
        path.join("workflows/broken.yaml"),
        "when:\n  - event: call.disposition\nactions:\n  - endpoint: broken\n",
    )
    .expect("write workflow");
    std::fs::write(
        path.join("workflows/broken.test.yaml"),
        "tests:\n  - name: matches\n    event: {type: call.disposition, data: {status: NO}}\n    expect: {matched: [broken]}\n",
    )
    .expect("write test");
    let out = test(path, path, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "FAIL workflows/broken.test.yaml:2: matches\n       requests[0] (broken → broken): could not \
         be built: url \"/hook\" is not a valid URL: relative URL without a base\n\n\
         1 test: 0 passed, 1 failed\n"
    );
}

#[test]
fn a_step_value_the_step_cannot_capture_is_an_error_at_its_place() {
    // The search captures `contact_id` (and every step has `status`): a test that gives
    // `contactid` would pass while the configuration it tests never sends the update.
    let upsert = root().join("examples/hubspot-upsert");
    let (_dir, file) = test_file(
        r#"tests:
  - name: a typo in a captured name
    event: {type: call.disposition, data: {phone_number: "5551234567", status: SALE}}
    steps: {find: {contactid: "901", status: 200}}
    expect:
      requests: [{endpoint: hubspot-find-contact}, {endpoint: hubspot-update-contact}]
"#,
    );
    let shown = file.display().to_string();
    let out = test(&upsert, &upsert, &[&shown]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "{shown}:4:20: steps.find: unknown captured value \"contactid\" (did you mean \
             \"contact_id\"? known: contact_id, status)\n1 error: no test was run\n"
        )
    );
}
