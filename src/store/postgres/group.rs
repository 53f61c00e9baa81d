//! Group commit: calls of one kind (accepts, records) that arrive while a transaction of
//! that kind is being written wait for it, then are written together in the next one. One
//! writer per kind per node: under load every transaction carries many calls, so the
//! commits, round trips and the log clock's lock are shared among them; a lone call is
//! written at once, as before.
//!
//! **Invariant:** a call is answered only after the transaction that wrote it committed
//! (or failed: then nothing of it was written).
//! **Invariant:** one call the database refuses (a statement error, not an outage) does
//! not fail the others: the batch is then written again call by call, and only that call
//! fails.

use futures_util::future::BoxFuture;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use super::{CALL_TIMEOUT, Db};
use crate::store::StoreError;

/// The most calls one transaction carries.
const MOST: usize = 256;

/// Writes a batch of calls in one transaction, one answer per call, in order.
pub(super) type Write<T, R> =
    for<'a> fn(&'a Db, &'a [T]) -> BoxFuture<'a, Result<Vec<R>, StoreError>>;

type Call<T, R> = (T, oneshot::Sender<Result<R, StoreError>>);

/// The queue of one kind of call, and its writer (a task that ends when the group is
/// dropped).
pub(super) struct Group<T, R> {
    calls: mpsc::UnboundedSender<Call<T, R>>,
}

impl<T: Send + Sync + 'static, R: Send + 'static> Group<T, R> {
    /// Starts the writer, on the current tokio runtime.
    pub(super) fn start(db: Arc<Db>, write: Write<T, R>) -> Group<T, R> {
        let (calls, mut queue) = mpsc::unbounded_channel::<Call<T, R>>();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                while batch.len() < MOST {
                    match queue.try_recv() {
                        Ok(call) => batch.push(call),
                        Err(_) => break,
                    }
                }
                let (items, replies): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
                let answers = written(&db, write, &items).await;
                for (reply, answer) in replies.into_iter().zip(answers) {
                    // A caller that stopped waiting (it timed out) is not an error here.
                    let _ = reply.send(answer);
                }
            }
        });
        Group { calls }
    }

    /// Queues one call and waits for the transaction that writes it.
    pub(super) async fn call(&self, item: T) -> Result<R, StoreError> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Unavailable("the store's writer has stopped".into());
        self.calls.send((item, reply)).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// Writes the batch, bounded by [`CALL_TIMEOUT`]; when the database refuses it (not an
/// outage), each call alone, so that only the one it refuses fails.
async fn written<T, R>(db: &Db, write: Write<T, R>, items: &[T]) -> Vec<Result<R, StoreError>> {
    match bounded(db, write(db, items)).await {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(e) if items.len() > 1 && !e.is_unavailable() => {
            let mut answers = Vec::with_capacity(items.len());
            for item in items {
                let alone = bounded(db, write(db, std::slice::from_ref(item))).await;
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

async fn bounded<R>(db: &Db, write: BoxFuture<'_, Result<R, StoreError>>) -> Result<R, StoreError> {
    match tokio::time::timeout(CALL_TIMEOUT, write).await {
        Ok(result) => result,
        Err(_) => Err(db.stuck(CALL_TIMEOUT)),
    }
}
