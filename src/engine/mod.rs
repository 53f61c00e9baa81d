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
pub mod payload;
pub mod phone;
pub mod request;
pub mod secrets;
pub mod signing;
pub mod template;
pub mod units;
pub mod value;
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
    /// The actions an event triggers (which workflows fired, and where each action sends),
    /// without rendering anything: what accepting an event stores.
    pub fn matches(&self, event: &Event, now: DateTime<Utc>) -> Vec<Match> {
        let mut found = Vec::new();
        for i in self.index.candidates(&event.kind) {
            let workflow = &self.workflows[i];
            if workflow.matches(event, now) {
                for (action_index, action) in workflow.actions.iter().enumerate() {
                    found.push(Match {
                        workflow: workflow.name.clone(),
                        action: action_index,
                        endpoint: self.endpoints[action.endpoint].name.clone(),
                        delay: action.delay,
                        step: Some(action.step.clone()),
                        after: action.after.map(|j| workflow.actions[j].step.clone()),
                    });
                }
            }
        }
        found
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
        let Some(workflow) = self.workflows.iter().find(|w| w.name == matched.workflow) else {
            return gone(format!(
                "workflow {} is no longer in the configuration",
                matched.workflow
            ));
        };
        // The action is found by position, but only if it still sends to the same
        // endpoint: a reloaded configuration may have reordered the actions.
        let same = |a: &&workflow::Action| self.endpoints[a.endpoint].name == matched.endpoint;
        let by_step = |a: &&workflow::Action| matched.step.as_ref().is_some_and(|s| *s == a.step);
        let action = workflow
            .actions
            .iter()
            .find(|a| by_step(a) && same(a))
            .or_else(|| workflow.actions.get(matched.action).filter(same))
            .or_else(|| workflow.actions.iter().find(same));
        let Some(action) = action else {
            return gone(format!(
                "workflow {} no longer sends to endpoint {}",
                matched.workflow, matched.endpoint
            ));
        };
        let scope = RenderScope::new(event, &self.templates, now);
        self.plan(&scope, workflow, action, now)
    }

    /// Every delivery the event asks for, rendered, in workflow then action order.
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
                let report = self.report(workflow, action, planned);
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
            for step in unknown.iter().rev() {
                report.warnings.push(format!(
                    "the values step {step} captures are not known: shown as if it captured none (render --capture {step}.NAME=VALUE)"
                ));
            }
            unsent.push(report.not_sent());
            requests.push(report);
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
            method: endpoint.method.as_str().to_string(),
            url: String::new(),
            headers: IndexMap::new(),
            body: None,
            delay: planned.delay.map(units::show_duration),
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
