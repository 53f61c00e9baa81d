//! Workflow specs → compiled workflows.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use regex::RegexBuilder;
use serde_json::Value;

use super::{Refs, unknown};
use crate::config::spec::{EndpointSpec, Format, TriggerSpec, WindowSpec, WorkflowSpec};
use crate::config::{Doc, Problems};
use crate::engine::date::{parse_timezone, zone_warning};
use crate::engine::field::FieldRef;
use crate::engine::limit::{Limit, MAX_FIRINGS, MAX_WITHIN};
use crate::engine::request::is_template;
use crate::engine::request::{Body, Endpoint};
use crate::engine::sample::{Sample, parse_share};
use crate::engine::template::{Escape, Templates};
use crate::engine::units::{parse_duration, show_duration};
use crate::engine::window::{Window, WindowZone, parse_day, parse_time};
use crate::engine::workflow::{Action, Op, Test, Trigger, TypePattern, Workflow};

pub(super) struct WorkflowRefs<'a> {
    pub(super) refs: &'a Refs<'a>,
    pub(super) outbound: &'a HashMap<&'a str, usize>,
    pub(super) inbound: &'a HashSet<&'a str>,
    pub(super) endpoints: &'a [Endpoint],
    /// The spec of each outbound endpoint, by the same index.
    pub(super) specs: &'a [&'a EndpointSpec],
}

pub(super) fn workflow(
    doc: &Doc<WorkflowSpec>,
    ctx: &WorkflowRefs,
    templates: &mut Templates,
    problems: &mut Problems,
) -> Workflow {
    let spec = &doc.spec;
    let triggers = spec
        .when
        .iter()
        .enumerate()
        .filter_map(|(i, t)| trigger(doc, &format!("when[{i}]"), t, problems))
        .collect();
    // The workflow's own triggers are tested when the event arrives, before any step ran.
    for (i, t) in spec.when.iter().enumerate() {
        let parsed = t.field.as_deref().map(FieldRef::parse);
        if let Some(Ok(field)) = parsed
            && let Some(step) = field.step()
        {
            problems.error(doc.error_at(
                &format!("when[{i}].field"),
                format!(
                    "@steps.{step} is not known in the workflow's `when`: it is tested when the event arrives, before any step runs (test it in the `when` of an action that runs after {step})"
                ),
            ));
        }
    }
    let mut actions = Vec::with_capacity(spec.actions.len());
    // The position in the file of each compiled action.
    let mut positions = Vec::with_capacity(spec.actions.len());
    for (i, a) in spec.actions.iter().enumerate() {
        let path = format!("actions[{i}]");
        let Some(endpoint) = ctx.outbound.get(a.endpoint.as_str()).copied() else {
            let config = ctx.refs.config;
            if ctx.inbound.contains(a.endpoint.as_str()) {
                problems.error(doc.error_at(
                    &format!("{path}.endpoint"),
                    format!("endpoint {:?} is inbound (it receives events); actions send to outbound endpoints", a.endpoint),
                ));
            } else if !config.unreadable.endpoints.contains(&a.endpoint) {
                let known = ctx.outbound.keys().copied();
                problems.error(doc.error_at(
                    &format!("{path}.endpoint"),
                    unknown("endpoint", &a.endpoint, known),
                ));
            }
            continue;
        };
        let adaptor = a.adaptor.as_ref().and_then(|name| {
            ctx.refs
                .adaptor(doc, &format!("{path}.adaptor"), name, problems)
        });
        let target = &ctx.endpoints[endpoint];
        match (&target.body, adaptor.or(target.adaptor)) {
            (Body::Template(_), Some(_)) if a.adaptor.is_some() => problems.error(doc.error_at(
                &format!("{path}.adaptor"),
                format!("endpoint {} sends a body_template; an adaptor here would not be used", target.name),
            )),
            (Body::Adaptor, None)
                if ctx.specs[endpoint].adaptor.is_none() && target.method.has_body() && target.format != Format::Query =>
            {
                problems.error(doc.error_at(
                &format!("{path}.endpoint"),
                format!(
                    "endpoint {} sends {} bodies but has no adaptor or body_template: give the endpoint (or this action) an adaptor",
                    target.name,
                    target.method.as_str()
                ),
            ))
            }
            _ => {}
        }
        let delay = a.delay.as_ref().and_then(|d| {
            parse_duration(d)
                .map_err(|e| problems.error(doc.error_at(&format!("{path}.delay"), e)))
                .ok()
        });
        let when = a
            .when
            .iter()
            .enumerate()
            .filter_map(|(j, t)| trigger(doc, &format!("{path}.when[{j}]"), t, problems))
            .collect();
        let window = a
            .window
            .as_ref()
            .and_then(|w| window(doc, &format!("{path}.window"), w, templates, problems));
        actions.push(Action {
            endpoint,
            adaptor,
            delay,
            step: a.step.clone().unwrap_or_else(|| a.endpoint.clone()),
            after: None,
            when,
            window,
        });
        positions.push(i);
    }
    steps(doc, &mut actions, &positions, ctx.endpoints, problems);
    // `@steps.STEP.status` is the HTTP status: a capture of that name is not what the
    // steps after STEP read.
    for (i, action) in actions.iter().enumerate() {
        let followed = actions.iter().any(|a| a.after == Some(i));
        let endpoint = &ctx.endpoints[action.endpoint];
        if followed
            && endpoint
                .policy
                .response
                .capture
                .iter()
                .any(|(name, _)| name == "status")
        {
            problems.warn(doc.error_at(
                &format!("actions[{}].endpoint", positions[i]),
                format!(
                    "endpoint {} captures a value named `status`, but the steps after step {} read @steps.{}.status as the HTTP status: give the capture another name (e.g. `state`)",
                    endpoint.name, action.step, action.step
                ),
            ));
        }
    }
    Workflow {
        name: doc.name.clone(),
        active: spec.active,
        triggers,
        actions,
        sample: sample(doc, problems),
        limit: limit(doc, problems),
    }
}

