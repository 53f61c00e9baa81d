//! The durable core of the sled backend: the data folder open (sled and its journal),
//! the write path (journal first, then sled), group commit, checkpoints, and what happens
//! when storage fails (health, recovery by reopening). What is written is `ops.rs`'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::heads::Heads;
use super::journal::{self, Damaged, Journal, Op, Opened};
use super::keys;
use crate::store::{DeliveryId, StoreError};

/// sled, open. Its I/O errors are sticky (every later call fails with the same error), so
/// after a storage failure it is closed and opened again ([`Store::recover`]).
#[derive(Clone)]
pub(super) struct Sled {
    pub(super) db: sled::Db,
    /// Everything, in key spaces (see `keys::space`).
    pub(super) tree: sled::Tree,
}

/// Whether the storage works. Set failing by the first write, sync or checkpoint that
/// fails; cleared only by [`Store::recover`].
#[derive(Default)]
pub(super) struct Health {
    failing: std::sync::atomic::AtomicBool,
    reason: std::sync::Mutex<Option<String>>,
}

impl Health {
    /// Notes a storage failure; logs it once, when the storage goes from working to failing.
    pub(super) fn fail(&self, reason: String) {
        let mut held = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if !self.failing.swap(true, std::sync::atomic::Ordering::SeqCst) {
            tracing::error!(
                "storage failed: {reason}; refusing new events (503) and holding deliveries until it works again"
            );
            *held = Some(reason);
        }
    }

    pub(super) fn check(&self) -> Result<(), StoreError> {
        if !self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let reason = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        Err(StoreError::Unavailable(
            reason.clone().unwrap_or_else(|| "unknown failure".into()),
        ))
    }
}

/// The data folder, open: what the [`SledStore`] handle shares with its blocking tasks.
pub(super) struct Inner {
    pub(super) path: PathBuf,
    /// None only while [`Store::recover`] reopens it.
    pub(super) sled: std::sync::RwLock<Option<Sled>>,
    /// Serialises the read-then-write of accepting an event (dedupe) and of replaying.
    /// One process holds the folder, so a process-wide lock is enough.
    pub(super) writer: Arc<std::sync::Mutex<()>>,
    /// The first queue keys of every endpoint, kept in step with every write.
    pub(super) heads: Heads,
    /// Deliveries in the queue, counted once at open and kept up to date by every write.
    pub(super) queued: std::sync::atomic::AtomicUsize,
    /// Keys written to sled (inserts and removes) since the store was opened.
    pub(super) writes: std::sync::atomic::AtomicU64,
    /// Every write that must be durable before it is acknowledged, in order.
    pub(super) journal: Arc<Journal>,
    /// When sled last caught up with the journal (unix ms), to delete old segments.
    pub(super) checkpointed: std::sync::atomic::AtomicI64,
    pub(super) dedupe_window: Duration,
    pub(super) health: Arc<Health>,
    /// Deliveries taken and not yet recorded or released, with when their lease ends.
    pub(super) leases: std::sync::Mutex<std::collections::HashMap<DeliveryId, DateTime<Utc>>>,
    /// Every (endpoint, workflow, outcome) with facet keys, so that a search by any of
    /// them scans just the facets that match (loaded at open; only grows).
    pub(super) facets: std::sync::Mutex<std::collections::BTreeSet<(String, String, String)>>,
    /// The last entry id recorded: the next is greater (see `Store::record`).
    pub(super) last_entry: std::sync::Mutex<Option<ulid::Ulid>>,
    /// The journal damage found since the folder was opened, as reported.
    pub(super) damage: std::sync::Mutex<Vec<String>>,
}

