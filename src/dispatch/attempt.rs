//! One attempt of one delivery, stage by stage: prepare (render with the current
//! configuration, add credentials and send-time headers), exchange and judge (in
//! `exchange.rs`), the next step by the retry schedule, and the record: one connect log
//! entry.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Dispatcher;
use super::exchange::{Verdict, exchange, judge};
use super::pace::jitter;
use crate::engine::request::{Auth, Endpoint, Request};
use crate::engine::{Engine, Plan, WindowCheck};
use crate::store::record::{AttemptError, ErrorKind, LoggedRequest};
use crate::store::{
    Delivery, DeliveryState, Lease, LogEntry, Outcome, StoreError, StoredEvent, whole_ms,
};

/// A `Retry-After` longer than this is capped: the schedule, not the receiver, decides
/// when a delivery gives up.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Runs one attempt of a leased delivery and records it, stage by stage: [`prepare`]
/// (read the event, render, add credentials), [`exchange`] (the HTTP request and the
/// response), [`judge`] (the response against the endpoint's rules), [`next_step`] (the
/// retry schedule), then the store's record. Returns the delivery and its new log entry.
/// `reached` is set to whether the endpoint answered (see [`Verdict::reached`]) even when
/// recording fails.
pub(super) async fn run(
    d: &Dispatcher,
    lease: Lease,
    reached: &mut Option<bool>,
) -> Result<(Delivery, LogEntry), StoreError> {
    // Nothing is sent that could not be recorded (the store may have begun failing while
    // this attempt waited for its turn).
    d.store.health()?;
    let Lease {
        mut delivery,
        dequeued,
        event,
    } = lease;
    let engine = d.engine();
    let at = d.clock.now();
    // Outside its window (taken early by a clock or a configuration that changed since it
    // was queued), nothing is sent: it goes back to wait for the opening.
    let windowed = match &event {
        Ok(Some(stored)) => Some((stored.event.clone(), delivery.target.clone())),
        _ => None,
    };
    let window = |from| {
        let (event, target) = windowed.as_ref()?;
        engine.window(event, target, from)
    };
    let now_open = window(at);
    if let Some(check) = now_open.as_ref().filter(|c| c.is_closed()) {
        return wait_for_window(d, delivery, dequeued, at, check).await;
    }
    let attempt = delivery.attempts + 1;
    let steps = super::steps::values(d.store.as_ref(), &delivery).await?;
    let prepared = prepare(&engine, &delivery, event, steps, attempt, at);
    let (mut verdict, request, mut warnings) = match prepared {
        Prepared::Stop(verdict, warnings) => (*verdict, None, warnings),
        Prepared::Send(mut request, warnings) => {
            let endpoint = engine
                .endpoint(&delivery.target.endpoint)
                .expect("a rendered request has an endpoint");
            let verdict = send(d, &engine, endpoint, &mut request).await;
            (verdict, Some(shown(&engine, endpoint, &request)), warnings)
        }
    };
    *reached = verdict.reached;
    warnings.append(&mut verdict.warnings);
    warnings.extend(now_open.and_then(|c| c.warning));
    let schedule = engine
        .endpoint(&delivery.target.endpoint)
        .map(|e| e.policy.schedule.clone())
        .unwrap_or_default();
    let mut step = next_step(&verdict, &schedule, attempt, delivery.retry_base, at);
    // A retry that would fall outside the window waits for its opening instead.
    let mut waiting = None;
    if let Some(next) = step.next_attempt_at
        && let Some(check) = window(next).filter(WindowCheck::is_closed)
    {
        step.next_attempt_at = Some(whole_ms(check.opens));
        waiting = Some(check.waiting());
    }
    delivery.attempts = attempt;
    delivery.state = step.state;
    delivery.due_at = step.next_attempt_at;
    // What the deliveries waiting for this one read, unmasked (the log keeps it masked).
    if step.outcome == Outcome::Delivered && !delivery.followers.is_empty() {
        let mut values: serde_json::Map<String, serde_json::Value> =
            std::mem::take(&mut verdict.values).into_iter().collect();
        if let Some(response) = &verdict.response {
            values.insert("status".into(), serde_json::Value::from(response.status));
        }
        delivery.captured = Some(serde_json::Value::Object(values));
    }
    let entry = LogEntry {
        request,
        response: verdict.response,
        outcome: step.outcome,
        error: step.error,
        next_attempt_at: step.next_attempt_at,
        waiting,
        captured: verdict.captured,
        warnings,
        ..blank_entry(d, &delivery, attempt, at)
    };
    record(d, delivery, entry, dequeued).await
}

