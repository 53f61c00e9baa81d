//! The cluster as this node sees it: the node announces itself through the store every
//! few seconds, `GET /api/cluster` lists the nodes, and a node whose configuration no
//! majority of the live nodes shares is flagged (there, in `/readyz` and in its log).
//! With the embedded store the cluster is this one node.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::App;
use super::error::ApiError;
use crate::store::NodeInfo;

/// How often a node announces itself.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// A node not heard from for this long is listed as not alive.
pub const ALIVE_WITHIN: Duration = Duration::from_secs(30);

impl App {
    /// This node, as it announces itself now.
    pub fn node_info(&self) -> NodeInfo {
        NodeInfo {
            name: self.runtime.node().to_string(),
            address: self.address.get().cloned().unwrap_or_default(),
            started: self.started,
            last_seen: self.clock().now(),
            config_hash: self.runtime.config_hash(),
            in_flight: self.runtime.dispatcher().in_flight(),
        }
    }

    /// The nodes, this one included, each with whether it is alive and whether its
    /// configuration differs from the cluster's.
    pub async fn cluster(&self) -> Result<Vec<Value>, ApiError> {
        let me = self.node_info();
        let mut nodes = self.store().nodes().await?;
        nodes.retain(|n| n.name != me.name);
        nodes.push(me);
        Ok(view(nodes, self.clock().now()))
    }
}

/// The nodes as listed: alive or not, and flagged when no more than half of the live
/// nodes share their configuration.
fn view(mut nodes: Vec<NodeInfo>, now: DateTime<Utc>) -> Vec<Value> {
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let alive = |n: &NodeInfo| {
        now.signed_duration_since(n.last_seen)
            .to_std()
            .map_or(true, |d| d <= ALIVE_WITHIN)
    };
    let mut shared: HashMap<&str, usize> = HashMap::new();
    let live = nodes.iter().filter(|n| alive(n)).count();
    for node in nodes.iter().filter(|n| alive(n)) {
        *shared.entry(node.config_hash.as_str()).or_default() += 1;
    }
    nodes
        .iter()
        .map(|node| {
            let sharing = shared.get(node.config_hash.as_str()).copied().unwrap_or(0);
            let differs = live > 1 && sharing * 2 <= live;
            json!({
                "name": node.name,
                "address": node.address,
                "started": node.started,
                "last_seen": node.last_seen,
                "alive": alive(node),
                "config_hash": node.config_hash,
                "config_differs": alive(node) && differs,
                "in_flight": node.in_flight,
            })
        })
        .collect()
}

/// Announces this node every [`HEARTBEAT`] until `stop`, and says in the log when its
/// configuration starts or stops differing from the cluster's.
pub(super) async fn heartbeat(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = app.store().announce(&app.node_info()).await {
            tracing::debug!("cannot announce this node: {e}");
        }
        if let Ok(nodes) = app.cluster().await {
            let me = app.runtime.node();
            let differs = nodes
                .iter()
                .any(|n| n["name"] == me && n["config_differs"] == true);
            let before = app.config_differs.swap(differs, Ordering::SeqCst);
            if differs && !before {
                tracing::warn!(
                    config_hash = %app.runtime.config_hash(),
                    "this node's configuration differs from the other nodes' (see /api/cluster): they may route or send events differently"
                );
            } else if before && !differs {
                tracing::info!("this node's configuration agrees with the cluster's again");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {}
            _ = stop.changed() => return,
        }
    }
}

/// `GET /api/cluster`: the nodes sharing the store.
pub(super) async fn list(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    super::api::allow(&app, peer, &headers)?;
    let nodes = app.cluster().await?;
    Ok(Json(json!({
        "node": app.runtime.node(),
        "store": app.store().describe(),
        "nodes": nodes,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, hash: &str, seen_secs_ago: i64) -> NodeInfo {
        let now: DateTime<Utc> = "2026-11-29T12:00:00Z".parse().unwrap();
        NodeInfo {
            name: name.into(),
            address: format!("http://{name}:8080"),
            started: now - chrono::Duration::hours(1),
            last_seen: now - chrono::Duration::seconds(seen_secs_ago),
            config_hash: hash.into(),
            in_flight: 0,
        }
    }

    #[test]
    fn a_node_no_majority_shares_is_flagged() {
        let now: DateTime<Utc> = "2026-11-29T12:00:00Z".parse().unwrap();
        let flags = |nodes: Vec<NodeInfo>| -> Vec<(String, bool, bool)> {
            view(nodes, now)
                .iter()
                .map(|n| {
                    (
                        n["name"].as_str().unwrap().to_string(),
                        n["alive"].as_bool().unwrap(),
                        n["config_differs"].as_bool().unwrap(),
                    )
                })
                .collect()
        };
        // One node alone agrees with itself.
        assert_eq!(flags(vec![node("a", "x", 0)]), [("a".into(), true, false)]);
        // Two against one: the one differs.
        assert_eq!(
            flags(vec![
                node("a", "x", 0),
                node("b", "x", 3),
                node("c", "y", 1)
            ]),
            [
                ("a".into(), true, false),
                ("b".into(), true, false),
                ("c".into(), true, true)
            ]
        );
        // One against one: both differ. A dead node counts for nothing.
        assert_eq!(
            flags(vec![
                node("a", "x", 0),
                node("b", "y", 0),
                node("c", "x", 600)
            ]),
            [
                ("a".into(), true, true),
                ("b".into(), true, true),
                ("c".into(), false, false)
            ]
        );
    }
}
