//! Cluster mode through the real binary: three `serve` nodes on one PostgreSQL database,
//! one receiver, events posted round robin to all three, one node killed with -9 in the
//! middle. Every event answered 2xx is delivered at least once; the only duplicates are
//! deliveries that were on the wire at the dead node; a surviving node's log and search
//! show the entries of all three.

mod common;
#[path = "common/postgres.rs"]
mod postgres_server;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::ConfigDir;
use common::process::Serve;
use common::receiver::{Receiver, Reply};
use serde_json::Value;

/// An endpoint that answers slowly (300 ms) enough for attempts to be on the wire at the kill, with
/// a short timeout so that the dead node's leases (timeout + 30 s) run out soon.
fn config(rx: &Receiver) -> ConfigDir {
    ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - {from: lead, to: lead}\n  - {from: phone_number, to: phone}\n",
        ),
        (
            "endpoints/crm.yaml",
            &format!(
                "url: {}\nadaptor: contact\nconcurrency: 4\ntimeout: 2s\n",
                rx.url("/contacts")
            ),
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\nactions:\n  - endpoint: crm\n",
        ),
    ])
}

fn http() -> reqwest::Client {
    common::server::client()
}

async fn post(url: &str, i: usize) -> bool {
    let body = format!(
        r#"{{"type": "call.disposition", "id": "ev-{i}", "data": {{"lead": {i}, "phone_number": "+1555{i:07}"}}}}"#
    );
    http()
        .post(format!("{url}/events"))
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

async fn get_json(url: &str) -> Value {
    let text = http()
        .get(url)
        .send()
        .await
        .expect("a surviving node answers")
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Every connect log entry a node shows for `filter` (query parameters), page by page.
async fn all_entries(url: &str, filter: &str) -> Vec<Value> {
    let mut entries: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut page_url = format!("{url}/api/logs?limit=1000&{filter}");
        if let Some(c) = &cursor {
            page_url.push_str(&format!("&cursor={c}"));
        }
        let page = get_json(&page_url).await;
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return entries,
        }
    }
}

