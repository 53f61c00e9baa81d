//! A `switchboard serve` in the test process on 127.0.0.1:0, and small HTTP helpers.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use switchboard::dispatch::NetworkPolicy;
use switchboard::server::{self, App, Settings};

use super::ConfigDir;
use super::receiver::Receiver;

pub struct Server {
    pub url: String,
    pub app: Arc<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _data: tempfile::TempDir,
    pub config: ConfigDir,
}

impl Server {
    pub async fn start(config: ConfigDir, tune: impl FnOnce(&mut Settings)) -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut settings = Settings::new(config.path().to_path_buf(), data.path().to_path_buf());
        tune(&mut settings);
        let app = App::open(settings).await.expect("server starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run_app = app.clone();
        let task = tokio::spawn(async move {
            server::run(listener, run_app, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        Server {
            url,
            app,
            stop: Some(stop),
            task: Some(task),
            _data: data,
            config,
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

pub fn client() -> reqwest::Client {
    switchboard::dispatch::http_client(Arc::new(NetworkPolicy::default()))
}

pub async fn post(url: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null),
    )
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = client().get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Waits until the receiver has seen `n` requests.
pub async fn seen(rx: &Receiver, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while rx.requests().len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "the receiver saw {} of {n} requests",
            rx.requests().len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
