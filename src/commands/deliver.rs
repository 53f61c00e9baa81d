//! `switchboard send` and `switchboard replay`: deliver now, from the command line, with
//! the same store and dispatcher that `serve` uses.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Output;
use crate::dispatch::NetworkPolicy;
use crate::engine::event::parse_events;
use crate::runtime::{OpenError, Options, Runtime};
use crate::store::{
    Delivery, DeliveryId, DeliveryState, Location, LogEntry, LogQuery, Outcome, Store,
};

/// Exit code when at least one delivery failed.
pub const EXIT_FAILED: i32 = 4;

/// What `send` needs.
#[derive(Debug)]
pub struct SendArgs<'a> {
    /// The configuration folder.
    pub config: &'a Path,
    /// The data folder (where a running server's address is found).
    pub data: &'a Path,
    /// Where the store is.
    pub store: &'a Location,
    /// Where the event text came from, for messages.
    pub source: &'a str,
    /// The events.
    pub text: &'a str,
    /// The type of a raw payload.
    pub kind: Option<&'a str>,
    /// Leave deliveries whose next retry is further away than this.
    pub wait: Duration,
    /// Outbound network policy.
    pub policy: NetworkPolicy,
    /// Connect log entries older than this are purged.
    pub retention: Duration,
}

fn fail(message: String) -> Output {
    Output {
        stderr: format!("error: {message}\n"),
        code: 1,
        ..Output::default()
    }
}

/// Opens the runtime over the configuration and the store.
async fn open(
    config: &Path,
    data: &Path,
    store: &Location,
    policy: NetworkPolicy,
    retention: Duration,
) -> Result<Arc<Runtime>, Output> {
    let options = Options {
        policy,
        retention,
        store: store.clone(),
        ..Options::new(config, data)
    };
    Runtime::open(options).await.map_err(|e| match e {
        OpenError::Config(errors) => Output {
            stderr: format!("{errors}\n"),
            code: 1,
            ..Output::default()
        },
        OpenError::Store(e) => fail(e.to_string()),
    })
}

/// Accepts the events, delivers them, and reports each delivery.
pub async fn send(args: SendArgs<'_>) -> Output {
    let runtime = match open(
        args.config,
        args.data,
        args.store,
        args.policy,
        args.retention,
    )
    .await
    {
        Ok(runtime) => runtime,
        Err(out) => return out,
    };
    if let Err(e) = runtime.purge().await {
        return fail(e.to_string());
    }
    let events = match parse_events(args.text, args.kind, runtime.clock().now()) {
        Ok(events) => events,
        Err(e) => return fail(format!("{}: {e}", args.source)),
    };
    for (i, event) in events.iter().enumerate() {
        if let Err(e) = crate::engine::event::check_keys(event) {
            return fail(if events.len() > 1 {
                format!("{}: item {}: {e}", args.source, i + 1)
            } else {
                format!("{}: {e}", args.source)
            });
        }
    }
    let accepted = match runtime.accept(events.clone()).await {
        Ok(accepted) => accepted,
        Err(e) => return fail(e.to_string()),
    };
    let mut out = Output::default();
    let mut ids = Vec::new();
    for (event, accepted) in events.iter().zip(&accepted) {
        let n = accepted.deliveries.len();
        let plural = if n == 1 { "delivery" } else { "deliveries" };
        if accepted.duplicate {
            let _ = writeln!(
                out.stdout,
                "duplicate {}: already accepted with {n} {plural}; not run again",
                event.id
            );
        } else if n == 0 {
            let _ = writeln!(
                out.stdout,
                "{} ({}): no workflow matched",
                event.id, event.kind
            );
        } else {
            ids.extend(accepted.deliveries.iter().map(|d| d.id.clone()));
        }
    }
    settle_and_report(&runtime, &ids, args.wait, false, out).await
}

/// What `replay` needs.
#[derive(Debug)]
pub struct ReplayArgs<'a> {
    /// The configuration folder.
    pub config: &'a Path,
    /// The data folder (where a running server's address is found).
    pub data: &'a Path,
    /// Where the store is.
    pub store: &'a Location,
    /// Delivery ids, or connect log entry ids.
    pub ids: Vec<String>,
    /// Replay every failed delivery (with the filters below).
    pub failed: bool,
    /// Only this endpoint's (with `failed`).
    pub endpoint: Option<String>,
    /// Only deliveries that failed since (with `failed`).
    pub since: Option<DateTime<Utc>>,
    /// Leave deliveries whose next retry is further away than this.
    pub wait: Duration,
    /// Outbound network policy.
    pub policy: NetworkPolicy,
    /// Show a progress bar.
    pub progress: bool,
    /// Replay the steps that run after them too (they wait for the new attempts).
    pub with_followers: bool,
}

