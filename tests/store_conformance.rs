//! The store seam's conformance suite: the same tests run against every backend (the
//! embedded sled store, and PostgreSQL on a throwaway server: skipped when PostgreSQL is
//! not installed, outside CI). Each test speaks only the `Store` trait, as the runtime does.

#[path = "common/postgres.rs"]
mod postgres_server;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use switchboard::engine::Match;
use switchboard::engine::event::{Event, EventId};
use switchboard::store::record::{ErrorKind, LoggedRequest};
use switchboard::store::{
    Delivery, DeliveryId, DeliveryState, LimitCheck, LogEntry, LogQuery, NewEvent, Outcome, Store,
    StoreError,
};

fn at(minutes: i64) -> DateTime<Utc> {
    "2026-11-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::minutes(minutes)
}

fn to(endpoint: &str, workflow: &str, delay: Option<Duration>) -> Match {
    Match {
        workflow: workflow.into(),
        action: 0,
        endpoint: endpoint.into(),
        delay,
        step: None,
        after: None,
        order: None,
    }
}

fn new_event(id: &str, phone: &str, matches: Vec<Match>) -> NewEvent {
    let mut event = Event::new("call.disposition", json!({"phone_number": phone}));
    event.id = EventId::new(id);
    NewEvent {
        event,
        matches,
        keys: [
            ("phone_number".to_string(), phone.to_string()),
            ("lead_id".to_string(), format!("L-{id}")),
        ]
        .into_iter()
        .collect(),
        limits: Vec::new(),
    }
}

/// The log entry of an attempt of `d` at `when` that ended with `outcome`, and the
/// delivery as that attempt leaves it.
fn attempt(d: &Delivery, when: DateTime<Utc>, outcome: Outcome) -> (LogEntry, Delivery) {
    let ms = u64::try_from(when.timestamp_millis()).unwrap();
    let id = ulid::Ulid::from_parts(ms, fastrand_u80()).to_string();
    let mut delivery = d.clone();
    delivery.attempts += 1;
    delivery.last_entry = Some(id.clone());
    let next = (outcome == Outcome::Retrying).then(|| when + chrono::Duration::minutes(5));
    delivery.state = match outcome {
        Outcome::Delivered => DeliveryState::Delivered,
        Outcome::Retrying => DeliveryState::Pending,
        Outcome::Failed => DeliveryState::Failed,
        Outcome::Skipped => DeliveryState::Skipped,
    };
    delivery.due_at = next.map(switchboard::store::whole_ms);
    let entry = LogEntry {
        id,
        delivery_id: d.id.clone(),
        attempt: delivery.attempts,
        at: when,
        event_id: d.event_id.clone(),
        event_type: d.event_type.clone(),
        workflow: d.target.workflow.clone(),
        endpoint: d.target.endpoint.clone(),
        step: None,
        after: None,
        node: "node-a".into(),
        request: Some(LoggedRequest {
            method: "POST".into(),
            url: "http://127.0.0.1:9/".into(),
            headers: Default::default(),
            body: Some("{}".into()),
        }),
        response: None,
        outcome,
        error: None,
        next_attempt_at: next,
        waiting: None,
        captured: Default::default(),
        warnings: vec![],
        keys: d.keys.clone(),
    };
    (entry, delivery)
}

fn fastrand_u80() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    u128::from(N.fetch_add(1, Ordering::Relaxed))
}

/// Takes every due delivery of `endpoint` at `now` and records one attempt of each.
async fn attempt_all(store: &dyn Store, endpoint: &str, now: DateTime<Utc>, outcome: Outcome) {
    let taken = store
        .take(
            endpoint,
            now,
            usize::MAX,
            now + chrono::Duration::minutes(1),
        )
        .await
        .unwrap();
    for lease in taken.leases {
        let (entry, delivery) = attempt(&lease.delivery, now, outcome);
        store
            .record(&entry, &delivery, Some(lease.dequeued))
            .await
            .unwrap();
    }
}

pub async fn accept_stores_events_with_their_deliveries_and_dedupes(store: Arc<dyn Store>) {
    let matches = vec![
        to("x", "a", None),
        to("y", "b", Some(Duration::from_secs(300))),
    ];
    let first = store
        .accept(vec![new_event("e1", "1", matches.clone())], at(0))
        .await
        .unwrap()
        .remove(0);
    assert!(!first.duplicate);
    assert_eq!(first.deliveries.len(), 2);
    assert_eq!(store.queue_depth(), 2);
    let stored = store.event("api", &first.event_id).await.unwrap().unwrap();
    assert_eq!(stored.deliveries, first.deliveries);
    let delayed = store
        .delivery(&first.deliveries[1].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delayed.due_at, Some(at(5)));
    assert_eq!(delayed.state, DeliveryState::Pending);
    // Within the window: a duplicate, nothing new stored.
    let again = store
        .accept(vec![new_event("e1", "1", matches.clone())], at(60))
        .await
        .unwrap()
        .remove(0);
    assert!(again.duplicate);
    assert_eq!(again.deliveries, first.deliveries);
    assert_eq!(store.queue_depth(), 2);
    // The same id from another source is another event.
    let mut other = new_event("e1", "1", matches.clone());
    other.event.source = "hook".into();
    assert!(!store.accept(vec![other], at(60)).await.unwrap()[0].duplicate);
    attempt_all(store.as_ref(), "x", at(70), Outcome::Delivered).await;
    attempt_all(store.as_ref(), "y", at(70), Outcome::Delivered).await;
    // After the window, unfinished deliveries still make it a duplicate...
    let later = at(25 * 60);
    store
        .accept(vec![new_event("e2", "2", vec![to("x", "a", None)])], at(0))
        .await
        .unwrap();
    assert!(
        store
            .accept(vec![new_event("e2", "2", vec![to("x", "a", None)])], later)
            .await
            .unwrap()[0]
            .duplicate
    );
    // ...finished ones do not.
    assert!(
        !store
            .accept(vec![new_event("e1", "1", matches)], later)
            .await
            .unwrap()[0]
            .duplicate
    );
}

pub async fn taken_deliveries_are_leased_until_recorded_held_or_expired(store: Arc<dyn Store>) {
    let accepted = store
        .accept(
            vec![
                new_event("a", "1", vec![to("crm", "w", None)]),
                new_event("b", "2", vec![to("crm", "w", None)]),
                new_event(
                    "c",
                    "3",
                    vec![to("crm", "w", Some(Duration::from_secs(600)))],
                ),
                new_event("d", "4", vec![to("erp", "w", None)]),
            ],
            at(0),
        )
        .await
        .unwrap();
    assert_eq!(store.queued_endpoints().await.unwrap(), ["crm", "erp"]);
    let lease_until = at(1);
    let taken = store.take("crm", at(0), 10, lease_until).await.unwrap();
    let ids: Vec<_> = taken.leases.iter().map(|l| l.delivery.id.clone()).collect();
    assert_eq!(
        ids,
        [
            accepted[0].deliveries[0].id.clone(),
            accepted[1].deliveries[0].id.clone()
        ],
        "due ones, oldest first"
    );
    assert_eq!(taken.next, Some(at(10)), "when the delayed one falls due");
    assert!(taken.leases.iter().all(|l| l.dequeued == at(0)));
    // Leased: not handed out again, until the lease ends.
    assert!(
        store
            .take("crm", at(0), 10, lease_until)
            .await
            .unwrap()
            .leases
            .is_empty()
    );
    let expired = store.take("crm", at(2), 10, at(3)).await.unwrap();
    assert_eq!(
        expired.leases.len(),
        2,
        "a lease that ran out (a dead taker)"
    );
    // A hold keeps one back until then; recording ends a lease.
    store.hold(&ids[0], at(20)).await.unwrap();
    let first = &expired.leases[0];
    let (entry, delivery) = attempt(&first.delivery, at(2), Outcome::Retrying);
    store
        .record(&entry, &delivery, Some(first.dequeued))
        .await
        .unwrap();
    let second = &expired.leases[1];
    let (entry, delivery) = attempt(&second.delivery, at(2), Outcome::Delivered);
    store
        .record(&entry, &delivery, Some(second.dequeued))
        .await
        .unwrap();
    // At 10 min: the delayed one is due; the retry (due at 7) is due too.
    let due: Vec<_> = store
        .take("crm", at(10), 10, at(11))
        .await
        .unwrap()
        .leases
        .into_iter()
        .map(|l| l.delivery.id)
        .collect();
    assert_eq!(
        due,
        [ids[0].clone(), accepted[2].deliveries[0].id.clone()],
        "the retry (due 7 min) before the delayed one (due 10 min)"
    );
    assert_eq!(store.queue_depth(), 3);
    let taken = store.take("crm", at(10), 1, at(11)).await.unwrap();
    assert!(taken.leases.is_empty());
    assert_eq!(
        store
            .take("erp", at(0), 0, at(1))
            .await
            .unwrap()
            .leases
            .len(),
        0
    );
}

