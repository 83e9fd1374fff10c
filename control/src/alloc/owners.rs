//! Who owns which address: the dense owner table parallel to the lease
//! map's slots, the client indexes that point into it, and the per-pool
//! counts and bitmap kept in step with it. Every change of an owner goes
//! through [`Allocator::put`], so the counts cannot drift from the table.

use std::cmp::Reverse;
use std::net::Ipv4Addr;

use irondhcp_fastpath::lease_map::{LeaseState, LeaseView};

use super::{secs32, Allocator};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OwnerState {
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
pub(super) enum KeyBuf {
    Inline { len: u8, bytes: [u8; 22] },
    Heap(Box<[u8]>),
}

impl KeyBuf {
    const EMPTY: KeyBuf = KeyBuf::Inline {
        len: 0,
        bytes: [0; 22],
    };

    pub(super) fn new(k: &[u8]) -> Self {
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

    pub(super) fn as_slice(&self) -> &[u8] {
        match self {
            KeyBuf::Inline { len, bytes } => &bytes[..*len as usize],
            KeyBuf::Heap(b) => b,
        }
    }
}

/// The owner of one address slot. Times are seconds since the UNIX epoch
/// in u32 (good until 2106), which keeps an owner within 48 bytes.
#[derive(Debug, Clone)]
pub(super) struct Owner {
    pub(super) key: KeyBuf,
    /// What the client was promised (lease), the quarantine's end
    /// (declined), or the offer's end.
    pub(super) expiry: u32,
    /// The durable expiry: what the store has committed for this lease.
    pub(super) stored: u32,
    /// The store row's version this owner last saw (forward-only writes).
    pub(super) version: u32,
    pub(super) hw: Option<[u8; 6]>,
    pub(super) subnet: u16,
    pub(super) state: OwnerState,
}

pub(super) const FREE: Owner = Owner {
    key: KeyBuf::EMPTY,
    stored: 0,
    expiry: 0,
    version: 0,
    hw: None,
    subnet: 0,
    state: OwnerState::Free,
};

impl Owner {
    pub(super) fn expiry(&self) -> u64 {
        u64::from(self.expiry)
    }
}

/// The first clear bit in `bits[from..to]`, a 64-bit word at a time.
pub(super) fn first_zero(bits: &[u64], from: usize, to: usize) -> Option<usize> {
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

impl Allocator {
    pub(super) fn owner(&self, addr: Ipv4Addr) -> Option<&Owner> {
        let o = &self.owners[self.slot(addr)? as usize];
        (o.state != OwnerState::Free).then_some(o)
    }

    /// Whether `slot` is a dynamic pool address of subnet `si` (counted in
    /// `taken`).
    pub(super) fn counted(&self, si: u16, slot: u32) -> bool {
        let addr = self.addr(slot);
        self.subnets
            .get(si as usize)
            .is_some_and(|s| s.in_pool(addr) && !self.reserved_addrs.contains(&addr))
    }

    /// Replaces the owner of `slot`, keeping the per-pool counts in step:
    /// every change of an owner goes through here.
    pub(super) fn put(&mut self, slot: u32, new: Owner) -> Owner {
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
    pub(super) fn client_slot(&self, si: u16, key: &[u8]) -> Option<u32> {
        let s = *self.by_client.get(&self.hash(si, key))?;
        let o = &self.owners[s as usize];
        (o.state != OwnerState::Free && o.subnet == si && o.key.as_slice() == key).then_some(s)
    }

    /// Records an owner, projects it into the lease map, schedules its review.
    pub(super) fn install(
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
        if map_state.is_some() {
            self.touch(slot);
        }
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

    /// Marks `slot` as having had a lease.
    pub(super) fn touch(&mut self, slot: u32) {
        if let Some(w) = self.touched.get_mut(slot as usize / 64) {
            *w |= 1 << (slot % 64);
        }
    }

    /// Slots in `first..first + len` that have had a lease.
    pub(super) fn touched_in(&self, first: usize, len: usize) -> u64 {
        (first..first + len)
            .filter(|i| {
                self.touched
                    .get(i / 64)
                    .is_some_and(|w| w & (1 << (i % 64)) != 0)
            })
            .count() as u64
    }

    /// Remembers the address a client had, within the bound on `previous`.
    pub(super) fn remember_previous(&mut self, kh: u64, slot: u32) {
        if self.previous.len() < self.owners.len() || self.previous.contains_key(&kh) {
            self.previous.insert(kh, slot);
        }
    }

    /// Forgets the owner of `slot` and clears the lease map slot.
    pub(super) fn free(&mut self, slot: u32) -> Option<Owner> {
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
}
