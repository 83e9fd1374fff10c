//! Fuzz target `config`: bytes → `irondhcp_control::config::Config::parse`
//! (TOML, then validation), as `irondhcp --check` runs it on an operator's
//! file.
//!
//! Input that is not UTF-8 is skipped (the daemon reads the file with
//! `read_to_string`, which refuses it before the parser sees it). The
//! parser must never panic; a file it accepts must also yield what the
//! daemon builds from it next, without surprises: the fast path's view
//! (one subnet view per subnet, T1 < T2 < lease time) and lease-map ranges
//! that are non-empty, inside their subnets, disjoint, and accepted by
//! `LeaseMap::new` (a config that passes `--check` and then fails to start
//! is a finding).

use std::net::Ipv4Addr;

use irondhcp_control::config::Config;
use irondhcp_fastpath::lease_map::LeaseMap;

/// Lease maps larger than this are not allocated per input (a /8 pool is
/// 16 M slots); their ranges are still checked for overlap.
const MAX_MAP: u64 = 1 << 16;

/// Runs one input; panics on a finding.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(v) = Config::parse(text) else {
        return;
    };
    let fast = v.fast_config([2, 0, 0, 0, 0, 1]);
    assert_eq!(fast.subnets.len(), v.subnets.len(), "one view per subnet");
    for s in &fast.subnets {
        assert!(
            s.renew_time < s.rebind_time && s.rebind_time < s.lease_time,
            "T1 {} < T2 {} < lease {} accepted out of order",
            s.renew_time,
            s.rebind_time,
            s.lease_time
        );
    }
    for s in &v.subnets {
        for (f, l) in &s.pools {
            assert!(
                f <= l && s.contains(*f) && s.contains(*l),
                "pool {f}-{l} outside"
            );
        }
        for (_, a) in &s.reservations {
            assert!(s.contains(*a), "reservation {a} outside its subnet");
        }
        let _ = s.pool_size();
    }

    let ranges = v.lease_map_ranges();
    let mut spans: Vec<(u64, u64)> = ranges
        .iter()
        .map(|&(first, count)| {
            assert!(count > 0, "empty range at {first}");
            let start = u64::from(u32::from(first));
            (start, start + u64::from(count))
        })
        .collect();
    spans.sort_unstable();
    for w in spans.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "lease-map ranges overlap: {} and {}",
            Ipv4Addr::from(w[0].0 as u32),
            Ipv4Addr::from(w[1].0 as u32)
        );
    }
    assert!(
        spans.last().is_none_or(|s| s.1 <= 1 << 32),
        "range past 255.255.255.255"
    );
    let total: u64 = spans.iter().map(|(a, b)| b - a).sum();
    if total <= MAX_MAP {
        if let Err(e) = LeaseMap::new(&ranges) {
            panic!("a validated config's ranges are refused by the lease map: {e}");
        }
    }
}