pub async fn records_move_the_queue_and_are_searchable(store: Arc<dyn Store>) {
    let phones = 10;
    for i in 0..60 {
        let endpoint = if i % 3 == 0 { "hubspot" } else { "slack" };
        let workflow = if i % 2 == 0 { "sale" } else { "lead" };
        let event = new_event(
            &format!("ev-{i}"),
            &format!("+1555000{:04}", i % phones),
            vec![to(endpoint, workflow, None)],
        );
        store.accept(vec![event], at(i)).await.unwrap();
    }
    // First attempts: every fifth fails for good, the rest are delivered; one minute each.
    for minute in 0..60 {
        for endpoint in ["hubspot", "slack"] {
            let taken = store
                .take(endpoint, at(minute), 1, at(minute + 1))
                .await
                .unwrap();
            for lease in taken.leases {
                let n: i64 = lease.delivery.event_id.as_str()[3..].parse().unwrap();
                let outcome = if n % 5 == 0 {
                    Outcome::Failed
                } else {
                    Outcome::Delivered
                };
                let (entry, delivery) = attempt(&lease.delivery, at(n + 1), outcome);
                store
                    .record(&entry, &delivery, Some(lease.dequeued))
                    .await
                    .unwrap();
            }
        }
    }
    assert_eq!(store.queue_depth(), 0);
    let q = async |f: &dyn Fn(&mut LogQuery)| {
        let mut query = LogQuery::default();
        f(&mut query);
        store.search(&query).await.unwrap()
    };
    // A phone in any spelling: 6 entries, newest first.
    let found = q(&|q| q.search = Some("(555) 000-0007".into())).await;
    assert_eq!(found.len(), 6);
    assert!(found.windows(2).all(|w| w[0].id > w[1].id));
    assert!(
        found
            .iter()
            .all(|e| e.keys["phone_number"] == "+15550000007")
    );
    // A lead id, and an event id.
    assert_eq!(q(&|q| q.search = Some("l-ev-7".into())).await.len(), 1);
    let by_event = q(&|q| q.search = Some("ev-12".into())).await;
    assert_eq!(by_event.len(), 1);
    assert_eq!(by_event[0].event_id.as_str(), "ev-12");
    // Filters alone and together.
    assert_eq!(q(&|q| q.endpoint = Some("hubspot".into())).await.len(), 20);
    assert_eq!(q(&|q| q.outcome = Some(Outcome::Failed)).await.len(), 12);
    assert_eq!(q(&|q| q.workflow = Some("sale".into())).await.len(), 30);
    let failed_hubspot = q(&|q| {
        q.endpoint = Some("hubspot".into());
        q.outcome = Some(Outcome::Failed);
    })
    .await;
    assert_eq!(failed_hubspot.len(), 4, "events 0, 15, 30, 45");
    assert!(failed_hubspot.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(
        q(&|q| {
            q.workflow = Some("lead".into());
            q.search = Some("+1 555 000 0001".into());
        })
        .await
        .len(),
        6
    );
    // A time window, newest first.
    let window = q(&|q| {
        q.since = Some(at(11));
        q.until = Some(at(20));
    })
    .await;
    assert_eq!(window.len(), 10);
    assert_eq!(window[0].at, at(20));
    // Paging by cursor covers everything once, newest first; following goes oldest first.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = q(&|q| {
            q.limit = 7;
            q.before = before.clone();
        })
        .await;
        if page.is_empty() {
            break;
        }
        before = page.last().map(|e| e.id.clone());
        seen.extend(page.into_iter().map(|e| e.id));
    }
    assert_eq!(seen.len(), 60);
    assert!(seen.windows(2).all(|w| w[0] > w[1]));
    let after = q(&|q| {
        q.after = Some(seen[10].clone());
        q.limit = 3;
    })
    .await;
    let ids: Vec<_> = after.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, [seen[9].clone(), seen[8].clone(), seen[7].clone()]);
    // A delivery's attempts, and one entry by id.
    let one = &found[0];
    let attempts = q(&|q| {
        q.delivery = Some(one.delivery_id.clone());
        q.after = Some(String::new());
    })
    .await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(store.entry(&one.id).await.unwrap().as_ref(), Some(one));
    // Export reads a range page by page, oldest first.
    let page = store
        .entries_between(at(0), at(100), None, 25)
        .await
        .unwrap();
    assert_eq!(page.len(), 25);
    let rest = store
        .entries_between(at(0), at(100), Some(&page[24].id), 100)
        .await
        .unwrap();
    assert_eq!(rest.len(), 35);
    assert!(
        page.iter()
            .chain(&rest)
            .collect::<Vec<_>>()
            .windows(2)
            .all(|w| w[0].id < w[1].id)
    );
    // Purging removes old entries from every way of finding them, and finished events.
    let purged = store.purge(at(21)).await.unwrap();
    assert_eq!(purged.entries, 20, "attempts at minutes 1 to 20");
    assert_eq!(
        purged.events, 20,
        "accepted at minutes 0 to 19, finished, their attempts older than the cutoff too"
    );
    assert_eq!(
        q(&|q| q.search = Some("+15550000007".into())).await.len(),
        4
    );
    assert_eq!(q(&|_| {}).await.len(), 40);
    assert_eq!(q(&|q| q.endpoint = Some("hubspot".into())).await.len(), 13);
    assert!(store.entry(&seen[59]).await.unwrap().is_none());
    assert!(
        store
            .event("api", &EventId::new("ev-0"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .event("api", &EventId::new("ev-30"))
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn replay_requeues_and_outlasts_an_attempt_in_flight(store: Arc<dyn Store>) {
    let accepted = store
        .accept(vec![new_event("r", "1", vec![to("crm", "w", None)])], at(0))
        .await
        .unwrap();
    let id = accepted[0].deliveries[0].id.clone();
    attempt_all(store.as_ref(), "crm", at(0), Outcome::Failed).await;
    assert_eq!(store.queue_depth(), 0);
    let replayed = store
        .replay(std::slice::from_ref(&id), at(5))
        .await
        .unwrap();
    assert_eq!(replayed[0].state, DeliveryState::Pending);
    assert_eq!(replayed[0].due_at, Some(at(5)));
    assert_eq!(store.queue_depth(), 1);
    // Replayed again while its attempt is in flight: the late record does not undo it.
    let lease = store
        .take("crm", at(5), 1, at(6))
        .await
        .unwrap()
        .leases
        .remove(0);
    store
        .replay(std::slice::from_ref(&id), at(5))
        .await
        .unwrap();
    let (entry, delivery) = attempt(&lease.delivery, at(5), Outcome::Failed);
    store
        .record(&entry, &delivery, Some(lease.dequeued))
        .await
        .unwrap();
    let now = store.delivery(&id).await.unwrap().unwrap();
    assert_eq!(now.state, DeliveryState::Pending, "the replay stands");
    assert_eq!(now.attempts, 2);
    assert_eq!(store.queue_depth(), 1);
    let unknown = store
        .replay(&[DeliveryId::new("nope")], at(5))
        .await
        .unwrap_err();
    assert!(matches!(unknown, StoreError::NotFound(_)), "{unknown}");
    store.health().unwrap();
    store.flush().await.unwrap();
}

pub async fn purge_keeps_what_is_still_needed_and_findable(store: Arc<dyn Store>) {
    // Accepted with no match, then again after the dedupe window with one: the purge of
    // the first acceptance must not take the event the pending delivery needs.
    store
        .accept(vec![new_event("again", "1", vec![])], at(0))
        .await
        .unwrap();
    let pending = store
        .accept(
            vec![new_event("again", "1", vec![to("crm", "w", None)])],
            at(1500),
        )
        .await
        .unwrap()
        .remove(0);
    assert!(!pending.duplicate);
    // Retried across the cutoff: the later entry stays findable every way.
    let late = store
        .accept(
            vec![new_event("late", "2", vec![to("erp", "w", None)])],
            at(0),
        )
        .await
        .unwrap()
        .remove(0);
    attempt_all(store.as_ref(), "erp", at(1), Outcome::Retrying).await;
    attempt_all(store.as_ref(), "erp", at(1520), Outcome::Delivered).await;
    let purged = store.purge(at(1510)).await.unwrap();
    assert_eq!(purged.entries, 1, "the attempt at minute 1");
    let taken = store.take("crm", at(1600), 10, at(1601)).await.unwrap();
    assert_eq!(taken.leases.len(), 1);
    assert!(
        matches!(&taken.leases[0].event, Ok(Some(e)) if e.event.id.as_str() == "again"),
        "the pending delivery's event is kept"
    );
    let late_id = late.deliveries[0].id.clone();
    for query in [
        LogQuery {
            delivery: Some(late_id.clone()),
            ..LogQuery::default()
        },
        LogQuery {
            search: Some("2".to_string()),
            ..LogQuery::default()
        },
        LogQuery {
            search: Some("late".into()),
            ..LogQuery::default()
        },
    ] {
        let found = store.search(&query).await.unwrap();
        assert_eq!(found.len(), 1, "{query:?}");
        assert_eq!(found[0].at, at(1520));
    }
    assert!(store.delivery(&late_id).await.unwrap().is_some());
    // Once its last entry is older than the cutoff too, the event goes.
    let purged = store.purge(at(2000)).await.unwrap();
    assert_eq!(purged.entries, 1);
    assert!(store.delivery(&late_id).await.unwrap().is_none());
    assert!(
        store
            .event("api", &EventId::new("late"))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn an_event_id_finds_every_acceptance_in_any_case(store: Arc<dyn Store>) {
    for minute in [0, 1500] {
        store
            .accept(
                vec![new_event("Call-77", "3", vec![to("crm", "w", None)])],
                at(minute),
            )
            .await
            .unwrap();
        attempt_all(store.as_ref(), "crm", at(minute + 1), Outcome::Delivered).await;
    }
    for text in ["Call-77", "call-77", " CALL-77 "] {
        let found = store
            .search(&LogQuery {
                search: Some(text.into()),
                ..LogQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), 2, "{text:?}");
        assert!(found[0].at > found[1].at, "newest first");
    }
}

pub async fn entry_ids_follow_the_order_of_records(store: Arc<dyn Store>) {
    store
        .accept(
            vec![
                new_event("slow", "1", vec![to("a", "w", None)]),
                new_event("fast", "2", vec![to("b", "w", None)]),
            ],
            at(0),
        )
        .await
        .unwrap();
    let slow = store
        .take("a", at(0), 1, at(5))
        .await
        .unwrap()
        .leases
        .remove(0);
    let fast = store
        .take("b", at(0), 1, at(5))
        .await
        .unwrap()
        .leases
        .remove(0);
    // The fast attempt started later but is recorded first; a reader follows from it.
    let (entry, delivery) = attempt(&fast.delivery, at(2), Outcome::Delivered);
    let first = store
        .record(&entry, &delivery, Some(fast.dequeued))
        .await
        .unwrap();
    let (entry, delivery) = attempt(&slow.delivery, at(1), Outcome::Delivered);
    let second = store
        .record(&entry, &delivery, Some(slow.dequeued))
        .await
        .unwrap();
    assert!(second > first, "{second} after {first}");
    let followed = store
        .search(&LogQuery {
            after: Some(first.clone()),
            ..LogQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(followed.len(), 1);
    assert_eq!(followed[0].id, second);
    assert_eq!(followed[0].at, at(1), "the entry keeps its attempt's time");
    let recorded = store.delivery(&slow.delivery.id).await.unwrap().unwrap();
    assert_eq!(recorded.last_entry.as_deref(), Some(second.as_str()));
}

/// A step that runs after another waits unqueued until the record that finishes its
/// leader queues it (delayed by its own action's delay); a failed leader releases it too
/// (to be skipped); replaying a leader with its followers makes them wait again, and
/// replaying the leader alone leaves them as they are.
pub async fn followers_wait_for_the_record_that_finishes_their_leader(store: Arc<dyn Store>) {
    let step = |endpoint: &str, step: &str, after: Option<&str>, delay: Option<Duration>| Match {
        step: Some(step.into()),
        after: after.map(str::to_string),
        ..to(endpoint, "w", delay)
    };
    let matches = vec![
        step("search", "find", None, None),
        step(
            "update",
            "update",
            Some("find"),
            Some(Duration::from_secs(120)),
        ),
        step("note", "note", Some("update"), None),
    ];
    let accepted = store
        .accept(vec![new_event("chain", "1", matches)], at(0))
        .await
        .unwrap()
        .remove(0);
    let ids: Vec<DeliveryId> = accepted.deliveries.iter().map(|d| d.id.clone()).collect();
    let read = |i: usize| {
        let (store, id) = (store.clone(), ids[i].clone());
        async move { store.delivery(&id).await.unwrap().unwrap() }
    };
    let (find, update, note) = (read(0).await, read(1).await, read(2).await);
    assert_eq!(find.followers, [ids[1].clone()]);
    assert_eq!(update.leader.as_ref(), Some(&ids[0]));
    assert_eq!(update.followers, [ids[2].clone()]);
    assert!(update.is_waiting() && note.is_waiting());
    assert_eq!(update.due_at, None);
    // Nothing of the followers is taken, however late.
    for endpoint in ["update", "note"] {
        let taken = store.take(endpoint, at(600), 10, at(601)).await.unwrap();
        assert!(
            taken.leases.is_empty() && taken.next.is_none(),
            "{endpoint}"
        );
    }
    // The lookup delivered at minute 1: the update is due at minute 2 (its delay counts
    // from the event), the note still waits.
    attempt_all(store.as_ref(), "search", at(1), Outcome::Delivered).await;
    let update = read(1).await;
    assert_eq!(update.due_at, Some(at(2)));
    assert!(!update.is_waiting());
    assert!(read(2).await.is_waiting());
    let early = store.take("update", at(1), 10, at(3)).await.unwrap();
    assert!(early.leases.is_empty());
    assert_eq!(early.next, Some(at(2)));
    // The update is retried, then fails: a retry releases nothing, the failure does.
    attempt_all(store.as_ref(), "update", at(2), Outcome::Retrying).await;
    assert!(read(2).await.is_waiting());
    attempt_all(store.as_ref(), "update", at(8), Outcome::Failed).await;
    let note = read(2).await;
    assert_eq!(note.due_at, Some(at(8)));
    attempt_all(store.as_ref(), "note", at(9), Outcome::Skipped).await;
    assert_eq!(read(2).await.state, DeliveryState::Skipped);

    // Replaying the lookup alone: the followers stay as they are.
    store.replay(&ids[..1], at(10)).await.unwrap();
    assert_eq!(read(1).await.state, DeliveryState::Failed);
    attempt_all(store.as_ref(), "search", at(10), Outcome::Delivered).await;
    assert_eq!(read(1).await.state, DeliveryState::Failed);
    // With its followers: they wait again for their leaders' new attempts.
    store.replay(&ids, at(11)).await.unwrap();
    let (update, note) = (read(1).await, read(2).await);
    assert!(
        update.is_waiting() && note.is_waiting(),
        "{update:?} {note:?}"
    );
    let taken = store.take("update", at(20), 10, at(21)).await.unwrap();
    assert!(taken.leases.is_empty());
    attempt_all(store.as_ref(), "search", at(12), Outcome::Delivered).await;
    assert_eq!(read(1).await.due_at, Some(at(12)));
    attempt_all(store.as_ref(), "update", at(13), Outcome::Delivered).await;
    assert_eq!(read(2).await.due_at, Some(at(13)));
}

/// An event for lead `lead` that matched workflow `limited` (two actions, with a limit of
/// 9 firings per lead_id in 3 minutes) and workflow `free` (no limit).
fn limited_event(id: &str, lead: &str) -> NewEvent {
    let mut new = new_event(
        id,
        "1",
        vec![
            to("crm", "limited", None),
            Match {
                action: 1,
                ..to("slack", "limited", None)
            },
            to("crm", "free", None),
        ],
    );
    new.keys.insert("lead_id".into(), lead.into());
    new.limits = vec![LimitCheck {
        workflow: "limited".into(),
        key: lead.into(),
        shown: format!("lead_id {lead}"),
        max: 9,
        within: Duration::from_secs(180),
        node: "node-a".into(),
    }];
    new
}

pub async fn a_limit_stops_the_tenth_firing_per_value_once_and_counts_only_firings(
    store: Arc<dyn Store>,
) {
    let seconds = |s: i64| at(0) + chrono::Duration::seconds(s);
    // Nine events of lead 812 within 3 minutes fire (one a call, the rest together).
    store
        .accept(vec![limited_event("a0", "812")], seconds(0))
        .await
        .unwrap();
    let batch = (1..9)
        .map(|i| limited_event(&format!("a{i}"), "812"))
        .collect();
    for accepted in store.accept(batch, seconds(10)).await.unwrap() {
        assert_eq!(accepted.deliveries.len(), 3);
    }
    assert_eq!(store.queue_depth(), 27);
    // A repeat of an id is a duplicate: it does not count.
    assert!(
        store
            .accept(vec![limited_event("a3", "812")], seconds(20))
            .await
            .unwrap()[0]
            .duplicate
    );
    // The tenth is stopped: one finished delivery of the limited workflow, skipped, with
    // one entry that says why; the workflow without a limit still fires.
    let tenth = store
        .accept(vec![limited_event("a9", "812")], seconds(30))
        .await
        .unwrap()
        .remove(0);
    assert!(!tenth.duplicate);
    let workflows: Vec<&str> = tenth
        .deliveries
        .iter()
        .map(|d| d.workflow.as_str())
        .collect();
    assert_eq!(workflows, ["limited", "free"]);
    assert_eq!(
        store.queue_depth(),
        28,
        "only the free workflow's delivery is queued"
    );
    let skipped = store
        .delivery(&tenth.deliveries[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(skipped.state, DeliveryState::Skipped);
    assert_eq!(skipped.due_at, None);
    assert_eq!(skipped.entries.len(), 1);
    let stored = store.event("api", &tenth.event_id).await.unwrap().unwrap();
    assert_eq!(stored.deliveries, tenth.deliveries);
    let entries = store
        .search(&LogQuery {
            outcome: Some(Outcome::Skipped),
            ..LogQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "logged once: {entries:?}");
    let entry = &entries[0];
    assert_eq!(Some(&entry.id), skipped.last_entry.as_ref());
    assert_eq!(entry.delivery_id, skipped.id);
    assert_eq!(entry.workflow, "limited");
    assert_eq!(entry.endpoint, "crm");
    assert_eq!(entry.node, "node-a");
    assert_eq!(entry.at, seconds(30));
    let error = entry.error.as_ref().expect("an error says why");
    assert_eq!(error.kind, ErrorKind::Limit);
    assert_eq!(
        error.message,
        "limit: 9 firings for lead_id 812 in the last 3m"
    );
    // Found by the lead's audit value like any delivery of the event.
    let by_lead = store
        .search(&LogQuery {
            search: Some("812".into()),
            ..LogQuery::default()
        })
        .await
        .unwrap();
    assert!(by_lead.iter().any(|e| e.id == entry.id));
    // Another lead has its own count.
    let other = store
        .accept(vec![limited_event("b0", "813")], seconds(40))
        .await
        .unwrap()
        .remove(0);
    let other = store
        .delivery(&other.deliveries[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.state, DeliveryState::Pending);
    // A stopped event did not count: once the first firing (at 0 s) is 3 minutes old, one
    // more fires; the next is stopped again (the eight of 10 s are still within).
    let fires = |accepted: &switchboard::store::Accepted| accepted.deliveries.len() == 3;
    let again = store
        .accept(vec![limited_event("a10", "812")], seconds(181))
        .await
        .unwrap();
    assert!(fires(&again[0]), "{again:?}");
    let stopped = store
        .accept(vec![limited_event("a11", "812")], seconds(182))
        .await
        .unwrap();
    assert!(!fires(&stopped[0]), "{stopped:?}");
    // Counts whose firings are all older than their period are forgotten; the others stay.
    assert_eq!(store.forget_firings(seconds(200)).await.unwrap(), 0);
    assert_eq!(store.forget_firings(seconds(40 + 181)).await.unwrap(), 1);
    assert_eq!(store.forget_firings(seconds(181 + 181)).await.unwrap(), 1);
    let fresh = store
        .accept(vec![limited_event("a12", "812")], seconds(400))
        .await
        .unwrap();
    assert!(fires(&fresh[0]));
}

/// `order_by` lines: a delivery waits behind the last unfinished one with its endpoint and
/// value — taken and in flight or queued, accepted earlier or in the same call —, is queued
/// by the record that finishes that one (whatever its outcome, and although the attempt
/// was taken before the follower existed), and goes at once when its line is empty.
pub async fn order_lines_let_one_delivery_per_value_go_at_a_time(store: Arc<dyn Store>) {
    let ordered = |value: &str| Match {
        order: Some(value.into()),
        ..to("crm", "w", None)
    };
    let accept = |id: &'static str, value: &'static str, when: i64| {
        let store = store.clone();
        async move {
            store
                .accept(vec![new_event(id, "1", vec![ordered(value)])], at(when))
                .await
                .unwrap()
                .remove(0)
                .deliveries[0]
                .id
                .clone()
        }
    };
    let read = |id: &DeliveryId| {
        let (store, id) = (store.clone(), id.clone());
        async move { store.delivery(&id).await.unwrap().unwrap() }
    };
    let e1 = accept("o1", "A", 0).await;
    let e2 = accept("o2", "B", 0).await;
    let taken = store.take("crm", at(0), 10, at(100)).await.unwrap();
    assert_eq!(taken.leases.len(), 2, "two values: both go");
    let first = taken
        .leases
        .into_iter()
        .find(|l| l.delivery.id == e1)
        .unwrap();
    // Accepted while e1 is in flight: behind it; and one more behind that.
    let e3 = accept("o3", "A", 0).await;
    let e4 = accept("o4", "A", 0).await;
    assert_eq!(read(&e3).await.behind.as_ref(), Some(&e1));
    assert_eq!(read(&e4).await.behind.as_ref(), Some(&e3));
    assert!(read(&e3).await.is_waiting() && read(&e4).await.is_waiting());
    assert_eq!(read(&e1).await.followers, std::slice::from_ref(&e3));
    // e1's attempt was taken before e3 existed: its record still queues e3, after the retry.
    let (entry, delivery) = attempt(&first.delivery, at(0), Outcome::Retrying);
    assert!(delivery.followers.is_empty());
    store
        .record(&entry, &delivery, Some(first.dequeued))
        .await
        .unwrap();
    assert!(read(&e3).await.is_waiting(), "a retry keeps the line");
    let taken = store.take("crm", at(6), 10, at(7)).await.unwrap();
    let ids: Vec<&DeliveryId> = taken.leases.iter().map(|l| &l.delivery.id).collect();
    assert_eq!(ids, [&e1], "only e1 of line A; e2 still leased");
    // e2's lease runs out at minute 100; its record would come with it.
    let lease = taken.leases.into_iter().next().unwrap();
    let (entry, mut delivery) = attempt(&lease.delivery, at(6), Outcome::Delivered);
    delivery.followers.clear();
    store
        .record(&entry, &delivery, Some(lease.dequeued))
        .await
        .unwrap();
    assert_eq!(read(&e3).await.due_at, Some(at(6)));
    assert!(read(&e4).await.is_waiting());
    // A failure does not stop the line: the next one goes.
    attempt_all(store.as_ref(), "crm", at(7), Outcome::Failed).await;
    assert_eq!(read(&e3).await.state, DeliveryState::Failed);
    assert_eq!(read(&e4).await.due_at, Some(at(7)));
    // Behind a queued (not taken) delivery too.
    let e5 = accept("o5", "A", 8).await;
    assert_eq!(read(&e5).await.behind.as_ref(), Some(&e4));
    attempt_all(store.as_ref(), "crm", at(9), Outcome::Delivered).await;
    assert_eq!(read(&e4).await.state, DeliveryState::Delivered);
    assert_eq!(read(&e5).await.due_at, Some(at(9)));
    attempt_all(store.as_ref(), "crm", at(10), Outcome::Delivered).await;
    // The line is empty: the next one goes at once.
    let e6 = accept("o6", "A", 11).await;
    let e6 = read(&e6).await;
    assert!(e6.behind.is_none() && e6.due_at.is_some(), "{e6:?}");
    // Two of one line in one call: the second behind the first.
    let accepted = store
        .accept(
            vec![
                new_event("o7", "1", vec![ordered("C")]),
                new_event("o8", "1", vec![ordered("C")]),
            ],
            at(12),
        )
        .await
        .unwrap();
    let (e7, e8) = (&accepted[0].deliveries[0].id, &accepted[1].deliveries[0].id);
    assert_eq!(read(e8).await.behind.as_ref(), Some(e7));
    assert!(read(e7).await.behind.is_none());
    let _ = e2;
}

/// Replaying a delivery that waits in its `order_by` line sends it at once, outside its
/// line (docs/configuration.md); the deliveries behind it were not replayed: they stay in
/// line, one at a time — none goes while an earlier one of the line is still unfinished.
pub async fn replaying_a_waiting_delivery_keeps_the_ones_behind_it_in_line(store: Arc<dyn Store>) {
    let ordered = Match {
        order: Some("812".into()),
        ..to("crm", "w", None)
    };
    let accept = |id: &'static str| {
        let (store, ordered) = (store.clone(), ordered.clone());
        async move {
            store
                .accept(vec![new_event(id, "1", vec![ordered])], at(0))
                .await
                .unwrap()
                .remove(0)
                .deliveries[0]
                .id
                .clone()
        }
    };
    accept("r1").await;
    // a (r1) is in flight (leased until minute 100).
    let taken = store.take("crm", at(0), 10, at(100)).await.unwrap();
    assert_eq!(taken.leases.len(), 1);
    let b = accept("r2").await;
    let c = accept("r3").await;
    let read = |id: &DeliveryId| {
        let (store, id) = (store.clone(), id.clone());
        async move { store.delivery(&id).await.unwrap().unwrap() }
    };
    assert_eq!(read(&c).await.behind.as_ref(), Some(&b));
    // b is replayed while it waits: it keeps its place (a is in flight ahead of it).
    store.replay(std::slice::from_ref(&b), at(1)).await.unwrap();
    assert!(read(&b).await.is_waiting(), "b keeps its place in the line");
    attempt_all(store.as_ref(), "crm", at(1), Outcome::Delivered).await;
    assert_eq!(read(&b).await.state, DeliveryState::Pending);
    assert!(read(&c).await.is_waiting());
    // a finishes: then b goes, and c only once b is finished.
    let lease = taken.leases.into_iter().next().unwrap();
    let (entry, delivery) = attempt(&lease.delivery, at(2), Outcome::Delivered);
    store
        .record(&entry, &delivery, Some(lease.dequeued))
        .await
        .unwrap();
    assert_eq!(
        read(&b).await.due_at,
        Some(at(2)),
        "b goes when a is finished"
    );
    assert!(read(&c).await.is_waiting(), "c still behind b");
    attempt_all(store.as_ref(), "crm", at(3), Outcome::Delivered).await;
    assert_eq!(read(&b).await.state, DeliveryState::Delivered);
    assert_eq!(
        read(&c).await.due_at,
        Some(at(3)),
        "c goes when b is finished"
    );
}

/// A `limit` per a field whose value holds a NUL (`"lead_id": "8\u000012"`, valid JSON)
/// counts like any other value: the acceptance is stored and counted on every backend
/// (PostgreSQL's text refuses NUL bytes: `order_by` values replace them; limit keys must
/// not make the event fail).
pub async fn a_limit_key_with_a_nul_is_counted_like_any_value(store: Arc<dyn Store>) {
    let mut new = limited_event("nul-1", "8\u{0}12");
    new.keys.insert("lead_id".into(), "812".into());
    let accepted = store.accept(vec![new], at(0)).await;
    assert!(accepted.is_ok(), "{accepted:?}");
    let accepted = accepted.unwrap().remove(0);
    assert!(!accepted.duplicate);
    assert_eq!(accepted.deliveries.len(), 3, "fired: counted, not stopped");
    // The tenth within 3 minutes is stopped, with that value in its reason.
    for n in 2..=10 {
        let mut new = limited_event(&format!("nul-{n}"), "8\u{0}12");
        new.keys.insert("lead_id".into(), "812".into());
        let accepted = store.accept(vec![new], at(0)).await;
        assert!(accepted.is_ok(), "{n}: {accepted:?}");
        let expected = if n == 10 { 2 } else { 3 };
        assert_eq!(accepted.unwrap()[0].deliveries.len(), expected, "{n}");
    }
}

/// An event whose audit key (a `keys` field such as lead_id) holds a NUL is stored on
/// every backend, and found by it.
pub async fn an_audit_key_with_a_nul_is_stored(store: Arc<dyn Store>) {
    let mut new = new_event("nul-2", "1", vec![to("crm", "w", None)]);
    new.keys.insert("lead_id".into(), "8\u{0}12".into());
    let accepted = store.accept(vec![new], at(0)).await;
    assert!(accepted.is_ok(), "{accepted:?}");
}

/// A purge while a line is busy: the finished, old head of the line goes (with its event),
/// the line stays — the next acceptance waits behind the delivery in flight — and once
/// every delivery of the line is finished and purged, the next one goes at once.
pub async fn a_purge_while_a_line_is_busy_keeps_the_line(store: Arc<dyn Store>) {
    let lined = Match {
        order: Some("812".into()),
        ..to("crm", "w", None)
    };
    let accept = |id: &'static str, when: i64| {
        let (store, m) = (store.clone(), lined.clone());
        async move {
            store
                .accept(vec![new_event(id, "1", vec![m])], at(when))
                .await
                .unwrap()
                .remove(0)
                .deliveries[0]
                .id
                .clone()
        }
    };
    let a = accept("p1", 0).await;
    let b = accept("p2", 0).await;
    attempt_all(store.as_ref(), "crm", at(1), Outcome::Delivered).await;
    let taken = store.take("crm", at(60), 10, at(600)).await.unwrap();
    assert_eq!(taken.leases.len(), 1);
    assert_eq!(taken.leases[0].delivery.id, b);
    store.purge(at(30)).await.unwrap();
    assert!(store.delivery(&a).await.unwrap().is_none(), "a is purged");
    let c = accept("p3", 61).await;
    let c_now = store.delivery(&c).await.unwrap().unwrap();
    assert_eq!(c_now.behind.as_ref(), Some(&b), "{c_now:?}");
    let lease = taken.leases.into_iter().next().unwrap();
    let (entry, delivery) = attempt(&lease.delivery, at(62), Outcome::Delivered);
    store
        .record(&entry, &delivery, Some(lease.dequeued))
        .await
        .unwrap();
    attempt_all(store.as_ref(), "crm", at(63), Outcome::Delivered).await;
    assert_eq!(
        store.delivery(&c).await.unwrap().unwrap().state,
        DeliveryState::Delivered
    );
    store.purge(at(200)).await.unwrap();
    let d = accept("p4", 201).await;
    let d_now = store.delivery(&d).await.unwrap().unwrap();
    assert!(
        d_now.behind.is_none() && d_now.due_at.is_some(),
        "{d_now:?}"
    );
}

/// `queue_depth` ("deliveries waiting for an attempt") counts the same on every backend:
/// a step waiting for the one it runs after is not queued (docs: "waits, not queued")
/// until the record that finishes its leader queues it.
pub async fn waiting_followers_are_not_in_the_queue_depth(store: Arc<dyn Store>) {
    let step = |endpoint: &str, step: &str, after: Option<&str>| Match {
        step: Some(step.into()),
        after: after.map(str::to_string),
        ..to(endpoint, "w", None)
    };
    let matches = vec![
        step("search", "find", None),
        step("update", "update", Some("find")),
        step("note", "note", Some("update")),
    ];
    store
        .accept(vec![new_event("chain", "1", matches)], at(0))
        .await
        .unwrap();
    assert_eq!(store.queue_depth(), 1, "only the lookup is queued");
    attempt_all(store.as_ref(), "search", at(1), Outcome::Delivered).await;
    assert_eq!(
        store.queue_depth(),
        1,
        "the update is queued, the note waits"
    );
}

/// Runs every conformance test against a backend, each on a fresh store from `$open`.
macro_rules! conformance {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn accept_stores_events_with_their_deliveries_and_dedupes() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                super::accept_stores_events_with_their_deliveries_and_dedupes(store).await;
            }

            #[tokio::test]
            async fn taken_deliveries_are_leased_until_recorded_held_or_expired() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                super::taken_deliveries_are_leased_until_recorded_held_or_expired(store).await;
            }

            #[tokio::test]
            async fn records_move_the_queue_and_are_searchable() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                super::records_move_the_queue_and_are_searchable(store).await;
            }

            #[tokio::test]
            async fn purge_keeps_what_is_still_needed_and_findable() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                super::purge_keeps_what_is_still_needed_and_findable(store).await;
            }

            #[tokio::test]
            async fn an_event_id_finds_every_acceptance_in_any_case() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                super::an_event_id_finds_every_acceptance_in_any_case(store).await;
            }

            #[tokio::test]
            async fn entry_ids_follow_the_order_of_records() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                super::entry_ids_follow_the_order_of_records(store).await;
            }

            #[tokio::test]
            async fn a_limit_stops_the_tenth_firing_per_value_once_and_counts_only_firings() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                super::a_limit_stops_the_tenth_firing_per_value_once_and_counts_only_firings(store)
                    .await;
            }

            #[tokio::test]
            async fn replay_requeues_and_outlasts_an_attempt_in_flight() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                super::replay_requeues_and_outlasts_an_attempt_in_flight(store).await;
            }

            #[tokio::test]
            async fn order_lines_let_one_delivery_per_value_go_at_a_time() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                super::order_lines_let_one_delivery_per_value_go_at_a_time(store).await;
            }

            #[tokio::test]
            async fn followers_wait_for_the_record_that_finishes_their_leader() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                super::followers_wait_for_the_record_that_finishes_their_leader(store).await;
            }

            #[tokio::test]
            async fn replaying_a_waiting_delivery_keeps_the_ones_behind_it_in_line() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                super::replaying_a_waiting_delivery_keeps_the_ones_behind_it_in_line(store).await;
            }

            #[tokio::test]
            async fn a_limit_key_with_a_nul_is_counted_like_any_value() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                super::a_limit_key_with_a_nul_is_counted_like_any_value(store).await;
            }

            #[tokio::test]
            async fn an_audit_key_with_a_nul_is_stored() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                super::an_audit_key_with_a_nul_is_stored(store).await;
            }

            #[tokio::test]
            async fn a_purge_while_a_line_is_busy_keeps_the_line() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                super::a_purge_while_a_line_is_busy_keeps_the_line(store).await;
            }

            #[tokio::test]
            async fn waiting_followers_are_not_in_the_queue_depth() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                super::waiting_followers_are_not_in_the_queue_depth(store).await;
            }
        }
    };
}