/// Waits until every lead in `answered` has reached the receiver.
async fn every_one_arrives(rx: &Receiver, answered: &BTreeSet<u64>, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let seen = arrivals(rx);
        let missing: Vec<&u64> = answered.iter().filter(|l| !seen.contains_key(l)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} events answered 2xx were never delivered, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Leads delivered, with how many times each arrived.
fn arrivals(rx: &Receiver) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for request in rx.requests() {
        let body: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
        if let Some(lead) = body["lead"].as_u64() {
            *seen.entry(lead).or_insert(0) += 1;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_run_loses_nothing_answered_2xx() {
    let Some(pg) = postgres_server::Postgres::start() else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Stall(Duration::from_millis(300))).await;
    let config = config(&rx);
    let mut nodes = Vec::new();
    let mut folders = Vec::new();
    for name in ["node1", "node2", "node3"] {
        let data = tempfile::tempdir().unwrap();
        let serve = Serve::start(
            config.path(),
            data.path(),
            &["--store", &pg.url, "--node", name],
        )
        .await;
        nodes.push(Some(serve));
        folders.push(data);
    }
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| n.as_ref().unwrap().url.clone())
        .collect();

    // 300 events round robin; node2 is killed after the first 120, once it has recorded
    // attempts of its own.
    let mut answered: BTreeSet<u64> = BTreeSet::new();
    for i in 0..300usize {
        if i == 120 {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let page = get_json(&format!("{}/api/logs?limit=1000", urls[0])).await;
                let by_node2 = page["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["node"] == "node2");
                if by_node2 {
                    break;
                }
                assert!(Instant::now() < deadline, "node2 recorded nothing");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            nodes[1].take().unwrap().kill();
        }
        let node = i % 3;
        if nodes[node].is_some() && post(&urls[node], i).await {
            answered.insert(i as u64);
        }
    }
    // 120 before the kill, then two thirds of the other 180.
    assert_eq!(answered.len(), 240, "{} answered 2xx", answered.len());

    // Every event answered 2xx arrives, the dead node's included (its leases run out
    // after the endpoint's timeout + 30 s).
    every_one_arrives(&rx, &answered, Duration::from_secs(90)).await;
    // Every one of them ends `delivered` in the connect log, those whose attempt node2
    // never recorded too: a surviving node takes the delivery over once node2's lease
    // (timeout + 30 s) runs out, and sends it again.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let delivered: BTreeSet<u64> = all_entries(&urls[0], "outcome=delivered")
            .await
            .iter()
            .filter_map(|e| e["event_id"].as_str()?.strip_prefix("ev-")?.parse().ok())
            .collect();
        let missing: Vec<&u64> = answered.difference(&delivered).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} events answered 2xx have no delivered entry, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Duplicates are only what was on the wire at node2 when it died: at most its lane's
    // concurrency.
    let seen = arrivals(&rx);
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    assert!(duplicates <= 4, "{duplicates} duplicates: {seen:?}");
    eprintln!("{duplicates} deliveries were on the wire at node2 and sent again");

    // A surviving node shows the entries of all three, and finds one of node2's by phone.
    let entries = all_entries(&urls[2], "").await;
    let names: BTreeSet<&str> = entries.iter().filter_map(|e| e["node"].as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["node1", "node2", "node3"]),
        "{} entries",
        entries.len()
    );
    let by_node2 = entries
        .iter()
        .find(|e| e["node"] == "node2")
        .expect("an entry of node2");
    let phone = by_node2["keys"]["phone"]
        .as_str()
        .or_else(|| by_node2["keys"]["phone_number"].as_str())
        .unwrap_or_else(|| panic!("an audit key: {by_node2}"))
        .to_string();
    let found = get_json(&format!(
        "{}/api/logs?search={}",
        urls[0],
        phone.replace('+', "%2B")
    ))
    .await;
    assert!(
        found["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["node"] == "node2"),
        "{found}"
    );
    // The cluster lists the three, the dead one too (as not alive once 30 s pass).
    let cluster = get_json(&format!("{}/api/cluster", urls[0])).await;
    let listed: BTreeSet<&str> = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(
        listed,
        BTreeSet::from(["node1", "node2", "node3"]),
        "{cluster}"
    );
    for node in nodes.into_iter().flatten() {
        node.stop();
    }
    drop(folders);
}

/// What `post` got: the status, or None when the request failed or took over 10 s.
async fn post_status(url: &str, i: usize) -> Option<u16> {
    post_within(url, i, Duration::from_secs(10)).await
}

/// What `post` got: the status, or None when the request failed or took over `limit`.
async fn post_within(url: &str, i: usize, limit: Duration) -> Option<u16> {
    let body = format!(
        r#"{{"type": "call.disposition", "id": "ev-{i}", "data": {{"lead": {i}, "phone_number": "+1555{i:07}"}}}}"#
    );
    http()
        .post(format!("{url}/events"))
        .header("content-type", "application/json")
        .body(body)
        .timeout(limit)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// The database stops in the middle of a run and starts again: both nodes answer 503
/// meanwhile (not 2xx, not a hang), log the outage once rather than in a loop, and work
/// again by themselves once it is back; every event answered 2xx is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_answer_503_while_the_database_is_down_and_recover_by_themselves() {
    let Some(pg) = postgres_server::Postgres::start() else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx);
    // The server trusts every local connection, so any password does: it must show nowhere.
    let store = pg.url.replace("postgres@", "postgres:s3cret@");
    let mut nodes = Vec::new();
    let mut folders = Vec::new();
    for name in ["node1", "node2"] {
        let data = tempfile::tempdir().unwrap();
        let serve = Serve::start(
            config.path(),
            data.path(),
            &["--store", &store, "--node", name],
        )
        .await;
        nodes.push(serve);
        folders.push(data);
    }
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let mut answered: BTreeSet<u64> = BTreeSet::new();
    let mut i = 0usize;
    for _ in 0..10 {
        assert!(post(&urls[i % 2], i).await, "event {i} accepted");
        answered.insert(i as u64);
        i += 1;
    }

    pg.pause();
    let logged_before: Vec<usize> = nodes.iter().map(|n| n.log().len()).collect();
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(5) {
        let status = post_status(&urls[i % 2], i).await;
        assert!(
            status.is_some_and(|s| s == 503 || (500..600).contains(&s)),
            "event {i} while the database is down: {status:?}"
        );
        if status.is_some_and(|s| (200..300).contains(&s)) {
            answered.insert(i as u64);
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (node, before) in nodes.iter().zip(&logged_before) {
        let lines = node.log();
        let during = &lines[*before..];
        assert!(
            during.len() <= 10,
            "{} lines logged in 5 s of outage:\n{}",
            during.len(),
            during.join("\n")
        );
    }
    for url in &urls {
        let ready = http().get(format!("{url}/readyz")).send().await.unwrap();
        assert_eq!(ready.status().as_u16(), 503);
        let cluster = http()
            .get(format!("{url}/api/cluster"))
            .send()
            .await
            .unwrap();
        let cluster = cluster.text().await.unwrap();
        assert!(!cluster.contains("s3cret"), "{cluster}");
    }

    pg.resume();
    for url in &urls {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = post_status(url, i).await;
            if status.is_some_and(|s| (200..300).contains(&s)) {
                answered.insert(i as u64);
                i += 1;
                break;
            }
            i += 1;
            assert!(
                Instant::now() < deadline,
                "{url} still refuses events 30 s after the database came back: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for _ in 0..10 {
        assert!(
            post(&urls[i % 2], i).await,
            "event {i} accepted after the outage"
        );
        answered.insert(i as u64);
        i += 1;
    }
    every_one_arrives(&rx, &answered, Duration::from_secs(60)).await;
    for node in nodes {
        let log = node.stop();
        assert!(!log.contains("s3cret"), "{log}");
        assert!(log.contains("storage works again"), "{log}");
    }
    drop(folders);
}

/// The database stops answering with its connections open (a hung host, a network
/// partition): a node answers 503 within its own bound (10 s) rather than holding the
/// request until TCP gives up, and works again once the database answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_hangs_is_answered_503_not_waited_for() {
    let Some(pg) = postgres_server::Postgres::start() else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx);
    let data = tempfile::tempdir().unwrap();
    let node = Serve::start(
        config.path(),
        data.path(),
        &["--store", &pg.url, "--node", "node1"],
    )
    .await;
    assert!(post(&node.url, 0).await);
    pg.signal("STOP");
    let started = Instant::now();
    let status = post_within(&node.url, 1, Duration::from_secs(30)).await;
    let took = started.elapsed();
    pg.signal("CONT");
    assert!(
        status.is_some_and(|s| s == 503) && took < Duration::from_secs(15),
        "an event while the database hangs: {status:?} after {took:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 2;
    while !post(&node.url, i).await {
        assert!(Instant::now() < deadline, "no recovery");
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    node.stop();
}

/// What the database cannot index never reaches it: an event id with a NUL or longer
/// than 512 bytes is refused with 400 (it was a 500), and an audit value with a NUL or
/// thousands of characters is delivered once, logged and found (its attempt could not be
/// recorded: the delivery was sent again every minute, forever). On both stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_and_audit_values_the_index_cannot_hold_are_refused_or_kept_once() {
    let pg = postgres_server::Postgres::start();
    let mut stores = vec![None];
    stores.extend(pg.as_ref().map(|pg| Some(pg.url.clone())));
    for store in stores {
        let rx = Receiver::start(vec![], Reply::Status(200)).await;
        let config = config(&rx);
        let data = tempfile::tempdir().unwrap();
        let extra: Vec<&str> = match &store {
            Some(url) => vec!["--store", url],
            None => vec![],
        };
        let node = Serve::start(config.path(), data.path(), &extra).await;
        let send = async |body: String| {
            let r = http()
                .post(format!("{}/events", node.url))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        };
        let long_id = "i".repeat(3000);
        let (status, text) = send(format!(
            r#"{{"type": "call.disposition", "id": "{long_id}", "data": {{"lead": 1}}}}"#
        ))
        .await;
        assert_eq!(
            (status, text.contains("3000 bytes long")),
            (400, true),
            "{text}"
        );
        let (status, text) =
            send(r#"{"type": "call.disposition", "id": "a\u0000b", "data": {"lead": 2}}"#.into())
                .await;
        assert_eq!(
            (status, text.contains("control character U+0000")),
            (400, true),
            "{text}"
        );
        // Not compressible, so that PostgreSQL cannot squeeze it into an index entry.
        let long_value: String = (0..6000)
            .map(|i| char::from(b'a' + ((i * 7919 + i / 13) % 26) as u8))
            .collect();
        for (lead, phone) in [(3, "55\\u0000 1"), (4, long_value.as_str())] {
            let (status, text) = send(format!(
                r#"{{"type": "call.disposition", "id": "ev-{lead}", "data": {{"lead": {lead}, "phone_number": "{phone}"}}}}"#
            ))
            .await;
            assert_eq!(status, 202, "{text}");
        }
        let answered: BTreeSet<u64> = [3, 4].into();
        every_one_arrives(&rx, &answered, Duration::from_secs(20)).await;
        // Recorded once: nothing is sent again (a failed record resends after 1 s).
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(arrivals(&rx), [(3, 1), (4, 1)].into(), "store {store:?}");
        let found = all_entries(&node.url, &format!("search={}", &long_value[..300])).await;
        assert_eq!(found.len(), 1, "the long value finds its entry ({store:?})");
        assert_eq!(found[0]["event_id"], "ev-4");
        let log = node.stop();
        assert!(!log.contains("could not be recorded"), "{log}");
    }
}

/// The breaker holds for the cluster: once one node has paused an endpoint that does not
/// answer, the other nodes send it nothing while that node probes; when its probe gets an
/// answer, they resume within a second or two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_by_one_node_holds_the_others_back_until_its_probe_is_answered() {
    let Some(pg) = postgres_server::Postgres::start() else {
        return;
    };
    // A port that refuses connections, until a receiver opens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - {from: lead, to: lead}\n",
        ),
        (
            "endpoints/crm.yaml",
            &format!(
                "url: http://127.0.0.1:{port}/contacts\nadaptor: contact\ntimeout: 2s\nretry: {{schedule: [{}]}}\n",
                ["1s"; 20].join(", ")
            ),
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Serve::start(
        config.path(),
        data_a.path(),
        &["--store", &pg.url, "--node", "node-a"],
    )
    .await;
    let b = Serve::start(
        config.path(),
        data_b.path(),
        &["--store", &pg.url, "--node", "node-b"],
    )
    .await;
    let a_url = a.url.clone();
    let attempts_by = async |node: &str| {
        all_entries(&a_url, "endpoint=crm")
            .await
            .into_iter()
            .filter(|e| e["node"] == node)
            .count()
    };
    // node-a tries 5 events, gets no answer to any, and pauses the endpoint.
    for i in 0..5 {
        assert!(post(&a.url, i).await);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !a.log().iter().any(|l| l.contains("pausing its deliveries")) {
        assert!(Instant::now() < deadline, "node-a never paused crm");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // node-b's events wait: it sends nothing while node-a's pause holds.
    for i in 100..106 {
        assert!(post(&b.url, i).await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        attempts_by("node-b").await,
        0,
        "node-b sent to an endpoint node-a had paused"
    );
    // The endpoint comes back: node-a's next probe is answered and node-b resumes.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let rx = Receiver::start_on(listener, vec![], Reply::Status(200));
    // Every event arrives: node-a's probes (which may have tried events posted to
    // node-b) and the retries of what failed wait for the pause too.
    every_one_arrives(
        &rx,
        &(0..5).chain(100..106).collect(),
        Duration::from_secs(40),
    )
    .await;
    // node-a cleared its pause when the endpoint answered: with node-a gone, node-b
    // delivers on its own at once.
    let b_url = b.url.clone();
    a.stop();
    for i in 200..203 {
        assert!(post(&b_url, i).await);
    }
    every_one_arrives(&rx, &(200..203).collect(), Duration::from_secs(5)).await;
    b.stop();
}

// ---------------------------------------------------------------------------------------
// Found by a review of the cluster changes: each of these failed before its fix.
// ---------------------------------------------------------------------------------------

/// The event id is half of the events' key; the other half, the envelope's `source`, is
/// not checked at the door: a source with a NUL, or one too long for an index entry, is
/// a 500 on PostgreSQL (22021 / 54000), where sled accepts it. It should be refused with
/// 400 like the id (or accepted, as sled does), never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_source_the_index_cannot_hold_is_not_a_500() {
    let Some(pg) = postgres_server::Postgres::start() else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let config = config(&rx);
    let data = tempfile::tempdir().unwrap();
    let node = Serve::start(config.path(), data.path(), &["--store", &pg.url]).await;
    let send = async |body: String| {
        let r = http()
            .post(format!("{}/events", node.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    // Random letters (xorshift): pglz cannot squeeze them into an index entry.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let long_source: String = (0..6000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    let mut statuses = Vec::new();
    for (i, source) in ["a\\u0000b", long_source.as_str()].into_iter().enumerate() {
        let (status, text) = send(format!(
            r#"{{"type": "call.disposition", "id": "src-{i}", "source": "{source}", "data": {{"lead": {i}}}}}"#
        ))
        .await;
        statuses.push((status, text.chars().take(200).collect::<String>()));
    }
    node.stop();
    assert!(
        statuses.iter().all(|(status, _)| *status < 500),
        "{statuses:?}"
    );
}

/// `switchboard send` on a shared store while a `serve` node has paused the endpoint:
/// send's own lane never attempts (the shared pause holds its takes back), so it never
/// pauses itself, and `settle` waits for a due delivery that is neither shut nor far:
/// send hangs for as long as the endpoint stays down (node-a's pause is renewed by every
/// failed probe). Before the shared pause, send tried, paused its own lane after five
/// unanswered attempts, and returned within seconds, leaving the delivery queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_returns_while_another_node_pauses_the_endpoint() {
    let Some(pg) = postgres_server::Postgres::start() else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = ConfigDir::new(&[
        (
            "adaptors/contact.yaml",
            "fields:\n  - {from: lead, to: lead}\n",
        ),
        (
            "endpoints/crm.yaml",
            &format!(
                "url: http://127.0.0.1:{port}/contacts\nadaptor: contact\ntimeout: 2s\nretry: {{schedule: [{}]}}\n",
                ["1s"; 20].join(", ")
            ),
        ),
        (
            "workflows/sale.yaml",
            "when:\n  - event: call.disposition\nactions:\n  - endpoint: crm\n",
        ),
    ]);
    let data_a = tempfile::tempdir().unwrap();
    let a = Serve::start(
        config.path(),
        data_a.path(),
        &["--store", &pg.url, "--node", "node-a"],
    )
    .await;
    for i in 0..5 {
        assert!(post(&a.url, i).await);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !a.log().iter().any(|l| l.contains("pausing its deliveries")) {
        assert!(Instant::now() < deadline, "node-a never paused crm");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let data_s = tempfile::tempdir().unwrap();
    let event = data_s.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"type": "call.disposition", "id": "by-send", "data": {"lead": 99}}"#,
    )
    .unwrap();
    let mut child = common::cli()
        .args(["send", "--config"])
        .arg(config.path())
        .args(["--store", &pg.url, "--event"])
        .arg(&event)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let limit = Duration::from_secs(45);
    let finished = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    a.stop();
    assert!(
        finished.is_some(),
        "switchboard send still waiting after {limit:?} (the endpoint is paused by node-a)"
    );
}