/// Names the steps, resolves each `after` to an earlier step of the workflow, and checks
/// that `@steps.STEP.NAME` in an action's `when` reads a step it runs after (directly or
/// through its chain): only those are known when its turn comes. A NAME that step's
/// endpoint does not capture (nor `status`) is a warning: it would never be there.
fn steps(
    doc: &Doc<WorkflowSpec>,
    actions: &mut [Action],
    positions: &[usize],
    endpoints: &[Endpoint],
    problems: &mut Problems,
) {
    let specs = &doc.spec.actions;
    let mut named: HashMap<&str, usize> = HashMap::new();
    for (i, action) in actions.iter().enumerate() {
        let path = format!("actions[{}]", positions[i]);
        // `@steps.STEP.NAME` and templates' `steps.STEP.NAME` split on dots.
        if let Some(step) = specs[positions[i]].step.as_deref()
            && (step.is_empty() || step.contains('.'))
        {
            problems.error(doc.error_at(
                &format!("{path}.step"),
                format!(
                    "step name {step:?} cannot be read back (@steps.STEP.NAME): name the step without dots, e.g. {:?}",
                    if step.is_empty() { "find".to_string() } else { step.replace('.', "_") }
                ),
            ));
        }
        if let Some(first) = named.insert(&action.step, i) {
            let key = if specs[positions[i]].step.is_some() {
                "step"
            } else {
                "endpoint"
            };
            problems.error(doc.error_at(
                &format!("{path}.{key}"),
                format!(
                    "step {:?} is already actions[{}]'s name: give one of them its own `step:`",
                    action.step, positions[first]
                ),
            ));
            named.insert(&actions[first].step, first);
        }
    }
    // Every step's name in file order, for messages.
    let all: Vec<String> = specs
        .iter()
        .map(|a| a.step.clone().unwrap_or_else(|| a.endpoint.clone()))
        .collect();
    let mut afters = vec![None; actions.len()];
    for i in 0..actions.len() {
        let path = format!("actions[{}]", positions[i]);
        let Some(after) = specs[positions[i]].after.as_deref() else {
            continue;
        };
        match named.get(after) {
            Some(&j) if j < i => afters[i] = Some(j),
            Some(&j) if j == i => problems.error(doc.error_at(
                &format!("{path}.after"),
                format!("step {after:?} cannot run after itself"),
            )),
            Some(&j) => problems.error(doc.error_at(
                &format!("{path}.after"),
                format!(
                    "step {after:?} comes later (actions[{}]): `after` names an earlier step of the workflow",
                    positions[j]
                ),
            )),
            None if all.iter().any(|s| s == after) => {} // its action failed to compile
            None => {
                let earlier = all[..positions[i]].iter().map(String::as_str);
                let message = if positions[i] == 0 {
                    format!("no step {after:?}: `after` names an earlier step of the workflow, and this is the first action")
                } else {
                    unknown("step", after, earlier)
                };
                problems.error(doc.error_at(&format!("{path}.after"), message));
            }
        }
    }
    for (i, after) in afters.iter().enumerate() {
        actions[i].after = *after;
    }
    for (i, action) in actions.iter().enumerate() {
        let mut chain = Vec::new();
        let mut leaders = Vec::new();
        let mut at = action.after;
        while let Some(j) = at {
            chain.push(actions[j].step.as_str());
            leaders.push(j);
            at = actions[j].after;
        }
        for (t, trigger) in action.when.iter().enumerate() {
            let Test::Field { field, .. } = &trigger.test else {
                continue;
            };
            let Some(step) = field.step() else { continue };
            let path = format!("actions[{}].when[{t}].field", positions[i]);
            if let Some(&j) = leaders.iter().find(|&&j| actions[j].step == step) {
                let capture = &endpoints[actions[j].endpoint].policy.response.capture;
                let captured =
                    || std::iter::once("status").chain(capture.iter().map(|(n, _)| n.as_str()));
                if let Some(name) = field.step_value()
                    && !captured().any(|c| c == name)
                {
                    let endpoint = &endpoints[actions[j].endpoint].name;
                    let message = format!(
                        "@steps.{step}.{name}: step {step} (endpoint {endpoint}) never captures it, \
                         so it is always missing: {}",
                        unknown("captured value", name, captured())
                    );
                    problems.warn(doc.error_at(&path, message));
                }
                continue;
            }
            let message = if chain.is_empty() {
                format!(
                    "@steps.{step} is not known here: this action runs after no step (add `after: {step}`)"
                )
            } else {
                format!(
                    "@steps.{step} is not known here: this action runs after {} only",
                    chain.join(" ← ")
                )
            };
            problems.error(doc.error_at(&path, message));
        }
    }
}

