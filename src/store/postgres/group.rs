//! Group commit: calls of one kind (accepts, records) that arrive while the transactions
//! of that kind are being written wait for one of them to end, then are written together
//! in the next one. A few writers per kind per node: under load every transaction carries
//! many calls, so the commits, round trips and the log clock's lock are shared among them;
//! a lone call is written at once, as before; and one transaction that waits (on a row
//! another node holds) does not hold up every other call of its kind.
//!
//! **Invariant:** a call is answered only after the transaction that wrote it committed
//! (or failed: then nothing of it was written).
//! **Invariant:** a call is written only while its caller still waits: one whose caller
//! gave up (its bound ran out, answered 503) or whose time is nearly up is answered
//! `Unavailable` and never written later.
//! **Invariant:** one call the database refuses (a statement error, not an outage) does
//! not fail the others: the batch is then written again call by call, and only that call
//! fails.

use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;

use super::{CALL_TIMEOUT, Db};
use crate::store::StoreError;

/// The most calls one transaction carries.
const MOST: usize = 256;

/// A call is written only if this much of its caller's bound is left: the writer gives up
/// before the caller does, so that what the caller was told (503) stays true.
const MARGIN: Duration = Duration::from_millis(500);

/// Writes a batch of calls in one transaction, one answer per call, in order.
pub(super) type Write<T, R> =
    for<'a> fn(&'a Db, &'a [T]) -> BoxFuture<'a, Result<Vec<R>, StoreError>>;

/// One call: what to write, by when, and where the answer goes.
struct Call<T, R> {
    item: T,
    deadline: Instant,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<T, R> Call<T, R> {
    /// Whether the caller still waits, with time to write.
    fn live(&self, now: Instant) -> bool {
        !self.reply.is_closed() && now + MARGIN < self.deadline
    }
}

/// The queue of one kind of call, and its writers (tasks that end when the group is
/// dropped).
pub(super) struct Group<T, R> {
    calls: mpsc::UnboundedSender<Call<T, R>>,
}

impl<T: Send + Sync + 'static, R: Send + 'static> Group<T, R> {
    /// Starts `writers` writers, on the current tokio runtime.
    pub(super) fn start(db: Arc<Db>, writers: usize, write: Write<T, R>) -> Group<T, R> {
        let (calls, queue) = mpsc::unbounded_channel::<Call<T, R>>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..writers.max(1) {
            let (db, queue) = (db.clone(), queue.clone());
            tokio::spawn(async move {
                while let Some(batch) = next_batch(&queue).await {
                    let (items, replies): (Vec<T>, Vec<_>) = batch
                        .into_iter()
                        .map(|call| (call.item, (call.reply, call.deadline)))
                        .unzip();
                    let answers = written(&db, write, &items, &replies).await;
                    for ((reply, _), answer) in replies.into_iter().zip(answers) {
                        // A caller that stopped waiting meanwhile is not an error here.
                        let _ = reply.send(answer);
                    }
                }
            });
        }
        Group { calls }
    }

    /// Queues one call and waits for the transaction that writes it.
    pub(super) async fn call(&self, item: T) -> Result<R, StoreError> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Unavailable("the store's writer has stopped".into());
        let call = Call {
            item,
            deadline: Instant::now() + CALL_TIMEOUT,
            reply,
        };
        self.calls.send(call).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// The next calls to write together: the first one waiting, and every other waiting now
/// (up to [`MOST`]); calls whose callers gave up are answered and left out. `None` when
/// the group is dropped.
async fn next_batch<T, R>(
    queue: &Mutex<mpsc::UnboundedReceiver<Call<T, R>>>,
) -> Option<Vec<Call<T, R>>> {
    let mut queue = queue.lock().await;
    loop {
        let first = queue.recv().await?;
        let now = Instant::now();
        let mut batch = Vec::new();
        let keep = |call: Call<T, R>, batch: &mut Vec<Call<T, R>>| {
            if call.live(now) {
                batch.push(call);
            } else {
                let _ = call.reply.send(Err(too_late()));
            }
        };
        keep(first, &mut batch);
        while batch.len() < MOST {
            match queue.try_recv() {
                Ok(call) => keep(call, &mut batch),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            return Some(batch);
        }
    }
}

fn too_late() -> StoreError {
    StoreError::Unavailable("the database did not write this in time".into())
}

type Reply<R> = (oneshot::Sender<Result<R, StoreError>>, Instant);

/// Writes the batch, bounded by its callers' time; when the database refuses it (not an
/// outage), each call alone (those whose callers still wait), so that only the one it
/// refuses fails.
async fn written<T, R>(
    db: &Db,
    write: Write<T, R>,
    items: &[T],
    replies: &[Reply<R>],
) -> Vec<Result<R, StoreError>> {
    let deadline = replies
        .iter()
        .map(|(_, d)| *d)
        .min()
        .expect("a batch has a call");
    match bounded(db, deadline, write(db, items)).await {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(e) if items.len() > 1 && !e.is_unavailable() => {
            let mut answers = Vec::with_capacity(items.len());
            for (item, (reply, deadline)) in items.iter().zip(replies) {
                if reply.is_closed() || Instant::now() + MARGIN >= *deadline {
                    answers.push(Err(too_late()));
                    continue;
                }
                let alone = bounded(db, *deadline, write(db, std::slice::from_ref(item))).await;
                answers.push(alone.map(|mut one| one.remove(0)));
            }
            answers
        }
        Err(StoreError::Unavailable(reason)) => items
            .iter()
            .map(|_| Err(StoreError::Unavailable(reason.clone())))
            .collect(),
        // A refusal of the only call.
        Err(e) => vec![Err(e)],
    }
}

/// Runs a write until `deadline` less the margin; a write that runs out is dropped (its
/// transaction rolled back). Only a write given the whole [`CALL_TIMEOUT`] that runs out
/// counts as the database hanging (its idle connections are then dropped).
async fn bounded<R>(
    db: &Db,
    deadline: Instant,
    write: BoxFuture<'_, Result<R, StoreError>>,
) -> Result<R, StoreError> {
    let limit = deadline.saturating_duration_since(Instant::now() + MARGIN);
    match tokio::time::timeout(limit, write).await {
        Ok(result) => result,
        Err(_) if limit + Duration::from_secs(1) >= CALL_TIMEOUT => Err(db.stuck(CALL_TIMEOUT)),
        Err(_) => Err(too_late()),
    }
}
