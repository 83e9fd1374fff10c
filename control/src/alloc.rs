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

/// How long after expiry a lease's address may be reused.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub offer_lifetime: u32,
    pub decline_probation: u32,
    /// Write-behind lag plus grace, in seconds: an address is reclaimed only
    /// this long after its stored expiry (DESIGN.md, decision 3).
    pub reclaim_margin: u64,
    /// A renewal that moves the expiry less than this many seconds (and less
    /// than a quarter of the lease time) past the stored one is not written
    /// (lease caching, like Kea's `cache-threshold`). Safe while it is at
    /// most the reclaim grace: after
    /// a restart the stored expiry is at most this much short of what the
    /// client was promised, and reclamation waits longer than that.
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

/// The owner of one address slot.
#[derive(Debug, Clone)]
struct Owner {
    key: KeyBuf,
    /// Lease/quarantine expiry, or the offer's end.
    expiry: u64,
    hw: Option<[u8; 6]>,
    subnet: u16,
    state: OwnerState,
    /// The expiry last written to the store (seconds; fits u32 until 2106).
    stored: u32,
}

const FREE: Owner = Owner {
    key: KeyBuf::EMPTY,
    stored: 0,
    expiry: 0,
    hw: None,
    subnet: 0,
    state: OwnerState::Free,
};

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
    /// Key hash → slot of the address the client had last.
    previous: HashMap<u64, u32>,
    /// Key hash → reserved address.
    reserved: HashMap<u64, Ipv4Addr>,
    reserved_addrs: HashSet<Ipv4Addr>,
    /// (due, slot): when to look at an owner again (lazy: stale entries are
    /// re-pushed or dropped when popped). Seconds fit u32 until 2106.
    due: BinaryHeap<Reverse<(u32, u32)>>,
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
        Self {
            subnets,
            leases,
            timers,
            owners,
            by_client: HashMap::new(),
            previous: HashMap::new(),
            reserved,
            reserved_addrs,
            due: BinaryHeap::new(),
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
                true
            }
            RecordState::Released | RecordState::Expired => {
                self.previous.insert(self.hash(si, &r.client_key), slot);
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
            let view = LeaseView {
                key_hash: kh,
                expiry,
                state: ms,
            };
            if let Err(e) = self.leases.set(addr, view) {
                tracing::error!(address = %addr, error = %e, "lease map refused an address");
            }
        }
        if state != OwnerState::Declined {
            self.by_client.insert(kh, slot);
        }
        self.schedule(slot, state, expiry);
        self.owners[slot as usize] = Owner {
            key: KeyBuf::new(key),
            expiry,
            hw,
            subnet: si,
            state,
            stored: secs32(expiry),
        };
    }

    fn schedule(&mut self, slot: u32, state: OwnerState, expiry: u64) {
        let due = match state {
            OwnerState::Leased => expiry + self.timers.reclaim_margin,
            _ => expiry,
        };
        self.due.push(Reverse((secs32(due), slot)));
    }

    /// Forgets the owner of `slot` and clears the lease map slot.
    fn free(&mut self, slot: u32) -> Option<Owner> {
        let o = std::mem::replace(&mut self.owners[slot as usize], FREE);
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

    /// Whether `addr` may be given to `key` in subnet `si` now.
    fn available_to(&self, si: u16, key: &[u8], addr: Ipv4Addr, now: u64) -> bool {
        let s = &self.subnets[si as usize];
        if !s.contains(addr) {
            return false;
        }
        if let Some(o) = self.owner(addr) {
            let dead = o.state == OwnerState::Offered && o.expiry <= now;
            return o.key.as_slice() == key || dead;
        }
        match self.reserved.get(&self.hash(si, key)) {
            Some(r) => *r == addr,
            None => {
                !self.reserved_addrs.contains(&addr) && s.in_pool(addr) && self.leases.covers(addr)
            }
        }
    }

    fn random_free(&mut self, si: u16, now: u64) -> Option<Ipv4Addr> {
        let s = &self.subnets[si as usize];
        let total = s.pool_size();
        if total == 0 {
            return None;
        }
        let start = rand::thread_rng().gen_range(0..total);
        for step in 0..total {
            let mut n = (start + step) % total;
            let mut cand = None;
            for (f, l) in &s.pools {
                let size = u64::from(u32::from(*l) - u32::from(*f)) + 1;
                if n < size {
                    cand = Some(Ipv4Addr::from(u32::from(*f) + n as u32));
                    break;
                }
                n -= size;
            }
            let Some(a) = cand else { continue };
            let taken = match self.owner(a) {
                Some(o) => !(o.state == OwnerState::Offered && o.expiry <= now),
                None => false,
            };
            if !taken && !self.reserved_addrs.contains(&a) {
                return Some(a);
            }
        }
        None
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
                    o.expiry = now + lifetime;
                    self.due.push(Reverse((secs32(now + lifetime), slot)));
                    return AllocDecision::Offer { addr, lease_secs };
                }
                OwnerState::Declined | OwnerState::Free => {}
            }
        }
        let mut candidates: Vec<Ipv4Addr> = Vec::with_capacity(3);
        let reservation = self.reserved.get(&kh).copied();
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
            .find(|a| self.available_to(si, key, *a, now))
            .or_else(|| {
                if reservation.is_some() {
                    None // a reserved client gets its reservation or nothing
                } else {
                    self.random_free(si, now)
                }
            });
        let Some(addr) = chosen else {
            self.exhausted += 1;
            return AllocDecision::Ignore;
        };
        let Some(slot) = self.slot(addr) else {
            return AllocDecision::Ignore;
        };
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

    /// DHCPREQUEST that needs a commit (SELECTING, or a lease the fast path
    /// does not know).
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
        if !self.available_to(si, key, addr, now) {
            return RequestOutcome::Nak;
        }
        let Some(slot) = self.slot(addr) else {
            return RequestOutcome::Nak;
        };
        let kh = self.hash(si, key);
        if let Some(r) = self.reserved.get(&kh) {
            if *r != addr {
                return RequestOutcome::Nak;
            }
        }
        if self.owners[slot as usize].state == OwnerState::Committing {
            // A retransmission while the grant is in flight: its ACK is coming.
            return RequestOutcome::Ignore;
        }
        // The client moves: its other address (lease or offer) is given up.
        if let Some(old) = self.client_slot(si, key) {
            if old != slot {
                if let Some(o) = self.free(old) {
                    if o.state == OwnerState::Leased {
                        self.previous.insert(kh, old);
                    }
                }
            }
        }
        let expiry = now + u64::from(self.subnets[si as usize].lease_time);
        let current = &self.owners[slot as usize];
        let hw = hw.or(current.hw);
        if current.state != OwnerState::Free && current.key.as_slice() != key {
            self.free(slot);
        }
        self.owners[slot as usize] = Owner {
            key: KeyBuf::new(key),
            expiry,
            hw,
            subnet: si,
            state: OwnerState::Committing,
            stored: secs32(expiry),
        };
        self.by_client.insert(kh, slot);
        RequestOutcome::Commit(LeaseWrite::Grant {
            subnet_id: self.subnets[si as usize].id,
            address: addr,
            client_key: key.to_vec(),
            hw_address: hw,
            expiry,
        })
    }

    /// The store's verdict on a grant from [`Allocator::request`]. `applied`
    /// false (another owner in storage) or `ok` false (the store failed)
    /// roll the grant back.
    pub fn committed(&mut self, grant: &LeaseWrite, ok: bool, applied: bool) -> AllocDecision {
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
        if !(ok && applied) {
            self.free(slot);
            return if ok {
                AllocDecision::Nak
            } else {
                AllocDecision::Ignore
            };
        }
        self.previous.remove(&self.hash(si, client_key));
        self.install(
            si,
            client_key,
            *hw_address,
            slot,
            OwnerState::Leased,
            *expiry,
        );
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
    /// the extension is within `write_threshold` of what is stored.
    pub fn renewed(&mut self, addr: Ipv4Addr, kh: u64, expiry: u64) -> Option<LeaseWrite> {
        let slot = self.leased_slot(addr, kh)?;
        self.leases.extend(addr, kh, expiry);
        // Never cache more than a quarter of the lease (Kea's default
        // cache-threshold): a renewal at T1 is always written.
        let lease_time =
            u64::from(self.subnets[self.owners[slot as usize].subnet as usize].lease_time);
        let threshold = self.timers.write_threshold.min(lease_time / 4);
        let o = &mut self.owners[slot as usize];
        o.expiry = o.expiry.max(expiry);
        if expiry < u64::from(o.stored) + threshold {
            return None;
        }
        o.stored = secs32(expiry);
        Some(LeaseWrite::Extend {
            subnet_id: self.subnets[o.subnet as usize].id,
            address: addr,
            client_key: o.key.as_slice().to_vec(),
            expiry,
        })
    }

    /// A DHCPRELEASE.
    pub fn released(&mut self, addr: Ipv4Addr, kh: u64) -> Option<LeaseWrite> {
        let slot = self.leased_slot(addr, kh)?;
        let o = self.free(slot)?;
        self.previous.insert(kh, slot);
        Some(LeaseWrite::Release {
            subnet_id: self.subnets[o.subnet as usize].id,
            address: addr,
            client_key: o.key.as_slice().to_vec(),
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
        Some(LeaseWrite::Decline {
            subnet_id: self.subnets[o.subnet as usize].id,
            address: addr,
            client_key: o.key.as_slice().to_vec(),
            until,
        })
    }

    /// Reclaims at most `max` addresses whose time has come: offers past
    /// their lifetime, quarantines past probation, and leases past expiry
    /// plus the reclaim margin. Returns the store writes for the leases.
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
                OwnerState::Leased => o.expiry + self.timers.reclaim_margin,
                OwnerState::Committing => now + 1,
                _ => o.expiry,
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
                        self.previous
                            .insert(self.hash(o.subnet, o.key.as_slice()), slot);
                    }
                    writes.push(LeaseWrite::Expire {
                        subnet_id: self.subnets[o.subnet as usize].id,
                        address: addr,
                        client_key: o.key.as_slice().to_vec(),
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
                OwnerState::Offered if o.expiry > now => st.offered += 1,
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
                    expiry: o.expiry,
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
                reclaim_margin: 61,
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
            RequestOutcome::Commit(g) => a.committed(&g, true, true),
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

    #[test]
    fn reclaim_waits_for_expiry_plus_margin() {
        let mut a = setup("10.0.0.100-10.0.0.100");
        let addr = offer_addr(a.discover(0, b"c", None, None, 0));
        commit(&mut a, b"c", addr, 0); // expiry 3600
        assert!(a.renewed(addr, key_hash(7, b"c"), 4_000).is_some());
        assert!(
            a.reclaim(4_000 + 60, 100).is_empty(),
            "not before expiry + margin"
        );
        assert_eq!(
            a.discover(0, b"d", None, None, 4_000),
            AllocDecision::Ignore
        );
        let w = a.reclaim(4_000 + 61, 100);
        assert_eq!(w.len(), 1);
        assert!(a.leases.get(addr).is_none());
        assert_eq!(offer_addr(a.discover(0, b"d", None, None, 4_100)), addr);
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
        assert!(a.renewed(addr, kh, 3_630).is_some(), "30 s past: written");
        assert!(
            a.renewed(addr, kh, 3_640).is_none(),
            "measured from the new stored expiry"
        );
        // Reclamation follows the in-memory expiry, not the stored one.
        assert!(a.reclaim(3_640 + 60, 10).is_empty());
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

    #[test]
    fn failed_commit_rolls_back() {
        let mut a = setup("10.0.0.100-10.0.0.100");
        let addr = offer_addr(a.discover(0, b"c", None, None, 0));
        let RequestOutcome::Commit(g) = a.request(0, b"c", None, Some(addr), 0) else {
            panic!()
        };
        assert_eq!(a.committed(&g, false, false), AllocDecision::Ignore);
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
