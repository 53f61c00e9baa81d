//! Every kind of configuration mistake is a load error with its file, line and column and
//! a message naming the valid alternatives; all of them are reported in one run.

mod common;

use common::{ConfigDir, cli};

/// Loads a configuration whose only file is `path` with `text`, plus a valid adaptor,
/// endpoint and workflow to refer to, and returns the error lines.
fn errors_of(path: &str, text: &str) -> Vec<String> {
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
    .errors()
}

fn assert_error(path: &str, text: &str, expected: &str) {
    let errors = errors_of(path, text);
    assert_eq!(errors, vec![expected.to_string()], "for {path}:\n{text}");
}

#[test]
fn yaml_syntax() {
    assert_error(
        "workflows/bad.yaml",
        "when:\n  - event: sale\n   bad indent: [\n",
        "workflows/bad.yaml:3:4: did not find expected '-' indicator, while parsing a block collection that starts at line 2",
    );
}

#[test]
fn unknown_keys_point_at_the_key_and_suggest_the_nearest_or_list_the_valid_ones() {
    assert_error(
        "workflows/typo.yaml",
        "when:\n  - event: sale\nactions:\n  - endpoint: crm\n    adapter: contact\n",
        "workflows/typo.yaml:5:5: actions[0]: unknown field `adapter` (did you mean `adaptor`?)",
    );
    // A key close to none of them gets the list.
    assert_error(
        "workflows/typo.yaml",
        "when:\n  - event: sale\nactions:\n  - endpoint: crm\n    colour: red\n",
        "workflows/typo.yaml:5:5: actions[0]: unknown field `colour`, expected one of `endpoint`, `adaptor`, `delay`, `step`, `after`, `when`, `window`",
    );
    assert_error(
        "endpoints/x.yaml",
        "url: https://x.example.com\nadaptor: contact\nauth:\n  type: bearer\n  tokn: abc\n",
        "endpoints/x.yaml:5:3: auth: unknown field `tokn` (did you mean `token`?)",
    );
}

#[test]
fn wrong_types_and_missing_keys() {
    assert_error(
        "workflows/w.yaml",
        "active: maybe\nwhen:\n  - event: sale\nactions:\n  - endpoint: crm\n",
        "workflows/w.yaml:1:9: active: expected true or false, got \"maybe\"",
    );
    assert_error(
        "adaptors/a.yaml",
        "fields:\n  - from: x\n",
        "adaptors/a.yaml:2:5: fields[0]: missing field `to`",
    );
}

#[test]
fn tagged_variants_list_the_valid_types() {
    assert_error(
        "endpoints/x.yaml",
        "url: https://x.example.com\nadaptor: contact\nauth:\n  type: oauth\n  token: abc\n",
        "endpoints/x.yaml:4:9: auth.type: unknown variant `oauth`, expected one of `bearer`, `basic`, `header`, `query`, `signature`, `oauth2` (did you mean `oauth2`?)",
    );
    assert_error(
        "endpoints/x.yaml",
        "url: https://x.example.com\nadaptor: contact\nformat: yaml\n",
        "endpoints/x.yaml:3:9: format: unknown variant `yaml`, expected one of `json`, `form`, `xml`, `query`",
    );
}

#[test]
fn unknown_references_suggest_the_nearest_and_name_the_known_ones() {
    assert_error(
        "workflows/w.yaml",
        "when:\n  - event: sale\nactions:\n  - endpoint: hubspot\n",
        "workflows/w.yaml:4:15: unknown endpoint \"hubspot\" (known: crm)",
    );
    assert_error(
        "workflows/w.yaml",
        "when:\n  - event: sale\nactions:\n  - endpoint: crm\n    adaptor: nope\n",
        "workflows/w.yaml:5:14: unknown adaptor \"nope\" (known: contact)",
    );
    assert_error(
        "endpoints/x.yaml",
        "url: https://x.example.com\nadaptor: contacts\n",
        "endpoints/x.yaml:2:10: unknown adaptor \"contacts\" (did you mean \"contact\"? known: contact)",
    );
}

#[test]
fn environment_variables_must_be_set() {
    assert_error(
        "endpoints/x.yaml",
        "url: https://x.example.com\nadaptor: contact\nauth:\n  type: bearer\n  token: ${NOT_SET_ANYWHERE}\n",
        "endpoints/x.yaml:5:10: environment variable NOT_SET_ANYWHERE is not set (set it, or write ${NOT_SET_ANYWHERE:-default})",
    );
}

