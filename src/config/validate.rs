//! Checks of one file's shape that serde cannot express: "exactly one of", keys that only
//! make sense for one direction, triggers with one subject and one operator.
//!
//! References between files and everything that must be compiled (templates, regexes,
//! durations…) are checked by `engine::compile`, which builds those objects anyway.

use super::spec::{AdaptorSpec, AuthSpec, Direction, EndpointSpec, TriggerSpec, WorkflowSpec};
use super::{Doc, Problems};

pub(super) fn adaptor(doc: &Doc<AdaptorSpec>, problems: &mut Problems) {
    for (i, field) in doc.spec.fields.iter().enumerate() {
        let path = format!("fields[{i}]");
        let label = field_label(i, field.to.as_slice());
        match (&field.from, &field.template) {
            (None, None) => problems.error(doc.error_at(
                &path,
                format!("{label} needs `from` (a field to read) or `template`"),
            )),
            (Some(_), Some(_)) => problems.error(doc.error_at(
                &format!("{path}.template"),
                format!("{label} has both `from` and `template`: keep one"),
            )),
            _ => {}
        }
        if let Some(from) = &field.from
            && from.as_slice().is_empty()
        {
            problems.error(doc.error_at(
                &format!("{path}.from"),
                format!("{label}: `from` is an empty list"),
            ));
        }
        if field.to.as_slice().is_empty() {
            problems.error(doc.error_at(
                &format!("{path}.to"),
                format!("{label}: `to` is an empty list"),
            ));
        }
        for key in field.to.as_slice() {
            if key.is_empty() || key.split('.').any(str::is_empty) {
                problems.error(doc.error_at(
                    &format!("{path}.to"),
                    format!("{label}: output key {key:?} has an empty part"),
                ));
            }
        }
        if field.date_format.is_none()
            && (field.timezone.is_some() || field.input_timezone.is_some())
        {
            problems.warn(doc.error_at(
                &path,
                format!("{label}: timezone and input_timezone only apply with date_format"),
            ));
        }
    }
    for key in doc.spec.extra_fields.keys() {
        if key.is_empty() || key.split('.').any(str::is_empty) {
            problems.error(doc.error_at_key(
                &format!("extra_fields.{key}"),
                format!("extra field key {key:?} has an empty part"),
            ));
        }
    }
}

fn field_label(index: usize, to: &[String]) -> String {
    match to.first() {
        Some(first) => format!("fields[{index}] (to: {first})"),
        None => format!("fields[{index}]"),
    }
}

/// Keys that belong to one direction only, with their values' presence.
fn outbound_only(spec: &EndpointSpec) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |present: bool, key: &'static str| {
        if present {
            keys.push(key);
        }
    };
    check(spec.url.is_some(), "url");
    check(spec.method.is_some(), "method");
    check(spec.format.is_some(), "format");
    check(spec.xml_root.is_some(), "xml_root");
    check(spec.delimiter.is_some(), "delimiter");
    check(spec.body_template.is_some(), "body_template");
    check(spec.content_type.is_some(), "content_type");
    check(spec.headers.is_some(), "headers");
    check(spec.signing.is_some(), "signing");
    check(spec.success_codes.is_some(), "success_codes");
    check(spec.response.is_some(), "response");
    check(spec.timeout.is_some(), "timeout");
    check(spec.retry.is_some(), "retry");
    check(spec.concurrency.is_some(), "concurrency");
    check(spec.rate_limit.is_some(), "rate_limit");
    check(spec.order_by.is_some(), "order_by");
    keys
}

fn inbound_only(spec: &EndpointSpec) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |present: bool, key: &'static str| {
        if present {
            keys.push(key);
        }
    };
    check(spec.path.is_some(), "path");
    check(spec.methods.is_some(), "methods");
    check(spec.event_type.is_some(), "event_type");
    check(spec.event_id.is_some(), "event_id");
    check(spec.allow_from.is_some(), "allow_from");
    check(spec.respond.is_some(), "respond");
    keys
}