async fn open_sled() -> Option<(Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = switchboard::store::SledStore::open(dir.path()).unwrap();
    Some((Arc::new(store), dir))
}

/// A store on a throwaway PostgreSQL server of its own (None: not installed, skipped).
async fn open_postgres() -> Option<(Arc<dyn Store>, postgres_server::Postgres)> {
    let server = postgres_server::Postgres::start()?;
    let store = switchboard::store::PostgresStore::connect(&server.url, "node-a")
        .await
        .unwrap();
    Some((Arc::new(store), server))
}

conformance!(sled, open_sled());
conformance!(postgres, open_postgres());

/// What only a shared database does: two nodes that connect at once (and so create the
/// schema at once), accept one event id at once, take from one queue at once, and record
/// in turn.
#[tokio::test]
async fn postgres_nodes_share_dedupe_leases_and_the_order_of_entries() {
    use switchboard::store::PostgresStore;
    let Some(server) = postgres_server::Postgres::start() else {
        return;
    };
    let (a, b) = tokio::join!(
        PostgresStore::connect(&server.url, "node-a"),
        PostgresStore::connect(&server.url, "node-b")
    );
    let (a, b): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::new(a.unwrap()), Arc::new(b.unwrap()));
    // One event id accepted on both nodes at once: stored once.
    let same = || vec![new_event("same", "1", vec![to("crm", "w", None)])];
    let (on_a, on_b) = tokio::join!(a.accept(same(), at(0)), b.accept(same(), at(0)));
    let (on_a, on_b) = (on_a.unwrap().remove(0), on_b.unwrap().remove(0));
    assert_eq!(
        [on_a.duplicate, on_b.duplicate]
            .iter()
            .filter(|d| **d)
            .count(),
        1,
        "one acceptance, one duplicate"
    );
    assert_eq!(on_a.deliveries, on_b.deliveries);
    let events: Vec<NewEvent> = (0..19)
        .map(|i| new_event(&format!("q{i}"), "2", vec![to("crm", "w", None)]))
        .collect();
    a.accept(events, at(0)).await.unwrap();
    // Both nodes take at once, again and again: each delivery goes to one of them.
    let mut taken: Vec<(char, DeliveryId)> = Vec::new();
    loop {
        let (from_a, from_b) = tokio::join!(
            a.take("crm", at(1), 3, at(2)),
            b.take("crm", at(1), 3, at(2))
        );
        let (from_a, from_b) = (from_a.unwrap().leases, from_b.unwrap().leases);
        if from_a.is_empty() && from_b.is_empty() {
            break;
        }
        taken.extend(from_a.into_iter().map(|l| ('a', l.delivery.id)));
        taken.extend(from_b.into_iter().map(|l| ('b', l.delivery.id)));
    }
    let mut ids: Vec<_> = taken.iter().map(|(_, id)| id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "every delivery taken");
    assert_eq!(taken.len(), 20, "none taken twice");
    // Node a dies: once its leases run out, b takes its deliveries over.
    let of_a = taken.iter().filter(|(node, _)| *node == 'a').count();
    let over = b.take("crm", at(2), 100, at(3)).await.unwrap().leases;
    assert_eq!(over.len(), 20, "{of_a} of them were a's");
    // Recorded by both nodes in turn: ids follow the order of records; each node reads
    // the other's entries.
    let mut recorded = Vec::new();
    for (i, lease) in over.iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        let (mut entry, delivery) = attempt(&lease.delivery, at(2), Outcome::Delivered);
        entry.node = if i % 2 == 0 { "node-a" } else { "node-b" }.into();
        recorded.push(
            node.record(&entry, &delivery, Some(lease.dequeued))
                .await
                .unwrap(),
        );
    }
    assert!(recorded.windows(2).all(|w| w[0] < w[1]));
    let seen_by_a = a.search(&LogQuery::default()).await.unwrap();
    assert_eq!(seen_by_a.len(), 20);
    assert!(seen_by_a.iter().any(|e| e.node == "node-b"));
    assert_eq!(b.queue_depth(), 0);
}

