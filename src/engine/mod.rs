//! The engine: a compiled configuration, and the pure function at switchboard's heart —
//! an event in, the exact HTTP requests the configuration asks for out.
//!
//! **Invariant:** nothing here does IO or awaits. Everything that can be compiled
//! (templates, JSONPaths, regexes, date formats) is compiled by [`compile`] at load;
//! processing an event never parses any of them again. Workflows are reached through a
//! [`TypeIndex`], so workflows for other event types cost nothing.

pub mod adaptor;
pub mod compile;
pub mod date;
pub mod encode;
pub mod event;
pub mod field;
pub mod inbound;
pub mod limit;
pub mod payload;
pub mod phone;
pub mod request;
pub mod sample;
pub mod secrets;
pub mod signing;
pub mod template;
pub mod units;
pub mod value;
pub mod window;
pub mod workflow;

use std::cell::OnceCell;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::Serialize;

use adaptor::Adaptor;
use event::Event;
use field::FieldRef;
use inbound::InboundEndpoint;
use request::{Endpoint, Request};
use secrets::{MASK, Redactor};
use template::{TemplateId, Templates};
use workflow::{TypeIndex, Workflow};

/// A compiled configuration.
#[derive(Debug)]
pub struct Engine {
    templates: Templates,
    adaptors: Vec<Adaptor>,
    endpoints: Vec<Endpoint>,
    inbound: Vec<InboundEndpoint>,
    workflows: Vec<Workflow>,
    index: TypeIndex,
    redactor: Redactor,
    audit_keys: Vec<(String, FieldRef)>,
}

/// The fields recorded as audit keys when an event has them, unless `switchboard.yaml` names others.
pub const DEFAULT_AUDIT_KEYS: [&str; 7] = [
    "phone_number",
    "lead_id",
    "call_log_id",
    "call_id",
    "lead.lead_phone",
    "called_lead_phone",
    "ani",
];

fn default_audit_keys() -> Vec<(String, FieldRef)> {
    DEFAULT_AUDIT_KEYS
        .iter()
        .map(|k| {
            (
                (*k).to_string(),
                FieldRef::parse(k).expect("default audit keys are plain references"),
            )
        })
        .collect()
}

/// One event's view for templates, built only if a template actually runs.
pub struct RenderScope<'a> {
    /// The event being rendered.
    pub event: &'a Event,
    /// The time it is rendered at (relative dates are measured from it).
    pub now: DateTime<Utc>,
    templates: &'a Templates,
    context: OnceCell<minijinja::Value>,
}

impl<'a> RenderScope<'a> {
    /// A scope over `event`, rendered at `now`.
    pub fn new(event: &'a Event, templates: &'a Templates, now: DateTime<Utc>) -> RenderScope<'a> {
        RenderScope {
            event,
            now,
            templates,
            context: OnceCell::new(),
        }
    }

    /// Renders one template against the event.
    pub fn render(&self, id: TemplateId) -> Result<String, String> {
        self.templates.render(id, self.event, || {
            self.context
                .get_or_init(|| template::context(self.event, self.now))
        })
    }
}

/// What should happen for one action of a matched workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The workflow that fired.
    pub workflow: String,
    /// The endpoint to send to.
    pub endpoint: String,
    /// Send no earlier than this after the event.
    pub delay: Option<Duration>,
    /// The request, or why there is none.
    pub plan: Plan,
    /// Problems that did not stop the request (e.g. an unparseable date).
    pub warnings: Vec<String>,
}

/// A workflow action triggered by an event: a delivery before it is rendered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Match {
    /// The workflow that fired.
    pub workflow: String,
    /// The action's position in the workflow.
    pub action: usize,
    /// The endpoint the action sends to.
    pub endpoint: String,
    /// Send no earlier than this after the event.
    #[serde(with = "duration_ms", default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    /// The action's step name within its workflow (absent in records made before steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The step it runs after, if any: its delivery waits for that step's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Its endpoint's `order_by` value for the event: deliveries to the endpoint with the
    /// same value go one at a time, in acceptance order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

/// Durations as whole milliseconds in stored records.
mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

