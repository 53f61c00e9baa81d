//! Sending windows (`window:` on an action) against a real receiver on 127.0.0.1, with the
//! dispatcher's own clock set to the days that matter: a delivery accepted outside its
//! window waits (a `waiting` entry) and is sent at the opening, on both sides of New York's
//! 2026 daylight saving changes; a retry that would fall outside is moved to the opening;
//! a zone from the event, and an unknown one. Then how `validate`, `render` and `test` (the
//! real binary) show windows.

mod common;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::receiver::{Receiver, Reply};
use common::{ConfigDir, cli};
use serde_json::json;
use switchboard::dispatch::{Clock, Dispatcher, NetworkPolicy};
use switchboard::engine::event::event_from_value;
use switchboard::store::{
    Delivery, DeliveryId, DeliveryState, LogEntry, LogQuery, NewEvent, Outcome, SledStore, Store,
};

const WEEKDAYS_NY: &str = "    window:\n      days: [mon, tue, wed, thu, fri]\n      from: \"09:00\"\n      to: \"20:00\"\n      timezone: America/New_York\n";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("time")
}

struct Setup {
    _config: ConfigDir,
    _data: tempfile::TempDir,
    dispatcher: Arc<Dispatcher>,
    engine: switchboard::dispatch::EngineCell,
    clock: Clock,
}

fn config(url: &str, endpoint_extra: &str, window: &str) -> ConfigDir {
    ConfigDir::new(&[
        (
            "adaptors/lead.yaml",
            "fields:\n  - {from: phone, to: phone}\n",
        ),
        (
            "endpoints/crm.yaml",
            &format!("url: {url}\nadaptor: lead\n{endpoint_extra}"),
        ),
        (
            "workflows/w.yaml",
            &format!("when:\n  - event: lead\nactions:\n  - endpoint: crm\n{window}"),
        ),
    ])
}

fn setup(url: &str, endpoint_extra: &str, window: &str) -> Setup {
    let config = config(url, endpoint_extra, window);
    let engine: switchboard::dispatch::EngineCell =
        Arc::new(RwLock::new(Arc::new(config.engine())));
    let data = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(data.path()).expect("open store"));
    let clock = Clock::new();
    let dispatcher = Dispatcher::new(
        store,
        engine.clone(),
        NetworkPolicy::default(),
        clock.clone(),
        "test-node".into(),
    );
    Setup {
        _config: config,
        _data: data,
        dispatcher,
        engine,
        clock,
    }
}

impl Setup {
    /// Accepts an event at the clock's time, as the runtime does; returns its delivery.
    async fn accept(&self, id: &str, data: serde_json::Value) -> DeliveryId {
        let now = self.clock.now();
        let event = event_from_value(json!({"type": "lead", "id": id, "data": data}), None, now)
            .expect("event");
        let engine = self.dispatcher.engine();
        let new = NewEvent {
            matches: engine.matches(&event, now),
            keys: engine.audit_keys(&event),
            limits: Vec::new(),
            event,
        };
        let accepted = self
            .dispatcher
            .store()
            .accept(vec![new], now)
            .await
            .expect("accept");
        accepted[0].deliveries[0].id.clone()
    }

    /// Runs the dispatcher until the delivery is finished or waits; returns it and its
    /// entries, oldest first.
    async fn settle(&self, id: &DeliveryId) -> (Delivery, Vec<LogEntry>) {
        let delivery = self
            .dispatcher
            .settle(std::slice::from_ref(id), Duration::ZERO, &|_| {})
            .await
            .expect("settle")
            .remove(0);
        let query = LogQuery {
            delivery: Some(id.clone()),
            after: Some(String::new()),
            ..LogQuery::default()
        };
        let entries = self
            .dispatcher
            .store()
            .search(&query)
            .await
            .expect("search");
        (delivery, entries)
    }
}

