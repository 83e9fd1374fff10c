//! The cluster's server registry: who is in the cluster, since when (boot
//! epoch), and alive as of when (heartbeat). Address blocks and lease
//! events carry the boot epoch, so a peer can tell a restarted server from
//! one that was paused; a stopped heartbeat is how the others learn a
//! server is gone.

use sqlx::Row;

use super::{u32_of, PgStore};
use crate::store::StoreError;

/// One server as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRow {
    pub id: String,
    pub boot_epoch: u32,
    /// Seconds since the UNIX epoch.
    pub heartbeat_at: u64,
    pub version: String,
    pub address: String,
}

impl PgStore {
    /// Registers this server (a new boot: its epoch goes up by one) and
    /// returns the boot epoch.
    pub async fn register(&self, address: &str, now: u64) -> Result<u32, StoreError> {
        let row = sqlx::query(
            "INSERT INTO servers (id, boot_epoch, heartbeat_at, version, address)
             VALUES ($1, 1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET boot_epoch = servers.boot_epoch + 1,
                 heartbeat_at = EXCLUDED.heartbeat_at, version = EXCLUDED.version,
                 address = EXCLUDED.address
             RETURNING boot_epoch",
        )
        .bind(&self.server_id)
        .bind(i64::try_from(now).unwrap_or(i64::MAX))
        .bind(env!("CARGO_PKG_VERSION"))
        .bind(address)
        .fetch_one(&self.pool)
        .await?;
        u32_of("boot_epoch", row.try_get(0)?)
    }

    /// Writes this server's heartbeat, for the boot `epoch` only: a server
    /// that was replaced by a newer boot of the same id (a second process
    /// started with the same configuration) does not keep the row alive.
    /// Returns false when the row belongs to a newer boot.
    pub async fn heartbeat(&self, epoch: u32, now: u64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE servers SET heartbeat_at = GREATEST(heartbeat_at, $3)
             WHERE id = $1 AND boot_epoch = $2",
        )
        .bind(&self.server_id)
        .bind(i64::from(epoch))
        .bind(i64::try_from(now).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every registered server, by id.
    pub async fn servers(&self) -> Result<Vec<ServerRow>, StoreError> {
        sqlx::query(
            "SELECT id, boot_epoch, heartbeat_at, version, address FROM servers ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| {
            Ok(ServerRow {
                id: r.try_get(0)?,
                boot_epoch: u32_of("boot_epoch", r.try_get(1)?)?,
                heartbeat_at: r.try_get::<i64, _>(2)?.max(0) as u64,
                version: r.try_get(3)?,
                address: r.try_get(4)?,
            })
        })
        .collect()
    }
}
