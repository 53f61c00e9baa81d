//! Workflow specs → compiled workflows.

use std::collections::{HashMap, HashSet};

use regex::RegexBuilder;
use serde_json::Value;

use super::{Refs, unknown};
use crate::config::spec::{EndpointSpec, Format, TriggerSpec, WorkflowSpec};
use crate::config::{Doc, Problems};
use crate::engine::field::FieldRef;
use crate::engine::request::{Body, Endpoint};
use crate::engine::units::parse_duration;
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
    problems: &mut Problems,
) -> Workflow {
    let spec = &doc.spec;
    let triggers = spec
        .when
        .iter()
        .enumerate()
        .filter_map(|(i, t)| trigger(doc, &format!("when[{i}]"), t, problems))
        .collect();
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
        actions.push(Action {
            endpoint,
            adaptor,
            delay,
            step: a.step.clone().unwrap_or_else(|| a.endpoint.clone()),
            after: None,
            when,
        });
        positions.push(i);
    }
    steps(doc, &mut actions, &positions, ctx.endpoints, problems);
    Workflow {
        name: doc.name.clone(),
        active: spec.active,
        triggers,
        actions,
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
