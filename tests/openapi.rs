//! `docs/openapi.json` against the server that exists: every path the router routes is
//! documented and every documented path is routed; a running server answers each
//! documented method with a status the document lists, and every other method with 405;
//! every error it documents is `{"error": string}`; a server with a token asks for it
//! exactly where the document says; `GET /api/openapi.json` serves the same document.

mod common;

use std::collections::BTreeSet;

use common::server::{Server, client};
use common::{ConfigDir, root};
use serde_json::Value;

fn document() -> Value {
    let text =
        std::fs::read_to_string(root().join("docs/openapi.json")).expect("docs/openapi.json");
    serde_json::from_str(&text).expect("docs/openapi.json is JSON")
}

/// A path with its parameters unnamed, so that axum's `/events/{kind}` and catch-all
/// `/hooks/{*path}` read as the document's `/events/{type}` and `/hooks/{path}`.
fn shape(path: &str) -> String {
    let mut shape = String::new();
    let mut in_parameter = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_parameter = true;
                shape.push_str("{}");
            }
            '}' => in_parameter = false,
            c if !in_parameter => shape.push(c),
            _ => {}
        }
    }
    shape
}

/// The paths `server::router` routes, read from its `.route("…", …)` calls.
fn routed_paths() -> BTreeSet<String> {
    let source = std::fs::read_to_string(root().join("src/server/mod.rs")).expect("source");
    let router = source
        .split("pub fn router(")
        .nth(1)
        .expect("src/server/mod.rs has `pub fn router(`");
    let router = &router[..router.find("\n}\n").expect("the end of router")];
    let paths: BTreeSet<String> = router
        .split(".route(\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').expect("a closing quote")].to_string())
        .collect();
    assert!(
        paths.len() >= 15,
        "the routes were not found in router(): {paths:?}"
    );
    paths
}

fn documented_paths(doc: &Value) -> BTreeSet<String> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect()
}

/// A `$ref` into `components`, followed.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(target) => doc
            .pointer(target.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{target} does not resolve")),
        None => value,
    }
}

#[test]
fn every_route_is_documented_and_every_documented_path_is_a_route() {
    let doc = document();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "an OpenAPI 3.1 document"
    );
    let routed = routed_paths();
    let documented = documented_paths(&doc);
    let shapes = |paths: &BTreeSet<String>| paths.iter().map(|p| shape(p)).collect::<BTreeSet<_>>();
    let (routed_shapes, documented_shapes) = (shapes(&routed), shapes(&documented));
    let undocumented: Vec<_> = routed
        .iter()
        .filter(|p| !documented_shapes.contains(&shape(p)))
        .collect();
    let unrouted: Vec<_> = documented
        .iter()
        .filter(|p| !routed_shapes.contains(&shape(p)))
        .collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.json: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "docs/openapi.json documents paths the server does not route: {unrouted:?}"
    );
}

#[test]
fn every_documented_error_is_the_error_object() {
    let doc = document();
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    assert_eq!(error["properties"]["error"]["type"], "string");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                // Readiness is a report in either state, not an error.
                if !(status.starts_with('4') || status.starts_with('5')) || path == "/readyz" {
                    continue;
                }
                let schema = &resolve(&doc, response)["content"]["application/json"]["schema"];
                assert_eq!(
                    schema["$ref"], "#/components/schemas/Error",
                    "{method} {path} {status} is not documented as the error object"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "{checked}");
}

#[test]
fn paths_compare_by_shape() {
    assert_eq!(shape("/hooks/{*path}"), shape("/hooks/{path}"));
    assert_eq!(shape("/events/{kind}"), "/events/{}");
    assert_ne!(shape("/api/logs/{id}"), shape("/api/logs/export"));
}

/// A sample value for each path parameter the document uses.
fn sample(path: &str) -> String {
    path.replace("{type}", "call.unknown")
        .replace("{id}", "01J00000000000000000000000")
        .replace("{path}", "deep/test")
        .replace("{file}", "app.js")
}

/// Whether `status` is one of the responses documented for the operation, or one the
/// HTTP layer may give any request (the document's introduction names them).
fn listed(operation: &Value, status: u16) -> bool {
    let responses = operation["responses"].as_object().unwrap();
    responses.contains_key(&status.to_string())
        || responses.contains_key(&format!("{}XX", status / 100))
        || [400, 405, 414, 431].contains(&status)
}

#[tokio::test]
async fn a_running_server_answers_what_the_document_says() {
    let doc = document();
    let config = ConfigDir::new(&[(
        "endpoints/test.yaml",
        "direction: inbound\npath: /hooks/deep/test\nmethods: [GET, POST]\nevent_type: test\n",
    )]);
    let s = Server::start(config, |_| {}).await;
    let c = client();
    let methods = ["get", "post", "put", "patch", "delete"];
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let url = format!("{}{}", s.url, sample(path));
        for method in methods {
            let verb = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut request = c.request(verb, &url);
            if method != "get" && method != "delete" {
                request = request
                    .header("content-type", "application/json")
                    .body("{}");
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if status >= 400 {
                assert!(
                    json["error"].is_string(),
                    "{method} {path}: {status} without an error object: {body}"
                );
            }
            match item.get(method) {
                Some(operation) => {
                    operations += 1;
                    let unrouted = json["error"]
                        .as_str()
                        .is_some_and(|e| e.starts_with("no route"));
                    assert!(
                        status != 405 && !unrouted,
                        "{method} {path} is documented but not served: {status} {body}"
                    );
                    assert!(
                        listed(operation, status),
                        "{method} {path} answered {status}, which the document does not list: {body}"
                    );
                }
                None => assert_eq!(
                    status, 405,
                    "{method} {path} is not documented, yet answered: {body}"
                ),
            }
        }
    }
    assert!(operations >= 19, "{operations}");

    // The server serves the document itself.
    let response = c
        .get(format!("{}/api/openapi.json", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let served: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(served, doc);
    s.stop().await;
}

#[tokio::test]
async fn the_documented_security_is_what_a_server_with_a_token_asks_for() {
    let doc = document();
    let s = Server::start(ConfigDir::new(&[]), |settings| {
        settings.api_token = Some("s3cret".into());
    })
    .await;
    let c = client();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let security = operation.get("security").unwrap_or(&doc["security"]);
            let schemes = security.as_array().unwrap();
            // `[]` is open; a list with `{}` is optional (/metrics with --public-metrics).
            let required = !schemes.is_empty()
                && schemes
                    .iter()
                    .all(|s| s.as_object().is_some_and(|o| !o.is_empty()));
            let open = schemes.is_empty();
            let verb = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = c
                .request(verb, format!("{}{}", s.url, sample(path)))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            if required {
                assert_eq!(status, 401, "{method} {path} needs the token, yet answered");
                assert!(listed(operation, 401), "{method} {path} does not list 401");
            } else if open {
                assert_ne!(status, 401, "{method} {path} is documented as open");
            }
            checked += 1;
        }
    }
    assert!(checked >= 19, "{checked}");
    s.stop().await;
}
