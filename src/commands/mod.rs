//! What the CLI's subcommands do, as library functions returning text and exit codes,
//! so that `main.rs` only parses flags and tests can call them directly.

pub mod deliver;
pub mod logs;
pub mod manual;
pub mod remote;
pub mod render;
pub mod schema;
pub mod test;
pub mod validate;

/// A command's result: what to print and how to exit.
#[derive(Debug, Default)]
pub struct Output {
    /// Printed to standard output.
    pub stdout: String,
    /// Printed to standard error.
    pub stderr: String,
    /// Process exit code: 0 ok, 1 bad input or configuration (`test`: 1 a test failed, 2
    /// invalid configuration or test file).
    pub code: i32,
}

/// `1 adaptor`, `2 adaptors`: one rule for counts in every message.
pub use crate::config::error::count;
