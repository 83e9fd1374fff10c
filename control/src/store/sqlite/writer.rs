//! The embedded store's writer: one OS thread that owns the SQLite
//! connection every lease write goes through, and runs each batch whole.
//!
//! Why not sqlx for the writes: sqlx-sqlite runs each statement on its
//! connection's worker thread and hands it over and back, so one group
//! commit (BEGIN, the multi-row upsert, COMMIT) cost three or four round
//! trips between threads. At 4,000 new leases/s that was about 13,000
//! context switches a second on SQLite's threads and nearly half the
//! daemon's CPU (docs/benchmarks.md, docs/decisions.md). Here a batch is
//! one message to this thread and one answer back; the statements run
//! where the connection lives, from SQLite's prepared-statement cache.
//! Reads (the load at start) stay on sqlx: WAL lets them run beside the
//! writer.
//!
//! The batch rules (order, coalescing, forward-only guards) are
//! [`batch`](crate::store::batch)'s; this file only says them in SQL.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::oneshot;

use crate::store::batch::{self, RowChangeKind};
use crate::store::{
    ExtendRow, LeaseWrite, Reservation, ReservationChange, StoreError, WriteOutcome,
};

/// Rows per multi-row statement, at most: one statement for many leases is
/// what makes a batch cheap, and 128 rows keep the bound parameters far
/// below SQLite's limit.
const MAX_ROWS: usize = 128;
/// Distinct statements the connection keeps prepared: a multi-row
/// statement comes in one of eight sizes (powers of two up to
/// [`MAX_ROWS`]) for grants and for extensions, plus the three per-row
/// updates.
const STATEMENT_CACHE: usize = 32;

type Reply = oneshot::Sender<Result<Vec<WriteOutcome>, StoreError>>;

enum Job {
    Apply {
        writes: Vec<LeaseWrite>,
        now: u64,
        done: Reply,
    },
    Reserve {
        change: ReservationChange,
        now: u64,
        done: oneshot::Sender<Result<Option<Reservation>, StoreError>>,
    },
    Close(oneshot::Sender<()>),
}

/// The handle to the writer thread.
pub(super) struct Writer {
    jobs: Sender<Job>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Opens the writing connection to the (already migrated) database at
    /// `path` and starts its thread. `server_id` is written as
    /// `allocated_by` on every grant.
    pub fn open(path: &str, server_id: &str) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::OpenWriter {
            path: path.to_string(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        // WAL is a property of the file (set when the store was created);
        // synchronous = FULL is per connection: a commit's WAL frames are
        // on disk before it returns, and with them the lease an ACK
        // promises. A checkpoint every ~40 MiB instead of 4: it copies
        // pages and syncs the database file, and doing it ten times less
        // often leaves more of the commit path to lease writes.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)
            .map_err(open_err)?;
        // A multi-row upsert inside a transaction keeps a statement journal
        // (to undo just that statement); on disk that was a temporary file
        // created, written and unlinked at every commit.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(open_err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let (jobs, rx) = crossbeam_channel::unbounded();
        let server_id = server_id.to_string();
        let thread = std::thread::Builder::new()
            .name("irondhcp-sqlite".into())
            .spawn(move || run(conn, &server_id, rx))
            .map_err(StoreError::WriterThread)?;
        Ok(Self {
            jobs,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Applies `writes` in one transaction on the writer thread.
    pub async fn apply(
        &self,
        writes: &[LeaseWrite],
        now: u64,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job::Apply {
                writes: writes.to_vec(),
                now,
                done,
            })
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Writes a reservation change with its audit row on the writer
    /// thread (the file's one writer, so it never contends with a batch).
    pub async fn reserve(
        &self,
        change: &ReservationChange,
        now: u64,
    ) -> Result<Option<Reservation>, StoreError> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job::Reserve {
                change: change.clone(),
                now,
                done,
            })
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Finishes the batch in hand, closes the connection and ends the
    /// thread; later writes fail with [`StoreError::WriterStopped`].
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Job::Close(done)).is_ok() {
            let _ = closed.await;
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            // The thread has answered Close and is returning.
            let _ = t.join();
        }
    }
}

fn run(mut conn: Connection, server_id: &str, jobs: Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Apply { writes, now, done } => {
                let result = apply_batch(&mut conn, server_id, &writes, now);
                let _ = done.send(result.map_err(StoreError::Write));
            }
            Job::Reserve { change, now, done } => {
                let _ = done.send(super::reservations::change(&mut conn, &change, now));
            }
            Job::Close(done) => {
                if let Err((_, e)) = conn.close() {
                    tracing::warn!(error = %e, "closing the lease store's connection");
                }
                let _ = done.send(());
                return;
            }
        }
    }
}

