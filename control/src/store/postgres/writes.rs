//! A batch of lease writes as one PostgreSQL transaction.
//!
//! Multi-row statements take their rows as arrays (`UNNEST`), so their
//! text, and the plan sqlx prepares for it, is the same whatever the batch
//! size; a batch is a few round trips (BEGIN, extensions, one per release,
//! decline or expiry, one per grant round, COMMIT), not one per lease.
//!
//! Concurrency between servers: an upsert of an address another server is
//! granting waits for that transaction, then re-checks the takeover guard
//! against the committed row (ON CONFLICT ... DO UPDATE ... WHERE), so the
//! second grant is refused, not applied over the first.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row, Transaction};

use super::{address_of, blocks, u32_of};
use crate::store::batch::{self, RowChangeKind};
use crate::store::{ExtendRow, Fence, LeaseWrite, StoreError, WriteOutcome};

/// Applies `writes` in one transaction, following [`batch`]'s rules.
pub(super) async fn apply(
    pool: &PgPool,
    server_id: &str,
    writes: &[LeaseWrite],
    now: u64,
) -> Result<Vec<WriteOutcome>, StoreError> {
    let mut out: Vec<WriteOutcome> = vec![None; writes.len()];
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let mut tx = pool.begin().await?;
    let extended = extend_rows(&mut tx, &batch::coalesce_extends(writes), now).await?;
    batch::extension_outcomes(writes, &extended, &mut out);
    for (i, w) in writes.iter().enumerate() {
        let Some(c) = batch::row_change(w) else {
            continue;
        };
        let mut q = sqlx::query(row_change_sql(c.kind))
            .bind(i64::from(c.subnet_id))
            .bind(i64::from(u32::from(c.address)))
            .bind(c.client_key)
            .bind(now)
            .bind(i64::from(c.version));
        if let RowChangeKind::Decline { until } = c.kind {
            q = q.bind(i64::try_from(until).unwrap_or(i64::MAX));
        }
        if q.execute(&mut *tx).await?.rows_affected() > 0 {
            out[i] = Some(c.version.wrapping_add(1));
        }
    }
    let refused = fence_refusals(&mut tx, server_id, writes).await?;
    for (guard_secs, mut round) in batch::grant_rounds(writes) {
        round.retain(|i| !refused.contains(i));
        if round.is_empty() {
            continue;
        }
        grant_rows(
            &mut tx, server_id, writes, &round, guard_secs, now, &mut out,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// The guarded one-row UPDATE of a release, decline or expiry. Parameters:
/// $1 subnet, $2 address, $3 client, $4 now, $5 the version the change was
/// decided on, $6 (a decline's) end of quarantine.
fn row_change_sql(kind: RowChangeKind) -> &'static str {
    match kind {
        RowChangeKind::Release => {
            "UPDATE leases SET state = 'released', expiry = $4, updated_at = $4, version = version + 1
             WHERE subnet_id = $1 AND address = $2 AND client_key = $3 AND state = 'leased' AND version = $5"
        }
        RowChangeKind::Decline { .. } => {
            "UPDATE leases SET state = 'declined', expiry = $6, updated_at = $4, version = version + 1
             WHERE subnet_id = $1 AND address = $2 AND client_key = $3 AND state = 'leased' AND version = $5"
        }
        RowChangeKind::Expire => {
            "UPDATE leases SET state = 'expired', updated_at = $4, version = version + 1
             WHERE subnet_id = $1 AND address = $2 AND client_key = $3
               AND state IN ('leased', 'declined') AND version = $5"
        }
    }
}

/// Renewal extensions in one UPDATE ... FROM UNNEST: expiry only grows,
/// and only the client's own live lease of the same row version is
/// touched. Returns the (subnet, address) of the rows updated.
async fn extend_rows(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[ExtendRow<'_>],
    now: i64,
) -> Result<HashSet<(u32, Ipv4Addr)>, StoreError> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let subnets: Vec<i64> = rows.iter().map(|r| i64::from(r.subnet_id)).collect();
    let addresses: Vec<i64> = rows
        .iter()
        .map(|r| i64::from(u32::from(r.address)))
        .collect();
    let keys: Vec<&[u8]> = rows.iter().map(|r| r.client_key).collect();
    let versions: Vec<i64> = rows.iter().map(|r| i64::from(r.version)).collect();
    let expiries: Vec<i64> = rows
        .iter()
        .map(|r| i64::try_from(r.expiry).unwrap_or(i64::MAX))
        .collect();
    let updated = sqlx::query(
        "UPDATE leases AS l SET expiry = GREATEST(l.expiry, v.expiry), updated_at = $6
         FROM UNNEST($1::int8[], $2::int8[], $3::bytea[], $4::int8[], $5::int8[])
              AS v(subnet_id, address, client_key, version, expiry)
         WHERE l.subnet_id = v.subnet_id AND l.address = v.address
           AND l.client_key = v.client_key AND l.state = 'leased' AND l.version = v.version
         RETURNING l.subnet_id, l.address",
    )
    .bind(subnets)
    .bind(addresses)
    .bind(keys)
    .bind(versions)
    .bind(expiries)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    updated
        .iter()
        .map(|r| {
            Ok((
                u32_of("subnet_id", r.try_get(0)?)?,
                address_of(r.try_get(1)?)?,
            ))
        })
        .collect()
}

/// The grants (indexes into `writes`) whose block fence no longer holds:
/// the block changed hands since this server allocated from it. They are
/// not written (their outcome stays `None`: no ACK).
async fn fence_refusals(
    tx: &mut Transaction<'_, Postgres>,
    server_id: &str,
    writes: &[LeaseWrite],
) -> Result<HashSet<usize>, StoreError> {
    let fenced: Vec<(usize, Fence)> = writes
        .iter()
        .enumerate()
        .filter_map(|(i, w)| match w {
            LeaseWrite::Grant { fence: Some(f), .. } => Some((i, *f)),
            _ => None,
        })
        .collect();
    if fenced.is_empty() {
        return Ok(HashSet::new());
    }
    let fences: Vec<Fence> = fenced.iter().map(|(_, f)| *f).collect();
    let holding = blocks::fenced(tx, server_id, &fences).await?;
    Ok(fenced
        .into_iter()
        .filter(|(_, f)| !holding.contains(f))
        .map(|(i, _)| i)
        .collect())
}

/// One round of grants as one upsert; RETURNING names the rows that took
/// effect (a row another client may still hold is left alone and not
/// returned) with their new version. The takeover rule is
/// [`LeaseWrite::Grant`]'s.
async fn grant_rows(
    tx: &mut Transaction<'_, Postgres>,
    server_id: &str,
    writes: &[LeaseWrite],
    idx: &[usize],
    guard_secs: u32,
    now: i64,
    out: &mut [WriteOutcome],
) -> Result<(), StoreError> {
    // Rows in (subnet, address) order: two servers' upserts then lock
    // shared rows in the same order and cannot deadlock on each other.
    let mut idx = idx.to_vec();
    idx.sort_by_key(|&i| match &writes[i] {
        LeaseWrite::Grant {
            subnet_id, address, ..
        } => (*subnet_id, *address),
        _ => (0, Ipv4Addr::UNSPECIFIED),
    });
    let mut subnets = Vec::with_capacity(idx.len());
    let mut addresses = Vec::with_capacity(idx.len());
    let mut keys: Vec<&[u8]> = Vec::with_capacity(idx.len());
    let mut hws: Vec<Option<Vec<u8>>> = Vec::with_capacity(idx.len());
    let mut expiries = Vec::with_capacity(idx.len());
    let mut circuits: Vec<Option<&[u8]>> = Vec::with_capacity(idx.len());
    let mut remotes: Vec<Option<&[u8]>> = Vec::with_capacity(idx.len());
    for &i in &idx {
        if let LeaseWrite::Grant {
            subnet_id,
            address,
            client_key,
            hw_address,
            expiry,
            relay,
            ..
        } = &writes[i]
        {
            subnets.push(i64::from(*subnet_id));
            addresses.push(i64::from(u32::from(*address)));
            keys.push(client_key.as_slice());
            hws.push(hw_address.map(|h| h.to_vec()));
            expiries.push(i64::try_from(*expiry).unwrap_or(i64::MAX));
            circuits.push(relay.circuit_id.as_deref());
            remotes.push(relay.remote_id.as_deref());
        }
    }
    let rows = sqlx::query(
        "INSERT INTO leases AS l
            (subnet_id, address, client_key, hw_address, state, expiry, allocated_by, updated_at, version,
             circuit_id, remote_id)
         SELECT v.subnet_id, v.address, v.client_key, v.hw_address, 'leased', v.expiry, $6, $7, 1,
                v.circuit_id, v.remote_id
         FROM UNNEST($1::int8[], $2::int8[], $3::bytea[], $4::bytea[], $5::int8[], $9::bytea[], $10::bytea[])
              AS v(subnet_id, address, client_key, hw_address, expiry, circuit_id, remote_id)
         ON CONFLICT (subnet_id, address) DO UPDATE SET
            client_key = EXCLUDED.client_key, hw_address = EXCLUDED.hw_address, state = 'leased',
            circuit_id = EXCLUDED.circuit_id, remote_id = EXCLUDED.remote_id,
            expiry = GREATEST(EXCLUDED.expiry,
                CASE WHEN l.client_key = EXCLUDED.client_key AND l.state = 'leased' THEN l.expiry ELSE 0 END),
            allocated_by = EXCLUDED.allocated_by, updated_at = EXCLUDED.updated_at,
            version = l.version + 1
         WHERE (l.client_key = EXCLUDED.client_key AND l.state = 'leased')
            OR l.state IN ('released', 'expired')
            OR (l.state = 'declined' AND l.expiry < EXCLUDED.updated_at)
            OR (l.state = 'leased' AND l.expiry + $8 < EXCLUDED.updated_at)
         RETURNING subnet_id, address, client_key, version",
    )
    .bind(subnets)
    .bind(addresses)
    .bind(keys)
    .bind(hws)
    .bind(expiries)
    .bind(server_id)
    .bind(now)
    .bind(i64::from(guard_secs))
    .bind(circuits)
    .bind(remotes)
    .fetch_all(&mut **tx)
    .await?;
    let mut done: HashMap<(u32, Ipv4Addr, Vec<u8>), u32> = HashMap::with_capacity(rows.len());
    for r in rows {
        done.insert(
            (
                u32_of("subnet_id", r.try_get(0)?)?,
                address_of(r.try_get(1)?)?,
                r.try_get(2)?,
            ),
            u32_of("version", r.try_get(3)?)?,
        );
    }
    batch::grant_outcomes(writes, &idx, &done, out);
    Ok(())
}
