//! Workflows (docs/configuration.md): AND-ed triggers, evaluated against an event, with an explanation of
//! every verdict, and the index by event type that keeps unrelated workflows free.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde_json::Value;

use super::date::parse_input;
use super::event::Event;
use super::field::FieldRef;
use super::limit::Limit;
use super::sample::Sample;
use super::units::show_duration;
use super::value::{compare, is_empty, loose_eq, number, show, text};

/// A compiled workflow.
#[derive(Debug)]
pub struct Workflow {
    /// Its name.
    pub name: String,
    /// Inactive workflows never fire.
    pub active: bool,
    /// The triggers, in file order (inactive ones included, for explanations).
    pub triggers: Vec<Trigger>,
    /// What to do when it fires.
    pub actions: Vec<Action>,
    /// `sample`: it fires only for this share of the events its triggers match.
    pub sample: Option<Sample>,
    /// `limit`: counted by the store when an event is accepted.
    pub limit: Option<Limit>,
}

/// A compiled action.
#[derive(Debug)]
pub struct Action {
    /// Index of the outbound endpoint.
    pub endpoint: usize,
    /// Index of the adaptor overriding the endpoint's, if any.
    pub adaptor: Option<usize>,
    /// Send no earlier than this after the event.
    pub delay: Option<Duration>,
    /// Send only inside this window.
    pub window: Option<super::window::Window>,
    /// Its name within the workflow (`step:`, or its endpoint's name).
    pub step: String,
    /// The earlier action (by position) it runs after, once that one is delivered.
    pub after: Option<usize>,
    /// Triggers over the event and the earlier steps' values, tested when its turn comes.
    pub when: Vec<Trigger>,
}

impl Action {
    /// Whether every active `when` trigger matches (the event carries the earlier steps'
    /// values), with the failing triggers' reasons.
    pub fn gate(&self, event: &Event, now: DateTime<Utc>) -> Result<(), Vec<String>> {
        let failing: Vec<String> = self
            .when
            .iter()
            .filter(|t| t.active)
            .map(|t| t.explain(event, now))
            .filter(|v| !v.passed)
            .map(|v| v.reason)
            .collect();
        if failing.is_empty() {
            Ok(())
        } else {
            Err(failing)
        }
    }
}

/// One trigger.
#[derive(Debug)]
pub struct Trigger {
    /// A trigger can be switched off on its own.
    pub active: bool,
    /// What it tests.
    pub test: Test,
}

/// What a trigger tests.
#[derive(Debug)]
pub enum Test {
    /// The event type matches one of these.
    Event(Vec<TypePattern>),
    /// A field passes an operator.
    Field {
        /// The reference as written, for explanations.
        name: String,
        /// The compiled reference.
        field: FieldRef,
        /// The operator (boxed: the largest by far, and a trigger is built once).
        op: Box<Op>,
        /// String operators ignore case (operands are lowercased at load).
        ignore_case: bool,
    },
}

/// An event type pattern: exact, `prefix*`, or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypePattern {
    /// The type itself.
    Exact(String),
    /// Types starting with this.
    Prefix(String),
}

impl TypePattern {
    /// `call.*` is a prefix, `*` matches everything, anything else is exact.
    pub fn parse(text: &str) -> TypePattern {
        match text.strip_suffix('*') {
            Some(prefix) => TypePattern::Prefix(prefix.to_string()),
            None => TypePattern::Exact(text.to_string()),
        }
    }

    /// Operational types (`switchboard.…`) match only a pattern that names them
    /// (`switchboard.*`, an exact type): a catch-all such as `*` does not take them.
    fn matches(&self, kind: &str) -> bool {
        match self {
            TypePattern::Exact(t) => t == kind,
            TypePattern::Prefix(p) => {
                kind.starts_with(p.as_str())
                    && (!is_operational(kind) || p.starts_with(OPERATIONAL_PREFIX))
            }
        }
    }

    /// The pattern as written.
    pub fn show(&self) -> String {
        match self {
            TypePattern::Exact(t) => t.clone(),
            TypePattern::Prefix(p) => format!("{p}*"),
        }
    }
}

