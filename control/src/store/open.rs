//! Opening the store a configuration names, whatever its backend.
//!
//! The daemon asks for "the store of this URL" and gets a [`Store`], so it
//! never names a backend.
//! Dispatch is a `match` (the trait's methods return `impl Future`, so it
//! cannot be a trait object), at one branch per batch, not per packet.

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{
    AuditEntry, LeaseRecord, LeaseStore, LeaseWrite, Reservation, ReservationChange, StoreError,
    WriteOutcome,
};

/// A lease store of any backend.
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Opens the store `url` names (`sqlite:///path`, or
    /// `postgres://user:password@host/db` for a cluster), recording
    /// `server_id` as `allocated_by` on what this server writes.
    pub async fn open(url: &str, server_id: &str) -> Result<Self, StoreError> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            Ok(Store::Sqlite(SqliteStore::open(path, server_id).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(PgStore::open(url, server_id).await?))
        } else {
            Err(StoreError::Unsupported(super::postgres::redacted(url)))
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
            Store::Postgres(s) => s.load_each(each).await,
        }
    }

    async fn apply(
        &self,
        writes: &[LeaseWrite],
        now: u64,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        match self {
            Store::Sqlite(s) => s.apply(writes, now).await,
            Store::Postgres(s) => s.apply(writes, now).await,
        }
    }

    async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }

    fn is_shared(&self) -> bool {
        match self {
            Store::Sqlite(s) => s.is_shared(),
            Store::Postgres(s) => s.is_shared(),
        }
    }

    async fn reservations(&self) -> Result<Vec<Reservation>, StoreError> {
        match self {
            Store::Sqlite(s) => s.reservations().await,
            Store::Postgres(s) => s.reservations().await,
        }
    }

    async fn change_reservation(
        &self,
        change: &ReservationChange,
        now: u64,
    ) -> Result<Option<Reservation>, StoreError> {
        match self {
            Store::Sqlite(s) => s.change_reservation(change, now).await,
            Store::Postgres(s) => s.change_reservation(change, now).await,
        }
    }

    async fn reservation_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        match self {
            Store::Sqlite(s) => s.reservation_audit(limit).await,
            Store::Postgres(s) => s.reservation_audit(limit).await,
        }
    }

    async fn reservations_version(&self) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(s) => s.reservations_version().await,
            Store::Postgres(s) => s.reservations_version().await,
        }
    }

    async fn relay_addresses(
        &self,
        ids: &super::RelayIds,
        now: u64,
        limit: u32,
    ) -> Result<Vec<std::net::Ipv4Addr>, StoreError> {
        match self {
            Store::Sqlite(s) => s.relay_addresses(ids, now, limit).await,
            Store::Postgres(s) => s.relay_addresses(ids, now, limit).await,
        }
    }

    async fn get(
        &self,
        subnet_id: u32,
        address: std::net::Ipv4Addr,
    ) -> Result<Option<LeaseRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.get(subnet_id, address).await,
            Store::Postgres(s) => s.get(subnet_id, address).await,
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
