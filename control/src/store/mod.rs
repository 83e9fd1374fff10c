//! Durable lease storage.
//!
//! The [`LeaseStore`] trait is what the control plane needs from a database:
//! load everything at start, apply a batch of lease writes in ONE transaction
//! (group commit: one fsync for many leases), and list leases for operators.
//! The embedded default is [`sqlite::SqliteStore`] (one file, no service);
//! the PostgreSQL store for clusters fits behind the same trait.

pub mod sqlite;

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
    #[error("lease store holds a malformed row: {0}")]
    BadRow(String),
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
}

/// One change to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseWrite {
    /// A new or re-granted lease. Refused (not applied) when another client
    /// still holds the address unexpired: the UNIQUE (subnet, address) row
    /// is only taken over from the same client or from a dead lease.
    Grant {
        subnet_id: u32,
        address: Ipv4Addr,
        client_key: Vec<u8>,
        hw_address: Option<[u8; 6]>,
        expiry: u64,
    },
    /// A renewal answered from memory (write-behind). Expiry only grows.
    Extend {
        subnet_id: u32,
        address: Ipv4Addr,
        client_key: Vec<u8>,
        expiry: u64,
    },
    /// The client released the address.
    Release {
        subnet_id: u32,
        address: Ipv4Addr,
        client_key: Vec<u8>,
    },
    /// The client declined the address: quarantined until `until`.
    Decline {
        subnet_id: u32,
        address: Ipv4Addr,
        client_key: Vec<u8>,
        until: u64,
    },
    /// The lease ran out and its address was reclaimed.
    Expire {
        subnet_id: u32,
        address: Ipv4Addr,
        client_key: Vec<u8>,
    },
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

    /// Applies `writes` in one transaction; `applied[i]` says whether write
    /// `i` took effect (a refused Grant, or an Extend of a lease that is no
    /// longer the client's, did not). All or nothing on error.
    fn apply(
        &self,
        writes: &[LeaseWrite],
        now: u64,
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;
}