pub(super) fn endpoint(doc: &Doc<EndpointSpec>, problems: &mut Problems) {
    let spec = &doc.spec;
    match spec.direction {
        Direction::Outbound => {
            for key in inbound_only(spec) {
                problems.error(doc.error_at_key(
                    key,
                    format!("`{key}` is for inbound endpoints; this one is outbound (add `direction: inbound`, or remove `{key}`)"),
                ));
            }
            if spec.url.as_deref().is_none_or(str::is_empty) {
                problems.error(doc.error_at("", "an outbound endpoint needs `url`"));
            }
            if spec.adaptor.is_some() && spec.body_template.is_some() {
                problems.error(doc.error_at(
                    "body_template",
                    "give either `adaptor` or `body_template`, not both",
                ));
            }
            if let Some(AuthSpec::Signature { .. }) = spec.auth {
                problems.error(doc.error_at(
                    "auth",
                    "auth type `signature` verifies inbound requests; to sign outbound requests use `signing: {secret: ...}`",
                ));
            }
            if spec.concurrency == Some(0) {
                problems.error(doc.error_at("concurrency", "concurrency must be at least 1"));
            }
        }
        Direction::Inbound => {
            for key in outbound_only(spec) {
                problems.error(doc.error_at_key(
                    key,
                    format!("`{key}` is for outbound endpoints; this one is inbound"),
                ));
            }
            match spec.path.as_deref().map(|path| (path, hook_path(path))) {
                None => problems.error(
                    doc.error_at("", "an inbound endpoint needs `path` (e.g. /hooks/convolo)"),
                ),
                Some((_, Err(message))) => problems.error(doc.error_at("path", message)),
                Some((written, Ok(served))) if served != written => problems.warn(doc.error_at(
                    "path",
                    format!("inbound path {written:?} is served as {served}: give that to senders"),
                )),
                Some(_) => {}
            }
            if spec.event_type.as_deref().is_none_or(str::is_empty) {
                problems.error(doc.error_at(
                    "",
                    "an inbound endpoint needs `event_type`: a constant such as lead.created, or a template such as \"{{ type }}\"",
                ));
            }
            if matches!(spec.methods.as_deref(), Some([])) {
                problems.error(doc.error_at("methods", "`methods` is empty: list GET and/or POST"));
            }
            for (i, method) in spec.methods.iter().flatten().enumerate() {
                if !matches!(method, super::spec::Method::Get | super::spec::Method::Post) {
                    problems.error(doc.error_at(
                        &format!("methods[{i}]"),
                        format!(
                            "inbound endpoints accept GET and POST, not {}",
                            method.as_str()
                        ),
                    ));
                }
            }
            if let Some(code) = spec.respond
                && !(200..=299).contains(&code)
            {
                problems.error(doc.error_at(
                    "respond",
                    format!("respond must be a success status (200-299), not {code}"),
                ));
            }
        }
    }
    literal_secrets(doc, problems);
}

/// The path an inbound endpoint is served at: `written` without repeated or trailing
/// slashes. Refused when it does not name a hook plainly under /hooks/: a `.` or `..`
/// segment (also percent-encoded), a backslash, an encoded slash, or a character that
/// cannot be part of a path (`?`, `#`, spaces, controls).
pub fn hook_path(written: &str) -> Result<String, String> {
    let example = "e.g. /hooks/convolo";
    if !written.starts_with("/hooks/") {
        return Err(format!(
            "inbound path {written:?} must start with /hooks/ and name the hook, {example}"
        ));
    }
    if written.contains(['?', '#']) || written.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "inbound path {written:?} must not contain ?, #, spaces or control characters"
        ));
    }
    if written.contains('\\') {
        return Err(format!(
            "inbound path {written:?} must not contain backslashes: separate its parts with /"
        ));
    }
    let mut served = String::with_capacity(written.len());
    for part in written.split('/').filter(|part| !part.is_empty()) {
        let decoded = percent_encoding::percent_decode_str(part).decode_utf8_lossy();
        if decoded == "." || decoded == ".." {
            return Err(format!(
                "inbound path {written:?} must not contain . or .. parts (also not percent-encoded): name the hook plainly, {example}"
            ));
        }
        if decoded.contains(['/', '\\']) {
            return Err(format!(
                "inbound path {written:?} must not contain an encoded / or \\ (%2F, %5C)"
            ));
        }
        served.push('/');
        served.push_str(part);
    }
    if served == "/hooks" {
        return Err(format!(
            "inbound path {written:?} must name the hook after /hooks/, {example}"
        ));
    }
    Ok(served)
}

/// Secrets written into a file end up in version control; say so.
fn literal_secrets(doc: &Doc<EndpointSpec>, problems: &mut Problems) {
    let mut literal = Vec::new();
    match &doc.spec.auth {
        Some(AuthSpec::Bearer { .. }) => literal.push("auth.token"),
        Some(AuthSpec::Basic { .. }) => literal.push("auth.password"),
        Some(AuthSpec::Header { .. }) => literal.push("auth.value"),
        Some(AuthSpec::Signature { .. }) => literal.push("auth.secret"),
        Some(AuthSpec::Oauth2 { refresh_token, .. }) => {
            literal.push("auth.client_secret");
            if refresh_token.is_some() {
                literal.push("auth.refresh_token");
            }
        }
        Some(AuthSpec::Query { params }) => {
            for key in params.keys() {
                let path = format!("auth.params.{key}");
                if !doc.from_env(&path) {
                    problems.warn(doc.error_at(
                        &path,
                        format!(
                            "{path} is written in the file; take it from the environment: ${{NAME}}"
                        ),
                    ));
                }
            }
        }
        None => {}
    }
    if doc.spec.signing.is_some() {
        literal.push("signing.secret");
    }
    for path in literal {
        if !doc.from_env(path) {
            problems.warn(doc.error_at(
                path,
                format!("{path} is written in the file; take it from the environment: ${{NAME}}"),
            ));
        }
    }
}