/// A connect log entry of `delivery` at `at` that says nothing yet: no request, no
/// response, no error (its outcome is the caller's to set). Its id is the store's to give.
fn blank_entry(d: &Dispatcher, delivery: &Delivery, attempt: u32, at: DateTime<Utc>) -> LogEntry {
    LogEntry {
        id: String::new(),
        delivery_id: delivery.id.clone(),
        attempt,
        at,
        event_id: delivery.event_id.clone(),
        event_type: delivery.event_type.clone(),
        workflow: delivery.target.workflow.clone(),
        endpoint: delivery.target.endpoint.clone(),
        step: delivery.target.step.clone(),
        after: delivery.target.after.clone(),
        node: d.node.clone(),
        request: None,
        response: None,
        outcome: Outcome::Retrying,
        error: None,
        next_attempt_at: None,
        waiting: None,
        captured: Default::default(),
        warnings: Vec::new(),
        keys: delivery.keys.clone(),
    }
}

/// Records the entry with the delivery as it leaves it; both as recorded.
async fn record(
    d: &Dispatcher,
    mut delivery: Delivery,
    mut entry: LogEntry,
    dequeued: DateTime<Utc>,
) -> Result<(Delivery, LogEntry), StoreError> {
    let id = d.store.record(&entry, &delivery, Some(dequeued)).await?;
    entry.id = id.clone();
    delivery.last_entry = Some(id.clone());
    delivery.entries.push(id);
    Ok((delivery, entry))
}

/// Records that a delivery waits for its window without an attempt: an entry with no
/// request, outcome `retrying`, `next_attempt_at` the opening and `waiting` the reason; its
/// `attempt` is the number made so far (0 before the first), and it counts as none.
async fn wait_for_window(
    d: &Dispatcher,
    mut delivery: Delivery,
    dequeued: DateTime<Utc>,
    at: DateTime<Utc>,
    check: &WindowCheck,
) -> Result<(Delivery, LogEntry), StoreError> {
    let opens = whole_ms(check.opens);
    delivery.state = DeliveryState::Pending;
    delivery.due_at = Some(opens);
    let entry = LogEntry {
        next_attempt_at: Some(opens),
        waiting: Some(check.waiting()),
        warnings: check.warning.iter().cloned().collect(),
        ..blank_entry(d, &delivery, delivery.attempts, at)
    };
    record(d, delivery, entry, dequeued).await
}

/// The exchange and its judgement. For an oauth2 endpoint, with its access token; a 401
/// renews the token at once and sends the request once more, in the same attempt.
async fn send(
    d: &Dispatcher,
    engine: &Engine,
    endpoint: &Endpoint,
    request: &mut Request,
) -> Verdict {
    let Some(Auth::OAuth2(config)) = &endpoint.auth else {
        return match exchange(d, engine, endpoint, request).await {
            Ok(exchanged) => judge(engine, endpoint, &request.url, exchanged),
            Err(failed) => failed,
        };
    };
    let timeout = endpoint.policy.timeout;
    let token = |rejected: Option<String>| async move {
        d.tokens
            .token(
                d,
                engine,
                &endpoint.name,
                config,
                timeout,
                rejected.as_deref(),
            )
            .await
    };
    let mut verdict = match token(None).await {
        Err(failed) => failed,
        Ok(first) => {
            bearer(request, &first);
            match exchange(d, engine, endpoint, request).await {
                Ok(exchanged) if exchanged.status() == 401 => match token(Some(first)).await {
                    Err(failed) => failed,
                    Ok(renewed) => {
                        bearer(request, &renewed);
                        match exchange(d, engine, endpoint, request).await {
                            Ok(exchanged) => judge(engine, endpoint, &request.url, exchanged),
                            Err(failed) => failed,
                        }
                    }
                },
                Ok(exchanged) => judge(engine, endpoint, &request.url, exchanged),
                Err(failed) => failed,
            }
        }
    };
    d.tokens.redact(&endpoint.name, &mut verdict);
    verdict
}

