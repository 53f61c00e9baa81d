//! `switchboard validate`: load a configuration, print every error, then every warning,
//! each on its own line with `file:line:col`; exit 1 on an error (or, with `--strict`, on
//! a warning too).

use std::fmt::Write as _;
use std::path::Path;

use super::{Output, count};
use crate::ConfigError;
use crate::config::spec::Method;

/// Validates the configuration in `dir`; `strict` makes warnings errors.
pub fn run(dir: &Path, strict: bool) -> Output {
    let mut out = Output::default();
    let (errors, warnings, loaded) = match crate::load(dir) {
        Ok(loaded) => (Vec::new(), loaded.warnings.clone(), Some(loaded)),
        Err(e) => (e.errors, e.warnings, None),
    };
    // Errors first, then warnings: a warning never sits between two errors.
    for error in &errors {
        let _ = writeln!(out.stderr, "{error}");
    }
    print_warnings(&mut out, &warnings);
    let failed = !errors.is_empty() || (strict && !warnings.is_empty());
    if failed {
        let mut summary = if errors.is_empty() {
            count(warnings.len(), "warning")
        } else {
            count(errors.len(), "error")
        };
        if !errors.is_empty() && !warnings.is_empty() {
            let _ = write!(summary, " and {}", count(warnings.len(), "warning"));
        }
        let _ = write!(summary, " in {}", dir.display());
        if strict && !warnings.is_empty() {
            summary.push_str(" (--strict: warnings are errors)");
        }
        let _ = writeln!(out.stderr, "{summary}");
        out.code = 1;
        return out;
    }
    let Some(loaded) = loaded else {
        return out;
    };
    let engine = &loaded.engine;
    let (outbound, inbound) = (engine.endpoints().len(), engine.inbound().len());
    let _ = writeln!(
        out.stdout,
        "ok: {} is valid: {}, {outbound} outbound and {inbound} inbound endpoint{}, {}",
        dir.display(),
        count(engine.adaptors().len(), "adaptor"),
        if outbound + inbound == 1 { "" } else { "s" },
        count(engine.workflows().len(), "workflow"),
    );
    if !warnings.is_empty() {
        let _ = writeln!(
            out.stderr,
            "{} in {} (validate --strict fails on warnings)",
            count(warnings.len(), "warning"),
            dir.display()
        );
    }
    for hook in engine.inbound() {
        let methods: Vec<&str> = hook.methods.iter().map(|m: &Method| m.as_str()).collect();
        let _ = writeln!(
            out.stdout,
            "  inbound {} {} → events from {}",
            methods.join("|"),
            hook.path,
            hook.name
        );
    }
    out
}

fn print_warnings(out: &mut Output, warnings: &[ConfigError]) {
    for warning in warnings {
        let _ = writeln!(out.stderr, "warning: {warning}");
    }
}
