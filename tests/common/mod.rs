//! Helpers shared by the integration tests: configurations written into temporary folders,
//! events from JSON, a fixed clock, and the real CLI binary.
#![allow(dead_code)]

pub mod process;
pub mod receiver;
pub mod server;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use switchboard::engine::Planned;
use switchboard::engine::event::{Event, event_from_value};
use switchboard::{ConfigErrors, Engine, Loaded};

/// The fixed "now" of every test: 2026-11-21T10:00:00Z.
pub fn now() -> DateTime<Utc> {
    "2026-11-21T10:00:00Z".parse().expect("valid time")
}

/// The environment every test configuration sees.
pub fn env(name: &str) -> Option<String> {
    match name {
        "TEST_TOKEN" => Some("tok-123+/=".into()),
        "TEST_API_KEY" => Some("key-456".into()),
        "TEST_PASSWORD" => Some("p@ss:word".into()),
        "TEST_SIGNING" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        "PLAIN_URL" => Some("https://crm.example.com".into()),
        _ => None,
    }
}

/// A configuration folder written from (path, text) pairs.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
}

impl ConfigDir {
    pub fn new(files: &[(&str, &str)]) -> ConfigDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["adaptors", "endpoints", "workflows"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        for (path, text) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("has parent")).expect("mkdir");
            std::fs::write(full, text).expect("write");
        }
        ConfigDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn load(&self) -> Result<Loaded, ConfigErrors> {
        switchboard::load_with_env(self.path(), &env)
    }

    pub fn load_with(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigErrors> {
        switchboard::load_with_env(self.path(), env)
    }

    pub fn engine(&self) -> Engine {
        match self.load() {
            Ok(loaded) => loaded.engine,
            Err(errors) => panic!("configuration should load:\n{errors}"),
        }
    }

    /// Every error line, as `validate` prints them.
    pub fn errors(&self) -> Vec<String> {
        match self.load() {
            Ok(_) => panic!("configuration should not load"),
            Err(errors) => errors.errors.iter().map(ToString::to_string).collect(),
        }
    }
}

/// An event of type `kind` with `data`, received at [`now`], with id "ev-1".
pub fn event(kind: &str, data: serde_json::Value) -> Event {
    let envelope = serde_json::json!({"type": kind, "id": "ev-1", "data": data});
    event_from_value(envelope, None, now()).expect("valid event")
}

/// The requests an engine plans for an event (panics if any is not sendable).
pub fn requests(engine: &Engine, event: &Event) -> Vec<switchboard::engine::request::Request> {
    engine
        .process(event, now())
        .into_iter()
        .map(|p: Planned| match p.plan {
            switchboard::engine::Plan::Send(r) => r,
            other => panic!("expected a request, got {other:?}"),
        })
        .collect()
}

/// The real CLI binary.
pub fn cli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.env_remove("SWITCHBOARD_CONFIG");
    cmd
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Waits until no sled handle holds `data` (sled releases its file lock on `data/db` when
/// its background threads end, a moment after the last handle is dropped), probing the
/// lock without taking it for longer than the probe.
pub fn wait_released(data: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let Ok(file) = std::fs::File::open(data.join("db")) else {
        return;
    };
    while file.try_lock().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the data folder stayed locked"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Opens a data folder once an earlier handle of this process has released it.
/// (sled's background threads may still hold the lock a moment after the probe saw it
/// free on a busy machine: a lock is waited for, up to 10 s, as the store's own recovery
/// does).
pub fn open_when_free(data: &Path) -> switchboard::store::SledStore {
    wait_released(data);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match switchboard::store::SledStore::open(data) {
            Err(switchboard::store::StoreError::Locked(_))
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => return opened.expect("the data folder opens"),
        }
    }
}

/// sled itself on a data folder, once an earlier handle has released it.
pub fn raw_sled_when_free(data: &Path) -> sled::Db {
    wait_released(data);
    sled::open(data).expect("sled opens")
}
