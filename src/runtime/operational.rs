//! Operational events: what the dispatcher tells the runtime (a delivery ended failed, an
//! endpoint paused or resumed) as events of source `switchboard`, which the runtime accepts
//! like any other, so that workflows route them (to a chat channel, a pager).
//!
//! Each has an id made of what it is about, so that the same news accepted twice is one
//! event (the dedupe window): `failed-<delivery>-<attempt>`, `paused-<endpoint>-<ms>`,
//! `resumed-<endpoint>-<ms>`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::dispatch::{Notice, OPERATIONAL_SOURCE};
use crate::engine::event::{Event, EventId};
use crate::store::{Delivery, LogEntry};

/// `switchboard.delivery.failed`: a delivery ended failed.
pub const DELIVERY_FAILED: &str = "switchboard.delivery.failed";
/// `switchboard.endpoint.paused`: an endpoint stopped answering and its lane paused.
pub const ENDPOINT_PAUSED: &str = "switchboard.endpoint.paused";
/// `switchboard.endpoint.resumed`: a paused endpoint answers again.
pub const ENDPOINT_RESUMED: &str = "switchboard.endpoint.resumed";

/// The event a notice stands for, received at `now`.
pub fn event(notice: Notice, now: DateTime<Utc>) -> Event {
    let (kind, id, data) = match notice {
        Notice::Failed(failed) => {
            let (delivery, entry) = *failed;
            let id = format!("failed-{}-{}", delivery.id, entry.attempt);
            (DELIVERY_FAILED, id, about(&delivery, &entry))
        }
        Notice::Paused {
            endpoint,
            until,
            cause,
        } => {
            let mut data = cause.map(|c| about(&c.0, &c.1)).unwrap_or_default();
            data.insert("endpoint".into(), json!(endpoint));
            if let Some(until) = until {
                data.insert("until".into(), json!(time(until)));
            }
            let at = until.unwrap_or(now).timestamp_millis();
            (ENDPOINT_PAUSED, format!("paused-{endpoint}-{at}"), data)
        }
        Notice::Resumed {
            endpoint,
            at,
            cause,
        } => {
            let mut data = cause.map(|c| about(&c.0, &c.1)).unwrap_or_default();
            // The attempt that got an answer is no error, and not what the alert is about.
            data.remove("error");
            data.insert("endpoint".into(), json!(endpoint));
            data.insert("at".into(), json!(time(at)));
            let id = format!("resumed-{endpoint}-{}", at.timestamp_millis());
            (ENDPOINT_RESUMED, id, data)
        }
    };
    Event {
        id: EventId::new(id),
        kind: kind.to_string(),
        source: OPERATIONAL_SOURCE.to_string(),
        received_at: now,
        data: Arc::new(Value::Object(data)),
        steps: None,
    }
}

/// What an operational event says about a delivery and its last entry.
fn about(delivery: &Delivery, entry: &LogEntry) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("delivery_id".into(), json!(delivery.id.as_str()));
    data.insert("endpoint".into(), json!(delivery.target.endpoint));
    data.insert("workflow".into(), json!(delivery.target.workflow));
    data.insert("event_id".into(), json!(delivery.event_id.as_str()));
    data.insert("event_type".into(), json!(delivery.event_type));
    data.insert("attempts".into(), json!(entry.attempt));
    data.insert("entry_id".into(), json!(entry.id));
    data.insert(
        "error".into(),
        serde_json::to_value(&entry.error).unwrap_or(Value::Null),
    );
    data
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