#[test]
fn adaptor_field_shape() {
    assert_error(
        "adaptors/a.yaml",
        "fields:\n  - to: phone\n",
        "adaptors/a.yaml:2:5: fields[0] (to: phone) needs `from` (a field to read) or `template`",
    );
    assert_error(
        "adaptors/a.yaml",
        "fields:\n  - from: x\n    template: \"{{ x }}\"\n    to: phone\n",
        "adaptors/a.yaml:3:15: fields[0] (to: phone) has both `from` and `template`: keep one",
    );
    assert_error(
        "adaptors/a.yaml",
        "fields:\n  - from: a\n    to: x\n  - from: b\n    to: x.y\n",
        "adaptors/a.yaml:5:9: output keys x and x.y conflict: x cannot be both a value and an object",
    );
    // The longer key first; and in extra_fields, whose keys may hold dots.
    assert_error(
        "adaptors/a.yaml",
        "fields:\n  - from: a\n    to: x.y.z\n  - from: b\n    to: x.y\n",
        "adaptors/a.yaml:5:9: output keys x.y and x.y.z conflict: x.y cannot be both a value and an object",
    );
    assert_error(
        "adaptors/a.yaml",
        "fields:\n  - from: a\n    to: x\nextra_fields:\n  x.y: 1\n",
        "adaptors/a.yaml:5:8: output keys x and x.y conflict: x cannot be both a value and an object",
    );
}

#[test]
fn compiled_values_are_checked_at_load() {
    let cases = [
        (
            "adaptors/a.yaml",
            "fields:\n  - from: $.a[\n    to: x\n",
            "adaptors/a.yaml:2:11: invalid JSONPath \"$.a[\": expected selector at character 5",
        ),
        (
            "adaptors/a.yaml",
            "fields:\n  - from: '@when'\n    to: x\n",
            "adaptors/a.yaml:2:11: unknown metadata @when (known: @id, @type, @source, @received_at, @steps.STEP.NAME)",
        ),
        (
            "adaptors/a.yaml",
            "fields:\n  - template: \"{{ x \"\n    to: x\n",
            "adaptors/a.yaml:2:15: invalid template: syntax error: unexpected end of input, expected end of variable block (template line 1)",
        ),
        (
            "adaptors/a.yaml",
            "fields:\n  - from: d\n    to: x\n    date_format: \"%Q\"\n",
            "adaptors/a.yaml:4:18: invalid strftime pattern \"%Q\"",
        ),
        (
            "adaptors/a.yaml",
            "fields:\n  - from: d\n    to: x\n    date_format: Y-m-d\n    timezone: America/NewYork\n",
            "adaptors/a.yaml:5:15: unknown time zone \"America/NewYork\" (did you mean \"America/New_York\"?)",
        ),
        (
            "workflows/w.yaml",
            "when:\n  - field: phone\n    matches: '[0-9'\nactions:\n  - endpoint: crm\n",
            "workflows/w.yaml:3:14: invalid regex \"[0-9\": ",
        ),
        (
            "workflows/w.yaml",
            "when:\n  - field: d\n    within: 24 hours\nactions:\n  - endpoint: crm\n",
            "workflows/w.yaml:3:13: invalid duration \"24 hours\": write a number and a unit (ms, s, m, h, d), e.g. 500ms, 10s, 5m, 2h, 1d",
        ),
        (
            "workflows/w.yaml",
            "when:\n  - event: sale\nactions:\n  - endpoint: crm\n    delay: soon\n",
            "workflows/w.yaml:5:12: invalid duration \"soon\"",
        ),
        (
            "endpoints/x.yaml",
            "direction: inbound\npath: /hooks/x\nevent_type: lead\nallow_from: [66.85.240.0/21, 10.0.0/8]\n",
            "endpoints/x.yaml:4:30: invalid CIDR \"10.0.0/8\": write an address range such as 66.85.240.0/21",
        ),
        (
            "endpoints/x.yaml",
            "url: https://x.example.com\nadaptor: contact\nsuccess_codes: [200, \"2xxx\"]\n",
            "endpoints/x.yaml:3:22: invalid status \"2xxx\": write 201, \"200-299\" or \"2xx\"",
        ),
        (
            "endpoints/x.yaml",
            "url: https://x.example.com\nadaptor: contact\ntimeout: 10\n",
            "endpoints/x.yaml:3:10: invalid duration \"10\"",
        ),
        (
            "endpoints/x.yaml",
            "url: https://x.example.com\nadaptor: contact\nrate_limit: 20 per second\n",
            "endpoints/x.yaml:3:13: invalid rate_limit \"20 per second\": write N/s, N/m or N/h, e.g. 20/s",
        ),
        (
            "endpoints/x.yaml",
            "url: https://x.example.com\nadaptor: contact\nsigning:\n  secret: ${TEST_TOKEN}\n",
            "endpoints/x.yaml:4:11: the signing secret must be \"whsec_\" followed by base64",
        ),
        (
            "endpoints/x.yaml",
            "url: not a url\nadaptor: contact\n",
            "endpoints/x.yaml:1:6: url \"not a url\" is not a valid URL: relative URL without a base",
        ),
        (
            "endpoints/x.yaml",
            "url: https://x.example.com\nbody_template: \"{% if %}\"\n",
            "endpoints/x.yaml:2:16: invalid template: syntax error: ",
        ),
        (
            "endpoints/x.yaml",
            "url: https://x.example.com\nadaptor: contact\nheaders: \"X-A 1|X-B: 2\"\n",
            "endpoints/x.yaml:3:10: header \"X-A 1\" has no \":\": write Name: value|Name: value",
        ),
    ];
    for (path, text, start) in cases {
        let errors = errors_of(path, text);
        assert_eq!(errors.len(), 1, "{path}:\n{text}\n{errors:#?}");
        assert!(
            errors[0].starts_with(start),
            "expected {start:?}…, got {:?}",
            errors[0]
        );
    }
}