/// Accepted on a Saturday, the delivery waits for Monday 09:00 in New York, told by an
/// entry that makes no attempt; sent once the clock reaches the opening.
async fn waits_for_monday(saturday: &str, monday_nine: &str, opening: &str) {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let s = setup(&rx.url("/leads"), "", WEEKDAYS_NY);
    s.clock.set(t(saturday));
    let id = s.accept("ev-sat", json!({"phone": "+15550100"})).await;
    let (delivery, entries) = s.settle(&id).await;
    assert_eq!(delivery.state, DeliveryState::Pending);
    assert_eq!(delivery.due_at, Some(t(monday_nine)));
    assert_eq!(delivery.attempts, 0, "waiting is no attempt");
    assert!(
        rx.requests().is_empty(),
        "nothing is sent outside the window"
    );
    let [entry] = entries.as_slice() else {
        panic!("one waiting entry: {entries:#?}")
    };
    assert_eq!(entry.outcome, Outcome::Retrying);
    assert_eq!(
        (entry.attempt, &entry.error, &entry.request),
        (0, &None, &None)
    );
    assert_eq!(entry.next_attempt_at, Some(t(monday_nine)));
    assert_eq!(
        entry.waiting.as_deref(),
        Some(
            format!(
                "outside its window (mon–fri 09:00–20:00 America/New_York): waits until it opens {opening}"
            )
            .as_str()
        )
    );
    // One second before the opening, still nothing.
    s.clock.set(t(monday_nine) - chrono::Duration::seconds(1));
    let (delivery, _) = s.settle(&id).await;
    assert_eq!(delivery.state, DeliveryState::Pending);
    assert!(rx.requests().is_empty());
    s.clock
        .set(t(monday_nine) + chrono::Duration::milliseconds(10));
    let (delivery, entries) = s.settle(&id).await;
    assert_eq!(delivery.state, DeliveryState::Delivered);
    assert_eq!(rx.requests().len(), 1);
    let last = entries.last().expect("entries");
    assert_eq!((last.attempt, last.outcome), (1, Outcome::Delivered));
    assert_eq!(last.waiting, None);
}

#[tokio::test]
async fn a_delivery_accepted_outside_its_window_waits_across_the_spring_forward() {
    // Saturday 2026-03-07 10:00 EST; New York springs forward on Sunday 03-08: Monday
    // 09:00 is EDT, UTC-4.
    waits_for_monday(
        "2026-03-07T15:00:00Z",
        "2026-03-09T13:00:00Z",
        "Monday 09:00 EDT",
    )
    .await;
}

#[tokio::test]
async fn a_delivery_accepted_outside_its_window_waits_across_the_fall_back() {
    // Saturday 2026-10-31 11:00 EDT; New York falls back on Sunday 11-01: Monday 09:00 is
    // EST, UTC-5.
    waits_for_monday(
        "2026-10-31T15:00:00Z",
        "2026-11-02T14:00:00Z",
        "Monday 09:00 EST",
    )
    .await;
}

#[tokio::test]
async fn a_delivery_inside_its_window_goes_at_once() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let s = setup(&rx.url("/leads"), "", WEEKDAYS_NY);
    // Monday 2026-03-09 19:59 EDT.
    s.clock.set(t("2026-03-09T23:59:00Z"));
    let id = s.accept("ev-in", json!({"phone": "+15550100"})).await;
    let (delivery, entries) = s.settle(&id).await;
    assert_eq!(delivery.state, DeliveryState::Delivered);
    assert_eq!(entries.len(), 1);
    assert_eq!(rx.requests().len(), 1);
}

