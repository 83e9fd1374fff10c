//! The embedded lease store: one SQLite file.
//!
//! WAL journal with `synchronous = FULL`, so a committed batch survives a
//! `kill -9` and a power cut; that commit is what a DHCPACK waits for.
//! sqlx creates and migrates the file and reads it; every write goes
//! through the [`writer`] thread, one transaction per batch.

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

use super::{LeaseRecord, LeaseStore, LeaseWrite, RecordState, StoreError, WriteOutcome};
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

    async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which writes took effect.
    fn applied(r: Vec<WriteOutcome>) -> Vec<bool> {
        r.iter().map(Option::is_some).collect()
    }

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
        let r = applied(
            s.apply(
                &[
                    grant([10, 0, 0, 5], b"A", 2_000),
                    grant([10, 0, 0, 6], b"B", 2_000),
                ],
                now,
            )
            .await
            .unwrap(),
        );
        assert_eq!(r, vec![true, true]);
        // B may not take A's live lease; A may re-grant its own.
        let r = applied(
            s.apply(
                &[
                    grant([10, 0, 0, 5], b"B", 3_000),
                    grant([10, 0, 0, 5], b"A", 2_500),
                ],
                now,
            )
            .await
            .unwrap(),
        );
        assert_eq!(r, vec![false, true]);
        let ext = |e| LeaseWrite::Extend {
            subnet_id: 1,
            address: Ipv4Addr::new(10, 0, 0, 5),
            client_key: b"A".to_vec(),
            expiry: e,
            version: 2,
        };
        assert_eq!(
            applied(s.apply(&[ext(4_000), ext(3_000)], now).await.unwrap()),
            vec![true, true]
        );
        let rel = LeaseWrite::Release {
            subnet_id: 1,
            address: Ipv4Addr::new(10, 0, 0, 6),
            client_key: b"B".to_vec(),
            version: 1,
        };
        assert_eq!(
            s.apply(std::slice::from_ref(&rel), now).await.unwrap(),
            vec![Some(2)]
        );
        assert_eq!(
            s.apply(&[rel], now).await.unwrap(),
            vec![None],
            "a replayed release finds the row moved on"
        );
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
            vec![Some(3)]
        );
    }

    /// One batch: a release, then a grant of the released address to another
    /// client, and many renewals: the grant takes effect (per-row changes go
    /// before grants), and the latest renewal wins.
    #[tokio::test]
    async fn batch_order_and_multi_row_statements() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.sqlite3");
        let s = SqliteStore::open(path.to_str().unwrap(), "srv")
            .await
            .unwrap();
        let now = 1_000;
        let mut first: Vec<LeaseWrite> = (0..300u32)
            .map(|i| {
                grant(
                    [10, 1, (i / 256) as u8, (i % 256) as u8],
                    &i.to_be_bytes(),
                    2_000,
                )
            })
            .collect();
        first.push(grant([10, 0, 0, 9], b"A", 2_000));
        assert!(
            s.apply(&first, now)
                .await
                .unwrap()
                .iter()
                .all(Option::is_some),
            "multi-row grants all applied"
        );

        let mut batch = vec![LeaseWrite::Grant {
            subnet_id: 1,
            address: Ipv4Addr::new(10, 0, 0, 9),
            client_key: b"B".to_vec(),
            hw_address: None,
            expiry: 3_000,
        }];
        batch.push(LeaseWrite::Release {
            subnet_id: 1,
            address: Ipv4Addr::new(10, 0, 0, 9),
            client_key: b"A".to_vec(),
            version: 1,
        });
        for (i, e) in [(7u32, 5_000u64), (7, 6_000), (7, 5_500), (8, 4_000)] {
            batch.push(LeaseWrite::Extend {
                subnet_id: 1,
                address: Ipv4Addr::new(10, 1, 0, i as u8),
                client_key: i.to_be_bytes().to_vec(),
                expiry: e,
                version: 1,
            });
        }
        batch.push(LeaseWrite::Extend {
            subnet_id: 1,
            address: Ipv4Addr::new(10, 1, 0, 9),
            client_key: b"not the owner".to_vec(),
            expiry: 9_000,
            version: 1,
        });
        let r = applied(s.apply(&batch, now).await.unwrap());
        assert_eq!(r, vec![true, true, true, true, true, true, false]);
        let rows = s.load().await.unwrap();
        let get = |a: Ipv4Addr| rows.iter().find(|r| r.address == a).unwrap().clone();
        let nine = get(Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(
            (nine.client_key.as_slice(), nine.state),
            (&b"B"[..], RecordState::Leased)
        );
        assert_eq!(get(Ipv4Addr::new(10, 1, 0, 7)).expiry, 6_000);
        assert_eq!(get(Ipv4Addr::new(10, 1, 0, 8)).expiry, 4_000);
        assert_eq!(get(Ipv4Addr::new(10, 1, 0, 9)).expiry, 2_000);
    }

    /// Forward-only writes: a release, decline, expiry or extension decided
    /// on an older version of a row does nothing once the address was
    /// granted again (a retried batch replayed after a newer grant).
    #[tokio::test]
    async fn stale_writes_never_touch_a_newer_grant() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.sqlite3");
        let s = SqliteStore::open(path.to_str().unwrap(), "srv")
            .await
            .unwrap();
        let a = Ipv4Addr::new(10, 0, 0, 7);
        assert_eq!(
            s.apply(&[grant([10, 0, 0, 7], b"A", 2_000)], 1_000)
                .await
                .unwrap(),
            vec![Some(1)]
        );
        // A re-grant of the same client's lease: version 2, expiry never
        // moves back.
        assert_eq!(
            s.apply(&[grant([10, 0, 0, 7], b"A", 1_500)], 1_000)
                .await
                .unwrap(),
            vec![Some(2)]
        );
        let stale = [
            LeaseWrite::Release {
                subnet_id: 1,
                address: a,
                client_key: b"A".to_vec(),
                version: 1,
            },
            LeaseWrite::Decline {
                subnet_id: 1,
                address: a,
                client_key: b"A".to_vec(),
                until: 9_000,
                version: 1,
            },
            LeaseWrite::Expire {
                subnet_id: 1,
                address: a,
                client_key: b"A".to_vec(),
                version: 1,
            },
            LeaseWrite::Extend {
                subnet_id: 1,
                address: a,
                client_key: b"A".to_vec(),
                expiry: 9_999,
                version: 1,
            },
        ];
        assert_eq!(s.apply(&stale, 1_100).await.unwrap(), vec![None; 4]);
        let rows = s.load().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, RecordState::Leased);
        assert_eq!(rows[0].expiry, 2_000, "the re-grant kept the later expiry");
        assert_eq!(rows[0].version, 2);
    }

    /// A decline stores the end of the quarantine as the expiry, and an
    /// expiry of the declined row frees it.
    #[tokio::test]
    async fn decline_stores_the_quarantine_and_expire_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.sqlite3");
        let s = SqliteStore::open(path.to_str().unwrap(), "srv")
            .await
            .unwrap();
        let a = Ipv4Addr::new(10, 0, 0, 8);
        s.apply(&[grant([10, 0, 0, 8], b"A", 2_000)], 1_000)
            .await
            .unwrap();
        let decline = LeaseWrite::Decline {
            subnet_id: 1,
            address: a,
            client_key: b"A".to_vec(),
            until: 7_777,
            version: 1,
        };
        assert_eq!(s.apply(&[decline], 1_100).await.unwrap(), vec![Some(2)]);
        let row = s.load().await.unwrap().remove(0);
        assert_eq!(
            (row.state, row.expiry, row.updated_at),
            (RecordState::Declined, 7_777, 1_100)
        );
        let expire = LeaseWrite::Expire {
            subnet_id: 1,
            address: a,
            client_key: b"A".to_vec(),
            version: 2,
        };
        assert_eq!(s.apply(&[expire], 7_800).await.unwrap(), vec![Some(3)]);
        let row = s.load().await.unwrap().remove(0);
        assert_eq!((row.state, row.version), (RecordState::Expired, 3));
        s.close().await;
        assert!(
            matches!(
                s.apply(&[grant([10, 0, 0, 9], b"B", 9_000)], 7_900).await,
                Err(StoreError::WriterStopped)
            ),
            "a closed store refuses writes"
        );
    }
}
