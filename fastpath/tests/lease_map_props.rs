//! Property tests of the lease map against a plain `HashMap` model.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use irondhcp_fastpath::lease_map::{LeaseMap, LeaseMapError, LeaseState, LeaseView};
use proptest::prelude::*;

/// Covered: 10.0.0.10-15, 10.0.0.20, 10.0.1.0-7 (15 addresses, 8 buckets).
const RANGES: [(u32, u32); 3] = [(0x0a00_000a, 6), (0x0a00_0014, 1), (0x0a00_0100, 8)];

/// Candidate addresses: all covered ones plus uncovered neighbours.
fn candidates() -> Vec<Ipv4Addr> {
    let mut v: Vec<u32> = RANGES
        .iter()
        .flat_map(|&(first, n)| (first - 1)..=(first + n))
        .collect();
    v.sort_unstable();
    v.dedup();
    v.into_iter().map(Ipv4Addr::from).collect()
}

/// A few keys, half of them sharing low 32 bits (bucket 0) to force index
/// evictions, plus 0 (a lease with no indexable owner).
fn keys() -> Vec<u64> {
    let mut k: Vec<u64> = (1..=6).collect();
    k.extend((1..=6).map(|i| i << 32));
    k.push(0);
    k
}

#[derive(Debug, Clone)]
enum Op {
    Set(usize, usize, u64, LeaseState),
    Clear(usize),
    Extend(usize, usize, u64),
}

fn op() -> impl Strategy<Value = Op> {
    let a = 0..candidates().len();
    let k = 0..keys().len();
    let state = prop_oneof![
        3 => Just(LeaseState::Leased),
        1 => Just(LeaseState::Declined),
        1 => Just(LeaseState::Free),
    ];
    prop_oneof![
        4 => (a.clone(), k.clone(), 0u64..1000, state).prop_map(|(a, k, e, s)| Op::Set(a, k, e, s)),
        1 => a.clone().prop_map(Op::Clear),
        3 => (a, k, 0u64..1000).prop_map(|(a, k, e)| Op::Extend(a, k, e)),
    ]
}

fn new_map() -> LeaseMap {
    let r: Vec<(Ipv4Addr, u32)> = RANGES
        .iter()
        .map(|&(f, n)| (Ipv4Addr::from(f), n))
        .collect();
    LeaseMap::new(&r).expect("valid ranges")
}

fn covered(a: Ipv4Addr) -> bool {
    let a = u32::from(a);
    RANGES.iter().any(|&(f, n)| a >= f && a - f < n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn matches_model(ops in prop::collection::vec(op(), 1..60)) {
        let m = new_map();
        let addrs = candidates();
        let keys = keys();
        let mut model: HashMap<Ipv4Addr, LeaseView> = HashMap::new();

        for op in ops {
            match op {
                Op::Set(ai, ki, expiry, state) => {
                    let (a, key_hash) = (addrs[ai], keys[ki]);
                    let view = LeaseView { key_hash, expiry, durable: expiry, state };
                    let r = m.set(a, view);
                    if !covered(a) {
                        prop_assert_eq!(r, Err(LeaseMapError::NotCovered(a)));
                        continue;
                    }
                    prop_assert_eq!(r, Ok(()));
                    if state == LeaseState::Free {
                        model.remove(&a);
                    } else {
                        model.insert(a, view);
                        if key_hash != 0 {
                            // The newest insert always gets an index entry.
                            prop_assert_eq!(m.find_client(key_hash), Some((a, view)));
                        }
                    }
                }
                Op::Clear(ai) => {
                    let a = addrs[ai];
                    prop_assert_eq!(m.clear(a), model.remove(&a).is_some());
                }
                Op::Extend(ai, ki, expiry) => {
                    let (a, key_hash) = (addrs[ai], keys[ki]);
                    let before = m.get(a);
                    let owner = matches!(
                        model.get(&a),
                        Some(v) if v.state == LeaseState::Leased && v.key_hash == key_hash
                    );
                    prop_assert_eq!(m.extend(a, key_hash, expiry), owner);
                    if let Some(v) = model.get_mut(&a).filter(|_| owner) {
                        v.expiry = v.expiry.max(expiry);
                    }
                    // Extend never moves an expiry backwards.
                    if let (Some(b), Some(after)) = (before, m.get(a)) {
                        prop_assert!(after.expiry >= b.expiry);
                    }
                }
            }

            // Slots match the model exactly.
            for &a in &addrs {
                prop_assert_eq!(m.covers(a), covered(a));
                prop_assert_eq!(m.get(a), model.get(&a).copied(), "address {}", a);
            }
            prop_assert_eq!(m.len(), model.len());
            prop_assert_eq!(m.is_empty(), model.is_empty());
            let mut seen = BTreeMap::new();
            m.for_each(|a, v| {
                seen.insert(a, v);
            });
            let want: BTreeMap<_, _> = model.iter().map(|(a, v)| (*a, *v)).collect();
            prop_assert_eq!(seen, want);

            // One owner per address: the index may miss, never lie.
            for &k in &keys {
                if let Some((a, v)) = m.find_client(k) {
                    prop_assert_ne!(k, 0);
                    prop_assert_eq!(v.key_hash, k);
                    prop_assert_ne!(v.state, LeaseState::Free);
                    prop_assert_eq!(model.get(&a), Some(&v));
                }
            }
        }
    }

    #[test]
    fn new_accepts_exactly_disjoint_nonempty_ranges(
        ranges in prop::collection::vec((0u32..64, 0u32..8), 0..6),
    ) {
        let base = 0x0a00_0000u32;
        let input: Vec<(Ipv4Addr, u32)> =
            ranges.iter().map(|&(f, n)| (Ipv4Addr::from(base + f), n)).collect();
        let mut owned = HashMap::new();
        let mut ok = true;
        for &(f, n) in &ranges {
            ok &= n > 0;
            for a in f..f + n {
                ok &= owned.insert(a, ()).is_none();
            }
        }
        match LeaseMap::new(&input) {
            Ok(m) => {
                prop_assert!(ok);
                prop_assert_eq!(m.capacity(), owned.len());
                for a in 0u32..80 {
                    prop_assert_eq!(m.covers(Ipv4Addr::from(base + a)), owned.contains_key(&a));
                }
            }
            Err(e) => {
                prop_assert!(!ok);
                prop_assert_eq!(e, LeaseMapError::BadRanges);
            }
        }
    }
}
