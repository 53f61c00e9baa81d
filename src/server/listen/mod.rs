//! The listening socket and its connections: the only place that knows hyper. What one
//! client can hold is bounded: a request's headers must arrive within `--header-timeout`,
//! its body within `--body-timeout`; a kept-alive connection with nothing to do, or an
//! answer the client does not read (less than 4 KiB in that time), is closed after
//! `--idle-timeout`; at most `--max-connections` are served at once (fewer when the
//! open-file limit is lower, so that deliveries and the store keep the files they need);
//! a stop ends every connection within `--drain`, half-sent requests included.

mod body;
mod files;
mod socket;
mod watch;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch as signal};
use tokio::task::JoinSet;

pub use body::BodyTimeout;
pub use files::raise_open_file_limit;
use watch::Activity;
pub use watch::Timeouts;

/// The largest request line and headers hyper reads (its answer beyond: 431).
pub const MAX_HEAD: usize = 64 * 1024;

/// Open files kept for deliveries, the store and the log, whatever the connections take.
const RESERVED_FILES: u64 = 64;

/// How the listening socket serves its clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Per-request and per-connection deadlines.
    pub timeouts: Timeouts,
    /// Connections served at once; more wait in the kernel's queue.
    pub max_connections: usize,
    /// How long a stop waits for connections to finish.
    pub drain: Duration,
}

impl Limits {
    /// The connection cap the open-file limit allows: a fifth of the files (at least
    /// [`RESERVED_FILES`]) stay for deliveries and the store.
    pub fn capped(mut self, open_files: Option<u64>) -> Limits {
        if let Some(files) = open_files {
            let reserved = (files / 5).max(RESERVED_FILES);
            let room = usize::try_from(files.saturating_sub(reserved)).unwrap_or(usize::MAX);
            self.max_connections = self.max_connections.min(room.max(1));
        }
        self
    }
}

/// Serves `router` on `listener` until `stop` turns true, then lets the connections
/// finish for at most `limits.drain` and closes the rest.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: signal::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut full = false;
    let mut starved = false;
    loop {
        while connections.try_join_next().is_some() {}
        if permits.available_permits() == 0 && !full {
            tracing::warn!(
                max = limits.max_connections,
                "serving the most connections allowed; new ones wait until one closes"
            );
        }
        full = permits.available_permits() == 0;
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = stopped(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of files (EMFILE/ENFILE) or a connection reset before it was
                    // taken: wait a little rather than spin.
                    if !starved {
                        tracing::warn!("cannot accept a connection: {e}");
                    }
                    starved = true;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        starved = false;
        let _ = stream.set_nodelay(true);
        let (router, stop) = (router.clone(), stop.clone());
        connections.spawn(async move {
            connection(stream, peer, router, limits.timeouts, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    let deadline = tokio::time::Instant::now() + limits.drain;
    loop {
        tokio::select! {
            done = connections.join_next() => if done.is_none() { return },
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!(open = connections.len(), "closing the connections still open after --drain");
                connections.abort_all();
                while connections.join_next().await.is_some() {}
                return;
            }
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut signal::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One client connection, closed when a deadline passes; on stop, it finishes the
/// request in progress (hyper's graceful shutdown) while the drain lasts.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    timeouts: Timeouts,
    mut stop: signal::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(socket::Watched::new(stream, activity.clone(), MAX_HEAD));
    let door = Door {
        router,
        peer,
        activity: activity.clone(),
        body_timeout: timeouts.body,
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD)
        .max_header_size(MAX_HEAD)
        .writev(false)
        .serve_connection(io, door);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let deadline = activity.deadline(&timeouts);
        let changed = activity.changed.notified();
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = changed => {}
            _ = async {
                match deadline {
                    Some((at, _)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some((at, why)) = activity.deadline(&timeouts)
                    && at <= tokio::time::Instant::now()
                {
                    tracing::debug!(%peer, "closing a connection: {}", why.as_str());
                    return;
                }
            }
            _ = stopped(&mut stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The door from hyper into the router: each request learns its client's address and
/// gets a body deadline; the connection learns when handlers run and answers end.
struct Door {
    router: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
    body_timeout: Duration,
}

type Answered = Result<hyper::Response<body::Answer>, Infallible>;

impl hyper::service::Service<hyper::Request<Incoming>> for Door {
    type Response = hyper::Response<body::Answer>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Answered> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        self.activity.handler_started();
        let (mut parts, incoming) = request.into_parts();
        parts.extensions.insert(ConnectInfo(self.peer));
        let body = axum::body::Body::new(body::Timed::new(incoming, self.body_timeout));
        let request = hyper::Request::from_parts(parts, body);
        let mut router = self.router.clone();
        let activity = self.activity.clone();
        Box::pin(async move {
            // A Router is always ready (its poll_ready does nothing), so it is called
            // directly.
            let response = match tower_service::Service::call(&mut router, request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            activity.handler_answered();
            Ok(response.map(|b| body::Answer::new(b, activity)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_caps_connections() {
        let limits = Limits {
            timeouts: Timeouts {
                header: Duration::from_secs(10),
                body: Duration::from_secs(30),
                idle: Duration::from_secs(60),
            },
            max_connections: 10_000,
            drain: Duration::from_secs(10),
        };
        assert_eq!(limits.capped(Some(200)).max_connections, 136);
        assert_eq!(limits.capped(Some(1024)).max_connections, 820);
        assert_eq!(limits.capped(Some(1 << 20)).max_connections, 10_000);
        assert_eq!(limits.capped(None).max_connections, 10_000);
        assert_eq!(limits.capped(Some(10)).max_connections, 1);
    }
}