/// Consecutive slices of `items`, each as long as the largest power of two
/// that fits (at most `max`), so a statement built per slice length comes
/// in a few sizes only and stays in the prepared-statement cache.
fn power_of_two_chunks<T>(mut items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let fit = items.len().min(max);
        let len = 1usize << (usize::BITS - 1 - fit.leading_zeros());
        let (head, tail) = items.split_at(len);
        items = tail;
        Some(head)
    })
}

fn apply_batch(
    conn: &mut Connection,
    server_id: &str,
    writes: &[LeaseWrite],
    now: u64,
) -> Result<Vec<WriteOutcome>, rusqlite::Error> {
    let mut out: Vec<WriteOutcome> = vec![None; writes.len()];
    let now = now as i64;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rows = batch::coalesce_extends(writes);
    let mut extended = HashSet::new();
    for chunk in power_of_two_chunks(&rows, MAX_ROWS) {
        extend_rows(&tx, chunk, now, &mut extended)?;
    }
    batch::extension_outcomes(writes, &extended, &mut out);
    for (i, w) in writes.iter().enumerate() {
        let Some(c) = batch::row_change(w) else {
            continue;
        };
        let mut params = vec![
            Value::Integer(i64::from(c.subnet_id)),
            Value::Text(c.address.to_string()),
            Value::Blob(c.client_key.to_vec()),
            Value::Integer(now),
            Value::Integer(i64::from(c.version)),
        ];
        if let RowChangeKind::Decline { until } = c.kind {
            params.push(Value::Integer(until as i64));
        }
        let changed = tx
            .prepare_cached(row_change_sql(c.kind))?
            .execute(rusqlite::params_from_iter(params))?;
        if changed > 0 {
            out[i] = Some(c.version.wrapping_add(1));
        }
    }
    for (guard_secs, round) in batch::grant_rounds(writes) {
        for chunk in power_of_two_chunks(&round, MAX_ROWS) {
            grant_rows(&tx, server_id, writes, chunk, guard_secs, now, &mut out)?;
        }
    }
    tx.commit()?;
    Ok(out)
}

/// The guarded one-row UPDATE of a release, decline or expiry. Parameters:
/// ?1 subnet, ?2 address, ?3 client, ?4 now, ?5 the version the change was
/// decided on, ?6 (a decline's) end of quarantine.
fn row_change_sql(kind: RowChangeKind) -> &'static str {
    match kind {
        RowChangeKind::Release => {
            "UPDATE leases SET state = 'released', expiry = ?4, updated_at = ?4, version = version + 1
             WHERE subnet_id = ?1 AND address = ?2 AND client_key = ?3 AND state = 'leased' AND version = ?5"
        }
        RowChangeKind::Decline { .. } => {
            "UPDATE leases SET state = 'declined', expiry = ?6, updated_at = ?4, version = version + 1
             WHERE subnet_id = ?1 AND address = ?2 AND client_key = ?3 AND state = 'leased' AND version = ?5"
        }
        RowChangeKind::Expire => {
            "UPDATE leases SET state = 'expired', updated_at = ?4, version = version + 1
             WHERE subnet_id = ?1 AND address = ?2 AND client_key = ?3
               AND state IN ('leased', 'declined') AND version = ?5"
        }
    }
}

/// `n` copies of the placeholder row `row`, comma-separated: the VALUES
/// list of a multi-row statement.
fn values_list(row: &str, n: usize) -> String {
    vec![row; n].join(", ")
}