/// Sends deliveries again.
pub async fn replay(args: ReplayArgs<'_>) -> Output {
    if let Err(out) = super::logs::require_store(args.store) {
        return out;
    }
    // A misspelt --endpoint would find no failed delivery and say "nothing to replay".
    if let Some(name) = &args.endpoint
        && let Ok(loaded) = crate::load(args.config)
        && loaded.engine.endpoint(name).is_none()
    {
        let known = loaded.engine.endpoints().iter().map(|e| e.name.as_str());
        return fail(crate::config::suggest::unknown("endpoint", name, known));
    }
    let runtime = match open(
        args.config,
        args.data,
        args.store,
        args.policy.clone(),
        Duration::from_secs(30 * 86_400),
    )
    .await
    {
        Ok(runtime) => runtime,
        Err(out) => {
            // `serve` holds the folder: go through its API.
            if let Some(remote) = super::remote::Remote::find(args.data) {
                return replay_remote(&remote, &args).await;
            }
            return out;
        }
    };
    let store = runtime.store().clone();
    let mut targets: Vec<DeliveryId> = Vec::new();
    for id in &args.ids {
        match resolve(store.as_ref(), id).await {
            Ok(delivery) => targets.push(delivery),
            Err(message) => return fail(message),
        }
    }
    if args.failed {
        let query = LogQuery {
            outcome: Some(Outcome::Failed),
            endpoint: args.endpoint.clone(),
            since: args.since,
            ..LogQuery::default()
        };
        let entries = match store.search(&query).await {
            Ok(entries) => entries,
            Err(e) => return fail(e.to_string()),
        };
        for entry in entries {
            let still_failed = store
                .delivery(&entry.delivery_id)
                .await
                .ok()
                .flatten()
                .is_some_and(|d| d.state == DeliveryState::Failed);
            if still_failed && !targets.contains(&entry.delivery_id) {
                targets.push(entry.delivery_id);
            }
        }
    }
    if targets.is_empty() {
        return Output {
            stdout: "nothing to replay\n".into(),
            ..Output::default()
        };
    }
    if args.with_followers {
        targets = match runtime.with_followers(&targets).await {
            Ok(all) => all,
            Err(e) => return fail(e.to_string()),
        };
    }
    if let Err(e) = runtime.replay(&targets).await {
        return fail(e.to_string());
    }
    let out = Output {
        stdout: format!(
            "replaying {} {}\n",
            targets.len(),
            if targets.len() == 1 {
                "delivery"
            } else {
                "deliveries"
            }
        ),
        ..Output::default()
    };
    settle_and_report(
        &runtime,
        &targets,
        args.wait,
        args.progress && targets.len() > 1,
        out,
    )
    .await
}

/// A delivery id, or the delivery of a log entry id.
async fn resolve(store: &dyn Store, id: &str) -> Result<DeliveryId, String> {
    let as_delivery = DeliveryId::new(id);
    if store
        .delivery(&as_delivery)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(as_delivery);
    }
    match store.entry(id).await.map_err(|e| e.to_string())? {
        Some(entry) => Ok(entry.delivery_id),
        None => Err(format!("no delivery or connect log entry with id {id}")),
    }
}

async fn settle_and_report(
    runtime: &Arc<Runtime>,
    ids: &[DeliveryId],
    wait: Duration,
    bar: bool,
    mut out: Output,
) -> Output {
    let progress = bar.then(|| {
        let pb = indicatif::ProgressBar::new(ids.len() as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} deliveries settled ({elapsed})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    });
    let report = |n: usize| {
        if let Some(pb) = &progress {
            pb.set_position(n as u64);
        }
    };
    let settled = match runtime.settle(ids, wait, &report).await {
        Ok(settled) => settled,
        Err(e) => return fail(e.to_string()),
    };
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    for delivery in &settled {
        let entry = match &delivery.last_entry {
            Some(id) => runtime.store().entry(id).await.ok().flatten(),
            None => None,
        };
        let _ = writeln!(out.stdout, "{}", describe(delivery, entry.as_ref()));
        if delivery.state == DeliveryState::Failed {
            out.code = EXIT_FAILED;
        }
    }
    out
}

