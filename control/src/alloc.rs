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

use irondhcp_fastpath::channel::{key_hash, AllocDecision};
use irondhcp_fastpath::lease_map::{LeaseMap, LeaseState, LeaseView};
use rand::Rng;

use crate::config::Subnet;
use crate::store::{LeaseRecord, LeaseWrite, RecordState};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerState {
    Free,
    Offered,
    /// A grant is in the store's current batch.
    Committing,
    Leased,
    Declined,
}

/// A client key, inline when short (MAC keys are 7 bytes, RFC 4361 client
/// ids about 19): no heap allocation per lease in the common case.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyBuf {
    Inline { len: u8, bytes: [u8; 22] },
    Heap(Box<[u8]>),
}

impl KeyBuf {
    const EMPTY: KeyBuf = KeyBuf::Inline {
        len: 0,
        bytes: [0; 22],
    };

    fn new(k: &[u8]) -> Self {
        if k.len() <= 22 {
            let mut bytes = [0u8; 22];
            bytes[..k.len()].copy_from_slice(k);
            KeyBuf::Inline {
                len: k.len() as u8,
                bytes,
            }
        } else {
            KeyBuf::Heap(k.into())
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            KeyBuf::Inline { len, bytes } => &bytes[..*len as usize],
            KeyBuf::Heap(b) => b,
        }
    }
}

/// The owner of one address slot. Times are seconds since the UNIX epoch
/// in u32 (good until 2106), which keeps an owner within 48 bytes.
#[derive(Debug, Clone)]
struct Owner {
    key: KeyBuf,
    /// What the client was promised (lease), the quarantine's end
    /// (declined), or the offer's end.
    expiry: u32,
    /// The durable expiry: what the store has committed for this lease.
    stored: u32,
    /// The store row's version this owner last saw (forward-only writes).
    version: u32,
    hw: Option<[u8; 6]>,
    subnet: u16,
    state: OwnerState,
}

const FREE: Owner = Owner {
    key: KeyBuf::EMPTY,
    stored: 0,
    expiry: 0,
    version: 0,
    hw: None,
    subnet: 0,
    state: OwnerState::Free,
};

impl Owner {
    fn expiry(&self) -> u64 {
        u64::from(self.expiry)
    }
}

/// The first clear bit in `bits[from..to]`, a 64-bit word at a time.
fn first_zero(bits: &[u64], from: usize, to: usize) -> Option<usize> {
    let mut i = from;
    while i < to {
        let (w, b) = (i / 64, i % 64);
        let mut free = !*bits.get(w)? & (u64::MAX << b);
        let end = (to - w * 64).min(64);
        if end < 64 {
            free &= (1u64 << end) - 1;
        }
        if free != 0 {
            return Some(w * 64 + free.trailing_zeros() as usize);
        }
        i = (w + 1) * 64;
    }
    None
}

