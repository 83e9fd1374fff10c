//! The allocation engine: who owns which address, what to offer, what may be
//! committed, what has run out.
//!
//! This is the control plane's authoritative in-memory state. It is plain
//! synchronous code with no I/O, so every rule can be unit-tested; the
//! [`plane`](crate::plane) task feeds it requests and events and carries its
//! [`LeaseWrite`]s to the store. The fast path's lease map is a read-only
//! projection of it: the engine writes the map only after the store has
//! committed a grant, so a worker never answers from a lease that is not
//! durable.
//!
//! Address choice follows the order Kea operators expect: the client's
//! current lease or pending offer, its reservation, its previous address,
//! the address it asked for, then a randomised free address (a random start
//! and a linear probe, so servers sharing a pool later do not collide on the
//! same low addresses).
//!
//! Memory is laid out for a million leases in well under 256 MiB: owners
//! live in one dense table parallel to the lease map's slots (48 bytes an
//! address, client keys of up to 22 bytes stored inline), and the client
//! indexes map a 64-bit key hash to a slot number. A hash hit is always
//! checked against the owner's full key, so a collision is a miss, never a
//! wrong answer.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use irondhcp_fastpath::channel::key_hash;
use irondhcp_fastpath::lease_map::LeaseMap;

use crate::config::Subnet;
use crate::store::LeaseWrite;

mod blocks;
mod choice;
mod grants;
mod owners;
mod reclaim;
mod records;
mod report;
mod reservations;
#[cfg(test)]
mod tests;

pub use blocks::OwnedBlock;
use owners::{Owner, FREE};
pub use report::{LeaseInfo, LeasePage, LeaseQuery, PoolStats, RangeStats, DEFAULT_PAGE};
pub use reservations::ReserveError;

/// Offer, quarantine and reclaim timing.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub offer_lifetime: u32,
    pub decline_probation: u32,
    /// Seconds past `durable expiry + MCLT` before a lease's address may go
    /// to another client (the reclaim bound, docs/decisions.md): covers
    /// clock skew and the time a reply spends on the wire.
    pub grace: u64,
    /// A renewal that moves the expiry less than this many seconds (and less
    /// than a quarter of the lease time) past the durable one is not written
    /// (lease caching, like Kea's `cache-threshold`). Always safe: the fast
    /// path never promises past `durable + MCLT` and reclamation waits past
    /// that, so a cached extension only makes the next promise shorter.
    pub write_threshold: u64,
}

/// The result of a REQUEST that may need a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Commit this grant, then call [`Allocator::committed`].
    Commit(LeaseWrite),
    Nak,
    Ignore,
}

/// The allocation engine.
pub struct Allocator {
    subnets: Vec<Subnet>,
    leases: Arc<LeaseMap>,
    timers: Timers,
    /// Parallel to the lease map's slots.
    owners: Vec<Owner>,
    /// Key hash (subnet and key) → slot of the client's lease or offer.
    by_client: HashMap<u64, u32>,
    /// Key hash → slot of the address the client had last. Bounded by the
    /// number of slots (a full map keeps what it has).
    previous: HashMap<u64, u32>,
    /// Owners of leases being re-granted (durable renewal in flight), to be
    /// restored if the commit fails: a failed renewal must not free a lease.
    regrants: HashMap<u32, Owner>,
    /// Writes the allocator decided on its own (the old lease of a client
    /// that moved), for the control plane to persist.
    side_writes: Vec<LeaseWrite>,
    /// Answer NAKs for addresses the server does not know (else silence).
    pub authoritative: bool,
    /// Key hash → reserved address (the config file's and the runtime
    /// ones).
    reserved: HashMap<u64, Ipv4Addr>,
    reserved_addrs: HashSet<Ipv4Addr>,
    /// Key hashes of the config file's reservations.
    config_reserved: HashSet<u64>,
    /// The runtime reservations (the store's).
    runtime_reserved: reservations::Runtime,
    /// (due, slot): when to look at an owner again (lazy: stale entries are
    /// re-pushed or dropped when popped). Seconds fit u32 until 2106.
    due: BinaryHeap<Reverse<(u32, u32)>>,
    /// Per subnet: pool addresses (not reserved) that have an owner, kept
    /// in step by [`Allocator::put`] so an exhausted pool answers in O(1).
    taken: Vec<u64>,
    /// Per subnet: pool addresses that are not reserved.
    dynamic: Vec<u64>,
    /// One bit per slot: set when the address has an owner or is reserved,
    /// so finding a free address scans 64 addresses a word.
    used_bits: Vec<u64>,
    /// One bit per slot: set once the address has had a lease (a stored
    /// row of any state, or a grant): dhcpd-pools' "touched".
    touched: Vec<u64>,
    /// Per subnet: its pools as (first slot, number of slots).
    pool_slots: Vec<Vec<(usize, usize)>>,
    /// Requests refused because the pool was empty.
    pub exhausted: u64,
    /// In a cluster, the blocks this server allocates from.
    owned: blocks::Owned,
    /// New addresses taken outside the owned blocks (they were full).
    pub borrowed: u64,
}