/// What the types of switchboard's own operational events start with.
const OPERATIONAL_PREFIX: &str = "switchboard.";

/// Whether `kind` is the type of an operational event (`switchboard.delivery.failed` …):
/// only workflows whose `event:` trigger names such types match them.
pub fn is_operational(kind: &str) -> bool {
    kind.starts_with(OPERATIONAL_PREFIX)
}

/// A field operator with its compiled operand.
#[derive(Debug)]
pub enum Op {
    /// `equals`
    Equals(Value),
    /// `not_equals`
    NotEquals(Value),
    /// `in`
    In(Vec<Value>),
    /// `not_in`
    NotIn(Vec<Value>),
    /// `gt`
    Gt(Value),
    /// `gte`
    Gte(Value),
    /// `lt`
    Lt(Value),
    /// `lte`
    Lte(Value),
    /// `between: [low, high]`, inclusive
    Between(Value, Value),
    /// `contains`
    Contains(Value),
    /// `not_contains`
    NotContains(Value),
    /// `starts_with`
    StartsWith(String),
    /// `ends_with`
    EndsWith(String),
    /// `matches`
    Matches(Regex),
    /// `is_blank`
    IsBlank(bool),
    /// `is_numeric`
    IsNumeric(bool),
    /// `exists`
    Exists(bool),
    /// `within`
    Within(Duration),
}

impl Op {
    fn describe(&self) -> String {
        let list = |items: &[Value]| {
            let shown: Vec<String> = items.iter().map(|v| v.to_string()).collect();
            format!("[{}]", shown.join(", "))
        };
        match self {
            Op::Equals(v) => format!("= {v}"),
            Op::NotEquals(v) => format!("!= {v}"),
            Op::In(items) => format!("in {}", list(items)),
            Op::NotIn(items) => format!("not in {}", list(items)),
            Op::Gt(v) => format!("> {v}"),
            Op::Gte(v) => format!(">= {v}"),
            Op::Lt(v) => format!("< {v}"),
            Op::Lte(v) => format!("<= {v}"),
            Op::Between(lo, hi) => format!("between {lo} and {hi}"),
            Op::Contains(v) => format!("contains {v}"),
            Op::NotContains(v) => format!("does not contain {v}"),
            Op::StartsWith(s) => format!("starts with {s:?}"),
            Op::EndsWith(s) => format!("ends with {s:?}"),
            Op::Matches(re) => format!("matches /{}/", re.as_str()),
            Op::IsBlank(true) => "blank".into(),
            Op::IsBlank(false) => "not blank".into(),
            Op::IsNumeric(true) => "numeric".into(),
            Op::IsNumeric(false) => "not numeric".into(),
            Op::Exists(true) => "present".into(),
            Op::Exists(false) => "absent".into(),
            Op::Within(d) => format!("a date within the last {}", show_duration(*d)),
        }
    }
}

/// The verdict of one trigger, with a sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the trigger matched.
    pub passed: bool,
    /// e.g. `length_in_sec = 12, expected >= 30`.
    pub reason: String,
}

impl Trigger {
    /// Whether the trigger matches (the hot path: no explanation is built).
    pub fn matches(&self, event: &Event, now: DateTime<Utc>) -> bool {
        match &self.test {
            Test::Event(patterns) => patterns.iter().any(|p| p.matches(&event.kind)),
            Test::Field {
                field,
                op,
                ignore_case,
                ..
            } => {
                let value = field.resolve(event);
                apply(op, value.as_deref(), *ignore_case, now)
            }
        }
    }

