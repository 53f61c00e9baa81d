//! The `/ui` page in a real headless Chromium (Debian's chromium and chromium-driver,
//! driven over WebDriver), against a real `serve` with real deliveries: the list, search by
//! phone, the detail with its redacted request, replay, live updates, the chart, login.
//!
//! Screenshots of the main views go to target/ui-screenshots/; with SAVE_SCREENSHOTS=1 also
//! to docs/, where the README shows them.

mod common;

use std::time::Duration;

use common::receiver::{Receiver, Reply};
use common::server::{Server, post, seen};
use common::webdriver::Browser;
use common::{ConfigDir, root};

const TOKEN: &str = "crm-t0ken-ui";

fn config(rx: &Receiver) -> ConfigDir {
    ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - {from: phone_number, to: phone}\n  - {from: first_name, to: name}\n  - {from: status, to: disposition}\n",
        ),
        (
            "endpoints/crm.yaml",
            &format!(
                "url: {}\nadaptor: contact\nconcurrency: 1\nauth:\n  type: bearer\n  token: {TOKEN}\nretry:\n  schedule: [1h]\n",
                rx.url("/contacts")
            ),
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\n  - field: status\n    in: [SALE, APPT, CALLBK]\nactions:\n  - endpoint: crm\n",
        ),
    ])
}

async fn browser() -> Option<Browser> {
    match Browser::start().await {
        Some(browser) => Some(browser),
        None if std::env::var_os("CI").is_some() => {
            panic!("chromium and chromium-driver are not installed (.ci/run installs them)")
        }
        None => {
            eprintln!(
                "skipping: chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
            );
            None
        }
    }
}

async fn shot(browser: &Browser, name: &str) {
    browser
        .screenshot(&root().join("target/ui-screenshots").join(name))
        .await;
    if std::env::var_os("SAVE_SCREENSHOTS").is_some() {
        browser.screenshot(&root().join("docs").join(name)).await;
    }
}

