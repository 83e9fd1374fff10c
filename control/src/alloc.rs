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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerState {
    Offered,
    /// A grant is in the store's current batch.
    Committing,
    Leased,
    Declined,
}

#[derive(Debug, Clone)]
struct Owner {
    subnet: u16,
    key: Box<[u8]>,
    hw: Option<[u8; 6]>,
    state: OwnerState,
    /// Lease/quarantine expiry, or the offer's end.
    expiry: u64,
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
    owners: HashMap<Ipv4Addr, Owner>,
    by_client: HashMap<(u16, Box<[u8]>), Ipv4Addr>,
    previous: HashMap<(u16, Box<[u8]>), Ipv4Addr>,
    reserved: HashMap<(u16, Box<[u8]>), Ipv4Addr>,
    reserved_addrs: HashSet<Ipv4Addr>,
    /// (due, address): when to look at an owner again (lazy: stale entries
    /// are re-pushed or dropped when popped).
    due: BinaryHeap<Reverse<(u64, Ipv4Addr)>>,
    /// Requests refused because the pool was empty.
    pub exhausted: u64,
}

impl Allocator {
    pub fn new(subnets: Vec<Subnet>, leases: Arc<LeaseMap>, timers: Timers) -> Self {
        let mut reserved = HashMap::new();
        let mut reserved_addrs = HashSet::new();
        for (i, s) in subnets.iter().enumerate() {
            for (k, a) in &s.reservations {
                reserved.insert((i as u16, k.clone().into_boxed_slice()), *a);
                reserved_addrs.insert(*a);
            }
        }
        Self {
            subnets,
            leases,
            timers,
            owners: HashMap::new(),
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

    /// Rebuilds the state from stored leases (at start). Returns how many
    /// live leases went into the lease map.
    pub fn load(&mut self, records: &[LeaseRecord], now: u64) -> usize {
        let mut live = 0;
        for r in records {
            let Some(si) = self.subnet_index(r.subnet_id) else {
                tracing::warn!(subnet = r.subnet_id, address = %r.address, "stored lease of a subnet no longer configured; ignored");
                continue;
            };
            let key: Box<[u8]> = r.client_key.clone().into_boxed_slice();
            match r.state {
                RecordState::Leased | RecordState::Declined => {
                    let state = if r.state == RecordState::Leased {
                        OwnerState::Leased
                    } else {
                        OwnerState::Declined
                    };
                    if !self.leases.covers(r.address) {
                        tracing::warn!(address = %r.address, "stored lease outside every pool; kept in storage, not served");
                        continue;
                    }
                    self.install(si, &key, r.hw_address, r.address, state, r.expiry);
                    live += 1;
                }
                RecordState::Released | RecordState::Expired => {
                    self.previous.insert((si, key), r.address);
                }
            }
        }
        let _ = now;
        live
    }

    /// Records an owner, projects it into the lease map, schedules its review.
    fn install(
        &mut self,
        si: u16,
        key: &[u8],
        hw: Option<[u8; 6]>,
        addr: Ipv4Addr,
        state: OwnerState,
        expiry: u64,
    ) {
        let key: Box<[u8]> = key.into();
        let map_state = match state {
            OwnerState::Leased => Some(LeaseState::Leased),
            OwnerState::Declined => Some(LeaseState::Declined),
            _ => None,
        };
        if let Some(ms) = map_state {
            let view = LeaseView {
                key_hash: self.hash(si, &key),
                expiry,
                state: ms,
            };
            if let Err(e) = self.leases.set(addr, view) {
                tracing::error!(address = %addr, error = %e, "lease map refused an address");
            }
        }
        if state != OwnerState::Declined {
            self.by_client.insert((si, key.clone()), addr);
        }
        self.schedule(addr, state, expiry);
        self.owners.insert(
            addr,
            Owner {
                subnet: si,
                key,
                hw,
                state,
                expiry,
            },
        );
    }

    fn schedule(&mut self, addr: Ipv4Addr, state: OwnerState, expiry: u64) {
        let due = match state {
            OwnerState::Leased => expiry + self.timers.reclaim_margin,
            _ => expiry,
        };
        self.due.push(Reverse((due, addr)));
    }

    /// Forgets the owner of `addr` and clears the lease map slot.
    fn free(&mut self, addr: Ipv4Addr) -> Option<Owner> {
        let o = self.owners.remove(&addr)?;
        let ck = (o.subnet, o.key.clone());
        if self.by_client.get(&ck) == Some(&addr) {
            self.by_client.remove(&ck);
        }
        self.leases.clear(addr);
        Some(o)
    }

    /// Whether `addr` may be given to `key` in subnet `si` now.
    fn available_to(&self, si: u16, key: &[u8], addr: Ipv4Addr, now: u64) -> bool {
        let s = &self.subnets[si as usize];
        if !s.contains(addr) {
            return false;
        }
        if let Some(o) = self.owners.get(&addr) {
            let dead = match o.state {
                OwnerState::Offered => o.expiry <= now,
                _ => false,
            };
            return &*o.key == key || dead;
        }
        match self.reserved.get(&(si, key.into())) {
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
        let pools = s.pools.clone();
        for step in 0..total {
            let mut n = (start + step) % total;
            let mut cand = None;
            for (f, l) in &pools {
                let size = u64::from(u32::from(*l) - u32::from(*f)) + 1;
                if n < size {
                    cand = Some(Ipv4Addr::from(u32::from(*f) + n as u32));
                    break;
                }
                n -= size;
            }
            let Some(a) = cand else { continue };
            let taken = match self.owners.get(&a) {
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
        let ck: (u16, Box<[u8]>) = (si, key.into());
        let lease_secs = self.subnets[si as usize].lease_time;
        // Current lease or pending offer.
        if let Some(a) = self.by_client.get(&ck).copied() {
            if let Some(o) = self.owners.get_mut(&a) {
                match o.state {
                    OwnerState::Leased | OwnerState::Committing => {
                        return AllocDecision::Offer {
                            addr: a,
                            lease_secs,
                        }
                    }
                    OwnerState::Offered => {
                        o.expiry = now + u64::from(self.timers.offer_lifetime);
                        self.due.push(Reverse((o.expiry, a)));
                        return AllocDecision::Offer {
                            addr: a,
                            lease_secs,
                        };
                    }
                    OwnerState::Declined => {}
                }
            }
        }
        let mut candidates: Vec<Ipv4Addr> = Vec::with_capacity(3);
        if let Some(r) = self.reserved.get(&ck) {
            candidates.push(*r);
        }
        if let Some(p) = self.previous.get(&ck) {
            candidates.push(*p);
        }
        if let Some(r) = requested {
            candidates.push(r);
        }
        let chosen = candidates
            .into_iter()
            .find(|a| self.available_to(si, key, *a, now))
            .or_else(|| {
                if self.reserved.contains_key(&ck) {
                    None // a reserved client gets its reservation or nothing
                } else {
                    self.random_free(si, now)
                }
            });
        let Some(addr) = chosen else {
            self.exhausted += 1;
            return AllocDecision::Ignore;
        };
        if let Some(old) = self.owners.get(&addr) {
            if old.state == OwnerState::Offered {
                self.free(addr);
            }
        }
        self.install(
            si,
            key,
            hw,
            addr,
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
        let ck: (u16, Box<[u8]>) = (si, key.into());
        if let Some(r) = self.reserved.get(&ck) {
            if *r != addr {
                return RequestOutcome::Nak;
            }
        }
        if let Some(o) = self.owners.get(&addr) {
            if o.state == OwnerState::Committing {
                // A retransmission while the grant is in flight: its ACK is coming.
                return RequestOutcome::Ignore;
            }
        }
        // The client moves: its other address (lease or offer) is given up.
        if let Some(old) = self.by_client.get(&ck).copied() {
            if old != addr {
                if let Some(o) = self.free(old) {
                    if o.state == OwnerState::Leased {
                        self.previous.insert(ck.clone(), old);
                    }
                }
            }
        }
        let expiry = now + u64::from(self.subnets[si as usize].lease_time);
        if let Some(old) = self.owners.get(&addr) {
            if &*old.key != key {
                self.free(addr);
            }
        }
        let hw = hw.or_else(|| self.owners.get(&addr).and_then(|o| o.hw));
        self.owners.insert(
            addr,
            Owner {
                subnet: si,
                key: key.into(),
                hw,
                state: OwnerState::Committing,
                expiry,
            },
        );
        self.by_client.insert(ck, addr);
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
        let Some(si) = self.subnet_index(*subnet_id) else {
            return AllocDecision::Ignore;
        };
        let ours = self
            .owners
            .get(address)
            .is_some_and(|o| o.state == OwnerState::Committing && *o.key == **client_key);
        if !ours {
            return AllocDecision::Ignore;
        }
        if !(ok && applied) {
            self.free(*address);
            return if ok {
                AllocDecision::Nak
            } else {
                AllocDecision::Ignore
            };
        }
        self.previous
            .remove(&(si, client_key.clone().into_boxed_slice()));
        self.install(
            si,
            client_key,
            *hw_address,
            *address,
            OwnerState::Leased,
            *expiry,
        );
        AllocDecision::Ack {
            addr: *address,
            lease_secs: self.subnets[si as usize].lease_time,
        }
    }

    /// Finds the owner of `addr` whose key hashes to `key_hash`.
    fn owner_by_hash(&self, addr: Ipv4Addr, key_hash_: u64) -> Option<&Owner> {
        self.owners
            .get(&addr)
            .filter(|o| self.hash(o.subnet, &o.key) == key_hash_)
    }

    /// A renewal the fast path ACKed from memory.
    pub fn renewed(&mut self, addr: Ipv4Addr, kh: u64, expiry: u64) -> Option<LeaseWrite> {
        let o = self.owner_by_hash(addr, kh)?;
        if o.state != OwnerState::Leased {
            return None;
        }
        let (si, key) = (o.subnet, o.key.to_vec());
        self.leases.extend(addr, kh, expiry);
        if let Some(o) = self.owners.get_mut(&addr) {
            o.expiry = o.expiry.max(expiry);
        }
        Some(LeaseWrite::Extend {
            subnet_id: self.subnets[si as usize].id,
            address: addr,
            client_key: key,
            expiry,
        })
    }

    /// A DHCPRELEASE.
    pub fn released(&mut self, addr: Ipv4Addr, kh: u64) -> Option<LeaseWrite> {
        let o = self.owner_by_hash(addr, kh)?;
        if o.state != OwnerState::Leased {
            return None;
        }
        let o = self.free(addr)?;
        self.previous.insert((o.subnet, o.key.clone()), addr);
        Some(LeaseWrite::Release {
            subnet_id: self.subnets[o.subnet as usize].id,
            address: addr,
            client_key: o.key.to_vec(),
        })
    }

    /// A DHCPDECLINE: quarantine the address for the probation period.
    pub fn declined(&mut self, addr: Ipv4Addr, kh: u64, now: u64) -> Option<LeaseWrite> {
        let o = self.owner_by_hash(addr, kh)?;
        if o.state != OwnerState::Leased {
            return None;
        }
        let o = self.free(addr)?;
        let until = now + u64::from(self.timers.decline_probation);
        self.install(o.subnet, &o.key, o.hw, addr, OwnerState::Declined, until);
        Some(LeaseWrite::Decline {
            subnet_id: self.subnets[o.subnet as usize].id,
            address: addr,
            client_key: o.key.to_vec(),
            until,
        })
    }

    /// Reclaims at most `max` addresses whose time has come: offers past
    /// their lifetime, quarantines past probation, and leases past expiry
    /// plus the reclaim margin. Returns the store writes for the leases.
    pub fn reclaim(&mut self, now: u64, max: usize) -> Vec<LeaseWrite> {
        let mut writes = Vec::new();
        let mut looked = 0;
        while looked < max {
            let Some(Reverse((due, addr))) = self.due.peek().copied() else {
                break;
            };
            if due > now {
                break;
            }
            self.due.pop();
            looked += 1;
            let Some(o) = self.owners.get(&addr) else {
                continue;
            };
            let real_due = match o.state {
                OwnerState::Leased => o.expiry + self.timers.reclaim_margin,
                OwnerState::Committing => now + 1,
                _ => o.expiry,
            };
            if real_due > now {
                if real_due != due {
                    self.due.push(Reverse((real_due, addr)));
                }
                continue;
            }
            let Some(o) = self.free(addr) else { continue };
            match o.state {
                OwnerState::Leased | OwnerState::Declined => {
                    if o.state == OwnerState::Leased {
                        self.previous.insert((o.subnet, o.key.clone()), addr);
                    }
                    writes.push(LeaseWrite::Expire {
                        subnet_id: self.subnets[o.subnet as usize].id,
                        address: addr,
                        client_key: o.key.to_vec(),
                    });
                }
                OwnerState::Offered | OwnerState::Committing => {}
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
        for o in self.owners.values() {
            let st = &mut out[o.subnet as usize];
            match o.state {
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

    /// Live leases (for `irondhcp-ctl leases`): (subnet id, address, key,
    /// hw, state, expiry).
    pub fn leases(&self) -> Vec<LeaseInfo> {
        let mut v: Vec<LeaseInfo> = self
            .owners
            .iter()
            .filter(|(_, o)| matches!(o.state, OwnerState::Leased | OwnerState::Declined))
            .map(|(a, o)| LeaseInfo {
                subnet_id: self.subnets[o.subnet as usize].id,
                address: a.to_string(),
                client_key: o
                    .key
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
                hw_address: o.hw.map(|h| {
                    h.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                }),
                state: if o.state == OwnerState::Leased {
                    "leased"
                } else {
                    "declined"
                }
                .into(),
                expiry: o.expiry,
            })
            .collect();
        v.sort_by_key(|l| l.address.parse::<Ipv4Addr>().ok());
        v
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
        assert_eq!(a.load(&recs, 0), 1);
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