/// `sample` and `sample_by`; `sample_by` alone is an error (it would do nothing).
fn sample(doc: &Doc<WorkflowSpec>, problems: &mut Problems) -> Option<Sample> {
    let spec = &doc.spec;
    let Some(written) = &spec.sample else {
        if spec.sample_by.is_some() {
            problems.error(doc.error_at_key(
                "sample_by",
                "sample_by chooses which events a sample takes, but this workflow has no sample: add one (sample: 25%) or remove sample_by",
            ));
        }
        return None;
    };
    let share = parse_share(written)
        .map_err(|e| problems.error(doc.error_at("sample", e)))
        .ok();
    let by_name = spec.sample_by.clone().unwrap_or_else(|| "@id".into());
    let by = FieldRef::parse(&by_name)
        .map_err(|e| problems.error(doc.error_at("sample_by", e)))
        .ok();
    if share == Some(0) {
        problems.warn(doc.error_at(
            "sample",
            format!(
                "sample: {} never fires: the workflow sends nothing",
                &**written
            ),
        ));
    }
    Some(Sample {
        share: share?,
        by_name,
        by: by?,
    })
}

/// `limit: {max, per, within}`.
fn limit(doc: &Doc<WorkflowSpec>, problems: &mut Problems) -> Option<Limit> {
    let spec = doc.spec.limit.as_ref()?;
    let max = if (1..=MAX_FIRINGS).contains(&spec.max) {
        Some(spec.max)
    } else {
        problems.error(doc.error_at(
            "limit.max",
            format!(
                "limit.max must be from 1 to {MAX_FIRINGS} (firings within the period), got {}",
                spec.max
            ),
        ));
        None
    };
    let per = match &spec.per {
        None => Some(None),
        Some(name) => FieldRef::parse(name)
            .map(|field| Some((name.clone(), field)))
            .map_err(|e| problems.error(doc.error_at("limit.per", e)))
            .ok(),
    };
    let within = parse_duration(&spec.within)
        .and_then(|d| {
            if d < Duration::from_secs(1) || d > MAX_WITHIN {
                Err(format!(
                    "limit.within must be from 1s to {}, got {}",
                    show_duration(MAX_WITHIN),
                    &*spec.within
                ))
            } else {
                Ok(d)
            }
        })
        .map_err(|e| problems.error(doc.error_at("limit.within", e)))
        .ok();
    Some(Limit {
        max: max?,
        per: per?,
        within: within?,
    })
}

