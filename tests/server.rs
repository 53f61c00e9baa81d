//! `switchboard serve` over real sockets: ingest, inbound hooks with every auth kind, the
//! admin API, the documented 4xx answers, health and metrics, and reloads.

mod common;
#[path = "common/postgres.rs"]
mod postgres_server;

use std::time::Duration;

use common::receiver::{Receiver, Reply};
use common::server::{Server, client, get, post, seen};
use common::{ConfigDir, root};
use serde_json::{Value, json};
use switchboard::engine::signing::SigningKey;

fn crm_config(rx: &Receiver, extra: &[(&str, &str)]) -> ConfigDir {
    let endpoint = format!("url: {}\nadaptor: contact\n", rx.url("/contacts"));
    let mut files: Vec<(&str, &str)> = vec![
        (
            "adaptors/contact.yaml",
            "fields:\n  - {from: phone_number, to: phone}\n  - {from: status, to: status}\n",
        ),
        ("endpoints/crm.yaml", &endpoint),
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\n  - field: status\n    in: [SALE, APPT]\nactions:\n  - endpoint: crm\n",
        ),
    ];
    files.extend_from_slice(extra);
    ConfigDir::new(&files)
}

#[tokio::test]
async fn an_event_is_answered_202_then_delivered_and_logged() {
    let rx = Receiver::start(vec![], Reply::Status(201)).await;
    let s = Server::start(crm_config(&rx, &[]), |_| {}).await;
    let (status, body) = post(
        &format!("{}/events", s.url),
        r#"{"type": "call.disposition", "id": "call-1", "data": {"status": "SALE", "phone_number": "+15551234567"}}"#,
        &[],
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(body["id"], "call-1");
    assert_eq!(body["duplicate"], false);
    assert_eq!(body["deliveries"][0]["workflow"], "sale");
    assert_eq!(body["deliveries"][0]["endpoint"], "crm");
    let delivery = body["deliveries"][0]["id"].as_str().unwrap().to_string();
    seen(&rx, 1).await;
    assert_eq!(
        rx.requests()[0].body,
        r#"{"phone":"+15551234567","status":"SALE"}"#
    );
    // A repeat of the id is acknowledged, not run again.
    let (status, again) = post(
        &format!("{}/events", s.url),
        r#"{"type": "call.disposition", "id": "call-1", "data": {"status": "SALE"}}"#,
        &[],
    )
    .await;
    assert_eq!(
        (
            status,
            again["duplicate"].clone(),
            again["deliveries"][0]["id"].clone()
        ),
        (202, json!(true), json!(delivery))
    );
    // A raw payload with its type in the path, its id from Idempotency-Key.
    let (status, raw) = post(
        &format!("{}/events/call.disposition", s.url),
        r#"{"status": "APPT", "phone_number": "1"}"#,
        &[("idempotency-key", "idem-9")],
    )
    .await;
    assert_eq!((status, raw["id"].clone()), (202, json!("idem-9")));
    // An array of envelopes.
    let (status, many) = post(
        &format!("{}/events", s.url),
        r#"[{"type": "call.disposition", "data": {"status": "NI"}}, {"type": "call.disposition", "data": {"status": "SALE"}}]"#,
        &[],
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(many.as_array().map(Vec::len), Some(2));
    assert_eq!(many[0]["deliveries"], json!([]));
    seen(&rx, 3).await;
    // The delivery and its attempt through the API.
    let mut attempts = Value::Null;
    for _ in 0..100 {
        let (_, text) = get(&format!("{}/api/deliveries/{delivery}", s.url), &[]).await;
        attempts = serde_json::from_str::<Value>(&text).unwrap()["attempts"].clone();
        if attempts.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(attempts[0]["outcome"], "delivered");
    assert_eq!(attempts[0]["response"]["status"], 201);
    s.stop().await;
}

#[tokio::test]
async fn bad_requests_get_the_specs_4xx_with_a_json_error() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let hook = (
        "endpoints/hook.yaml",
        "direction: inbound\npath: /hooks/office\nmethods: [POST]\nevent_type: call.disposition\nallow_from: [10.0.0.0/8]\n",
    );
    let s = Server::start(crm_config(&rx, &[hook]), |s| s.max_body = 2048).await;
    let events = format!("{}/events", s.url);
    let cases: Vec<(u16, (u16, Value), &str)> = vec![
        (
            400,
            post(&events, "{\"type\": ", &[]).await,
            "malformed JSON: EOF while parsing a value at line 1 column 9",
        ),
        (
            400,
            post(&events, r#"{"type": "call.disposition", "data": []}"#, &[]).await,
            "event data must be a JSON object, got an array",
        ),
        (
            404,
            post(&events, r#"{"type": "lead.created", "data": {}}"#, &[]).await,
            "unknown event type \"lead.created\": no workflow listens for it (known: call.disposition)",
        ),
        (
            404,
            post(&format!("{}/hooks/nope", s.url), "{}", &[]).await,
            "no inbound endpoint at /hooks/nope",
        ),
        (
            404,
            post(&format!("{}/nowhere", s.url), "{}", &[]).await,
            "no route /nowhere: see /events, /events/{type}, /hooks/..., /api/logs, /api/deliveries/{id}, /api/render, /healthz, /readyz, /metrics",
        ),
        (
            403,
            post(&format!("{}/hooks/office", s.url), "{}", &[]).await,
            "127.0.0.1 is not allowed to send to /hooks/office (allow_from)",
        ),
        (
            413,
            post(
                &events,
                &format!(
                    r#"{{"type": "call.disposition", "data": {{"x": "{}"}}}}"#,
                    "a".repeat(4096)
                ),
                &[],
            )
            .await,
            "the body is over the 2048 byte limit (--max-body)",
        ),
    ];
    for (want, (status, body), message) in cases {
        assert_eq!(
            (status, body["error"].as_str().unwrap_or_default()),
            (want, message)
        );
    }
    let (status, text) = get(&format!("{}/hooks/office", s.url), &[]).await;
    assert_eq!(status, 405, "{text}");
    s.stop().await;
}

#[tokio::test]
async fn the_api_token_rule() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let with_token =
        Server::start(crm_config(&rx, &[]), |s| s.api_token = Some("t0ken".into())).await;
    let body = r#"{"type": "call.disposition", "data": {"status": "NI"}}"#;
    let url = format!("{}/events", with_token.url);
    assert_eq!(post(&url, body, &[]).await.0, 401);
    assert_eq!(
        post(&url, body, &[("authorization", "Bearer nope")])
            .await
            .0,
        401
    );
    assert_eq!(
        post(&url, body, &[("authorization", "Bearer t0ken")])
            .await
            .0,
        202
    );
    assert_eq!(
        get(&format!("{}/api/logs", with_token.url), &[]).await.0,
        401
    );
    assert_eq!(
        get(&format!("{}/healthz", with_token.url), &[]).await.0,
        200,
        "health needs no token"
    );
    with_token.stop().await;
    // Without a token, only loopback clients; X-Forwarded-For counts only from a trusted proxy.
    let open = Server::start(crm_config(&rx, &[]), |s| {
        s.trust_proxy = vec!["127.0.0.0/8".parse().unwrap()]
    })
    .await;
    let url = format!("{}/events", open.url);
    let (status, err) = post(&url, body, &[("x-forwarded-for", "203.0.113.9")]).await;
    assert_eq!(status, 403);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("only loopback clients")
    );
    assert_eq!(post(&url, body, &[]).await.0, 202);
    open.stop().await;
}

#[tokio::test]
async fn convolo_seed_payloads_work_as_they_are() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = ConfigDir::new(&[
        (
            "endpoints/convolo.yaml",
            "direction: inbound\npath: /hooks/convolo\nmethods: [POST]\nevent_type: \"{{ type }}\"\nevent_id: \"{{ call_id }}:{{ type }}\"\nauth:\n  type: query\n  params:\n    token: hook-secret\nrespond: 200\n",
        ),
        (
            "adaptors/call.yaml",
            "fields:\n  - {from: call_id, to: call}\n  - {from: lead.lead_phone, to: phone}\n  - {from: call_status, to: status}\n  - {from: '@source', to: source}\n",
        ),
        (
            "endpoints/crm.yaml",
            &format!("url: {}\nadaptor: call\n", rx.url("/calls")),
        ),
        (
            "workflows/calls.yaml",
            "when:\n  - event: [start_call, end_call]\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    let s = Server::start(config, |_| {}).await;
    let hook = format!("{}/hooks/convolo?token=hook-secret", s.url);
    for (i, kind) in ["start_call", "end_call"].iter().enumerate() {
        let payload = std::fs::read_to_string(root().join(format!(
            "examples/convolo-calls-to-crm/payloads/{kind}.json"
        )))
        .unwrap();
        let (status, body) = post(&hook, &payload, &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["id"],
            format!("35298eac05ef54b365e601f85d46afc1:{kind}")
        );
        seen(&rx, i + 1).await;
        // A retry from Convolo is acknowledged and not sent again.
        let (status, again) = post(&hook, &payload, &[]).await;
        assert_eq!((status, again["duplicate"].clone()), (200, json!(true)));
    }
    let sent: Vec<String> = rx.requests().iter().map(|r| r.body.clone()).collect();
    assert_eq!(
        sent,
        vec![
            r#"{"call":"35298eac05ef54b365e601f85d46afc1","phone":"string","source":"convolo"}"#,
            r#"{"call":"35298eac05ef54b365e601f85d46afc1","phone":"string","status":"answered","source":"convolo"}"#,
        ]
    );
    // The token is checked, and never stored as event data.
    assert_eq!(
        post(&format!("{}/hooks/convolo?token=wrong", s.url), "{}", &[])
            .await
            .0,
        401
    );
    assert_eq!(
        post(&format!("{}/hooks/convolo", s.url), "{}", &[]).await.0,
        401
    );
    let stored = s
        .app
        .store()
        .event(
            "convolo",
            &switchboard::EventId::new("35298eac05ef54b365e601f85d46afc1:start_call"),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        !serde_json::to_string(&stored)
            .unwrap()
            .contains("hook-secret")
    );
    s.stop().await;
}

#[tokio::test]
async fn inbound_hooks_take_get_json_and_form_with_every_auth_kind() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let hooks = [
        ("endpoints/get.yaml", "direction: inbound\npath: /hooks/leads\nmethods: [GET, POST]\nevent_type: call.disposition\nauth:\n  type: bearer\n  token: b34rer\n".to_string()),
        ("endpoints/basic.yaml", "direction: inbound\npath: /hooks/basic\nevent_type: call.disposition\nauth:\n  type: basic\n  username: convoso\n  password: p4ss\n".to_string()),
        ("endpoints/header.yaml", "direction: inbound\npath: /hooks/header\nevent_type: call.disposition\nauth:\n  type: header\n  name: X-Token\n  value: h3ader\n".to_string()),
        ("endpoints/signed.yaml", format!("direction: inbound\npath: /hooks/signed\nevent_type: call.disposition\nauth:\n  type: signature\n  secret: {secret}\n")),
    ];
    let files: Vec<(&str, &str)> = hooks.iter().map(|(p, t)| (*p, t.as_str())).collect();
    let s = Server::start(crm_config(&rx, &files), |_| {}).await;
    let c = client();
    // GET query parameters.
    let r = c
        .get(format!(
            "{}/hooks/leads?status=SALE&phone_number=%2B15550001",
            s.url
        ))
        .bearer_auth("b34rer")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    seen(&rx, 1).await;
    assert_eq!(
        rx.requests()[0].body,
        r#"{"phone":"+15550001","status":"SALE"}"#
    );
    // A form body (Convoso's "RAW" mode).
    let r = c
        .post(format!("{}/hooks/leads", s.url))
        .bearer_auth("b34rer")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("status=APPT&phone_number=%2B15550002")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    seen(&rx, 2).await;
    assert_eq!(
        rx.requests()[1].body,
        r#"{"phone":"+15550002","status":"APPT"}"#
    );
    assert_eq!(
        c.get(format!("{}/hooks/leads?status=SALE", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Basic and header credentials.
    let r = c
        .post(format!("{}/hooks/basic", s.url))
        .basic_auth("convoso", Some("p4ss"))
        .header("content-type", "application/json")
        .body(json!({"status": "SALE"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = c
        .post(format!("{}/hooks/basic", s.url))
        .basic_auth("convoso", Some("nope"))
        .header("content-type", "application/json")
        .body(json!({}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(format!("{}/hooks/header", s.url))
        .header("x-token", "h3ader")
        .header("content-type", "application/json")
        .body(json!({"status": "NI"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // Standard Webhooks signatures: right, wrong, and too old.
    let key = SigningKey::parse(secret).unwrap();
    let body = r#"{"status": "SALE", "phone_number": "3"}"#;
    let now = chrono::Utc::now().timestamp();
    let send = |ts: i64, sig: String| {
        c.post(format!("{}/hooks/signed", s.url))
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(
        send(now, key.sign("msg_1", now, body.as_bytes()))
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        send(now, key.sign("msg_2", now, body.as_bytes()))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        send(now - 3600, key.sign("msg_1", now - 3600, body.as_bytes()))
            .await
            .unwrap()
            .status(),
        401
    );
    s.stop().await;
}

#[tokio::test]
async fn the_admin_api_pages_exports_replays_and_renders() {
    let rx = Receiver::start(vec![Reply::Status(400)], Reply::Status(200)).await;
    let s = Server::start(crm_config(&rx, &[]), |_| {}).await;
    for i in 0..5 {
        let body = format!(
            r#"{{"type": "call.disposition", "id": "c{i}", "data": {{"status": "SALE", "phone_number": "+1555000000{i}"}}}}"#
        );
        assert_eq!(post(&format!("{}/events", s.url), &body, &[]).await.0, 202);
    }
    seen(&rx, 5).await;
    // The receiver answered; wait until all five attempts are recorded.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, text) = get(&format!("{}/api/logs?limit=10", s.url), &[]).await;
        if serde_json::from_str::<Value>(&text).unwrap()["entries"]
            .as_array()
            .unwrap()
            .len()
            == 5
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the attempts were not recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, text) = get(&format!("{}/api/logs?limit=2", s.url), &[]).await;
    assert_eq!(status, 200);
    let page: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, text) = get(&format!("{}/api/logs?limit=10&cursor={cursor}", s.url), &[]).await;
    let rest: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rest["entries"].as_array().unwrap().len(), 3);
    assert_eq!(rest["next_cursor"], Value::Null);
    // Following oldest first: pages continue with `after=next_after` and meet every entry.
    let mut followed = Vec::new();
    let mut after = "0".to_string();
    for _ in 0..5 {
        let url = format!("{}/api/logs?limit=2&after={after}", s.url);
        let (_, text) = get(&url, &[]).await;
        let page: Value = serde_json::from_str(&text).unwrap();
        followed.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
        match page["next_after"].as_str() {
            Some(next) => after = next.to_string(),
            None => break,
        }
    }
    assert_eq!(followed.len(), 5);
    assert!(followed.windows(2).all(|w| w[0] < w[1]), "oldest first");
    let (_, text) = get(&format!("{}/api/logs?search=5550000003", s.url), &[]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["entries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get(&format!("{}/api/logs?outcome=lost", s.url), &[])
            .await
            .0,
        400
    );
    assert_eq!(
        get(&format!("{}/api/logs?colour=red", s.url), &[]).await.0,
        400
    );
    let (status, csv) = get(&format!("{}/api/logs/export?format=csv", s.url), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 6, "header + 5 rows:\n{csv}");
    let (_, jsonl) = get(
        &format!("{}/api/logs/export?format=jsonl&outcome=failed", s.url),
        &[],
    )
    .await;
    let failed: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(failed.len(), 1);
    let entry_id = failed[0]["id"].as_str().unwrap();
    let (status, text) = get(&format!("{}/api/logs/{entry_id}", s.url), &[]).await;
    assert_eq!(
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap()["outcome"].clone()
        ),
        (200, json!("failed"))
    );
    let delivery = failed[0]["delivery_id"].as_str().unwrap();
    let (status, body) = post(
        &format!("{}/api/deliveries/{delivery}/replay", s.url),
        "",
        &[],
    )
    .await;
    assert_eq!(
        (status, body["delivery"]["state"].clone()),
        (202, json!("pending"))
    );
    seen(&rx, 6).await;
    assert_eq!(
        post(&format!("{}/api/deliveries/nope/replay", s.url), "", &[])
            .await
            .0,
        404
    );
    let (status, run) = post(
        &format!("{}/api/render", s.url),
        r#"{"type": "call.disposition", "data": {"status": "SALE"}}"#,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(run["workflows"][0]["matched"], true);
    assert_eq!(run["requests"][0]["method"], "POST");
    s.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let s = Server::start(crm_config(&rx, &[]), |_| {}).await;
    assert_eq!(
        get(&format!("{}/healthz", s.url), &[]).await,
        (200, r#"{"status":"ok"}"#.to_string())
    );
    assert_eq!(get(&format!("{}/readyz", s.url), &[]).await.0, 200);
    post(
        &format!("{}/events", s.url),
        r#"{"type": "call.disposition", "data": {"status": "SALE"}}"#,
        &[],
    )
    .await;
    post(&format!("{}/events", s.url), "oops", &[]).await;
    seen(&rx, 1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (status, text) = loop {
        let (status, text) = get(&format!("{}/metrics", s.url), &[]).await;
        if text.contains("switchboard_deliveries_total{endpoint=\"crm\",outcome=\"delivered\"} 1") {
            break (status, text);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the attempt was not counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 200);
    for line in [
        "switchboard_events_total{type=\"call.disposition\",source=\"api\"} 1",
        "switchboard_deliveries_total{endpoint=\"crm\",outcome=\"delivered\"} 1",
        "switchboard_attempt_duration_seconds_count{endpoint=\"crm\"} 1",
        "switchboard_requests_rejected_total{status=\"400\"} 1",
        "switchboard_queue_depth 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_reload_with_a_broken_configuration_keeps_the_running_one() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let s = Server::start(crm_config(&rx, &[]), |_| {}).await;
    let workflow = s.config.path().join("workflows/sale.yaml");
    std::fs::write(
        &workflow,
        "when:\n  - event: call.disposition\nactions:\n  - endpoint: nowhere\n",
    )
    .unwrap();
    let errors = s.app.reload().unwrap_err();
    assert_eq!(
        errors.errors[0].to_string(),
        "workflows/sale.yaml:4:15: unknown endpoint \"nowhere\" (known: crm)"
    );
    let (status, body) = post(
        &format!("{}/events", s.url),
        r#"{"type": "call.disposition", "data": {"status": "NI"}}"#,
        &[],
    )
    .await;
    assert_eq!(
        (status, body["deliveries"].clone()),
        (202, json!([])),
        "still the old workflow: NI does not match"
    );
    std::fs::write(
        &workflow,
        "when:\n  - event: lead.created\nactions:\n  - endpoint: crm\n",
    )
    .unwrap();
    s.app.reload().unwrap();
    let (status, body) = post(
        &format!("{}/events", s.url),
        r#"{"type": "lead.created", "data": {"phone_number": "1"}}"#,
        &[],
    )
    .await;
    assert_eq!(
        (status, body["deliveries"].as_array().map(Vec::len)),
        (202, Some(1))
    );
    seen(&rx, 1).await;
    s.stop().await;
}

/// An inbound adaptor maps what the sender posts into the event data the workflows see.
#[tokio::test]
async fn an_inbound_adaptor_maps_the_payload() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let files = [
        (
            "adaptors/convoso-in.yaml",
            "fields:\n  - {from: lead.phone, to: phone_number}\n  - {from: disposition, to: status, values: {Sale: SALE}}\n  - {from: '@source', to: via}\n",
        ),
        (
            "endpoints/in.yaml",
            "direction: inbound\npath: /hooks/in\nevent_type: call.disposition\nevent_id: \"{{ id }}\"\nadaptor: convoso-in\n",
        ),
    ];
    let s = Server::start(crm_config(&rx, &files), |_| {}).await;
    let (status, body) = post(
        &format!("{}/hooks/in", s.url),
        r#"{"id": 41, "lead": {"phone": "+15557654321"}, "disposition": "Sale", "noise": true}"#,
        &[],
    )
    .await;
    assert_eq!((status, body["id"].clone()), (202, json!("41")));
    seen(&rx, 1).await;
    assert_eq!(
        rx.requests()[0].body,
        r#"{"phone":"+15557654321","status":"SALE"}"#
    );
    let stored = s
        .app
        .store()
        .event("in", &switchboard::EventId::new("41"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        *stored.event.data,
        json!({"phone_number": "+15557654321", "status": "SALE", "via": "in"})
    );
    assert_eq!(stored.event.source, "in");
    s.stop().await;
}

/// Review findings: a sender's `received_at` does not postpone or break delivery, far-back
/// `since` values do not break the API, and ids are unique per source.
#[tokio::test]
async fn senders_cannot_postpone_delivery_or_collide_ids_across_sources() {
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let hook = (
        "endpoints/in.yaml",
        "direction: inbound\npath: /hooks/in\nevent_type: call.disposition\nevent_id: \"{{ id }}\"\n",
    );
    let delayed = (
        "workflows/later.yaml",
        "when:\n  - event: call.disposition\n  - field: status\n    equals: LATER\nactions:\n  - endpoint: crm\n    delay: 5m\n",
    );
    let s = Server::start(crm_config(&rx, &[hook, delayed]), |_| {}).await;
    let (status, _) = post(&format!("{}/events", s.url), r#"{"type": "call.disposition", "id": "x1", "received_at": "2099-01-01T00:00:00Z", "data": {"status": "SALE"}}"#, &[]).await;
    assert_eq!(status, 202);
    seen(&rx, 1).await;
    let (status, _) = post(&format!("{}/events", s.url), r#"{"type": "call.disposition", "id": "x2", "received_at": "+262142-12-31T23:59:59Z", "data": {"status": "LATER"}}"#, &[]).await;
    assert_eq!(status, 202);
    assert_eq!(
        get(&format!("{}/api/logs?since=100000000d", s.url), &[])
            .await
            .0,
        200
    );
    // The same id from the API and from a hook are two events.
    let (_, from_hook) = post(
        &format!("{}/hooks/in", s.url),
        r#"{"id": "x1", "status": "SALE"}"#,
        &[],
    )
    .await;
    assert_eq!(from_hook["duplicate"], false);
    seen(&rx, 2).await;
    s.stop().await;
}

/// Two `serve` nodes on one PostgreSQL database: events posted to either are delivered
/// once, a repeat posted to the other node is a duplicate, and each node's log and search
/// show what both delivered, with the node that made each attempt.
#[tokio::test]
async fn two_nodes_on_one_postgres_database_share_everything() {
    let Some(db) = postgres_server::Postgres::start() else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Status(201)).await;
    let on = |node: &'static str| {
        let url = db.url.clone();
        move |s: &mut switchboard::server::Settings| {
            s.store = switchboard::store::Location::parse(&url).unwrap();
            s.node = node.into();
        }
    };
    let a = Server::start(crm_config(&rx, &[]), on("node-a")).await;
    let b = Server::start(crm_config(&rx, &[]), on("node-b")).await;
    for i in 0..6 {
        let node = if i % 2 == 0 { &a } else { &b };
        let (status, body) = post(
            &format!("{}/events", node.url),
            &format!(r#"{{"type": "call.disposition", "id": "c-{i}", "data": {{"status": "SALE", "phone_number": "+1555000000{i}"}}}}"#),
            &[],
        )
        .await;
        assert_eq!((status, body["duplicate"].clone()), (202, json!(false)));
    }
    let (status, again) = post(
        &format!("{}/events", b.url),
        r#"{"type": "call.disposition", "id": "c-0", "data": {"status": "SALE"}}"#,
        &[],
    )
    .await;
    assert_eq!((status, again["duplicate"].clone()), (202, json!(true)));
    seen(&rx, 6).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.requests().len(), 6, "each event delivered once");
    for node in [&a, &b] {
        let mut entries = Vec::new();
        for _ in 0..100 {
            let (_, text) = get(&format!("{}/api/logs?limit=50", node.url), &[]).await;
            entries = serde_json::from_str::<Value>(&text).unwrap()["entries"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if entries.len() == 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(entries.len(), 6);
        let (_, found) = get(&format!("{}/api/logs?search=5550000003", node.url), &[]).await;
        let found: Value = serde_json::from_str(&found).unwrap();
        assert_eq!(found["entries"][0]["event_id"], "c-3");
        let nodes: std::collections::BTreeSet<&str> =
            entries.iter().filter_map(|e| e["node"].as_str()).collect();
        assert!(
            nodes.iter().all(|n| ["node-a", "node-b"].contains(n)),
            "{nodes:?}"
        );
    }
    a.stop().await;
    b.stop().await;
}

/// Two servers on one PostgreSQL database, both sending to `rx` with these endpoint
/// limits (YAML lines), and `events` events posted alternately to them.
async fn two_nodes_posting(
    db: &postgres_server::Postgres,
    rx: &Receiver,
    limits: &str,
    events: usize,
) -> (Server, Server) {
    let config = || {
        let endpoint = format!("url: {}\nadaptor: contact\n{limits}", rx.url("/contacts"));
        ConfigDir::new(&[
            (
                "adaptors/contact.yaml",
                "fields:\n  - {from: phone_number, to: phone}\n",
            ),
            ("endpoints/crm.yaml", &endpoint),
            (
                "workflows/sale.yaml",
                "when:\n  - event: call.disposition\nactions:\n  - endpoint: crm\n",
            ),
        ])
    };
    let on = |node: &'static str| {
        let url = db.url.clone();
        move |s: &mut switchboard::server::Settings| {
            s.store = switchboard::store::Location::parse(&url).unwrap();
            s.node = node.into();
        }
    };
    let a = Server::start(config(), on("node-a")).await;
    let b = Server::start(config(), on("node-b")).await;
    for i in 0..events {
        let node = if i % 2 == 0 { &a } else { &b };
        let (status, _) = post(
            &format!("{}/events", node.url),
            &format!(r#"{{"type": "call.disposition", "id": "two-{i}", "data": {{"phone_number": "+1555300{i:04}"}}}}"#),
            &[],
        )
        .await;
        assert_eq!(status, 202);
    }
    (a, b)
}

/// An endpoint's `concurrency` holds for the cluster: two nodes on one database send it
/// no more requests at once than one node would.
#[tokio::test]
async fn concurrency_holds_across_two_nodes() {
    let Some(db) = postgres_server::Postgres::start() else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Stall(Duration::from_millis(200))).await;
    let (a, b) = two_nodes_posting(&db, &rx, "concurrency: 2\n", 20).await;
    seen(&rx, 20).await;
    assert_eq!(
        rx.most_at_once(),
        2,
        "two nodes together kept the endpoint's concurrency of 2"
    );
    a.stop().await;
    b.stop().await;
}

/// An endpoint's `rate_limit` holds for the cluster too: two nodes on one database send it
/// no faster than one node would.
#[tokio::test]
async fn rate_limit_holds_across_two_nodes() {
    let Some(db) = postgres_server::Postgres::start() else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let (a, b) = two_nodes_posting(&db, &rx, "concurrency: 10\nrate_limit: 4/s\n", 16).await;
    // 16 requests at 4 a second, 4 at once to begin with: the last goes 3 s after the
    // first. Each node alone would let 4 a second go, together 8: 1 s. (Measured from the
    // first arrival: deliveries begin while the events are still being posted.)
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let spread = loop {
        let requests = rx.requests();
        if requests.len() >= 16 {
            break requests[15].at - requests[0].at;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of 16 arrived",
            requests.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        spread >= Duration::from_millis(2400),
        "16 requests within {spread:?}: faster than 4 a second"
    );
    a.stop().await;
    b.stop().await;
}
