//! `logs` and `replay` refuse what would only answer "nothing": a data folder that holds no
//! store (and they create none), and an endpoint or workflow name that is not known.

mod common;

use std::path::Path;
use std::process::Output;

use common::{ConfigDir, cli};

fn run(args: &[&str], data: &Path) -> Output {
    cli()
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("run switchboard")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("utf-8")
}

/// A configuration whose endpoint refuses connections.
fn config() -> ConfigDir {
    ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - from: phone\n    to: phone\n",
        ),
        (
            "endpoints/crm.yaml",
            "url: http://127.0.0.1:9/contacts\nadaptor: contact\n",
        ),
        (
            "workflows/sales.yaml",
            "when:\n  - event: sale\nactions:\n  - endpoint: crm\n",
        ),
        (
            "events/sale.json",
            r#"{"type": "sale", "id": "s-1", "data": {"phone": "5551234567"}}"#,
        ),
    ])
}

#[test]
fn logs_and_replay_refuse_a_folder_without_a_store_and_create_none() {
    let config = config();
    let parent = tempfile::tempdir().expect("temp dir");
    let empty = parent.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let missing = parent.path().join("missing");
    for data in [&empty, &missing] {
        let expected = format!(
            "error: no store in {}: nothing was ever accepted there (check --data or --store; `serve` and `send` create it)\n",
            data.display()
        );
        let out = run(&["logs"], data);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(stderr(&out), expected);
        let mut replay = vec!["replay", "--failed", "--config"];
        let dir = config.path().to_str().expect("utf-8 path");
        replay.push(dir);
        let out = run(&replay, data);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(stderr(&out), expected);
        let out = run(&["logs", "show", "01JXXXXXXXXXXXXXXXXXXXXXXX"], data);
        assert_eq!(stderr(&out), expected);
    }
    // Nothing was created.
    assert_eq!(std::fs::read_dir(&empty).expect("read").count(), 0);
    assert!(!missing.exists());
}

#[test]
fn unknown_endpoint_and_workflow_names_are_errors_naming_the_known_ones() {
    let config = config();
    let data = tempfile::tempdir().expect("temp dir");
    let dir = config.path().to_str().expect("utf-8 path");
    let event = config.path().join("events/sale.json");
    let event = event.to_str().expect("utf-8 path");
    let out = run(
        &["send", "--config", dir, "--event", event, "--wait", "0s"],
        data.path(),
    );
    assert_ne!(out.status.code(), Some(1), "{}", stderr(&out));

    let out = run(&["logs", "--endpoint", "crmm"], data.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: unknown endpoint \"crmm\" (did you mean \"crm\"? known: crm): the connect log has no entry for it\n"
    );
    let out = run(
        &["logs", "--workflow", "sale", "--endpoint", "crm"],
        data.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: unknown workflow \"sale\" (did you mean \"sales\"? known: sales): the connect log has no entry for it\n"
    );
    // Known names answer as before.
    let out = run(
        &["logs", "--workflow", "sales", "--endpoint", "crm"],
        data.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("crm"));

    let out = run(
        &["replay", "--config", dir, "--failed", "--endpoint", "crn"],
        data.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: unknown endpoint \"crn\" (did you mean \"crm\"? known: crm)\n"
    );
}
