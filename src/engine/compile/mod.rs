//! Specs → Engine: resolves every reference between files and compiles every template,
//! field reference, regex, duration, CIDR and date format, once. Problems are collected,
//! never returned early, so `validate` shows all of them in one run.

mod adaptor;
mod endpoint;
mod workflow;

use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::config::spec::{Direction, EndpointSpec};
use crate::config::{Config, Doc, Problems};
use crate::engine::adaptor::Adaptor;
use crate::engine::field::FieldRef;
use crate::engine::template::Templates;
use crate::engine::workflow::{TypeIndex, Workflow};
use crate::engine::{Engine, default_audit_keys};

/// The default retry schedule (docs/configuration.md, `retry`).
pub const DEFAULT_SCHEDULE: [&str; 7] = ["5s", "5m", "30m", "2h", "5h", "10h", "10h"];

/// The most retries a schedule may list (the default lists 7, over a day).
pub const MAX_RETRIES: usize = 100;

/// How long one retry may wait: a second at least, so that a failing receiver is not
/// hammered; a week at most, well within the connect log's default retention of 30 days.
pub const RETRY_DELAYS: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(7 * 86_400);

/// Compiles a parsed configuration; None when anything is wrong (see `problems`).
pub fn compile(config: &Config, problems: &mut Problems) -> Option<Engine> {
    let errors_before = problems.errors.len();
    let mut templates = Templates::new();

    let adaptor_names: HashMap<&str, usize> = config
        .adaptors
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    let adaptors: Vec<Adaptor> = config
        .adaptors
        .iter()
        .map(|doc| adaptor::adaptor(doc, &mut templates, problems))
        .collect();

    let refs = Refs {
        config,
        adaptors: &adaptor_names,
    };
    let mut endpoints = Vec::new();
    let mut inbound = Vec::new();
    let mut outbound_names: HashMap<&str, usize> = HashMap::new();
    let mut inbound_names: HashSet<&str> = HashSet::new();
    let mut paths: HashMap<String, &str> = HashMap::new();
    for doc in &config.endpoints {
        match doc.spec.direction {
            Direction::Outbound => {
                outbound_names.insert(&doc.name, endpoints.len());
                endpoints.push(endpoint::outbound(
                    doc,
                    &refs,
                    &adaptors,
                    &mut templates,
                    problems,
                ));
            }
            Direction::Inbound => {
                inbound_names.insert(&doc.name);
                // Its events would carry its name as their source, which is reserved.
                if doc.name.eq_ignore_ascii_case("switchboard") {
                    problems.error(doc.error_at(
                        "",
                        "an inbound endpoint cannot be named switchboard: events of source switchboard are switchboard's own operational events",
                    ));
                }
                let endpoint = endpoint::inbound_endpoint(doc, &refs, &mut templates, problems);
                if let Some(first) = paths.get(&endpoint.path) {
                    problems.error(doc.error_at(
                        "path",
                        format!(
                            "path {} is already used by inbound endpoint {first}",
                            endpoint.path
                        ),
                    ));
                } else {
                    paths.insert(endpoint.path.clone(), &doc.name);
                }
                inbound.push(endpoint);
            }
        }
    }

    let specs: Vec<&EndpointSpec> = config
        .endpoints
        .iter()
        .filter(|d| d.spec.direction == Direction::Outbound)
        .map(|d| &d.spec)
        .collect();
    let mut used_endpoints = HashSet::new();
    let mut used_adaptors: HashSet<usize> = endpoints
        .iter()
        .filter_map(|e| e.adaptor)
        .chain(inbound.iter().filter_map(|e| e.adaptor))
        .collect();
    let workflows: Vec<Workflow> = config
        .workflows
        .iter()
        .map(|doc| {
            let ctx = workflow::WorkflowRefs {
                refs: &refs,
                outbound: &outbound_names,
                inbound: &inbound_names,
                endpoints: &endpoints,
                specs: &specs,
            };
            let workflow = workflow::workflow(doc, &ctx, &mut templates, problems);
            for action in &workflow.actions {
                used_endpoints.insert(action.endpoint);
                used_adaptors.extend(action.adaptor);
            }
            workflow
        })
        .collect();

    for (i, doc) in config.adaptors.iter().enumerate() {
        if !used_adaptors.contains(&i) {
            problems.warn(doc.error_at(
                "",
                format!("adaptor {} is not used by any endpoint or action", doc.name),
            ));
        }
    }
    for doc in config
        .endpoints
        .iter()
        .filter(|d| d.spec.direction == Direction::Outbound)
    {
        if !outbound_names
            .get(doc.name.as_str())
            .is_some_and(|i| used_endpoints.contains(i))
        {
            problems.warn(doc.error_at(
                "",
                format!("endpoint {} is not used by any workflow", doc.name),
            ));
        }
    }

    let audit_keys = audit_keys(config, problems);
    if problems.errors.len() > errors_before {
        return None;
    }
    let index = TypeIndex::new(&workflows);
    Some(Engine {
        templates,
        adaptors,
        endpoints,
        inbound,
        workflows,
        index,
        redactor: super::secrets::Redactor::new(&config.secrets),
        audit_keys,
    })
}

/// `audit_keys` of switchboard.yaml, each a field reference; the default list without it.
fn audit_keys(config: &Config, problems: &mut Problems) -> Vec<(String, FieldRef)> {
    let Some(doc) = &config.settings else {
        return default_audit_keys();
    };
    let Some(keys) = &doc.spec.audit_keys else {
        return default_audit_keys();
    };
    if keys.is_empty() {
        problems.warn(doc.error_at(
            "audit_keys",
            "audit_keys is empty: no connect log entry will be found by an audit value (a phone, a lead id); remove it to keep the default list",
        ));
    }
    let mut compiled = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        match FieldRef::parse(key) {
            Ok(field) => compiled.push((key.trim().to_string(), field)),
            Err(message) => problems.error(doc.error_at(&format!("audit_keys[{i}]"), message)),
        }
    }
    compiled
}

/// Names the other files can refer to.
pub(super) struct Refs<'a> {
    pub(super) config: &'a Config,
    pub(super) adaptors: &'a HashMap<&'a str, usize>,
}

impl Refs<'_> {
    /// Resolves an adaptor name; an unknown one is reported at `path` of `doc`.
    pub(super) fn adaptor<T>(
        &self,
        doc: &Doc<T>,
        path: &str,
        name: &str,
        problems: &mut Problems,
    ) -> Option<usize> {
        if let Some(i) = self.adaptors.get(name) {
            return Some(*i);
        }
        if !self.config.unreadable.adaptors.contains(name) {
            let known = self.config.adaptors.iter().map(|d| d.name.as_str());
            problems.error(doc.error_at(path, unknown("adaptor", name, known)));
        }
        None
    }
}

/// `unknown endpoint "hubspot" (known: hubspot-contacts, slack)`.
pub(super) fn unknown<'a>(kind: &str, name: &str, known: impl Iterator<Item = &'a str>) -> String {
    crate::config::suggest::unknown(kind, name, known)
}

pub use endpoint::parse_cidr;
