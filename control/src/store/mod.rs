//! Durable lease storage.
//!
//! The [`LeaseStore`] trait is what the control plane needs from a database:
//! load everything at start, apply a batch of lease writes in ONE transaction
//! (group commit: one fsync for many leases), and list leases for operators.
//! The embedded default is [`sqlite::SqliteStore`] (one file, no service);
//! a cluster shares one [`postgres::PgStore`].

#[cfg(any(test, feature = "store-contract"))]
pub mod contract;
mod open;
pub mod postgres;
pub mod reservation;
pub mod sqlite;

pub use open::Store;
pub use reservation::{AuditEntry, Identifier, Reservation, ReservationChange};

use std::future::Future;
use std::net::Ipv4Addr;

/// Errors of a lease store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the lease store {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("lease store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("lease store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("cannot open the lease store {path} for writing: {source}")]
    OpenWriter {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot start the lease store's writer thread: {0}")]
    WriterThread(#[source] std::io::Error),
    #[error("lease store write failed: {0}")]
    Write(#[source] rusqlite::Error),
    #[error("the lease store's writer has stopped")]
    WriterStopped,
    #[error("lease store holds a malformed row: {0}")]
    BadRow(String),
    #[error("{0}")]
    ReservationConflict(String),
    #[error("this lease store keeps no reservations")]
    NoReservations,
    #[error("storage URL {0:?}: use sqlite:///path/to/leases.sqlite3 or postgres://user:password@host/database")]
    Unsupported(String),
}

/// The state of a lease row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Leased,
    Declined,
    Released,
    Expired,
}

impl RecordState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Leased => "leased",
            RecordState::Declined => "declined",
            RecordState::Released => "released",
            RecordState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "leased" => RecordState::Leased,
            "declined" => RecordState::Declined,
            "released" => RecordState::Released,
            "expired" => RecordState::Expired,
            _ => return None,
        })
    }
}

/// One lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub subnet_id: u32,
    pub address: Ipv4Addr,
    pub client_key: Vec<u8>,
    pub hw_address: Option<[u8; 6]>,
    pub state: RecordState,
    /// Seconds since the UNIX epoch.
    pub expiry: u64,
    pub allocated_by: String,
    pub updated_at: u64,
    /// Bumped by every grant and state change of the row; the guard of the
    /// forward-only writes.
    pub version: u32,
}

/// A fencing token: block `block` (its id in the blocks table) owned by
/// this server at `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fence {
    pub block: i32,
    pub epoch: u32,
}

/// The relay agent's identifiers of a subscriber (option 82 sub-option 1,
/// circuit-id, and 2, remote-id; RFC 3046), as the relay sent them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayIds {
    pub circuit_id: Option<Vec<u8>>,
    pub remote_id: Option<Vec<u8>>,
}

impl RelayIds {
    /// The identifiers in an option 82 value (its sub-options; the first
    /// of each kind counts, a truncated sub-option ends the walk).
    pub fn from_option82(value: &[u8]) -> Self {
        let mut ids = Self::default();
        let mut rest = value;
        while let [code, len, tail @ ..] = rest {
            let len = usize::from(*len);
            let Some(data) = tail.get(..len) else { break };
            match code {
                1 if ids.circuit_id.is_none() => ids.circuit_id = Some(data.to_vec()),
                2 if ids.remote_id.is_none() => ids.remote_id = Some(data.to_vec()),
                _ => {}
            }
            rest = &tail[len..];
        }
        ids
    }
}

/// One change to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseWrite {
    /// A new or re-granted lease. Refused (not applied) when another client
    /// may still hold the address: the UNIQUE (subnet, address) row is only
    /// taken over from the same client, from a released or expired row, from
    /// a quarantine that ended, or from a lease whose stored expiry plus
    /// `guard_secs` has passed.
    Grant {
        subnet_id: u32,
        address: Ipv4Addr,
        client_key: Vec<u8>,
        hw_address: Option<[u8; 6]>,
        expiry: u64,
        /// How long past its stored expiry another client's lease stays
        /// untouchable: the subnet's MCLT plus the reclaim grace, since a
        /// server that renewed it from memory may have promised it that
        /// long (the reclaim bound of docs/decisions.md, 3). In a cluster
        /// this guard in SQL is what stops a server whose map lags.
        guard_secs: u32,
        /// In a cluster, the block the address was allocated from, as
        /// this server owns it: the grant is written only if the block is
        /// still this server's at that epoch. `None` for an address outside
        /// the server's blocks (a renewal, a borrowed address) and on one
        /// box.
        fence: Option<Fence>,
        /// Option 82's circuit-id and remote-id of the request, stored
        /// with the lease for operators' lookups.
        relay: RelayIds,
    },
    /// A renewal answered from memory (write-behind): `expiry = max(expiry,
    /// new)` on the client's live lease of row version `version` only.
    Extend {
        subnet_id: u32,
        address: Ipv4Addr,
        client_key: Vec<u8>,
        expiry: u64,
        version: u32,
    },
    /// The client released the address (row version `version` only).
    Release {
        subnet_id: u32,
        address: Ipv4Addr,
        client_key: Vec<u8>,
        version: u32,
    },
    /// The client declined the address: quarantined until `until`.
    Decline {
        subnet_id: u32,
        address: Ipv4Addr,
        client_key: Vec<u8>,
        until: u64,
        version: u32,
    },
    /// The lease ran out and its address was reclaimed.
    Expire {
        subnet_id: u32,
        address: Ipv4Addr,
        client_key: Vec<u8>,
        version: u32,
    },
}

