//! Reclaim: when an address may go to someone else. A lease is held until
//! `max(promised, durable + MCLT) + grace` (the reclaim bound of
//! docs/decisions.md); offers and quarantines until their end.

use std::cmp::Reverse;

use crate::store::LeaseWrite;

use super::owners::{Owner, OwnerState};
use super::{secs32, Allocator};

impl Allocator {
    /// When `o`'s address may be looked at again: for a lease, the reclaim
    /// bound `max(promised, durable + MCLT) + grace` (docs/decisions.md);
    /// for an offer or a quarantine, its end.
    pub(super) fn due_at(&self, o: &Owner) -> u64 {
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
}
