//! Durable delivery against real receivers on 127.0.0.1: outcomes, error kinds, attempt
//! counts and retry schedules for every kind of failure, and what the connect log records.
//! Schedules are checked by moving the dispatcher's clock forward, never by sleeping.

mod common;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::receiver::{Receiver, Reply, resetting};
use common::{ConfigDir, event};
use serde_json::json;
use switchboard::Event;
use switchboard::dispatch::{Clock, Dispatcher, NetworkPolicy};
use switchboard::engine::signing::SigningKey;
use switchboard::runtime::{Options, Runtime};
use switchboard::store::record::ErrorKind;
use switchboard::store::{
    Accepted, Delivery, DeliveryState, LogEntry, LogQuery, NewEvent, Outcome, SledStore, Store,
};

const ADAPTOR: (&str, &str) = (
    "adaptors/lead.yaml",
    "fields:\n  - {from: phone, to: phone}\n  - {from: name, to: name}\n",
);
const WORKFLOW: (&str, &str) = (
    "workflows/w.yaml",
    "when:\n  - event: lead\nactions:\n  - endpoint: out\n",
);

struct Setup {
    _config: ConfigDir,
    data: tempfile::TempDir,
    dispatcher: Arc<Dispatcher>,
    clock: Clock,
}

fn setup_with(files: &[(&str, &str)]) -> Setup {
    let config = ConfigDir::new(files);
    let engine = config.engine();
    let data = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(data.path()).expect("open store"));
    let clock = Clock::new();
    let dispatcher = Dispatcher::new(
        store,
        Arc::new(RwLock::new(Arc::new(engine))),
        NetworkPolicy::default(),
        clock.clone(),
        "test-node".into(),
    );
    Setup {
        _config: config,
        data,
        dispatcher,
        clock,
    }
}

fn setup(endpoint: &str) -> Setup {
    setup_with(&[ADAPTOR, WORKFLOW, ("endpoints/out.yaml", endpoint)])
}

impl Setup {
    async fn state(&self, id: &switchboard::store::DeliveryId) -> DeliveryState {
        let d = self.dispatcher.store().delivery(id).await.unwrap();
        d.expect("stored").state
    }

    /// Accepts one event (durably), as the runtime does.
    async fn accept(&self, ev: Event) -> Accepted {
        let engine = self.dispatcher.engine();
        let now = self.clock.now();
        let new = NewEvent {
            matches: engine.matches(&ev, now),
            keys: engine.audit_keys(&ev),
            event: ev,
            limits: Vec::new(),
        };
        self.dispatcher
            .store()
            .accept(vec![new], now)
            .await
            .expect("accept")
            .remove(0)
    }

    /// Accepts an event and runs the dispatcher until its deliveries settle (retries are
    /// left queued); returns each delivery with its attempts, oldest first.
    async fn send(&self, id: &str) -> Vec<(Delivery, Vec<LogEntry>)> {
        let mut ev = event("lead", json!({"phone": "+15551234567", "name": "Ann"}));
        ev.id = switchboard::EventId::new(id);
        let accepted = self.accept(ev).await;
        let ids: Vec<_> = accepted.deliveries.iter().map(|d| d.id.clone()).collect();
        self.settle(&ids).await
    }

    async fn settle(
        &self,
        ids: &[switchboard::store::DeliveryId],
    ) -> Vec<(Delivery, Vec<LogEntry>)> {
        let settled = self
            .dispatcher
            .settle(ids, Duration::ZERO, &|_| {})
            .await
            .expect("settle");
        let mut out = Vec::new();
        for d in settled {
            let entries = self.entries(&d).await;
            out.push((d, entries));
        }
        out
    }

    async fn entries(&self, d: &Delivery) -> Vec<LogEntry> {
        let query = LogQuery {
            delivery: Some(d.id.clone()),
            after: Some(String::new()),
            ..LogQuery::default()
        };
        self.dispatcher
            .store()
            .search(&query)
            .await
            .expect("search")
    }

    /// Moves the clock to just past a delivery's next attempt and runs it.
    async fn next_attempt(&self, d: &Delivery) -> (Delivery, Vec<LogEntry>) {
        let due = d.due_at.expect("a retry is scheduled");
        let wait = due
            .signed_duration_since(self.clock.now())
            .to_std()
            .unwrap_or_default();
        self.clock.advance(wait + Duration::from_millis(10));
        self.settle(std::slice::from_ref(&d.id)).await.remove(0)
    }
}