/// Two nodes accepting events of one lead at once cannot both pass its limit: the count's
/// row is locked from the count to the commit.
#[tokio::test]
async fn postgres_nodes_accepting_at_once_share_a_limit() {
    use switchboard::store::PostgresStore;
    let Some(server) = postgres_server::Postgres::start() else {
        return;
    };
    let (a, b) = tokio::join!(
        PostgresStore::connect(&server.url, "node-a"),
        PostgresStore::connect(&server.url, "node-b")
    );
    let (a, b): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::new(a.unwrap()), Arc::new(b.unwrap()));
    let mut calls = Vec::new();
    for i in 0..30 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        calls.push(tokio::spawn(async move {
            node.accept(vec![limited_event(&format!("r{i}"), "812")], at(0))
                .await
                .unwrap()
                .remove(0)
        }));
    }
    let mut fired = 0;
    for call in calls {
        fired += usize::from(call.await.unwrap().deliveries.len() == 3);
    }
    assert_eq!(fired, 9, "exactly max firings across both nodes");
    let skipped = a
        .search(&LogQuery {
            outcome: Some(Outcome::Skipped),
            ..LogQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(skipped.len(), 21);
}

/// `sslmode=require` of a server that does not speak TLS fails, saying why, without the
/// password.
#[tokio::test]
async fn postgres_tls_required_of_a_server_without_it_is_refused() {
    let Some(server) = postgres_server::Postgres::start() else {
        return;
    };
    let url = format!(
        "{}?sslmode=require",
        server.url.replace("postgres@", "postgres:s3cret-pw@")
    );
    let error = switchboard::store::PostgresStore::connect(&url, "node-a")
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("TLS") || text.contains("tls"), "{text}");
    assert!(
        text.contains("postgres:***@") && !text.contains("s3cret"),
        "{text}"
    );
}

