//! Reservations made while the server runs (the store's, beside the
//! config file's): adding, moving and removing one keeps every count the
//! engine holds in step, and a change takes effect at once.
//!
//! - A reservation may only name an address nobody else holds. An address
//!   leased to another client could not go to the new one before that
//!   lease's durable expiry + MCLT + grace (the reclaim bound) anyway, so
//!   the change is refused with the lease named, rather than accepted and
//!   silently late (Kea accepts it and the conflict shows at renewal).
//! - A client that holds another address keeps it until it next asks:
//!   its lease leaves the fast path's map, so the renewal reaches the
//!   control plane, which NAKs it ([`Allocator::renew`]); the client's
//!   next DISCOVER is offered the reserved address.
//! - Runtime reservations name pool addresses: the lease map has slots
//!   for the pools and the config's reservations only, fixed at start.
//! - The config file's reservations are the file's: changing one here is
//!   refused.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::owners::OwnerState;
use super::Allocator;

/// Why a reservation change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    #[error("no subnet has id {0}")]
    NoSubnet(u32),
    #[error("{0} is not inside a pool of subnet {1}; reservations made at run time name pool addresses (the config file may reserve others)")]
    OutsidePools(Ipv4Addr, u32),
    #[error("this client's reservation in subnet {0} is in the config file; change it there")]
    InConfig(u32),
    #[error("{0} is reserved for another client in the config file")]
    AddressInConfig(Ipv4Addr),
    #[error("{0} is reserved for another client")]
    AddressReserved(Ipv4Addr),
    #[error("{address} is {state} to client {client} until {until} UTC; release it first (irondhcp-ctl lease release {address}) or reserve another address")]
    AddressHeld {
        address: Ipv4Addr,
        state: &'static str,
        client: String,
        /// The lease's end, UTC.
        until: String,
    },
}

/// The runtime reservations the engine holds, by key hash: (subnet index,
/// client key, address).
pub(super) type Runtime = HashMap<u64, (u16, Vec<u8>, Ipv4Addr)>;

impl Allocator {
    /// Reserves `addr` in subnet `subnet_id` for the client with key
    /// `key`, replacing its runtime reservation if it has one; returns the
    /// address it had reserved before.
    pub fn reserve(
        &mut self,
        subnet_id: u32,
        key: &[u8],
        addr: Ipv4Addr,
    ) -> Result<Option<Ipv4Addr>, ReserveError> {
        let si = self
            .subnet_index(subnet_id)
            .ok_or(ReserveError::NoSubnet(subnet_id))?;
        let kh = self.hash(si, key);
        if self.config_reserved.contains(&kh) {
            return Err(ReserveError::InConfig(subnet_id));
        }
        let s = &self.subnets[si as usize];
        let previous = self.runtime_reserved.get(&kh).map(|r| r.2);
        if previous == Some(addr) {
            return Ok(previous);
        }
        if self.reserved_addrs.contains(&addr) {
            let in_config = s.reservations.iter().any(|(_, a)| *a == addr);
            return Err(if in_config {
                ReserveError::AddressInConfig(addr)
            } else {
                ReserveError::AddressReserved(addr)
            });
        }
        if !s.in_pool(addr) || self.slot(addr).is_none() {
            return Err(ReserveError::OutsidePools(addr, subnet_id));
        }
        if let Some(o) = self.owner(addr) {
            if !(o.subnet == si && o.key.as_slice() == key) {
                return Err(ReserveError::AddressHeld {
                    address: addr,
                    state: match o.state {
                        OwnerState::Declined => "quarantined (declined)",
                        OwnerState::Offered => "offered",
                        _ => "leased",
                    },
                    client: crate::hex::colon(o.key.as_slice()),
                    until: crate::kea_api::timestamp(o.expiry().saturating_mul(1_000_000))[..19]
                        .to_string(),
                });
            }
        }
        if let Some(old) = previous {
            self.drop_reservation(si, kh, old);
        }
        self.add_reservation(si, kh, key, addr);
        Ok(previous)
    }

