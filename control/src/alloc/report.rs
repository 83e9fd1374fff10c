//! Reporting: per-subnet pool counts and the live lease list the
//! management socket renders.

use std::net::Ipv4Addr;

use super::owners::OwnerState;
use super::Allocator;

/// Per-subnet counts for `irondhcp-ctl stats`, with the same counts for
/// each of its pool ranges (`irondhcp-ctl pools`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    pub subnet_id: u32,
    pub subnet: String,
    pub total: u64,
    pub assigned: u64,
    pub declined: u64,
    pub offered: u64,
    pub free: u64,
    pub ranges: Vec<RangeStats>,
}

/// The counts of one pool range (`first-last`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RangeStats {
    pub range: String,
    pub total: u64,
    pub assigned: u64,
    pub declined: u64,
    pub offered: u64,
    pub free: u64,
    /// Addresses that have had a lease at some time (a stored row of any
    /// state): dhcpd-pools' "touched".
    pub touched: u64,
}

/// Adds one address's state to a count (`now`: whether an offer is still
/// held).
fn count(
    state: OwnerState,
    live_offer: bool,
    assigned: &mut u64,
    declined: &mut u64,
    offered: &mut u64,
) {
    match state {
        OwnerState::Free => {}
        OwnerState::Leased | OwnerState::Committing => *assigned += 1,
        OwnerState::Declined => *declined += 1,
        OwnerState::Offered if live_offer => *offered += 1,
        OwnerState::Offered => {}
    }
}

impl Allocator {
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
                    ranges: s
                        .pools
                        .iter()
                        .map(|(f, l)| RangeStats {
                            range: format!("{f}-{l}"),
                            total: u64::from(u32::from(*l) - u32::from(*f)) + 1,
                            ..RangeStats::default()
                        })
                        .collect(),
                    ..PoolStats::default()
                }
            })
            .collect();
        for (i, o) in self.owners.iter().enumerate() {
            if o.state == OwnerState::Free {
                continue;
            }
            let Some(st) = out.get_mut(o.subnet as usize) else {
                continue;
            };
            let live = o.expiry() > now;
            count(
                o.state,
                live,
                &mut st.assigned,
                &mut st.declined,
                &mut st.offered,
            );
            let a = self.addr(i as u32);
            let pools = &self.subnets[o.subnet as usize].pools;
            if let Some(r) = pools.iter().position(|(f, l)| (*f..=*l).contains(&a)) {
                let r = &mut st.ranges[r];
                count(
                    o.state,
                    live,
                    &mut r.assigned,
                    &mut r.declined,
                    &mut r.offered,
                );
            }
        }
        for (si, st) in out.iter_mut().enumerate() {
            st.free = st
                .total
                .saturating_sub(st.assigned + st.declined + st.offered);
            for (r, (f, l)) in st.ranges.iter_mut().zip(&self.subnets[si].pools) {
                r.free = r.total.saturating_sub(r.assigned + r.declined + r.offered);
                if let Some(first) = self.leases.slot_index(*f) {
                    let len = (u32::from(*l) - u32::from(*f)) as usize + 1;
                    r.touched = self.touched_in(first, len);
                }
            }
        }
        out
    }

    /// Live leases (for `irondhcp-ctl leases`), in address order.
    pub fn leases(&self) -> Vec<LeaseInfo> {
        self.lease_page(&LeaseQuery {
            limit: usize::MAX,
            ..LeaseQuery::default()
        })
        .leases
    }

    /// The live leases `q` asks for, in address order, one page at a time:
    /// at most `q.limit`, after `q.after`; `next` is the cursor of the
    /// following page (None on the last).
    pub fn lease_page(&self, q: &LeaseQuery) -> LeasePage {
        let mut hits: Vec<(Ipv4Addr, usize)> = self
            .owners
            .iter()
            .enumerate()
            .filter(|(_, o)| match o.state {
                OwnerState::Leased => q.state.as_deref().is_none_or(|s| s == "leased"),
                OwnerState::Declined => q.state.as_deref().is_none_or(|s| s == "declined"),
                _ => false,
            })
            .map(|(i, _)| (self.addr(i as u32), i))
            .filter(|&(a, i)| {
                let o = &self.owners[i];
                q.after.is_none_or(|after| a > after)
                    && q.address.is_none_or(|x| x == a)
                    && q.among.as_ref().is_none_or(|v| v.binary_search(&a).is_ok())
                    && q.subnet
                        .is_none_or(|id| self.subnets[o.subnet as usize].id == id)
                    && q.hw_address.is_none_or(|hw| o.hw == Some(hw))
                    && q.client_key
                        .as_deref()
                        .is_none_or(|k| o.key.as_slice() == k)
            })
            .collect();
        hits.sort_unstable_by_key(|&(a, _)| a);
        let more = hits.len() > q.limit;
        hits.truncate(q.limit);
        let next = if more {
            hits.last().map(|&(a, _)| a)
        } else {
            None
        };
        let leases = hits
            .into_iter()
            .map(|(a, i)| self.lease_info(a, i as u32))
            .collect();
        LeasePage { leases, next }
    }

    /// The lease on `addr` (slot `slot`) as operators see it.
    pub(super) fn lease_info(&self, addr: Ipv4Addr, slot: u32) -> LeaseInfo {
        let o = &self.owners[slot as usize];
        LeaseInfo {
            subnet_id: self.subnets[o.subnet as usize].id,
            address: addr.to_string(),
            client_key: crate::hex::colon(o.key.as_slice()),
            hw_address: o.hw.map(|h| crate::hex::colon(&h)),
            state: if o.state == OwnerState::Declined {
                "declined"
            } else {
                "leased"
            }
            .into(),
            expiry: o.expiry(),
        }
    }
}

/// Which leases to list (every field that is set must match) and the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseQuery {
    pub subnet: Option<u32>,
    pub address: Option<Ipv4Addr>,
    pub hw_address: Option<[u8; 6]>,
    /// The client key: option 61 when the client sent one, else its
    /// hardware type and address (as `client_key` shows it).
    pub client_key: Option<Vec<u8>>,
    /// "leased" or "declined".
    pub state: Option<String>,
    /// Only addresses after this one (the previous page's `next`).
    pub after: Option<Ipv4Addr>,
    /// Only these addresses (sorted): those the store found by relay ids.
    pub among: Option<Vec<Ipv4Addr>>,
    pub limit: usize,
}

impl Default for LeaseQuery {
    fn default() -> Self {
        Self {
            subnet: None,
            address: None,
            hw_address: None,
            client_key: None,
            state: None,
            after: None,
            among: None,
            limit: DEFAULT_PAGE,
        }
    }
}

/// Leases on a page unless asked otherwise.
pub const DEFAULT_PAGE: usize = 1000;

/// One page of [`Allocator::lease_page`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeasePage {
    pub leases: Vec<LeaseInfo>,
    /// The cursor of the next page (pass it as `after`), None on the last.
    pub next: Option<Ipv4Addr>,
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
