//! What the store keeps: accepted events, deliveries, and connect log entries.
//! Plain serde types, stored as JSON so that a data folder can be inspected by hand.

use std::fmt;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::engine::Match;
use crate::engine::event::{Event, EventId};

/// A delivery's unique id: a ULID, so ids sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(String);

impl DeliveryId {
    /// A new id for a delivery accepted at `at`: time-ordered by acceptance (a store
    /// finds old deliveries by id range) and strictly increasing within this process, so
    /// that deliveries due at the same millisecond leave the queue in the order they were
    /// accepted.
    pub fn generate(at: chrono::DateTime<chrono::Utc>) -> DeliveryId {
        static LAST: std::sync::Mutex<Option<ulid::Ulid>> = std::sync::Mutex::new(None);
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        // Within one millisecond, one more than the last; otherwise fresh at `at` (even
        // when `at` is earlier than the last: the id's time is the acceptance's).
        let id = last
            .filter(|l| l.timestamp_ms() == ms)
            .and_then(|l| l.increment())
            .unwrap_or_else(|| ulid::Ulid::from_parts(ms, fastrand::u128(..) >> 48));
        *last = Some(id);
        DeliveryId(id.to_string())
    }

    /// An id as given (from the CLI or the API).
    pub fn new(id: impl Into<String>) -> DeliveryId {
        DeliveryId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn api() -> String {
    "api".into()
}

/// An accepted event and the deliveries it created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The event as accepted.
    pub event: Event,
    /// When it was accepted (the dedupe window counts from here).
    pub accepted_at: DateTime<Utc>,
    /// Its deliveries, in workflow then action order.
    pub deliveries: Vec<DeliveryRef>,
}

/// A delivery as the acceptance answer names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRef {
    /// The delivery's id.
    pub id: DeliveryId,
    /// The workflow that fired.
    pub workflow: String,
    /// The endpoint it goes to.
    pub endpoint: String,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt (the first, or a retry).
    Pending,
    /// The receiver accepted it.
    Delivered,
    /// It will not be tried again (non-retryable error, or retries exhausted).
    Failed,
    /// Not sent: its endpoint is inactive, or its workflow's `limit` stopped it.
    Skipped,
}

impl DeliveryState {
    /// Delivered, failed and skipped deliveries are finished.
    pub fn is_final(self) -> bool {
        !matches!(self, DeliveryState::Pending)
    }
}

/// One delivery: an action of a workflow, for one event, to one endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// Unique id (also the `Idempotency-Key` and `webhook-id` sent with every attempt).
    pub id: DeliveryId,
    /// The event it delivers.
    pub event_id: EventId,
    /// Where the event came from (`api` or an inbound endpoint): ids are unique per source.
    #[serde(default = "api")]
    pub event_source: String,
    /// The event's type.
    pub event_type: String,
    /// Which workflow action, and where it sends.
    #[serde(flatten)]
    pub target: Match,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// `attempts` when it was last replayed: the retry schedule counts from here.
    #[serde(default)]
    pub retry_base: u32,
    /// Bumped by every replay, so that an attempt that was in flight during a replay does
    /// not undo it when it is recorded.
    #[serde(default)]
    pub generation: u32,
    /// When a pending delivery is due (in whole milliseconds; the queue is keyed by it).
    pub due_at: Option<DateTime<Utc>>,
    /// The audit keys of its event.
    pub keys: IndexMap<String, String>,
    /// The id of its latest connect log entry.
    pub last_entry: Option<String>,
    /// The ids of its connect log entries, oldest first (kept by the store).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<String>,
    /// The delivery of the step it runs after (same event, same workflow). While that one
    /// is unfinished this one is pending with no due time: it is not queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<DeliveryId>,
    /// The delivery with the same `order_by` value, to the same endpoint, accepted just
    /// before this one: while that one is unfinished this one waits (pending, no due time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behind: Option<DeliveryId>,
    /// The deliveries that wait for this one (steps that run after it, and the next
    /// delivery in its `order_by` line): the record that finishes it queues those still
    /// waiting. Kept by the store (appended to at acceptances while it is in flight).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub followers: Vec<DeliveryId>,
    /// What its delivered attempt captured, as received, with its HTTP status (`status`),
    /// when deliveries wait for it: what the steps after it read. The connect log keeps
    /// the masked copy; the API shows this one masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<serde_json::Value>,
}

impl Delivery {
    /// Whether it waits for the delivery of the step it runs after, or for the one ahead
    /// of it in its `order_by` line (pending, not queued).
    pub fn is_waiting(&self) -> bool {
        self.state == DeliveryState::Pending
            && self.due_at.is_none()
            && (self.leader.is_some() || self.behind.is_some())
    }