#[test]
fn endpoint_shape() {
    assert_error(
        "endpoints/x.yaml",
        "url: https://x.example.com\nadaptor: contact\npath: /hooks/x\n",
        "endpoints/x.yaml:3:1: `path` is for inbound endpoints; this one is outbound (add `direction: inbound`, or remove `path`)",
    );
    assert_error(
        "endpoints/x.yaml",
        "direction: inbound\npath: /webhooks/x\nevent_type: lead\n",
        "endpoints/x.yaml:2:7: inbound path \"/webhooks/x\" must start with /hooks/ and name the hook, e.g. /hooks/convolo",
    );
    assert_error(
        "endpoints/x.yaml",
        "url: https://x.example.com\nmethod: GET\nformat: json\nadaptor: contact\n",
        "endpoints/x.yaml:3:9: GET requests carry no body: use format: query (the payload goes in the URL)",
    );
    assert_error(
        "endpoints/x.yaml",
        "direction: inbound\npath: /hooks/x\n",
        "endpoints/x.yaml:1:1: an inbound endpoint needs `event_type`: a constant such as lead.created, or a template such as \"{{ type }}\"",
    );
}

#[test]
fn workflow_shape() {
    assert_error(
        "workflows/w.yaml",
        "when:\n  - field: status\n    equals: SALE\n    in: [SALE]\nactions:\n  - endpoint: crm\n",
        "workflows/w.yaml:4:5: a trigger has exactly one operator, this one has equals, in: split it into one trigger each",
    );
    assert_error(
        "workflows/w.yaml",
        "when:\n  - field: status\nactions:\n  - endpoint: crm\n",
        "workflows/w.yaml:2:5: the trigger on \"status\" needs an operator: one of equals, not_equals, in, not_in, gt, gte, lt, lte, between, contains, not_contains, starts_with, ends_with, matches, is_blank, is_numeric, exists, within",
    );
    assert_error(
        "workflows/w.yaml",
        "when:\n  - event: sale\n    active: false\nactions:\n  - endpoint: crm\n",
        "workflows/w.yaml:2:3: every trigger is inactive: a workflow needs at least one active trigger",
    );
    assert_error(
        "workflows/w.yaml",
        "when:\n  - event: sale\n    field: x\nactions:\n  - endpoint: crm\n",
        "workflows/w.yaml:2:5: a trigger has one subject: `event` or `field`, not both (use two triggers)",
    );
    assert_error(
        "workflows/w.yaml",
        "when:\n  - field: n\n    between: [1]\nactions:\n  - endpoint: crm\n",
        "workflows/w.yaml:3:14: `between` takes [low, high], got 1 value",
    );
}

