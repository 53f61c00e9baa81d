//! The real `switchboard` binary: `render` (readable and JSON, files and stdin), one-line
//! errors with exit code 1 for bad events, `schema`, `--help`, and the shell completions and
//! man pages generated from the flags.

mod common;

use std::io::Write as _;
use std::process::{Output, Stdio};

use common::{cli, root};
use serde_json::Value;

fn run(args: &[&str]) -> Output {
    cli()
        .current_dir(root())
        .args(args)
        .output()
        .expect("run switchboard")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("utf-8")
}

#[test]
fn render_prints_a_readable_report() {
    let out = run(&[
        "render",
        "--event",
        "examples/starter/events/sale.json",
        "--now",
        "2026-11-21T10:00:00Z",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "event call.disposition (id starter-sale-1, source api, received 2026-11-21T10:00:00.000Z)",
        "workflows: 1 of 1 matched",
        "  ✓ disposition-to-crm",
        "      status = \"SALE\" (in [\"SALE\", \"APPT\", \"CALLBK\"])",
        "  1. disposition-to-crm → crm",
        "     POST http://127.0.0.1:9000/contacts",
        "     Authorization: ***",
        "       \"disposition\": \"won\",",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn render_reads_a_raw_payload_from_stdin_with_its_type() {
    let mut child = cli()
        .current_dir(root())
        .args([
            "render",
            "--config",
            "examples/convolo-calls-to-crm",
            "--event",
            "-",
            "--type",
            "end_call",
            "--json",
        ])
        .env("CONVOLO_HOOK_TOKEN", "t")
        .env("HUBSPOT_TOKEN", "t")
        .env("SLACK_WEBHOOK_TOKEN", "t")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let payload =
        std::fs::read(root().join("examples/convolo-calls-to-crm/payloads/end_call.json"))
            .expect("payload");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&payload)
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).expect("JSON output");
    assert_eq!(json["event"]["type"], "end_call");
    assert_eq!(json["requests"][0]["endpoint"], "hubspot-calls");
    assert_eq!(json["requests"][0]["method"], "POST");
    assert_eq!(json["requests"][0]["headers"]["Authorization"], "***");
    let keys: Vec<&str> = json["requests"][0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "workflow", "endpoint", "step", "method", "url", "headers", "body", "delay"
        ]
    );
}

#[test]
fn bad_event_files_are_one_line_and_exit_1() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"type\": \"call.disposition\", \"data\": {\"a\": }").expect("write");
    let bad = bad.to_string_lossy().into_owned();
    let raw = root().join("examples/convolo-calls-to-crm/payloads/start_call.json");
    let raw = raw.to_string_lossy().into_owned();
    let cases = [
        (
            vec!["render", "--event", bad.as_str()],
            format!("error: {bad}: invalid JSON: expected value (line 1, column 44)"),
        ),
        (
            vec!["render", "--event", "/nonexistent.json"],
            "error: cannot read /nonexistent.json: No such file or directory (os error 2)"
                .to_string(),
        ),
        (
            vec!["render", "--event", raw.as_str()],
            format!(
                "error: {raw}: this is a raw payload, not an envelope {{\"type\", \"data\"}}: give its event type with --type (its \"type\" field says \"start_call\": --type start_call)"
            ),
        ),
    ];
    for (args, expected) in cases {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), format!("{expected}\n"));
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn render_with_a_broken_configuration_prints_its_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("workflows")).expect("mkdir");
    std::fs::write(
        dir.path().join("workflows/w.yaml"),
        "when: []\nactions: []\n",
    )
    .expect("write");
    let out = cli()
        .args([
            "render",
            "--event",
            "examples/starter/events/sale.json",
            "--config",
        ])
        .arg(dir.path())
        .current_dir(root())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "workflows/w.yaml:1:7: `when` is empty: a workflow needs at least one trigger\nworkflows/w.yaml:2:10: `actions` is empty: list at least one endpoint\n"
    );
}

