//! Group commit: every caller that needs its writes durable waits for one shared fsync.
//! While a flush runs, new callers queue up; the next flush serves all of them at once,
//! so a burst of concurrent requests costs one or two fsyncs, not one each.

use tokio::sync::{mpsc, oneshot};

use super::StoreError;

type Waiter = oneshot::Sender<Result<(), String>>;

/// Handle to the flushing task.
pub(super) struct Flusher {
    tx: mpsc::UnboundedSender<Waiter>,
}

impl Flusher {
    /// Starts the task (needs a tokio runtime).
    pub(super) fn start(db: sled::Db) -> Flusher {
        let (tx, mut rx) = mpsc::unbounded_channel::<Waiter>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = vec![first];
                while let Ok(more) = rx.try_recv() {
                    waiters.push(more);
                }
                let result = db
                    .flush_async()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            }
        });
        Flusher { tx }
    }

    /// Waits until everything written before the call is on disk.
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        let lost = || StoreError::Sled(sled::Error::Unsupported("the flush task stopped".into()));
        self.tx.send(tx).map_err(|_| lost())?;
        rx.await
            .map_err(|_| lost())?
            .map_err(|e| StoreError::Sled(sled::Error::Unsupported(e)))
    }
}
