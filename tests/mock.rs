//! `switchboard mock` through the real binary: statuses by path prefix, bodies, headers,
//! what it prints, and the errors of bad flags.

mod common;

use std::io::{BufRead as _, Read as _};
use std::process::{Child, Stdio};

use common::cli;
use common::server::client;

/// A running `switchboard mock` on a free port.
struct Mock {
    child: Child,
    url: String,
}

impl Mock {
    fn start(flags: &[&str]) -> Mock {
        let mut child = cli()
            .args(["mock", "--listen", "127.0.0.1:0"])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mock starts");
        let mut first = String::new();
        std::io::BufReader::new(child.stderr.take().expect("piped"))
            .read_line(&mut first)
            .expect("read stderr");
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .trim_end_matches(',')
            .to_string();
        Mock { child, url }
    }

    /// Stops it and returns what it printed.
    fn printed(mut self) -> String {
        let _ = self.child.kill();
        let mut text = String::new();
        self.child
            .stdout
            .take()
            .expect("piped")
            .read_to_string(&mut text)
            .expect("read stdout");
        let _ = self.child.wait();
        text
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn ask(url: String) -> (u16, String, reqwest::header::HeaderMap) {
    let response = client()
        .post(url)
        .header("x-probe", "p-1")
        .body("{\"lead\":7}")
        .send()
        .await
        .expect("mock answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.text().await.expect("body"), headers)
}

#[tokio::test]
async fn statuses_follow_the_longest_path_prefix_with_default_bodies() {
    let mock = Mock::start(&["--status", "/crm=500", "--status", "/crm/contacts=201"]);
    let (status, body, headers) = ask(format!("{}/crm/contacts/9", mock.url)).await;
    assert_eq!((status, body.as_str()), (201, "{\"ok\":true}"));
    assert_eq!(headers["content-type"], "application/json");
    let (status, body, _) = ask(format!("{}/crm/deals", mock.url)).await;
    assert_eq!(
        (status, body.as_str()),
        (500, "{\"error\":\"mock status 500\"}")
    );
    let (status, body, _) = ask(format!("{}/slack", mock.url)).await;
    assert_eq!((status, body.as_str()), (200, "{\"ok\":true}"));
    let printed = mock.printed();
    assert!(printed.contains("POST /crm/contacts/9 → 201"), "{printed}");
    assert!(printed.contains("x-probe: p-1"), "{printed}");
    assert!(printed.contains("{\"lead\":7}"), "{printed}");
}

#[tokio::test]
async fn a_default_status_body_from_a_file_and_headers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("answer.json");
    std::fs::write(&file, "{\"id\":\"c-42\"}").expect("write");
    let body = format!("@{}", file.display());
    let mock = Mock::start(&[
        "--status",
        "202",
        "--body",
        &body,
        "--header",
        "X-Request-Id: r-1",
        "--header",
        "Retry-After: 3",
        "--quiet",
    ]);
    let (status, body, headers) = ask(format!("{}/any", mock.url)).await;
    assert_eq!((status, body.as_str()), (202, "{\"id\":\"c-42\"}"));
    assert_eq!(headers["x-request-id"], "r-1");
    assert_eq!(headers["retry-after"], "3");
    assert_eq!(mock.printed(), "", "--quiet prints nothing");
    let mock = Mock::start(&["--status", "503", "--body", "busy"]);
    let (status, body, headers) = ask(mock.url.clone()).await;
    assert_eq!((status, body.as_str()), (503, "busy"));
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
}

#[test]
fn bad_flags_get_clear_errors() {
    let fails = |flags: &[&str], code: i32, says: &str| {
        let out = cli()
            .args(["mock", "--listen", "127.0.0.1:0"])
            .args(flags)
            .output()
            .expect("run switchboard");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{flags:?}: {stderr}");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
    };
    fails(&["--status", "700"], 2, "not an HTTP status (100 to 599)");
    fails(&["--status", "slack=500"], 2, "must start with `/`");
    fails(&["--status", "/slack"], 2, "after `=`");
    fails(
        &["--status", "200", "--status", "500"],
        1,
        "give one status",
    );
    fails(
        &["--status", "/a=200", "--status", "/a=500"],
        1,
        "--status /a is given twice",
    );
    fails(&["--header", "X-Id 1"], 2, "\"Name: value\"");
    fails(
        &["--body", "@/nonexistent/answer.json"],
        2,
        "cannot read /nonexistent",
    );
    fails(&["--delay", "soon"], 2, "--delay");
}