fn secs32(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}

impl Allocator {
    pub fn new(subnets: Vec<Subnet>, leases: Arc<LeaseMap>, timers: Timers) -> Self {
        let mut reserved = HashMap::new();
        let mut reserved_addrs = HashSet::new();
        for s in &subnets {
            for (k, a) in &s.reservations {
                reserved.insert(key_hash(s.id, k), *a);
                reserved_addrs.insert(*a);
            }
        }
        let owners = vec![FREE; leases.capacity()];
        let dynamic = subnets
            .iter()
            .map(|s| {
                let reserved_in_pool = s.reservations.iter().filter(|(_, a)| s.in_pool(*a)).count();
                s.pool_size().saturating_sub(reserved_in_pool as u64)
            })
            .collect();
        let taken = vec![0; subnets.len()];
        let touched = vec![0u64; leases.capacity().div_ceil(64)];
        let mut used_bits = vec![0u64; leases.capacity().div_ceil(64)];
        for a in &reserved_addrs {
            if let Some(i) = leases.slot_index(*a) {
                used_bits[i / 64] |= 1 << (i % 64);
            }
        }
        let pool_slots = subnets
            .iter()
            .map(|s| {
                s.pools
                    .iter()
                    .filter_map(|(f, l)| {
                        let first = leases.slot_index(*f)?;
                        let len = (u32::from(*l) - u32::from(*f)) as usize + 1;
                        // A pool is one contiguous run of slots (the map's
                        // ranges are the pools); check the far end too.
                        (leases.slot_index(*l) == Some(first + len - 1)).then_some((first, len))
                    })
                    .collect()
            })
            .collect();
        Self {
            subnets,
            leases,
            timers,
            owners,
            by_client: HashMap::new(),
            previous: HashMap::new(),
            regrants: HashMap::new(),
            side_writes: Vec::new(),
            authoritative: true,
            config_reserved: reserved.keys().copied().collect(),
            runtime_reserved: HashMap::new(),
            reserved,
            reserved_addrs,
            due: BinaryHeap::new(),
            taken,
            dynamic,
            used_bits,
            touched,
            pool_slots,
            exhausted: 0,
            owned: blocks::Owned::default(),
            borrowed: 0,
        }
    }

    pub(super) fn subnet_index(&self, id: u32) -> Option<u16> {
        self.subnets
            .iter()
            .position(|s| s.id == id)
            .map(|i| i as u16)
    }

    pub(super) fn hash(&self, subnet: u16, key: &[u8]) -> u64 {
        key_hash(self.subnets[subnet as usize].id, key)
    }

    pub(super) fn slot(&self, addr: Ipv4Addr) -> Option<u32> {
        self.leases.slot_index(addr).map(|i| i as u32)
    }

    pub(super) fn addr(&self, slot: u32) -> Ipv4Addr {
        self.leases
            .slot_address(slot as usize)
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// Takes a reloaded configuration's lease times and options (the
    /// reload was refused unless subnets, pools, MCLTs and reservations
    /// are unchanged, see `reload`): new grants and offers use them.
    pub fn reconfigure(&mut self, subnets: &[Subnet]) {
        for new in subnets {
            if let Some(s) = self.subnets.iter_mut().find(|s| s.id == new.id) {
                s.lease_time = new.lease_time;
                s.renew_time = new.renew_time;
                s.rebind_time = new.rebind_time;
                s.options = new.options.clone();
            }
        }
    }

    /// Writes the allocator decided on its own since the last call.
    pub fn take_side_writes(&mut self) -> Vec<LeaseWrite> {
        std::mem::take(&mut self.side_writes)
    }
}
