//! The change feed a cluster's servers catch up from: the rows changed since
//! a time, page by page. Lease events over Redis are only a hint
//! (docs/decisions.md, 9); whenever a server may have missed one (a gap in
//! a peer's sequence, a reconnect, a start, Redis away) it reads what
//! changed from here, the truth.
//!
//! Pages are keyset-ordered by (updated_at, subnet, address), so a page
//! costs the same however far the feed has gone, and a row changed while
//! paging is either read in this pass or in the next one.

use super::{record_of, PgStore, COLUMNS};
use crate::store::{LeaseRecord, StoreError};

/// Where a page of the change feed starts: after this row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedCursor {
    pub updated_at: u64,
    pub subnet_id: u32,
    pub address: u32,
}

impl FeedCursor {
    /// Before every row changed at or after `since`.
    pub fn since(since: u64) -> Self {
        Self {
            updated_at: since,
            subnet_id: 0,
            address: 0,
        }
    }

    /// Just after `r`.
    pub fn after(r: &LeaseRecord) -> Self {
        Self {
            updated_at: r.updated_at,
            subnet_id: r.subnet_id,
            address: u32::from(r.address),
        }
    }
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PgStore {
    /// Up to `limit` rows after `from` in feed order. `from` itself is
    /// included when it is a [`FeedCursor::since`] (address 0 is never a
    /// lease), excluded when it is a row read before.
    pub async fn changed_after(
        &self,
        from: FeedCursor,
        limit: u32,
    ) -> Result<Vec<LeaseRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM leases
             WHERE (updated_at, subnet_id, address) > ($1, $2, $3)
             ORDER BY updated_at, subnet_id, address LIMIT $4"
        );
        // A `since` cursor starts just below the first row of its second:
        // (since, 0, 0) is below every real row of that second, but the
        // comparison is strict, so step back to (since - 1, MAX, MAX).
        let (t, s, a) = if from.subnet_id == 0 && from.address == 0 {
            (big(from.updated_at) - 1, i64::MAX, i64::MAX)
        } else {
            (
                big(from.updated_at),
                i64::from(from.subnet_id),
                i64::from(from.address),
            )
        };
        sqlx::query(&sql)
            .bind(t)
            .bind(s)
            .bind(a)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record_of)
            .collect()
    }
}