#[test]
fn schema_describes_the_three_kinds() {
    let out = run(&["schema"]);
    assert!(out.status.success());
    let combined: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(combined["anyOf"].as_array().map(Vec::len), Some(3));
    for kind in ["adaptor", "endpoint", "workflow"] {
        let out = run(&["schema", "--kind", kind]);
        let schema: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        assert_eq!(schema["title"], kind);
        assert_eq!(
            schema["additionalProperties"], false,
            "{kind}: unknown keys are errors"
        );
        assert!(combined["$defs"][kind]["properties"].is_object());
    }
    let dir = tempfile::tempdir().expect("tmp");
    let out = cli()
        .args(["schema", "--out"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(out.status.success());
    for kind in ["adaptor", "endpoint", "workflow"] {
        assert!(dir.path().join(format!("{kind}.schema.json")).is_file());
    }
}

/// Every key written in the repository's YAML files is a property of its kind's schema,
/// so the schema an editor uses accepts what switchboard accepts.
#[test]
fn schema_knows_every_key_the_examples_use() {
    let mut configs = vec![root()];
    configs.extend(
        std::fs::read_dir(root().join("examples"))
            .expect("examples")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("workflows").is_dir()),
    );
    let mut checked = 0;
    for (folder, kind) in [
        ("adaptors", "adaptor"),
        ("endpoints", "endpoint"),
        ("workflows", "workflow"),
    ] {
        let schema: Value =
            serde_json::from_str(&stdout(&run(&["schema", "--kind", kind]))).expect("JSON");
        let properties = schema["properties"].as_object().expect("properties");
        for config in &configs {
            let Ok(entries) = std::fs::read_dir(config.join(folder)) else {
                continue;
            };
            // Test files (`*.test.yaml`) sit beside the configuration but are not part of it.
            let files = entries
                .filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().ends_with(".test.yaml"));
            for file in files {
                let yaml: serde_yaml::Value =
                    serde_yaml::from_str(&std::fs::read_to_string(file.path()).expect("read"))
                        .expect("yaml");
                for key in yaml.as_mapping().expect("mapping").keys() {
                    let key = key.as_str().expect("string key");
                    assert!(
                        properties.contains_key(key),
                        "{}: {key} not in the {kind} schema",
                        file.path().display()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 50, "{checked}");
}

#[test]
fn help_documents_every_flag() {
    let out = run(&["--help"]);
    let text = stdout(&out);
    for command in ["validate", "render", "schema"] {
        assert!(text.contains(command), "{text}");
    }
    let render = stdout(&run(&["render", "--help"]));
    for flag in [
        "--config",
        "--event",
        "--type",
        "--json",
        "--now",
        "SWITCHBOARD_CONFIG",
    ] {
        assert!(
            render.contains(flag),
            "render --help lacks {flag}:\n{render}"
        );
    }
    let test = stdout(&run(&["test", "--help"]));
    for flag in [
        "--config",
        "--json",
        "[FILE]...",
        "*.test.yaml",
        "SWITCHBOARD_CONFIG",
    ] {
        assert!(test.contains(flag), "test --help lacks {flag}:\n{test}");
    }
    let schema = stdout(&run(&["schema", "--help"]));
    assert!(schema.contains("--kind") && schema.contains("--out"));
    let out = run(&["render"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(stderr(&out).contains("--event"));
}

/// Every subcommand a user can type.
const SUBCOMMANDS: [&str; 11] = [
    "serve",
    "mock",
    "validate",
    "render",
    "test",
    "send",
    "logs",
    "replay",
    "schema",
    "completions",
    "man",
];

#[test]
fn completions_know_the_subcommands_and_their_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for word in SUBCOMMANDS
            .iter()
            .chain(&["header-timeout", "dedupe-window"])
        {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let bash = stdout(&run(&["completions", "bash"]));
    assert!(bash.contains("complete -F _switchboard"), "{bash}");
    assert!(bash.contains("--header-timeout"));
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(stderr(&out).contains("bash"), "{}", stderr(&out));
}

#[test]
fn man_prints_a_roff_page_naming_every_subcommand() {
    let out = run(&["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.contains(".TH switchboard 1"), "{page}");
    assert!(page.contains(".SH SYNOPSIS") && page.contains(".SH SUBCOMMANDS"));
    for command in SUBCOMMANDS {
        assert!(
            page.contains(&format!("switchboard\\-{command}(1)")),
            "the page does not name {command}:\n{page}"
        );
    }
    // Only pages that exist are pointed to.
    assert!(!page.contains("switchboard\\-help(1)"), "{page}");

    let dir = tempfile::tempdir().unwrap();
    let out = run(&["man", "--out", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for command in SUBCOMMANDS {
        let file = dir.path().join(format!("switchboard-{command}.1"));
        assert!(file.exists(), "no {}", file.display());
    }
    let serve = std::fs::read_to_string(dir.path().join("switchboard-serve.1")).unwrap();
    for flag in [
        "\\-\\-header\\-timeout",
        "\\-\\-drain",
        "SWITCHBOARD_API_TOKEN",
    ] {
        assert!(
            serve.contains(flag),
            "switchboard-serve.1 lacks {flag}:\n{serve}"
        );
    }
}