    /// The verdict with its explanation.
    pub fn explain(&self, event: &Event, now: DateTime<Utc>) -> Verdict {
        let passed = self.matches(event, now);
        let reason = match &self.test {
            Test::Event(patterns) => {
                let shown: Vec<String> = patterns.iter().map(TypePattern::show).collect();
                if passed {
                    format!("event type {:?} matches {}", event.kind, shown.join(", "))
                } else if is_operational(&event.kind)
                    && patterns.iter().any(|p| match p {
                        TypePattern::Prefix(prefix) => event.kind.starts_with(prefix.as_str()),
                        TypePattern::Exact(_) => false,
                    })
                {
                    format!(
                        "event type {:?} is an operational event: only a trigger that names switchboard.* types matches it, not {}",
                        event.kind,
                        shown.join(" or ")
                    )
                } else {
                    format!(
                        "event type {:?}, expected {}",
                        event.kind,
                        shown.join(" or ")
                    )
                }
            }
            Test::Field {
                name,
                field,
                op,
                ignore_case,
            } => {
                let value = field.resolve(event);
                let case = if *ignore_case { " (ignoring case)" } else { "" };
                let seen = show(value.as_deref());
                if passed {
                    format!("{name} = {seen} ({}{case})", op.describe())
                } else {
                    format!("{name} = {seen}, expected {}{case}", op.describe())
                }
            }
        };
        Verdict { passed, reason }
    }
}

/// Applies an operator to the value a field reference found (None: nothing found).
fn apply(op: &Op, value: Option<&Value>, ignore_case: bool, now: DateTime<Utc>) -> bool {
    let null = Value::Null;
    let present = value.filter(|v| !v.is_null());
    let or_null = value.unwrap_or(&null);
    let ordered = |operand: &Value, accept: fn(std::cmp::Ordering) -> bool| {
        present
            .and_then(|v| compare(v, operand, ignore_case))
            .is_some_and(accept)
    };
    let lowered = |v: &Value| {
        let t = text(v);
        if ignore_case {
            t.to_lowercase()
        } else {
            t.into_owned()
        }
    };
    match op {
        Op::Equals(operand) => loose_eq(or_null, operand, ignore_case),
        Op::NotEquals(operand) => !loose_eq(or_null, operand, ignore_case),
        Op::In(items) => items.iter().any(|i| loose_eq(or_null, i, ignore_case)),
        Op::NotIn(items) => !items.iter().any(|i| loose_eq(or_null, i, ignore_case)),
        Op::Gt(operand) => ordered(operand, |o| o.is_gt()),
        Op::Gte(operand) => ordered(operand, |o| o.is_ge()),
        Op::Lt(operand) => ordered(operand, |o| o.is_lt()),
        Op::Lte(operand) => ordered(operand, |o| o.is_le()),
        Op::Between(lo, hi) => ordered(lo, |o| o.is_ge()) && ordered(hi, |o| o.is_le()),
        Op::Contains(operand) => contains(present, operand, ignore_case),
        Op::NotContains(operand) => !contains(present, operand, ignore_case),
        Op::StartsWith(prefix) => present.is_some_and(|v| lowered(v).starts_with(prefix.as_str())),
        Op::EndsWith(suffix) => present.is_some_and(|v| lowered(v).ends_with(suffix.as_str())),
        Op::Matches(re) => present.is_some_and(|v| re.is_match(&text(v))),
        Op::IsBlank(want) => {
            let blank = is_empty(value)
                || value
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.trim().is_empty());
            blank == *want
        }
        Op::IsNumeric(want) => present.and_then(number).is_some() == *want,
        Op::Exists(want) => value.is_some() == *want,
        Op::Within(window) => present
            .and_then(|v| parse_input(v, chrono_tz::UTC))
            .is_some_and(|at| {
                let window = chrono::Duration::from_std(*window).unwrap_or(chrono::Duration::MAX);
                now.checked_sub_signed(window)
                    .is_none_or(|oldest| at >= oldest)
            }),
    }
}

/// Text containment, or membership when the field is a list.
fn contains(value: Option<&Value>, operand: &Value, ignore_case: bool) -> bool {
    match value {
        None => false,
        Some(Value::Array(items)) => items.iter().any(|i| loose_eq(i, operand, ignore_case)),
        Some(v) => {
            let (haystack, needle) = (text(v), text(operand));
            if ignore_case {
                haystack.to_lowercase().contains(&needle.to_lowercase())
            } else {
                haystack.contains(needle.as_ref())
            }
        }
    }
}