/// With `sslmode=require` the store talks TLS, verifying the server against
/// `sslrootcert`; a server whose certificate no trusted CA signed is refused.
#[tokio::test]
async fn postgres_over_tls_verifies_the_server() {
    use switchboard::store::PostgresStore;
    let Some(server) = postgres_server::Postgres::start_tls() else {
        return;
    };
    let ca = server.ca.as_ref().unwrap().to_str().unwrap();
    let url = format!("{}?sslmode=require&sslrootcert={ca}", server.url);
    let store = PostgresStore::connect(&url, "node-a").await.unwrap();
    store
        .accept(
            vec![new_event("tls", "1", vec![to("crm", "w", None)])],
            at(0),
        )
        .await
        .unwrap();
    assert_eq!(store.queue_depth(), 1);
    let untrusted = format!("{}?sslmode=require", server.url);
    let error = PostgresStore::connect(&untrusted, "node-a")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("certificate"), "{error}");
}

/// A node whose lease ran out records late, after another node took the delivery over: its
/// entry is kept, but it neither ends the other node's lease nor undoes the other node's
/// record.
#[tokio::test]
async fn postgres_a_late_record_after_a_takeover_does_not_clobber_it() {
    use switchboard::store::PostgresStore;
    let Some(server) = postgres_server::Postgres::start() else {
        return;
    };
    let a: Arc<dyn Store> = Arc::new(PostgresStore::connect(&server.url, "node-a").await.unwrap());
    let b: Arc<dyn Store> = Arc::new(PostgresStore::connect(&server.url, "node-b").await.unwrap());
    let c: Arc<dyn Store> = Arc::new(PostgresStore::connect(&server.url, "node-c").await.unwrap());
    let accepted = a
        .accept(
            vec![
                new_event("one", "1", vec![to("crm", "w", None)]),
                new_event("two", "2", vec![to("slack", "w", None)]),
                new_event("three", "3", vec![to("erp", "w", None)]),
            ],
            at(0),
        )
        .await
        .unwrap();
    let (one, two) = (
        accepted[0].deliveries[0].id.clone(),
        accepted[1].deliveries[0].id.clone(),
    );

    // 1. a's lease runs out, b takes over and delivers, then a records a retry late.
    let by_a = a
        .take("crm", at(0), 1, at(1))
        .await
        .unwrap()
        .leases
        .remove(0);
    let by_b = b
        .take("crm", at(2), 1, at(3))
        .await
        .unwrap()
        .leases
        .remove(0);
    let (entry, delivery) = attempt(&by_b.delivery, at(2), Outcome::Delivered);
    b.record(&entry, &delivery, Some(by_b.dequeued))
        .await
        .unwrap();
    let (entry, delivery) = attempt(&by_a.delivery, at(0), Outcome::Retrying);
    a.record(&entry, &delivery, Some(by_a.dequeued))
        .await
        .unwrap();
    let now = a.delivery(&one).await.unwrap().unwrap();
    assert_eq!(now.entries.len(), 2, "both attempts are logged");
    assert_eq!(
        now.state,
        DeliveryState::Delivered,
        "a's late retry does not queue a delivered delivery again"
    );
    assert!(
        c.take("crm", at(10), 1, at(11))
            .await
            .unwrap()
            .leases
            .is_empty(),
        "nothing to send again"
    );

    // 2. a's lease runs out, b takes over; a records a retry while b's attempt is on the
    // wire: b's lease stands, so c cannot take it before b records.
    let by_a = a
        .take("slack", at(0), 1, at(1))
        .await
        .unwrap()
        .leases
        .remove(0);
    let by_b = b
        .take("slack", at(2), 1, at(4))
        .await
        .unwrap()
        .leases
        .remove(0);
    let (entry, mut delivery) = attempt(&by_a.delivery, at(0), Outcome::Retrying);
    delivery.due_at = Some(at(2));
    a.record(&entry, &delivery, Some(by_a.dequeued))
        .await
        .unwrap();
    assert!(
        c.take("slack", at(3), 1, at(5))
            .await
            .unwrap()
            .leases
            .is_empty(),
        "b's lease still holds it"
    );
    let (entry, delivery) = attempt(&by_b.delivery, at(2), Outcome::Delivered);
    b.record(&entry, &delivery, Some(by_b.dequeued))
        .await
        .unwrap();
    let now = b.delivery(&two).await.unwrap().unwrap();
    assert_eq!(
        now.state,
        DeliveryState::Delivered,
        "b's record, the live lease's, stands"
    );
    assert_eq!(now.entries.len(), 2);

    // 3. a's lease runs out, b takes over; a's record fails and a holds the delivery back:
    // the hold is a's alone, it does not take b's lease, and b's record stands.
    let three = accepted[2].deliveries[0].id.clone();
    a.take("erp", at(0), 1, at(1)).await.unwrap();
    let by_b = b
        .take("erp", at(2), 1, at(4))
        .await
        .unwrap()
        .leases
        .remove(0);
    a.hold(&three, at(30)).await.unwrap();
    let (entry, delivery) = attempt(&by_b.delivery, at(2), Outcome::Delivered);
    b.record(&entry, &delivery, Some(by_b.dequeued))
        .await
        .unwrap();
    let now = b.delivery(&three).await.unwrap().unwrap();
    assert_eq!(now.state, DeliveryState::Delivered, "b's record stands");
    assert_eq!(b.queue_depth(), 0);
}

