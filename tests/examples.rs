//! Every example integration validates without warnings, and every sample event renders to
//! exactly the requests pinned in its `expected/` folder (through the real CLI binary).
//! Where a workflow has steps, `captures/<event>.json` holds what the earlier steps
//! captured when the event was served (`{"STEP": {"NAME": value}}`, as a test's `steps:`),
//! given to `render` as `--capture STEP.NAME=VALUE`.
//!
//! After an intended change, regenerate with `UPDATE_EXPECT=1 cargo test --test examples`
//! and review the diff: each expected file is what a careful integrator would send.

mod common;

use std::path::{Path, PathBuf};

use common::{cli, root};

/// (configuration folder, folder with events/ and expected/).
fn examples() -> Vec<(PathBuf, PathBuf)> {
    let mut found = vec![(root(), root().join("examples/starter"))];
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("workflows").is_dir())
        .collect();
    dirs.sort();
    found.extend(dirs.into_iter().map(|d| (d.clone(), d)));
    found
}

/// KEY=value lines of an example's env.example (`#` lines are comments).
fn example_env(dir: &Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(dir.join("env.example")) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `--capture STEP.NAME=VALUE` arguments from the example's `captures/<event>.json`, if any.
fn capture_args(dir: &Path, event: &Path) -> Vec<String> {
    let file = dir
        .join("captures")
        .join(event.file_name().expect("file name"));
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Vec::new();
    };
    let steps: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut args = Vec::new();
    for (step, values) in steps {
        for (name, value) in values.as_object().expect("STEP: {NAME: value}") {
            // VALUE is read as JSON: "901" stays a string, 200 a number.
            args.push("--capture".to_string());
            args.push(format!("{step}.{name}={value}"));
        }
    }
    args
}

#[test]
fn there_are_at_least_four_examples_besides_the_starter() {
    assert!(examples().len() >= 5, "{:?}", examples());
}

#[test]
fn every_example_validates_without_warnings() {
    for (config, dir) in examples() {
        let out = cli()
            .args(["validate", "--config"])
            .arg(&config)
            .envs(example_env(&dir))
            .output()
            .expect("run switchboard");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", config.display());
        assert!(
            stderr.is_empty(),
            "{} has warnings:\n{stderr}",
            config.display()
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
    }
}

#[test]
fn every_example_event_renders_the_pinned_requests() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for (config, dir) in examples() {
        let mut events: Vec<PathBuf> = std::fs::read_dir(dir.join("events"))
            .unwrap_or_else(|_| panic!("{} has no events/", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        events.sort();
        assert!(!events.is_empty(), "{} has no sample events", dir.display());
        if let Ok(captures) = std::fs::read_dir(dir.join("captures")) {
            for file in captures.filter_map(|e| e.ok()) {
                assert!(
                    dir.join("events").join(file.file_name()).is_file(),
                    "{} is for no event of events/",
                    file.path().display()
                );
            }
        }
        for event in events {
            let out = cli()
                .args([
                    "render",
                    "--json",
                    "--now",
                    "2026-11-21T10:00:00Z",
                    "--config",
                ])
                .arg(&config)
                .arg("--event")
                .arg(&event)
                .args(capture_args(&dir, &event))
                .envs(example_env(&dir))
                .output()
                .expect("run switchboard");
            assert!(
                out.status.success(),
                "{}: {}",
                event.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let actual = String::from_utf8(out.stdout).expect("utf-8 output");
            let expected_path = dir
                .join("expected")
                .join(event.file_name().expect("file name"));
            if update {
                std::fs::create_dir_all(expected_path.parent().expect("parent")).expect("mkdir");
                std::fs::write(&expected_path, &actual).expect("write expected");
            }
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
            if actual != expected {
                mismatches.push(format!(
                    "{}\n--- expected\n{expected}\n--- actual\n{actual}",
                    event.display()
                ));
            }
            checked += 1;
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {checked} renders differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn render_output_never_contains_a_secret_value() {
    for (config, dir) in examples() {
        let env = example_env(&dir);
        for event in std::fs::read_dir(dir.join("events"))
            .expect("events")
            .filter_map(|e| e.ok())
        {
            for json in [true, false] {
                let mut cmd = cli();
                cmd.args(["render", "--config"])
                    .arg(&config)
                    .arg("--event")
                    .arg(event.path())
                    .envs(env.clone());
                if json {
                    cmd.arg("--json");
                }
                let out = cmd.output().expect("run switchboard");
                let text = String::from_utf8_lossy(&out.stdout);
                for (name, value) in &env {
                    let secret = ["TOKEN", "KEY", "SECRET", "PASS"]
                        .iter()
                        .any(|w| name.contains(w));
                    if secret {
                        assert!(
                            !text.contains(value.as_str()),
                            "{name} leaked in {}",
                            event.path().display()
                        );
                    }
                }
            }
        }
    }
}
