//! Reservations in the cluster's database. A change takes one
//! transaction-scoped advisory lock, so two servers changing reservations
//! at once are serialised (reservation changes are an operator's, a few a
//! second at most), then reads the row before, checks that no other client
//! holds the address, writes, and writes the audit row.

use futures_util::TryStreamExt;
use sqlx::postgres::PgPool;
use sqlx::Row;

use super::{address_of, u32_of};
use crate::store::reservation::action;
use crate::store::{AuditEntry, Identifier, Reservation, ReservationChange, StoreError};

/// The advisory lock key of reservation changes ("irdr").
const RESERVATION_LOCK: i64 = 0x6972_6472;

pub(super) async fn change(
    pool: &PgPool,
    c: &ReservationChange,
    now: u64,
) -> Result<Option<Reservation>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(RESERVATION_LOCK)
        .execute(&mut *tx)
        .await?;
    let subnet = i64::from(c.subnet_id);
    let (kind, ident) = (c.identifier.kind(), c.identifier.bytes());
    let before = sqlx::query(
        "SELECT address, hostname FROM reservations WHERE subnet_id = $1 AND identifier_type = $2 AND identifier = $3",
    )
    .bind(subnet)
    .bind(kind)
    .bind(ident)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| {
        Ok::<_, StoreError>(Reservation {
            subnet_id: c.subnet_id,
            identifier: c.identifier.clone(),
            address: address_of(r.try_get("address")?)?,
            hostname: r.try_get("hostname")?,
        })
    })
    .transpose()?;
    if before.is_none() && c.after.is_none() {
        return Ok(None);
    }
    match &c.after {
        Some(r) => {
            let address = i64::from(u32::from(r.address));
            let holder = sqlx::query(
                "SELECT identifier_type, identifier FROM reservations WHERE subnet_id = $1 AND address = $2 AND NOT (identifier_type = $3 AND identifier = $4)",
            )
            .bind(subnet)
            .bind(address)
            .bind(kind)
            .bind(ident)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(h) = holder {
                let k: String = h.try_get("identifier_type")?;
                let i: Vec<u8> = h.try_get("identifier")?;
                return Err(StoreError::ReservationConflict(format!(
                    "{} is already reserved in subnet {} for {k} {}",
                    r.address,
                    c.subnet_id,
                    crate::hex::colon(&i)
                )));
            }
            sqlx::query(
                "INSERT INTO reservations (subnet_id, identifier_type, identifier, address, hostname, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (subnet_id, identifier_type, identifier) DO UPDATE SET address = excluded.address, hostname = excluded.hostname, updated_at = excluded.updated_at",
            )
            .bind(subnet)
            .bind(kind)
            .bind(ident)
            .bind(address)
            .bind(&r.hostname)
            .bind(now as i64)
            .execute(&mut *tx)
            .await?;
        }
        None => {
            sqlx::query(
                "DELETE FROM reservations WHERE subnet_id = $1 AND identifier_type = $2 AND identifier = $3",
            )
            .bind(subnet)
            .bind(kind)
            .bind(ident)
            .execute(&mut *tx)
            .await?;
        }
    }
    let json = |r: Option<&Reservation>| r.map(|r| r.to_json().to_string());
    sqlx::query(
        "INSERT INTO reservation_audit (at, actor, action, subnet_id, identifier_type, identifier, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)",
    )
    .bind(now as i64)
    .bind(&c.actor)
    .bind(action(before.as_ref(), c.after.as_ref()))
    .bind(subnet)
    .bind(kind)
    .bind(ident)
    .bind(json(before.as_ref()))
    .bind(json(c.after.as_ref()))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(before)
}

pub(super) async fn list(pool: &PgPool) -> Result<Vec<Reservation>, StoreError> {
    let mut rows = sqlx::query(
        "SELECT subnet_id, identifier_type, identifier, address, hostname FROM reservations ORDER BY subnet_id, address",
    )
    .fetch(pool);
    let mut out = Vec::new();
    while let Some(r) = rows.try_next().await? {
        let kind: String = r.try_get("identifier_type")?;
        out.push(Reservation {
            subnet_id: u32_of("subnet_id", r.try_get("subnet_id")?)?,
            identifier: Identifier::new(&kind, r.try_get("identifier")?)
                .map_err(StoreError::BadRow)?,
            address: address_of(r.try_get("address")?)?,
            hostname: r.try_get("hostname")?,
        });
    }
    Ok(out)
}

pub(super) async fn audit(pool: &PgPool, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, at, actor, action, subnet_id, identifier_type, identifier, before::text AS before, after::text AS after FROM reservation_audit ORDER BY id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    let json = |t: Option<String>| t.and_then(|t| serde_json::from_str(&t).ok());
    rows.into_iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get("id")?,
                at: r.try_get::<i64, _>("at")?.max(0) as u64,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                subnet_id: u32_of("subnet_id", r.try_get("subnet_id")?)?,
                identifier_type: r.try_get("identifier_type")?,
                identifier: crate::hex::colon(&r.try_get::<Vec<u8>, _>("identifier")?),
                before: json(r.try_get("before")?),
                after: json(r.try_get("after")?),
            })
        })
        .collect()
}

pub(super) async fn version(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar::<_, Option<i64>>("SELECT max(id) FROM reservation_audit")
            .fetch_one(pool)
            .await?
            .unwrap_or(0),
    )
}