#[test]
fn actions_need_a_sendable_outbound_endpoint() {
    let dir = ConfigDir::new(&[
        (
            "endpoints/hook.yaml",
            "direction: inbound\npath: /hooks/in\nevent_type: lead\n",
        ),
        ("endpoints/bare.yaml", "url: https://x.example.com\n"),
        (
            "workflows/w.yaml",
            "when:\n  - event: sale\nactions:\n  - endpoint: hook\n  - endpoint: bare\n",
        ),
    ]);
    assert_eq!(
        dir.errors(),
        vec![
            "workflows/w.yaml:4:15: endpoint \"hook\" is inbound (it receives events); actions send to outbound endpoints",
            "workflows/w.yaml:5:15: endpoint bare sends POST bodies but has no adaptor or body_template: give the endpoint (or this action) an adaptor",
        ]
    );
}

#[test]
fn names_are_unique_within_a_kind() {
    let dir = ConfigDir::new(&[
        (
            "endpoints/a.yaml",
            "name: crm\nurl: https://a.example.com\nmethod: GET\n",
        ),
        (
            "endpoints/crm.yml",
            "url: https://b.example.com\nmethod: GET\n",
        ),
        (
            "workflows/w.yaml",
            "when:\n  - event: sale\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    assert_eq!(
        dir.errors(),
        vec![
            "endpoints/crm.yml:1:1: duplicate endpoint name \"crm\": endpoints/a.yaml already uses it"
        ]
    );
}

/// The "done when" of the issue: several mistakes in several files, every one reported
/// with its file and line by the real `validate` command, and exit code 1.
#[test]
fn validate_reports_every_mistake_at_once() {
    let dir = ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - from: phone_number\n    to: phone\n    date_format: \"%Q\"\n",
        ),
        (
            "endpoints/crm.yaml",
            "url: https://crm.example.com\nadaptor: contact\ntimeout: forever\n",
        ),
        ("endpoints/broken.yaml", "url: [unclosed\n"),
        (
            "workflows/sale.yaml",
            "when:\n  - event: sale\n  - field: status\n    in: [SALE]\n    equals: SALE\nactions:\n  - endpoint: hubspot\n  - endpoint: broken\n",
        ),
        (
            "workflows/typo.yaml",
            "when:\n  - event: sale\nactoins:\n  - endpoint: crm\n",
        ),
    ]);
    let out = cli()
        .args(["validate", "--config"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "adaptors/contact.yaml:4:18: invalid strftime pattern \"%Q\": unknown specifier %Q",
            "endpoints/broken.yaml:2:1: did not find expected ',' or ']', while parsing a flow sequence that starts at line 1",
            "endpoints/crm.yaml:3:10: invalid duration \"forever\": write a number and a unit (ms, s, m, h, d), e.g. 500ms, 10s, 5m, 2h, 1d",
            "workflows/sale.yaml:5:5: a trigger has exactly one operator, this one has in, equals: split it into one trigger each",
            "workflows/sale.yaml:7:15: unknown endpoint \"hubspot\" (known: crm)",
            "workflows/typo.yaml:3:1: unknown field `actoins` (did you mean `actions`?)",
        ]
    );
    // A reference to a file that exists but cannot be parsed is not reported twice.
    assert!(!stderr.contains("unknown endpoint \"broken\""));
    // Warnings come after every error, then the count of both.
    assert_eq!(
        lines[6],
        "warning: endpoints/crm.yaml:1:1: endpoint crm is not used by any workflow"
    );
    assert_eq!(lines.len(), 8, "{stderr}");
    assert!(
        lines[7].starts_with("6 errors and 1 warning in "),
        "{}",
        lines[7]
    );
}

