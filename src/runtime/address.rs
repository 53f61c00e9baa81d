//! Where a running server can be reached, written into its data folder when it starts, so
//! that `logs` and `replay` can use its API while it holds the folder.

use std::path::{Path, PathBuf};

/// A running server's address.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Address {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Process id.
    pub pid: u32,
}

/// The file in a data folder naming the server that holds it.
pub fn address_file(data: &Path) -> PathBuf {
    data.join("server.json")
}