// ---------------------------------------------------------------------------------------
// Group commit under trouble: each of these failed on its first version.
// ---------------------------------------------------------------------------------------

/// A raw connection to the test server, for holding locks the store must wait for.
async fn raw_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// An accept answered `Unavailable` (503 at the door) must not be stored afterwards: the
/// group writer keeps the call of a caller that stopped waiting (its 10 s bound ran out
/// while the call was queued behind a stuck batch) and commits it in the next batch.
/// Before group commit, a call that ran out was abandoned with its transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_accept_answered_unavailable_is_not_stored_later() {
    use switchboard::store::PostgresStore;
    let Some(server) = postgres_server::Postgres::start() else {
        return;
    };
    let store: Arc<dyn Store> =
        Arc::new(PostgresStore::connect(&server.url, "node-a").await.unwrap());
    // Another session makes every insert into the events wait.
    let blocker = raw_client(&server.url).await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE switchboard_events IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let first = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .accept(
                    vec![new_event("first", "1", vec![to("crm", "w", None)])],
                    at(0),
                )
                .await
        })
    };
    // Queued while the first call's transaction waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .accept(
                    vec![new_event("second", "2", vec![to("crm", "w", None)])],
                    at(0),
                )
                .await
        })
    };
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert!(
        matches!(first, Err(StoreError::Unavailable(_))),
        "{first:?}"
    );
    assert!(
        matches!(second, Err(StoreError::Unavailable(_))),
        "{second:?}"
    );
    // The database answers again (the lock is released).
    blocker.batch_execute("COMMIT").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reader = PostgresStore::connect(&server.url, "node-r").await.unwrap();
    assert!(
        reader
            .event("api", &EventId::new("first"))
            .await
            .unwrap()
            .is_none(),
        "the first call was rolled back"
    );
    assert!(
        reader
            .event("api", &EventId::new("second"))
            .await
            .unwrap()
            .is_none(),
        "an accept answered Unavailable was stored afterwards"
    );
}

