//! `switchboard render`: a dry run. Which workflows match an event and why, and the exact
//! requests that would be sent, secrets masked. Sends nothing.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::Output;
use crate::engine::event::parse_events;
use crate::engine::{DryRun, Engine, RequestReport, StepValues};

/// What to render.
#[derive(Debug)]
pub struct Args<'a> {
    /// The configuration folder.
    pub config: &'a Path,
    /// Where the event text came from, for error messages.
    pub source: &'a str,
    /// The event text: an envelope, a raw payload (with `kind`), an array, or NDJSON.
    pub text: &'a str,
    /// The type of a raw payload.
    pub kind: Option<&'a str>,
    /// Print JSON instead of a readable report.
    pub json: bool,
    /// The time to evaluate at (default: now): for `within`, `age` and `received_at`.
    pub now: Option<DateTime<Utc>>,
    /// Values of earlier steps (`--capture`), for the steps that run after them.
    pub steps: StepValues,
}

/// `--capture` values, by step.
pub fn step_values(captures: Vec<(String, String, serde_json::Value)>) -> StepValues {
    let mut steps = StepValues::new();
    for (step, name, value) in captures {
        steps.entry(step).or_default().insert(name, value);
    }
    steps
}

/// Every `--capture` names a step of some workflow and a value it can capture: a typo
/// would otherwise render as if the step captured nothing.
fn check_captures(engine: &Engine, steps: &StepValues) -> Result<(), String> {
    for (step, values) in steps {
        let known = || {
            engine
                .workflows()
                .iter()
                .flat_map(|w| w.actions.iter().map(|a| a.step.as_str()))
        };
        let Some(captured) = engine.step_captures(step) else {
            return Err(format!(
                "--capture {step}: {}",
                crate::config::suggest::unknown("step", step, known())
            ));
        };
        if let Some(name) = values.keys().find(|n| !captured.contains(&n.as_str())) {
            return Err(format!(
                "--capture {step}.{name}: {}",
                crate::config::suggest::unknown("captured value", name, captured.iter().copied())
            ));
        }
    }
    Ok(())
}

/// Runs the dry run.
pub fn run(args: &Args) -> Output {
    let mut out = Output::default();
    let loaded = match crate::load(args.config) {
        Ok(loaded) => loaded,
        Err(errors) => {
            out.stderr = format!("{errors}\n");
            out.code = 1;
            return out;
        }
    };
    if let Err(why) = check_captures(&loaded.engine, &args.steps) {
        out.stderr = format!("error: {why}\n");
        out.code = 2;
        return out;
    }
    let now = args.now.unwrap_or_else(Utc::now);
    let events = match parse_events(args.text, args.kind, now) {
        Ok(events) => events,
        Err(e) => {
            out.stderr = format!("error: {}: {e}\n", args.source);
            out.code = 1;
            return out;
        }
    };
    let runs: Vec<DryRun> = events
        .iter()
        .map(|e| loaded.engine.dry_run_steps(e, now, &args.steps))
        .collect();
    if args.json {
        let value = match runs.as_slice() {
            [one] => serde_json::to_value(one),
            many => serde_json::to_value(many),
        };
        out.stdout = serde_json::to_string_pretty(&value.unwrap_or_default()).unwrap_or_default();
        out.stdout.push('\n');
    } else {
        for (i, run) in runs.iter().enumerate() {
            if i > 0 {
                out.stdout.push('\n');
            }
            report(run, &mut out.stdout);
        }
    }
    out
}

/// The readable report of one dry run.
fn report(run: &DryRun, out: &mut String) {
    let e = &run.event;
    let _ = writeln!(
        out,
        "event {} (id {}, source {}, received {})",
        e.kind, e.id, e.source, e.received_at
    );
    let matched = run.workflows.iter().filter(|w| w.matched).count();
    let _ = writeln!(
        out,
        "\nworkflows: {matched} of {} matched",
        run.workflows.len()
    );
    for w in &run.workflows {
        let _ = writeln!(out, "  {} {}", if w.matched { "✓" } else { "✗" }, w.name);
        for reason in &w.reasons {
            let _ = writeln!(out, "      {reason}");
        }
    }
    let _ = writeln!(out, "\nrequests: {}", run.requests.len());
    for (i, r) in run.requests.iter().enumerate() {
        request(i + 1, r, out);
    }
}

fn request(n: usize, r: &RequestReport, out: &mut String) {
    let _ = write!(out, "  {n}. {} → {}", r.workflow, r.endpoint);
    if r.step != r.endpoint || r.after.is_some() {
        let _ = write!(out, " (step {}", r.step);
        if let Some(after) = &r.after {
            let _ = write!(out, ", after {after}");
        }
        out.push(')');
    }
    out.push('\n');
    if let Some(why) = &r.skipped {
        let _ = writeln!(out, "     skipped: {why}");
        for warning in &r.warnings {
            let _ = writeln!(out, "     warning: {warning}");
        }
        return;
    }
    if let Some(why) = &r.error {
        let _ = writeln!(out, "     error: {why}");
        return;
    }
    if let Some(delay) = &r.delay {
        let _ = writeln!(out, "     (sent {delay} after the event)");
    }
    if let Some(order) = &r.order {
        let _ = writeln!(out, "     ({order})");
    }
    if let Some(window) = &r.window {
        let _ = writeln!(out, "     window: {window}");
    }
    let _ = writeln!(out, "     {} {}", r.method, r.url);
    for (name, value) in &r.headers {
        let _ = writeln!(out, "     {name}: {value}");
    }
    if let Some(body) = &r.body {
        let pretty = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| body.clone());
        out.push('\n');
        for line in pretty.lines() {
            let _ = writeln!(out, "     {line}");
        }
    }
    for warning in &r.warnings {
        let _ = writeln!(out, "     warning: {warning}");
    }
    out.push('\n');
}
