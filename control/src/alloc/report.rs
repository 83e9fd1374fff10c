//! Reporting: per-subnet pool counts and the live lease list the
//! management socket renders.

use std::net::Ipv4Addr;

use super::owners::OwnerState;
use super::Allocator;

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
                    ..PoolStats::default()
                }
            })
            .collect();
        for o in &self.owners {
            let Some(st) = out.get_mut(o.subnet as usize) else {
                continue;
            };
            match o.state {
                OwnerState::Free => {}
                OwnerState::Leased | OwnerState::Committing => st.assigned += 1,
                OwnerState::Declined => st.declined += 1,
                OwnerState::Offered if o.expiry() > now => st.offered += 1,
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

    /// Live leases (for `irondhcp-ctl leases`), in address order.
    pub fn leases(&self) -> Vec<LeaseInfo> {
        let hex = |b: &[u8]| {
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        let mut v: Vec<(Ipv4Addr, LeaseInfo)> = self
            .owners
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o.state, OwnerState::Leased | OwnerState::Declined))
            .map(|(i, o)| {
                let a = self.addr(i as u32);
                let info = LeaseInfo {
                    subnet_id: self.subnets[o.subnet as usize].id,
                    address: a.to_string(),
                    client_key: hex(o.key.as_slice()),
                    hw_address: o.hw.map(|h| hex(&h)),
                    state: if o.state == OwnerState::Leased {
                        "leased"
                    } else {
                        "declined"
                    }
                    .into(),
                    expiry: o.expiry(),
                };
                (a, info)
            })
            .collect();
        v.sort_by_key(|(a, _)| *a);
        v.into_iter().map(|(_, l)| l).collect()
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