impl Workflow {
    /// Whether every active trigger matches (stops at the first that does not), and the
    /// event is in the workflow's `sample`. A `limit` is the store's to count.
    pub fn matches(&self, event: &Event, now: DateTime<Utc>) -> bool {
        self.active
            && (self.index_patterns().is_some() || !is_operational(&event.kind))
            && self
                .triggers
                .iter()
                .filter(|t| t.active)
                .all(|t| t.matches(event, now))
            && self
                .sample
                .as_ref()
                .is_none_or(|s| s.chooses(&self.name, event))
    }

    /// Every active trigger's verdict; for an unmatched workflow only the failing ones.
    /// When the triggers match, the `sample` verdict and what the `limit` would count
    /// follow them.
    pub fn explain(&self, event: &Event, now: DateTime<Utc>) -> (bool, Vec<String>) {
        if !self.active {
            return (false, vec!["workflow is inactive (active: false)".into()]);
        }
        let mut verdicts: Vec<Verdict> = self
            .triggers
            .iter()
            .filter(|t| t.active)
            .map(|t| t.explain(event, now))
            .collect();
        if self.index_patterns().is_none() && is_operational(&event.kind) {
            verdicts.push(Verdict {
                passed: false,
                reason: format!(
                    "event type {:?} is an operational event: only a workflow with an event: trigger that names it matches it",
                    event.kind
                ),
            });
        }
        let mut matched = verdicts.iter().all(|v| v.passed);
        let mut reasons: Vec<String> = verdicts
            .into_iter()
            .filter(|v| matched || !v.passed)
            .map(|v| v.reason)
            .collect();
        if matched && let Some(sample) = &self.sample {
            let (chosen, reason) = sample.explain(&self.name, event);
            matched = chosen;
            if !chosen {
                reasons.clear();
            }
            reasons.push(reason);
        }
        if matched && let Some(limit) = &self.limit {
            reasons.push(limit.explain(event));
        }
        (matched, reasons)
    }

    /// The type patterns of its first active `event:` trigger: every event it can match
    /// has one of these types (None: any type).
    fn index_patterns(&self) -> Option<&[TypePattern]> {
        self.triggers
            .iter()
            .filter(|t| t.active)
            .find_map(|t| match &t.test {
                Test::Event(patterns) => Some(patterns.as_slice()),
                Test::Field { .. } => None,
            })
    }
}

/// Workflows by the event types they can match, so that an event only meets the
/// workflows that could fire for it.
#[derive(Debug, Default)]
pub struct TypeIndex {
    exact: HashMap<String, Vec<usize>>,
    prefixes: Vec<(String, usize)>,
    any: Vec<usize>,
}

impl TypeIndex {
    /// Indexes the active workflows.
    pub fn new(workflows: &[Workflow]) -> TypeIndex {
        let mut index = TypeIndex::default();
        for (i, workflow) in workflows.iter().enumerate().filter(|(_, w)| w.active) {
            match workflow.index_patterns() {
                None => index.any.push(i),
                Some(patterns) => {
                    for pattern in patterns {
                        match pattern {
                            TypePattern::Exact(t) => {
                                index.exact.entry(t.clone()).or_default().push(i)
                            }
                            TypePattern::Prefix(p) if p.is_empty() => index.any.push(i),
                            TypePattern::Prefix(p) => index.prefixes.push((p.clone(), i)),
                        }
                    }
                }
            }
        }
        index
    }

    /// Indexes of the workflows that may match an event of type `kind`, in order.
    pub fn candidates(&self, kind: &str) -> Vec<usize> {
        let mut found: Vec<usize> = self.exact.get(kind).cloned().unwrap_or_default();
        found.extend(
            self.prefixes
                .iter()
                .filter(|(p, _)| kind.starts_with(p.as_str()))
                .map(|(_, i)| *i),
        );
        found.extend_from_slice(&self.any);
        found.sort_unstable();
        found.dedup();
        found
    }
}
