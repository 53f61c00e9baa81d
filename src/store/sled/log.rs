//! Connect log search: by endpoint, workflow, outcome, delivery, audit key and time, newest
//! first, through the index that matches the query best, so that a search costs in
//! proportion to its matches rather than to the size of the log.

use super::keys::{self, tag};
use super::{Inner, decode};
use crate::store::query::{LogQuery, ulid_bound};
use crate::store::{LogEntry, StoreError};

/// Where a scan starts and stops, as entry ids (start inclusive, end exclusive).
struct Bounds {
    start: Option<String>,
    end: Option<String>,
}

fn bounds(query: &LogQuery) -> Bounds {
    {
        let mut start = query.since.map(|t| ulid_bound(t, false));
        if let Some(after) = &query.after {
            let just_after = format!("{after}\0");
            start = Some(start.map_or(just_after.clone(), |s| s.max(just_after)));
        }
        let mut end = query.until.map(|t| format!("{}\0", ulid_bound(t, true)));
        if let Some(before) = &query.before {
            end = Some(end.map_or(before.clone(), |e| e.min(before.clone())));
        }
        Bounds { start, end }
    }
}

pub(super) fn search(store: &Inner, query: &LogQuery) -> Result<Vec<LogEntry>, StoreError> {
    let bounds = bounds(query);
    let newest_first = query.after.is_none();
    let limit = if query.limit == 0 {
        usize::MAX
    } else {
        query.limit
    };
    let prefix: Option<Vec<u8>> =
        if let Some(form) = query.search.as_deref().and_then(keys::search_form) {
            Some(keys::index_prefix(tag::KEY, &form))
        } else if let Some(d) = &query.delivery {
            Some(keys::index_prefix(tag::DELIVERY, d.as_str()))
        } else if let Some(e) = &query.endpoint {
            Some(keys::index_prefix(tag::ENDPOINT, e))
        } else if let Some(w) = &query.workflow {
            Some(keys::index_prefix(tag::WORKFLOW, w))
        } else {
            query
                .outcome
                .map(|o| keys::index_prefix(tag::OUTCOME, o.as_str()))
        };
    let mut found = Vec::new();
    let mut keep = |entry: LogEntry| {
        if query.keeps(&entry) {
            found.push(entry);
        }
        found.len() >= limit
    };
    match prefix {
        None => {
            let range = range(&bounds, &[keys::space::LOG]);
            let tree = store.tree()?;
            let iter = tree.range(range);
            let iter: Box<dyn Iterator<Item = _>> = if newest_first {
                Box::new(iter.rev())
            } else {
                Box::new(iter)
            };
            for item in iter {
                let (key, value) = item?;
                if keep(decode(&key, &value)?) {
                    break;
                }
            }
        }
        Some(prefix) => {
            let tree = store.tree()?;
            let iter = tree.range(range(&bounds, &prefix));
            let iter: Box<dyn Iterator<Item = _>> = if newest_first {
                Box::new(iter.rev())
            } else {
                Box::new(iter)
            };
            for item in iter {
                let (key, _) = item?;
                if let Some(entry) = load(store, &key)?
                    && keep(entry)
                {
                    break;
                }
            }
        }
    }
    Ok(found)
}

/// The key range of a prefix between the bounds.
fn range(bounds: &Bounds, prefix: &[u8]) -> std::ops::Range<Vec<u8>> {
    let with = |id: &str| {
        let mut key = prefix.to_vec();
        key.extend_from_slice(id.as_bytes());
        key
    };
    let start = bounds
        .start
        .as_deref()
        .map_or_else(|| prefix.to_vec(), with);
    let end = match bounds.end.as_deref() {
        Some(id) => with(id),
        None => {
            let mut end = prefix.to_vec();
            if let Some(last) = end.last_mut() {
                *last += 1;
            }
            end
        }
    };
    let end = end.max(start.clone());
    start..end
}

fn load(store: &Inner, index_key: &[u8]) -> Result<Option<LogEntry>, StoreError> {
    match keys::index_entry_id(index_key) {
        Some(id) => store.entry(&id),
        None => Ok(None),
    }
}