/// Bulk acceptances under load: many callers each accepting an array of events (a
/// `POST /events` of a 1 MB array holds thousands) keep arriving. Group commit puts every
/// call queued meanwhile into one transaction, bounded by calls (256), not by rows: the
/// transaction grows until it takes longer than the 10 s call bound, then every call in it
/// fails (Unavailable: 503, the store marked failing), the work is rolled back, the
/// callers retry into an equally large batch, and nothing is accepted any more. Written
/// call by call (as before), each call takes well under the bound.
///
/// Measured on 2 cores (3000 events a call, 40 s): 32 callers, 0 failed before and after;
/// 48 callers, 82 calls accepted and 133 failed before, 53 accepted and 144 failed after.
/// Overloaded either way, so ignored: run with `--ignored` and REVIEW_BULK_CALLERS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn postgres_concurrent_bulk_accepts_are_not_all_refused() {
    use switchboard::store::PostgresStore;
    let Some(server) = postgres_server::Postgres::start() else {
        return;
    };
    let store: Arc<dyn Store> =
        Arc::new(PostgresStore::connect(&server.url, "node-a").await.unwrap());
    let size: usize = std::env::var("REVIEW_BULK_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let callers: usize = std::env::var("REVIEW_BULK_CALLERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    // One call alone, for scale.
    let started = std::time::Instant::now();
    let events: Vec<NewEvent> = (0..size)
        .map(|i| new_event(&format!("alone-{i}"), "1", vec![to("crm", "w", None)]))
        .collect();
    store.accept(events, at(0)).await.unwrap();
    let alone = started.elapsed();
    let run_for = Duration::from_secs(40);
    let ok = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..callers {
        let (store, ok, failed) = (store.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut round = 0;
            while started.elapsed() < run_for {
                let events: Vec<NewEvent> = (0..size)
                    .map(|i| {
                        new_event(
                            &format!("c{c}-r{round}-{i}"),
                            "1",
                            vec![to("crm", "w", None)],
                        )
                    })
                    .collect();
                round += 1;
                match store.accept(events, at(0)).await {
                    Ok(_) => ok.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
                    Err(_) => failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
                };
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (ok, failed) = (
        ok.load(std::sync::atomic::Ordering::SeqCst),
        failed.load(std::sync::atomic::Ordering::SeqCst),
    );
    eprintln!(
        "one call of {size} events alone: {alone:?}; {callers} callers for {run_for:?}: {ok} calls accepted, {failed} failed"
    );
    assert_eq!(
        failed, 0,
        "{ok} accepted, {failed} failed (one call alone: {alone:?})"
    );
}

/// A read-only server (25006) is an outage, but `recover` only asks `SELECT 1`, which a
/// read-only server answers: the store says it works again while every write still
/// fails, so a node flaps between "storage failed" and "storage works again" every
/// second (readiness and the dispatcher with it), and keeps its pooled connections to
/// that server (fast recycling) rather than looking for a writable one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_read_only_server_does_not_count_as_recovered() {
    use switchboard::store::PostgresStore;
    let Some(server) = postgres_server::Postgres::start() else {
        return;
    };
    let store: Arc<dyn Store> =
        Arc::new(PostgresStore::connect(&server.url, "node-a").await.unwrap());
    let admin = raw_client(&server.url).await;
    for sql in [
        "ALTER SYSTEM SET default_transaction_read_only = on",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = store
        .accept(
            vec![new_event("ro-1", "1", vec![to("crm", "w", None)])],
            at(0),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(store.health().is_err());
    let recovered = store.recover().await;
    let still = store
        .accept(
            vec![new_event("ro-2", "2", vec![to("crm", "w", None)])],
            at(0),
        )
        .await;
    assert!(still.is_err(), "the server is still read-only: {still:?}");
    assert!(
        !matches!(recovered, Ok(true)),
        "recover said the store works again while it cannot write: {recovered:?}"
    );
}

/// Per-call isolation (passes): calls queued together behind a waiting transaction are
/// written in one batch; one the database refuses (a NUL in its source: 22021) fails
/// alone, the others are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_refused_call_fails_alone_in_its_batch() {
    use switchboard::store::PostgresStore;
    let Some(server) = postgres_server::Postgres::start() else {
        return;
    };
    let store: Arc<dyn Store> =
        Arc::new(PostgresStore::connect(&server.url, "node-a").await.unwrap());
    let blocker = raw_client(&server.url).await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE switchboard_events IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut calls = Vec::new();
    for i in 0..12 {
        let store = store.clone();
        calls.push(tokio::spawn(async move {
            let mut event = new_event(&format!("iso-{i}"), "1", vec![to("crm", "w", None)]);
            if i == 7 {
                event.event.source = "bad\0source".into();
            }
            store.accept(vec![event], at(0)).await
        }));
        if i == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    blocker.batch_execute("COMMIT").await.unwrap();
    for (i, call) in calls.into_iter().enumerate() {
        let result = call.await.unwrap();
        if i == 7 {
            assert!(matches!(result, Err(StoreError::Database(_))), "{result:?}");
        } else {
            assert!(result.is_ok(), "call {i}: {result:?}");
        }
    }
    assert_eq!(store.queue_depth(), 11);
    assert!(store.health().is_ok());
}

/// Batched records (passes): records queued together behind the log clock's lock are
/// written in one transaction with the same outcome as one after another: a plain record
/// ends its lease, a late one after a takeover keeps the other node's lease and state, a
/// replay during the attempt stands, and the queue depth follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_records_written_together_keep_takeovers_and_replays() {
    use switchboard::store::PostgresStore;
    let Some(server) = postgres_server::Postgres::start() else {
        return;
    };
    let a: Arc<dyn Store> = Arc::new(PostgresStore::connect(&server.url, "node-a").await.unwrap());
    let b: Arc<dyn Store> = Arc::new(PostgresStore::connect(&server.url, "node-b").await.unwrap());
    let accepted = a
        .accept(
            (0..4)
                .map(|i| new_event(&format!("b{i}"), "1", vec![to(&format!("e{i}"), "w", None)]))
                .collect(),
            at(0),
        )
        .await
        .unwrap();
    let ids: Vec<DeliveryId> = accepted
        .iter()
        .map(|x| x.deliveries[0].id.clone())
        .collect();
    let mut leases = Vec::new();
    for i in 0..4 {
        leases.push(
            a.take(&format!("e{i}"), at(0), 1, at(1))
                .await
                .unwrap()
                .leases
                .remove(0),
        );
    }
    // e1: b takes over after a's lease ran out (its lease live until at(9)).
    let by_b = b
        .take("e1", at(2), 1, at(9))
        .await
        .unwrap()
        .leases
        .remove(0);
    // e2: replayed while a's attempt is on the wire.
    a.replay(std::slice::from_ref(&ids[2]), at(0))
        .await
        .unwrap();
    let blocker = raw_client(&server.url).await;
    blocker
        .batch_execute("BEGIN; SELECT * FROM switchboard_log_clock FOR UPDATE")
        .await
        .unwrap();
    let mut calls = Vec::new();
    for (i, lease) in leases.iter().enumerate() {
        let outcome = if i == 3 {
            Outcome::Retrying
        } else {
            Outcome::Delivered
        };
        let (entry, delivery) = attempt(&lease.delivery, at(0), outcome);
        let (a, dequeued) = (a.clone(), lease.dequeued);
        calls.push(tokio::spawn(async move {
            a.record(&entry, &delivery, Some(dequeued)).await
        }));
        // Far enough apart that each reaches the log clock's lock queue before the next,
        // on a loaded machine too (50 ms was not: the ids then follow the queue, not the calls).
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    blocker.batch_execute("COMMIT").await.unwrap();
    let mut entry_ids = Vec::new();
    for call in calls {
        entry_ids.push(call.await.unwrap().unwrap());
    }
    let mut sorted = entry_ids.clone();
    sorted.sort();
    assert_eq!(sorted, entry_ids, "ids in the order of the records");
    let d0 = a.delivery(&ids[0]).await.unwrap().unwrap();
    assert_eq!(d0.state, DeliveryState::Delivered);
    let d1 = a.delivery(&ids[1]).await.unwrap().unwrap();
    assert_eq!(
        d1.state,
        DeliveryState::Pending,
        "b's lease and state stand"
    );
    assert_eq!(d1.entries.len(), 1, "a's late entry is kept");
    assert!(
        a.take("e1", at(5), 1, at(6))
            .await
            .unwrap()
            .leases
            .is_empty(),
        "b's lease still holds it"
    );
    let d2 = a.delivery(&ids[2]).await.unwrap().unwrap();
    assert_eq!(d2.state, DeliveryState::Pending, "the replay stands");
    let d3 = a.delivery(&ids[3]).await.unwrap().unwrap();
    assert_eq!(d3.state, DeliveryState::Pending);
    assert_eq!(d3.attempts, 1);
    // Pending now: e1 (b's), e2 (replayed), e3 (retrying).
    assert_eq!(a.queue_depth(), 3);
    let (entry, delivery) = attempt(&by_b.delivery, at(2), Outcome::Delivered);
    b.record(&entry, &delivery, Some(by_b.dequeued))
        .await
        .unwrap();
    let d1 = b.delivery(&ids[1]).await.unwrap().unwrap();
    assert_eq!(d1.state, DeliveryState::Delivered);
    assert_eq!(d1.entries.len(), 2);
}

/// Head-of-line blocking: another node's acceptance of an event id is in flight (its
/// transaction holds the new key; a peer that stalls or loses its network mid-transaction
/// holds it until the server notices). An accept of that id waits for it, as before; but
/// now every accept of the node queues behind that one in the single writer, and calls
/// that share nothing with it wait ~10 s and are answered 503 (or barely succeed).
/// Before group commit each went on its own connection and was answered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_waiting_accept_does_not_hold_up_the_others() {
    use switchboard::store::PostgresStore;
    let Some(server) = postgres_server::Postgres::start() else {
        return;
    };
    let store: Arc<dyn Store> =
        Arc::new(PostgresStore::connect(&server.url, "node-a").await.unwrap());
    // The peer's acceptance of "hot", not committed.
    let peer = raw_client(&server.url).await;
    peer.batch_execute(
        "BEGIN; INSERT INTO switchboard_events (source, id, accepted_at, record) \
         VALUES ('api', 'hot', now(), '{}')",
    )
    .await
    .unwrap();
    let hot = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .accept(
                    vec![new_event("hot", "1", vec![to("crm", "w", None)])],
                    at(0),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut others = Vec::new();
    for i in 0..5 {
        let store = store.clone();
        others.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = store
                .accept(
                    vec![new_event(
                        &format!("cold-{i}"),
                        "2",
                        vec![to("crm", "w", None)],
                    )],
                    at(0),
                )
                .await;
            (result.map(|_| ()), started.elapsed())
        }));
    }
    let mut answers = Vec::new();
    for other in others {
        answers.push(other.await.unwrap());
    }
    peer.batch_execute("ROLLBACK").await.unwrap();
    let _ = hot.await;
    assert!(
        answers
            .iter()
            .all(|(result, took)| result.is_ok() && *took < Duration::from_secs(2)),
        "accepts unrelated to the waiting one: {answers:?}"
    );
}

/// Schema versions need not be consecutive: a database at version 5 (before limits)
/// gets versions 7's and 8's tables when a node connects, and a connect to a current
/// database changes nothing.
#[tokio::test]
async fn postgres_a_database_at_version_5_migrates_to_8() {
    use switchboard::store::PostgresStore;
    let Some(server) = postgres_server::Postgres::start() else {
        return;
    };
    drop(PostgresStore::connect(&server.url, "node-a").await.unwrap());
    let raw = raw_client(&server.url).await;
    assert_eq!(schema_versions(&raw).await, [1, 2, 3, 4, 5, 7, 8]);
    // As an earlier switchboard left it.
    raw.batch_execute(
        "DROP TABLE switchboard_firings; DROP TABLE switchboard_order_lines; \
         DELETE FROM switchboard_schema WHERE version >= 7",
    )
    .await
    .unwrap();
    let store: Arc<dyn Store> =
        Arc::new(PostgresStore::connect(&server.url, "node-a").await.unwrap());
    assert_eq!(schema_versions(&raw).await, [1, 2, 3, 4, 5, 7, 8]);
    let accepted = store
        .accept(vec![limited_event("m1", "812")], at(0))
        .await
        .unwrap();
    assert_eq!(accepted[0].deliveries.len(), 3);
    drop(PostgresStore::connect(&server.url, "node-b").await.unwrap());
    assert_eq!(schema_versions(&raw).await, [1, 2, 3, 4, 5, 7, 8]);
}

async fn schema_versions(client: &tokio_postgres::Client) -> Vec<i32> {
    let rows = client
        .query(
            "SELECT version FROM switchboard_schema ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// Two `order_by` lines on PostgreSQL: an acceptance that lines up behind both lines' last
/// deliveries (locking them in id order, f then g) and a batch of records that finishes
/// d1 (ahead of f in one line, f accepted after d1 was taken) and g (the other line's last)
/// — the batch locks d1 and g, then d1's new follower f — must not deadlock: each waits
/// for the other's row otherwise, and PostgreSQL aborts one (40P01).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_accept_and_a_record_batch_on_two_order_lines_do_not_deadlock() {
    use switchboard::store::PostgresStore;
    let Some(server) = postgres_server::Postgres::start() else {
        return;
    };
    let store: Arc<dyn Store> =
        Arc::new(PostgresStore::connect(&server.url, "node-a").await.unwrap());
    let lined = |endpoint: &str, value: &str| Match {
        order: Some(value.into()),
        ..to(endpoint, "w", None)
    };
    let accept = |id: &'static str, m: Vec<Match>, when: i64| {
        let store = store.clone();
        async move {
            store
                .accept(vec![new_event(id, "1", m)], at(when))
                .await
                .unwrap()
                .remove(0)
                .deliveries[0]
                .id
                .clone()
        }
    };
    let d1 = accept("d1", vec![lined("crm", "X")], 0).await;
    let l1 = store
        .take("crm", at(0), 10, at(100))
        .await
        .unwrap()
        .leases
        .remove(0);
    assert_eq!(l1.delivery.id, d1);
    let f = accept("f", vec![lined("crm", "X")], 1).await;
    let g = accept("g", vec![lined("crm2", "Z")], 2).await;
    let lg = store
        .take("crm2", at(2), 10, at(100))
        .await
        .unwrap()
        .leases
        .remove(0);
    assert_eq!(lg.delivery.id, g);
    assert!(d1 < f && f < g);
    accept("x0", vec![to("other", "w", None)], 3).await;
    accept("x1", vec![to("other", "w", None)], 3).await;
    let lx = store
        .take("other", at(3), 10, at(100))
        .await
        .unwrap()
        .leases;
    assert_eq!(lx.len(), 2);
    let hold_f = raw_client(&server.url).await;
    hold_f
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM switchboard_deliveries WHERE id = '{f}' FOR UPDATE"
        ))
        .await
        .unwrap();
    let hold_clock = raw_client(&server.url).await;
    hold_clock
        .batch_execute("BEGIN; SELECT * FROM switchboard_log_clock FOR UPDATE")
        .await
        .unwrap();
    let record = |lease: switchboard::store::Lease, when: i64| {
        let store = store.clone();
        tokio::spawn(async move {
            let (entry, delivery) = attempt(&lease.delivery, at(when), Outcome::Delivered);
            store.record(&entry, &delivery, Some(lease.dequeued)).await
        })
    };
    // Both record writers wait for the log clock.
    let mut calls = Vec::new();
    for lease in lx {
        calls.push(record(lease, 4));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // d1 and g queue behind them: one batch.
    calls.push(record(l1, 4));
    calls.push(record(lg, 4));
    tokio::time::sleep(Duration::from_millis(150)).await;
    // An acceptance for both lines waits for f.
    let both = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .accept(
                    vec![new_event(
                        "n",
                        "1",
                        vec![lined("crm", "X"), lined("crm2", "Z")],
                    )],
                    at(5),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The batch locks d1 and g, then waits for f too.
    hold_clock.batch_execute("COMMIT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    hold_f.batch_execute("COMMIT").await.unwrap();
    let started = std::time::Instant::now();
    let accepted = both.await.unwrap();
    let mut recorded = Vec::new();
    for call in calls {
        recorded.push(call.await.unwrap());
    }
    assert!(accepted.is_ok(), "{accepted:?}");
    for r in &recorded {
        assert!(r.is_ok(), "{recorded:?}");
    }
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "no deadlock to be detected and broken: {:?}",
        started.elapsed()
    );
    let f_now = store.delivery(&f).await.unwrap().unwrap();
    assert_eq!(f_now.state, DeliveryState::Pending);
    assert!(f_now.due_at.is_some(), "d1 finished: f goes {f_now:?}");
}

/// Two nodes accepting events for one `order_by` value at once make one line: one
/// delivery goes, every other waits behind exactly one other, none behind the same one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_nodes_accepting_for_one_lead_at_once_make_one_line() {
    use switchboard::store::PostgresStore;
    let Some(server) = postgres_server::Postgres::start() else {
        return;
    };
    let a: Arc<dyn Store> = Arc::new(PostgresStore::connect(&server.url, "node-a").await.unwrap());
    let b: Arc<dyn Store> = Arc::new(PostgresStore::connect(&server.url, "node-b").await.unwrap());
    let lined = Match {
        order: Some("812".into()),
        ..to("crm", "w", None)
    };
    let mut calls = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let m = lined.clone();
        calls.push(tokio::spawn(async move {
            store
                .accept(vec![new_event(&format!("two-{i}"), "1", vec![m])], at(0))
                .await
                .unwrap()
                .remove(0)
                .deliveries[0]
                .id
                .clone()
        }));
    }
    let mut ids = Vec::new();
    for call in calls {
        ids.push(call.await.unwrap());
    }
    let mut heads = 0;
    let mut behind = std::collections::HashSet::new();
    for id in &ids {
        let d = a.delivery(id).await.unwrap().unwrap();
        match d.behind {
            None => heads += 1,
            Some(ahead) => assert!(behind.insert(ahead), "two wait behind one"),
        }
    }
    assert_eq!(heads, 1, "one line, one head");
    let taken = a.take("crm", at(0), 100, at(1)).await.unwrap();
    assert_eq!(taken.leases.len(), 1, "one at a time");
}