/// Grants as one upsert; RETURNING names the rows that took effect (a row
/// another client may still hold is left alone and not returned) with their
/// new version. The takeover rule is [`LeaseWrite::Grant`]'s, with
/// `guard_secs` bound once as the last parameter.
fn grant_rows(
    tx: &rusqlite::Transaction<'_>,
    server_id: &str,
    writes: &[LeaseWrite],
    idx: &[usize],
    guard_secs: u32,
    now: i64,
    out: &mut [WriteOutcome],
) -> Result<(), rusqlite::Error> {
    let mut sql = String::from(
        "INSERT INTO leases (subnet_id, address, client_key, hw_address, state, expiry, allocated_by, updated_at, version, circuit_id, remote_id) VALUES ",
    );
    sql.push_str(&values_list(
        "(?, ?, ?, ?, 'leased', ?, ?, ?, 1, ?, ?)",
        idx.len(),
    ));
    sql.push_str(
        " ON CONFLICT (subnet_id, address) DO UPDATE SET
            client_key = excluded.client_key, hw_address = excluded.hw_address,
            circuit_id = excluded.circuit_id, remote_id = excluded.remote_id,
            state = 'leased', expiry = MAX(excluded.expiry, CASE WHEN leases.client_key = excluded.client_key AND leases.state = 'leased' THEN leases.expiry ELSE 0 END),
            allocated_by = excluded.allocated_by, updated_at = excluded.updated_at,
            version = leases.version + 1
          WHERE (leases.client_key = excluded.client_key AND leases.state = 'leased')
             OR leases.state IN ('released', 'expired')
             OR (leases.state = 'declined' AND leases.expiry < excluded.updated_at)
             OR (leases.state = 'leased' AND leases.expiry + ? < excluded.updated_at)
          RETURNING subnet_id, address, client_key, version",
    );
    let mut params: Vec<Value> = Vec::with_capacity(idx.len() * 9);
    let blob = |b: &Option<Vec<u8>>| b.clone().map_or(Value::Null, Value::Blob);
    for &i in idx {
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
            params.extend([
                Value::Integer(i64::from(*subnet_id)),
                Value::Text(address.to_string()),
                Value::Blob(client_key.clone()),
                hw_address.map_or(Value::Null, |h| Value::Blob(h.to_vec())),
                Value::Integer(*expiry as i64),
                Value::Text(server_id.to_string()),
                Value::Integer(now),
                blob(&relay.circuit_id),
                blob(&relay.remote_id),
            ]);
        }
    }
    params.push(Value::Integer(i64::from(guard_secs)));
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut done: HashMap<(u32, Ipv4Addr, Vec<u8>), u32> = HashMap::with_capacity(idx.len());
    while let Some(r) = rows.next()? {
        let (Some(subnet), Some(address), Some(version)) = (
            u32::try_from(r.get::<_, i64>(0)?).ok(),
            Ipv4Addr::from_str(&r.get::<_, String>(1)?).ok(),
            u32::try_from(r.get::<_, i64>(3)?).ok(),
        ) else {
            continue;
        };
        done.insert((subnet, address, r.get(2)?), version);
    }
    batch::grant_outcomes(writes, idx, &done, out);
    Ok(())
}

/// Renewal extensions as one UPDATE ... FROM a VALUES list; expiry only
/// grows, and only the client's own live lease of the same row version is
/// touched. Adds the (subnet, address) of the rows updated to `extended`.
fn extend_rows(
    tx: &rusqlite::Transaction<'_>,
    rows: &[ExtendRow<'_>],
    now: i64,
    extended: &mut HashSet<(u32, Ipv4Addr)>,
) -> Result<(), rusqlite::Error> {
    let mut sql =
        String::from("WITH v(subnet_id, address, client_key, version, expiry) AS (VALUES ");
    sql.push_str(&values_list("(?, ?, ?, ?, ?)", rows.len()));
    sql.push_str(
        ") UPDATE leases SET expiry = MAX(leases.expiry, v.expiry), updated_at = ?
           FROM v WHERE leases.subnet_id = v.subnet_id AND leases.address = v.address
             AND leases.client_key = v.client_key AND leases.state = 'leased'
             AND leases.version = v.version
           RETURNING leases.subnet_id, leases.address",
    );
    let mut params: Vec<Value> = Vec::with_capacity(rows.len() * 5 + 1);
    for r in rows {
        params.extend([
            Value::Integer(i64::from(r.subnet_id)),
            Value::Text(r.address.to_string()),
            Value::Blob(r.client_key.to_vec()),
            Value::Integer(i64::from(r.version)),
            Value::Integer(r.expiry as i64),
        ]);
    }
    params.push(Value::Integer(now));
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut updated = stmt.query(rusqlite::params_from_iter(params))?;
    while let Some(r) = updated.next()? {
        if let (Ok(subnet), Ok(address)) = (
            u32::try_from(r.get::<_, i64>(0)?),
            Ipv4Addr::from_str(&r.get::<_, String>(1)?),
        ) {
            extended.insert((subnet, address));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::power_of_two_chunks;

    #[test]
    fn chunks_come_in_powers_of_two_up_to_the_most() {
        let items: Vec<u32> = (0..300).collect();
        let lens: Vec<usize> = power_of_two_chunks(&items, 128).map(<[u32]>::len).collect();
        assert_eq!(lens, vec![128, 128, 32, 8, 4]);
        let seen: Vec<u32> = power_of_two_chunks(&items, 128)
            .flatten()
            .copied()
            .collect();
        assert_eq!(seen, items, "every item once, in order");
        assert_eq!(power_of_two_chunks(&items[..1], 128).count(), 1);
        assert_eq!(power_of_two_chunks::<u32>(&[], 128).count(), 0);
    }
}