/// An action's `window`: days, times and zone checked here, each error where it is written.
fn window(
    doc: &Doc<WorkflowSpec>,
    path: &str,
    spec: &WindowSpec,
    templates: &mut Templates,
    problems: &mut Problems,
) -> Option<Window> {
    let errors_before = problems.errors.len();
    let mut days = [spec.days.is_none(); 7];
    if let Some(list) = &spec.days {
        if list.is_empty() {
            problems.error(doc.error_at(
                &format!("{path}.days"),
                "days is empty: the window would never open (leave days out for every day)",
            ));
        }
        for (i, day) in list.iter().enumerate() {
            match parse_day(day) {
                Ok(d) => days[d] = true,
                Err(e) => problems.error(doc.error_at(&format!("{path}.days[{i}]"), e)),
            }
        }
    }
    let mut time =
        |key: &str, value: &Option<crate::config::spec::ScalarKey>, default, end| match value {
            None => Some(default),
            Some(text) => parse_time(text, end)
                .map_err(|e| problems.error(doc.error_at(&format!("{path}.{key}"), e)))
                .ok(),
        };
    let from = time("from", &spec.from, 0, false);
    let to = time("to", &spec.to, 86_400, true);
    if let (Some(from), Some(to)) = (from, to)
        && from == to
    {
        problems.error(doc.error_at(
            &format!("{path}.to"),
            "to is the same time as from: the window would never open (an overnight window closes earlier than it opens, e.g. from \"22:00\" to \"06:00\")",
        ));
    }
    let zone = match spec.timezone.as_deref().map(str::trim) {
        None | Some("") => WindowZone::Fixed(chrono_tz::UTC),
        Some(source) if is_template(source) => match templates.add(source, Escape::None) {
            Ok(id) => WindowZone::Template(id, source.to_string()),
            Err(e) => {
                problems.error(doc.error_at(&format!("{path}.timezone"), e));
                return None;
            }
        },
        Some(name) => match parse_timezone(name) {
            Ok(zone) => {
                if let Some(warning) = zone_warning(name) {
                    problems.warn(doc.error_at(&format!("{path}.timezone"), warning));
                }
                WindowZone::Fixed(zone)
            }
            Err(e) => {
                problems.error(doc.error_at(&format!("{path}.timezone"), e));
                return None;
            }
        },
    };
    if problems.errors.len() > errors_before {
        return None;
    }
    Some(Window {
        days,
        from: from?,
        to: to?,
        zone,
    })
}