/// The request of a planned delivery, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Ready to send (credentials are added at send time).
    Send(Request),
    /// Not sent: the endpoint is inactive.
    Skip(String),
    /// Not sent: the action's `when` does not match (over the event and the earlier
    /// steps' values).
    Unmet(String),
    /// Not sendable: a template failed or produced an invalid URL.
    Fail(String),
}

impl Engine {
    /// The actions an event triggers (which workflows fired, and where each action sends,
    /// with its endpoint's `order_by` value), rendering nothing else: what accepting an
    /// event stores.
    pub fn matches(&self, event: &Event, now: DateTime<Utc>) -> Vec<Match> {
        let mut found = Vec::new();
        let scope = RenderScope::new(event, &self.templates, now);
        for i in self.index.candidates(&event.kind) {
            let workflow = &self.workflows[i];
            if workflow.matches(event, now) {
                for (action_index, action) in workflow.actions.iter().enumerate() {
                    let endpoint = &self.endpoints[action.endpoint];
                    found.push(Match {
                        workflow: workflow.name.clone(),
                        action: action_index,
                        endpoint: endpoint.name.clone(),
                        delay: action.delay,
                        step: Some(action.step.clone()),
                        after: action.after.map(|j| workflow.actions[j].step.clone()),
                        // A step after another waits for its leader, not in its key's line.
                        order: endpoint
                            .order_by
                            .as_ref()
                            .filter(|_| action.after.is_none())
                            .and_then(|o| o.key(&scope)),
                    });
                }
            }
        }
        found
    }

    /// What accepting `event` on `node` must count for the workflows of `matches` that
    /// have a `limit`: one check per such workflow, in workflow order.
    pub fn limits(&self, event: &Event, matches: &[Match], node: &str) -> Vec<limit::LimitCheck> {
        let mut checks: Vec<limit::LimitCheck> = Vec::new();
        for m in matches {
            if checks.last().is_some_and(|c| c.workflow == m.workflow) {
                continue;
            }
            let workflow = self.workflows.iter().find(|w| w.name == m.workflow);
            if let Some(limit) = workflow.and_then(|w| w.limit.as_ref()) {
                checks.push(limit.check(&m.workflow, event, node));
            }
        }
        checks
    }

    /// Renders one matched action, by the names stored when the event was accepted, with
    /// the configuration loaded now. `now` is the time dates such as `age` are computed
    /// at (deliveries use the event's arrival time, so that every attempt sends the same).
    pub fn render(&self, event: &Event, matched: &Match, now: DateTime<Utc>) -> Planned {
        let gone = |why: String| Planned {
            workflow: matched.workflow.clone(),
            endpoint: matched.endpoint.clone(),
            delay: matched.delay,
            plan: Plan::Fail(why),
            warnings: Vec::new(),
        };
        let (workflow, action) = match self.action(matched) {
            Ok(found) => found,
            Err(why) => return gone(why),
        };
        let scope = RenderScope::new(event, &self.templates, now);
        self.plan(&scope, workflow, action, now)
    }

    /// The workflow and action a stored match stands for in the configuration loaded now,
    /// or why there is none.
    fn action(&self, matched: &Match) -> Result<(&Workflow, &workflow::Action), String> {
        let Some(workflow) = self.workflows.iter().find(|w| w.name == matched.workflow) else {
            return Err(format!(
                "workflow {} is no longer in the configuration",
                matched.workflow
            ));
        };
        // The action is found by its step name, else by position, but only if it still
        // sends to the same endpoint: a reloaded configuration may have reordered the
        // actions.
        let same = |a: &&workflow::Action| self.endpoints[a.endpoint].name == matched.endpoint;
        let by_step = |a: &&workflow::Action| matched.step.as_ref().is_some_and(|s| *s == a.step);
        workflow
            .actions
            .iter()
            .find(|a| by_step(a) && same(a))
            .or_else(|| workflow.actions.get(matched.action).filter(same))
            .or_else(|| workflow.actions.iter().find(same))
            .map(|action| (workflow, action))
            .ok_or_else(|| {
                format!(
                    "workflow {} no longer sends to endpoint {}",
                    matched.workflow, matched.endpoint
                )
            })
    }