/// Per-subnet counts for `irondhcp-ctl stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    pub subnet_id: u32,
    pub subnet: String,
    pub total: u64,
    pub assigned: u64,
    pub declined: u64,
    pub offered: u64,
    pub free: u64,
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
    /// Key hash → reserved address.
    reserved: HashMap<u64, Ipv4Addr>,
    reserved_addrs: HashSet<Ipv4Addr>,
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
    /// Per subnet: its pools as (first slot, number of slots).
    pool_slots: Vec<Vec<(usize, usize)>>,
    /// Requests refused because the pool was empty.
    pub exhausted: u64,
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
            reserved,
            reserved_addrs,
            due: BinaryHeap::new(),
            taken,
            dynamic,
            used_bits,
            pool_slots,
            exhausted: 0,
        }
    }

    fn subnet_index(&self, id: u32) -> Option<u16> {
        self.subnets
            .iter()
            .position(|s| s.id == id)
            .map(|i| i as u16)
    }

    fn hash(&self, subnet: u16, key: &[u8]) -> u64 {
        key_hash(self.subnets[subnet as usize].id, key)
    }

    fn slot(&self, addr: Ipv4Addr) -> Option<u32> {
        self.leases.slot_index(addr).map(|i| i as u32)
    }

    fn addr(&self, slot: u32) -> Ipv4Addr {
        self.leases
            .slot_address(slot as usize)
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    fn owner(&self, addr: Ipv4Addr) -> Option<&Owner> {
        let o = &self.owners[self.slot(addr)? as usize];
        (o.state != OwnerState::Free).then_some(o)
    }

    /// Whether `slot` is a dynamic pool address of subnet `si` (counted in
    /// `taken`).
    fn counted(&self, si: u16, slot: u32) -> bool {
        let addr = self.addr(slot);
        self.subnets
            .get(si as usize)
            .is_some_and(|s| s.in_pool(addr) && !self.reserved_addrs.contains(&addr))
    }

    /// Replaces the owner of `slot`, keeping the per-pool counts in step:
    /// every change of an owner goes through here.
    fn put(&mut self, slot: u32, new: Owner) -> Owner {
        let old = std::mem::replace(&mut self.owners[slot as usize], new);
        let new = &self.owners[slot as usize];
        let (was, is) = (old.state != OwnerState::Free, new.state != OwnerState::Free);
        let new_subnet = new.subnet;
        if was != is && !self.reserved_addrs.contains(&self.addr(slot)) {
            let (w, b) = (slot as usize / 64, slot % 64);
            if let Some(word) = self.used_bits.get_mut(w) {
                *word ^= 1 << b;
            }
        }
        if was && self.counted(old.subnet, slot) {
            self.taken[old.subnet as usize] -= 1;
        }
        if is && self.counted(new_subnet, slot) {
            self.taken[new_subnet as usize] += 1;
        }
        old
    }

    /// Dynamic addresses of subnet `si` that nobody holds (offers included).
    pub fn pool_free(&self, si: u16) -> u64 {
        let i = si as usize;
        self.dynamic
            .get(i)
            .zip(self.taken.get(i))
            .map_or(0, |(d, t)| d.saturating_sub(*t))
    }

    /// The slot the client (by key hash) holds, verified against its key.
    fn client_slot(&self, si: u16, key: &[u8]) -> Option<u32> {
        let s = *self.by_client.get(&self.hash(si, key))?;
        let o = &self.owners[s as usize];
        (o.state != OwnerState::Free && o.subnet == si && o.key.as_slice() == key).then_some(s)
    }

    /// Rebuilds the state from stored leases (at start). Returns how many
    /// live leases went into the lease map.
    pub fn load(&mut self, records: &[LeaseRecord]) -> usize {
        records.iter().filter(|r| self.load_one(r)).count()
    }

    /// Takes one stored lease into the state; true when it is live (leased
    /// or declined) and now in the lease map.
    pub fn load_one(&mut self, r: &LeaseRecord) -> bool {
        let Some(si) = self.subnet_index(r.subnet_id) else {
            tracing::warn!(subnet = r.subnet_id, address = %r.address, "stored lease of a subnet no longer configured; ignored");
            return false;
        };
        let Some(slot) = self.slot(r.address) else {
            tracing::warn!(address = %r.address, "stored lease outside every pool; kept in storage, not served");
            return false;
        };
        match r.state {
            RecordState::Leased | RecordState::Declined => {
                let state = if r.state == RecordState::Leased {
                    OwnerState::Leased
                } else {
                    OwnerState::Declined
                };
                self.install(si, &r.client_key, r.hw_address, slot, state, r.expiry);
                self.owners[slot as usize].version = r.version;
                true
            }
            RecordState::Released | RecordState::Expired => {
                self.remember_previous(self.hash(si, &r.client_key), slot);
                false
            }
        }
    }

    /// Records an owner, projects it into the lease map, schedules its review.
    fn install(
        &mut self,
        si: u16,
        key: &[u8],
        hw: Option<[u8; 6]>,
        slot: u32,
        state: OwnerState,
        expiry: u64,
    ) {
        let kh = self.hash(si, key);
        let addr = self.addr(slot);
        let map_state = match state {
            OwnerState::Leased => Some(LeaseState::Leased),
            OwnerState::Declined => Some(LeaseState::Declined),
            _ => None,
        };
        if let Some(ms) = map_state {
            // Installed leases are durable (committed or loaded from the
            // store), so the durable expiry is the promised one.
            let view = LeaseView {
                key_hash: kh,
                expiry,
                durable: expiry,
                state: ms,
            };
            if let Err(e) = self.leases.set(addr, view) {
                tracing::error!(address = %addr, error = %e, "lease map refused an address");
            }
        }
        if state != OwnerState::Declined {
            self.by_client.insert(kh, slot);
        }
        let version = self.owners[slot as usize].version;
        self.put(
            slot,
            Owner {
                key: KeyBuf::new(key),
                expiry: secs32(expiry),
                stored: secs32(expiry),
                version,
                hw,
                subnet: si,
                state,
            },
        );
        let due = self.due_at(&self.owners[slot as usize]);
        self.due.push(Reverse((secs32(due), slot)));
    }

    /// When `o`'s address may be looked at again: for a lease, the reclaim
    /// bound `max(promised, durable + MCLT) + grace` (docs/decisions.md);
    /// for an offer or a quarantine, its end.
    fn due_at(&self, o: &Owner) -> u64 {
        match o.state {
            OwnerState::Leased | OwnerState::Committing => {
                let mclt = self
                    .subnets
                    .get(o.subnet as usize)
                    .map_or(0, |s| u64::from(s.mclt));
                o.expiry().max(u64::from(o.stored) + mclt) + self.timers.grace
            }
            _ => o.expiry(),
        }
    }

    /// Remembers the address a client had, within the bound on `previous`.
    fn remember_previous(&mut self, kh: u64, slot: u32) {
        if self.previous.len() < self.owners.len() || self.previous.contains_key(&kh) {
            self.previous.insert(kh, slot);
        }
    }

    /// The reserved address of a client: by its key, or, for a client that
    /// sends option 61, by its hardware address (Kea's `hw-address`
    /// reservations match such clients too).
    fn reservation_for(&self, si: u16, key: &[u8], hw: Option<[u8; 6]>) -> Option<Ipv4Addr> {
        if let Some(a) = self.reserved.get(&self.hash(si, key)) {
            return Some(*a);
        }
        let hw = hw?;
        let mut hw_key = [0u8; 7];
        hw_key[0] = 1;
        hw_key[1..].copy_from_slice(&hw);
        if hw_key[..] == *key {
            return None;
        }
        self.reserved.get(&self.hash(si, &hw_key)).copied()
    }

    /// Writes the allocator decided on its own since the last call.
    pub fn take_side_writes(&mut self) -> Vec<LeaseWrite> {
        std::mem::take(&mut self.side_writes)
    }

    /// Forgets the owner of `slot` and clears the lease map slot.
    fn free(&mut self, slot: u32) -> Option<Owner> {
        let o = self.put(slot, FREE);
        if o.state == OwnerState::Free {
            return None;
        }
        let kh = self.hash(o.subnet, o.key.as_slice());
        if self.by_client.get(&kh) == Some(&slot) {
            self.by_client.remove(&kh);
        }
        self.leases.clear(self.addr(slot));
        Some(o)
    }

    /// Whether `addr` may be given to `key` in subnet `si` now. A declined
    /// address is given to nobody during its probation, the client that
    /// declined it included.
    fn available_to(
        &self,
        si: u16,
        key: &[u8],
        hw: Option<[u8; 6]>,
        addr: Ipv4Addr,
        now: u64,
    ) -> bool {
        let s = &self.subnets[si as usize];
        if !s.contains(addr) {
            return false;
        }
        if let Some(o) = self.owner(addr) {
            if o.state == OwnerState::Declined {
                return false;
            }
            let dead = o.state == OwnerState::Offered && o.expiry() <= now;
            return (o.key.as_slice() == key && o.subnet == si) || dead;
        }
        match self.reservation_for(si, key, hw) {
            Some(r) => r == addr,
            None => {
                !self.reserved_addrs.contains(&addr) && s.in_pool(addr) && self.leases.covers(addr)
            }
        }
    }

    /// A free, unreserved address of subnet `si`: from a random point of
    /// its pools, the first address without an owner (64 addresses a word
    /// of the bitmap), wrapping around. Offers past their lifetime count as
    /// owned until reclaim frees them.
    fn random_free(&mut self, si: u16) -> Option<Ipv4Addr> {
        let ranges = self.pool_slots.get(si as usize)?;
        let total: usize = ranges.iter().map(|r| r.1).sum();
        if total == 0 {
            return None;
        }
        let mut n = rand::thread_rng().gen_range(0..total);
        let mut k = 0;
        while n >= ranges[k].1 {
            n -= ranges[k].1;
            k += 1;
        }
        // From the random point to the end of its pool, then every pool
        // from the next one round to the start of the first.
        let (first, len) = ranges[k];
        let mut spans = vec![(first + n, first + len)];
        for j in 1..=ranges.len() {
            let (f, l) = ranges[(k + j) % ranges.len()];
            spans.push((f, if j == ranges.len() { f + n } else { f + l }));
        }
        spans
            .into_iter()
            .find_map(|(from, to)| first_zero(&self.used_bits, from, to))
            .map(|slot| self.addr(slot as u32))
    }

    /// DHCPDISCOVER from a client the fast path could not answer.
    pub fn discover(
        &mut self,
        si: u16,
        key: &[u8],
        hw: Option<[u8; 6]>,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> AllocDecision {
        if si as usize >= self.subnets.len() {
            return AllocDecision::Ignore;
        }
        let kh = self.hash(si, key);
        let lease_secs = self.subnets[si as usize].lease_time;
        // Current lease or pending offer.
        if let Some(slot) = self.client_slot(si, key) {
            let addr = self.addr(slot);
            let lifetime = u64::from(self.timers.offer_lifetime);
            let o = &mut self.owners[slot as usize];
            match o.state {
                OwnerState::Leased | OwnerState::Committing => {
                    return AllocDecision::Offer { addr, lease_secs }
                }
                OwnerState::Offered => {
                    o.expiry = secs32(now + lifetime);
                    self.due.push(Reverse((secs32(now + lifetime), slot)));
                    return AllocDecision::Offer { addr, lease_secs };
                }
                OwnerState::Declined | OwnerState::Free => {}
            }
        }
        let mut candidates: Vec<Ipv4Addr> = Vec::with_capacity(3);
        let reservation = self.reservation_for(si, key, hw);
        if let Some(r) = reservation {
            candidates.push(r);
        }
        if let Some(p) = self.previous.get(&kh) {
            candidates.push(self.addr(*p));
        }
        if let Some(r) = requested {
            candidates.push(r);
        }
        let chosen = candidates
            .into_iter()
            .find(|a| self.available_to(si, key, hw, *a, now))
            .or_else(|| {
                if reservation.is_some() || self.pool_free(si) == 0 {
                    // A reserved client gets its reservation or nothing; an
                    // exhausted pool answers at once, without a scan.
                    None
                } else {
                    self.random_free(si)
                }
            });
        let Some(addr) = chosen else {
            self.exhausted += 1;
            return AllocDecision::Ignore;
        };
        let Some(slot) = self.slot(addr) else {
            return AllocDecision::Ignore;
        };
        // Offers cannot eat a pool: once three quarters of its dynamic
        // addresses are held, an OFFER no longer reserves its address (the
        // REQUEST then commits it if still free, under the store's UNIQUE
        // guard, or is NAKed and the client starts over). A flood of
        // DISCOVERs that never REQUEST leaves a quarter for real clients.
        let floor = self.dynamic.get(si as usize).copied().unwrap_or(0) / 4;
        if reservation.is_none() && self.pool_free(si) <= floor && self.owner(addr).is_none() {
            return AllocDecision::Offer { addr, lease_secs };
        }
        if self.owners[slot as usize].state == OwnerState::Offered {
            self.free(slot);
        }
        self.install(
            si,
            key,
            hw,
            slot,
            OwnerState::Offered,
            now + u64::from(self.timers.offer_lifetime),
        );
        AllocDecision::Offer { addr, lease_secs }
    }

    /// A SELECTING DHCPREQUEST: commit `requested` for the client if it may
    /// have it (its offer, its reservation, or a free address).
    pub fn request(
        &mut self,
        si: u16,
        key: &[u8],
        hw: Option<[u8; 6]>,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> RequestOutcome {
        if si as usize >= self.subnets.len() {
            return RequestOutcome::Ignore;
        }
        let Some(addr) = requested else {
            return RequestOutcome::Ignore;
        };
        if !self.available_to(si, key, hw, addr, now) {
            return RequestOutcome::Nak;
        }
        let Some(slot) = self.slot(addr) else {
            return RequestOutcome::Nak;
        };
        if let Some(r) = self.reservation_for(si, key, hw) {
            if r != addr {
                return RequestOutcome::Nak;
            }
        }
        self.grant(si, key, hw, slot, now)
    }

    /// A RENEWING/REBINDING/INIT-REBOOT request the fast path could not
    /// answer from memory (the promise bound is near, the lease expired, or
    /// the map does not hold it): the client's own lease is extended
    /// durably, before the ACK. Nothing else is ever granted here, so a
    /// renewal for an address nobody leased never creates a lease; it is
    /// NAKed when the server is authoritative, ignored otherwise.
    pub fn renew(
        &mut self,
        si: u16,
        key: &[u8],
        hw: Option<[u8; 6]>,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> RequestOutcome {
        if si as usize >= self.subnets.len() {
            return RequestOutcome::Ignore;
        }
        let Some(addr) = requested else {
            return RequestOutcome::Ignore;
        };
        let unknown = if self.authoritative {
            RequestOutcome::Nak
        } else {
            RequestOutcome::Ignore
        };
        let Some(slot) = self.slot(addr) else {
            return unknown;
        };
        let o = &self.owners[slot as usize];
        let mine = o.key.as_slice() == key && o.subnet == si;
        match o.state {
            OwnerState::Leased if mine => self.grant(si, key, hw, slot, now),
            // The durable renewal is already in flight: its ACK is coming.
            OwnerState::Committing if mine => RequestOutcome::Ignore,
            OwnerState::Leased | OwnerState::Committing | OwnerState::Declined => {
                RequestOutcome::Nak
            }
            OwnerState::Free | OwnerState::Offered => unknown,
        }
    }

    /// Marks `slot` as being committed to the client and returns the grant.
    /// A client moving to a new address gives up its old one, in the store
    /// too; a client re-granted its own lease keeps it if the commit fails.
    fn grant(
        &mut self,
        si: u16,
        key: &[u8],
        hw: Option<[u8; 6]>,
        slot: u32,
        now: u64,
    ) -> RequestOutcome {
        let addr = self.addr(slot);
        let kh = self.hash(si, key);
        if self.owners[slot as usize].state == OwnerState::Committing {
            // A retransmission while the grant is in flight: its ACK is coming.
            return RequestOutcome::Ignore;
        }
        // The client moves: its other address (lease or offer) is given up.
        if let Some(old) = self.client_slot(si, key) {
            if old != slot {
                if let Some(o) = self.free(old) {
                    if o.state == OwnerState::Leased {
                        self.remember_previous(kh, old);
                        self.side_writes.push(LeaseWrite::Release {
                            subnet_id: self.subnets[si as usize].id,
                            address: self.addr(old),
                            client_key: key.to_vec(),
                            version: o.version,
                        });
                    }
                }
            }
        }
        let expiry = now + u64::from(self.subnets[si as usize].lease_time);
        let current = self.owners[slot as usize].clone();
        let hw = hw.or(current.hw);
        let regrant = current.state == OwnerState::Leased && current.key.as_slice() == key;
        if regrant {
            // The lease map keeps answering from the old lease meanwhile.
            self.regrants.insert(slot, current.clone());
        } else if current.state != OwnerState::Free && current.key.as_slice() != key {
            self.free(slot);
        }
        self.put(
            slot,
            Owner {
                key: KeyBuf::new(key),
                expiry: secs32(expiry),
                stored: current.stored,
                version: current.version,
                hw,
                subnet: si,
                state: OwnerState::Committing,
            },
        );
        self.by_client.insert(kh, slot);
        RequestOutcome::Commit(LeaseWrite::Grant {
            subnet_id: self.subnets[si as usize].id,
            address: addr,
            client_key: key.to_vec(),
            hw_address: hw,
            expiry,
        })
    }

    /// The store's verdict on a grant from [`Allocator::request`] or
    /// [`Allocator::renew`]: `version` is the row's version when it was
    /// applied, `None` when the store refused it (another owner) or `ok` is
    /// false (the store failed). A refused or failed new grant is rolled
    /// back; a failed re-grant leaves the client's lease as it was.
    pub fn committed(
        &mut self,
        grant: &LeaseWrite,
        ok: bool,
        version: Option<u32>,
    ) -> AllocDecision {
        let LeaseWrite::Grant {
            subnet_id,
            address,
            client_key,
            hw_address,
            expiry,
        } = grant
        else {
            return AllocDecision::Ignore;
        };
        let (Some(si), Some(slot)) = (self.subnet_index(*subnet_id), self.slot(*address)) else {
            return AllocDecision::Ignore;
        };
        let o = &self.owners[slot as usize];
        if !(o.state == OwnerState::Committing && o.key.as_slice() == client_key.as_slice()) {
            return AllocDecision::Ignore;
        }
        let prior = self.regrants.remove(&slot);
        let Some(version) = version.filter(|_| ok) else {
            match prior {
                Some(p) if !ok => {
                    // The store failed: the lease stands as it was (and the
                    // client retries its renewal).
                    self.put(slot, p);
                    return AllocDecision::Ignore;
                }
                _ => {
                    self.free(slot);
                }
            }
            return if ok {
                AllocDecision::Nak
            } else {
                AllocDecision::Ignore
            };
        };
        self.previous.remove(&self.hash(si, client_key));
        self.install(
            si,
            client_key,
            *hw_address,
            slot,
            OwnerState::Leased,
            *expiry,
        );
        self.owners[slot as usize].version = version;
        AllocDecision::Ack {
            addr: *address,
            lease_secs: self.subnets[si as usize].lease_time,
        }
    }

    /// The leased slot of `addr` whose key hashes to `kh`.
    fn leased_slot(&self, addr: Ipv4Addr, kh: u64) -> Option<u32> {
        let slot = self.slot(addr)?;
        let o = &self.owners[slot as usize];
        (o.state == OwnerState::Leased && self.hash(o.subnet, o.key.as_slice()) == kh)
            .then_some(slot)
    }

    /// A renewal the fast path ACKed from memory. Returns the write that
    /// persists it, or None when the lease is not the client's any more or
    /// the extension is within `write_threshold` of what is durable.
    pub fn renewed(&mut self, addr: Ipv4Addr, kh: u64, expiry: u64) -> Option<LeaseWrite> {
        let slot = self.leased_slot(addr, kh)?;
        self.leases.extend(addr, kh, expiry);
        // Never cache more than a quarter of the lease (Kea's default
        // cache-threshold): a renewal at T1 is always written.
        let lease_time =
            u64::from(self.subnets[self.owners[slot as usize].subnet as usize].lease_time);
        let threshold = self.timers.write_threshold.min(lease_time / 4);
        let o = &mut self.owners[slot as usize];
        o.expiry = o.expiry.max(secs32(expiry));
        if expiry < u64::from(o.stored) + threshold {
            return None;
        }
        Some(LeaseWrite::Extend {
            subnet_id: self.subnets[o.subnet as usize].id,
            address: addr,
            client_key: o.key.as_slice().to_vec(),
            expiry,
            version: o.version,
        })
    }

    /// The store committed `write`: an extension raises the durable expiry
    /// (in the owner and in the lease map, whose promise bound follows it).
    pub fn persisted(&mut self, write: &LeaseWrite) {
        let LeaseWrite::Extend {
            subnet_id,
            address,
            client_key,
            expiry,
            version,
        } = write
        else {
            return;
        };
        let (Some(si), Some(slot)) = (self.subnet_index(*subnet_id), self.slot(*address)) else {
            return;
        };
        let o = &mut self.owners[slot as usize];
        if o.state != OwnerState::Leased
            || o.version != *version
            || o.key.as_slice() != client_key.as_slice()
        {
            return;
        }
        o.stored = o.stored.max(secs32(*expiry));
        o.expiry = o.expiry.max(o.stored);
        let durable = u64::from(o.stored);
        let kh = self.hash(si, client_key);
        self.leases.set_durable(*address, kh, durable);
    }

    /// A DHCPRELEASE.
    pub fn released(&mut self, addr: Ipv4Addr, kh: u64) -> Option<LeaseWrite> {
        let slot = self.leased_slot(addr, kh)?;
        let o = self.free(slot)?;
        self.remember_previous(kh, slot);
        Some(LeaseWrite::Release {
            subnet_id: self.subnets[o.subnet as usize].id,
            address: addr,
            client_key: o.key.as_slice().to_vec(),
            version: o.version,
        })
    }

    /// A DHCPDECLINE: quarantine the address for the probation period.
    pub fn declined(&mut self, addr: Ipv4Addr, kh: u64, now: u64) -> Option<LeaseWrite> {
        let slot = self.leased_slot(addr, kh)?;
        let o = self.free(slot)?;
        let until = now + u64::from(self.timers.decline_probation);
        self.install(
            o.subnet,
            o.key.as_slice(),
            o.hw,
            slot,
            OwnerState::Declined,
            until,
        );
        // The store bumps the row's version with the decline.
        self.owners[slot as usize].version = o.version.wrapping_add(1);
        Some(LeaseWrite::Decline {
            subnet_id: self.subnets[o.subnet as usize].id,
            address: addr,
            client_key: o.key.as_slice().to_vec(),
            until,
            version: o.version,
        })
    }

    /// Reclaims at most `max` addresses whose time has come: offers past
    /// their lifetime, quarantines past probation, and leases past the
    /// reclaim bound (`max(promised, durable + MCLT) + grace`). `now` must
    /// come from a clock that does not jump forward ([`crate::clock`]).
    /// Returns the store writes for the leases.
    pub fn reclaim(&mut self, now: u64, max: usize) -> Vec<LeaseWrite> {
        let mut writes = Vec::new();
        let mut looked = 0;
        let now32 = secs32(now);
        while looked < max {
            let Some(Reverse((due, slot))) = self.due.peek().copied() else {
                break;
            };
            if due > now32 {
                break;
            }
            self.due.pop();
            looked += 1;
            let o = &self.owners[slot as usize];
            let real_due = match o.state {
                OwnerState::Free => continue,
                OwnerState::Committing => now + 1,
                _ => self.due_at(o),
            };
            if real_due > now {
                if secs32(real_due) != due {
                    self.due.push(Reverse((secs32(real_due), slot)));
                }
                continue;
            }
            let addr = self.addr(slot);
            let Some(o) = self.free(slot) else { continue };
            match o.state {
                OwnerState::Leased | OwnerState::Declined => {
                    if o.state == OwnerState::Leased {
                        self.remember_previous(self.hash(o.subnet, o.key.as_slice()), slot);
                    }
                    writes.push(LeaseWrite::Expire {
                        subnet_id: self.subnets[o.subnet as usize].id,
                        address: addr,
                        client_key: o.key.as_slice().to_vec(),
                        version: o.version,
                    });
                }
                _ => {}
            }
        }
        writes
    }

    /// Pool statistics per subnet.
    pub fn stats(&self, now: u64) -> Vec<PoolStats> {
        let mut out: Vec<PoolStats> = self
            .subnets
            .iter()
            .map(|s| {
                let outside = s
                    .reservations
                    .iter()
                    .filter(|(_, a)| !s.in_pool(*a))
                    .count() as u64;
                PoolStats {
                    subnet_id: s.id,
                    subnet: format!("{}/{}", s.network, s.prefix_len),
                    total: s.pool_size() + outside,
                    ..PoolStats::default()
                }
            })
            .collect();
        for o in &self.owners {
            let Some(st) = out.get_mut(o.subnet as usize) else {
                continue;
            };
            match o.state {
                OwnerState::Free => {}
                OwnerState::Leased | OwnerState::Committing => st.assigned += 1,
                OwnerState::Declined => st.declined += 1,
                OwnerState::Offered if o.expiry() > now => st.offered += 1,
                OwnerState::Offered => {}
            }
        }
        for st in &mut out {
            st.free = st
                .total
                .saturating_sub(st.assigned + st.declined + st.offered);
        }
        out
    }

    /// Live leases (for `irondhcp-ctl leases`), in address order.
    pub fn leases(&self) -> Vec<LeaseInfo> {
        let hex = |b: &[u8]| {
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        let mut v: Vec<(Ipv4Addr, LeaseInfo)> = self
            .owners
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o.state, OwnerState::Leased | OwnerState::Declined))
            .map(|(i, o)| {
                let a = self.addr(i as u32);
                let info = LeaseInfo {
                    subnet_id: self.subnets[o.subnet as usize].id,
                    address: a.to_string(),
                    client_key: hex(o.key.as_slice()),
                    hw_address: o.hw.map(|h| hex(&h)),
                    state: if o.state == OwnerState::Leased {
                        "leased"
                    } else {
                        "declined"
                    }
                    .into(),
                    expiry: o.expiry(),
                };
                (a, info)
            })
            .collect();
        v.sort_by_key(|(a, _)| *a);
        v.into_iter().map(|(_, l)| l).collect()
    }
}

/// One lease as `irondhcp-ctl leases` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaseInfo {
    pub subnet_id: u32,
    pub address: String,
    pub client_key: String,
    pub hw_address: Option<String>,
    pub state: String,
    pub expiry: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn setup(pool: &str) -> Allocator {
        let text = format!(
            r#"
[server]
address = "10.0.0.1"
interface = "x"
[[subnet]]
id = 7
cidr = "10.0.0.0/24"
pools = ["{pool}"]
[[subnet.reservation]]
hw_address = "02:00:00:00:00:aa"
address = "10.0.0.50"
"#
        );
        let v = Config::parse(&text).unwrap();
        let map = Arc::new(LeaseMap::new(&v.lease_map_ranges()).unwrap());
        Allocator::new(
            v.subnets.clone(),
            map,
            Timers {
                offer_lifetime: 30,
                decline_probation: 600,
                grace: 61,
                write_threshold: 0,
            },
        )
    }

    fn offer_addr(d: AllocDecision) -> Ipv4Addr {
        match d {
            AllocDecision::Offer { addr, .. } => addr,
            other => panic!("expected an offer, got {other:?}"),
        }
    }

    fn commit(a: &mut Allocator, key: &[u8], addr: Ipv4Addr, now: u64) -> AllocDecision {
        match a.request(0, key, None, Some(addr), now) {
            RequestOutcome::Commit(g) => a.committed(&g, true, Some(1)),
            RequestOutcome::Nak => AllocDecision::Nak,
            RequestOutcome::Ignore => AllocDecision::Ignore,
        }
    }

    #[test]
    fn dora_then_lease_in_map_and_same_offer_again() {
        let mut a = setup("10.0.0.100-10.0.0.109");
        let now = 1_000;
        let addr = offer_addr(a.discover(0, b"c1", None, None, now));
        assert!((Ipv4Addr::new(10, 0, 0, 100)..=Ipv4Addr::new(10, 0, 0, 109)).contains(&addr));
        assert_eq!(
            offer_addr(a.discover(0, b"c1", None, None, now + 1)),
            addr,
            "retransmitted DISCOVER keeps the offer"
        );
        assert_eq!(
            commit(&mut a, b"c1", addr, now + 2),
            AllocDecision::Ack {
                addr,
                lease_secs: 3600
            }
        );
        let v = a.leases.get(addr).unwrap();
        assert_eq!(v.state, LeaseState::Leased);
        assert_eq!(v.key_hash, key_hash(7, b"c1"));
        assert_eq!(
            a.leases.find_client(key_hash(7, b"c1")).map(|(x, _)| x),
            Some(addr)
        );
        assert_eq!(a.stats(now)[0].assigned, 1);
    }

    #[test]
    fn no_address_given_twice_and_pool_exhaustion_is_silent() {
        let mut a = setup("10.0.0.100-10.0.0.104");
        let now = 1_000;
        let mut got = HashSet::new();
        for i in 0..5u8 {
            let addr = offer_addr(a.discover(0, &[i], None, None, now));
            assert_eq!(
                commit(&mut a, &[i], addr, now),
                AllocDecision::Ack {
                    addr,
                    lease_secs: 3600
                }
            );
            assert!(got.insert(addr), "{addr} given twice");
        }
        assert_eq!(
            a.discover(0, b"late", None, None, now),
            AllocDecision::Ignore
        );
        assert_eq!(a.exhausted, 1);
        // Another client asking for a taken address is NAKed.
        let taken = *got.iter().next().unwrap();
        assert_eq!(commit(&mut a, b"thief", taken, now), AllocDecision::Nak);
    }

    #[test]
    fn reservation_wins_and_is_not_given_to_others() {
        let mut a = setup("10.0.0.100-10.0.0.109");
        let key = [1u8, 2, 0, 0, 0, 0, 0xaa];
        assert_eq!(
            offer_addr(a.discover(0, &key, None, None, 5)),
            Ipv4Addr::new(10, 0, 0, 50)
        );
        assert_eq!(
            commit(&mut a, b"other", Ipv4Addr::new(10, 0, 0, 50), 5),
            AllocDecision::Nak
        );
        assert_eq!(
            commit(&mut a, &key, Ipv4Addr::new(10, 0, 0, 101), 5),
            AllocDecision::Nak
        );
    }

    #[test]
    fn release_then_previous_address_is_offered_again() {
        let mut a = setup("10.0.0.100-10.0.0.199");
        let addr = offer_addr(a.discover(0, b"c", None, None, 10));
        commit(&mut a, b"c", addr, 10);
        let w = a.released(addr, key_hash(7, b"c")).unwrap();
        assert!(matches!(w, LeaseWrite::Release { .. }));
        assert!(a.leases.get(addr).is_none());
        assert_eq!(offer_addr(a.discover(0, b"c", None, None, 20)), addr);
    }

    /// The reclaim bound: durable expiry + MCLT + grace, whatever the
    /// write-behind did. A renewal answered from memory whose write never
    /// reached the store (a crash) cannot outlive the bound, so the address
    /// waits for it.
    #[test]
    fn reclaim_waits_for_durable_expiry_plus_mclt_plus_grace() {
        let mut a = setup("10.0.0.100-10.0.0.100");
        let addr = offer_addr(a.discover(0, b"c", None, None, 0));
        commit(&mut a, b"c", addr, 0); // durable 3600, MCLT 1800
                                       // Renewed from memory at T1 to 5400, never persisted.
        assert!(a.renewed(addr, key_hash(7, b"c"), 5_400).is_some());
        assert!(
            a.reclaim(3_600 + 1_800 + 60, 100).is_empty(),
            "not before durable + MCLT + grace"
        );
        assert_eq!(
            a.discover(0, b"d", None, None, 5_000),
            AllocDecision::Ignore
        );
        let w = a.reclaim(3_600 + 1_800 + 61, 100);
        assert_eq!(w.len(), 1);
        assert!(matches!(w[0], LeaseWrite::Expire { version: 1, .. }));
        assert!(a.leases.get(addr).is_none());
        assert_eq!(offer_addr(a.discover(0, b"d", None, None, 5_500)), addr);
    }

    /// The same after a restart: only the durable expiry survives, and the
    /// reloaded lease is still held until it + MCLT + grace.
    #[test]
    fn reloaded_lease_is_held_past_its_stored_expiry_by_mclt_and_grace() {
        let mut a = setup("10.0.0.100-10.0.0.109");
        let addr = Ipv4Addr::new(10, 0, 0, 105);
        a.load(&[LeaseRecord {
            subnet_id: 7,
            address: addr,
            client_key: b"k".to_vec(),
            hw_address: None,
            state: RecordState::Leased,
            expiry: 1_000,
            allocated_by: "x".into(),
            updated_at: 0,
            version: 1,
        }]);
        assert!(a.reclaim(1_000 + 1_800 + 61 - 1, 10).is_empty());
        assert_eq!(a.reclaim(1_000 + 1_800 + 61, 10).len(), 1);
    }

    #[test]
    fn renewals_within_the_write_threshold_are_not_written() {
        let mut a = setup("10.0.0.100-10.0.0.100");
        a.timers.write_threshold = 30;
        let kh = key_hash(7, b"c");
        let addr = offer_addr(a.discover(0, b"c", None, None, 0));
        commit(&mut a, b"c", addr, 0); // stored expiry 3600
        assert!(
            a.renewed(addr, kh, 3_620).is_none(),
            "20 s past the stored expiry: cached"
        );
        assert_eq!(
            a.leases.get(addr).unwrap().expiry,
            3_620,
            "the map still has the new expiry"
        );
        let w = a.renewed(addr, kh, 3_630).expect("30 s past: written");
        a.persisted(&w);
        assert_eq!(
            a.leases.get(addr).unwrap().durable,
            3_630,
            "durable follows the commit"
        );
        assert!(
            a.renewed(addr, kh, 3_640).is_none(),
            "measured from the new durable expiry"
        );
        assert!(a.reclaim(3_630 + 1_800 + 60, 10).is_empty());
    }

    #[test]
    fn the_map_durable_expiry_moves_only_when_the_store_commits() {
        let mut a = setup("10.0.0.100-10.0.0.100");
        let kh = key_hash(7, b"c");
        let addr = offer_addr(a.discover(0, b"c", None, None, 0));
        commit(&mut a, b"c", addr, 0);
        let w = a.renewed(addr, kh, 5_000).unwrap();
        let v = a.leases.get(addr).unwrap();
        assert_eq!(
            (v.expiry, v.durable),
            (5_000, 3_600),
            "promised, not durable yet"
        );
        a.persisted(&w);
        assert_eq!(a.leases.get(addr).unwrap().durable, 5_000);
        // A write for an older version of the lease changes nothing.
        let LeaseWrite::Extend { version, .. } = w else {
            panic!()
        };
        let stale = LeaseWrite::Extend {
            subnet_id: 7,
            address: addr,
            client_key: b"c".to_vec(),
            expiry: 9_000,
            version: version + 5,
        };
        a.persisted(&stale);
        assert_eq!(a.leases.get(addr).unwrap().durable, 5_000);
    }

    #[test]
    fn expired_offer_frees_the_address() {
        let mut a = setup("10.0.0.100-10.0.0.100");
        let addr = offer_addr(a.discover(0, b"c", None, None, 0));
        assert_eq!(a.discover(0, b"d", None, None, 10), AllocDecision::Ignore);
        assert!(a.reclaim(31, 10).is_empty());
        assert_eq!(offer_addr(a.discover(0, b"d", None, None, 31)), addr);
    }

    #[test]
    fn decline_quarantines() {
        let mut a = setup("10.0.0.100-10.0.0.100");
        let addr = offer_addr(a.discover(0, b"c", None, None, 0));
        commit(&mut a, b"c", addr, 0);
        assert!(a.declined(addr, key_hash(7, b"c"), 100).is_some());
        assert_eq!(a.leases.get(addr).unwrap().state, LeaseState::Declined);
        assert_eq!(a.stats(100)[0].declined, 1);
        assert_eq!(a.discover(0, b"d", None, None, 200), AllocDecision::Ignore);
        a.reclaim(700, 10);
        assert_eq!(offer_addr(a.discover(0, b"d", None, None, 701)), addr);
    }

    /// A DECLINEd address goes to nobody for the probation, the decliner
    /// included: not by option 50, not through its reservation.
    #[test]
    fn declined_address_is_offered_to_nobody_not_even_the_decliner() {
        let mut a = setup("10.0.0.100-10.0.0.101");
        let addr = offer_addr(a.discover(0, b"c", None, Some(Ipv4Addr::new(10, 0, 0, 100)), 0));
        commit(&mut a, b"c", addr, 0);
        assert!(a.declined(addr, key_hash(7, b"c"), 10).is_some());
        let again = a.discover(0, b"c", None, Some(addr), 20);
        assert_ne!(
            again,
            AllocDecision::Offer {
                addr,
                lease_secs: 3600
            }
        );
        assert_eq!(commit(&mut a, b"c", addr, 20), AllocDecision::Nak);
        // A reserved client whose reserved address it declined.
        let key = [1u8, 2, 0, 0, 0, 0, 0xaa];
        let res = Ipv4Addr::new(10, 0, 0, 50);
        assert_eq!(offer_addr(a.discover(0, &key, None, None, 30)), res);
        commit(&mut a, &key, res, 30);
        assert!(a.declined(res, key_hash(7, &key), 40).is_some());
        assert_eq!(a.discover(0, &key, None, None, 50), AllocDecision::Ignore);
        assert_eq!(commit(&mut a, &key, res, 50), AllocDecision::Nak);
    }

    /// A renewal of an address nobody leased never creates a lease: NAK when
    /// authoritative, silence otherwise; the client's own lease is re-granted.
    #[test]
    fn renew_only_extends_the_clients_own_lease() {
        let mut a = setup("10.0.0.100-10.0.0.109");
        let free = Ipv4Addr::new(10, 0, 0, 107);
        assert_eq!(a.renew(0, b"c", None, Some(free), 0), RequestOutcome::Nak);
        a.authoritative = false;
        assert_eq!(
            a.renew(0, b"c", None, Some(free), 0),
            RequestOutcome::Ignore
        );
        assert!(a.leases.get(free).is_none());
        assert_eq!(a.stats(0)[0].assigned, 0, "no lease created");
        let addr = offer_addr(a.discover(0, b"c", None, None, 0));
        commit(&mut a, b"c", addr, 0);
        assert_eq!(
            a.renew(0, b"d", None, Some(addr), 10),
            RequestOutcome::Nak,
            "another's"
        );
        let RequestOutcome::Commit(g) = a.renew(0, b"c", None, Some(addr), 10) else {
            panic!("own lease re-granted")
        };
        assert!(matches!(g, LeaseWrite::Grant { expiry: 3_610, .. }));
        assert!(matches!(
            a.committed(&g, true, Some(2)),
            AllocDecision::Ack { .. }
        ));
        assert_eq!(a.leases.get(addr).unwrap().durable, 3_610);
    }

    /// A re-grant of the client's own lease that the store fails to commit
    /// leaves the lease as it was (it used to free the address).
    #[test]
    fn failed_regrant_keeps_the_lease() {
        let mut a = setup("10.0.0.100-10.0.0.100");
        let addr = offer_addr(a.discover(0, b"c", None, None, 0));
        commit(&mut a, b"c", addr, 0);
        let RequestOutcome::Commit(g) = a.renew(0, b"c", None, Some(addr), 100) else {
            panic!()
        };
        assert_eq!(a.committed(&g, false, None), AllocDecision::Ignore);
        let v = a.leases.get(addr).expect("still leased");
        assert_eq!(
            (v.state, v.key_hash, v.durable),
            (LeaseState::Leased, key_hash(7, b"c"), 3_600)
        );
        assert_eq!(
            a.discover(0, b"d", None, None, 200),
            AllocDecision::Ignore,
            "not free"
        );
        assert!(matches!(
            a.renew(0, b"c", None, Some(addr), 300),
            RequestOutcome::Commit(_)
        ));
    }

    /// A hw_address reservation matches a client that also sends option 61.
    #[test]
    fn hw_reservation_matches_a_client_with_a_client_id() {
        let mut a = setup("10.0.0.100-10.0.0.109");
        let hw = Some([2, 0, 0, 0, 0, 0xaa]);
        let got = offer_addr(a.discover(0, b"\xffclient-id", hw, None, 0));
        assert_eq!(got, Ipv4Addr::new(10, 0, 0, 50));
        assert_eq!(
            commit_hw(&mut a, b"\xffclient-id", hw, got, 0),
            AllocDecision::Ack {
                addr: got,
                lease_secs: 3600
            }
        );
    }

    fn commit_hw(
        a: &mut Allocator,
        key: &[u8],
        hw: Option<[u8; 6]>,
        addr: Ipv4Addr,
        now: u64,
    ) -> AllocDecision {
        match a.request(0, key, hw, Some(addr), now) {
            RequestOutcome::Commit(g) => a.committed(&g, true, Some(1)),
            RequestOutcome::Nak => AllocDecision::Nak,
            RequestOutcome::Ignore => AllocDecision::Ignore,
        }
    }

    /// A client that moves to another address releases the old row in the
    /// store too (the allocator and the store must not drift).
    #[test]
    fn moving_client_releases_its_old_lease_in_the_store() {
        let mut a = setup("10.0.0.100-10.0.0.109");
        let first = offer_addr(a.discover(0, b"c", None, None, 0));
        commit(&mut a, b"c", first, 0);
        let other = if first == Ipv4Addr::new(10, 0, 0, 100) {
            Ipv4Addr::new(10, 0, 0, 101)
        } else {
            Ipv4Addr::new(10, 0, 0, 100)
        };
        assert!(matches!(
            commit(&mut a, b"c", other, 10),
            AllocDecision::Ack { .. }
        ));
        let side = a.take_side_writes();
        assert_eq!(
            side,
            vec![LeaseWrite::Release {
                subnet_id: 7,
                address: first,
                client_key: b"c".to_vec(),
                version: 1,
            }]
        );
        assert!(a.leases.get(first).is_none());
    }

    /// The previous-address memory is bounded by the number of addresses.
    #[test]
    fn previous_addresses_are_bounded() {
        let mut a = setup("10.0.0.100-10.0.0.101");
        let cap = a.owners.len();
        for i in 0..(cap as u32 * 10) {
            a.remember_previous(u64::from(i) + 1, 0);
        }
        assert!(a.previous.len() <= cap, "{} > {cap}", a.previous.len());
    }

    /// Offers cannot eat a pool: a flood of DISCOVERs from clients that
    /// never REQUEST holds at most three quarters of it, and a real client
    /// still gets an address committed.
    #[test]
    fn offers_never_hold_the_whole_pool() {
        let mut a = setup("10.0.0.100-10.0.0.139"); // 40 addresses
        for i in 0..1_000u32 {
            let _ = a.discover(0, &i.to_be_bytes(), None, None, 0);
        }
        assert_eq!(a.pool_free(0), 10, "a quarter stays unreserved");
        let addr = offer_addr(a.discover(0, b"real", None, None, 1));
        assert!(matches!(
            commit(&mut a, b"real", addr, 1),
            AllocDecision::Ack { .. }
        ));
        assert_eq!(a.pool_free(0), 9);
    }

    /// The free count follows every owner change, so an exhausted pool is
    /// refused without a scan, and frees come back.
    #[test]
    fn pool_free_count_follows_grants_releases_and_reclaim() {
        let mut a = setup("10.0.0.100-10.0.0.103");
        assert_eq!(a.pool_free(0), 4);
        let mut got = Vec::new();
        for i in 0..4u8 {
            let addr = offer_addr(a.discover(0, &[i], None, None, 0));
            commit(&mut a, &[i], addr, 0);
            got.push(addr);
        }
        assert_eq!(a.pool_free(0), 0);
        assert_eq!(a.discover(0, b"late", None, None, 0), AllocDecision::Ignore);
        a.released(got[0], key_hash(7, &[0])).unwrap();
        assert_eq!(a.pool_free(0), 1);
        a.declined(got[1], key_hash(7, &[1]), 0).unwrap();
        assert_eq!(a.pool_free(0), 1, "a quarantined address is not free");
        assert_eq!(
            a.reclaim(10_000_000, 100).len(),
            3,
            "two leases and the quarantine"
        );
        assert_eq!(a.pool_free(0), 4);
        // The reservation outside the pool is not counted.
        let key = [1u8, 2, 0, 0, 0, 0, 0xaa];
        let r = offer_addr(a.discover(0, &key, None, None, 0));
        commit(&mut a, &key, r, 0);
        assert_eq!(a.pool_free(0), 4);
    }

    #[test]
    fn first_zero_scans_words_within_bounds() {
        let bits = [u64::MAX, !(1u64 << 5), u64::MAX];
        assert_eq!(first_zero(&bits, 0, 192), Some(69));
        assert_eq!(first_zero(&bits, 70, 192), None);
        assert_eq!(first_zero(&bits, 0, 69), None, "end is exclusive");
        assert_eq!(first_zero(&bits, 69, 70), Some(69));
        assert_eq!(first_zero(&bits, 70, 1_000), None, "past the bitmap");
    }

    /// The last free address of a full pool is found wherever the random
    /// start falls.
    #[test]
    fn random_free_finds_the_last_free_address() {
        // 200 addresses, one of them (10.0.0.50) reserved.
        let mut a = setup("10.0.0.1-10.0.0.200");
        let mut got = Vec::new();
        for i in 0..199u16 {
            got.push(offer_addr(a.discover(0, &i.to_be_bytes(), None, None, 0)));
            commit(&mut a, &i.to_be_bytes(), *got.last().unwrap(), 0);
        }
        assert_eq!(a.pool_free(0), 0);
        let last = got[137];
        a.released(last, key_hash(7, &137u16.to_be_bytes()))
            .unwrap();
        for i in 0..50u32 {
            assert_eq!(a.random_free(0), Some(last), "try {i}");
        }
    }

    #[test]
    fn failed_commit_rolls_back() {
        let mut a = setup("10.0.0.100-10.0.0.100");
        let addr = offer_addr(a.discover(0, b"c", None, None, 0));
        let RequestOutcome::Commit(g) = a.request(0, b"c", None, Some(addr), 0) else {
            panic!()
        };
        assert_eq!(a.committed(&g, false, None), AllocDecision::Ignore);
        assert!(a.leases.get(addr).is_none());
        assert_eq!(offer_addr(a.discover(0, b"d", None, None, 1)), addr);
    }

    #[test]
    fn owner_slot_is_compact_and_long_keys_work() {
        assert!(
            std::mem::size_of::<Owner>() <= 48,
            "{}",
            std::mem::size_of::<Owner>()
        );
        let mut a = setup("10.0.0.100-10.0.0.109");
        let long = [7u8; 40];
        let addr = offer_addr(a.discover(0, &long, None, None, 0));
        assert_eq!(
            commit(&mut a, &long, addr, 0),
            AllocDecision::Ack {
                addr,
                lease_secs: 3600
            }
        );
        assert_eq!(offer_addr(a.discover(0, &long, None, None, 1)), addr);
    }

    #[test]
    fn load_restores_map() {
        let mut a = setup("10.0.0.100-10.0.0.109");
        let recs = vec![LeaseRecord {
            subnet_id: 7,
            address: Ipv4Addr::new(10, 0, 0, 105),
            client_key: b"k".to_vec(),
            hw_address: None,
            state: RecordState::Leased,
            expiry: 9_999,
            allocated_by: "x".into(),
            updated_at: 0,
            version: 3,
        }];
        assert_eq!(a.load(&recs), 1);
        assert_eq!(
            a.leases.get(Ipv4Addr::new(10, 0, 0, 105)).unwrap().expiry,
            9_999
        );
        assert_eq!(
            offer_addr(a.discover(0, b"k", None, None, 1)),
            Ipv4Addr::new(10, 0, 0, 105)
        );
    }
}