/// A date such as 2024-05-01 (and a time after it): as text, these sort as their dates do.
fn is_iso_date(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

fn trigger(
    doc: &Doc<WorkflowSpec>,
    path: &str,
    t: &TriggerSpec,
    problems: &mut Problems,
) -> Option<Trigger> {
    let active = t.active.unwrap_or(true);
    if let Some(types) = &t.event {
        let patterns = types
            .as_slice()
            .iter()
            .map(|s| TypePattern::parse(s.trim()))
            .collect();
        return Some(Trigger {
            active,
            test: Test::Event(patterns),
        });
    }
    let name = t.field.clone()?;
    let field = FieldRef::parse(&name)
        .map_err(|e| problems.error(doc.error_at(&format!("{path}.field"), e)))
        .ok()?;
    let ignore_case = t.ignore_case.unwrap_or(false);
    let lower = |v: &Value| -> String {
        let s = crate::engine::value::text(v).into_owned();
        if ignore_case { s.to_lowercase() } else { s }
    };
    let numeric = [
        ("gt", t.gt.as_ref()),
        ("gte", t.gte.as_ref()),
        ("lt", t.lt.as_ref()),
        ("lte", t.lte.as_ref()),
    ];
    let mut operands: Vec<(String, &Value)> = numeric
        .into_iter()
        .filter_map(|(key, v)| Some((key.to_string(), v?)))
        .collect();
    if let Some(bounds) = &t.between {
        operands.extend(
            bounds
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("between[{i}]"), v)),
        );
    }
    let mut not_numbers = false;
    for (key, v) in operands {
        if crate::engine::value::number(v).is_none() && !is_iso_date(v) {
            not_numbers = true;
            problems.error(doc.error_at(
                &format!("{path}.{key}"),
                format!(
                    "the trigger on {name:?} compares numbers: {key} takes a number or an ISO 8601 date, got {}",
                    crate::engine::value::show(Some(v))
                ),
            ));
        }
    }
    if not_numbers {
        return None;
    }
    let op = if let Some(v) = &t.equals {
        Op::Equals(v.clone())
    } else if let Some(v) = &t.not_equals {
        Op::NotEquals(v.clone())
    } else if let Some(v) = &t.in_ {
        Op::In(v.clone())
    } else if let Some(v) = &t.not_in {
        Op::NotIn(v.clone())
    } else if let Some(v) = &t.gt {
        Op::Gt(v.clone())
    } else if let Some(v) = &t.gte {
        Op::Gte(v.clone())
    } else if let Some(v) = &t.lt {
        Op::Lt(v.clone())
    } else if let Some(v) = &t.lte {
        Op::Lte(v.clone())
    } else if let Some(v) = &t.between {
        let [lo, hi] = v.as_slice() else { return None };
        Op::Between(lo.clone(), hi.clone())
    } else if let Some(v) = &t.contains {
        Op::Contains(v.clone())
    } else if let Some(v) = &t.not_contains {
        Op::NotContains(v.clone())
    } else if let Some(v) = &t.starts_with {
        Op::StartsWith(lower(v))
    } else if let Some(v) = &t.ends_with {
        Op::EndsWith(lower(v))
    } else if let Some(pattern) = &t.matches {
        let re = RegexBuilder::new(pattern)
            .case_insensitive(ignore_case)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                let detail = e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                problems.error(doc.error_at(
                    &format!("{path}.matches"),
                    format!("invalid regex {pattern:?}: {detail}"),
                ))
            })
            .ok()?;
        Op::Matches(re)
    } else if let Some(b) = t.is_blank {
        Op::IsBlank(b)
    } else if let Some(b) = t.is_numeric {
        Op::IsNumeric(b)
    } else if let Some(b) = t.exists {
        Op::Exists(b)
    } else if let Some(d) = &t.within {
        Op::Within(
            parse_duration(d)
                .map_err(|e| problems.error(doc.error_at(&format!("{path}.within"), e)))
                .ok()?,
        )
    } else {
        return None;
    };
    Some(Trigger {
        active,
        test: Test::Field {
            name,
            field,
            op: Box::new(op),
            ignore_case,
        },
    })
}