async fn send(s: &Server, rx: &Receiver, i: usize, status: &str, phone: &str, name: &str) {
    let body = format!(
        r#"{{"type": "call.disposition", "id": "call-{i}", "data": {{"status": "{status}", "phone_number": "{phone}", "first_name": "{name}", "lead_id": "L{i}"}}}}"#
    );
    let auth = [("authorization", "Bearer ui-api-token")];
    assert_eq!(
        post(&format!("{}/events", s.url), &body, &auth).await.0,
        202
    );
    seen(rx, i).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_finds_reads_and_replays_a_delivery_in_the_browser() {
    let Some(browser) = browser().await else {
        return;
    };
    // The receiver answers, in order: 201, 500 (retried in an hour), 422 (failed), then 201.
    let rx = Receiver::start(
        vec![
            Reply::Status(201),
            Reply::Full(500, vec![], "upstream down".into()),
            Reply::Full(422, vec![], r#"{"error": "phone is invalid"}"#.into()),
        ],
        Reply::Full(
            201,
            vec![("content-type", "application/json".into())],
            r#"{"id": "c-1"}"#.into(),
        ),
    )
    .await;
    let s = Server::start(config(&rx), |_| {}).await;
    send(&s, &rx, 1, "SALE", "+15550000001", "Ann").await;
    send(&s, &rx, 2, "APPT", "+15550000002", "Bo").await;
    send(&s, &rx, 3, "SALE", "(555) 000-0003", "Cy").await;
    send(&s, &rx, 4, "CALLBK", "+15550000004", "Di").await;

    browser.goto(&format!("{}/ui", s.url)).await;
    browser.wait_for_exactly("#rows tr", 4).await;
    let chart = browser.wait_for("#chart svg text", 1).await;
    assert_eq!(browser.text(&chart[0]).await, "crm");
    let heading = browser.text(&browser.all("#overview h2").await[0]).await;
    assert!(
        heading.contains("Attempts"),
        "the chart counts attempts: {heading}"
    );
    // Times name their zone (the browser runs in UTC).
    let time = browser.text(&browser.all("#rows tr td").await[0]).await;
    assert!(time.ends_with("UTC"), "{time}");
    // The node list: this server alone.
    let nodes = browser.wait_for_exactly("#nodes tr", 1).await;
    let node = browser.text(&nodes[0]).await;
    assert!(node.contains("(this one)"), "{node}");
    shot(&browser, "ui-list.png").await;

    // Search by phone, in another spelling than the event's.
    let search = browser.all("#search").await.remove(0);
    browser.type_into(&search, "+1 555-000-0003").await;
    browser.click(&browser.all("#apply").await[0]).await;
    let rows = browser.wait_for_exactly("#rows tr", 1).await;
    let text = browser.text(&rows[0]).await;
    assert!(text.contains("failed") && text.contains("422"), "{text}");
    assert!(
        text.contains("(555) 000-0003") && text.contains("matched phone_number"),
        "the row shows the lead's phone and the key the search matched: {text}"
    );

    // The detail: the exact request, the token masked, the response and the error.
    browser.click(&rows[0]).await;
    browser
        .wait_for("#detail:not([hidden]) .request-line", 1)
        .await;
    let detail = browser.text(&browser.all("#detail").await[0]).await;
    assert!(
        detail.contains(&format!("POST {}", rx.url("/contacts"))),
        "{detail}"
    );
    assert!(
        detail.contains("Authorization\n***") || detail.contains("Authorization ***"),
        "{detail}"
    );
    assert!(!detail.contains(TOKEN), "the token must not reach the page");
    assert!(
        detail.contains("\"phone\": \"(555) 000-0003\""),
        "the JSON body is pretty-printed: {detail}"
    );
    assert!(detail.contains("HTTP 422"), "{detail}");
    assert!(
        detail.contains("status HTTP 422 Unprocessable Entity"),
        "{detail}"
    );
    browser.wait_for_exactly("ol.timeline li", 1).await;
    shot(&browser, "ui-detail.png").await;

    // Replay, confirming the prompt: a second attempt appears on the timeline.
    browser.execute("window.confirm = () => true;").await;
    browser.click(&browser.all("#replay").await[0]).await;
    seen(&rx, 5).await;
    let items = browser.wait_for_exactly("ol.timeline li", 2).await;
    let latest = browser.text(&items[1]).await;
    assert!(
        latest.contains("attempt 2") && latest.contains("delivered"),
        "{latest}"
    );

    // A retrying delivery shows when its next attempt is due.
    browser.click(&browser.all("#clear").await[0]).await;
    let rows = browser.wait_for_exactly("#rows tr", 5).await;
    let mut retrying = None;
    for row in &rows {
        if browser.text(row).await.contains("retrying") {
            retrying = Some(row.clone());
        }
    }
    browser.click(&retrying.expect("a retrying entry")).await;
    let due = browser.wait_for("ol.timeline li.due", 1).await;
    assert!(browser.text(&due[0]).await.contains("next attempt due"));

    // The current filter exports as CSV (the download's contents, caught in the page).
    browser
        .execute(
            "window.__csv = null; const make = URL.createObjectURL; \
             URL.createObjectURL = (blob) => { blob.text().then((t) => { window.__csv = t; }); return make(blob); };",
        )
        .await;
    let outcome = browser.all("#outcome").await.remove(0);
    browser.type_into(&outcome, "failed").await;
    browser.click(&browser.all("#apply").await[0]).await;
    browser.wait_for_exactly("#rows tr", 1).await;
    browser.click(&browser.all("#export").await[0]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let csv = loop {
        if let Some(csv) = browser.execute("return window.__csv;").await.as_str() {
            break csv.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no CSV was exported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,at,delivery_id"), "{csv}");
    assert_eq!(lines.len(), 2, "the header and the one failed entry: {csv}");
    assert!(lines[1].contains(",failed,status,"), "{csv}");

    // Live: a new event shows up without reloading.
    browser.click(&browser.all("#clear").await[0]).await;
    browser.wait_for_exactly("#rows tr", 5).await;
    send(&s, &rx, 6, "SALE", "+15550000006", "Ed").await;
    let rows = browser.wait_for_exactly("#rows tr", 6).await;
    assert!(
        browser.text(&rows[0]).await.contains("5550000006"),
        "the newest entry is on top"
    );

    // A Convolo-style event: its phone is the lead's, after its lead and call ids; the
    // list shows the phone, not the first id.
    let body = r#"{"type": "call.disposition", "id": "call-7", "data": {"status": "SALE",
        "lead_id": "L7", "call_id": "c-7", "lead": {"lead_phone": "+15550000007"}}}"#;
    let auth = [("authorization", "Bearer ui-api-token")];
    assert_eq!(post(&format!("{}/events", s.url), body, &auth).await.0, 202);
    seen(&rx, 7).await;
    let rows = browser.wait_for_exactly("#rows tr", 7).await;
    let text = browser.text(&rows[0]).await;
    assert!(
        text.contains("+15550000007") && !text.contains("L7"),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_asks_for_the_api_token_and_keeps_it() {
    let Some(browser) = browser().await else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let s = Server::start(config(&rx), |settings| {
        settings.api_token = Some("ui-api-token".into())
    })
    .await;
    send(&s, &rx, 1, "SALE", "+15550000009", "Fay").await;
    browser.goto(&format!("{}/ui", s.url)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while browser
        .execute("return document.getElementById('login').open;")
        .await
        != serde_json::json!(true)
    {
        assert!(std::time::Instant::now() < deadline, "no login prompt");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = browser.all("#token").await.remove(0);
    browser.type_into(&token, "ui-api-token\n").await;
    browser.wait_for_exactly("#rows tr", 1).await;
    // Kept for the session: a reload does not ask again.
    browser.goto(&format!("{}/ui", s.url)).await;
    browser.wait_for_exactly("#rows tr", 1).await;
    assert_eq!(
        browser
            .execute("return document.getElementById('login').open;")
            .await,
        serde_json::json!(false)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_waiting_for_its_window_says_why_and_until_when() {
    let Some(browser) = browser().await else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - {from: phone_number, to: phone}\n",
        ),
        (
            "endpoints/crm.yaml",
            &format!("url: {}\nadaptor: contact\n", rx.url("/contacts")),
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\nactions:\n  - endpoint: crm\n    window: {days: [mon, tue, wed, thu, fri], from: \"09:00\", to: \"20:00\", timezone: America/New_York}\n",
        ),
    ]);
    let s = Server::start(config, |_| {}).await;
    // Saturday 2026-03-07, 10:00 in New York: closed until Monday.
    s.app
        .runtime()
        .clock()
        .set("2026-03-07T15:00:00Z".parse().unwrap());
    let body =
        r#"{"type": "call.disposition", "id": "call-w", "data": {"phone_number": "+15550000008"}}"#;
    assert_eq!(post(&format!("{}/events", s.url), body, &[]).await.0, 202);
    browser.goto(&format!("{}/ui", s.url)).await;
    let rows = browser.wait_for_exactly("#rows tr", 1).await;
    let row = browser.text(&rows[0]).await;
    assert!(row.contains("retrying") && row.contains("waiting"), "{row}");
    browser.click(&rows[0]).await;
    let waiting = browser.wait_for("#detail:not([hidden]) .waiting", 1).await;
    assert_eq!(
        browser.text(&waiting[0]).await,
        "waiting outside its window (mon–fri 09:00–20:00 America/New_York): waits until it opens Monday 09:00 EDT"
    );
    let items = browser.wait_for("ol.timeline li", 2).await;
    assert!(
        browser
            .text(&items[0])
            .await
            .contains("waiting for its window"),
        "{}",
        browser.text(&items[0]).await
    );
    assert!(
        rx.requests().is_empty(),
        "nothing is sent before the opening"
    );
    s.stop().await;
}
