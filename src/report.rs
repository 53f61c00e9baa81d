//! Connect log entries as people read and ask for them, shared by the CLI and the admin
//! API: query times from text (`--since 1h`, `?until=2026-11-21`) and CSV rows.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use crate::engine::units::parse_duration;
use crate::store::LogEntry;

/// `--since`: a duration back from now (`1h`, `7d`) or a time (RFC 3339, or a date).
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = parse_duration(text) {
        return Ok(chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC));
    }
    parse_time(text).map_err(|_| format!("invalid --since {text:?}: write a duration (1h, 7d) or a time (2026-11-21T10:00:00Z, 2026-11-21)"))
}

/// `--until`: a time (RFC 3339, or a date meaning its end).
pub fn parse_until(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(day) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        return Ok(day
            .and_hms_milli_opt(23, 59, 59, 999)
            .unwrap_or_default()
            .and_utc());
    }
    parse_time(text).map_err(|_| {
        format!("invalid --until {text:?}: write a time such as 2026-11-21T10:00:00Z or 2026-11-21")
    })
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, ()> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        .map_err(|_| ())
}

fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The CSV header row.
pub const CSV_HEADER: &str = "id,at,delivery_id,attempt,event_id,event_type,workflow,endpoint,method,url,status,duration_ms,outcome,error_kind,error_message,next_attempt_at,keys";

/// One entry as a CSV row.
pub fn csv_row(e: &LogEntry) -> String {
    let error_kind = e
        .error
        .as_ref()
        .and_then(|err| serde_json::to_value(err.kind).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let keys: Vec<String> = e.keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let cells = [
        e.id.clone(),
        e.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        e.delivery_id.to_string(),
        e.attempt.to_string(),
        e.event_id.to_string(),
        e.event_type.clone(),
        e.workflow.clone(),
        e.endpoint.clone(),
        e.request
            .as_ref()
            .map(|r| r.method.clone())
            .unwrap_or_default(),
        e.request
            .as_ref()
            .map(|r| r.url.clone())
            .unwrap_or_default(),
        e.response
            .as_ref()
            .map(|r| r.status.to_string())
            .unwrap_or_default(),
        e.response
            .as_ref()
            .map(|r| r.duration_ms.to_string())
            .unwrap_or_default(),
        e.outcome.as_str().to_string(),
        error_kind,
        e.error
            .as_ref()
            .map(|err| err.message.clone())
            .unwrap_or_default(),
        e.next_attempt_at
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_default(),
        keys.join(";"),
    ];
    cells
        .iter()
        .map(|c| csv_cell(c))
        .collect::<Vec<_>>()
        .join(",")
}