    /// Removes the runtime reservation of the client with key `key`;
    /// returns its address (`None`: it had none).
    pub fn unreserve(
        &mut self,
        subnet_id: u32,
        key: &[u8],
    ) -> Result<Option<Ipv4Addr>, ReserveError> {
        let si = self
            .subnet_index(subnet_id)
            .ok_or(ReserveError::NoSubnet(subnet_id))?;
        let kh = self.hash(si, key);
        if self.config_reserved.contains(&kh) {
            return Err(ReserveError::InConfig(subnet_id));
        }
        let Some(&(_, _, addr)) = self.runtime_reserved.get(&kh) else {
            return Ok(None);
        };
        self.drop_reservation(si, kh, addr);
        Ok(Some(addr))
    }

    /// Makes the runtime reservations exactly `want` ((subnet id, client
    /// key, address)), as the store holds them after another server's
    /// change. Returns the ones that could not be applied, with why.
    pub fn set_runtime_reservations(
        &mut self,
        want: &[(u32, Vec<u8>, Ipv4Addr)],
    ) -> Vec<(u32, Ipv4Addr, ReserveError)> {
        let mut wanted: HashMap<u64, Ipv4Addr> = HashMap::new();
        for (id, key, a) in want {
            if let Some(si) = self.subnet_index(*id) {
                wanted.insert(self.hash(si, key), *a);
            }
        }
        let gone: Vec<(u16, u64, Ipv4Addr)> = self
            .runtime_reserved
            .iter()
            .filter(|(kh, r)| wanted.get(*kh) != Some(&r.2))
            .map(|(kh, r)| (r.0, *kh, r.2))
            .collect();
        for (si, kh, a) in gone {
            self.drop_reservation(si, kh, a);
        }
        want.iter()
            .filter_map(|(id, key, a)| self.reserve(*id, key, *a).err().map(|e| (*id, *a, e)))
            .collect()
    }

    /// The runtime reservations: (subnet id, client key, address).
    pub fn runtime_reservations(&self) -> Vec<(u32, Vec<u8>, Ipv4Addr)> {
        self.runtime_reserved
            .values()
            .map(|(si, k, a)| (self.subnets[*si as usize].id, k.clone(), *a))
            .collect()
    }

    fn add_reservation(&mut self, si: u16, kh: u64, key: &[u8], addr: Ipv4Addr) {
        let Some(slot) = self.slot(addr) else { return };
        let held = self.owner(addr).is_some();
        // A held pool address is counted in `taken` until it is reserved.
        if held && self.counted(si, slot) {
            self.taken[si as usize] -= 1;
        }
        self.reserved.insert(kh, addr);
        self.reserved_addrs.insert(addr);
        self.runtime_reserved.insert(kh, (si, key.to_vec(), addr));
        self.dynamic[si as usize] -= 1;
        if !held {
            self.used_bits[slot as usize / 64] |= 1 << (slot % 64);
        }
        // The client's lease on another address leaves the fast path's map:
        // its next renewal reaches the control plane and is NAKed, and its
        // next DISCOVER is offered the reserved address.
        if let Some(other) = self.client_slot(si, key) {
            if other != slot && self.owners[other as usize].state == OwnerState::Leased {
                self.leases.clear(self.addr(other));
            }
        }
    }

    fn drop_reservation(&mut self, si: u16, kh: u64, addr: Ipv4Addr) {
        self.reserved.remove(&kh);
        self.reserved_addrs.remove(&addr);
        self.runtime_reserved.remove(&kh);
        self.dynamic[si as usize] += 1;
        let Some(slot) = self.slot(addr) else { return };
        if self.owner(addr).is_some() {
            if self.counted(si, slot) {
                self.taken[si as usize] += 1;
            }
        } else {
            self.used_bits[slot as usize / 64] &= !(1 << (slot % 64));
        }
    }
}