/// Sets `Authorization: Bearer <token>` (replacing the one a 401 refused).
fn bearer(request: &mut Request, token: &str) {
    request
        .headers
        .retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
    request
        .headers
        .insert(0, ("Authorization".into(), format!("Bearer {token}")));
}

/// What preparing an attempt came to: a finished request to send (credentials and
/// send-time headers added), or a verdict without sending (the event cannot be read, the
/// render failed, the endpoint is inactive); with the render's warnings, redacted.
enum Prepared {
    Send(Request, Vec<String>),
    Stop(Box<Verdict>, Vec<String>),
}

/// Renders the delivery's event (read with its lease) with the configuration loaded now,
/// at the event's arrival time (so that every attempt sends the same), with the earlier
/// steps' values for a step that runs after one. An event that is gone or cannot be read
/// back is a verdict (`render`, `store`), and so is a step whose chain stops (`step`,
/// skipped) or whose `when` does not match: nothing is sent.
fn prepare(
    engine: &Engine,
    delivery: &Delivery,
    event: Result<Option<StoredEvent>, String>,
    steps: Option<Result<super::steps::Chain, String>>,
    attempt: u32,
    at: DateTime<Utc>,
) -> Prepared {
    let skipped = |kind, why: String| Verdict {
        outcome: Outcome::Skipped,
        ..Verdict::failed(kind, engine.redact(&why).into_owned(), false)
    };
    let steps = match steps {
        Some(Err(why)) => {
            return Prepared::Stop(Box::new(skipped(ErrorKind::Step, why)), Vec::new());
        }
        Some(Ok(chain)) => Some(std::sync::Arc::new(
            engine.step_values(&delivery.target, chain),
        )),
        None => None,
    };
    let mut stored = match event {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            let why = format!("event {} is no longer stored (purged?)", delivery.event_id);
            return Prepared::Stop(
                Box::new(Verdict::failed(ErrorKind::Render, why, false)),
                Vec::new(),
            );
        }
        Err(message) => {
            let why = format!(
                "the stored event {} cannot be read back ({message}): it cannot be sent",
                delivery.event_id
            );
            return Prepared::Stop(
                Box::new(Verdict::failed(ErrorKind::Store, why, false)),
                Vec::new(),
            );
        }
    };
    stored.event.steps = steps;
    let planned = engine.render(&stored.event, &delivery.target, stored.event.received_at);
    let warnings = planned
        .warnings
        .iter()
        .map(|w| engine.redact(w).into_owned())
        .collect();
    match planned.plan {
        Plan::Skip(why) => Prepared::Stop(Box::new(skipped(ErrorKind::Inactive, why)), warnings),
        Plan::Unmet(why) => Prepared::Stop(Box::new(skipped(ErrorKind::Step, why)), warnings),
        Plan::Fail(why) => Prepared::Stop(
            Box::new(Verdict::failed(
                ErrorKind::Render,
                engine.redact(&why).into_owned(),
                false,
            )),
            warnings,
        ),
        Plan::Send(request) => {
            let endpoint = engine
                .endpoint(&delivery.target.endpoint)
                .expect("a rendered request has an endpoint");
            Prepared::Send(finish(endpoint, request, delivery, attempt, at), warnings)
        }
    }
}

/// Where an attempt leaves its delivery.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    outcome: Outcome,
    error: Option<AttemptError>,
    next_attempt_at: Option<DateTime<Utc>>,
    state: DeliveryState,
}

/// The next step after a verdict: a retryable failure is retried by the endpoint's
/// schedule (counted from the last replay, `retry_base`; at least as late as the
/// receiver's `Retry-After`), or gives up when the schedule is used up.
fn next_step(
    verdict: &Verdict,
    schedule: &[Duration],
    attempt: u32,
    retry_base: u32,
    at: DateTime<Utc>,
) -> Step {
    let mut outcome = verdict.outcome;
    let mut error = verdict.error.clone();
    let mut next_attempt_at = None;
    if outcome == Outcome::Failed && verdict.retryable {
        let round = attempt.saturating_sub(retry_base).max(1) as usize;
        match schedule.get(round - 1) {
            Some(delay) => {
                let mut wait = jitter(*delay);
                if let Some(after) = verdict.retry_after {
                    wait = wait.max(after.min(MAX_RETRY_AFTER));
                }
                outcome = Outcome::Retrying;
                next_attempt_at = Some(whole_ms(
                    at + chrono::Duration::from_std(wait).unwrap_or_default(),
                ));
            }
            None => {
                if let Some(e) = error.as_mut() {
                    let retries = match schedule.len() {
                        1 => "1 retry".to_string(),
                        n => format!("{n} retries"),
                    };
                    e.message.push_str(&format!(
                        "; gave up after {} (retry.schedule has {retries})",
                        crate::config::error::count(round, "attempt"),
                    ));
                }
            }
        }
    }
    let state = match outcome {
        Outcome::Delivered => DeliveryState::Delivered,
        Outcome::Retrying => DeliveryState::Pending,
        Outcome::Failed => DeliveryState::Failed,
        Outcome::Skipped => DeliveryState::Skipped,
    };
    Step {
        outcome,
        error,
        next_attempt_at,
        state,
    }
}

