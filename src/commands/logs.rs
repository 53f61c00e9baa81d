//! `switchboard logs`: search the connect log and print it as a table, JSON, or CSV;
//! `logs show ID` prints one entry in full; `--follow` prints entries as they arrive.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::Output;
use super::remote::Remote;
pub use crate::report::{CSV_HEADER, csv_row, parse_since, parse_until};
use crate::store::{
    DEFAULT_DEDUPE_WINDOW, DeliveryId, Location, LogEntry, LogQuery, Store, StoreError,
};

/// How entries are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A readable table.
    Table,
    /// A JSON array of entries.
    Json,
    /// CSV with a header row.
    Csv,
}

fn fail(message: String) -> Output {
    Output {
        stderr: format!("error: {message}\n"),
        code: 1,
        ..Output::default()
    }
}

/// The store, or, while a server holds its data folder, that server's API.
enum Source {
    Local(std::sync::Arc<dyn Store>),
    Remote(Remote),
}

/// A store to read must exist: opening a sled folder creates an empty one, which would
/// answer "nothing" for a mistyped `--data` and leave a store behind. A sled store is a
/// folder holding sled's `db` file; a PostgreSQL URL is taken to name one.
pub(crate) fn require_store(store: &Location) -> Result<(), Output> {
    match store {
        Location::Sled(dir) if !dir.join("db").is_file() => Err(fail(format!(
            "no store in {}: nothing was ever accepted there (check --data or --store; `serve` and `send` create it)",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

async fn source(data: &Path, store: &Location) -> Result<Source, Output> {
    require_store(store)?;
    let node = crate::runtime::default_node();
    match store.open(&node, DEFAULT_DEDUPE_WINDOW).await {
        Ok(store) => Ok(Source::Local(store)),
        Err(e @ StoreError::Locked(_)) => Remote::find(data)
            .map(Source::Remote)
            .ok_or_else(|| fail(e.to_string())),
        Err(e) => Err(fail(e.to_string())),
    }
}

impl Source {
    async fn search(&self, query: &LogQuery) -> Result<Vec<LogEntry>, String> {
        match self {
            Source::Local(store) => store.search(query).await.map_err(|e| e.to_string()),
            Source::Remote(remote) => {
                // The API pages newest first; "after" (following) is done by filtering.
                let mut q = query.clone();
                let after = q.after.take();
                let mut entries = remote.logs(&q).await?;
                if let Some(after) = after {
                    entries.retain(|e| e.id > after);
                    entries.reverse();
                }
                Ok(entries)
            }
        }
    }

    async fn entry(&self, id: &str) -> Result<Option<LogEntry>, String> {
        match self {
            Source::Local(store) => store.entry(id).await.map_err(|e| e.to_string()),
            Source::Remote(remote) => remote.entry(id).await,
        }
    }
}

/// Searches the log in `data` and formats the entries, newest first.
pub async fn run(data: &Path, store: &Location, query: &LogQuery, format: Format) -> Output {
    let store = match source(data, store).await {
        Ok(source) => source,
        Err(out) => return out,
    };
    match store.search(query).await {
        Ok(entries) if entries.is_empty() => match unknown_names(&store, query).await {
            Some(message) => fail(message),
            None => Output {
                stdout: render(&entries, format, true),
                ..Output::default()
            },
        },
        Ok(entries) => Output {
            stdout: render(&entries, format, true),
            ..Output::default()
        },
        Err(e) => fail(e.to_string()),
    }
}

/// How many of the newest entries are read for the names the log knows.
const NAMES_SCAN: usize = 10_000;

/// When a search by endpoint or workflow found nothing: whether that name is one the log
/// has never seen (among its newest entries), as an error naming the ones it has. The
/// log, not the configuration, is what `logs` reads: an endpoint since removed from the
/// configuration still has its entries.
async fn unknown_names(store: &Source, query: &LogQuery) -> Option<String> {
    if query.endpoint.is_none() && query.workflow.is_none() {
        return None;
    }
    let recent = LogQuery {
        limit: NAMES_SCAN,
        ..LogQuery::default()
    };
    let entries = store.search(&recent).await.ok()?;
    let mut problems = Vec::new();
    if let Some(name) = &query.endpoint
        && !entries.iter().any(|e| e.endpoint == *name)
    {
        let known = entries.iter().map(|e| e.endpoint.as_str());
        problems.push(crate::config::suggest::unknown("endpoint", name, known));
    }
    if let Some(name) = &query.workflow
        && !entries.iter().any(|e| e.workflow == *name)
    {
        let known = entries.iter().map(|e| e.workflow.as_str());
        problems.push(crate::config::suggest::unknown("workflow", name, known));
    }
    if problems.is_empty() {
        return None;
    }
    Some(format!(
        "{}: the connect log has no entry for it",
        problems.join("; ")
    ))
}

/// Entries in a format; `header` prints the table or CSV header row.
pub fn render(entries: &[LogEntry], format: Format, header: bool) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(entries).unwrap_or_default() + "\n",
        Format::Csv => csv(entries, header),
        Format::Table => table(entries, header),
    }
}

/// One entry in full (or every attempt of a delivery, given its id).
pub async fn show(data: &Path, store: &Location, id: &str, json: bool) -> Output {
    let store = match source(data, store).await {
        Ok(source) => source,
        Err(out) => return out,
    };
    let entries = match store.entry(id).await {
        Ok(Some(entry)) => vec![entry],
        Ok(None) => {
            let query = LogQuery {
                delivery: Some(DeliveryId::new(id)),
                after: Some(String::new()),
                ..LogQuery::default()
            };
            match store.search(&query).await {
                Ok(entries) if !entries.is_empty() => entries,
                Ok(_) => return fail(format!("no connect log entry or delivery with id {id}")),
                Err(e) => return fail(e),
            }
        }
        Err(e) => return fail(e),
    };
    let stdout = if json {
        match entries.as_slice() {
            [one] => serde_json::to_string_pretty(one).unwrap_or_default() + "\n",
            many => serde_json::to_string_pretty(many).unwrap_or_default() + "\n",
        }
    } else {
        entries.iter().map(detail).collect::<Vec<_>>().join("\n")
    };
    Output {
        stdout,
        ..Output::default()
    }
}

/// Prints matching entries as they are recorded, until the process is stopped.
pub async fn follow(data: &Path, store: &Location, mut query: LogQuery, format: Format) -> Output {
    let store = match source(data, store).await {
        Ok(source) => source,
        Err(out) => return out,
    };
    let mut stdout = std::io::stdout();
    // The latest entries first (oldest of them at the top), then everything new.
    let first = LogQuery {
        limit: query.limit.max(1),
        ..query.clone()
    };
    let recent = match store.search(&first).await {
        Ok(mut entries) => {
            entries.reverse();
            entries
        }
        Err(e) => return fail(e),
    };
    let _ = write!(stdout, "{}", render(&recent, format, true));
    query.after = Some(
        recent
            .last()
            .map(|e| e.id.clone())
            .unwrap_or_else(|| crate::store::query::id_at(Utc::now())),
    );
    query.before = None;
    query.limit = if matches!(store, Source::Remote(_)) {
        1000
    } else {
        0
    };
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        match store.search(&query).await {
            Ok(entries) if !entries.is_empty() => {
                query.after = entries.last().map(|e| e.id.clone());
                let _ = write!(stdout, "{}", render(&entries, format, false));
                let _ = stdout.flush();
            }
            Ok(_) => {}
            Err(e) => return fail(e),
        }
    }
}

fn short_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The first audit key, which is what people search by (phone, lead id).
fn main_key(entry: &LogEntry) -> String {
    entry
        .keys
        .iter()
        .next()
        .map(|(k, v)| format!("{k}={v}"))
        .unwrap_or_default()
}

fn status(entry: &LogEntry) -> String {
    match (&entry.response, &entry.error) {
        (Some(r), _) => r.status.to_string(),
        (None, Some(e)) => serde_json::to_value(e.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        (None, None) => String::new(),
    }
}

fn table(entries: &[LogEntry], header: bool) -> String {
    let mut rows: Vec<[String; 9]> = Vec::new();
    if header {
        rows.push(
            [
                "TIME (UTC)",
                "OUTCOME",
                "ENDPOINT",
                "WORKFLOW",
                "TRY",
                "STATUS",
                "MS",
                "KEY",
                "ID",
            ]
            .map(String::from),
        );
    }
    for e in entries {
        rows.push([
            short_time(&e.at),
            e.outcome.as_str().to_string(),
            e.endpoint.clone(),
            e.workflow.clone(),
            e.attempt.to_string(),
            status(e),
            e.response
                .as_ref()
                .map(|r| r.duration_ms.to_string())
                .unwrap_or_default(),
            main_key(e),
            e.id.clone(),
        ]);
    }
    let mut widths = [0usize; 9];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if header && entries.is_empty() {
        out = "no connect log entries match\n".into();
    }
    out
}

fn csv(entries: &[LogEntry], header: bool) -> String {
    let mut out = String::new();
    if header {
        out.push_str(CSV_HEADER);
        out.push('\n');
    }
    for e in entries {
        out.push_str(&csv_row(e));
        out.push('\n');
    }
    out
}

/// The readable, full view of one entry.
fn detail(e: &LogEntry) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "entry     {} (attempt {} of delivery {})",
        e.id, e.attempt, e.delivery_id
    );
    let _ = writeln!(
        out,
        "at        {}",
        e.at.to_rfc3339_opts(SecondsFormat::Millis, true)
    );
    let _ = writeln!(out, "event     {} ({})", e.event_id, e.event_type);
    let _ = writeln!(
        out,
        "route     workflow {} → endpoint {}",
        e.workflow, e.endpoint
    );
    let _ = write!(out, "outcome   {}", e.outcome.as_str());
    if let Some(err) = &e.error {
        let kind = serde_json::to_value(err.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = write!(out, " ({kind}): {}", err.message);
    }
    out.push('\n');
    if let Some(next) = e.next_attempt_at {
        let _ = writeln!(
            out,
            "next      {}",
            next.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
    }
    if !e.keys.is_empty() {
        let keys: Vec<String> = e.keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "keys      {}", keys.join(", "));
    }
    if let Some(r) = &e.request {
        let _ = writeln!(out, "\nrequest\n  {} {}", r.method, r.url);
        for (k, v) in &r.headers {
            let _ = writeln!(out, "  {k}: {v}");
        }
        if let Some(body) = &r.body {
            let _ = writeln!(out);
            for line in pretty(body).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    if let Some(r) = &e.response {
        let _ = writeln!(out, "\nresponse  HTTP {} in {} ms", r.status, r.duration_ms);
        for (k, v) in &r.headers {
            let _ = writeln!(out, "  {k}: {v}");
        }
        if !r.body.is_empty() {
            let _ = writeln!(out);
            for line in pretty(&r.body).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    if !e.captured.is_empty() {
        let _ = writeln!(out, "\ncaptured");
        for (k, v) in &e.captured {
            let _ = writeln!(out, "  {k} = {v}");
        }
    }
    for w in &e.warnings {
        let _ = writeln!(out, "warning   {w}");
    }
    out
}

fn pretty(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_string())
}