/// What became of one write: `None` when it did not take effect (a refused
/// grant, a write whose row moved on to another version or owner), else the
/// row's version after it.
pub type WriteOutcome = Option<u32>;

/// One coalesced extension: the latest expiry asked for a lease version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtendRow<'a> {
    pub subnet_id: u32,
    pub address: Ipv4Addr,
    pub client_key: &'a [u8],
    pub version: u32,
    pub expiry: u64,
}

/// The batch rules every backend follows, decided here once so backends
/// only translate them to SQL.
///
/// Order within the one transaction of a batch: extensions (coalesced),
/// then releases, declines and expiries in the order given, then grants, so
/// a grant can take over an address released or expired in the same batch.
/// Every write but a grant is guarded by owner and row version, and an
/// extension only moves the expiry forward, so a write retried after the
/// row moved on (a newer grant) does nothing.
pub mod batch {
    use super::{ExtendRow, LeaseWrite, WriteOutcome};
    use std::collections::{HashMap, HashSet};
    use std::net::Ipv4Addr;

    /// Several renewals of one lease become one row with the latest expiry.
    pub fn coalesce_extends(writes: &[LeaseWrite]) -> Vec<ExtendRow<'_>> {
        let mut latest: HashMap<(u32, Ipv4Addr, &[u8], u32), u64> = HashMap::new();
        for w in writes {
            if let LeaseWrite::Extend {
                subnet_id,
                address,
                client_key,
                expiry,
                version,
            } = w
            {
                let e = latest
                    .entry((*subnet_id, *address, client_key.as_slice(), *version))
                    .or_insert(0);
                *e = (*e).max(*expiry);
            }
        }
        let mut rows: Vec<ExtendRow<'_>> = latest
            .into_iter()
            .map(
                |((subnet_id, address, client_key, version), expiry)| ExtendRow {
                    subnet_id,
                    address,
                    client_key,
                    version,
                    expiry,
                },
            )
            .collect();
        // A stable order keeps row locks in one order across servers.
        rows.sort_unstable_by_key(|r| (r.subnet_id, r.address));
        rows
    }

    /// Marks each extension that took effect (its row is among `extended`,
    /// the rows the extension statement updated) with its version.
    pub fn extension_outcomes(
        writes: &[LeaseWrite],
        extended: &HashSet<(u32, Ipv4Addr)>,
        out: &mut [WriteOutcome],
    ) {
        for (i, w) in writes.iter().enumerate() {
            if let LeaseWrite::Extend {
                subnet_id,
                address,
                version,
                ..
            } = w
            {
                if extended.contains(&(*subnet_id, *address)) {
                    out[i] = Some(*version);
                }
            }
        }
    }

    /// Marks each grant of `idx` that took effect (the upsert returned its
    /// subnet, address and client, in `applied`, with the row's version).
    pub fn grant_outcomes(
        writes: &[LeaseWrite],
        idx: &[usize],
        applied: &HashMap<(u32, Ipv4Addr, Vec<u8>), u32>,
        out: &mut [WriteOutcome],
    ) {
        for &i in idx {
            if let LeaseWrite::Grant {
                subnet_id,
                address,
                client_key,
                ..
            } = &writes[i]
            {
                out[i] = applied
                    .get(&(*subnet_id, *address, client_key.clone()))
                    .copied();
            }
        }
    }

    /// What a release, decline or expiry changes: one row, guarded by its
    /// owner and the version the change was decided on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct RowChange<'w> {
        pub kind: RowChangeKind,
        pub subnet_id: u32,
        pub address: Ipv4Addr,
        pub client_key: &'w [u8],
        pub version: u32,
    }

    /// Which per-row change, with what it stores.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum RowChangeKind {
        Release,
        /// Quarantined until this time (stored as the row's expiry).
        Decline {
            until: u64,
        },
        Expire,
    }

    /// The per-row change `w` asks for (`None` for grants and extensions,
    /// which go in multi-row statements).
    pub fn row_change(w: &LeaseWrite) -> Option<RowChange<'_>> {
        let (kind, subnet_id, address, client_key, version) = match w {
            LeaseWrite::Grant { .. } | LeaseWrite::Extend { .. } => return None,
            LeaseWrite::Release {
                subnet_id,
                address,
                client_key,
                version,
            } => (
                RowChangeKind::Release,
                subnet_id,
                address,
                client_key,
                version,
            ),
            LeaseWrite::Decline {
                subnet_id,
                address,
                client_key,
                until,
                version,
            } => (
                RowChangeKind::Decline { until: *until },
                subnet_id,
                address,
                client_key,
                version,
            ),
            LeaseWrite::Expire {
                subnet_id,
                address,
                client_key,
                version,
            } => (
                RowChangeKind::Expire,
                subnet_id,
                address,
                client_key,
                version,
            ),
        };
        Some(RowChange {
            kind,
            subnet_id: *subnet_id,
            address: *address,
            client_key,
            version: *version,
        })
    }

    /// The grants, in rounds that one multi-row upsert each can apply:
    /// every grant of a round has the same guard (bound once per
    /// statement), and no address appears twice in a round (PostgreSQL
    /// refuses an upsert that touches a row twice). Order is kept: a later
    /// grant of an address comes in a later round.
    pub fn grant_rounds(writes: &[LeaseWrite]) -> Vec<(u32, Vec<usize>)> {
        let mut rounds: Vec<(u32, Vec<usize>)> = Vec::new();
        // The round each address was last granted in.
        let mut last: HashMap<(u32, Ipv4Addr), usize> = HashMap::new();
        for (i, w) in writes.iter().enumerate() {
            let LeaseWrite::Grant {
                subnet_id,
                address,
                guard_secs,
                ..
            } = w
            else {
                continue;
            };
            let key = (*subnet_id, *address);
            let after = last.get(&key).map_or(0, |r| r + 1);
            let r = match (after..rounds.len()).find(|&r| rounds[r].0 == *guard_secs) {
                Some(r) => r,
                None => {
                    rounds.push((*guard_secs, Vec::new()));
                    rounds.len() - 1
                }
            };
            rounds[r].1.push(i);
            last.insert(key, r);
        }
        rounds
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn ext(addr: u8, version: u32, expiry: u64) -> LeaseWrite {
            LeaseWrite::Extend {
                subnet_id: 1,
                address: Ipv4Addr::new(10, 0, 0, addr),
                client_key: b"k".to_vec(),
                expiry,
                version,
            }
        }

        #[test]
        fn option82_gives_circuit_and_remote_id() {
            // circuit "eth0/1", remote 6 bytes, an unknown sub-option 9.
            let mut v = vec![9, 1, 0xff, 1, 6];
            v.extend_from_slice(b"eth0/1");
            v.extend_from_slice(&[2, 6, 2, 0, 0, 0, 0, 7]);
            let ids = crate::store::RelayIds::from_option82(&v);
            assert_eq!(ids.circuit_id.as_deref(), Some(&b"eth0/1"[..]));
            assert_eq!(ids.remote_id.as_deref(), Some(&[2, 0, 0, 0, 0, 7][..]));
            // A sub-option longer than what is left ends the walk, keeping
            // what came before.
            let cut = crate::store::RelayIds::from_option82(&[1, 2, b'a', b'b', 2, 9, 1]);
            assert_eq!(cut.circuit_id.as_deref(), Some(&b"ab"[..]));
            assert_eq!(cut.remote_id, None);
            assert_eq!(
                crate::store::RelayIds::from_option82(&[]),
                crate::store::RelayIds::default()
            );
            assert_eq!(
                crate::store::RelayIds::from_option82(&[1]),
                crate::store::RelayIds::default()
            );
        }

        fn grant(addr: u8, guard_secs: u32) -> LeaseWrite {
            LeaseWrite::Grant {
                subnet_id: 1,
                address: Ipv4Addr::new(10, 0, 0, addr),
                client_key: vec![addr],
                hw_address: None,
                expiry: 100,
                guard_secs,
                fence: None,
                relay: Default::default(),
            }
        }

        #[test]
        fn grant_rounds_share_a_guard_and_never_repeat_an_address() {
            let w = vec![
                grant(1, 60),
                ext(9, 1, 5),
                grant(2, 60),
                grant(1, 60),
                grant(3, 90),
                grant(4, 60),
                grant(1, 60),
            ];
            assert_eq!(
                grant_rounds(&w),
                vec![
                    (60, vec![0, 2, 5]),
                    (60, vec![3]),
                    (90, vec![4]),
                    (60, vec![6])
                ]
            );
        }

        #[test]
        fn extends_coalesce_per_lease_version_to_the_latest_expiry() {
            let w = vec![
                ext(5, 1, 100),
                ext(5, 1, 300),
                ext(5, 1, 200),
                ext(4, 1, 50),
                ext(5, 2, 10),
            ];
            let rows = coalesce_extends(&w);
            let got: Vec<(u8, u32, u64)> = rows
                .iter()
                .map(|r| (r.address.octets()[3], r.version, r.expiry))
                .collect();
            assert_eq!(got.len(), 3);
            assert!(got.contains(&(5, 1, 300)));
            assert!(got.contains(&(5, 2, 10)));
            assert!(got.contains(&(4, 1, 50)));
            assert_eq!(rows[0].address, Ipv4Addr::new(10, 0, 0, 4), "sorted");
        }
    }
}

