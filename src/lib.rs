//! switchboard: a webhook/adaptor engine for call-center events.
//!
//! The flow, one way:
//!
//! ```text
//! YAML folder ──config::read──▶ specs ──engine::compile──▶ Engine
//! event ──Engine::process──▶ planned deliveries (exact HTTP requests)
//! ```
//!
//! Code map:
//! - [`config`]: YAML → plain serde specs, `${VAR}` interpolation, per-file checks, every
//!   error with `file:line:col`. No runtime objects.
//! - [`engine`]: specs → compiled [`Engine`]; pure: an event in, requests out. No IO.
//! - [`commands`]: what the CLI's subcommands do (`validate`, `render`, `test`, `schema`, …).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod commands;
pub mod config;
pub mod dispatch;
pub mod engine;
pub mod report;
pub mod runtime;
pub mod schema;
pub mod server;
pub mod store;

use std::path::Path;

pub use config::{ConfigError, ConfigErrors, EnvLookup};
pub use engine::Engine;
pub use engine::event::{Event, EventId};

/// A loaded configuration: the engine, and the warnings found while loading it.
#[derive(Debug)]
pub struct Loaded {
    /// The compiled engine.
    pub engine: Engine,
    /// Things that work but are probably not what the user meant.
    pub warnings: Vec<ConfigError>,
}

/// Loads the configuration in `dir` with the process environment.
pub fn load(dir: &Path) -> Result<Loaded, ConfigErrors> {
    load_with_env(dir, &|name| std::env::var(name).ok())
}

/// Loads the configuration in `dir`, reading `${VAR}` from `env`. Every problem of every
/// file is reported at once.
pub fn load_with_env(dir: &Path, env: EnvLookup) -> Result<Loaded, ConfigErrors> {
    let mut problems = config::Problems::default();
    let config = config::read(dir, env, &mut problems);
    let engine = engine::compile::compile(&config, &mut problems);
    // A message may quote a value taken from the environment ("invalid duration …").
    let redactor = engine::secrets::Redactor::new(&config.secrets);
    for problem in problems
        .errors
        .iter_mut()
        .chain(problems.warnings.iter_mut())
    {
        problem.message = redactor.redact(&problem.message).into_owned();
    }
    let warnings = problems.finish()?;
    let engine = engine.expect("compile returns an engine whenever there are no errors");
    Ok(Loaded { engine, warnings })
}