/// Adds what is only known at send time: credentials, `Idempotency-Key`,
/// `X-Switchboard-Attempt`, and the Standard Webhooks signature.
fn finish(
    endpoint: &Endpoint,
    mut request: Request,
    delivery: &Delivery,
    attempt: u32,
    at: DateTime<Utc>,
) -> Request {
    if let Some(auth) = &endpoint.auth {
        auth.apply(&mut request);
    }
    request
        .headers
        .push(("Idempotency-Key".into(), delivery.id.to_string()));
    request
        .headers
        .push(("X-Switchboard-Attempt".into(), attempt.to_string()));
    if let Some(key) = &endpoint.signing {
        let timestamp = at.timestamp();
        let body = request.body.as_deref().unwrap_or_default().as_bytes();
        let signature = key.sign(delivery.id.as_str(), timestamp, body);
        request
            .headers
            .push(("webhook-id".into(), delivery.id.to_string()));
        request
            .headers
            .push(("webhook-timestamp".into(), timestamp.to_string()));
        request
            .headers
            .push(("webhook-signature".into(), signature));
    }
    request
}

/// The request as the log shows it (see [`Engine::masked`]).
fn shown(engine: &Engine, endpoint: &Endpoint, request: &Request) -> LoggedRequest {
    let masked = engine.masked(endpoint, request);
    LoggedRequest {
        method: masked.method,
        url: masked.url,
        headers: masked.headers.into_iter().collect(),
        body: masked.body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_step_follows_the_schedule_from_the_last_replay_then_gives_up() {
        let at: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
        let schedule = [Duration::from_secs(60), Duration::from_secs(300)];
        let failed = |retryable| {
            Verdict::failed(ErrorKind::Status, "HTTP 503 from crm:443".into(), retryable)
        };
        let step = next_step(&failed(true), &schedule, 1, 0, at);
        assert_eq!(
            (step.outcome, step.state),
            (Outcome::Retrying, DeliveryState::Pending)
        );
        let wait = step.next_attempt_at.unwrap() - at;
        assert!(
            wait >= chrono::Duration::seconds(48) && wait <= chrono::Duration::seconds(72),
            "{wait}"
        );
        // The second retry waits the second delay; a replay (base 2) starts over.
        let wait = next_step(&failed(true), &schedule, 2, 0, at)
            .next_attempt_at
            .unwrap()
            - at;
        assert!(wait >= chrono::Duration::seconds(240), "{wait}");
        let wait = next_step(&failed(true), &schedule, 3, 2, at)
            .next_attempt_at
            .unwrap()
            - at;
        assert!(wait <= chrono::Duration::seconds(72), "{wait}");
        // Used up: failed, and the message says so.
        let step = next_step(&failed(true), &schedule, 3, 0, at);
        assert_eq!(
            (step.outcome, step.state),
            (Outcome::Failed, DeliveryState::Failed)
        );
        assert!(
            step.error
                .unwrap()
                .message
                .ends_with("gave up after 3 attempts (retry.schedule has 2 retries)")
        );
        // Not retryable: failed at once. A Retry-After longer than the delay wins.
        assert_eq!(
            next_step(&failed(false), &schedule, 1, 0, at).outcome,
            Outcome::Failed
        );
        let later = Verdict {
            retry_after: Some(Duration::from_secs(600)),
            ..failed(true)
        };
        let wait = next_step(&later, &schedule, 1, 0, at)
            .next_attempt_at
            .unwrap()
            - at;
        assert_eq!(wait, chrono::Duration::seconds(600));
    }
}
