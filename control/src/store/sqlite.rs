//! The embedded lease store: one SQLite file through sqlx.
//!
//! WAL journal with `synchronous = FULL`, so a committed batch survives a
//! `kill -9` and a power cut; that commit is what a DHCPACK waits for. Writes
//! go through one connection-serialised transaction per batch.

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;

use super::{LeaseRecord, LeaseStore, LeaseWrite, RecordState, StoreError};

/// A lease store in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    server_id: String,
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
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open { url, source })?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(Self {
            pool,
            server_id: server_id.to_string(),
        })
    }

    /// Closes the pool (flushes the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
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
            "SELECT subnet_id, address, client_key, hw_address, state, expiry, allocated_by, updated_at FROM leases",
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
            });
            n += 1;
        }
        Ok(n)
    }

    async fn apply(&self, writes: &[LeaseWrite], now: u64) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut applied = Vec::with_capacity(writes.len());
        let now_i = now as i64;
        for w in writes {
            let res = match w {
                LeaseWrite::Grant {
                    subnet_id,
                    address,
                    client_key,
                    hw_address,
                    expiry,
                } => {
                    sqlx::query(
                        "INSERT INTO leases (subnet_id, address, client_key, hw_address, state, expiry, allocated_by, updated_at)
                         VALUES (?1, ?2, ?3, ?4, 'leased', ?5, ?6, ?7)
                         ON CONFLICT (subnet_id, address) DO UPDATE SET
                            client_key = excluded.client_key, hw_address = excluded.hw_address,
                            state = 'leased', expiry = excluded.expiry,
                            allocated_by = excluded.allocated_by, updated_at = excluded.updated_at
                         WHERE leases.client_key = excluded.client_key
                            OR leases.state <> 'leased' OR leases.expiry < ?7",
                    )
                    .bind(i64::from(*subnet_id))
                    .bind(address.to_string())
                    .bind(client_key.as_slice())
                    .bind(hw_address.map(|h| h.to_vec()))
                    .bind(*expiry as i64)
                    .bind(&self.server_id)
                    .bind(now_i)
                    .execute(&mut *tx)
                    .await?
                }
                LeaseWrite::Extend {
                    subnet_id,
                    address,
                    client_key,
                    expiry,
                } => {
                    sqlx::query(
                        "UPDATE leases SET expiry = MAX(expiry, ?4), updated_at = ?5
                         WHERE subnet_id = ?1 AND address = ?2 AND client_key = ?3 AND state = 'leased'",
                    )
                    .bind(i64::from(*subnet_id))
                    .bind(address.to_string())
                    .bind(client_key.as_slice())
                    .bind(*expiry as i64)
                    .bind(now_i)
                    .execute(&mut *tx)
                    .await?
                }
                LeaseWrite::Release {
                    subnet_id,
                    address,
                    client_key,
                } => {
                    sqlx::query(
                        "UPDATE leases SET state = 'released', expiry = ?4, updated_at = ?4
                         WHERE subnet_id = ?1 AND address = ?2 AND client_key = ?3 AND state = 'leased'",
                    )
                    .bind(i64::from(*subnet_id))
                    .bind(address.to_string())
                    .bind(client_key.as_slice())
                    .bind(now_i)
                    .execute(&mut *tx)
                    .await?
                }
                LeaseWrite::Decline {
                    subnet_id,
                    address,
                    client_key,
                    until,
                } => {
                    sqlx::query(
                        "UPDATE leases SET state = 'declined', expiry = ?4, updated_at = ?5
                         WHERE subnet_id = ?1 AND address = ?2 AND client_key = ?3 AND state = 'leased'",
                    )
                    .bind(i64::from(*subnet_id))
                    .bind(address.to_string())
                    .bind(client_key.as_slice())
                    .bind(*until as i64)
                    .bind(now_i)
                    .execute(&mut *tx)
                    .await?
                }
                LeaseWrite::Expire {
                    subnet_id,
                    address,
                    client_key,
                } => {
                    sqlx::query(
                        "UPDATE leases SET state = 'expired', updated_at = ?4
                         WHERE subnet_id = ?1 AND address = ?2 AND client_key = ?3 AND state IN ('leased', 'declined')",
                    )
                    .bind(i64::from(*subnet_id))
                    .bind(address.to_string())
                    .bind(client_key.as_slice())
                    .bind(now_i)
                    .execute(&mut *tx)
                    .await?
                }
            };
            applied.push(res.rows_affected() > 0);
        }
        tx.commit().await?;
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(addr: [u8; 4], key: &[u8], expiry: u64) -> LeaseWrite {
        LeaseWrite::Grant {
            subnet_id: 1,
            address: Ipv4Addr::from(addr),
            client_key: key.to_vec(),
            hw_address: Some([2, 0, 0, 0, 0, 1]),
            expiry,
        }
    }

    /// Against a real SQLite file: grants, the UNIQUE guard against a second
    /// owner, monotonic extension, release, reopen.
    #[tokio::test]
    async fn sqlite_file_round_trip_and_guards() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.sqlite3");
        let path = path.to_str().unwrap();
        let s = SqliteStore::open(path, "srv-a").await.unwrap();
        let now = 1_000;
        let r = s
            .apply(
                &[
                    grant([10, 0, 0, 5], b"A", 2_000),
                    grant([10, 0, 0, 6], b"B", 2_000),
                ],
                now,
            )
            .await
            .unwrap();
        assert_eq!(r, vec![true, true]);
        // B may not take A's live lease; A may re-grant its own.
        let r = s
            .apply(
                &[
                    grant([10, 0, 0, 5], b"B", 3_000),
                    grant([10, 0, 0, 5], b"A", 2_500),
                ],
                now,
            )
            .await
            .unwrap();
        assert_eq!(r, vec![false, true]);
        let ext = |e| LeaseWrite::Extend {
            subnet_id: 1,
            address: Ipv4Addr::new(10, 0, 0, 5),
            client_key: b"A".to_vec(),
            expiry: e,
        };
        assert_eq!(
            s.apply(&[ext(4_000), ext(3_000)], now).await.unwrap(),
            vec![true, true]
        );
        let rel = LeaseWrite::Release {
            subnet_id: 1,
            address: Ipv4Addr::new(10, 0, 0, 6),
            client_key: b"B".to_vec(),
        };
        assert_eq!(s.apply(&[rel], now).await.unwrap(), vec![true]);
        s.close().await;

        let s = SqliteStore::open(path, "srv-a").await.unwrap();
        let mut rows = s.load().await.unwrap();
        rows.sort_by_key(|r| r.address);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].expiry, 4_000, "extension is monotonic");
        assert_eq!(rows[0].state, RecordState::Leased);
        assert_eq!(rows[0].allocated_by, "srv-a");
        assert_eq!(rows[1].state, RecordState::Released);
        // A released address may be granted to another client.
        assert_eq!(
            s.apply(&[grant([10, 0, 0, 6], b"C", 5_000)], now)
                .await
                .unwrap(),
            vec![true]
        );
    }
}