    /// The sending window of a stored match's action, as the configuration loaded now has
    /// it, looked at from `at`: when it opens (`at` itself while it is open). None when the
    /// action has no window (or is gone: its attempt says so). A zone template renders
    /// against the event at its arrival time.
    pub fn window(&self, event: &Event, matched: &Match, at: DateTime<Utc>) -> Option<WindowCheck> {
        let (_, action) = self.action(matched).ok()?;
        let scope = RenderScope::new(event, &self.templates, event.received_at);
        self.check_window(&scope, action, at)
    }

    fn check_window(
        &self,
        scope: &RenderScope,
        action: &workflow::Action,
        at: DateTime<Utc>,
    ) -> Option<WindowCheck> {
        let window = action.window.as_ref()?;
        let mut warning = None;
        let (zone, name) = match &window.zone {
            window::WindowZone::Fixed(zone) => (*zone, zone.name().to_string()),
            window::WindowZone::Template(id, source) => {
                let rendered = scope.render(*id).map(|t| t.trim().to_string());
                let zone = match &rendered {
                    Ok(name) if name.is_empty() => Err("it is empty for this event".to_string()),
                    Ok(name) => date::parse_timezone(name),
                    Err(e) => Err(e.clone()),
                };
                match zone {
                    Ok(zone) => (zone, zone.name().to_string()),
                    Err(e) => {
                        warning = Some(
                            self.redact(&format!(
                                "window timezone {source}: {e}; the window is read in UTC"
                            ))
                            .into_owned(),
                        );
                        (chrono_tz::UTC, "UTC".to_string())
                    }
                }
            }
        };
        let opens = window.next_opening(zone, at).unwrap_or(at);
        Some(WindowCheck {
            at,
            opens,
            shown: format!("{} {name}", window.show_hours()),
            opening: window::show_opening(zone, opens, at),
            warning,
        })
    }

    /// The earlier steps' values for an attempt of `matched`'s action, by step name: each
    /// under the name stored with its delivery and, when a reloaded configuration renamed
    /// it, under the name the action's chain gives it now (by position in the chain), so
    /// that `@steps.NEW.NAME` reads what the step captured before it was renamed.
    pub fn step_values(
        &self,
        matched: &Match,
        chain: Vec<(String, serde_json::Value)>,
    ) -> serde_json::Value {
        let mut names: Vec<&str> = Vec::new();
        if let Some(workflow) = self.workflows.iter().find(|w| w.name == matched.workflow) {
            let same = |a: &&workflow::Action| self.endpoints[a.endpoint].name == matched.endpoint;
            let by_step =
                |a: &&workflow::Action| matched.step.as_ref().is_some_and(|s| *s == a.step);
            let action = workflow
                .actions
                .iter()
                .find(|a| by_step(a) && same(a))
                .or_else(|| workflow.actions.get(matched.action).filter(same))
                .or_else(|| workflow.actions.iter().find(same));
            let mut at = action.and_then(|a| a.after);
            while let Some(j) = at {
                names.push(&workflow.actions[j].step);
                at = workflow.actions[j].after;
            }
        }
        let mut values = serde_json::Map::new();
        for (name, captured) in &chain {
            values
                .entry(name.clone())
                .or_insert_with(|| captured.clone());
        }
        for ((_, captured), now) in chain.iter().zip(names) {
            values
                .entry(now.to_string())
                .or_insert_with(|| captured.clone());
        }
        serde_json::Value::Object(values)
    }

    /// Every delivery the event asks for, rendered, in workflow then action order (a step
    /// that runs after another as if the steps before it captured nothing: a dry run with
    /// their values is [`Engine::dry_run_steps`]).
    pub fn process(&self, event: &Event, now: DateTime<Utc>) -> Vec<Planned> {
        let scope = RenderScope::new(event, &self.templates, now);
        let mut planned = Vec::new();
        for i in self.index.candidates(&event.kind) {
            let workflow = &self.workflows[i];
            if workflow.matches(event, now) {
                for action in &workflow.actions {
                    planned.push(self.plan(&scope, workflow, action, now));
                }
            }
        }
        planned
    }

