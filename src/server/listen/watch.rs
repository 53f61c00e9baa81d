//! What a connection is doing, for its deadlines: waiting for a request's headers, running
//! a handler, writing an answer, or idle between requests.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The deadlines a connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the first byte of a request (or from connecting) to the end of its headers.
    pub header: Duration,
    /// From the headers to the end of the body.
    pub body: Duration,
    /// A kept-alive connection with no request, or an answer the client does not read.
    pub idle: Duration,
}

/// One connection's activity, shared by its socket, its requests and its watchdog.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
    /// Woken when a deadline may have moved earlier.
    pub changed: Notify,
}

#[derive(Debug)]
struct State {
    /// Requests whose handler has not answered yet.
    handlers: usize,
    /// Answers not yet written to the end.
    answers: usize,
    /// Requests answered to the end.
    served: u64,
    /// When the connection last had nothing to do.
    idle_since: Instant,
    /// The first byte of the next request, received while idle.
    head_since: Option<Instant>,
    /// When the answer being written last moved by [`MIN_PROGRESS`] bytes.
    progress: Instant,
    /// Bytes written since then.
    written: usize,
}

/// How much of an answer must leave within `--idle-timeout`: a client that reads a byte at
/// a time does not hold the connection forever.
pub const MIN_PROGRESS: usize = 4096;

/// Why a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// A request's headers did not arrive in time.
    Headers,
    /// Nothing was asked on a kept-alive connection.
    Idle,
    /// The client stopped reading its answer.
    Stalled,
}

impl Expired {
    /// For the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Expired::Headers => "the request headers did not arrive within --header-timeout",
            Expired::Idle => "idle for --idle-timeout",
            Expired::Stalled => "the client read less than 4 KiB of its answer in --idle-timeout",
        }
    }
}

impl Activity {
    /// A connection just accepted.
    pub fn new() -> Activity {
        let now = Instant::now();
        Activity {
            state: Mutex::new(State {
                handlers: 0,
                answers: 0,
                served: 0,
                idle_since: now,
                head_since: None,
                progress: now,
                written: 0,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `n` bytes arrived.
    pub fn read(&self, n: usize) {
        if n == 0 {
            return;
        }
        let now = Instant::now();
        let mut s = self.lock();
        if s.handlers == 0 && s.answers == 0 && s.head_since.is_none() {
            s.head_since = Some(now);
            drop(s);
            // The header deadline is usually earlier than the idle one.
            self.changed.notify_one();
        }
    }

    /// `n` bytes of an answer left.
    pub fn wrote(&self, n: usize) {
        let mut s = self.lock();
        s.written += n;
        if s.written >= MIN_PROGRESS {
            s.written = 0;
            s.progress = Instant::now();
        }
    }

    /// A request's headers were parsed and its handler runs.
    pub fn handler_started(&self) {
        self.lock().handlers += 1;
    }

    /// A handler answered; the answer is being written.
    pub fn handler_answered(&self) {
        let mut s = self.lock();
        s.handlers = s.handlers.saturating_sub(1);
        s.answers += 1;
        s.progress = Instant::now();
        s.written = 0;
    }

    /// An answer was written to the end (or abandoned).
    pub fn answer_finished(&self) {
        let now = Instant::now();
        let mut s = self.lock();
        s.answers = s.answers.saturating_sub(1);
        if s.handlers == 0 && s.answers == 0 {
            s.served += 1;
            s.idle_since = now;
            s.head_since = None;
            drop(s);
            self.changed.notify_one();
        }
    }

    /// No handler runs and no answer is being written: anything written now is hyper's
    /// own answer to a request it could not parse.
    pub fn quiet(&self) -> bool {
        let s = self.lock();
        s.handlers == 0 && s.answers == 0
    }

    /// When the connection is to be closed if nothing changes, and why; `None` while a
    /// handler runs (its body has a deadline of its own).
    pub fn deadline(&self, timeouts: &Timeouts) -> Option<(Instant, Expired)> {
        let s = self.lock();
        if s.handlers > 0 {
            None
        } else if s.answers > 0 {
            Some((s.progress + timeouts.idle, Expired::Stalled))
        } else if let Some(since) = s.head_since {
            Some((since + timeouts.header, Expired::Headers))
        } else if s.served == 0 {
            // A new connection owes its first request's headers.
            Some((s.idle_since + timeouts.header, Expired::Headers))
        } else {
            Some((s.idle_since + timeouts.idle, Expired::Idle))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_connection() {
        let t = Timeouts {
            header: Duration::from_secs(10),
            body: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        };
        let a = Activity::new();
        let start = Instant::now();
        assert_eq!(a.deadline(&t), Some((start + t.header, Expired::Headers)));
        tokio::time::advance(Duration::from_secs(1)).await;
        a.read(10);
        assert_eq!(
            a.deadline(&t),
            Some((start + Duration::from_secs(11), Expired::Headers))
        );
        a.handler_started();
        assert_eq!(a.deadline(&t), None);
        assert!(!a.quiet());
        a.handler_answered();
        tokio::time::advance(Duration::from_secs(1)).await;
        // A trickle is not progress; a few KiB are.
        a.wrote(100);
        assert_eq!(
            a.deadline(&t),
            Some((start + Duration::from_secs(61), Expired::Stalled))
        );
        a.wrote(MIN_PROGRESS);
        assert_eq!(
            a.deadline(&t),
            Some((start + Duration::from_secs(62), Expired::Stalled))
        );
        a.answer_finished();
        assert!(a.quiet());
        assert_eq!(
            a.deadline(&t),
            Some((start + Duration::from_secs(62), Expired::Idle))
        );
        a.read(1);
        assert_eq!(
            a.deadline(&t),
            Some((start + Duration::from_secs(12), Expired::Headers))
        );
    }
}
