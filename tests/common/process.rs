//! The real `switchboard serve` binary as a child process: started on a free port with its
//! URL read from the data folder, its standard error collected line by line (so that a
//! test can count what it logged, and a chatty server never blocks on a full pipe).

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cli;

/// A running `serve`.
pub struct Serve {
    pub child: Child,
    pub url: String,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Serve {
    /// Starts `serve --listen 127.0.0.1:0 --config CONFIG --data DATA` plus `extra` flags.
    pub async fn start(config: &Path, data: &Path, extra: &[&str]) -> Serve {
        Serve::start_with(cli(), config, data, extra).await
    }

    /// As [`Serve::start`], with the open-file limit (soft and hard) set to `files`.
    pub async fn start_with_files(config: &Path, data: &Path, extra: &[&str], files: u64) -> Serve {
        let mut command = std::process::Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_switchboard"))
            .env_remove("SWITCHBOARD_CONFIG");
        Serve::start_with(command, config, data, extra).await
    }

    /// As [`Serve::start`], from a prepared command (environment, limits).
    pub async fn start_with(
        mut command: std::process::Command,
        config: &Path,
        data: &Path,
        extra: &[&str],
    ) -> Serve {
        let _ = std::fs::remove_file(data.join("server.json"));
        let mut child = command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--drain",
                "5s",
                "--config",
            ])
            .arg(config)
            .arg("--data")
            .arg(data)
            .args(extra)
            .env("SWITCHBOARD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped");
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read(data.join("server.json"))
                && let Ok(address) = serde_json::from_slice::<Value>(&text)
            {
                let url = address["url"].as_str().expect("url").to_string();
                return Serve {
                    child,
                    url,
                    lines,
                    reader: Some(reader),
                };
            }
            if Instant::now() >= deadline || child.try_wait().ok().flatten().is_some() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not start:\n{}", lines.lock().unwrap().join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What it has written to standard error so far, one entry per line.
    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Sends a signal by name (`TERM`, `HUP`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// SIGTERM, then waits; panics unless it exits 0. Returns everything it logged.
    pub fn stop(self) -> String {
        self.signal("TERM");
        let (status, log) = self.wait();
        assert!(status.success(), "serve exited {status}:\n{log}");
        log
    }

    /// Waits for the process to exit (after a signal); returns how it exited and
    /// everything it logged.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().expect("serve exits");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, self.log().join("\n"))
    }

    /// kill -9, then waits.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
