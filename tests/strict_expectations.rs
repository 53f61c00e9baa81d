//! Found by trying to break `switchboard test` and `switchboard mock`: expectations that
//! passed when they must not (large whole numbers, `body: null`), and a mock header that
//! broke every answer. Each test failed before its fix.

mod common;

use std::process::Output;

use common::{cli, root};

/// `switchboard test` on the HubSpot example with one test file holding `text`.
fn run_test(text: &str) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("check.test.yaml");
    std::fs::write(&path, text).expect("write test file");
    cli()
        .arg("test")
        .arg("--config")
        .arg(root().join("examples/convoso-hubspot"))
        .arg(&path)
        .env(
            "HUBSPOT_TOKEN",
            "pat-na1-00000000-0000-0000-0000-000000000000",
        )
        .output()
        .expect("run switchboard")
}

#[test]
fn integers_past_2_pow_53_are_compared_exactly() {
    // The body holds 1234567890123456789; the expectation is one less. Compared as f64
    // both are 1234567890123456768, so the test passed.
    let out = run_test(
        r#"tests:
  - name: an id off by one
    event:
      type: call.disposition
      data: {phone_number: "5551234567", status: SALE, length_in_sec: "1234567890123456789", campaign_id: "1042"}
    expect:
      requests:
        - body: {properties: {convoso_last_call_seconds: 1234567890123456788}}
"#,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("convoso_last_call_seconds"), "{text}");
}

#[test]
fn body_null_expects_no_body_and_is_not_ignored() {
    // `body: null` read as "no expectation": a request with a JSON body passed it.
    let out = run_test(
        r#"tests:
  - name: expects no body
    event:
      type: call.disposition
      data: {phone_number: "5551234567", status: SALE, length_in_sec: 45, campaign_id: "1042"}
    expect:
      requests:
        - body: null
"#,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "passed: {text}");
}

#[test]
fn mock_refuses_framing_headers_instead_of_breaking_every_answer() {
    // `--header "Content-Length: 5"` made hyper panic on every answer (the client saw the
    // connection close), `Transfer-Encoding: chunked` gave an empty reply.
    for header in ["Content-Length: 5", "Transfer-Encoding: chunked"] {
        let out = cli()
            .args(["mock", "--listen", "127.0.0.1:0", "--header", header])
            .stdin(std::process::Stdio::null())
            .output_with_timeout();
        assert_eq!(out, Some(2), "{header}: the mock started");
    }
}

trait WithTimeout {
    fn output_with_timeout(&mut self) -> Option<i32>;
}

impl WithTimeout for std::process::Command {
    /// The exit code, or None when it was still running after 3 s (then killed).
    fn output_with_timeout(&mut self) -> Option<i32> {
        let mut child = self
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run switchboard");
        for _ in 0..30 {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}