    fn plan(
        &self,
        scope: &RenderScope,
        workflow: &Workflow,
        action: &workflow::Action,
        now: DateTime<Utc>,
    ) -> Planned {
        let endpoint = &self.endpoints[action.endpoint];
        let mut warnings = Vec::new();
        let plan = if let Err(failing) = action.gate(scope.event, now) {
            Plan::Unmet(format!("`when` does not match: {}", failing.join("; ")))
        } else if !endpoint.active {
            Plan::Skip(format!(
                "endpoint {} is inactive (active: false)",
                endpoint.name
            ))
        } else {
            let payload = action
                .adaptor
                .or(endpoint.adaptor)
                .map(|a| self.adaptors[a].build(scope, now, &mut warnings));
            match endpoint.request(scope, payload.as_ref()) {
                Ok(request) => Plan::Send(request),
                Err(e) => Plan::Fail(e),
            }
        };
        Planned {
            workflow: workflow.name.clone(),
            endpoint: endpoint.name.clone(),
            delay: action.delay,
            plan,
            warnings,
        }
    }

    /// Whether some active workflow can fire for events of type `kind`.
    pub fn knows_type(&self, kind: &str) -> bool {
        !self.index.candidates(kind).is_empty()
    }

    /// The event types the active workflows listen for (`call.*` for prefixes).
    pub fn event_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self
            .workflows
            .iter()
            .filter(|w| w.active)
            .flat_map(|w| w.triggers.iter().filter(|t| t.active))
            .filter_map(|t| match &t.test {
                workflow::Test::Event(patterns) => Some(
                    patterns
                        .iter()
                        .map(workflow::TypePattern::show)
                        .collect::<Vec<_>>(),
                ),
                workflow::Test::Field { .. } => None,
            })
            .flatten()
            .collect();
        types.sort();
        types.dedup();
        types
    }

    /// The names a step called `step` can capture: `status`, and its endpoint's
    /// `response.capture` names (of every action of that name); None when no workflow has
    /// such a step.
    pub fn step_captures(&self, step: &str) -> Option<Vec<&str>> {
        let mut names = vec!["status"];
        let mut found = false;
        for action in self
            .workflows
            .iter()
            .flat_map(|w| w.actions.iter())
            .filter(|a| a.step == step)
        {
            found = true;
            let capture = &self.endpoints[action.endpoint].policy.response.capture;
            names.extend(capture.iter().map(|(name, _)| name.as_str()));
        }
        found.then_some(names)
    }

    /// The outbound endpoint called `name`.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// Every outbound endpoint.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Every inbound endpoint.
    pub fn inbound(&self) -> &[InboundEndpoint] {
        &self.inbound
    }

    /// Every workflow.
    pub fn workflows(&self) -> &[Workflow] {
        &self.workflows
    }

    /// The compiled templates (for inbound endpoints, which render before an event exists).
    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// The compiled adaptors.
    pub fn adaptors(&self) -> &[Adaptor] {
        &self.adaptors
    }

    /// Replaces every secret of the configuration in `text` with `***`.
    pub fn redact<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        self.redactor.redact(text)
    }

    /// A JSON value with every secret in its strings (keys and values) replaced.
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.redact(s).into_owned()),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.redact(k).into_owned(), self.redact_json(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// The audit keys found in an event, as text (a log entry's `keys`).
    pub fn audit_keys(&self, event: &Event) -> IndexMap<String, String> {
        self.audit_keys
            .iter()
            .filter_map(|(name, field)| {
                let value = field.resolve(event)?;
                let text = value::text(&value);
                (!text.is_empty() && !value.is_object() && !value.is_array())
                    .then(|| (name.clone(), text.into_owned()))
            })
            .collect()
    }

    /// A request as it would be sent, credentials included, then every secret masked:
    /// what dry runs show.
    pub fn shown(&self, endpoint: &Endpoint, request: &Request) -> Request {
        let mut request = request.clone();
        match &endpoint.auth {
            // The token is fetched only to send: shown masked, never fetched for a dry run.
            Some(request::Auth::OAuth2(_)) => request
                .headers
                .push(("Authorization".into(), MASK.to_string())),
            Some(auth) => auth.apply(&mut request),
            None => {}
        }
        self.masked(endpoint, &request)
    }

    /// A request with its secrets masked, for anything displayed or stored (dry runs, the
    /// connect log): the credential header of the endpoint's auth, any `Authorization`,
    /// and the Standard Webhooks signature as `***`; every other secret redacted in the
    /// URL, headers and body. The one masking rule of the program.
    pub fn masked(&self, endpoint: &Endpoint, request: &Request) -> Request {
        let auth_header = endpoint.auth.as_ref().and_then(|a| a.header_name());
        Request {
            method: request.method.clone(),
            url: self.redact(&request.url).into_owned(),
            headers: request
                .headers
                .iter()
                .map(|(name, value)| {
                    let masked = name.eq_ignore_ascii_case("authorization")
                        || name.eq_ignore_ascii_case("webhook-signature")
                        || auth_header.is_some_and(|h| h.eq_ignore_ascii_case(name));
                    let value = if masked {
                        MASK.to_string()
                    } else {
                        self.redact(value).into_owned()
                    };
                    (name.clone(), value)
                })
                .collect(),
            body: request.body.as_ref().map(|b| self.redact(b).into_owned()),
        }
    }

    /// A dry run: every workflow's verdict with reasons, and the requests that would be
    /// sent, secrets masked. Sends nothing.
    pub fn dry_run(&self, event: &Event, now: DateTime<Utc>) -> DryRun {
        self.dry_run_steps(event, now, &StepValues::new())
    }

    /// A dry run in which the steps named in `captured` are taken to have been delivered
    /// with those values (`render --capture find.contact_id=901`, a test's `steps:`); the
    /// others as delivered with values not known (none), which the report says.
    pub fn dry_run_steps(
        &self,
        event: &Event,
        now: DateTime<Utc>,
        captured: &StepValues,
    ) -> DryRun {
        let scope = RenderScope::new(event, &self.templates, now);
        let candidates = self.index.candidates(&event.kind);
        let mut workflows = Vec::with_capacity(self.workflows.len());
        let mut requests = Vec::new();
        for (i, workflow) in self.workflows.iter().enumerate() {
            let (matched, reasons) = workflow.explain(event, now);
            debug_assert!(
                !matched || candidates.contains(&i),
                "the type index must not hide a match"
            );
            if matched {
                self.dry_run_actions(&scope, workflow, captured, &mut requests);
            }
            workflows.push(WorkflowReport {
                name: workflow.name.clone(),
                matched,
                reasons: reasons
                    .iter()
                    .map(|r| self.redact(r).into_owned())
                    .collect(),
            });
        }
        DryRun {
            event: EventReport {
                id: event.id.to_string(),
                kind: event.kind.clone(),
                source: event.source.clone(),
                received_at: event.received_at_text(),
                data: serde_json::from_str(&self.redact(&event.data.to_string()))
                    .unwrap_or_default(),
            },
            workflows,
            requests,
        }
    }

    /// The requests of one matched workflow in a dry run, step by step: an action after a
    /// step that would not be sent is skipped, as it would be when served; one after a
    /// sent step sees the values given for the steps of its chain.
    fn dry_run_actions(
        &self,
        scope: &RenderScope,
        workflow: &Workflow,
        captured: &StepValues,
        requests: &mut Vec<RequestReport>,
    ) {
        let now = scope.now;
        // Why each action would not be sent (None: it would be).
        let mut unsent: Vec<Option<String>> = Vec::with_capacity(workflow.actions.len());
        for action in &workflow.actions {
            let Some(after) = action.after else {
                let planned = self.plan(scope, workflow, action, now);
                let mut report = self.report(workflow, action, planned);
                self.dry_run_window(scope, action, &mut report);
                let endpoint = &self.endpoints[action.endpoint];
                if let Some(order) = &endpoint.order_by
                    && report.not_sent().is_none()
                {
                    report.order = Some(match order.key(scope) {
                        Some(value) => format!(
                            "order_by {} = {value:?}: sent after every earlier delivery to {} with that value is finished, one at a time",
                            order.show(),
                            endpoint.name
                        ),
                        None => format!("order_by {} is empty: not held in any line", order.show()),
                    });
                }
                unsent.push(report.not_sent());
                requests.push(report);
                continue;
            };
            let leader = &workflow.actions[after].step;
            if let Some(why) = &unsent[after] {
                let why = format!("step {leader} would not be delivered ({why})");
                let mut report = self.report(workflow, action, self.unplanned(workflow, action));
                report.skipped = Some(why.clone());
                unsent.push(Some(why));
                requests.push(report);
                continue;
            }
            let mut values = serde_json::Map::new();
            let mut unknown = Vec::new();
            let mut at = Some(after);
            while let Some(j) = at {
                let step = &workflow.actions[j].step;
                match captured.get(step) {
                    Some(given) => {
                        values.insert(step.clone(), serde_json::Value::Object(given.clone()));
                    }
                    None => {
                        values.insert(step.clone(), serde_json::json!({}));
                        unknown.push(step.clone());
                    }
                }
                at = workflow.actions[j].after;
            }
            let mut event = scope.event.clone();
            event.steps = Some(std::sync::Arc::new(serde_json::Value::Object(values)));
            let stepped = RenderScope::new(&event, &self.templates, now);
            let planned = self.plan(&stepped, workflow, action, now);
            let mut report = self.report(workflow, action, planned);
            self.dry_run_window(&stepped, action, &mut report);
            for step in unknown.iter().rev() {
                report.warnings.push(format!(
                    "the values step {step} captures are not known: shown as if it captured none (render --capture {step}.NAME=VALUE)"
                ));
            }
            unsent.push(report.not_sent());
            requests.push(report);
        }
    }

    /// A dry run's window line: when the action would be due by its window, counted from
    /// the render's time plus its delay.
    fn dry_run_window(
        &self,
        scope: &RenderScope,
        action: &workflow::Action,
        report: &mut RequestReport,
    ) {
        let due = scope.now
            + chrono::Duration::from_std(action.delay.unwrap_or_default()).unwrap_or_default();
        if let Some(check) = self.check_window(scope, action, due) {
            report.warnings.extend(check.warning.clone());
            report.window = Some(check.explain());
        }
    }

    /// An action's planned delivery without a request (it will not be rendered).
    fn unplanned(&self, workflow: &Workflow, action: &workflow::Action) -> Planned {
        Planned {
            workflow: workflow.name.clone(),
            endpoint: self.endpoints[action.endpoint].name.clone(),
            delay: action.delay,
            plan: Plan::Skip(String::new()),
            warnings: Vec::new(),
        }
    }

    /// A dry run as if `workflow`'s `limit` had counted `fired` firings for the event's
    /// value (a test's `fired:`): at `max` or more the workflow is stopped — not matched,
    /// its requests gone, the reason the one the connect log would show.
    pub fn count_fired(&self, run: &mut DryRun, event: &Event, workflow: &str, fired: u32) {
        let Some(limit) = self
            .workflows
            .iter()
            .find(|w| w.name == workflow)
            .and_then(|w| w.limit.as_ref())
        else {
            return;
        };
        let Some(report) = run
            .workflows
            .iter_mut()
            .find(|w| w.name == workflow && w.matched)
        else {
            return;
        };
        let check = limit.check(workflow, event, "");
        if fired >= limit.max {
            report.matched = false;
            report.reasons = vec![format!(
                "stopped: {} (fired: {fired} given by the test)",
                check.message(fired as usize)
            )];
            run.requests.retain(|r| r.workflow != workflow);
        } else {
            report.reasons.push(format!(
                "fires: {fired} of {} firings counted (fired: given by the test)",
                limit.max
            ));
        }
        for reason in &mut report.reasons {
            *reason = self.redact(reason).into_owned();
        }
    }

    fn report(
        &self,
        workflow: &Workflow,
        action: &workflow::Action,
        planned: Planned,
    ) -> RequestReport {
        let endpoint = &self.endpoints[action.endpoint];
        let mut report = RequestReport {
            workflow: planned.workflow,
            endpoint: planned.endpoint,
            step: action.step.clone(),
            after: action.after.map(|j| workflow.actions[j].step.clone()),
            order: None,
            method: endpoint.method.as_str().to_string(),
            url: String::new(),
            headers: IndexMap::new(),
            body: None,
            delay: planned.delay.map(units::show_duration),
            window: None,
            skipped: None,
            error: None,
            warnings: planned
                .warnings
                .iter()
                .map(|w| self.redact(w).into_owned())
                .collect(),
        };
        match planned.plan {
            Plan::Send(request) => {
                let shown = self.shown(endpoint, &request);
                report.url = shown.url;
                report.headers = shown.headers.into_iter().collect();
                report.body = shown.body;
            }
            Plan::Skip(why) | Plan::Unmet(why) => {
                report.skipped = Some(self.redact(&why).into_owned());
            }
            Plan::Fail(why) => report.error = Some(self.redact(&why).into_owned()),
        }
        report
    }
}

