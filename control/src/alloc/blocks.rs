//! The address blocks this server owns in a cluster (docs/decisions.md, 9).
//!
//! New addresses come from a random point of a random owned block, so
//! servers do not race for the same free addresses and two servers' offers
//! never collide while each has room. A grant from an owned block carries
//! the block's fencing token (`Fence`), which the store checks under the
//! block's shared advisory lock. When the owned blocks are full the server
//! borrows: a random free address of the whole pool, written without a
//! fence and decided by the UNIQUE guard alone. On one box no blocks are
//! ever set and the whole pool is this server's.

use std::net::Ipv4Addr;

use rand::Rng;

use super::owners::first_zero;
use super::Allocator;
use crate::store::Fence;

/// One block this server owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedBlock {
    pub subnet_id: u32,
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
    pub fence: Fence,
}

/// Owned blocks, sorted by first address.
#[derive(Debug, Default)]
pub(super) struct Owned {
    blocks: Vec<OwnedBlock>,
    /// Set once a cluster has told us our blocks: from then on an address
    /// outside them is a borrowed one.
    pub(super) active: bool,
}

impl Allocator {
    /// Replaces the set of owned blocks (the ownership task's latest view).
    pub fn set_owned_blocks(&mut self, mut blocks: Vec<OwnedBlock>) {
        blocks.sort_unstable_by_key(|b| b.first);
        self.owned = Owned {
            blocks,
            active: true,
        };
    }

    /// The fencing token of `addr` when it lies in an owned block.
    pub(super) fn fence_of(&self, addr: Ipv4Addr) -> Option<Fence> {
        let b = &self.owned.blocks;
        let i = b.partition_point(|x| x.first <= addr);
        let blk = b.get(i.checked_sub(1)?)?;
        (addr <= blk.last).then_some(blk.fence)
    }

    /// A free address for a new client of subnet `si`: from the owned
    /// blocks in a cluster, borrowed from the whole pool when they are full
    /// (counted), or from the whole pool on one box.
    pub(super) fn choose_free(&mut self, si: u16) -> Option<Ipv4Addr> {
        if !self.owned.active {
            return self.random_free(si);
        }
        if let Some(a) = self.free_in_owned(si) {
            return Some(a);
        }
        let a = self.random_free(si)?;
        self.borrowed += 1;
        Some(a)
    }

    /// A free address in the owned blocks of subnet `si`: from a random
    /// point of a random block, then the blocks after it, wrapping round.
    fn free_in_owned(&self, si: u16) -> Option<Ipv4Addr> {
        let id = self.subnets.get(si as usize)?.id;
        let spans: Vec<(usize, usize)> = self
            .owned
            .blocks
            .iter()
            .filter(|b| b.subnet_id == id)
            .filter_map(|b| {
                let from = self.slot(b.first)? as usize;
                let to = self.slot(b.last)? as usize + 1;
                (to > from).then_some((from, to))
            })
            .collect();
        if spans.is_empty() {
            return None;
        }
        let mut rng = rand::thread_rng();
        let k = rng.gen_range(0..spans.len());
        let (from, to) = spans[k];
        let start = rng.gen_range(from..to);
        let order = std::iter::once((start, to))
            .chain((1..spans.len()).map(|j| spans[(k + j) % spans.len()]))
            .chain(std::iter::once((from, start)));
        order
            .into_iter()
            .find_map(|(f, t)| first_zero(&self.used_bits, f, t))
            .map(|slot| self.addr(slot as u32))
    }
}
