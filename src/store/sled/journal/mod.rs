//! The journal: an append-only, checksummed file of every write to sled, one record per
//! logical change, written before sled is.
//!
//! Making sled itself durable means flushing its whole page cache (tens of milliseconds
//! here); appending a few hundred bytes and `fdatasync`ing them costs a fraction of a
//! millisecond, and concurrent writers share each sync (group commit). The same writes go
//! to sled in memory at once; sled flushes on its own timer, and a checkpoint notes which
//! journal record sled holds on disk, so that opening the store replays only what sled
//! may have lost. Segments that sled has durably caught up with are deleted.
//!
//! Reading the journal back (`read.rs`) tells a write that a crash cut short at the end
//! (cut off) from damage (reported, copied aside, read past).

mod read;

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, oneshot};

pub use read::{Damaged, Torn};

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

#[derive(Clone)]
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

/// A journal just opened, with what reading it found.
pub struct Opened {
    /// The journal, appending to a new segment.
    pub journal: Journal,
    /// Every readable record after the one sled holds, in order, to be applied again.
    pub pending: Vec<Record>,
    /// Segments found damaged, each copied aside.
    pub damaged: Vec<Damaged>,
    /// Records that a crash cut short at the end of a segment, now cut off.
    pub torn: Vec<Torn>,
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

impl Journal {
    /// Opens the journal in `dir`, with every record after `applied` (the last one sled
    /// holds durably), in order, to be applied again. Torn tails are cut off; a damaged
    /// segment is copied aside and left as it is, to be retired once sled holds what could
    /// be read of it (opening fails if the copy cannot be made).
    pub fn open(dir: &Path, applied: u64) -> io::Result<Opened> {
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
        let reading = read::segments(&segments, applied)?;
        // A torn record was never acknowledged; nothing more is appended after it unless
        // it is cut off (the open segment could start at its number).
        for torn in &reading.torn {
            OpenOptions::new()
                .write(true)
                .open(&torn.segment)?
                .set_len(torn.bytes.start)?;
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
        // After the highest number any segment held, read or not: numbers are never reused
        // for other writes, and no damaged segment is ever appended to.
        let next_seq = reading.last + 1;
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
            synced: AtomicU64::new(reading.last),
        };
        Ok(Opened {
            journal: Journal {
                inner: Arc::new(inner),
                flusher: OnceLock::new(),
            },
            pending: reading.records,
            damaged: reading.damaged,
            torn: reading.torn,
        })
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
    /// apply again when it is reopened), and the segments found damaged (each copied aside
    /// first, as [`Journal::open`] does).
    pub fn records_after(&self, applied: u64) -> io::Result<(Vec<Record>, Vec<Damaged>)> {
        let state = self.inner.state();
        let mut segments = state.closed.clone();
        segments.push(state.current.clone());
        let reading = read::segments(&segments, applied)?;
        Ok((reading.records, reading.damaged))
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
        let Opened {
            journal, pending, ..
        } = Journal::open(dir.path(), 0).unwrap();
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
        let Opened {
            journal,
            pending,
            damaged,
            torn,
        } = Journal::open(dir.path(), 1).unwrap();
        assert_eq!(
            pending,
            vec![(2, ops(2)), (3, ops(3))],
            "only what sled has not applied"
        );
        assert!(damaged.is_empty(), "a torn tail is no damage");
        assert_eq!(torn.len(), 1);
        assert!(!dir.path().join("corrupt").exists());
        assert_eq!(
            journal.append(&ops(9)).unwrap(),
            4,
            "numbering continues after the torn record"
        );
    }

    #[test]
    fn checkpoints_delete_segments_sled_has_caught_up_with() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), 0).unwrap().journal;
        journal.append(&ops(1)).unwrap();
        journal.sync_blocking().unwrap();
        drop(journal);
        let Opened {
            journal, pending, ..
        } = Journal::open(dir.path(), 0).unwrap();
        assert_eq!(pending.len(), 1);
        journal.append(&ops(2)).unwrap();
        journal.checkpoint(1).unwrap();
        assert!(
            !segment_path(dir.path(), 1).exists(),
            "the first segment is done"
        );
        assert!(segment_path(dir.path(), 2).exists(), "the open one stays");
    }

    #[test]
    fn a_damaged_segment_is_copied_aside_as_found_and_read_past_its_damage() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), 0).unwrap().journal;
        for n in 1..=6 {
            journal.append(&ops(n)).unwrap();
        }
        journal.sync_blocking().unwrap();
        drop(journal);
        let segment = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&segment).unwrap();
        let third = 2 * encode(1, &ops(1)).len();
        bytes[third + 12] ^= 0x04;
        std::fs::write(&segment, &bytes).unwrap();

        let Opened {
            journal,
            pending,
            damaged,
            torn,
        } = Journal::open(dir.path(), 1).unwrap();
        let numbers: Vec<u64> = pending.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(
            numbers,
            [2, 4, 5, 6],
            "record 3 is lost, not those after it"
        );
        assert!(torn.is_empty());
        assert_eq!(damaged.len(), 1);
        assert_eq!(damaged[0].lost(), [(3, Some(3))]);
        assert_eq!(damaged[0].read_after, 3);
        assert_eq!(std::fs::read(&damaged[0].kept).unwrap(), bytes);
        assert_eq!(
            std::fs::read(&segment).unwrap(),
            bytes,
            "the segment itself is not rewritten"
        );
        assert_eq!(journal.append(&ops(7)).unwrap(), 7);
    }

    #[test]
    fn numbers_go_on_after_records_lost_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), 0).unwrap().journal;
        journal.append(&ops(1)).unwrap();
        journal.sync_blocking().unwrap();
        drop(journal);
        // The whole segment is unreadable: it held record 1 at least.
        let segment = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes[4] ^= 0xff;
        std::fs::write(&segment, &bytes).unwrap();
        let opened = Journal::open(dir.path(), 0).unwrap();
        assert_eq!(opened.damaged.len(), 1);
        assert!(
            opened.journal.append(&ops(9)).unwrap() > 1,
            "the damaged segment is never appended to"
        );
        assert_eq!(std::fs::read(&segment).unwrap(), bytes);
    }
}
