//! The admin API of a running server, for `logs` and `replay` while `serve` holds the data
//! folder. The server writes its address into the data folder when it starts.

use std::path::Path;

use serde_json::Value;

use crate::runtime::address::{Address, address_file};
use crate::store::{Delivery, DeliveryId, LogEntry, LogQuery};

/// A running server's API.
pub struct Remote {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl Remote {
    /// The server holding `data`, if it left its address there.
    pub fn find(data: &Path) -> Option<Remote> {
        let text = std::fs::read(address_file(data)).ok()?;
        let address: Address = serde_json::from_slice(&text).ok()?;
        // A crashed server leaves its file behind; the token must not go to whatever holds
        // that port now. The process must be alive and be switchboard.
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", address.pid)).ok()?;
        if !String::from_utf8_lossy(&cmdline).contains("switchboard") {
            return None;
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        Some(Remote {
            base: address.url,
            token: std::env::var("SWITCHBOARD_API_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            client: reqwest::Client::new(),
        })
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Value>, String> {
        let mut url = format!("{}{path}", self.base);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&crate::engine::encode::urlencoded(query));
        }
        let mut request = self.client.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            format!(
                "the data folder is held by the server at {}, which does not answer: {e}",
                self.base
            )
        })?;
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let why = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            return Err(format!(
                "the server at {} refused: HTTP {status}: {why}",
                self.base
            ));
        }
        Ok(Some(body))
    }

    /// Searches the connect log, newest first, following the server's cursor up to the limit.
    pub async fn logs(&self, query: &LogQuery) -> Result<Vec<LogEntry>, String> {
        let mut params: Vec<(String, String)> = Vec::new();
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                params.push((k.to_string(), v));
            }
        };
        add("endpoint", query.endpoint.clone());
        add("workflow", query.workflow.clone());
        add("outcome", query.outcome.map(|o| o.as_str().to_string()));
        add("search", query.search.clone());
        add("delivery", query.delivery.as_ref().map(ToString::to_string));
        add("since", query.since.map(|t| t.to_rfc3339()));
        add("until", query.until.map(|t| t.to_rfc3339()));
        let wanted = if query.limit == 0 {
            usize::MAX
        } else {
            query.limit
        };
        let mut entries: Vec<LogEntry> = Vec::new();
        let mut cursor = query.before.clone();
        while entries.len() < wanted {
            let mut page = params.clone();
            page.push((
                "limit".into(),
                (wanted - entries.len()).min(1000).to_string(),
            ));
            if let Some(c) = &cursor {
                page.push(("cursor".into(), c.clone()));
            }
            let Some(body) = self.call(reqwest::Method::GET, "/api/logs", &page).await? else {
                break;
            };
            let batch: Vec<LogEntry> =
                serde_json::from_value(body["entries"].clone()).map_err(|e| e.to_string())?;
            entries.extend(batch);
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        Ok(entries)
    }

    /// One entry.
    pub async fn entry(&self, id: &str) -> Result<Option<LogEntry>, String> {
        match self
            .call(reqwest::Method::GET, &format!("/api/logs/{id}"), &[])
            .await?
        {
            Some(body) => serde_json::from_value(body)
                .map(Some)
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    /// A delivery and its attempts, oldest first.
    pub async fn delivery(
        &self,
        id: &DeliveryId,
    ) -> Result<Option<(Delivery, Vec<LogEntry>)>, String> {
        match self
            .call(reqwest::Method::GET, &format!("/api/deliveries/{id}"), &[])
            .await?
        {
            Some(body) => {
                let delivery =
                    serde_json::from_value(body["delivery"].clone()).map_err(|e| e.to_string())?;
                let attempts =
                    serde_json::from_value(body["attempts"].clone()).map_err(|e| e.to_string())?;
                Ok(Some((delivery, attempts)))
            }
            None => Ok(None),
        }
    }

    /// Queues a delivery again.
    pub async fn replay(
        &self,
        id: &DeliveryId,
        with_followers: bool,
    ) -> Result<Option<Delivery>, String> {
        let query = if with_followers {
            vec![("with_followers".to_string(), "true".to_string())]
        } else {
            Vec::new()
        };
        match self
            .call(
                reqwest::Method::POST,
                &format!("/api/deliveries/{id}/replay"),
                &query,
            )
            .await?
        {
            Some(body) => serde_json::from_value(body["delivery"].clone())
                .map(Some)
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }
}