/// Values of steps, by step name, as a dry run takes them: each step's captured names (and
/// `status`) with their values.
pub type StepValues = IndexMap<String, serde_json::Map<String, serde_json::Value>>;

/// An action's sending window as seen from a time: when it opens, and how to say so.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowCheck {
    /// The time it was looked at from.
    pub at: DateTime<Utc>,
    /// When it opens: `at` itself while it is open.
    pub opens: DateTime<Utc>,
    /// Its days, hours and zone: `mon–fri 09:00–20:00 America/New_York`.
    pub shown: String,
    /// The opening in the window's zone: `Monday 09:00 EDT`.
    pub opening: String,
    /// The zone template gave no known zone (the window was read in UTC).
    pub warning: Option<String>,
}

impl WindowCheck {
    /// Whether it is closed at the time it was looked at from.
    pub fn is_closed(&self) -> bool {
        self.opens > self.at
    }

    /// Why a delivery waits, for the connect log:
    /// `outside its window (mon–fri 09:00–20:00 America/New_York): waits until it opens Monday 09:00 EDT`.
    pub fn waiting(&self) -> String {
        format!(
            "outside its window ({}): waits until it opens {}",
            self.shown, self.opening
        )
    }

    /// The dry run's line: `mon–fri 09:00–20:00 America/New_York; due 2026-03-09T13:00:00Z
    /// (opens Monday 09:00 EDT)`, or `…; open at 2026-03-09T14:00:00Z`.
    pub fn explain(&self) -> String {
        let due = self
            .opens
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if self.is_closed() {
            format!("{}; due {due} (opens {})", self.shown, self.opening)
        } else {
            format!("{}; open at {due}", self.shown)
        }
    }
}

