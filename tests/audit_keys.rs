//! `switchboard.yaml`'s `audit_keys`: the fields that make an entry findable by search,
//! chosen per configuration, through the real binary (`serve`, `logs --search`,
//! `/api/logs?search=`); its errors located like any file's.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

use common::ConfigDir;
use common::cli;
use common::process::Serve;
use common::receiver::{Receiver, Reply};
use common::server::{get, post};

/// A Convolo-style configuration whose lead's phone is in `phone`.
fn config(receiver: &Receiver, settings: Option<&str>) -> ConfigDir {
    let endpoint = format!(
        "url: {}\nmethod: POST\nbody_template: '{{\"to\":\"{{{{ phone }}}}\"}}'\n",
        receiver.url("/crm")
    );
    let mut files = vec![
        ("endpoints/crm.yaml", endpoint.as_str()),
        (
            "workflows/calls.yaml",
            "when:\n  - event: start_call\nactions:\n  - endpoint: crm\n",
        ),
    ];
    if let Some(text) = settings {
        files.push(("switchboard.yaml", text));
    }
    ConfigDir::new(&files)
}

async fn entries(url: &str, search: &str) -> Vec<Value> {
    let (status, text) = get(&format!("{url}/api/logs?search={search}"), &[]).await;
    assert_eq!(status, 200, "{text}");
    let page: Value = serde_json::from_str(&text).expect("JSON");
    page["entries"].as_array().expect("entries").clone()
}

#[tokio::test]
async fn a_phone_in_a_key_the_configuration_names_is_searchable() {
    let receiver = Receiver::start(Vec::new(), Reply::Status(200)).await;
    let config = config(
        &receiver,
        Some("# what makes an entry findable\naudit_keys: [phone, \"$.contact.email\"]\n"),
    );
    let data = tempfile::tempdir().expect("temp dir");
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let event = r#"{"type":"start_call","id":"call-1","data":{"phone":"+15550100007",
        "lead_id":"L-77","contact":{"email":"ana@example.com"}}}"#;
    let (status, _) = post(&format!("{}/events", serve.url), event, &[]).await;
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut found = Vec::new();
    while found.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        found = entries(&serve.url, "555-010-0007").await;
    }
    assert_eq!(
        found.len(),
        1,
        "the phone in another spelling finds the entry"
    );
    assert_eq!(found[0]["keys"]["phone"], "+15550100007");
    assert_eq!(found[0]["keys"]["$.contact.email"], "ana@example.com");
    assert_eq!(entries(&serve.url, "ana@example.com").await.len(), 1);
    assert!(
        entries(&serve.url, "L-77").await.is_empty(),
        "the list replaces the default one (lead_id is not in it)"
    );

    let out = cli()
        .args(["logs", "--json", "--search", "+1 (555) 010-0007", "--data"])
        .arg(data.path())
        .env("SWITCHBOARD_CONFIG", config.path())
        .output()
        .expect("run switchboard");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json.len(), 1, "logs --search finds it too");
    serve.stop();
}

#[tokio::test]
async fn without_the_file_the_default_keys_apply() {
    let receiver = Receiver::start(Vec::new(), Reply::Status(200)).await;
    let config = config(&receiver, None);
    let data = tempfile::tempdir().expect("temp dir");
    let serve = Serve::start(config.path(), data.path(), &[]).await;
    let event =
        r#"{"type":"start_call","id":"call-2","data":{"phone":"+15550100008","lead_id":"L-78"}}"#;
    post(&format!("{}/events", serve.url), event, &[]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut found = Vec::new();
    while found.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        found = entries(&serve.url, "L-78").await;
    }
    assert_eq!(found.len(), 1, "lead_id is a default key");
    assert!(entries(&serve.url, "555-010-0008").await.is_empty());
    serve.stop();
}

#[test]
fn its_errors_are_located() {
    let validate = |text: &str| {
        let dir = ConfigDir::new(&[("switchboard.yaml", text)]);
        let out = cli()
            .args(["validate", "--config"])
            .arg(dir.path())
            .output()
            .expect("run switchboard");
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let out = validate("audit_keys: [phone]\naudit_key: [lead_id]\n");
    assert!(
        out.contains("switchboard.yaml:2:1") && out.contains("unknown field `audit_key`"),
        "{out}"
    );
    let out = validate("audit_keys:\n  - phone\n  - \"@nope\"\n");
    assert!(
        out.contains("switchboard.yaml:3:5") && out.contains("unknown metadata @nope"),
        "{out}"
    );
}

/// An empty list is allowed but almost certainly a mistake: nothing would be searchable.
/// `validate` warns (exit 0), and `--strict` fails on it.
#[test]
fn an_empty_list_is_a_warning() {
    let dir = ConfigDir::new(&[
        ("switchboard.yaml", "audit_keys: []\n"),
        (
            "endpoints/crm.yaml",
            "url: http://127.0.0.1:9/x\nbody_template: '{}'\n",
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    let run = |strict: bool| {
        let mut command = cli();
        command.args(["validate", "--config"]).arg(dir.path());
        if strict {
            command.arg("--strict");
        }
        let out = command.output().expect("run switchboard");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(false);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: switchboard.yaml:1:13: audit_keys is empty"),
        "{err}"
    );
    assert_eq!(run(true).0, Some(1));
}
