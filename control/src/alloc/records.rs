//! Lease records from elsewhere: the store's rows at start, and (in a
//! cluster) a lease another server committed. A record is applied through
//! the same owner table as a local grant, so the indexes, counts and lease
//! map stay one projection of it.

use crate::store::{LeaseRecord, LeaseWrite, RecordState};

use super::owners::OwnerState;
use super::Allocator;

impl Allocator {
    /// Rebuilds the state from stored leases (at start). Returns how many
    /// live leases went into the lease map.
    pub fn load(&mut self, records: &[LeaseRecord]) -> usize {
        records.iter().filter(|r| self.apply_record(r)).count()
    }

    /// Applies one lease record from elsewhere: a stored row at start, or a
    /// lease another server committed. Returns true when the record is live
    /// (leased or declined) and now in the lease map.
    ///
    /// Forward-only, like the store's writes: a record whose version is not
    /// newer than the one the owner table already holds for that address is
    /// stale (an event replayed, or overtaken by a later one) and changes
    /// nothing, except that the same version of a live lease with a later
    /// expiry raises its durable expiry (an extension). A newer record
    /// replaces whatever owned the address; a newer release or expiry frees
    /// it.
    pub fn apply_record(&mut self, r: &LeaseRecord) -> bool {
        let Some(si) = self.subnet_index(r.subnet_id) else {
            tracing::warn!(subnet = r.subnet_id, address = %r.address, "lease record of a subnet no longer configured; ignored");
            return false;
        };
        let Some(slot) = self.slot(r.address) else {
            tracing::warn!(address = %r.address, "lease record outside every pool; kept in storage, not served");
            return false;
        };
        // A row of any state is a lease the address once had.
        self.touch(slot);
        let current = &self.owners[slot as usize];
        if matches!(current.state, OwnerState::Leased | OwnerState::Declined)
            && current.version >= r.version
        {
            // The same version of the same live lease with a later expiry
            // is an extension another server persisted (a renewal it
            // answered): the durable expiry moves forward, never back.
            if current.version == r.version
                && current.state == OwnerState::Leased
                && r.state == RecordState::Leased
                && current.key.as_slice() == r.client_key.as_slice()
            {
                self.persisted(&LeaseWrite::Extend {
                    subnet_id: r.subnet_id,
                    address: r.address,
                    client_key: r.client_key.clone(),
                    expiry: r.expiry,
                    version: r.version,
                });
            }
            return false;
        }
        match r.state {
            RecordState::Leased | RecordState::Declined => {
                let state = if r.state == RecordState::Leased {
                    OwnerState::Leased
                } else {
                    OwnerState::Declined
                };
                let same_client = current.subnet == si
                    && current.key.as_slice() == r.client_key.as_slice()
                    && current.state != OwnerState::Free;
                if !same_client {
                    // Another owner (an offer, a stale lease) gives way, and
                    // leaves the client index it held.
                    self.free(slot);
                }
                self.install(si, &r.client_key, r.hw_address, slot, state, r.expiry);
                self.owners[slot as usize].version = r.version;
                true
            }
            RecordState::Released | RecordState::Expired => {
                if current.state != OwnerState::Free && current.state != OwnerState::Committing {
                    self.free(slot);
                }
                self.remember_previous(self.hash(si, &r.client_key), slot);
                false
            }
        }
    }
}
