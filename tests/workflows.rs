//! Workflows: every operator, AND semantics, `active` switches, event type lists
//! and globs, the numeric-vs-string rule, `ignore_case`, and explanations.

mod common;

use common::{ConfigDir, event, now};
use serde_json::{Value, json};
use switchboard::Engine;

const ENDPOINT: (&str, &str) = (
    "endpoints/hook.yaml",
    "url: https://hook.example.com/\nmethod: GET\n",
);

/// An engine with one workflow `w` whose only field trigger is `trigger` (YAML lines).
fn with_trigger(trigger: &str) -> Engine {
    let workflow = format!("when:\n  - {trigger}\nactions:\n  - endpoint: hook\n");
    ConfigDir::new(&[ENDPOINT, ("workflows/w.yaml", &workflow)]).engine()
}

fn fires(engine: &Engine, kind: &str, data: Value) -> bool {
    !engine.process(&event(kind, data), now()).is_empty()
}

/// (trigger, data, expected) for every operator, both ways.
#[test]
fn every_operator() {
    let cases: Vec<(&str, Value, bool)> = vec![
        (
            "field: status\n    equals: SALE",
            json!({"status": "SALE"}),
            true,
        ),
        (
            "field: status\n    equals: SALE",
            json!({"status": "sale"}),
            false,
        ),
        (
            "field: status\n    equals: sale\n    ignore_case: true",
            json!({"status": "SALE"}),
            true,
        ),
        ("field: n\n    equals: 30", json!({"n": "30"}), true),
        ("field: n\n    equals: 30", json!({"n": "30.0"}), true),
        ("field: n\n    equals: \"030\"", json!({"n": 30}), true),
        ("field: flag\n    equals: true", json!({"flag": true}), true),
        (
            "field: flag\n    equals: true",
            json!({"flag": "true"}),
            true,
        ),
        ("field: missing\n    equals: \"\"", json!({}), true),
        (
            "field: status\n    not_equals: SALE",
            json!({"status": "NI"}),
            true,
        ),
        ("field: status\n    not_equals: SALE", json!({}), true),
        (
            "field: status\n    not_equals: SALE",
            json!({"status": "SALE"}),
            false,
        ),
        (
            "field: status\n    in: [SALE, APPT]",
            json!({"status": "APPT"}),
            true,
        ),
        (
            "field: status\n    in: [SALE, APPT]",
            json!({"status": "NI"}),
            false,
        ),
        (
            "field: campaign\n    in: [\"1042\"]",
            json!({"campaign": 1042}),
            true,
        ),
        (
            "field: status\n    in: [sale]\n    ignore_case: true",
            json!({"status": "SALE"}),
            true,
        ),
        (
            "field: status\n    not_in: [SALE, APPT]",
            json!({"status": "NI"}),
            true,
        ),
        (
            "field: status\n    not_in: [SALE, APPT]",
            json!({"status": "SALE"}),
            false,
        ),
        ("field: secs\n    gt: 30", json!({"secs": "31"}), true),
        ("field: secs\n    gt: 30", json!({"secs": 30}), false),
        ("field: secs\n    gte: 30", json!({"secs": "30"}), true),
        ("field: secs\n    gte: 30", json!({"secs": "100"}), true),
        ("field: secs\n    gte: 30", json!({"secs": "9"}), false),
        ("field: secs\n    gte: 30", json!({}), false),
        ("field: secs\n    lt: 30", json!({"secs": 29.5}), true),
        ("field: secs\n    lt: 30", json!({"secs": "abc"}), false),
        ("field: secs\n    lte: 30", json!({"secs": "30"}), true),
        (
            "field: day\n    gte: \"2024-03-01\"",
            json!({"day": "2024-03-15"}),
            true,
        ),
        (
            "field: day\n    gte: \"2024-03-01\"",
            json!({"day": "2024-02-28"}),
            false,
        ),
        (
            "field: secs\n    between: [30, 60]",
            json!({"secs": "30"}),
            true,
        ),
        (
            "field: secs\n    between: [30, 60]",
            json!({"secs": 60}),
            true,
        ),
        (
            "field: secs\n    between: [30, 60]",
            json!({"secs": 61}),
            false,
        ),
        (
            "field: note\n    contains: refi",
            json!({"note": "wants a refi quote"}),
            true,
        ),
        (
            "field: note\n    contains: REFI\n    ignore_case: true",
            json!({"note": "wants a refi quote"}),
            true,
        ),
        (
            "field: note\n    contains: REFI",
            json!({"note": "wants a refi quote"}),
            false,
        ),
        (
            "field: tags\n    contains: vip",
            json!({"tags": ["new", "vip"]}),
            true,
        ),
        (
            "field: tags\n    contains: vi",
            json!({"tags": ["new", "vip"]}),
            false,
        ),
        (
            "field: note\n    not_contains: refi",
            json!({"note": "purchase"}),
            true,
        ),
        (
            "field: note\n    not_contains: refi",
            json!({"note": "a refi"}),
            false,
        ),
        (
            "field: phone\n    starts_with: \"+1\"",
            json!({"phone": "+15551234567"}),
            true,
        ),
        (
            "field: phone\n    starts_with: \"+44\"",
            json!({"phone": "+15551234567"}),
            false,
        ),
        (
            "field: email\n    ends_with: \"@EXAMPLE.com\"\n    ignore_case: true",
            json!({"email": "a@example.COM"}),
            true,
        ),
        (
            "field: email\n    ends_with: \"@example.com\"",
            json!({"email": "a@example.org"}),
            false,
        ),
        (
            "field: phone\n    matches: '^\\+1\\d{10}$'",
            json!({"phone": "+15551234567"}),
            true,
        ),
        (
            "field: phone\n    matches: '^\\+1\\d{10}$'",
            json!({"phone": "5551234567"}),
            false,
        ),
        (
            "field: code\n    matches: '^abc'\n    ignore_case: true",
            json!({"code": "ABCdef"}),
            true,
        ),
        (
            "field: email\n    is_blank: true",
            json!({"email": "  "}),
            true,
        ),
        ("field: email\n    is_blank: true", json!({}), true),
        (
            "field: email\n    is_blank: true",
            json!({"email": null}),
            true,
        ),
        (
            "field: email\n    is_blank: false",
            json!({"email": "a@b.c"}),
            true,
        ),
        (
            "field: email\n    is_blank: false",
            json!({"email": ""}),
            false,
        ),
        (
            "field: secs\n    is_numeric: true",
            json!({"secs": "45"}),
            true,
        ),
        (
            "field: secs\n    is_numeric: true",
            json!({"secs": "45s"}),
            false,
        ),
        (
            "field: secs\n    is_numeric: false",
            json!({"secs": "n/a"}),
            true,
        ),
        ("field: email\n    exists: true", json!({"email": ""}), true),
        ("field: email\n    exists: true", json!({}), false),
        ("field: email\n    exists: false", json!({}), true),
        (
            "field: called\n    within: 24h",
            json!({"called": "2026-11-21T09:00:00Z"}),
            true,
        ),
        (
            "field: called\n    within: 24h",
            json!({"called": "2026-11-19 09:00:00"}),
            false,
        ),
        (
            "field: called\n    within: 1h",
            json!({"called": 1_795_255_000}),
            true,
        ),
        (
            "field: called\n    within: 24h",
            json!({"called": "yesterday"}),
            false,
        ),
        (
            "field: lead.lead_phone\n    starts_with: \"+46\"",
            json!({"lead": {"lead_phone": "+4670"}}),
            true,
        ),
        (
            "field: \"$.lead.custom_params['utm source']\"\n    equals: google",
            json!({"lead": {"custom_params": {"utm source": "google"}}}),
            true,
        ),
        ("field: \"@source\"\n    equals: api", json!({}), true),
    ];
    let mut wrong = Vec::new();
    for (trigger, data, expected) in &cases {
        let engine = with_trigger(trigger);
        if fires(&engine, "call.disposition", data.clone()) != *expected {
            wrong.push(format!("{trigger} with {data}: expected {expected}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn every_active_trigger_must_match_and_inactive_ones_are_ignored() {
    let dir = ConfigDir::new(&[
        ENDPOINT,
        (
            "workflows/w.yaml",
            "when:\n  - event: call.disposition\n  - field: status\n    equals: SALE\n  - field: secs\n    gte: 30\n  - field: email\n    is_blank: false\n    active: false\nactions:\n  - endpoint: hook\n",
        ),
    ]);
    let engine = dir.engine();
    assert!(fires(
        &engine,
        "call.disposition",
        json!({"status": "SALE", "secs": 45})
    ));
    assert!(!fires(
        &engine,
        "call.disposition",
        json!({"status": "SALE", "secs": 12})
    ));
    assert!(!fires(
        &engine,
        "call.disposition",
        json!({"status": "NI", "secs": 45})
    ));
    assert!(!fires(
        &engine,
        "lead.created",
        json!({"status": "SALE", "secs": 45})
    ));
}

#[test]
fn inactive_workflows_never_fire() {
    let dir = ConfigDir::new(&[
        ENDPOINT,
        (
            "workflows/w.yaml",
            "active: false\nwhen:\n  - event: call.disposition\nactions:\n  - endpoint: hook\n",
        ),
    ]);
    let engine = dir.engine();
    assert!(!fires(&engine, "call.disposition", json!({})));
    let run = engine.dry_run(&event("call.disposition", json!({})), now());
    assert_eq!(
        run.workflows[0].reasons,
        vec!["workflow is inactive (active: false)"]
    );
}

#[test]
fn event_type_lists_and_prefix_globs() {
    let engine = with_trigger("event: [start_call, end_call, \"lead.*\"]");
    for kind in ["start_call", "end_call", "lead.created", "lead.landing.fb"] {
        assert!(fires(&engine, kind, json!({})), "{kind}");
    }
    for kind in ["call.disposition", "lead", "start_calls"] {
        assert!(!fires(&engine, kind, json!({})), "{kind}");
    }
    let any = with_trigger("event: \"*\"");
    assert!(fires(&any, "anything.at.all", json!({})));
    // A workflow with only field triggers runs for every type.
    let untyped = with_trigger("field: status\n    equals: SALE");
    assert!(fires(&untyped, "x", json!({"status": "SALE"})));
}

#[test]
fn two_event_triggers_must_both_match() {
    let dir = ConfigDir::new(&[
        ENDPOINT,
        (
            "workflows/w.yaml",
            "when:\n  - event: \"call.*\"\n  - event: [call.end, lead.new]\nactions:\n  - endpoint: hook\n",
        ),
    ]);
    let engine = dir.engine();
    assert!(fires(&engine, "call.end", json!({})));
    assert!(!fires(&engine, "call.start", json!({})));
    assert!(!fires(&engine, "lead.new", json!({})));
}

#[test]
fn workflows_fire_in_name_order_with_actions_in_order() {
    let dir = ConfigDir::new(&[
        ENDPOINT,
        (
            "endpoints/other.yaml",
            "url: https://other.example.com/\nmethod: DELETE\n",
        ),
        (
            "workflows/b.yaml",
            "when:\n  - event: x\nactions:\n  - endpoint: other\n  - endpoint: hook\n",
        ),
        (
            "workflows/a.yaml",
            "when:\n  - event: \"*\"\nactions:\n  - endpoint: hook\n    delay: 5m\n",
        ),
    ]);
    let planned = dir.engine().process(&event("x", json!({})), now());
    let order: Vec<(String, String)> = planned
        .iter()
        .map(|p| (p.workflow.clone(), p.endpoint.clone()))
        .collect();
    assert_eq!(
        order,
        vec![
            ("a".into(), "hook".into()),
            ("b".into(), "other".into()),
            ("b".into(), "hook".into())
        ]
    );
    assert_eq!(planned[0].delay, Some(std::time::Duration::from_secs(300)));
}

#[test]
fn explanations_name_the_failing_trigger_and_the_value_seen() {
    let dir = ConfigDir::new(&[
        ENDPOINT,
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\n  - field: status\n    in: [SALE, APPT]\n  - field: length_in_sec\n    gte: 30\n  - field: email\n    is_blank: false\nactions:\n  - endpoint: hook\n",
        ),
        (
            "workflows/leads.yaml",
            "when:\n  - event: lead.created\nactions:\n  - endpoint: hook\n",
        ),
    ]);
    let engine = dir.engine();
    let run = engine.dry_run(
        &event(
            "call.disposition",
            json!({"status": "SALE", "length_in_sec": "12"}),
        ),
        now(),
    );
    let leads = &run.workflows[0];
    assert_eq!((leads.name.as_str(), leads.matched), ("leads", false));
    assert_eq!(
        leads.reasons,
        vec!["event type \"call.disposition\", expected lead.created"]
    );
    let sale = &run.workflows[1];
    assert!(!sale.matched);
    assert_eq!(
        sale.reasons,
        vec![
            "length_in_sec = \"12\", expected >= 30",
            "email = missing, expected not blank"
        ]
    );
    let run = engine.dry_run(
        &event(
            "call.disposition",
            json!({"status": "APPT", "length_in_sec": 95, "email": "a@b.c"}),
        ),
        now(),
    );
    assert!(run.workflows[1].matched);
    assert_eq!(
        run.workflows[1].reasons,
        vec![
            "event type \"call.disposition\" matches call.disposition",
            "status = \"APPT\" (in [\"SALE\", \"APPT\"])",
            "length_in_sec = 95 (>= 30)",
            "email = \"a@b.c\" (not blank)",
        ]
    );
    assert_eq!(run.requests.len(), 1);
}
