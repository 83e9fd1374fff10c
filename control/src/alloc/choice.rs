//! Address choice: which address a client is offered, in the order Kea
//! operators expect (current lease or offer, reservation, previous address,
//! the requested one, then a randomised free address: of the whole pool on
//! one box, of the owned blocks in a cluster, see `blocks`).

use std::cmp::Reverse;
use std::net::Ipv4Addr;

use irondhcp_fastpath::channel::AllocDecision;
use rand::Rng;

use super::owners::{first_zero, OwnerState};
use super::{secs32, Allocator};

impl Allocator {
    /// The reserved address of a client: by its key, or, for a client that
    /// sends option 61, by its hardware address (Kea's `hw-address`
    /// reservations match such clients too).
    pub(super) fn reservation_for(
        &self,
        si: u16,
        key: &[u8],
        hw: Option<[u8; 6]>,
    ) -> Option<Ipv4Addr> {
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

    /// Whether `addr` may be given to `key` in subnet `si` now. A declined
    /// address is given to nobody during its probation, the client that
    /// declined it included.
    pub(super) fn available_to(
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
    pub(super) fn random_free(&mut self, si: u16) -> Option<Ipv4Addr> {
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
        let reservation = self.reservation_for(si, key, hw);
        // Current lease or pending offer.
        if let Some(slot) = self.client_slot(si, key) {
            let addr = self.addr(slot);
            let lifetime = u64::from(self.timers.offer_lifetime);
            let moved = reservation.filter(|r| *r != addr);
            let moved_free = moved.is_some_and(|r| self.available_to(si, key, hw, r, now));
            let o = &mut self.owners[slot as usize];
            match (o.state, moved) {
                // A reservation made since the lease: offer it. Nobody else
                // can take a reserved address, so the offer holds none;
                // the REQUEST gives up the old lease (`grant`).
                (OwnerState::Leased | OwnerState::Committing, Some(r)) if moved_free => {
                    return AllocDecision::Offer {
                        addr: r,
                        lease_secs,
                    }
                }
                (OwnerState::Offered, Some(_)) => {
                    self.free(slot);
                }
                (OwnerState::Leased | OwnerState::Committing, _) => {
                    return AllocDecision::Offer { addr, lease_secs }
                }
                (OwnerState::Offered, None) => {
                    o.expiry = secs32(now + lifetime);
                    self.due.push(Reverse((secs32(now + lifetime), slot)));
                    return AllocDecision::Offer { addr, lease_secs };
                }
                (OwnerState::Declined | OwnerState::Free, _) => {}
            }
        }
        let mut candidates: Vec<Ipv4Addr> = Vec::with_capacity(3);
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
                    self.choose_free(si)
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
}
