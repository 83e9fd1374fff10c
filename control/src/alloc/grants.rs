//! A lease's life after the offer: REQUEST and durable renewal grants,
//! the store's verdict on them, renewals ACKed from memory and their
//! persistence, RELEASE and DECLINE. Each returns the store write it needs;
//! the durable expiry moves only when the store reports a commit.

use std::net::Ipv4Addr;

use irondhcp_fastpath::channel::AllocDecision;

use crate::store::LeaseWrite;

use super::owners::{KeyBuf, Owner, OwnerState};
use super::{secs32, Allocator, RequestOutcome};

impl Allocator {
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
        // A client whose reservation names another address moves there:
        // its renewal is NAKed and its next DISCOVER offered the
        // reservation (Kea does the same).
        if self.reservation_for(si, key, hw).is_some_and(|r| r != addr) {
            return RequestOutcome::Nak;
        }
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

    /// The (subnet id, address) of a renewal whose address this map holds
    /// no lease on (free, or only offered): in a cluster the lease may
    /// exist all the same, written by another server. `None` for an address
    /// outside the pools or one the map does hold.
    pub fn lease_missed(&self, si: u16, requested: Option<Ipv4Addr>) -> Option<(u32, Ipv4Addr)> {
        let subnet = self.subnets.get(si as usize)?;
        let addr = requested?;
        let slot = self.slot(addr)?;
        matches!(
            self.owners[slot as usize].state,
            OwnerState::Free | OwnerState::Offered
        )
        .then_some((subnet.id, addr))
    }

    /// Marks `slot` as being committed to the client and returns the grant.
    /// A client moving to a new address gives up its old one, in the store
    /// too; a client re-granted its own lease keeps it if the commit fails.
    pub(super) fn grant(
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
            guard_secs: self.subnets[si as usize]
                .mclt
                .saturating_add(u32::try_from(self.timers.grace).unwrap_or(u32::MAX)),
            // A renewal is not an allocation: the client holds the address
            // whoever owns its block now.
            fence: if regrant { None } else { self.fence_of(addr) },
            relay: Default::default(),
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
            ..
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
    pub(super) fn leased_slot(&self, addr: Ipv4Addr, kh: u64) -> Option<u32> {
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

    /// An operator's release (Kea's `lease4-del`): the lease or the
    /// declined address's quarantine ends now and the address is free.
    /// The operator asserts the client is gone; the client is not told
    /// (DHCP has no way to), as with Kea. `None` when the address holds
    /// no lease, or only an offer or a grant still being committed.
    pub fn release_by_operator(
        &mut self,
        addr: Ipv4Addr,
        _now: u64,
    ) -> Option<(super::LeaseInfo, LeaseWrite)> {
        let slot = self.slot(addr)?;
        let o = &self.owners[slot as usize];
        if !matches!(o.state, OwnerState::Leased | OwnerState::Declined) {
            return None;
        }
        let info = self.lease_info(addr, slot);
        let kh = self.hash(o.subnet, o.key.as_slice());
        let o = self.free(slot)?;
        let (subnet_id, client_key) = (
            self.subnets[o.subnet as usize].id,
            o.key.as_slice().to_vec(),
        );
        // A lease is released as its client would release it; a declined
        // address's quarantine row is ended as reclaim ends it.
        let write = if o.state == OwnerState::Leased {
            self.remember_previous(kh, slot);
            LeaseWrite::Release {
                subnet_id,
                address: addr,
                client_key,
                version: o.version,
            }
        } else {
            LeaseWrite::Expire {
                subnet_id,
                address: addr,
                client_key,
                version: o.version,
            }
        };
        Some((info, write))
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
}
