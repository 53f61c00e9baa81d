//! Connect log search on layout 2: by audit value (phone in any spelling, lead id …) or
//! event id through the acceptances that carry it; by delivery through the delivery's list
//! of entries; by endpoint, workflow or outcome through the facet keys of the facets that
//! match, merged by time; otherwise by time alone. A search costs in proportion to what
//! it finds, not to the size of the log.

use super::durable::Inner;
use super::keys;
use super::{decode, decode_delivery_ids};
use crate::store::query::{LogQuery, ulid_bound};
use crate::store::{LogEntry, StoreError};

/// Where a scan starts and stops, as entry ids (start inclusive, end exclusive).
struct Bounds {
    start: Option<String>,
    end: Option<String>,
}

impl Bounds {
    fn of(query: &LogQuery) -> Bounds {
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

    fn contains(&self, id: &str) -> bool {
        self.start.as_deref().is_none_or(|s| id >= s) && self.end.as_deref().is_none_or(|e| id < e)
    }

    /// The key range of `prefix` + entry ids between the bounds.
    fn range(&self, prefix: &[u8]) -> std::ops::Range<Vec<u8>> {
        let with = |id: &str| {
            let mut key = prefix.to_vec();
            key.extend_from_slice(id.as_bytes());
            key
        };
        let start = self.start.as_deref().map_or_else(|| prefix.to_vec(), with);
        let end = match self.end.as_deref() {
            Some(id) => with(id),
            None => keys::after_prefix(prefix),
        };
        let end = end.max(start.clone());
        start..end
    }
}

/// One facet's keys between the bounds, in the order of the search.
type Run = std::iter::Peekable<Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>>>;

pub(super) fn search(store: &Inner, query: &LogQuery) -> Result<Vec<LogEntry>, StoreError> {
    let bounds = Bounds::of(query);
    let newest_first = query.after.is_none();
    let limit = if query.limit == 0 {
        usize::MAX
    } else {
        query.limit
    };
    if let Some(text) = query.search.as_deref() {
        let ids = searched(store, text)?;
        return collect(store, query, &bounds, ids, newest_first, limit);
    }
    if let Some(id) = &query.delivery {
        let ids = store.delivery(id)?.map(|d| d.entries).unwrap_or_default();
        return collect(store, query, &bounds, ids, newest_first, limit);
    }
    let tree = store.tree()?;
    let mut found = Vec::new();
    if query.endpoint.is_none() && query.workflow.is_none() && query.outcome.is_none() {
        let range = bounds.range(&[keys::space::LOG]);
        let iter = tree.range(range);
        let iter: Box<dyn Iterator<Item = _>> = if newest_first {
            Box::new(iter.rev())
        } else {
            Box::new(iter)
        };
        for item in iter.take(limit) {
            let (key, value) = item?;
            found.push(decode(&key, &value)?);
        }
        return Ok(found);
    }
    // The facets that match, each a time-ordered run of keys: merged, newest (or oldest)
    // first.
    let facets: Vec<Vec<u8>> = store
        .facets
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(e, w, o)| {
            query.endpoint.as_ref().is_none_or(|q| q == e)
                && query.workflow.as_ref().is_none_or(|q| q == w)
                && query.outcome.is_none_or(|q| q.as_str() == o)
        })
        .map(|(e, w, o)| keys::facet_prefix(e, w, o))
        .collect();
    let mut runs: Vec<Run> = facets
        .iter()
        .map(|prefix| {
            let iter = tree.range(bounds.range(prefix));
            let iter: Box<dyn Iterator<Item = _>> = if newest_first {
                Box::new(iter.rev())
            } else {
                Box::new(iter)
            };
            iter.peekable()
        })
        .collect();
    while found.len() < limit {
        let mut best: Option<(usize, String)> = None;
        for (i, run) in runs.iter_mut().enumerate() {
            let id = match run.peek() {
                None => continue,
                Some(Err(_)) => {
                    if let Some(Err(e)) = run.next() {
                        return Err(e.into());
                    }
                    continue;
                }
                Some(Ok((key, _))) => keys::index_entry_id(key).unwrap_or_default(),
            };
            let better = best
                .as_ref()
                .is_none_or(|(_, b)| if newest_first { id > *b } else { id < *b });
            if better {
                best = Some((i, id));
            }
        }
        let Some((i, id)) = best else { break };
        runs[i].next();
        if let Some(entry) = store.entry(&id)?
            && query.keeps(&entry)
        {
            found.push(entry);
        }
    }
    Ok(found)
}

/// The ids of the entries whose event carries `text` (in its search form) as an audit
/// value or as its id, over every acceptance of it.
fn searched(store: &Inner, text: &str) -> Result<Vec<String>, StoreError> {
    let Some(form) = keys::search_form(text) else {
        return Ok(Vec::new());
    };
    let tree = store.tree()?;
    let mut ids = Vec::new();
    for item in tree.scan_prefix(keys::audit_prefix(&form)) {
        let (key, value) = item?;
        for id in decode_delivery_ids(&key, &value)? {
            if let Some(d) = store.delivery(&id)? {
                ids.extend(d.entries);
            }
        }
    }
    Ok(ids)
}

/// The entries of `ids` that pass the query, in the order asked for, at most `limit`.
fn collect(
    store: &Inner,
    query: &LogQuery,
    bounds: &Bounds,
    mut ids: Vec<String>,
    newest_first: bool,
    limit: usize,
) -> Result<Vec<LogEntry>, StoreError> {
    ids.retain(|id| bounds.contains(id));
    ids.sort();
    ids.dedup();
    if newest_first {
        ids.reverse();
    }
    let mut found = Vec::new();
    for id in ids {
        if found.len() >= limit {
            break;
        }
        if let Some(entry) = store.entry(&id)?
            && query.keeps(&entry)
        {
            found.push(entry);
        }
    }
    Ok(found)
}
