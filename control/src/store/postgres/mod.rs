//! The cluster's lease store: PostgreSQL through sqlx.
//!
//! Every server of a cluster reads and writes the same rows. The batch
//! rules are [`batch`](super::batch)'s; what keeps two servers from giving
//! one address to two clients is in the SQL ([`writes`]): the primary key
//! (subnet, address), the takeover guard of [`LeaseWrite::Grant`], and the
//! version checks of the forward-only writes. Selected by a `postgres://`
//! storage URL; SQLite stays the embedded default.

mod blocks;
mod changes;
mod reservations;
mod servers;
mod writes;

pub use blocks::{BlockRow, BLOCK_LOCKS};
pub use changes::FeedCursor;
pub use servers::ServerRow;

use std::net::Ipv4Addr;
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::Row;

use super::{
    AuditEntry, LeaseRecord, LeaseStore, LeaseWrite, RecordState, Reservation, ReservationChange,
    StoreError, WriteOutcome,
};

/// Connections per server: the committer holds one per batch, loads and
/// queries take the others. Kept small: every server of a cluster opens
/// this many.
const CONNECTIONS: u32 = 4;

/// A lease store in a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    server_id: String,
}

impl PgStore {
    /// Connects to `url` and runs the migrations under
    /// `migrations/postgres` (sqlx serialises concurrent migrators with an
    /// advisory lock, so servers may start together).
    pub async fn open(url: &str, server_id: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|source| StoreError::Open {
                url: redacted(url),
                source,
            })?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Self {
            pool,
            server_id: server_id.to_string(),
        })
    }
}

/// `url` without its password, for messages.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

/// An IPv4 address from its integer column.
fn address_of(v: i64) -> Result<Ipv4Addr, StoreError> {
    u32::try_from(v)
        .map(Ipv4Addr::from)
        .map_err(|_| StoreError::BadRow(format!("address {v}")))
}

/// A 32-bit column value (subnet id, version) stored as BIGINT.
fn u32_of(what: &str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::BadRow(format!("{what} {v} out of range")))
}

impl LeaseStore for PgStore {
    async fn load_each<F>(&self, mut each: F) -> Result<u64, StoreError>
    where
        F: FnMut(LeaseRecord) + Send,
    {
        let sql = format!("SELECT {COLUMNS} FROM leases");
        let mut rows = sqlx::query(&sql).fetch(&self.pool);
        let mut n = 0;
        while let Some(r) = rows.try_next().await? {
            each(record_of(&r)?);
            n += 1;
        }
        Ok(n)
    }

    async fn apply(
        &self,
        writes: &[LeaseWrite],
        now: u64,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        writes::apply(&self.pool, &self.server_id, writes, now).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn reservations(&self) -> Result<Vec<Reservation>, StoreError> {
        reservations::list(&self.pool).await
    }

    async fn relay_addresses(
        &self,
        ids: &super::RelayIds,
        now: u64,
        limit: u32,
    ) -> Result<Vec<Ipv4Addr>, StoreError> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT address FROM leases WHERE state = 'leased' AND expiry > $1
               AND ($2::bytea IS NULL OR circuit_id = $2) AND ($3::bytea IS NULL OR remote_id = $3)
             ORDER BY address LIMIT $4",
        )
        .bind(i64::try_from(now).unwrap_or(i64::MAX))
        .bind(ids.circuit_id.as_deref())
        .bind(ids.remote_id.as_deref())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(address_of).collect()
    }

    async fn change_reservation(
        &self,
        change: &ReservationChange,
        now: u64,
    ) -> Result<Option<Reservation>, StoreError> {
        reservations::change(&self.pool, change, now).await
    }

    async fn reservation_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        reservations::audit(&self.pool, limit).await
    }

    async fn reservations_version(&self) -> Result<i64, StoreError> {
        reservations::version(&self.pool).await
    }

    async fn get(
        &self,
        subnet_id: u32,
        address: Ipv4Addr,
    ) -> Result<Option<LeaseRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM leases WHERE subnet_id = $1 AND address = $2"
        ))
        .bind(i64::from(subnet_id))
        .bind(i64::from(u32::from(address)))
        .fetch_optional(&self.pool)
        .await?
        .map(|r| record_of(&r))
        .transpose()
    }
}

/// The columns [`record_of`] reads.
const COLUMNS: &str =
    "subnet_id, address, client_key, hw_address, state, expiry, allocated_by, updated_at, version";

/// A lease record from a row of [`COLUMNS`].
fn record_of(r: &PgRow) -> Result<LeaseRecord, StoreError> {
    let state: String = r.try_get("state")?;
    let hw: Option<Vec<u8>> = r.try_get("hw_address")?;
    Ok(LeaseRecord {
        subnet_id: u32_of("subnet_id", r.try_get("subnet_id")?)?,
        address: address_of(r.try_get("address")?)?,
        client_key: r.try_get("client_key")?,
        hw_address: hw.and_then(|b| <[u8; 6]>::try_from(b.as_slice()).ok()),
        state: RecordState::parse(&state)
            .ok_or_else(|| StoreError::BadRow(format!("state {state:?}")))?,
        expiry: r.try_get::<i64, _>("expiry")?.max(0) as u64,
        allocated_by: r.try_get("allocated_by")?,
        updated_at: r.try_get::<i64, _>("updated_at")?.max(0) as u64,
        version: u32_of("version", r.try_get("version")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn messages_never_show_the_password() {
        assert_eq!(
            redacted("postgres://irondhcp:s3cret@db:5432/leases"),
            "postgres://irondhcp:***@db:5432/leases"
        );
        assert_eq!(
            redacted("postgres://irondhcp@db/leases"),
            "postgres://irondhcp@db/leases"
        );
        assert_eq!(redacted("not a url"), "not a url");
    }
}
