//! Workflow specs → compiled workflows.

use std::collections::{HashMap, HashSet};

use regex::RegexBuilder;
use serde_json::Value;

use super::{Refs, unknown};
use crate::config::spec::{EndpointSpec, Format, TriggerSpec, WindowSpec, WorkflowSpec};
use crate::config::{Doc, Problems};
use crate::engine::date::{parse_timezone, zone_warning};
use crate::engine::field::FieldRef;
use crate::engine::request::is_template;
use crate::engine::request::{Body, Endpoint};
use crate::engine::template::{Escape, Templates};
use crate::engine::units::parse_duration;
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
    let mut actions = Vec::with_capacity(spec.actions.len());
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
        let window = a
            .window
            .as_ref()
            .and_then(|w| window(doc, &format!("{path}.window"), w, templates, problems));
        actions.push(Action {
            endpoint,
            adaptor,
            delay,
            window,
        });
    }
    Workflow {
        name: doc.name.clone(),
        active: spec.active,
        triggers,
        actions,
    }
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
            op,
            ignore_case,
        },
    })
}
