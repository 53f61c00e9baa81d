//! The journal: an append-only, checksummed file of every write to sled, one record per
//! logical change, written before sled is.
//!
//! Making sled itself durable means flushing its whole page cache (tens of milliseconds
//! here); appending a few hundred bytes and `fdatasync`ing them costs a fraction of a
//! millisecond, and concurrent writers share each sync (group commit). The same writes go
//! to sled in memory at once; sled flushes on its own timer, and a checkpoint notes which
//! journal record sled holds on disk, so that opening the store replays only what sled
//! may have lost. Segments that sled has durably caught up with are deleted.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, oneshot};

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set a key.
    Insert(Vec<u8>, Vec<u8>),
    /// Remove a key.
    Remove(Vec<u8>),
}

/// A record: its sequence number and its writes.
pub type Record = (u64, Vec<Op>);

/// A new segment is started past this size.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

struct Segment {
    first_seq: u64,
    path: PathBuf,
}

struct State {
    file: Arc<File>,
    next_seq: u64,
    bytes: u64,
    /// Closed segments, oldest first (the open one is not in the list).
    closed: Vec<Segment>,
    current: Segment,
    /// The open segment may hold a torn record or pages a failed sync lost: nothing more
    /// is appended to it (a reader stops at the first bad record); the next append starts
    /// a new segment.
    suspect: bool,
}

impl State {
    /// Closes the open segment and continues in a new one, starting at the next record.
    fn roll(&mut self, dir: &Path) -> io::Result<()> {
        let next = Segment {
            first_seq: self.next_seq,
            path: segment_path(dir, self.next_seq),
        };
        if next.path == self.current.path {
            // Nothing was appended to the open segment since it was started.
            if self.suspect {
                self.file.set_len(0)?;
                self.bytes = 0;
                self.suspect = false;
            }
            return Ok(());
        }
        // Records of the closing segment that were appended but not yet synced must not be
        // taken as durable by a sync of the new one.
        self.file.sync_data()?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&next.path)?;
        let closed = std::mem::replace(&mut self.current, next);
        self.closed.push(closed);
        self.file = Arc::new(file);
        self.bytes = 0;
        self.suspect = false;
        Ok(())
    }
}

type Waiter = (u64, oneshot::Sender<io::Result<()>>);

struct Inner {
    dir: PathBuf,
    state: Mutex<State>,
    synced: AtomicU64,
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Syncs the open segment; returns the last sequence number now durable.
    fn sync_now(&self) -> io::Result<u64> {
        let (file, last) = {
            let state = self.state();
            if state.suspect {
                return Err(io::Error::other(
                    "the journal failed earlier; it takes no more until the store recovers",
                ));
            }
            (state.file.clone(), state.next_seq - 1)
        };
        if let Err(e) = file.sync_data() {
            // What the failed sync covered may be lost from the page cache: a later record
            // behind a hole would be unreadable.
            self.state().suspect = true;
            return Err(e);
        }
        self.synced.fetch_max(last, Ordering::SeqCst);
        Ok(last)
    }
}

/// The journal of a data folder.
pub struct Journal {
    inner: Arc<Inner>,
    flusher: OnceLock<mpsc::UnboundedSender<Waiter>>,
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.log"))
}

fn encode(seq: u64, ops: &[Op]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(64 + ops.len() * 64);
    payload.extend_from_slice(&seq.to_le_bytes());
    payload.extend_from_slice(&(ops.len() as u32).to_le_bytes());
    for op in ops {
        let (tag, key, value): (u8, &[u8], &[u8]) = match op {
            Op::Insert(k, v) => (1, k, v),
            Op::Remove(k) => (2, k, &[]),
        };
        payload.push(tag);
        payload.extend_from_slice(&(key.len() as u32).to_le_bytes());
        payload.extend_from_slice(key);
        payload.extend_from_slice(&(value.len() as u32).to_le_bytes());
        payload.extend_from_slice(value);
    }
    let mut record = Vec::with_capacity(payload.len() + 8);
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    record.extend_from_slice(&payload);
    record
}

/// Reads a little-endian u32 at `at`.
fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn decode(payload: &[u8]) -> Option<(u64, Vec<Op>)> {
    let seq = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let count = u32_at(payload, 8)? as usize;
    let mut at = 12;
    let mut ops = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let tag = *payload.get(at)?;
        let klen = u32_at(payload, at + 1)? as usize;
        let key = payload.get(at + 5..at + 5 + klen)?.to_vec();
        at += 5 + klen;
        let vlen = u32_at(payload, at)? as usize;
        let value = payload.get(at + 4..at + 4 + vlen)?.to_vec();
        at += 4 + vlen;
        ops.push(match tag {
            1 => Op::Insert(key, value),
            2 => Op::Remove(key),
            _ => return None,
        });
    }
    (at == payload.len()).then_some((seq, ops))
}

