//! Opening the store a configuration names, whatever its backend.
//!
//! The daemon asks for "the store of this URL" and gets a [`Store`], so it
//! never names a backend; the PostgreSQL backend joins as one more variant.
//! Dispatch is a `match` (the trait's methods return `impl Future`, so it
//! cannot be a trait object), at one branch per batch, not per packet.

use super::sqlite::SqliteStore;
use super::{LeaseRecord, LeaseStore, LeaseWrite, StoreError, WriteOutcome};

/// A lease store of any backend.
pub enum Store {
    Sqlite(SqliteStore),
}

impl Store {
    /// Opens the store `url` names (`sqlite:///path`), recording `server_id`
    /// as `allocated_by` on what this server writes.
    pub async fn open(url: &str, server_id: &str) -> Result<Self, StoreError> {
        match url.strip_prefix("sqlite:") {
            Some(rest) => {
                let path = rest.trim_start_matches("//");
                Ok(Store::Sqlite(SqliteStore::open(path, server_id).await?))
            }
            None => Err(StoreError::Unsupported(url.to_string())),
        }
    }
}

impl LeaseStore for Store {
    async fn load_each<F>(&self, each: F) -> Result<u64, StoreError>
    where
        F: FnMut(LeaseRecord) + Send,
    {
        match self {
            Store::Sqlite(s) => s.load_each(each).await,
        }
    }

    async fn apply(
        &self,
        writes: &[LeaseWrite],
        now: u64,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        match self {
            Store::Sqlite(s) => s.apply(writes, now).await,
        }
    }

    async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_by_url_and_refuses_unknown_schemes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("l.sqlite3").display());
        let s = Store::open(&url, "t").await.unwrap();
        assert_eq!(s.load().await.unwrap().len(), 0);
        s.close().await;
        assert!(matches!(
            Store::open("mysql://x", "t").await,
            Err(StoreError::Unsupported(_))
        ));
    }
}