/// One line per delivery: where it went, how it ended, and the latest error.
fn describe(d: &Delivery, entry: Option<&LogEntry>) -> String {
    let attempts = super::count(d.attempts as usize, "attempt");
    let mut line = format!("{} {} → {}: ", d.id, d.target.workflow, d.target.endpoint);
    match d.state {
        DeliveryState::Delivered => {
            let _ = write!(line, "delivered after {attempts}");
            if let Some(r) = entry.and_then(|e| e.response.as_ref()) {
                let _ = write!(line, " (HTTP {}, {} ms)", r.status, r.duration_ms);
            }
        }
        DeliveryState::Skipped => line.push_str("skipped"),
        DeliveryState::Failed => {
            let _ = write!(line, "failed after {attempts}");
        }
        DeliveryState::Pending if d.is_waiting() => match &d.behind {
            Some(ahead) => {
                let _ = write!(
                    line,
                    "waiting behind delivery {ahead} (order_by {}) (left for `switchboard serve`)",
                    d.target.order.as_deref().unwrap_or_default()
                );
            }
            None => {
                line.push_str("waiting for the step it runs after (left for `switchboard serve`)");
            }
        },
        DeliveryState::Pending if d.attempts == 0 => {
            let _ = write!(line, "queued");
            if let Some(due) = d.due_at {
                let _ = write!(
                    line,
                    " for {}",
                    due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
            line.push_str(" (left for `switchboard serve`)");
        }
        DeliveryState::Pending => {
            let _ = write!(line, "retrying after {attempts}");
            if let Some(due) = d.due_at {
                let _ = write!(
                    line,
                    ", next attempt {}",
                    due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
            line.push_str(" (left for `switchboard serve`)");
        }
    }
    if let Some(error) = entry.and_then(|e| e.error.as_ref())
        && d.state != DeliveryState::Delivered
    {
        let _ = write!(line, ": {}", error.message);
    }
    line
}

/// `replay` through the API of the server that holds the data folder: queue each delivery
/// there, then report its state after up to `--wait`.
async fn replay_remote(remote: &super::remote::Remote, args: &ReplayArgs<'_>) -> Output {
    let mut targets: Vec<DeliveryId> = Vec::new();
    for id in &args.ids {
        let as_delivery = DeliveryId::new(id.as_str());
        match remote.delivery(&as_delivery).await {
            Ok(Some(_)) => targets.push(as_delivery),
            Ok(None) => match remote.entry(id).await {
                Ok(Some(entry)) => targets.push(entry.delivery_id),
                Ok(None) => return fail(format!("no delivery or connect log entry with id {id}")),
                Err(e) => return fail(e),
            },
            Err(e) => return fail(e),
        }
    }
    if args.failed {
        let query = LogQuery {
            outcome: Some(Outcome::Failed),
            endpoint: args.endpoint.clone(),
            since: args.since,
            limit: 0,
            ..LogQuery::default()
        };
        let entries = match remote.logs(&query).await {
            Ok(entries) => entries,
            Err(e) => return fail(e),
        };
        for entry in entries {
            if targets.contains(&entry.delivery_id) {
                continue;
            }
            if let Ok(Some((d, _))) = remote.delivery(&entry.delivery_id).await
                && d.state == DeliveryState::Failed
            {
                targets.push(entry.delivery_id);
            }
        }
    }
    if targets.is_empty() {
        return Output {
            stdout: "nothing to replay\n".into(),
            ..Output::default()
        };
    }
    // With followers: the steps after the targets, down their chains, are replayed by
    // their leader's call, which makes them wait for its new attempt. A target among them
    // is not replayed on its own as well (it would go at once, with what the earlier
    // attempt captured), and all of them are reported, leaders first.
    let mut followers: Vec<DeliveryId> = Vec::new();
    if args.with_followers {
        let mut chain = targets.clone();
        let mut i = 0;
        while i < chain.len() {
            match remote.delivery(&chain[i]).await {
                Ok(Some((d, _))) => {
                    for f in d.followers {
                        // `followers` also names the next delivery of an `order_by` line
                        // (a later event's): only the steps that run after it count.
                        match remote.delivery(&f).await {
                            Ok(Some((s, _))) if s.leader.as_ref() == Some(&d.id) => {}
                            Ok(_) => continue,
                            Err(e) => return fail(e),
                        }
                        if !chain.contains(&f) {
                            chain.push(f.clone());
                        }
                        if !followers.contains(&f) {
                            followers.push(f);
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => return fail(e),
            }
            i += 1;
        }
    }
    for id in targets.iter().filter(|id| !followers.contains(id)) {
        if let Err(e) = remote.replay(id, args.with_followers).await {
            return fail(e);
        }
    }
    for f in followers {
        if !targets.contains(&f) {
            targets.push(f);
        }
    }
    let mut out = Output {
        stdout: format!(
            "replaying {} through the server at {}\n",
            targets.len(),
            remote.url()
        ),
        ..Output::default()
    };
    let deadline = tokio::time::Instant::now() + args.wait;
    let mut last = Vec::new();
    loop {
        last.clear();
        for id in &targets {
            if let Ok(Some((d, attempts))) = remote.delivery(id).await {
                last.push((d, attempts));
            }
        }
        // A step waiting for another is as settled as that one (listed before it).
        let mut done: Vec<&DeliveryId> = Vec::new();
        for (d, _) in &last {
            let waits_for_done =
                d.is_waiting() && d.leader.as_ref().is_some_and(|a| done.contains(&a));
            if d.state.is_final() || d.attempts > d.retry_base || waits_for_done {
                done.push(&d.id);
            }
        }
        let settled = done.len() == last.len();
        if settled || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (d, attempts) in &last {
        let state = match d.state {
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Skipped => "skipped",
            DeliveryState::Pending if d.is_waiting() => "waiting for the step it runs after",
            DeliveryState::Pending => "pending",
        };
        let mut line = format!(
            "{} {} → {}: {state} after {}",
            d.id,
            d.target.workflow,
            d.target.endpoint,
            super::count(d.attempts as usize, "attempt")
        );
        if d.state != DeliveryState::Delivered
            && let Some(error) = attempts.last().and_then(|e| e.error.as_ref())
        {
            line.push_str(&format!(": {}", error.message));
        }
        out.stdout.push_str(&line);
        out.stdout.push('\n');
        if d.state == DeliveryState::Failed {
            out.code = EXIT_FAILED;
        }
    }
    out
}