/// The complete records of a segment, and the length of its valid prefix (a crash can
/// leave a torn record at the end: it was never acknowledged).
fn read_segment(path: &Path) -> io::Result<(Vec<Record>, u64)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut at = 0usize;
    while let (Some(len), Some(crc)) = (u32_at(&bytes, at), u32_at(&bytes, at + 4)) {
        let Some(payload) = bytes.get(at + 8..at + 8 + len as usize) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(record) = decode(payload) else {
            break;
        };
        records.push(record);
        at += 8 + len as usize;
    }
    Ok((records, at as u64))
}

impl Journal {
    /// Opens the journal in `dir`; returns it with every record after `applied` (the last
    /// one sled holds durably), in order, to be applied again.
    pub fn open(dir: &Path, applied: u64) -> io::Result<(Journal, Vec<Record>)> {
        std::fs::create_dir_all(dir)?;
        let mut segments: Vec<Segment> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let path = e.path();
                let first_seq = path.file_stem()?.to_str()?.parse().ok()?;
                (path.extension()? == "log").then_some(Segment { first_seq, path })
            })
            .collect();
        segments.sort_by_key(|s| s.first_seq);
        let mut pending = Vec::new();
        let mut last_seq = applied;
        for segment in &segments {
            let (records, valid) = read_segment(&segment.path)?;
            if valid < std::fs::metadata(&segment.path)?.len() {
                OpenOptions::new()
                    .write(true)
                    .open(&segment.path)?
                    .set_len(valid)?;
            }
            for (seq, ops) in records {
                last_seq = last_seq.max(seq);
                if seq > applied {
                    pending.push((seq, ops));
                }
            }
        }
        // Empty segments (a start with nothing written) are of no use.
        let mut kept = Vec::new();
        for segment in segments {
            if std::fs::metadata(&segment.path)?.len() == 0 {
                std::fs::remove_file(&segment.path)?;
            } else {
                kept.push(segment);
            }
        }
        let segments = kept;
        let next_seq = last_seq + 1;
        let current = Segment {
            first_seq: next_seq,
            path: segment_path(dir, next_seq),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&current.path)?;
        let inner = Inner {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                file: Arc::new(file),
                next_seq,
                bytes: 0,
                closed: segments,
                current,
                suspect: false,
            }),
            synced: AtomicU64::new(last_seq),
        };
        Ok((
            Journal {
                inner: Arc::new(inner),
                flusher: OnceLock::new(),
            },
            pending,
        ))
    }

    /// Appends a batch; returns its sequence number. Durable only after [`Journal::sync`].
    pub fn append(&self, ops: &[Op]) -> io::Result<u64> {
        let mut state = self.inner.state();
        if state.suspect {
            // Only a recovery rolls past a failed segment (and makes what it held durable
            // through sled again): a roll here would sync it once more, and a second fsync
            // after a failed one reports success whatever reached the disk.
            return Err(io::Error::other(
                "the journal failed earlier; it takes no more until the store recovers",
            ));
        }
        let seq = state.next_seq;
        let record = encode(seq, ops);
        if let Err(e) = (&*state.file).write_all(&record) {
            // A short write (disk full) leaves part of the record: cut it off, or if that
            // fails too, leave this segment for a new one.
            if state.file.set_len(state.bytes).is_err() {
                state.suspect = true;
            }
            return Err(e);
        }
        state.next_seq += 1;
        state.bytes += record.len() as u64;
        if state.bytes > SEGMENT_BYTES {
            // Close this segment durably, then continue in a new one.
            state.file.sync_data()?;
            self.inner.synced.fetch_max(seq, Ordering::SeqCst);
            let next = Segment {
                first_seq: seq + 1,
                path: segment_path(&self.inner.dir, seq + 1),
            };
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&next.path)?;
            let closed = std::mem::replace(&mut state.current, next);
            state.closed.push(closed);
            state.file = Arc::new(file);
            state.bytes = 0;
        }
        Ok(seq)
    }

    /// The last sequence number appended.
    pub fn last(&self) -> u64 {
        self.inner.state().next_seq - 1
    }

    /// Waits until every record up to `seq` is on disk. Concurrent callers share one sync.
    pub async fn sync(&self, seq: u64) -> io::Result<()> {
        if self.inner.synced.load(Ordering::SeqCst) >= seq {
            return Ok(());
        }
        let stopped = || io::Error::other("the journal's sync task stopped");
        let (tx, rx) = oneshot::channel();
        let flusher = self
            .flusher
            .get_or_init(|| start_flusher(self.inner.clone()));
        flusher.send((seq, tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Closes the open segment and continues in a new one (after a storage failure, so
    /// that nothing new sits behind a record the disk may not hold).
    pub fn roll(&self) -> io::Result<()> {
        let mut state = self.inner.state();
        state.suspect = true;
        state.roll(&self.inner.dir)
    }

    /// Every record after `applied` in the segments on disk, in order (what sled must
    /// apply again when it is reopened).
    pub fn records_after(&self, applied: u64) -> io::Result<Vec<Record>> {
        let state = self.inner.state();
        let mut records = Vec::new();
        for segment in state.closed.iter().chain(std::iter::once(&state.current)) {
            let (found, _) = read_segment(&segment.path)?;
            records.extend(found.into_iter().filter(|(seq, _)| *seq > applied));
        }
        Ok(records)
    }

    /// Makes everything appended durable, from synchronous code.
    pub fn sync_blocking(&self) -> io::Result<()> {
        self.inner.sync_now().map(|_| ())
    }

    /// Deletes the closed segments whose every record is at or before `durable` (sled
    /// holds them on disk now).
    pub fn checkpoint(&self, durable: u64) -> io::Result<()> {
        let mut state = self.inner.state();
        let mut firsts: Vec<u64> = state.closed.iter().map(|s| s.first_seq).collect();
        firsts.push(state.current.first_seq);
        // A segment whose file cannot be deleted stays listed (and is read again by a
        // recovery) rather than being forgotten.
        let mut result = Ok(());
        let mut i = 0;
        state.closed.retain(|segment| {
            let last = firsts[i + 1] - 1;
            i += 1;
            if last > durable || result.is_err() {
                return true;
            }
            match std::fs::remove_file(&segment.path) {
                Ok(()) => false,
                Err(e) => {
                    result = Err(e);
                    true
                }
            }
        });
        result
    }
}

/// The group-commit task: each sync serves every waiter that arrived before it started.
fn start_flusher(inner: Arc<Inner>) -> mpsc::UnboundedSender<Waiter> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Waiter>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut waiters = vec![first];
            while let Ok(more) = rx.try_recv() {
                waiters.push(more);
            }
            let syncing = inner.clone();
            let result = match tokio::task::spawn_blocking(move || syncing.sync_now()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(io::Error::other(format!(
                    "the journal's sync task failed: {e}"
                ))),
            };
            for (_, waiter) in waiters {
                let _ = waiter.send(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::new(
                        e.kind(),
                        format!("cannot sync the journal: {e}"),
                    )),
                });
            }
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(n: u8) -> Vec<Op> {
        vec![
            Op::Insert(vec![b'k', n], vec![n; 3]),
            Op::Remove(vec![b'r', n]),
        ]
    }

    #[test]
    fn records_survive_reopening_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, pending) = Journal::open(dir.path(), 0).unwrap();
        assert!(pending.is_empty());
        for n in 1..=3 {
            assert_eq!(journal.append(&ops(n)).unwrap(), u64::from(n));
        }
        journal.sync_blocking().unwrap();
        drop(journal);
        // A crash mid-write leaves half a record.
        let segment = segment_path(dir.path(), 1);
        let mut f = OpenOptions::new().append(true).open(&segment).unwrap();
        f.write_all(&encode(4, &ops(4))[..10]).unwrap();
        let (journal, pending) = Journal::open(dir.path(), 1).unwrap();
        assert_eq!(
            pending,
            vec![(2, ops(2)), (3, ops(3))],
            "only what sled has not applied"
        );
        assert_eq!(
            journal.append(&ops(9)).unwrap(),
            4,
            "numbering continues after the torn record"
        );
    }

    #[test]
    fn checkpoints_delete_segments_sled_has_caught_up_with() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path(), 0).unwrap();
        journal.append(&ops(1)).unwrap();
        journal.sync_blocking().unwrap();
        drop(journal);
        let (journal, pending) = Journal::open(dir.path(), 0).unwrap();
        assert_eq!(pending.len(), 1);
        journal.append(&ops(2)).unwrap();
        journal.checkpoint(1).unwrap();
        assert!(
            !segment_path(dir.path(), 1).exists(),
            "the first segment is done"
        );
        assert!(segment_path(dir.path(), 2).exists(), "the open one stays");
    }
}
