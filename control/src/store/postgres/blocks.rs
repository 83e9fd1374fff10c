//! Address blocks in PostgreSQL: who owns which part of each pool.
//!
//! A block changes hands (claimed, given back, released from a server
//! whose heartbeat stopped) only in a transaction that holds
//! `pg_advisory_xact_lock(BLOCK_LOCKS, id)`, exclusively, and bumps the
//! block's epoch. An allocation commit holds the same lock shared
//! ([`fenced`]) and checks owner and epoch, so a block never changes hands
//! while a commit into it is in flight, and a server that was paused or cut
//! off cannot allocate from a block it lost. Transaction-scoped locks only:
//! session locks break behind a connection pooler.

use std::collections::HashSet;

use sqlx::{Postgres, Row, Transaction};

use super::{u32_of, PgStore};
use crate::store::{Fence, StoreError};

/// The advisory-lock class of blocks (the first key of the two-key form).
pub const BLOCK_LOCKS: i32 = 0x1d4c_b10c;

/// One block as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRow {
    pub id: i32,
    pub subnet_id: u32,
    pub first: u32,
    pub last: u32,
    pub owner: Option<String>,
    pub owner_epoch: u32,
    pub epoch: u32,
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PgStore {
    /// Creates the blocks of `layout` (subnet, first, last) that do not
    /// exist yet; every server of a cluster computes the same layout.
    pub async fn ensure_blocks(&self, layout: &[(u32, u32, u32)]) -> Result<(), StoreError> {
        let subnets: Vec<i64> = layout.iter().map(|b| i64::from(b.0)).collect();
        let firsts: Vec<i64> = layout.iter().map(|b| i64::from(b.1)).collect();
        let lasts: Vec<i64> = layout.iter().map(|b| i64::from(b.2)).collect();
        sqlx::query(
            "INSERT INTO blocks (subnet_id, first_addr, last_addr)
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::int8[])
             ON CONFLICT DO NOTHING",
        )
        .bind(subnets)
        .bind(firsts)
        .bind(lasts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every block, by id.
    pub async fn blocks(&self) -> Result<Vec<BlockRow>, StoreError> {
        sqlx::query(
            "SELECT id, subnet_id, first_addr, last_addr, owner, owner_epoch, epoch
             FROM blocks ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(BlockRow {
                id: r.try_get(0)?,
                subnet_id: u32_of("subnet_id", r.try_get(1)?)?,
                first: u32_of("first_addr", r.try_get(2)?)?,
                last: u32_of("last_addr", r.try_get(3)?)?,
                owner: r.try_get(4)?,
                owner_epoch: u32_of("owner_epoch", r.try_get(5)?)?,
                epoch: u32_of("epoch", r.try_get(6)?)?,
            })
        })
        .collect()
    }

    /// How many servers wrote a heartbeat in the last `alive` seconds.
    pub async fn live_servers(&self, now: u64, alive: u64) -> Result<u32, StoreError> {
        let r = sqlx::query("SELECT count(*) FROM servers WHERE heartbeat_at >= $1")
            .bind(big(now.saturating_sub(alive)))
            .fetch_one(&self.pool)
            .await?;
        u32_of("servers", r.try_get(0)?)
    }

    /// Frees the blocks of servers whose heartbeat is older than
    /// `release_after` seconds (or that are not registered at all). Their
    /// leases stay valid and renewable anywhere; only new allocations move.
    /// Returns how many blocks were freed.
    pub async fn release_dead_owners(
        &self,
        now: u64,
        release_after: u64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<i32> = sqlx::query(
            "SELECT b.id FROM blocks b LEFT JOIN servers s ON s.id = b.owner
             WHERE b.owner IS NOT NULL AND (s.id IS NULL OR s.heartbeat_at < $1)
             ORDER BY b.id",
        )
        .bind(big(now.saturating_sub(release_after)))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(0);
        }
        lock_exclusive(&mut tx, &ids).await?;
        // Re-checked under the locks: a server that came back in between
        // keeps its blocks.
        let done = sqlx::query(
            "UPDATE blocks b SET owner = NULL, epoch = b.epoch + 1
             WHERE b.id = ANY($1) AND b.owner IS NOT NULL AND NOT EXISTS (
                 SELECT 1 FROM servers s WHERE s.id = b.owner AND s.heartbeat_at >= $2)",
        )
        .bind(&ids)
        .bind(big(now.saturating_sub(release_after)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Claims block `id` for this server's boot `my_epoch` if it is free
    /// (or still held by an earlier boot of this server). Returns the
    /// block's new epoch, the fencing token of allocations from it.
    pub async fn claim_block(
        &self,
        id: i32,
        my_epoch: u32,
        now: u64,
    ) -> Result<Option<u32>, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_exclusive(&mut tx, &[id]).await?;
        let row = sqlx::query(
            "UPDATE blocks SET owner = $2, owner_epoch = $3, epoch = epoch + 1, claimed_at = $4
             WHERE id = $1 AND (owner IS NULL OR (owner = $2 AND owner_epoch <> $3))
             RETURNING epoch",
        )
        .bind(id)
        .bind(&self.server_id)
        .bind(i64::from(my_epoch))
        .bind(big(now))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(|r| u32_of("epoch", r.try_get(0)?)).transpose()
    }

    /// Gives block `id` back (this server holds more than its share).
    /// Returns whether it was this boot's to give.
    pub async fn give_back_block(&self, id: i32, my_epoch: u32) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_exclusive(&mut tx, &[id]).await?;
        let done = sqlx::query(
            "UPDATE blocks SET owner = NULL, epoch = epoch + 1
             WHERE id = $1 AND owner = $2 AND owner_epoch = $3",
        )
        .bind(id)
        .bind(&self.server_id)
        .bind(i64::from(my_epoch))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Takes the blocks' locks exclusively, in id order (every taker of
/// several block locks goes in that order, so none waits in a cycle).
async fn lock_exclusive(tx: &mut Transaction<'_, Postgres>, ids: &[i32]) -> Result<(), StoreError> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock($1, b) FROM (SELECT unnest($2::int4[]) AS b ORDER BY 1) s",
    )
    .bind(BLOCK_LOCKS)
    .bind(ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// In an allocation commit: takes the shared lock of every block `fences`
/// name (in id order) and returns the fences that still hold (the block is
/// this server's, at that epoch). Grants whose fence fails must not be
/// written.
pub(super) async fn fenced(
    tx: &mut Transaction<'_, Postgres>,
    server_id: &str,
    fences: &[Fence],
) -> Result<HashSet<Fence>, StoreError> {
    let mut ids: Vec<i32> = fences.iter().map(|f| f.block).collect();
    ids.sort_unstable();
    ids.dedup();
    sqlx::query(
        "SELECT pg_advisory_xact_lock_shared($1, b) FROM (SELECT unnest($2::int4[]) AS b ORDER BY 1) s",
    )
    .bind(BLOCK_LOCKS)
    .bind(&ids)
    .execute(&mut **tx)
    .await?;
    sqlx::query("SELECT id, epoch FROM blocks WHERE id = ANY($1) AND owner = $2")
        .bind(&ids)
        .bind(server_id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| {
            Ok(Fence {
                block: r.try_get(0)?,
                epoch: u32_of("epoch", r.try_get(1)?)?,
            })
        })
        .collect()
}