/// What `render --json` prints (docs/cli.md).
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    /// The event as read.
    pub event: EventReport,
    /// Every workflow, matched or not, with reasons.
    pub workflows: Vec<WorkflowReport>,
    /// The requests that would be sent.
    pub requests: Vec<RequestReport>,
}

/// An event in a dry run.
#[derive(Debug, Clone, Serialize)]
pub struct EventReport {
    /// Its id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its source.
    pub source: String,
    /// RFC 3339 arrival time.
    pub received_at: String,
    /// Its data.
    pub data: serde_json::Value,
}

/// A workflow's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowReport {
    /// Its name.
    pub name: String,
    /// Whether every active trigger matched.
    pub matched: bool,
    /// For a match, every trigger's reason; otherwise the failing ones.
    pub reasons: Vec<String>,
}

/// A request in a dry run, secrets masked.
#[derive(Debug, Clone, Serialize)]
pub struct RequestReport {
    /// The workflow that fired.
    pub workflow: String,
    /// The endpoint it goes to.
    pub endpoint: String,
    /// The action's step name within its workflow.
    pub step: String,
    /// The step it runs after, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// How its endpoint's `order_by` lines it up, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Full URL ("" when it could not be rendered).
    pub url: String,
    /// Headers, in order.
    pub headers: IndexMap<String, String>,
    /// The exact body text, or null.
    pub body: Option<String>,
    /// Send no earlier than this after the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    /// The action's sending window, and when it would be due by it:
    /// `mon–fri 09:00–20:00 America/New_York; due 2026-03-09T13:00:00Z (opens Monday 09:00 EDT)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Why it would not be sent (inactive endpoint, `when` not matching, an earlier step
    /// not sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Why it could not be built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Problems that did not stop it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl RequestReport {
    /// Why it would not be sent (skipped, or it cannot be built), if so.
    fn not_sent(&self) -> Option<String> {
        self.skipped.clone().or_else(|| self.error.clone())
    }
}