/// `next_attempt_at - at` is the schedule's delay ±20%.
fn assert_delay(entry: &LogEntry, scheduled: Duration) {
    let next = entry.next_attempt_at.expect("next attempt");
    let delay = next
        .signed_duration_since(entry.at)
        .to_std()
        .expect("in the future");
    let (lo, hi) = (
        scheduled.mul_f64(0.8),
        scheduled.mul_f64(1.2) + Duration::from_millis(2),
    );
    assert!(
        delay >= lo.saturating_sub(Duration::from_millis(2)) && delay <= hi,
        "delay {delay:?} not within ±20% of {scheduled:?}"
    );
}

#[tokio::test]
async fn a_500_is_retried_by_the_schedule_then_delivered() {
    let rx = Receiver::start(
        vec![Reply::Status(500), Reply::Status(503)],
        Reply::Full(
            201,
            vec![("content-type", "application/json".into())],
            r#"{"id": "c-77"}"#.into(),
        ),
    )
    .await;
    let s = setup(&format!(
        "url: {}\nadaptor: lead\nresponse:\n  capture:\n    crm_id: $.id\n",
        rx.url("/leads")
    ));
    let (d, entries) = s.send("ev-500").await.remove(0);
    assert_eq!((d.state, d.attempts), (DeliveryState::Pending, 1));
    let first = &entries[0];
    assert_eq!(first.outcome, Outcome::Retrying);
    let error = first.error.as_ref().expect("error");
    assert_eq!(error.kind, ErrorKind::Status);
    assert!(
        error
            .message
            .starts_with(&format!("HTTP 500 Internal Server Error from {}", rx.addr)),
        "{}",
        error.message
    );
    assert_eq!(first.response.as_ref().map(|r| r.status), Some(500));
    assert_delay(first, Duration::from_secs(5));

    let (d, entries) = s.next_attempt(&d).await;
    assert_eq!((d.state, d.attempts), (DeliveryState::Pending, 2));
    assert_delay(&entries[1], Duration::from_secs(300));

    let (d, entries) = s.next_attempt(&d).await;
    assert_eq!((d.state, d.attempts), (DeliveryState::Delivered, 3));
    let last = &entries[2];
    assert_eq!(
        (last.outcome, last.error.clone(), last.next_attempt_at),
        (Outcome::Delivered, None, None)
    );
    assert_eq!(last.captured.get("crm_id"), Some(&json!("c-77")));
    assert_eq!(last.attempt, 3);
    // Every attempt carries the delivery id and its number.
    let seen = rx.requests();
    assert_eq!(seen.len(), 3);
    for (i, r) in seen.iter().enumerate() {
        assert_eq!(r.header("idempotency-key"), Some(d.id.as_str()));
        assert_eq!(
            r.header("x-switchboard-attempt"),
            Some((i + 1).to_string().as_str())
        );
        assert_eq!(r.body, r#"{"phone":"+15551234567","name":"Ann"}"#);
    }
}

#[tokio::test]
async fn a_422_fails_at_once() {
    let rx = Receiver::start(vec![], Reply::Full(422, vec![], "phone is invalid".into())).await;
    let s = setup(&format!("url: {}\nadaptor: lead\n", rx.url("/leads")));
    let (d, entries) = s.send("ev-422").await.remove(0);
    assert_eq!(
        (d.state, d.attempts, entries.len()),
        (DeliveryState::Failed, 1, 1)
    );
    let error = entries[0].error.clone().expect("error");
    assert_eq!(error.kind, ErrorKind::Status);
    assert_eq!(
        error.message,
        format!(
            "HTTP 422 Unprocessable Entity from {}: phone is invalid (not retried: 422 is not in retry_on [408, 429, 500-599])",
            rx.addr
        )
    );
    assert_eq!(entries[0].next_attempt_at, None);
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let rx = Receiver::start(
        vec![Reply::Full(
            429,
            vec![("retry-after", "120".into())],
            String::new(),
        )],
        Reply::Status(200),
    )
    .await;
    let s = setup(&format!("url: {}\nadaptor: lead\n", rx.url("/")));
    let (d, entries) = s.send("ev-429").await.remove(0);
    assert_eq!(entries[0].outcome, Outcome::Retrying);
    let delay = entries[0]
        .next_attempt_at
        .unwrap()
        .signed_duration_since(entries[0].at)
        .num_seconds();
    assert!(
        (119..=121).contains(&delay),
        "waited {delay}s, not Retry-After's 120s"
    );
    let (d, _) = s.next_attempt(&d).await;
    assert_eq!((d.state, d.attempts), (DeliveryState::Delivered, 2));
}

#[tokio::test]
async fn a_stalled_receiver_times_out_and_is_retried() {
    let rx = Receiver::start(
        vec![Reply::Stall(Duration::from_secs(5))],
        Reply::Status(204),
    )
    .await;
    let s = setup(&format!(
        "url: {}\nadaptor: lead\ntimeout: 300ms\n",
        rx.url("/")
    ));
    let (d, entries) = s.send("ev-stall").await.remove(0);
    let error = entries[0].error.clone().expect("error");
    assert_eq!(error.kind, ErrorKind::Timeout);
    assert_eq!(
        error.message,
        format!(
            "no response from {} within 300ms (the endpoint's timeout)",
            rx.addr
        )
    );
    assert_eq!(
        (entries[0].outcome, entries[0].response.clone()),
        (Outcome::Retrying, None)
    );
    let (d, _) = s.next_attempt(&d).await;
    assert_eq!(d.state, DeliveryState::Delivered);
}

#[tokio::test]
async fn a_reset_connection_is_a_connect_error_and_retried() {
    let addr = resetting().await;
    let s = setup(&format!(
        "url: http://{addr}/\nadaptor: lead\nretry:\n  schedule: [1s]\n"
    ));
    let (d, entries) = s.send("ev-reset").await.remove(0);
    let error = entries[0].error.clone().expect("error");
    assert_eq!(error.kind, ErrorKind::Connect);
    assert!(
        error.message.starts_with(&format!(
            "{addr} closed the connection before a complete response"
        )),
        "{}",
        error.message
    );
    assert_eq!(entries[0].outcome, Outcome::Retrying);
    // The schedule has one retry: the second failure ends the delivery.
    let (d, entries) = s.next_attempt(&d).await;
    assert_eq!((d.state, d.attempts), (DeliveryState::Failed, 2));
    assert!(
        entries[1]
            .error
            .as_ref()
            .unwrap()
            .message
            .ends_with("; gave up after 2 attempts (retry.schedule has 1 retry)")
    );
}

#[tokio::test]
async fn a_receiver_that_is_not_listening_is_refused_and_retried() {
    let s = setup("url: http://127.0.0.1:1/\nadaptor: lead\n");
    let (d, entries) = s.send("ev-refused").await.remove(0);
    assert_eq!(d.state, DeliveryState::Pending);
    let error = entries[0].error.clone().expect("error");
    assert_eq!(error.kind, ErrorKind::Connect);
    assert_eq!(
        error.message,
        "connection refused by 127.0.0.1:1: is the receiver running and reachable?"
    );
    assert_eq!(entries[0].response, None);
    assert_delay(&entries[0], Duration::from_secs(5));
}

#[tokio::test]
async fn an_endpoint_that_does_not_answer_is_paused_and_probed_until_it_answers() {
    // A port that is bound but not listening refuses connections until it listens.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let addr = socket.local_addr().expect("addr");
    let s = setup(&format!(
        "url: http://{addr}/\nadaptor: lead\nconcurrency: 1\n"
    ));
    let mut ids = Vec::new();
    for i in 0..20 {
        let mut ev = event("lead", json!({"phone": "+15551234567", "name": "Ann"}));
        ev.id = switchboard::EventId::new(format!("ev-down-{i}"));
        let accepted = s.accept(ev).await;
        ids.extend(accepted.deliveries.iter().map(|d| d.id.clone()));
    }
    let attempts = |settled: &[(Delivery, Vec<LogEntry>)]| -> u32 {
        settled.iter().map(|(d, _)| d.attempts).sum()
    };

    // Five refusals in a row pause the endpoint; the other fifteen wait without an attempt.
    let settled = s.settle(&ids).await;
    assert_eq!(attempts(&settled), 5);
    assert!(
        settled
            .iter()
            .all(|(d, _)| d.state == DeliveryState::Pending)
    );
    assert_eq!(settled.iter().filter(|(d, _)| d.attempts == 0).count(), 15);
    assert_eq!(s.dispatcher.paused(), vec!["out".to_string()]);

    // One probe after 1 s, the next 2 s after that.
    s.clock.advance(Duration::from_millis(1100));
    assert_eq!(attempts(&s.settle(&ids).await), 6);
    s.clock.advance(Duration::from_millis(1100));
    assert_eq!(attempts(&s.settle(&ids).await), 6);
    s.clock.advance(Duration::from_millis(1000));
    assert_eq!(attempts(&s.settle(&ids).await), 7);

    // The receiver comes up: the next probe is answered and every delivery goes through.
    let rx = Receiver::start_on(
        socket.listen(64).expect("listen"),
        vec![],
        Reply::Status(200),
    );
    s.clock.advance(Duration::from_secs(20));
    let settled = s.settle(&ids).await;
    assert!(
        settled
            .iter()
            .all(|(d, _)| d.state == DeliveryState::Delivered),
        "{:?}",
        settled.iter().map(|(d, _)| d.state).collect::<Vec<_>>()
    );
    assert_eq!(rx.requests().len(), 20);
    assert_eq!(attempts(&settled), 27);
    assert!(s.dispatcher.paused().is_empty());
}

#[tokio::test]
async fn the_network_policy_blocks_metadata_addresses_without_retrying() {
    let s = setup("url: http://169.254.169.254/latest/meta-data\nadaptor: lead\n");
    let (d, entries) = s.send("ev-blocked").await.remove(0);
    assert_eq!((d.state, d.attempts), (DeliveryState::Failed, 1));
    let error = entries[0].error.clone().expect("error");
    assert_eq!(error.kind, ErrorKind::Blocked);
    assert!(
        error
            .message
            .contains("blocked by the outbound network policy"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn inactive_endpoints_are_logged_as_skipped() {
    let s = setup("url: http://127.0.0.1:1/\nadaptor: lead\nactive: false\n");
    let (d, entries) = s.send("ev-inactive").await.remove(0);
    assert_eq!(d.state, DeliveryState::Skipped);
    assert_eq!(entries[0].outcome, Outcome::Skipped);
    assert_eq!(
        entries[0].error.as_ref().map(|e| e.kind),
        Some(ErrorKind::Inactive)
    );
    assert_eq!(entries[0].request, None);
}

#[tokio::test]
async fn response_checks_decide_success() {
    let rx = Receiver::start(
        vec![Reply::Full(
            200,
            vec![("content-type", "application/json".into())],
            r#"{"result": "false"}"#.into(),
        )],
        Reply::Full(
            200,
            vec![("content-type", "application/json".into())],
            r#"{"result": "true", "lead": {"id": 9}}"#.into(),
        ),
    )
    .await;
    let s = setup(&format!(
        "url: {}\nadaptor: lead\nresponse:\n  success_key: result\n  success_value: \"true\"\n  capture:\n    lead: lead.id\n",
        rx.url("/")
    ));
    let (d, entries) = s.send("ev-check").await.remove(0);
    let error = entries[0].error.clone().expect("error");
    assert_eq!(error.kind, ErrorKind::ResponseCheck);
    assert_eq!(
        error.message,
        "HTTP 200, but the response's success_key is \"false\", expected \"true\""
    );
    let (d, entries) = s.next_attempt(&d).await;
    assert_eq!(d.state, DeliveryState::Delivered);
    assert_eq!(entries[1].captured.get("lead"), Some(&json!(9)));
}

#[tokio::test]
async fn requests_are_signed_and_credentials_never_logged() {
    let rx = Receiver::start(vec![], Reply::Status(202)).await;
    let s = setup(&format!(
        "url: {}\nadaptor: lead\nauth:\n  type: bearer\n  token: ${{TEST_TOKEN}}\nsigning:\n  secret: ${{TEST_SIGNING}}\n",
        rx.url("/hook")
    ));
    let (d, entries) = s.send("ev-signed").await.remove(0);
    assert_eq!(d.state, DeliveryState::Delivered);
    let r = &rx.requests()[0];
    assert_eq!(r.header("authorization"), Some("Bearer tok-123+/="));
    let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    assert_eq!(r.header("webhook-id"), Some(d.id.as_str()));
    assert!(key.verify(
        d.id.as_str(),
        ts,
        r.body.as_bytes(),
        r.header("webhook-signature").unwrap()
    ));
    let logged = entries[0].request.clone().expect("request");
    assert_eq!(
        logged.headers.get("Authorization").map(String::as_str),
        Some("***")
    );
    assert_eq!(
        logged.headers.get("webhook-signature").map(String::as_str),
        Some("***")
    );
    // Nothing in the data folder holds the token or the signing secret.
    s.dispatcher.store().flush().await.unwrap();
    for file in walk(s.data.path()) {
        let bytes = std::fs::read(&file).unwrap();
        for secret in ["tok-123+/=", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in {}",
                file.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path))
        } else {
            files.push(path)
        }
    }
    files
}

#[tokio::test]
async fn one_slow_endpoint_does_not_hold_back_another_and_concurrency_is_kept() {
    let slow = Receiver::start(vec![], Reply::Stall(Duration::from_millis(400))).await;
    let fast = Receiver::start(vec![], Reply::Status(200)).await;
    let s = setup_with(&[
        ADAPTOR,
        (
            "endpoints/slow.yaml",
            &format!("url: {}\nadaptor: lead\nconcurrency: 2\n", slow.url("/")),
        ),
        (
            "endpoints/fast.yaml",
            &format!("url: {}\nadaptor: lead\n", fast.url("/")),
        ),
        (
            "workflows/w.yaml",
            "when:\n  - event: lead\nactions:\n  - endpoint: slow\n  - endpoint: fast\n",
        ),
    ]);
    let mut ids = Vec::new();
    for i in 0..6 {
        let mut ev = event("lead", json!({"phone": format!("+1555000{i}")}));
        ev.id = switchboard::EventId::new(format!("ev-{i}"));
        let accepted = s.accept(ev).await;
        ids.extend(accepted.deliveries.into_iter().map(|d| (d.endpoint, d.id)));
    }
    let fast_ids: Vec<_> = ids
        .iter()
        .filter(|(e, _)| e == "fast")
        .map(|(_, id)| id.clone())
        .collect();
    let all: Vec<_> = ids.iter().map(|(_, id)| id.clone()).collect();
    let runner = {
        let s = s.dispatcher.clone();
        let all = all.clone();
        tokio::spawn(async move { s.settle(&all, Duration::ZERO, &|_| {}).await })
    };
    // The fast endpoint's six deliveries are all done while the slow one still has work
    // (it needs three rounds of 400 ms): nothing about the fast lane waits for the slow one.
    loop {
        let mut done = true;
        for id in &fast_ids {
            done &= s.state(id).await == DeliveryState::Delivered;
        }
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut slow_delivered = 0;
    for (e, id) in &ids {
        if e == "slow" && s.state(id).await == DeliveryState::Delivered {
            slow_delivered += 1;
        }
    }
    assert!(
        slow_delivered < 6,
        "the fast endpoint finished only after the slow one"
    );
    let settled = runner.await.unwrap().unwrap();
    assert!(settled.iter().all(|d| d.state == DeliveryState::Delivered));
    assert_eq!(slow.requests().len(), 6);
    assert_eq!(
        slow.most_at_once(),
        2,
        "concurrency: 2 is the most in flight"
    );
}

#[tokio::test]
async fn rate_limits_space_out_requests() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let s = setup(&format!(
        "url: {}\nadaptor: lead\nrate_limit: 10/s\n",
        rx.url("/")
    ));
    let started = std::time::Instant::now();
    let mut ids = Vec::new();
    for i in 0..15 {
        let mut ev = event("lead", json!({"phone": "1"}));
        ev.id = switchboard::EventId::new(format!("rl-{i}"));
        ids.extend(s.accept(ev).await.deliveries.into_iter().map(|d| d.id));
    }
    let settled = s
        .dispatcher
        .settle(&ids, Duration::ZERO, &|_| {})
        .await
        .unwrap();
    assert!(settled.iter().all(|d| d.state == DeliveryState::Delivered));
    // A burst of 10, then 5 more at 10/s: at least 0.4 s.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn replay_sends_a_delivery_again_as_a_new_attempt() {
    let rx = Receiver::start(vec![Reply::Status(400)], Reply::Status(200)).await;
    let s = setup(&format!("url: {}\nadaptor: lead\n", rx.url("/")));
    let (d, _) = s.send("ev-replay").await.remove(0);
    assert_eq!(d.state, DeliveryState::Failed);
    s.dispatcher
        .store()
        .replay(std::slice::from_ref(&d.id), s.clock.now())
        .await
        .unwrap();
    let (d, entries) = s.settle(std::slice::from_ref(&d.id)).await.remove(0);
    assert_eq!(
        (d.state, d.attempts, entries.len()),
        (DeliveryState::Delivered, 2, 2)
    );
    assert_eq!(entries[1].attempt, 2);
    assert_eq!(
        rx.requests()[1].header("idempotency-key"),
        Some(d.id.as_str())
    );
}

#[tokio::test]
async fn duplicates_are_acknowledged_and_not_run_again() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let s = setup(&format!("url: {}\nadaptor: lead\n", rx.url("/")));
    let first = s.send("ev-dup").await;
    let again = s.send("ev-dup").await;
    assert_eq!(first[0].0.id, again[0].0.id);
    assert_eq!(rx.requests().len(), 1);
}

/// A replay while an attempt is in flight wins: the attempt is logged, the replay is
/// sent once after it, and no queue entry is left behind.
#[tokio::test]
async fn a_replay_during_an_attempt_in_flight_is_sent_once_after_it() {
    // The first answer comes after 300 ms (a 200); every later one is a 500.
    let slow = Receiver::start(
        vec![Reply::Stall(Duration::from_millis(300))],
        Reply::Status(500),
    )
    .await;
    let s = setup(&format!(
        "url: {}\nadaptor: lead\nconcurrency: 1\n",
        slow.url("/")
    ));
    let mut ev = event("lead", json!({"phone": "1"}));
    ev.id = switchboard::EventId::new("ev-race");
    let id = s.accept(ev).await.deliveries[0].id.clone();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(s.dispatcher.clone().run(stopped, Duration::from_secs(5)));
    s.dispatcher.wake();
    while slow.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The first attempt is waiting for its answer.
    s.dispatcher
        .store()
        .replay(std::slice::from_ref(&id), s.clock.now())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while slow.requests().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the replay was dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    while s
        .dispatcher
        .store()
        .delivery(&id)
        .await
        .unwrap()
        .unwrap()
        .attempts
        < 2
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Give a stuck queue entry the chance to cause more sends: there must be none.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(true).unwrap();
    runner.await.unwrap();
    let d = s.dispatcher.store().delivery(&id).await.unwrap().unwrap();
    assert_eq!(
        slow.requests().len(),
        2,
        "sent exactly twice: the attempt and the replay"
    );
    assert_eq!(d.attempts, 2);
    assert_eq!(
        s.dispatcher.store().queue_depth(),
        usize::from(d.state == DeliveryState::Pending)
    );
    let entries = s.entries(&d).await;
    assert_eq!(entries.len(), 2);
}

#[tokio::test]
async fn a_reload_applies_a_new_rate_limit_to_deliveries_still_waiting_for_it() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let endpoint =
        |rate: &str| format!("url: {}\nadaptor: lead\nrate_limit: {rate}\n", rx.url("/"));
    let config = ConfigDir::new(&[ADAPTOR, WORKFLOW, ("endpoints/out.yaml", &endpoint("1/m"))]);
    let data = tempfile::tempdir().unwrap();
    let runtime = Runtime::open(Options::new(config.path(), data.path()))
        .await
        .unwrap();
    runtime.start(Duration::from_secs(1));
    let events = (0..3)
        .map(|i| {
            let mut ev = event("lead", json!({"phone": "1"}));
            ev.id = switchboard::EventId::new(format!("reload-{i}"));
            ev
        })
        .collect();
    runtime.accept(events).await.unwrap();
    let wait_for = async |n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while rx.requests().len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {n} requests arrived",
                rx.requests().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.requests().len(), 1, "one a minute: the others wait");
    std::fs::write(config.path().join("endpoints/out.yaml"), endpoint("100/s")).unwrap();
    runtime.reload().unwrap();
    wait_for(3).await;
    runtime.shutdown().await.unwrap();
}