/// What the control plane needs from a database.
pub trait LeaseStore: Send + Sync + 'static {
    /// Every stored lease (all states: released/expired rows remember a
    /// client's previous address).
    ///
    /// Rows are handed to `each` one at a time as they stream out of the
    /// database, so loading a million leases never holds a million rows in
    /// memory at once. Returns the number of rows.
    fn load_each<F>(&self, each: F) -> impl Future<Output = Result<u64, StoreError>> + Send
    where
        F: FnMut(LeaseRecord) + Send;

    /// Every stored lease, collected (for tests and small stores).
    fn load(&self) -> impl Future<Output = Result<Vec<LeaseRecord>, StoreError>> + Send {
        async move {
            let mut all = Vec::new();
            self.load_each(|r| all.push(r)).await?;
            Ok(all)
        }
    }

    /// Applies `writes` in one transaction, following [`batch`]'s rules;
    /// `out[i]` says what became of write `i`. All or nothing on error.
    fn apply(
        &self,
        writes: &[LeaseWrite],
        now: u64,
    ) -> impl Future<Output = Result<Vec<WriteOutcome>, StoreError>> + Send;

    /// Closes the store (flushes what the backend buffers).
    fn close(&self) -> impl Future<Output = ()> + Send;

    /// Whether other servers write this store too (a cluster's
    /// PostgreSQL). Then this server's map can miss a lease that exists,
    /// and a renewal that misses is looked up ([`LeaseStore::get`]) before
    /// it is refused. One box's store holds nothing its map lacks.
    fn is_shared(&self) -> bool {
        false
    }

    /// Every reservation made at run time.
    fn reservations(&self) -> impl Future<Output = Result<Vec<Reservation>, StoreError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Writes `change` with its audit row in one transaction and returns
    /// the reservation it replaced or deleted. Deleting what does not
    /// exist writes nothing and returns `None`. An address reserved for
    /// another client of the subnet is a
    /// [`StoreError::ReservationConflict`].
    fn change_reservation(
        &self,
        _change: &ReservationChange,
        _now: u64,
    ) -> impl Future<Output = Result<Option<Reservation>, StoreError>> + Send {
        async { Err(StoreError::NoReservations) }
    }

    /// The newest `limit` audit rows, newest first.
    fn reservation_audit(
        &self,
        _limit: u32,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// The id of the newest audit row (0 for none): it moves with every
    /// change of the reservations, whichever server made it.
    fn reservations_version(&self) -> impl Future<Output = Result<i64, StoreError>> + Send {
        async { Ok(0) }
    }

    /// The addresses of live leases (leased, durable expiry after `now`)
    /// whose relay ids match every id given, in address order, at most
    /// `limit`.
    fn relay_addresses(
        &self,
        _ids: &RelayIds,
        _now: u64,
        _limit: u32,
    ) -> impl Future<Output = Result<Vec<Ipv4Addr>, StoreError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// The stored row of `address` in subnet `subnet_id`, if any.
    fn get(
        &self,
        _subnet_id: u32,
        _address: Ipv4Addr,
    ) -> impl Future<Output = Result<Option<LeaseRecord>, StoreError>> + Send {
        async { Ok(None) }
    }
}