#[test]
fn a_missing_folder_is_one_clear_error() {
    let out = cli()
        .args(["validate", "--config", "/nonexistent/switchboard"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().next(),
        Some("/nonexistent/switchboard: configuration folder not found")
    );
}

#[test]
fn several_mistakes_in_one_file_are_all_reported() {
    assert_eq!(
        errors_of(
            "endpoints/x.yaml",
            "url: https://x.example.com\nadaptr: contact\ncolour: red\nmethod: GETT\n"
        ),
        vec![
            "endpoints/x.yaml:2:1: unknown field `adaptr` (did you mean `adaptor`?)",
            "endpoints/x.yaml:3:1: unknown field `colour`, expected one of `name`, `description`, `direction`, `active`, `url`, `method`, `adaptor`, `format`, `xml_root`, `delimiter`, `body_template`, `content_type`, `headers`, `auth`, `signing`, `success_codes`, `response`, `timeout`, `retry`, `concurrency`, `rate_limit`, `order_by`, `path`, `methods`, `event_type`, `event_id`, `allow_from`, `respond`",
            "endpoints/x.yaml:4:9: method: unknown variant `GETT`, expected one of `GET`, `POST`, `PUT`, `PATCH`, `DELETE` (did you mean `GET`?)",
        ]
    );
}

#[test]
fn type_errors_name_the_accepted_forms() {
    assert_error(
        "adaptors/a.yaml",
        "fields:\n  - from: x\n    to: 5\n",
        "adaptors/a.yaml:3:9: fields[0].to: expected a string or a list of strings, got 5",
    );
    assert_error(
        "endpoints/x.yaml",
        "url: https://x.example.com\nadaptor: contact\nheaders: [X-A]\n",
        "endpoints/x.yaml:3:10: headers: expected a map of header names to values, or one \"Name: value|Name: value\" string, got [\"X-A\"]",
    );
    assert_error(
        "endpoints/x.yaml",
        "url: https://x.example.com\nadaptor: contact\nsuccess_codes: [9999999]\n",
        "endpoints/x.yaml:3:17: 9999999 is not an HTTP status (100-599)",
    );
}

/// Values from `${VAR}` are strings; the keys that take booleans and numbers accept them.
#[test]
fn booleans_and_numbers_can_come_from_the_environment() {
    let dir = ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "omit_empty: ${OMIT:-false}\nfields:\n  - {from: phone, to: phone}\n",
        ),
        (
            "endpoints/crm.yaml",
            "url: https://crm.example.com/\nadaptor: contact\nactive: ${ON:-yes}\nconcurrency: ${N:-4}\n",
        ),
        (
            "workflows/w.yaml",
            "active: \"true\"\nwhen:\n  - event: sale\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    let engine = dir.engine();
    let crm = engine.endpoint("crm").expect("crm");
    assert!(crm.active);
    assert_eq!(crm.policy.concurrency, 4);
}

/// The endpoint defaults the README states, as compiled.
#[test]
fn endpoint_defaults_are_the_specs() {
    let dir = ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - {from: phone, to: phone}\n",
        ),
        (
            "endpoints/crm.yaml",
            "url: https://crm.example.com/\nadaptor: contact\nformat: xml\n",
        ),
        (
            "endpoints/hook.yaml",
            "direction: inbound\npath: /hooks/in\nevent_type: lead\n",
        ),
        (
            "workflows/w.yaml",
            "when:\n  - event: sale\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    let engine = dir.engine();
    let crm = engine.endpoint("crm").expect("crm");
    assert_eq!(crm.method.as_str(), "POST");
    assert_eq!(crm.xml_root, "payload");
    assert_eq!(crm.delimiter, ",");
    let p = &crm.policy;
    assert_eq!(p.success_codes.to_string(), "200-299");
    assert_eq!(p.retry_on.to_string(), "408, 429, 500-599");
    let schedule: Vec<u64> = p.schedule.iter().map(|d| d.as_secs()).collect();
    assert_eq!(schedule, vec![5, 300, 1800, 7200, 18000, 36000, 36000]);
    assert_eq!(p.timeout, std::time::Duration::from_secs(10));
    assert_eq!(p.concurrency, 8);
    assert_eq!(p.rate_limit, None);
    let hook = &engine.inbound()[0];
    assert_eq!(hook.respond, 202);
    assert_eq!(
        hook.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        vec!["POST"]
    );
}

#[test]
fn oauth2_needs_its_token_url_its_refresh_token_and_an_outbound_endpoint() {
    assert_error(
        "endpoints/x.yaml",
        "url: https://x.example.com\nadaptor: contact\nauth:\n  type: oauth2\n  grant: client_credentials\n  client_id: id\n  client_secret: secret\n",
        "endpoints/x.yaml:4:3: auth: missing field `token_url`",
    );
    assert_error(
        "endpoints/x.yaml",
        "url: https://x.example.com\nadaptor: contact\nauth:\n  type: oauth2\n  token_url: https://login.example.com/token\n  grant: refresh_token\n  client_id: id\n  client_secret: secret\n",
        "endpoints/x.yaml:6:10: auth grant refresh_token needs a refresh_token (e.g. refresh_token: ${REFRESH_TOKEN})",
    );
    assert_error(
        "endpoints/x.yaml",
        "direction: inbound\npath: /hooks/x\nevent_type: lead\nauth:\n  type: oauth2\n  token_url: https://login.example.com/token\n  grant: client_credentials\n  client_id: id\n  client_secret: secret\n",
        "endpoints/x.yaml:5:9: auth type oauth2 is for outbound endpoints: an inbound endpoint checks credentials, it does not fetch them (use bearer, basic, header, query or signature)",
    );
}