pub(super) fn workflow(doc: &Doc<WorkflowSpec>, problems: &mut Problems) {
    let spec = &doc.spec;
    if spec.when.is_empty() {
        problems.error(doc.error_at(
            "when",
            "`when` is empty: a workflow needs at least one trigger",
        ));
    } else if spec.when.iter().all(|t| t.active == Some(false)) {
        problems.error(doc.error_at(
            "when",
            "every trigger is inactive: a workflow needs at least one active trigger",
        ));
    }
    if spec.actions.is_empty() {
        problems.error(doc.error_at("actions", "`actions` is empty: list at least one endpoint"));
    }
    for (i, trigger) in spec.when.iter().enumerate() {
        self::trigger(doc, &format!("when[{i}]"), trigger, problems);
    }
    for (a, action) in spec.actions.iter().enumerate() {
        for (i, trigger) in action.when.iter().enumerate() {
            self::trigger(doc, &format!("actions[{a}].when[{i}]"), trigger, problems);
        }
    }
}

/// One trigger's shape: one subject, and for a field exactly one operator.
fn trigger(doc: &Doc<WorkflowSpec>, path: &str, trigger: &TriggerSpec, problems: &mut Problems) {
    {
        let path = path.to_string();
        let mut operators = operators(trigger);
        // In the order written, so that "the extra one" is the one the user added last.
        operators.sort_by_key(|op| {
            doc.key_spot(&format!("{path}.{op}"))
                .map(|s| (s.line, s.col))
        });
        match (&trigger.event, &trigger.field) {
            (Some(_), Some(_)) => problems.error(doc.error_at(
                &path,
                "a trigger has one subject: `event` or `field`, not both (use two triggers)",
            )),
            (None, None) => problems.error(doc.error_at(
                &path,
                "a trigger needs a subject: `event: <type>` or `field: <reference>`",
            )),
            (Some(types), None) => {
                if !operators.is_empty() {
                    problems.error(doc.error_at_key(
                        &format!("{path}.{}", operators[0]),
                        format!(
                            "`{}` needs `field:`; an `event:` trigger only matches the event type",
                            operators[0]
                        ),
                    ));
                }
                if trigger.ignore_case.is_some() {
                    problems.error(doc.error_at_key(
                        &format!("{path}.ignore_case"),
                        "`ignore_case` applies to field operators; event types match exactly",
                    ));
                }
                if types.as_slice().is_empty() {
                    problems
                        .error(doc.error_at(&format!("{path}.event"), "`event` is an empty list"));
                }
            }
            (None, Some(field)) => {
                if operators.is_empty() {
                    problems.error(doc.error_at(
                        &path,
                        format!(
                            "the trigger on {field:?} needs an operator: one of {}",
                            OPERATORS.join(", ")
                        ),
                    ));
                } else if operators.len() > 1 {
                    problems.error(doc.error_at_key(
                        &format!("{path}.{}", operators[1]),
                        format!(
                            "a trigger has exactly one operator, this one has {}: split it into one trigger each",
                            operators.join(", ")
                        ),
                    ));
                }
            }
        }
        if let Some(between) = &trigger.between
            && between.len() != 2
        {
            problems.error(doc.error_at(
                &format!("{path}.between"),
                format!(
                    "`between` takes [low, high], got {}",
                    super::error::count(between.len(), "value")
                ),
            ));
        }
    }
}

/// The operator keys of a trigger, in the order the spec lists them.
pub const OPERATORS: [&str; 18] = [
    "equals",
    "not_equals",
    "in",
    "not_in",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "matches",
    "is_blank",
    "is_numeric",
    "exists",
    "within",
];

fn operators(t: &TriggerSpec) -> Vec<&'static str> {
    let present = [
        t.equals.is_some(),
        t.not_equals.is_some(),
        t.in_.is_some(),
        t.not_in.is_some(),
        t.gt.is_some(),
        t.gte.is_some(),
        t.lt.is_some(),
        t.lte.is_some(),
        t.between.is_some(),
        t.contains.is_some(),
        t.not_contains.is_some(),
        t.starts_with.is_some(),
        t.ends_with.is_some(),
        t.matches.is_some(),
        t.is_blank.is_some(),
        t.is_numeric.is_some(),
        t.exists.is_some(),
        t.within.is_some(),
    ];
    OPERATORS
        .iter()
        .zip(present)
        .filter(|(_, p)| *p)
        .map(|(name, _)| *name)
        .collect()
}
