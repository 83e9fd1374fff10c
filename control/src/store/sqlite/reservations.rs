//! Reservations in the SQLite file: the change and its audit row in one
//! transaction on the writer thread (the file's one writer), reads
//! through the sqlx pool.

use std::net::Ipv4Addr;
use std::str::FromStr;

use futures_util::TryStreamExt;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use sqlx::sqlite::SqlitePool;
use sqlx::Row;

use crate::store::reservation::action;
use crate::store::{AuditEntry, Identifier, Reservation, ReservationChange, StoreError};

/// Writes `c` and its audit row; returns the reservation it replaced.
pub(super) fn change(
    conn: &mut Connection,
    c: &ReservationChange,
    now: u64,
) -> Result<Option<Reservation>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::Write)?;
    let subnet = i64::from(c.subnet_id);
    let (kind, ident) = (c.identifier.kind(), c.identifier.bytes());
    let before = tx
        .query_row(
            "SELECT address, hostname FROM reservations WHERE subnet_id = ?1 AND identifier_type = ?2 AND identifier = ?3",
            rusqlite::params![subnet, kind, ident],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
        )
        .optional()
        .map_err(StoreError::Write)?
        .map(|(a, hostname)| {
            Ok::<_, StoreError>(Reservation {
                subnet_id: c.subnet_id,
                identifier: c.identifier.clone(),
                address: Ipv4Addr::from_str(&a)
                    .map_err(|_| StoreError::BadRow(format!("reservation address {a:?}")))?,
                hostname,
            })
        })
        .transpose()?;
    if before.is_none() && c.after.is_none() {
        return Ok(None);
    }
    match &c.after {
        Some(r) => {
            let holder = tx
                .query_row(
                    "SELECT identifier_type, identifier FROM reservations WHERE subnet_id = ?1 AND address = ?2 AND NOT (identifier_type = ?3 AND identifier = ?4)",
                    rusqlite::params![subnet, r.address.to_string(), kind, ident],
                    |row| Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?)),
                )
                .optional()
                .map_err(StoreError::Write)?;
            if let Some((k, i)) = holder {
                return Err(StoreError::ReservationConflict(format!(
                    "{} is already reserved in subnet {} for {k} {}",
                    r.address,
                    c.subnet_id,
                    crate::hex::colon(&i)
                )));
            }
            tx.execute(
                "INSERT INTO reservations (subnet_id, identifier_type, identifier, address, hostname, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (subnet_id, identifier_type, identifier) DO UPDATE SET address = excluded.address, hostname = excluded.hostname, updated_at = excluded.updated_at",
                rusqlite::params![subnet, kind, ident, r.address.to_string(), r.hostname, now as i64],
            )
            .map_err(StoreError::Write)?;
        }
        None => {
            tx.execute(
                "DELETE FROM reservations WHERE subnet_id = ?1 AND identifier_type = ?2 AND identifier = ?3",
                rusqlite::params![subnet, kind, ident],
            )
            .map_err(StoreError::Write)?;
        }
    }
    let json = |r: Option<&Reservation>| r.map(|r| r.to_json().to_string());
    tx.execute(
        "INSERT INTO reservation_audit (at, actor, action, subnet_id, identifier_type, identifier, before, after) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        rusqlite::params![
            now as i64,
            c.actor,
            action(before.as_ref(), c.after.as_ref()),
            subnet,
            kind,
            ident,
            json(before.as_ref()),
            json(c.after.as_ref())
        ],
    )
    .map_err(StoreError::Write)?;
    tx.commit().map_err(StoreError::Write)?;
    Ok(before)
}

/// Every reservation in the file.
pub(super) async fn list(pool: &SqlitePool) -> Result<Vec<Reservation>, StoreError> {
    let mut rows = sqlx::query(
        "SELECT subnet_id, identifier_type, identifier, address, hostname FROM reservations ORDER BY subnet_id, address",
    )
    .fetch(pool);
    let mut out = Vec::new();
    while let Some(r) = rows.try_next().await? {
        let kind: String = r.try_get("identifier_type")?;
        let address: String = r.try_get("address")?;
        out.push(Reservation {
            subnet_id: r.try_get::<i64, _>("subnet_id")? as u32,
            identifier: Identifier::new(&kind, r.try_get("identifier")?)
                .map_err(StoreError::BadRow)?,
            address: Ipv4Addr::from_str(&address)
                .map_err(|_| StoreError::BadRow(format!("reservation address {address:?}")))?,
            hostname: r.try_get("hostname")?,
        });
    }
    Ok(out)
}

/// The newest `limit` audit rows, newest first.
pub(super) async fn audit(pool: &SqlitePool, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, at, actor, action, subnet_id, identifier_type, identifier, before, after FROM reservation_audit ORDER BY id DESC LIMIT ?1",
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
                subnet_id: r.try_get::<i64, _>("subnet_id")? as u32,
                identifier_type: r.try_get("identifier_type")?,
                identifier: crate::hex::colon(&r.try_get::<Vec<u8>, _>("identifier")?),
                before: json(r.try_get("before")?),
                after: json(r.try_get("after")?),
            })
        })
        .collect()
}

/// The newest audit row's id.
pub(super) async fn version(pool: &SqlitePool) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar::<_, Option<i64>>("SELECT max(id) FROM reservation_audit")
            .fetch_one(pool)
            .await?
            .unwrap_or(0),
    )
}
