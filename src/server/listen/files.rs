//! The process's open-file limit: every connection, delivery and store file is one.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Linux refuses an unlimited open-file limit; this is its usual ceiling (`nr_open`).
const UNLIMITED: u64 = 1 << 20;

/// Raises the soft open-file limit as far as the hard limit allows, and returns the
/// limit before and after (`None`: unknown).
pub fn raise_open_file_limit() -> (Option<u64>, Option<u64>) {
    let limit = getrlimit(Resource::Nofile);
    let Some(soft) = limit.current else {
        return (None, None);
    };
    let hard = limit.maximum.unwrap_or(UNLIMITED);
    if hard <= soft {
        return (Some(soft), Some(soft));
    }
    let raised = Rlimit {
        current: Some(hard),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => (Some(soft), Some(hard)),
        Err(_) => (Some(soft), Some(soft)),
    }
}