impl Inner {
    /// Opens (or creates) the data folder. Only one process may hold it.
    pub(super) fn open(path: &Path, dedupe_window: Duration) -> Result<Inner, StoreError> {
        let sled = open_sled(path)?;
        let applied = applied_mark(&sled.tree)?;
        let Opened {
            journal,
            pending,
            damaged,
            torn,
        } = Journal::open(&path.join("journal"), applied).map_err(StoreError::Journal)?;
        for torn in &torn {
            tracing::warn!("{torn}: cut off");
        }
        let damage = report(&damaged);
        // What had not reached sled's disk before a crash, in the order it was written.
        catch_up(&sled, &journal, pending, !damaged.is_empty())?;
        super::migrate::to_current(&sled.tree)?;
        sled.db.flush()?;
        let facets = keys::facets(&sled.tree)?;
        // Entry ids go on after the last one recorded, across restarts too.
        let last_entry = match sled
            .tree
            .range(vec![keys::space::LOG]..vec![keys::space::LOG + 1])
            .next_back()
        {
            Some(item) => {
                let (key, _) = item?;
                std::str::from_utf8(&key[1..])
                    .ok()
                    .and_then(|id| ulid::Ulid::from_string(id).ok())
            }
            None => None,
        };
        let queued = sled.tree.scan_prefix([keys::space::QUEUE]).count();
        let heads = Heads::default();
        heads.load(&sled.tree)?;
        Ok(Inner {
            path: path.to_path_buf(),
            sled: std::sync::RwLock::new(Some(sled)),
            writer: Arc::new(std::sync::Mutex::new(())),
            heads,
            queued: std::sync::atomic::AtomicUsize::new(queued),
            writes: std::sync::atomic::AtomicU64::new(0),
            journal: Arc::new(journal),
            checkpointed: std::sync::atomic::AtomicI64::new(Utc::now().timestamp_millis()),
            dedupe_window,
            health: Arc::default(),
            leases: Default::default(),
            facets: std::sync::Mutex::new(facets),
            last_entry: std::sync::Mutex::new(last_entry),
            damage: std::sync::Mutex::new(damage),
        })
    }

