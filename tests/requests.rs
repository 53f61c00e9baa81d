//! Requests: URL templates, methods, the four formats, delimiters, body templates,
//! content types, headers, auth, and what happens when a request cannot be built.

mod common;

use common::{ConfigDir, event, now, requests};
use serde_json::{Value, json};
use switchboard::Engine;
use switchboard::engine::Plan;
use switchboard::engine::request::Request;

const ADAPTOR: (&str, &str) = (
    "adaptors/lead.yaml",
    "fields:\n  - {from: phone, to: lc_number}\n  - {from: name, to: properties.name}\n  - {from: tags, to: tags}\n  - {from: note, to: note}\n",
);
const WORKFLOW: (&str, &str) = (
    "workflows/w.yaml",
    "when:\n  - event: lead\nactions:\n  - endpoint: out\n",
);

fn engine(endpoint: &str) -> Engine {
    ConfigDir::new(&[ADAPTOR, WORKFLOW, ("endpoints/out.yaml", endpoint)]).engine()
}

fn data() -> Value {
    json!({"phone": "+1 555-0100", "name": "Ann & \"Bo\" <x>", "tags": ["a", "b c"], "note": "50% off/today", "id": "a b/c?d"})
}

fn request(endpoint: &str) -> Request {
    let engine = engine(endpoint);
    let mut all = requests(&engine, &event("lead", data()));
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn json_is_the_default_body() {
    let r = request("url: https://x.example.com/leads\nadaptor: lead\n");
    assert_eq!(r.method, "POST");
    assert_eq!(r.url, "https://x.example.com/leads");
    assert_eq!(
        r.headers,
        vec![("Content-Type".to_string(), "application/json".to_string())]
    );
    assert_eq!(
        r.body.as_deref(),
        Some(
            r#"{"lc_number":"+1 555-0100","properties":{"name":"Ann & \"Bo\" <x>"},"tags":["a","b c"],"note":"50% off/today"}"#
        )
    );
}

#[test]
fn form_bodies_nest_keys_and_join_lists() {
    let r = request(
        "url: https://x.example.com/leads\nadaptor: lead\nformat: form\ndelimiter: \"|\"\nmethod: PUT\n",
    );
    assert_eq!(r.method, "PUT");
    assert_eq!(
        header(&r, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        r.body.as_deref(),
        Some(
            "lc_number=%2B1+555-0100&properties%5Bname%5D=Ann+%26+%22Bo%22+%3Cx%3E&tags=a%7Cb+c&note=50%25+off%2Ftoday"
        )
    );
}

#[test]
fn xml_bodies_escape_and_nest() {
    let r = request(
        "url: https://x.example.com/leads\nadaptor: lead\nformat: xml\nxml_root: lead\nmethod: PATCH\n",
    );
    assert_eq!(r.method, "PATCH");
    assert_eq!(header(&r, "content-type"), Some("application/xml"));
    assert_eq!(
        r.body.as_deref(),
        Some(
            "<lead><lc_number>+1 555-0100</lc_number><properties><name>Ann &amp; &quot;Bo&quot; &lt;x&gt;</name></properties><tags>a,b c</tags><note>50% off/today</note></lead>"
        )
    );
}

#[test]
fn query_format_appends_to_an_existing_query_and_encodes_reserved_characters() {
    let r = request(
        "url: https://x.example.com/add_call_api/?widget_key=w1\nmethod: GET\nadaptor: lead\n",
    );
    assert_eq!(r.method, "GET");
    assert_eq!(r.body, None);
    assert!(r.headers.is_empty());
    assert_eq!(
        r.url,
        "https://x.example.com/add_call_api/?widget_key=w1&lc_number=%2B1+555-0100&properties%5Bname%5D=Ann+%26+%22Bo%22+%3Cx%3E&tags=a%2Cb+c&note=50%25+off%2Ftoday"
    );
    let post = request("url: https://x.example.com/p\nadaptor: lead\nformat: query\n");
    assert_eq!((post.method.as_str(), post.body.as_deref()), ("POST", None));
    assert!(
        post.url
            .starts_with("https://x.example.com/p?lc_number=%2B1")
    );
    let delete = request("url: https://x.example.com/p/{{ id }}\nmethod: DELETE\n");
    assert_eq!(
        (delete.method.as_str(), delete.url.as_str()),
        ("DELETE", "https://x.example.com/p/a%20b%2Fc%3Fd")
    );
}

#[test]
fn url_templates_percent_encode_values_but_not_the_template_text() {
    let r = request(
        "url: \"https://x.example.com/c/{{ id }}/calls?n={{ note }}&raw={{ 'x/y'|safe }}\"\nadaptor: lead\n",
    );
    assert_eq!(
        r.url,
        "https://x.example.com/c/a%20b%2Fc%3Fd/calls?n=50%25%20off%2Ftoday&raw=x/y"
    );
}

#[test]
fn body_templates_escape_by_content_type() {
    let xml = request(
        "url: https://x.example.com/\nmethod: PUT\nbody_template: \"<call><n>{{ name }}</n></call>\"\n",
    );
    assert_eq!(header(&xml, "content-type"), Some("application/xml"));
    assert_eq!(
        xml.body.as_deref(),
        Some("<call><n>Ann &amp; &quot;Bo&quot; &lt;x&gt;</n></call>")
    );
    let json = request(
        "url: https://x.example.com/\nbody_template: '{\"n\": \"{{ name }}\", \"tags\": {{ tags }}}'\n",
    );
    assert_eq!(header(&json, "content-type"), Some("application/json"));
    assert_eq!(
        json.body.as_deref(),
        Some(r#"{"n": "Ann & \"Bo\" <x>", "tags": ["a","b c"]}"#)
    );
    let text = request(
        "url: https://x.example.com/\nbody_template: \"Lead {{ name }}\"\ncontent_type: text/csv\n",
    );
    assert_eq!(header(&text, "content-type"), Some("text/csv"));
    assert_eq!(text.body.as_deref(), Some("Lead Ann & \"Bo\" <x>"));
}

#[test]
fn headers_as_a_map_of_templates_or_as_one_line() {
    let map = request(
        "url: https://x.example.com/\nadaptor: lead\nheaders:\n  X-Lead-Phone: \"{{ phone|digits }}\"\n  X-Source: switchboard\n",
    );
    assert_eq!(
        map.headers,
        vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("X-Lead-Phone".to_string(), "15550100".to_string()),
            ("X-Source".to_string(), "switchboard".to_string()),
        ]
    );
    let line = request(
        "url: https://x.example.com/\nadaptor: lead\ncontent_type: application/vnd.api+json\nheaders: \"Accept: application/xml|X-Env: prod\"\n",
    );
    assert_eq!(
        line.headers,
        vec![
            (
                "Content-Type".to_string(),
                "application/vnd.api+json".to_string()
            ),
            ("Accept".to_string(), "application/xml".to_string()),
            ("X-Env".to_string(), "prod".to_string()),
        ]
    );
}

/// Auth is applied at send time; dry runs show it masked.
#[test]
fn auth_types_are_applied_and_masked() {
    let cases = [
        (
            "type: bearer\n  token: ${TEST_TOKEN}",
            ("Authorization", "Bearer tok-123+/="),
        ),
        (
            "type: basic\n  username: ann\n  password: ${TEST_PASSWORD}",
            ("Authorization", "Basic YW5uOnBAc3M6d29yZA=="),
        ),
        (
            "type: header\n  name: X-Api-Key\n  value: ${TEST_API_KEY}",
            ("X-Api-Key", "key-456"),
        ),
    ];
    for (auth, (name, value)) in cases {
        let engine = engine(&format!(
            "url: https://x.example.com/\nadaptor: lead\nauth:\n  {auth}\n"
        ));
        let event = event("lead", data());
        let endpoint = engine.endpoint("out").expect("endpoint");
        let mut sent = requests(&engine, &event).remove(0);
        assert_eq!(
            header(&sent, name),
            None,
            "credentials are not part of the stored request"
        );
        endpoint.auth.as_ref().expect("auth").apply(&mut sent);
        assert_eq!(header(&sent, name), Some(value));
        let shown = &engine.dry_run(&event, now()).requests[0];
        assert_eq!(shown.headers.get(name).map(String::as_str), Some("***"));
    }
    let engine = engine(
        "url: https://x.example.com/?a=1\nmethod: GET\nauth:\n  type: query\n  params:\n    api_key: ${TEST_API_KEY}\n    user: ann\n",
    );
    let event = event("lead", json!({}));
    let mut sent = requests(&engine, &event).remove(0);
    engine
        .endpoint("out")
        .and_then(|e| e.auth.as_ref())
        .expect("auth")
        .apply(&mut sent);
    assert_eq!(
        sent.url,
        "https://x.example.com/?a=1&api_key=key-456&user=ann"
    );
    assert_eq!(
        engine.dry_run(&event, now()).requests[0].url,
        "https://x.example.com/?a=1&api_key=***&user=***"
    );
}

#[test]
fn secrets_are_masked_wherever_they_appear() {
    let dir = ConfigDir::new(&[
        (
            "adaptors/keys.yaml",
            "fields:\n  - {from: phone, to: phone}\nextra_fields:\n  api_key: ${TEST_API_KEY}\n  token_copy: \"{{ 'tok-123+/=' }}\"\n",
        ),
        (
            "endpoints/out.yaml",
            "url: \"https://x.example.com/{{ 'key-456' }}\"\nadaptor: keys\nheaders:\n  X-Echo: ${TEST_TOKEN}\nauth:\n  type: bearer\n  token: ${TEST_TOKEN}\n",
        ),
        WORKFLOW,
    ]);
    let run = dir.engine().dry_run(
        &event("lead", json!({"phone": "+1", "leak": "key-456"})),
        now(),
    );
    let text = serde_json::to_string(&run).expect("json");
    assert!(
        !text.contains("key-456") && !text.contains("tok-123"),
        "{text}"
    );
    let r = &run.requests[0];
    assert_eq!(r.url, "https://x.example.com/***");
    assert_eq!(
        r.body.as_deref(),
        Some(r#"{"phone":"+1","api_key":"***","token_copy":"***"}"#)
    );
    assert_eq!(r.headers.get("X-Echo").map(String::as_str), Some("***"));
    assert_eq!(run.event.data["leak"], "***");
}

#[test]
fn unbuildable_requests_and_inactive_endpoints_are_reported_not_sent() {
    let bad_url = engine("url: \"{{ site|safe }}/leads\"\nadaptor: lead\n");
    let planned = bad_url.process(
        &event("lead", json!({"site": "ftp://files.example.com"})),
        now(),
    );
    assert_eq!(
        planned[0].plan,
        Plan::Fail("url \"ftp://files.example.com/leads\" must be http or https with a host (scheme \"ftp\")".into())
    );
    let injected =
        engine("url: https://x.example.com/\nadaptor: lead\nheaders:\n  X-Name: \"{{ name }}\"\n");
    let planned = injected.process(&event("lead", json!({"name": "a\r\nX-Evil: 1"})), now());
    assert_eq!(
        planned[0].plan,
        Plan::Fail("header X-Name: the rendered value contains a line break".into())
    );
    let inactive = engine("active: false\nurl: https://x.example.com/\nadaptor: lead\n");
    let planned = inactive.process(&event("lead", data()), now());
    assert_eq!(
        planned[0].plan,
        Plan::Skip("endpoint out is inactive (active: false)".into())
    );
    let run = inactive.dry_run(&event("lead", data()), now());
    assert_eq!(
        run.requests[0].skipped.as_deref(),
        Some("endpoint out is inactive (active: false)")
    );
}

/// Every value taken from the environment is a secret, whatever its variable's
/// name; defaults written in the files and Basic user names are not.
#[test]
fn environment_values_are_masked_everywhere_they_show() {
    let env = |name: &str| match name {
        "CRM_PAT" => Some("pat-9f8e7d".to_string()),
        "HOOK_VALUE" => Some("hook-5150".to_string()),
        "BAD_TIMEOUT" => Some("pat-9f8e7d".to_string()),
        _ => None,
    };
    let dir = ConfigDir::new(&[
        ADAPTOR,
        (
            "endpoints/out.yaml",
            "url: \"${BASE:-https://crm.example.com}/leads?apikey=${CRM_PAT}\"\nadaptor: lead\nheaders:\n  X-Api-Key: ${CRM_PAT}\nauth:\n  type: basic\n  username: apiuser\n  password: ${CRM_PAT}\n",
        ),
        (
            "workflows/w.yaml",
            "when:\n  - event: lead\n  - field: hook\n    equals: ${HOOK_VALUE}\nactions:\n  - endpoint: out\n",
        ),
    ]);
    let engine = dir.load_with(&env).expect("loads").engine;
    let run = engine.dry_run(
        &event("lead", json!({"hook": "hook-5150", "phone": "apiuser-1"})),
        now(),
    );
    let text = serde_json::to_string(&run).expect("json");
    assert!(
        !text.contains("pat-9f8e7d") && !text.contains("hook-5150"),
        "{text}"
    );
    assert_eq!(run.workflows[0].reasons[1], "hook = \"***\" (= \"***\")");
    let r = &run.requests[0];
    assert_eq!(
        r.url, "https://crm.example.com/leads?apikey=***",
        "the default base URL stays readable"
    );
    assert_eq!(r.headers.get("X-Api-Key").map(String::as_str), Some("***"));
    assert!(
        r.body.as_deref().is_some_and(|b| b.contains("apiuser-1")),
        "a user name is not a secret"
    );
    // And in configuration errors:
    let broken = ConfigDir::new(&[
        ADAPTOR,
        (
            "endpoints/out.yaml",
            "url: https://crm.example.com/\nadaptor: lead\ntimeout: ${BAD_TIMEOUT}\n",
        ),
        WORKFLOW,
    ]);
    let errors = match broken.load_with(&env) {
        Ok(_) => panic!("should not load"),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        errors,
        "endpoints/out.yaml:3:10: invalid duration \"***\": write a number and a unit (ms, s, m, h, d), e.g. 500ms, 10s, 5m, 2h, 1d"
    );
}