    /// When a follower released at `at` is due: then, or later if its action has a delay
    /// (counted from its creation, the event's acceptance).
    pub fn released_due(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let delay =
            chrono::Duration::from_std(self.target.delay.unwrap_or_default()).unwrap_or_default();
        let delayed = self.created_at.checked_add_signed(delay).unwrap_or(at);
        crate::store::whole_ms(at.max(delayed))
    }
}

/// How an attempt (or a decision not to attempt) ended (docs/connect-log.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The receiver accepted it.
    Delivered,
    /// It failed and will be tried again.
    Retrying,
    /// It failed and will not be tried again.
    Failed,
    /// Not sent (inactive endpoint, a workflow's `limit`).
    Skipped,
}

impl Outcome {
    /// The outcome as written in the log and accepted by `--outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retrying => "retrying",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }

    /// Parses `delivered`, `retrying`, `failed` or `skipped`.
    pub fn parse(text: &str) -> Result<Outcome, String> {
        match text {
            "delivered" => Ok(Outcome::Delivered),
            "retrying" => Ok(Outcome::Retrying),
            "failed" => Ok(Outcome::Failed),
            "skipped" => Ok(Outcome::Skipped),
            other => Err(format!(
                "unknown outcome {other:?} (known: delivered, retrying, failed, skipped)"
            )),
        }
    }
}

/// The kind of an attempt's error (docs/connect-log.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The host name could not be resolved.
    Dns,
    /// No connection, or it broke before a complete response.
    Connect,
    /// The TLS handshake failed.
    Tls,
    /// No response within the endpoint's timeout.
    Timeout,
    /// The status is not a success code.
    Status,
    /// The response body did not pass `response.success_key` / `success_value`.
    ResponseCheck,
    /// The network policy does not allow the destination.
    Blocked,
    /// The request could not be built (a template failed, the workflow is gone).
    Render,
    /// The request body is over the size limit.
    BodyTooLarge,
    /// The endpoint is inactive.
    Inactive,
    /// The stored event or delivery cannot be read back.
    Store,
    /// The OAuth2 token request failed (`auth: {type: oauth2}`).
    Auth,
    /// Not sent (outcome skipped): the step it runs after failed or was skipped, or its
    /// `when` did not match.
    Step,
    /// The workflow's `limit` stopped the event: it fired `max` times for the same value
    /// within the period.
    Limit,
}

/// An error as the log shows it: what kind, and what a person can do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The kind.
    pub kind: ErrorKind,
    /// An actionable message.
    pub message: String,
}

/// The request as sent, secrets masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// HTTP method.
    pub method: String,
    /// Full URL.
    pub url: String,
    /// Headers as sent (credentials as `***`).
    pub headers: IndexMap<String, String>,
    /// The body text, if any.
    pub body: Option<String>,
}

/// The response, as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: IndexMap<String, String>,
    /// The first 64 KiB of the body.
    pub body: String,
    /// Time from sending to the end of the body.
    pub duration_ms: u64,
}

/// One connect log entry: one attempt (or decision) for one delivery (docs/connect-log.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Unique id, a ULID: entries sort by time.
    pub id: String,
    /// The delivery it belongs to.
    pub delivery_id: DeliveryId,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When the attempt started.
    pub at: DateTime<Utc>,
    /// The event delivered.
    pub event_id: EventId,
    /// Its type.
    pub event_type: String,
    /// The workflow that fired.
    pub workflow: String,
    /// The endpoint.
    pub endpoint: String,
    /// The action's step name within its workflow (absent in entries made before steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The step it ran after, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The node that made the attempt (`--node`; entries recorded before nodes had names
    /// read as "").
    #[serde(default)]
    pub node: String,
    /// The request as sent (null when none was built).
    pub request: Option<LoggedRequest>,
    /// The response (null when none came back; `error` says why).
    pub response: Option<LoggedResponse>,
    /// How it ended.
    pub outcome: Outcome,
    /// What went wrong, if anything.
    pub error: Option<AttemptError>,
    /// When the next attempt is due (retrying only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why the next attempt waits past its retry schedule: the action's sending window is
    /// closed until `next_attempt_at` (absent otherwise, and in entries written before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// Values captured from the response.
    pub captured: IndexMap<String, serde_json::Value>,
    /// Problems that did not stop the attempt.
    pub warnings: Vec<String>,
    /// Audit keys of the event (phone, lead id, call id...).
    pub keys: IndexMap<String, String>,
}
