//! `switchboard test`: runs a configuration's tests (`*.test.yaml`) through the dry run and
//! reports each difference from what they expect. Sends nothing.
//!
//! Exit codes: 0 every test passed, 1 one failed, 2 the configuration or a test file is
//! invalid (every error located, as `validate` prints them). Reading the files is
//! `spec.rs`'s job, judging a dry run `compare.rs`'s; this file finds, runs and prints.

mod compare;
mod spec;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Output;
use crate::config::{ConfigError, is_test_file};

/// The folders of a configuration that hold its test files, besides the folder itself.
const TEST_FOLDERS: [&str; 4] = ["adaptors", "endpoints", "workflows", "tests"];

/// What to test.
#[derive(Debug)]
pub struct Args<'a> {
    /// The configuration folder.
    pub config: &'a Path,
    /// Test files to run; none means every one of the configuration.
    pub files: &'a [PathBuf],
    /// Print JSON instead of a readable report.
    pub json: bool,
}

/// One test's result, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Outcome {
    file: String,
    line: usize,
    name: String,
    passed: bool,
    problems: Vec<String>,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    passed: usize,
    failed: usize,
    tests: &'a [Outcome],
}

/// Runs the tests.
pub fn run(args: &Args) -> Output {
    let mut out = Output::default();
    let mut errors: Vec<ConfigError> = Vec::new();
    let loaded = match crate::load(args.config) {
        Ok(loaded) => Some(loaded),
        Err(e) => {
            errors.extend(e.errors);
            None
        }
    };
    let files = if args.files.is_empty() {
        find(args.config)
    } else {
        args.files
            .iter()
            .map(|p| (p.clone(), p.display().to_string()))
            .collect()
    };
    // One clock for the whole run: tests without `now` agree with each other.
    let now: DateTime<Utc> = Utc::now();
    let engine = loaded.as_ref().map(|l| &l.engine);
    let cases: Vec<spec::Case> = files
        .iter()
        .flat_map(|(path, shown)| spec::read(path, shown, engine, now, &mut errors))
        .collect();
    let Some(engine) = engine.filter(|_| errors.is_empty()) else {
        let at = |e: &ConfigError| e.spot.map(|s| (s.line, s.col));
        errors.sort_by(|a, b| a.file.cmp(&b.file).then(at(a).cmp(&at(b))));
        for error in &errors {
            let _ = writeln!(out.stderr, "{error}");
        }
        let n = errors.len();
        let s = if n == 1 { "" } else { "s" };
        let _ = writeln!(out.stderr, "{n} error{s}: no test was run");
        out.code = 2;
        return out;
    };
    if files.is_empty() {
        let _ = writeln!(
            out.stderr,
            "no test files (*.test.yaml) in {}",
            args.config.display()
        );
    }
    let outcomes: Vec<Outcome> = cases
        .into_iter()
        .map(|case| {
            let mut run = engine.dry_run_steps(&case.event, case.now, &case.steps);
            for (workflow, fired) in &case.fired {
                engine.count_fired(&mut run, &case.event, workflow, *fired);
            }
            // What the user expected may quote a secret too: nothing shown holds one.
            let problems: Vec<String> = compare::problems(&case.expect, &run)
                .iter()
                .map(|p| engine.redact(p).into_owned())
                .collect();
            Outcome {
                file: case.file,
                line: case.line,
                name: case.name,
                passed: problems.is_empty(),
                problems,
            }
        })
        .collect();
    let passed = outcomes.iter().filter(|o| o.passed).count();
    let failed = outcomes.len() - passed;
    if args.json {
        let summary = Summary {
            passed,
            failed,
            tests: &outcomes,
        };
        out.stdout = serde_json::to_string_pretty(&summary).unwrap_or_default();
        out.stdout.push('\n');
    } else {
        report(&outcomes, &mut out.stdout);
        let n = outcomes.len();
        let s = if n == 1 { "" } else { "s" };
        let _ = writeln!(
            out.stdout,
            "\n{n} test{s}: {passed} passed, {failed} failed"
        );
    }
    out.code = i32::from(failed > 0);
    out
}

/// The readable report: a line per test, and under a failure each difference.
fn report(outcomes: &[Outcome], out: &mut String) {
    for o in outcomes {
        let verdict = if o.passed { "ok  " } else { "FAIL" };
        let _ = writeln!(out, "{verdict} {}:{}: {}", o.file, o.line, o.name);
        for problem in &o.problems {
            let _ = writeln!(out, "       {problem}");
        }
    }
}

/// The configuration's test files, with the names reports show (relative to `dir`): in
/// `dir` itself and in its `adaptors/`, `endpoints/`, `workflows/` and `tests/` folders.
fn find(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let folders = std::iter::once("").chain(TEST_FOLDERS);
    for folder in folders {
        let Ok(entries) = std::fs::read_dir(dir.join(folder)) else {
            continue;
        };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden || !is_test_file(&path) || !path.is_file() {
                continue;
            }
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let shown = if folder.is_empty() {
                name.into_owned()
            } else {
                format!("{folder}/{name}")
            };
            found.push((path, shown));
        }
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found
}
