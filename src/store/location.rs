//! Where the store is, as `--store` names it: `sled:DIR` (the embedded default) or a
//! PostgreSQL URL; and opening the backend it names.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{PostgresStore, SledStore, Store, StoreError};

/// Where the store is.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A data folder of the embedded store, held by one process.
    Sled(PathBuf),
    /// A PostgreSQL database that any number of nodes share (the URL as given: show it
    /// with `Display`, which masks the password).
    Postgres(String),
}

impl Location {
    /// Reads `sled:DIR`, `postgres://…` or `postgresql://…`.
    pub fn parse(text: &str) -> Result<Location, String> {
        if let Some(dir) = text.strip_prefix("sled:") {
            if dir.is_empty() {
                return Err("a sled store needs its folder: sled:DIR".into());
            }
            return Ok(Location::Sled(PathBuf::from(dir)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Location::Postgres(text.to_string()));
        }
        Err(format!(
            "unknown store {:?} (known: sled:DIR, postgres://user:password@host:port/db)",
            super::postgres::masked_url(text)
        ))
    }

    /// Opens the store it names, as node `node`; event ids repeated within
    /// `dedupe_window` are duplicates.
    pub async fn open(
        &self,
        node: &str,
        dedupe_window: Duration,
    ) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Location::Sled(dir) => Arc::new(SledStore::open_with(dir, dedupe_window)?),
            Location::Postgres(url) => {
                Arc::new(PostgresStore::connect_with(url, node, dedupe_window).await?)
            }
        })
    }
}

/// As `Display`: the password masked (options that hold a `Location` derive `Debug`).
impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sled(dir) => f.debug_tuple("Sled").field(dir).finish(),
            Location::Postgres(_) => f.debug_tuple("Postgres").field(&self.to_string()).finish(),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sled(dir) => write!(f, "sled:{}", dir.display()),
            Location::Postgres(url) => f.write_str(&super::postgres::masked_url(url)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_named_by_url_and_shown_without_their_password() {
        assert_eq!(
            Location::parse("sled:/var/lib/sb"),
            Ok(Location::Sled("/var/lib/sb".into()))
        );
        let pg = Location::parse("postgresql://sb:s3cret@db/x").unwrap();
        assert_eq!(pg.to_string(), "postgresql://sb:***@db/x");
        assert!(!format!("{pg:?}").contains("s3cret"));
        let error = Location::parse("mysql://sb:s3cret@db/x").unwrap_err();
        assert!(
            error.contains("known: sled:DIR") && !error.contains("s3cret"),
            "{error}"
        );
        assert!(Location::parse("sled:").is_err());
    }
}