    /// sled as open now.
    pub(super) fn sled(&self) -> Result<Sled, StoreError> {
        self.sled
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Unavailable("the data folder is being reopened".into()))
    }

    /// The tree as open now.
    pub(super) fn tree(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.sled()?.tree)
    }

    /// Whether the storage works: `Err(Unavailable)` with the reason after a write, sync or
    /// checkpoint failed, until [`Store::recover`] succeeds.
    pub(super) fn health(&self) -> Result<(), StoreError> {
        self.health.check()
    }

    /// Passes a result on, noting a storage failure first if it is one (a read that hit
    /// an I/O error, not only a write, makes the store fail and recover).
    pub(super) fn noted<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match result {
            Err(e @ (StoreError::Sled(_) | StoreError::Journal(_))) => Err(self.failed(e)),
            other => other,
        }
    }

    /// Notes that storage failed, and passes the error on.
    pub(super) fn failed(&self, error: StoreError) -> StoreError {
        self.health.fail(error.to_string());
        error
    }

    /// After a storage failure: if the folder takes writes again, starts a new journal
    /// segment (the old one may end in a record that never reached the disk), closes sled
    /// and opens it again (its errors are sticky), applies what the journal holds beyond
    /// sled's last checkpoint, and reloads the queue heads. Returns whether the store was
    /// failing and works now; an error while it still fails.
    pub(super) fn recover(&self) -> Result<bool, StoreError> {
        if self.health.check().is_ok() {
            return Ok(false);
        }
        probe_space(&self.path).map_err(StoreError::Journal)?;
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.journal.roll().map_err(StoreError::Journal)?;
        let old = self.sled.write().unwrap_or_else(|p| p.into_inner()).take();
        drop(old);
        // Other holders of the old sled (a read in progress) close it soon; its file lock
        // goes with the last of them.
        let mut tries = 0;
        let sled = loop {
            match open_sled(&self.path) {
                Ok(sled) => break sled,
                Err(StoreError::Locked(_)) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        let applied = applied_mark(&sled.tree)?;
        let (pending, damaged) = self
            .journal
            .records_after(applied)
            .map_err(StoreError::Journal)?;
        let damage = report(&damaged);
        catch_up(&sled, &self.journal, pending, !damaged.is_empty())?;
        self.damage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(damage);
        let queued = sled.tree.scan_prefix([keys::space::QUEUE]).count();
        self.heads.load(&sled.tree)?;
        // The replay may have written facet keys that no record of this process noted.
        *self.facets.lock().unwrap_or_else(|p| p.into_inner()) = keys::facets(&sled.tree)?;
        self.queued
            .store(queued, std::sync::atomic::Ordering::SeqCst);
        *self.sled.write().unwrap_or_else(|p| p.into_inner()) = Some(sled);
        self.health
            .failing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        tracing::info!(data = %self.path.display(), "storage works again: accepting events and delivering");
        Ok(true)
    }

    /// Makes every acceptance and replay so far durable (the journal; concurrent callers
    /// share one fdatasync). Now and then also lets sled catch up and drops old journal.
    pub(super) async fn commit(&self) -> Result<(), StoreError> {
        self.health.check()?;
        if let Err(e) = self.journal.sync(self.journal.last()).await {
            return Err(self.failed(StoreError::Journal(e)));
        }
        self.maybe_checkpoint();
        Ok(())
    }

    /// Makes everything written so far durable, journal and sled, from synchronous code.
    pub(super) fn commit_blocking(&self) -> Result<(), StoreError> {
        self.health.check()?;
        if let Err(e) = self.journal.sync_blocking() {
            return Err(self.failed(StoreError::Journal(e)));
        }
        self.checkpoint().map_err(|e| self.failed(e))
    }

    /// Flushes sled, then deletes the journal segments it now holds.
    pub(super) fn checkpoint(&self) -> Result<(), StoreError> {
        checkpoint(&self.sled()?, &self.journal, &self.writer)
    }

    /// Checkpoints in the background if the last one is more than a few seconds old.
    pub(super) fn maybe_checkpoint(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        let now = Utc::now().timestamp_millis();
        let last = self.checkpointed.load(SeqCst);
        if now - last < 5000
            || self
                .checkpointed
                .compare_exchange(last, now, SeqCst, SeqCst)
                .is_err()
        {
            return;
        }
        let Ok(sled) = self.sled() else {
            return;
        };
        let (journal, writer, health) = (
            self.journal.clone(),
            self.writer.clone(),
            self.health.clone(),
        );
        tokio::task::spawn_blocking(move || {
            if let Err(e) = checkpoint(&sled, &journal, &writer) {
                health.fail(format!("journal checkpoint failed: {e}"));
            }
        });
    }

    /// Writes a batch: journal first (one record: after a crash, all of it or none of it
    /// is replayed), then sled, one key at a time (sled's own atomic batches cost several
    /// times as much per key, and the journal already makes the batch atomic). Keys are
    /// written in the order given, so callers put what a reader follows to last: an index
    /// key after its entry, a queue key after its delivery. Callers hold the writer lock,
    /// so that the journal's order is sled's order. While the storage is failing nothing
    /// is written (`Unavailable`).
    pub(super) fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.health.check()?;
        let tree = self.tree()?;
        if let Err(e) = self.journal.append(&ops) {
            return Err(self.failed(StoreError::Journal(e)));
        }
        if let Err(e) = apply(&tree, &ops) {
            return Err(self.failed(StoreError::Sled(e)));
        }
        self.writes
            .fetch_add(ops.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for op in &ops {
            match op {
                Op::Insert(key, _) if key.first() == Some(&keys::space::QUEUE) => {
                    self.heads.inserted(key);
                }
                Op::Remove(key) if key.first() == Some(&keys::space::QUEUE) => {
                    self.heads.removed(key);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Applies a journal record's writes to sled, in order.
pub(super) fn apply(tree: &sled::Tree, ops: &[Op]) -> Result<(), sled::Error> {
    for op in ops {
        match op {
            Op::Insert(key, value) => tree.insert(key.as_slice(), value.as_slice())?,
            Op::Remove(key) => tree.remove(key.as_slice())?,
        };
    }
    Ok(())
}

/// Opens sled in `path`; another process holding it is `Locked`.
fn open_sled(path: &Path) -> Result<Sled, StoreError> {
    drop_unfinished_snapshots(path);
    let db = sled::Config::new()
        .path(path)
        // The default cache is 1 GiB; the working set here is the queue head and recent
        // log entries. Measured (BENCHMARKS.md): 32 MiB → 8 MiB took 25 MB off serve's
        // peak under load at the same throughput.
        .cache_capacity(8 * 1024 * 1024)
        .flush_every_ms(Some(500))
        .mode(sled::Mode::HighThroughput)
        .open()
        .map_err(|e| match &e {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                StoreError::Locked(path.to_path_buf())
            }
            sled::Error::Io(io) if io.to_string().contains("lock") => {
                StoreError::Locked(path.to_path_buf())
            }
            _ => StoreError::Sled(e),
        })?;
    let tree = db.open_tree("switchboard")?;
    Ok(Sled { db, tree })
}

/// Deletes snapshot files sled began but did not finish (`snap.<lsn>.generating`, left by
/// a start on a full disk): sled reads the last snapshot file by name, and an unfinished one
/// would keep the folder from ever opening again. A finished snapshot is renamed without
/// the suffix, so nothing it holds is lost; sled rebuilds what it needs from its log.
fn drop_unfinished_snapshots(path: &Path) {
    // Only when no sled holds the folder (one that does may be writing a snapshot now).
    if let Ok(db) = std::fs::File::open(path.join("db"))
        && db.try_lock().is_err()
    {
        return;
    }
    let Ok(files) = std::fs::read_dir(path) else {
        return;
    };
    for file in files.flatten() {
        let name = file.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            match std::fs::remove_file(file.path()) {
                Ok(()) => tracing::warn!("removed an unfinished sled snapshot: {name}"),
                Err(e) => tracing::warn!("cannot remove the unfinished sled snapshot {name}: {e}"),
            }
        }
    }
}

/// The last journal record sled holds on disk.
fn applied_mark(tree: &sled::Tree) -> Result<u64, StoreError> {
    Ok(tree
        .get(keys::JOURNAL_APPLIED)?
        .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0))
}

/// Logs the journal damage found (an error when it lost records, a warning when sled held
/// them all); returns what was logged.
fn report(damaged: &[Damaged]) -> Vec<String> {
    damaged
        .iter()
        .map(|damaged| {
            let text = damaged.to_string();
            if damaged.lost().is_empty() {
                tracing::warn!("{text}; the disk may be failing");
            } else {
                tracing::error!("{text}");
            }
            text
        })
        .collect()
}

/// Applies the journal records sled may not hold, in order, then checkpoints. After
/// damage, every segment is retired (each damaged one is kept aside already): sled holds
/// all that could be read, and the damage is not found and reported again.
fn catch_up(
    sled: &Sled,
    journal: &Journal,
    pending: Vec<journal::Record>,
    damaged: bool,
) -> Result<(), StoreError> {
    for (_, ops) in &pending {
        apply(&sled.tree, ops)?;
    }
    let mark = match pending.last() {
        _ if damaged => Some(journal.last()),
        Some((last, _)) => Some(*last),
        None => None,
    };
    if let Some(mark) = mark {
        sled.tree
            .insert(keys::JOURNAL_APPLIED, &mark.to_be_bytes())?;
        sled.db.flush()?;
        journal.checkpoint(mark).map_err(StoreError::Journal)?;
    }
    Ok(())
}

/// Writes, syncs and deletes a small file in the folder: whether it takes writes again.
fn probe_space(path: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let probe = path.join("probe.tmp");
    let result = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(&[0u8; 256 * 1024])?;
        f.sync_data()
    });
    let _ = std::fs::remove_file(&probe);
    result
}

/// Notes the last journal record sled has applied, flushes sled, then deletes the journal
/// segments it now holds on disk.
///
/// Why replaying from that mark is right even though sled may also have flushed some later
/// writes: every sled write goes through the journal, in journal order (under the writer
/// lock), so replaying records after the mark, in order, leaves every key as the last of
/// them to touch it left it, and keys none of them touched as they were.
fn checkpoint(
    sled: &Sled,
    journal: &Journal,
    writer: &std::sync::Mutex<()>,
) -> Result<(), StoreError> {
    let applied = {
        let _writer = writer.lock().unwrap_or_else(|p| p.into_inner());
        let applied = journal.last();
        sled.tree
            .insert(keys::JOURNAL_APPLIED, &applied.to_be_bytes())?;
        applied
    };
    sled.db.flush()?;
    journal.checkpoint(applied).map_err(StoreError::Journal)?;
    Ok(())
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.health.check().is_ok() {
            let _ = self.journal.sync_blocking();
            let _ = self.checkpoint();
        }
    }
}
