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

use super::{
    batch, ExtendRow, LeaseRecord, LeaseStore, LeaseWrite, RecordState, StoreError, WriteOutcome,
};

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
            .busy_timeout(Duration::from_secs(5))
            // Checkpoint the WAL less often (every ~40 MiB instead of 4):
            // a checkpoint copies pages and syncs the database file, and
            // doing it ten times less often leaves more of the commit path
            // to lease writes.
            .pragma("wal_autocheckpoint", "10000");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // No ping before each use: the committer takes the connection once
            // per batch, and the ping was one more round trip to SQLite's
            // thread before every commit.
            .test_before_acquire(false)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open { url, source })?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(Self {
            pool,
            server_id: server_id.to_string(),
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
        let mut out: Vec<WriteOutcome> = vec![None; writes.len()];
        let mut tx = self.pool.begin().await?;
        let now_i = now as i64;
        let rows = batch::coalesce_extends(writes);
        let mut extended = std::collections::HashSet::new();
        for chunk in rows.chunks(EXTEND_ROWS) {
            extended.extend(self.extend_rows(&mut tx, chunk, now_i).await?);
        }
        for (i, w) in writes.iter().enumerate() {
            if let LeaseWrite::Extend {
                subnet_id,
                address,
                version,
                ..
            } = w
            {
                if extended.contains(&(i64::from(*subnet_id), address.to_string())) {
                    out[i] = Some(*version);
                }
            }
        }
        for (i, w) in writes.iter().enumerate() {
            let (res, version) = match w {
                LeaseWrite::Grant { .. } | LeaseWrite::Extend { .. } => continue,
                LeaseWrite::Release {
                    subnet_id,
                    address,
                    client_key,
                    version,
                } => (
                    sqlx::query(
                        "UPDATE leases SET state = 'released', expiry = ?4, updated_at = ?4, version = version + 1
                         WHERE subnet_id = ?1 AND address = ?2 AND client_key = ?3 AND state = 'leased' AND version = ?5",
                    )
                    .bind(i64::from(*subnet_id))
                    .bind(address.to_string())
                    .bind(client_key.as_slice())
                    .bind(now_i)
                    .bind(i64::from(*version))
                    .execute(&mut *tx)
                    .await?,
                    *version,
                ),
                LeaseWrite::Decline {
                    subnet_id,
                    address,
                    client_key,
                    until,
                    version,
                } => (
                    sqlx::query(
                        "UPDATE leases SET state = 'declined', expiry = ?4, updated_at = ?5, version = version + 1
                         WHERE subnet_id = ?1 AND address = ?2 AND client_key = ?3 AND state = 'leased' AND version = ?6",
                    )
                    .bind(i64::from(*subnet_id))
                    .bind(address.to_string())
                    .bind(client_key.as_slice())
                    .bind(*until as i64)
                    .bind(now_i)
                    .bind(i64::from(*version))
                    .execute(&mut *tx)
                    .await?,
                    *version,
                ),
                LeaseWrite::Expire {
                    subnet_id,
                    address,
                    client_key,
                    version,
                } => (
                    sqlx::query(
                        "UPDATE leases SET state = 'expired', updated_at = ?4, version = version + 1
                         WHERE subnet_id = ?1 AND address = ?2 AND client_key = ?3
                           AND state IN ('leased', 'declined') AND version = ?5",
                    )
                    .bind(i64::from(*subnet_id))
                    .bind(address.to_string())
                    .bind(client_key.as_slice())
                    .bind(now_i)
                    .bind(i64::from(*version))
                    .execute(&mut *tx)
                    .await?,
                    *version,
                ),
            };
            if res.rows_affected() > 0 {
                out[i] = Some(version.wrapping_add(1));
            }
        }
        let grants = batch::grants(writes);
        for chunk in grants.chunks(GRANT_ROWS) {
            self.grant_rows(&mut tx, writes, chunk, now_i, &mut out)
                .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// Rows per multi-row statement: one statement (one trip to SQLite's
/// thread) for many leases is what makes a batch cheap; the sizes keep the
/// bound parameters far below SQLite's limit.
const GRANT_ROWS: usize = 128;
const EXTEND_ROWS: usize = 256;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Sqlite>;

impl SqliteStore {
    /// Grants as one upsert; RETURNING names the rows that took effect (a
    /// row another client still holds is left alone and not returned) with
    /// their new version.
    async fn grant_rows(
        &self,
        tx: &mut Tx<'_>,
        writes: &[LeaseWrite],
        idx: &[usize],
        now: i64,
        out: &mut [WriteOutcome],
    ) -> Result<(), StoreError> {
        let mut sql = String::from(
            "INSERT INTO leases (subnet_id, address, client_key, hw_address, state, expiry, allocated_by, updated_at, version) VALUES ",
        );
        for n in 0..idx.len() {
            sql.push_str(if n == 0 {
                "(?, ?, ?, ?, 'leased', ?, ?, ?, 1)"
            } else {
                ", (?, ?, ?, ?, 'leased', ?, ?, ?, 1)"
            });
        }
        sql.push_str(
            " ON CONFLICT (subnet_id, address) DO UPDATE SET
                client_key = excluded.client_key, hw_address = excluded.hw_address,
                state = 'leased', expiry = MAX(excluded.expiry, CASE WHEN leases.client_key = excluded.client_key AND leases.state = 'leased' THEN leases.expiry ELSE 0 END),
                allocated_by = excluded.allocated_by, updated_at = excluded.updated_at,
                version = leases.version + 1
              WHERE leases.client_key = excluded.client_key
                 OR leases.state <> 'leased' OR leases.expiry < excluded.updated_at
              RETURNING subnet_id, address, client_key, version",
        );
        let mut q = sqlx::query(&sql);
        for &i in idx {
            if let LeaseWrite::Grant {
                subnet_id,
                address,
                client_key,
                hw_address,
                expiry,
            } = &writes[i]
            {
                q = q
                    .bind(i64::from(*subnet_id))
                    .bind(address.to_string())
                    .bind(client_key.as_slice())
                    .bind(hw_address.map(|h| h.to_vec()))
                    .bind(*expiry as i64)
                    .bind(&self.server_id)
                    .bind(now);
            }
        }
        let rows = q.fetch_all(&mut **tx).await?;
        let mut done = std::collections::HashMap::with_capacity(rows.len());
        for r in rows {
            done.insert(
                (
                    r.try_get::<i64, _>(0)?,
                    r.try_get::<String, _>(1)?,
                    r.try_get::<Vec<u8>, _>(2)?,
                ),
                r.try_get::<i64, _>(3)?,
            );
        }
        for &i in idx {
            if let LeaseWrite::Grant {
                subnet_id,
                address,
                client_key,
                ..
            } = &writes[i]
            {
                out[i] = done
                    .get(&(
                        i64::from(*subnet_id),
                        address.to_string(),
                        client_key.clone(),
                    ))
                    .and_then(|v| u32::try_from(*v).ok());
            }
        }
        Ok(())
    }

    /// Renewal extensions as one UPDATE ... FROM a VALUES list; expiry only
    /// grows, and only the client's own live lease of the same row version
    /// is touched. Returns the (subnet, address) of the rows updated.
    async fn extend_rows(
        &self,
        tx: &mut Tx<'_>,
        rows: &[ExtendRow<'_>],
        now: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let mut sql =
            String::from("WITH v(subnet_id, address, client_key, version, expiry) AS (VALUES ");
        for n in 0..rows.len() {
            sql.push_str(if n == 0 {
                "(?, ?, ?, ?, ?)"
            } else {
                ", (?, ?, ?, ?, ?)"
            });
        }
        sql.push_str(
            ") UPDATE leases SET expiry = MAX(leases.expiry, v.expiry), updated_at = ?
               FROM v WHERE leases.subnet_id = v.subnet_id AND leases.address = v.address
                 AND leases.client_key = v.client_key AND leases.state = 'leased'
                 AND leases.version = v.version
               RETURNING leases.subnet_id, leases.address",
        );
        let mut q = sqlx::query(&sql);
        for r in rows {
            q = q
                .bind(i64::from(r.subnet_id))
                .bind(r.address.to_string())
                .bind(r.client_key)
                .bind(i64::from(r.version))
                .bind(r.expiry as i64);
        }
        let out = q.bind(now).fetch_all(&mut **tx).await?;
        out.into_iter()
            .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?)))
            .collect()
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
}
