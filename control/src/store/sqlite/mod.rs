//! The embedded lease store: one SQLite file.
//!
//! WAL journal with `synchronous = FULL`, so a committed batch survives a
//! `kill -9` and a power cut; that commit is what a DHCPACK waits for.
//! sqlx creates and migrates the file and reads it; every write goes
//! through the [`writer`] thread, one transaction per batch.

mod reservations;
mod writer;

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;

use super::{
    AuditEntry, LeaseRecord, LeaseStore, LeaseWrite, RecordState, Reservation, ReservationChange,
    StoreError, WriteOutcome,
};
use writer::Writer;

/// A lease store in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Arc<Writer>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and runs the
    /// migrations under `migrations/sqlite`.
    pub async fn open(path: &str, server_id: &str) -> Result<Self, StoreError> {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                let _ = std::fs::create_dir_all(dir);
            }
        }
        let url = format!("sqlite://{path}");
        let opts = SqliteConnectOptions::from_str(&url)
            .map_err(|source| StoreError::Open {
                url: url.clone(),
                source,
            })?
            .create_if_missing(true)
            // WAL is the file's mode from its creation on: readers run beside
            // the writer, and a commit appends to the log (one fsync).
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        // These connections migrate and read; the writer has its own.
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open { url, source })?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        let writer = Writer::open(path, server_id)?;
        Ok(Self {
            pool,
            writer: Arc::new(writer),
        })
    }
}

fn hw_of(v: Option<Vec<u8>>) -> Option<[u8; 6]> {
    v.and_then(|b| <[u8; 6]>::try_from(b.as_slice()).ok())
}

impl LeaseStore for SqliteStore {
    async fn load_each<F>(&self, mut each: F) -> Result<u64, StoreError>
    where
        F: FnMut(LeaseRecord) + Send,
    {
        let mut rows = sqlx::query(
            "SELECT subnet_id, address, client_key, hw_address, state, expiry, allocated_by, updated_at, version FROM leases",
        )
        .fetch(&self.pool);
        let mut n = 0;
        while let Some(r) = rows.try_next().await? {
            let address: String = r.try_get("address")?;
            let state: String = r.try_get("state")?;
            each(LeaseRecord {
                subnet_id: r.try_get::<i64, _>("subnet_id")? as u32,
                address: Ipv4Addr::from_str(&address)
                    .map_err(|_| StoreError::BadRow(format!("address {address:?}")))?,
                client_key: r.try_get("client_key")?,
                hw_address: hw_of(r.try_get("hw_address")?),
                state: RecordState::parse(&state)
                    .ok_or_else(|| StoreError::BadRow(format!("state {state:?}")))?,
                expiry: r.try_get::<i64, _>("expiry")?.max(0) as u64,
                allocated_by: r.try_get("allocated_by")?,
                updated_at: r.try_get::<i64, _>("updated_at")?.max(0) as u64,
                version: u32::try_from(r.try_get::<i64, _>("version")?)
                    .map_err(|_| StoreError::BadRow("version out of range".into()))?,
            });
            n += 1;
        }
        Ok(n)
    }

    async fn apply(
        &self,
        writes: &[LeaseWrite],
        now: u64,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        self.writer.apply(writes, now).await
    }

    async fn reservations(&self) -> Result<Vec<Reservation>, StoreError> {
        reservations::list(&self.pool).await
    }

    async fn change_reservation(
        &self,
        change: &ReservationChange,
        now: u64,
    ) -> Result<Option<Reservation>, StoreError> {
        self.writer.reserve(change, now).await
    }

    async fn reservation_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        reservations::audit(&self.pool, limit).await
    }

    async fn reservations_version(&self) -> Result<i64, StoreError> {
        reservations::version(&self.pool).await
    }

    async fn relay_addresses(
        &self,
        ids: &super::RelayIds,
        now: u64,
        limit: u32,
    ) -> Result<Vec<Ipv4Addr>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT address FROM leases WHERE state = 'leased' AND expiry > ?1
               AND (?2 IS NULL OR circuit_id = ?2) AND (?3 IS NULL OR remote_id = ?3)
             ORDER BY address LIMIT ?4",
        )
        .bind(now as i64)
        .bind(ids.circuit_id.as_deref())
        .bind(ids.remote_id.as_deref())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<Ipv4Addr> = rows
            .iter()
            .map(|a| {
                Ipv4Addr::from_str(a).map_err(|_| StoreError::BadRow(format!("address {a:?}")))
            })
            .collect::<Result<_, _>>()?;
        // Dotted text sorts as text; give them in address order.
        out.sort();
        Ok(out)
    }

    async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract;

    async fn fresh() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.sqlite3");
        let s = SqliteStore::open(path.to_str().unwrap(), "srv")
            .await
            .unwrap();
        (dir, s)
    }

    /// Against a real SQLite file: the contract's writes, then a reopen
    /// finds them.
    #[tokio::test]
    async fn writes_and_guards_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.sqlite3");
        let path = path.to_str().unwrap();
        let s = SqliteStore::open(path, "srv-a").await.unwrap();
        contract::writes_then_guards(&s).await;
        s.close().await;
        let s = SqliteStore::open(path, "srv-a").await.unwrap();
        contract::reads_back(&s, "srv-a").await;
    }

    #[tokio::test]
    async fn batch_order_and_multi_row_statements() {
        let (_dir, s) = fresh().await;
        contract::batch_order_and_multi_row_statements(&s).await;
    }

    #[tokio::test]
    async fn stale_writes_never_touch_a_newer_grant() {
        let (_dir, s) = fresh().await;
        contract::stale_writes_never_touch_a_newer_grant(&s).await;
    }

    #[tokio::test]
    async fn decline_stores_the_quarantine_and_expire_ends_it() {
        let (_dir, s) = fresh().await;
        contract::decline_stores_the_quarantine_and_expire_ends_it(&s).await;
    }

    #[tokio::test]
    async fn takeover_waits_for_the_guard_and_the_quarantine() {
        let (_dir, s) = fresh().await;
        contract::takeover_waits_for_the_guard_and_the_quarantine(&s).await;
    }

    #[tokio::test]
    async fn reservations_change_with_their_audit_rows() {
        let (_dir, s) = fresh().await;
        contract::reservations_change_with_their_audit_rows(&s).await;
    }

    #[tokio::test]
    async fn a_closed_store_refuses_writes() {
        let (_dir, s) = fresh().await;
        s.close().await;
        assert!(matches!(
            s.apply(&[contract::grant([10, 0, 0, 9], b"B", 9_000)], 1_000)
                .await,
            Err(StoreError::WriterStopped)
        ));
    }
}