#[tokio::test]
async fn a_retry_that_would_fall_after_closing_waits_for_the_next_opening() {
    let rx = Receiver::start(vec![Reply::Status(503)], Reply::Status(200)).await;
    let s = setup(&rx.url("/leads"), "retry: {schedule: [10m]}\n", WEEKDAYS_NY);
    // Monday 2026-03-09 19:55 EDT: the retry, 10 minutes ±20% later, is after 20:00.
    s.clock.set(t("2026-03-09T23:55:00Z"));
    let id = s.accept("ev-late", json!({"phone": "+15550100"})).await;
    let (delivery, entries) = s.settle(&id).await;
    assert_eq!(delivery.state, DeliveryState::Pending);
    let [entry] = entries.as_slice() else {
        panic!("{entries:#?}")
    };
    assert_eq!((entry.attempt, entry.outcome), (1, Outcome::Retrying));
    assert_eq!(entry.response.as_ref().map(|r| r.status), Some(503));
    // Tuesday 09:00 EDT.
    assert_eq!(entry.next_attempt_at, Some(t("2026-03-10T13:00:00Z")));
    assert_eq!(delivery.due_at, entry.next_attempt_at);
    assert!(
        entry
            .waiting
            .as_deref()
            .is_some_and(|w| w.ends_with("waits until it opens Tuesday 09:00 EDT")),
        "{entry:#?}"
    );
    // Where the schedule put it (20:03 to 20:07), nothing goes.
    s.clock.set(t("2026-03-10T00:08:00Z"));
    let (delivery, _) = s.settle(&id).await;
    assert_eq!(
        (delivery.state, rx.requests().len()),
        (DeliveryState::Pending, 1)
    );
    s.clock.set(t("2026-03-10T13:00:00.010Z"));
    let (delivery, entries) = s.settle(&id).await;
    assert_eq!(delivery.state, DeliveryState::Delivered);
    assert_eq!(rx.requests().len(), 2);
    assert_eq!(entries.last().map(|e| e.attempt), Some(2));
}

#[tokio::test]
async fn a_queued_retry_meets_the_window_a_reload_added() {
    let rx = Receiver::start(vec![Reply::Status(503)], Reply::Status(200)).await;
    let s = setup(&rx.url("/leads"), "retry: {schedule: [1h]}\n", "");
    // Friday 2026-03-06 19:30 EST: fails, retried an hour later (±20%: 20:18 to 20:42).
    s.clock.set(t("2026-03-07T00:30:00Z"));
    let id = s.accept("ev-reload", json!({"phone": "+15550100"})).await;
    let (delivery, _) = s.settle(&id).await;
    assert_eq!(delivery.state, DeliveryState::Pending);
    // The configuration now has a weekday window until 20:00: when the retry falls due
    // (after 20:00 on Friday), nothing is sent; it waits for Monday.
    let reloaded = config(&rx.url("/leads"), "retry: {schedule: [1h]}\n", WEEKDAYS_NY);
    *s.engine.write().unwrap() = Arc::new(reloaded.engine());
    s.clock
        .set(delivery.due_at.unwrap() + chrono::Duration::milliseconds(10));
    let (delivery, entries) = s.settle(&id).await;
    assert_eq!(rx.requests().len(), 1, "nothing sent outside the window");
    assert_eq!(delivery.due_at, Some(t("2026-03-09T13:00:00Z")));
    assert_eq!(delivery.attempts, 1);
    let last = entries.last().unwrap();
    assert_eq!((last.attempt, &last.request), (1, &None));
    assert!(last.waiting.is_some(), "{last:#?}");
}

#[tokio::test]
async fn the_zone_can_come_from_the_event_and_an_unknown_one_reads_as_utc_with_a_warning() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let window = "    window:\n      from: \"09:00\"\n      to: \"17:00\"\n      timezone: \"{{ lead.timezone }}\"\n";
    let s = setup(&rx.url("/leads"), "", window);
    // 2026-11-21 10:00 UTC is 02:00 in Los Angeles: it waits for 09:00 PST (17:00 UTC).
    s.clock.set(t("2026-11-21T10:00:00Z"));
    let id = s
        .accept(
            "ev-la",
            json!({"phone": "+15550100", "lead": {"timezone": "America/Los_Angeles"}}),
        )
        .await;
    let (delivery, entries) = s.settle(&id).await;
    assert_eq!(delivery.due_at, Some(t("2026-11-21T17:00:00Z")));
    assert!(entries[0].warnings.is_empty(), "{:?}", entries[0].warnings);
    assert!(
        entries[0]
            .waiting
            .as_deref()
            .is_some_and(|w| w.contains("every day 09:00–17:00 America/Los_Angeles")),
        "{:?}",
        entries[0].waiting
    );
    // An unknown zone: the window is read in UTC (open at 10:00), and the entry says why.
    let id = s
        .accept(
            "ev-mars",
            json!({"phone": "+15550101", "lead": {"timezone": "Mars/Olympus"}}),
        )
        .await;
    let (delivery, entries) = s.settle(&id).await;
    assert_eq!(delivery.state, DeliveryState::Delivered);
    assert_eq!(
        entries[0].warnings,
        vec![
            "window timezone {{ lead.timezone }}: unknown time zone \"Mars/Olympus\"; the window is read in UTC"
                .to_string()
        ]
    );
}

