//! The nodes sharing the database: each announces itself every few seconds (one upsert of
//! its row), and any node lists them all. A node that stopped announcing stays listed, so
//! that `/api/cluster` can show it as not alive; rows not seen for a week are removed.

use chrono::{DateTime, Utc};

use super::{Db, db_error, decode, encode};
use crate::store::{NodeInfo, StoreError};

/// Nodes not heard from for this long are forgotten.
const FORGET_AFTER_DAYS: i64 = 7;

impl Db {
    /// Records `node` as it is now.
    pub(super) async fn upsert_node(&self, node: &NodeInfo) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO switchboard_nodes (name, last_seen, record) VALUES ($1, $2, $3::text::json) \
                 ON CONFLICT (name) DO UPDATE SET last_seen = EXCLUDED.last_seen, record = EXCLUDED.record",
                &[&node.name, &node.last_seen, &encode(node)],
            )
            .await
            .map_err(db_error)?;
        let forget: DateTime<Utc> = node.last_seen - chrono::Duration::days(FORGET_AFTER_DAYS);
        client
            .execute(
                "DELETE FROM switchboard_nodes WHERE last_seen < $1",
                &[&forget],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Every node's last announcement.
    pub(super) async fn list_nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, record::text FROM switchboard_nodes ORDER BY name",
                &[],
            )
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let name: String = row.get(0);
                let record: String = row.get(1);
                decode(&format!("switchboard_nodes/{name}"), &record)
            })
            .collect()
    }
}
