//! `switchboard validate`: load a configuration, print every problem, exit 1 if any.

use std::fmt::Write as _;
use std::path::Path;

use super::Output;
use crate::config::spec::Method;

/// Validates the configuration in `dir`.
pub fn run(dir: &Path) -> Output {
    let mut out = Output::default();
    match crate::load(dir) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                let _ = writeln!(out.stderr, "warning: {warning}");
            }
            let engine = &loaded.engine;
            let inbound = engine.inbound().len();
            let _ = writeln!(
                out.stdout,
                "ok: {} is valid: {} adaptors, {} outbound and {} inbound endpoints, {} workflows",
                dir.display(),
                engine.adaptors().len(),
                engine.endpoints().len(),
                inbound,
                engine.workflows().len(),
            );
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
        }
        Err(errors) => {
            for error in &errors.errors {
                let _ = writeln!(out.stderr, "{error}");
            }
            let n = errors.errors.len();
            let _ = writeln!(
                out.stderr,
                "{n} error{} in {}",
                if n == 1 { "" } else { "s" },
                dir.display()
            );
            out.code = 1;
        }
    }
    out
}
