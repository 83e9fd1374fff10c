//! Which client each ACKed address belongs to, shared by all threads.
//!
//! A fixed-size, lock-free open-addressing table of `AtomicU64` entries
//! (`address << 32 | client`), filled with compare-and-swap and never
//! resized, so the hot path does not allocate. It finds duplicates (one
//! address ACKed to two clients) and tells the ARP responder which MAC owns
//! an address. A released address is marked free, so a later ACK of it to
//! another client is a reuse, not a duplicate.

use std::sync::atomic::{AtomicU64, Ordering};

/// Owner value of an address that was released.
const FREE: u32 = u32::MAX;
/// How far a lookup probes before giving up (the table is sized for a
/// load factor of at most one half).
const MAX_PROBE: usize = 64;

/// What [`AddrTable::ack`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// First ACK of the address in this run (or a reuse after a release).
    New,
    /// ACKed again to the same client.
    Same,
    /// The address was ACKed to another client that still holds it.
    Duplicate { other: u32 },
    /// The table is full; the ACK was not checked.
    Full,
}

pub struct AddrTable {
    slots: Box<[AtomicU64]>,
    mask: usize,
}

impl AddrTable {
    /// A table for about `expected` addresses (at least 1024 slots, at most
    /// 2^25).
    pub fn new(expected: u64) -> Self {
        let want = expected.saturating_mul(2).clamp(1024, 1 << 25);
        let n = want.next_power_of_two() as usize;
        Self {
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
            mask: n - 1,
        }
    }

    #[inline]
    fn home(&self, addr: u32) -> usize {
        (u64::from(addr).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & self.mask
    }

    /// Records that `addr` was ACKed to `client` (the low 32 bits of its
    /// index). Address 0 is never recorded.
    pub fn ack(&self, addr: u32, client: u32) -> AckOutcome {
        if addr == 0 {
            return AckOutcome::New;
        }
        let new = (u64::from(addr) << 32) | u64::from(client);
        let mut i = self.home(addr);
        for _ in 0..MAX_PROBE {
            let slot = &self.slots[i];
            let mut cur = slot.load(Ordering::Acquire);
            loop {
                if cur == 0 {
                    match slot.compare_exchange(0, new, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => return AckOutcome::New,
                        Err(v) => {
                            cur = v;
                            continue;
                        }
                    }
                }
                if (cur >> 32) as u32 != addr {
                    break;
                }
                let owner = cur as u32;
                if owner == client {
                    return AckOutcome::Same;
                }
                if owner != FREE {
                    return AckOutcome::Duplicate { other: owner };
                }
                match slot.compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return AckOutcome::New,
                    Err(v) => cur = v,
                }
            }
            i = (i + 1) & self.mask;
        }
        AckOutcome::Full
    }

    /// Marks `addr` free if `client` holds it (after a RELEASE or a NAK).
    pub fn release(&self, addr: u32, client: u32) {
        if let Some(i) = self.find(addr) {
            let held = (u64::from(addr) << 32) | u64::from(client);
            let free = (u64::from(addr) << 32) | u64::from(FREE);
            let _ = self.slots[i].compare_exchange(held, free, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// The client that holds `addr`, if any.
    pub fn owner(&self, addr: u32) -> Option<u32> {
        let v = self.slots[self.find(addr)?].load(Ordering::Acquire) as u32;
        (v != FREE).then_some(v)
    }

    fn find(&self, addr: u32) -> Option<usize> {
        if addr == 0 {
            return None;
        }
        let mut i = self.home(addr);
        for _ in 0..MAX_PROBE {
            let v = self.slots[i].load(Ordering::Acquire);
            if v == 0 {
                return None;
            }
            if (v >> 32) as u32 == addr {
                return Some(i);
            }
            i = (i + 1) & self.mask;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_reuse_and_owner() {
        let t = AddrTable::new(10);
        assert_eq!(t.ack(0xc612_0107, 1), AckOutcome::New);
        assert_eq!(t.ack(0xc612_0107, 1), AckOutcome::Same);
        assert_eq!(t.ack(0xc612_0107, 2), AckOutcome::Duplicate { other: 1 });
        assert_eq!(t.owner(0xc612_0107), Some(1));
        assert_eq!(t.owner(0xc612_0108), None);
        // Releasing by somebody else changes nothing.
        t.release(0xc612_0107, 2);
        assert_eq!(t.owner(0xc612_0107), Some(1));
        t.release(0xc612_0107, 1);
        assert_eq!(t.owner(0xc612_0107), None);
        assert_eq!(t.ack(0xc612_0107, 2), AckOutcome::New);
        assert_eq!(t.owner(0xc612_0107), Some(2));
        assert_eq!(t.ack(0, 5), AckOutcome::New);
    }

    #[test]
    fn many_addresses_from_many_threads() {
        let t = std::sync::Arc::new(AddrTable::new(40_000));
        let hs: Vec<_> = (0..4u32)
            .map(|k| {
                let t = t.clone();
                std::thread::spawn(move || {
                    let mut dups = 0;
                    for i in 0..10_000u32 {
                        // Every thread ACKs its own addresses plus one
                        // address in 100 that all threads share.
                        let addr = if i % 100 == 0 {
                            0x0a00_0000 + i
                        } else {
                            0x0b00_0000 + k * 100_000 + i
                        };
                        if matches!(t.ack(addr, k), AckOutcome::Duplicate { .. }) {
                            dups += 1;
                        }
                    }
                    dups
                })
            })
            .collect();
        let dups: u32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        // 100 shared addresses, each a duplicate for three of four threads.
        assert_eq!(dups, 300);
        assert_eq!(t.owner(0x0b00_0000 + 300_000 + 7), Some(3));
    }
}