fn window_config(window: &str) -> ConfigDir {
    ConfigDir::new(&[
        (
            "endpoints/crm.yaml",
            "url: https://crm.example.com/leads\nmethod: GET\n",
        ),
        (
            "workflows/w.yaml",
            &format!("when:\n  - event: lead\nactions:\n  - endpoint: crm\n{window}"),
        ),
    ])
}

#[test]
fn bad_days_times_and_zones_are_load_errors_where_they_are_written() {
    let config = window_config(
        "    window:\n      days: [mon, fry]\n      from: \"9am\"\n      to: \"25:00\"\n      timezone: America/NewYork\n",
    );
    let out = cli()
        .args(["validate", "--config"])
        .arg(config.path())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for (line, message) in [
        (
            "w.yaml:6:",
            "unknown day \"fry\" (known: mon, tue, wed, thu, fri, sat, sun)",
        ),
        ("w.yaml:7:", "\"9am\" is not a time of day"),
        ("w.yaml:8:", "\"25:00\" is not a time of day"),
        (
            "w.yaml:9:",
            "unknown time zone \"America/NewYork\" (did you mean \"America/New_York\"?)",
        ),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(line) && l.contains(message)),
            "{line} {message}:\n{stderr}"
        );
    }
    let same = window_config("    window: {from: \"09:00\", to: \"09:00\"}\n");
    assert!(
        same.errors()
            .iter()
            .any(|e| e.contains("to is the same time as from")),
        "{:?}",
        same.errors()
    );
    let none = window_config("    window: {days: []}\n");
    assert!(
        none.errors().iter().any(|e| e.contains("days is empty")),
        "{:?}",
        none.errors()
    );
    let unknown = window_config("    window: {from: \"09:00\", until: \"17:00\"}\n");
    assert!(
        unknown.errors().iter().any(|e| e.contains("until")),
        "{:?}",
        unknown.errors()
    );
}

#[test]
fn render_explains_the_window_at_its_now_and_test_checks_it() {
    let config = window_config(WEEKDAYS_NY);
    let event = config.path().join("lead.json");
    std::fs::write(&event, r#"{"type": "lead", "id": "ev-1", "data": {}}"#).unwrap();
    let render = |now: &str, json: bool| {
        let mut cmd = cli();
        cmd.args(["render", "--config"])
            .arg(config.path())
            .arg("--event")
            .arg(&event)
            .args(["--now", now]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = render("2026-03-07T15:00:00Z", false);
    assert!(
        text.contains(
            "window: mon–fri 09:00–20:00 America/New_York; due 2026-03-09T13:00:00Z (opens Monday 09:00 EDT)"
        ),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render("2026-03-09T14:00:00Z", true)).unwrap();
    assert_eq!(
        json["requests"][0]["window"],
        "mon–fri 09:00–20:00 America/New_York; open at 2026-03-09T14:00:00Z"
    );

    let test = |expected: &str| {
        std::fs::write(
            config.path().join("workflows/w.test.yaml"),
            format!(
                "tests:\n  - name: a Saturday lead waits for Monday\n    event: {{type: lead, data: {{}}}}\n    now: 2026-10-31T15:00:00Z\n    expect:\n      requests:\n        - endpoint: crm\n          window: \"{expected}\"\n"
            ),
        )
        .unwrap();
        cli()
            .args(["test", "--config"])
            .arg(config.path())
            .output()
            .expect("run")
    };
    let out = test(
        "mon–fri 09:00–20:00 America/New_York; due 2026-11-02T14:00:00Z (opens Monday 09:00 EST)",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = test(
        "mon–fri 09:00–20:00 America/New_York; due 2026-11-02T13:00:00Z (opens Monday 09:00 EDT)",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("requests[0].window: expected")
            && stdout.contains("2026-11-02T14:00:00Z (opens Monday 09:00 EST)"),
        "{stdout}"
    );
}
