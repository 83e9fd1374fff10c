//! The lock-free lease map (STUB: interface only, being implemented).
use std::net::Ipv4Addr;

/// State of one address slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LeaseState {
    Free = 0,
    /// Leased to `key_hash` until `expiry`.
    Leased = 1,
    /// Declined by a client; quarantined until `expiry`.
    Declined = 2,
}

/// A consistent snapshot of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseView {
    pub key_hash: u64,
    /// Seconds since the UNIX epoch.
    pub expiry: u64,
    pub state: LeaseState,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeaseMapError {
    #[error("address {0} is not covered by any range of the lease map")]
    NotCovered(Ipv4Addr),
    #[error("address ranges overlap or are empty")]
    BadRanges,
}

pub struct LeaseMap {}

impl LeaseMap {
    pub fn new(_ranges: &[(Ipv4Addr, u32)]) -> Result<Self, LeaseMapError> {
        todo!()
    }
    pub fn covers(&self, _addr: Ipv4Addr) -> bool {
        todo!()
    }
    pub fn get(&self, _addr: Ipv4Addr) -> Option<LeaseView> {
        todo!()
    }
    pub fn find_client(&self, _key_hash: u64) -> Option<(Ipv4Addr, LeaseView)> {
        todo!()
    }
    pub fn set(&self, _addr: Ipv4Addr, _lease: LeaseView) -> Result<(), LeaseMapError> {
        todo!()
    }
    pub fn extend(&self, _addr: Ipv4Addr, _key_hash: u64, _expiry: u64) -> bool {
        todo!()
    }
    pub fn clear(&self, _addr: Ipv4Addr) -> bool {
        todo!()
    }
    pub fn len(&self) -> usize {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn capacity(&self) -> usize {
        todo!()
    }
    pub fn memory_bytes(&self) -> usize {
        todo!()
    }
    pub fn for_each(&self, _f: impl FnMut(Ipv4Addr, LeaseView)) {
        todo!()
    }
}
