//! The allocation engine's rules, one scenario each.

use irondhcp_fastpath::channel::AllocDecision;

use irondhcp_fastpath::lease_map::LeaseState;

use super::owners::{first_zero, Owner};
use super::*;
use crate::config::Config;
use crate::store::{LeaseRecord, RecordState};

fn setup(pool: &str) -> Allocator {
    let text = format!(
        r#"
[server]
address = "10.0.0.1"
interface = "x"
[[subnet]]
id = 7
cidr = "10.0.0.0/24"
pools = ["{pool}"]
[[subnet.reservation]]
hw_address = "02:00:00:00:00:aa"
address = "10.0.0.50"
"#
    );
    let v = Config::parse(&text).unwrap();
    let map = Arc::new(LeaseMap::new(&v.lease_map_ranges()).unwrap());
    Allocator::new(
        v.subnets.clone(),
        map,
        Timers {
            offer_lifetime: 30,
            decline_probation: 600,
            grace: 61,
            write_threshold: 0,
        },
    )
}

fn offer_addr(d: AllocDecision) -> Ipv4Addr {
    match d {
        AllocDecision::Offer { addr, .. } => addr,
        other => panic!("expected an offer, got {other:?}"),
    }
}

fn commit(a: &mut Allocator, key: &[u8], addr: Ipv4Addr, now: u64) -> AllocDecision {
    match a.request(0, key, None, Some(addr), now) {
        RequestOutcome::Commit(g) => a.committed(&g, true, Some(1)),
        RequestOutcome::Nak => AllocDecision::Nak,
        RequestOutcome::Ignore => AllocDecision::Ignore,
    }
}

#[test]
fn dora_then_lease_in_map_and_same_offer_again() {
    let mut a = setup("10.0.0.100-10.0.0.109");
    let now = 1_000;
    let addr = offer_addr(a.discover(0, b"c1", None, None, now));
    assert!((Ipv4Addr::new(10, 0, 0, 100)..=Ipv4Addr::new(10, 0, 0, 109)).contains(&addr));
    assert_eq!(
        offer_addr(a.discover(0, b"c1", None, None, now + 1)),
        addr,
        "retransmitted DISCOVER keeps the offer"
    );
    assert_eq!(
        commit(&mut a, b"c1", addr, now + 2),
        AllocDecision::Ack {
            addr,
            lease_secs: 3600
        }
    );
    let v = a.leases.get(addr).unwrap();
    assert_eq!(v.state, LeaseState::Leased);
    assert_eq!(v.key_hash, key_hash(7, b"c1"));
    assert_eq!(
        a.leases.find_client(key_hash(7, b"c1")).map(|(x, _)| x),
        Some(addr)
    );
    assert_eq!(a.stats(now)[0].assigned, 1);
}

#[test]
fn no_address_given_twice_and_pool_exhaustion_is_silent() {
    let mut a = setup("10.0.0.100-10.0.0.104");
    let now = 1_000;
    let mut got = HashSet::new();
    for i in 0..5u8 {
        let addr = offer_addr(a.discover(0, &[i], None, None, now));
        assert_eq!(
            commit(&mut a, &[i], addr, now),
            AllocDecision::Ack {
                addr,
                lease_secs: 3600
            }
        );
        assert!(got.insert(addr), "{addr} given twice");
    }
    assert_eq!(
        a.discover(0, b"late", None, None, now),
        AllocDecision::Ignore
    );
    assert_eq!(a.exhausted, 1);
    // Another client asking for a taken address is NAKed.
    let taken = *got.iter().next().unwrap();
    assert_eq!(commit(&mut a, b"thief", taken, now), AllocDecision::Nak);
}

#[test]
fn reservation_wins_and_is_not_given_to_others() {
    let mut a = setup("10.0.0.100-10.0.0.109");
    let key = [1u8, 2, 0, 0, 0, 0, 0xaa];
    assert_eq!(
        offer_addr(a.discover(0, &key, None, None, 5)),
        Ipv4Addr::new(10, 0, 0, 50)
    );
    assert_eq!(
        commit(&mut a, b"other", Ipv4Addr::new(10, 0, 0, 50), 5),
        AllocDecision::Nak
    );
    assert_eq!(
        commit(&mut a, &key, Ipv4Addr::new(10, 0, 0, 101), 5),
        AllocDecision::Nak
    );
}

#[test]
fn release_then_previous_address_is_offered_again() {
    let mut a = setup("10.0.0.100-10.0.0.199");
    let addr = offer_addr(a.discover(0, b"c", None, None, 10));
    commit(&mut a, b"c", addr, 10);
    let w = a.released(addr, key_hash(7, b"c")).unwrap();
    assert!(matches!(w, LeaseWrite::Release { .. }));
    assert!(a.leases.get(addr).is_none());
    assert_eq!(offer_addr(a.discover(0, b"c", None, None, 20)), addr);
}

/// The reclaim bound: durable expiry + MCLT + grace, whatever the
/// write-behind did. A renewal answered from memory whose write never
/// reached the store (a crash) cannot outlive the bound, so the address
/// waits for it.
#[test]
fn reclaim_waits_for_durable_expiry_plus_mclt_plus_grace() {
    let mut a = setup("10.0.0.100-10.0.0.100");
    let addr = offer_addr(a.discover(0, b"c", None, None, 0));
    commit(&mut a, b"c", addr, 0); // durable 3600, MCLT 1800
                                   // Renewed from memory at T1 to 5400, never persisted.
    assert!(a.renewed(addr, key_hash(7, b"c"), 5_400).is_some());
    assert!(
        a.reclaim(3_600 + 1_800 + 60, 100).is_empty(),
        "not before durable + MCLT + grace"
    );
    assert_eq!(
        a.discover(0, b"d", None, None, 5_000),
        AllocDecision::Ignore
    );
    let w = a.reclaim(3_600 + 1_800 + 61, 100);
    assert_eq!(w.len(), 1);
    assert!(matches!(w[0], LeaseWrite::Expire { version: 1, .. }));
    assert!(a.leases.get(addr).is_none());
    assert_eq!(offer_addr(a.discover(0, b"d", None, None, 5_500)), addr);
}

/// The same after a restart: only the durable expiry survives, and the
/// reloaded lease is still held until it + MCLT + grace.
#[test]
fn reloaded_lease_is_held_past_its_stored_expiry_by_mclt_and_grace() {
    let mut a = setup("10.0.0.100-10.0.0.109");
    let addr = Ipv4Addr::new(10, 0, 0, 105);
    a.load(&[LeaseRecord {
        subnet_id: 7,
        address: addr,
        client_key: b"k".to_vec(),
        hw_address: None,
        state: RecordState::Leased,
        expiry: 1_000,
        allocated_by: "x".into(),
        updated_at: 0,
        version: 1,
    }]);
    assert!(a.reclaim(1_000 + 1_800 + 61 - 1, 10).is_empty());
    assert_eq!(a.reclaim(1_000 + 1_800 + 61, 10).len(), 1);
}

#[test]
fn renewals_within_the_write_threshold_are_not_written() {
    let mut a = setup("10.0.0.100-10.0.0.100");
    a.timers.write_threshold = 30;
    let kh = key_hash(7, b"c");
    let addr = offer_addr(a.discover(0, b"c", None, None, 0));
    commit(&mut a, b"c", addr, 0); // stored expiry 3600
    assert!(
        a.renewed(addr, kh, 3_620).is_none(),
        "20 s past the stored expiry: cached"
    );
    assert_eq!(
        a.leases.get(addr).unwrap().expiry,
        3_620,
        "the map still has the new expiry"
    );
    let w = a.renewed(addr, kh, 3_630).expect("30 s past: written");
    a.persisted(&w);
    assert_eq!(
        a.leases.get(addr).unwrap().durable,
        3_630,
        "durable follows the commit"
    );
    assert!(
        a.renewed(addr, kh, 3_640).is_none(),
        "measured from the new durable expiry"
    );
    assert!(a.reclaim(3_630 + 1_800 + 60, 10).is_empty());
}

#[test]
fn the_map_durable_expiry_moves_only_when_the_store_commits() {
    let mut a = setup("10.0.0.100-10.0.0.100");
    let kh = key_hash(7, b"c");
    let addr = offer_addr(a.discover(0, b"c", None, None, 0));
    commit(&mut a, b"c", addr, 0);
    let w = a.renewed(addr, kh, 5_000).unwrap();
    let v = a.leases.get(addr).unwrap();
    assert_eq!(
        (v.expiry, v.durable),
        (5_000, 3_600),
        "promised, not durable yet"
    );
    a.persisted(&w);
    assert_eq!(a.leases.get(addr).unwrap().durable, 5_000);
    // A write for an older version of the lease changes nothing.
    let LeaseWrite::Extend { version, .. } = w else {
        panic!()
    };
    let stale = LeaseWrite::Extend {
        subnet_id: 7,
        address: addr,
        client_key: b"c".to_vec(),
        expiry: 9_000,
        version: version + 5,
    };
    a.persisted(&stale);
    assert_eq!(a.leases.get(addr).unwrap().durable, 5_000);
}

#[test]
fn expired_offer_frees_the_address() {
    let mut a = setup("10.0.0.100-10.0.0.100");
    let addr = offer_addr(a.discover(0, b"c", None, None, 0));
    assert_eq!(a.discover(0, b"d", None, None, 10), AllocDecision::Ignore);
    assert!(a.reclaim(31, 10).is_empty());
    assert_eq!(offer_addr(a.discover(0, b"d", None, None, 31)), addr);
}

#[test]
fn decline_quarantines() {
    let mut a = setup("10.0.0.100-10.0.0.100");
    let addr = offer_addr(a.discover(0, b"c", None, None, 0));
    commit(&mut a, b"c", addr, 0);
    assert!(a.declined(addr, key_hash(7, b"c"), 100).is_some());
    assert_eq!(a.leases.get(addr).unwrap().state, LeaseState::Declined);
    assert_eq!(a.stats(100)[0].declined, 1);
    assert_eq!(a.discover(0, b"d", None, None, 200), AllocDecision::Ignore);
    a.reclaim(700, 10);
    assert_eq!(offer_addr(a.discover(0, b"d", None, None, 701)), addr);
}

/// A DECLINEd address goes to nobody for the probation, the decliner
/// included: not by option 50, not through its reservation.
#[test]
fn declined_address_is_offered_to_nobody_not_even_the_decliner() {
    let mut a = setup("10.0.0.100-10.0.0.101");
    let addr = offer_addr(a.discover(0, b"c", None, Some(Ipv4Addr::new(10, 0, 0, 100)), 0));
    commit(&mut a, b"c", addr, 0);
    assert!(a.declined(addr, key_hash(7, b"c"), 10).is_some());
    let again = a.discover(0, b"c", None, Some(addr), 20);
    assert_ne!(
        again,
        AllocDecision::Offer {
            addr,
            lease_secs: 3600
        }
    );
    assert_eq!(commit(&mut a, b"c", addr, 20), AllocDecision::Nak);
    // A reserved client whose reserved address it declined.
    let key = [1u8, 2, 0, 0, 0, 0, 0xaa];
    let res = Ipv4Addr::new(10, 0, 0, 50);
    assert_eq!(offer_addr(a.discover(0, &key, None, None, 30)), res);
    commit(&mut a, &key, res, 30);
    assert!(a.declined(res, key_hash(7, &key), 40).is_some());
    assert_eq!(a.discover(0, &key, None, None, 50), AllocDecision::Ignore);
    assert_eq!(commit(&mut a, &key, res, 50), AllocDecision::Nak);
}

/// A renewal of an address nobody leased never creates a lease: NAK when
/// authoritative, silence otherwise; the client's own lease is re-granted.
#[test]
fn renew_only_extends_the_clients_own_lease() {
    let mut a = setup("10.0.0.100-10.0.0.109");
    let free = Ipv4Addr::new(10, 0, 0, 107);
    assert_eq!(a.renew(0, b"c", None, Some(free), 0), RequestOutcome::Nak);
    a.authoritative = false;
    assert_eq!(
        a.renew(0, b"c", None, Some(free), 0),
        RequestOutcome::Ignore
    );
    assert!(a.leases.get(free).is_none());
    assert_eq!(a.stats(0)[0].assigned, 0, "no lease created");
    let addr = offer_addr(a.discover(0, b"c", None, None, 0));
    commit(&mut a, b"c", addr, 0);
    assert_eq!(
        a.renew(0, b"d", None, Some(addr), 10),
        RequestOutcome::Nak,
        "another's"
    );
    let RequestOutcome::Commit(g) = a.renew(0, b"c", None, Some(addr), 10) else {
        panic!("own lease re-granted")
    };
    assert!(matches!(g, LeaseWrite::Grant { expiry: 3_610, .. }));
    assert!(matches!(
        a.committed(&g, true, Some(2)),
        AllocDecision::Ack { .. }
    ));
    assert_eq!(a.leases.get(addr).unwrap().durable, 3_610);
}

/// A re-grant of the client's own lease that the store fails to commit
/// leaves the lease as it was (it used to free the address).
#[test]
fn failed_regrant_keeps_the_lease() {
    let mut a = setup("10.0.0.100-10.0.0.100");
    let addr = offer_addr(a.discover(0, b"c", None, None, 0));
    commit(&mut a, b"c", addr, 0);
    let RequestOutcome::Commit(g) = a.renew(0, b"c", None, Some(addr), 100) else {
        panic!()
    };
    assert_eq!(a.committed(&g, false, None), AllocDecision::Ignore);
    let v = a.leases.get(addr).expect("still leased");
    assert_eq!(
        (v.state, v.key_hash, v.durable),
        (LeaseState::Leased, key_hash(7, b"c"), 3_600)
    );
    assert_eq!(
        a.discover(0, b"d", None, None, 200),
        AllocDecision::Ignore,
        "not free"
    );
    assert!(matches!(
        a.renew(0, b"c", None, Some(addr), 300),
        RequestOutcome::Commit(_)
    ));
}

/// A hw_address reservation matches a client that also sends option 61.
#[test]
fn hw_reservation_matches_a_client_with_a_client_id() {
    let mut a = setup("10.0.0.100-10.0.0.109");
    let hw = Some([2, 0, 0, 0, 0, 0xaa]);
    let got = offer_addr(a.discover(0, b"\xffclient-id", hw, None, 0));
    assert_eq!(got, Ipv4Addr::new(10, 0, 0, 50));
    assert_eq!(
        commit_hw(&mut a, b"\xffclient-id", hw, got, 0),
        AllocDecision::Ack {
            addr: got,
            lease_secs: 3600
        }
    );
}

fn commit_hw(
    a: &mut Allocator,
    key: &[u8],
    hw: Option<[u8; 6]>,
    addr: Ipv4Addr,
    now: u64,
) -> AllocDecision {
    match a.request(0, key, hw, Some(addr), now) {
        RequestOutcome::Commit(g) => a.committed(&g, true, Some(1)),
        RequestOutcome::Nak => AllocDecision::Nak,
        RequestOutcome::Ignore => AllocDecision::Ignore,
    }
}

/// A client that moves to another address releases the old row in the
/// store too (the allocator and the store must not drift).
#[test]
fn moving_client_releases_its_old_lease_in_the_store() {
    let mut a = setup("10.0.0.100-10.0.0.109");
    let first = offer_addr(a.discover(0, b"c", None, None, 0));
    commit(&mut a, b"c", first, 0);
    let other = if first == Ipv4Addr::new(10, 0, 0, 100) {
        Ipv4Addr::new(10, 0, 0, 101)
    } else {
        Ipv4Addr::new(10, 0, 0, 100)
    };
    assert!(matches!(
        commit(&mut a, b"c", other, 10),
        AllocDecision::Ack { .. }
    ));
    let side = a.take_side_writes();
    assert_eq!(
        side,
        vec![LeaseWrite::Release {
            subnet_id: 7,
            address: first,
            client_key: b"c".to_vec(),
            version: 1,
        }]
    );
    assert!(a.leases.get(first).is_none());
}

/// The previous-address memory is bounded by the number of addresses.
#[test]
fn previous_addresses_are_bounded() {
    let mut a = setup("10.0.0.100-10.0.0.101");
    let cap = a.owners.len();
    for i in 0..(cap as u32 * 10) {
        a.remember_previous(u64::from(i) + 1, 0);
    }
    assert!(a.previous.len() <= cap, "{} > {cap}", a.previous.len());
}

/// Offers cannot eat a pool: a flood of DISCOVERs from clients that
/// never REQUEST holds at most three quarters of it, and a real client
/// still gets an address committed.
#[test]
fn offers_never_hold_the_whole_pool() {
    let mut a = setup("10.0.0.100-10.0.0.139"); // 40 addresses
    for i in 0..1_000u32 {
        let _ = a.discover(0, &i.to_be_bytes(), None, None, 0);
    }
    assert_eq!(a.pool_free(0), 10, "a quarter stays unreserved");
    let addr = offer_addr(a.discover(0, b"real", None, None, 1));
    assert!(matches!(
        commit(&mut a, b"real", addr, 1),
        AllocDecision::Ack { .. }
    ));
    assert_eq!(a.pool_free(0), 9);
}

/// The free count follows every owner change, so an exhausted pool is
/// refused without a scan, and frees come back.
#[test]
fn pool_free_count_follows_grants_releases_and_reclaim() {
    let mut a = setup("10.0.0.100-10.0.0.103");
    assert_eq!(a.pool_free(0), 4);
    let mut got = Vec::new();
    for i in 0..4u8 {
        let addr = offer_addr(a.discover(0, &[i], None, None, 0));
        commit(&mut a, &[i], addr, 0);
        got.push(addr);
    }
    assert_eq!(a.pool_free(0), 0);
    assert_eq!(a.discover(0, b"late", None, None, 0), AllocDecision::Ignore);
    a.released(got[0], key_hash(7, &[0])).unwrap();
    assert_eq!(a.pool_free(0), 1);
    a.declined(got[1], key_hash(7, &[1]), 0).unwrap();
    assert_eq!(a.pool_free(0), 1, "a quarantined address is not free");
    assert_eq!(
        a.reclaim(10_000_000, 100).len(),
        3,
        "two leases and the quarantine"
    );
    assert_eq!(a.pool_free(0), 4);
    // The reservation outside the pool is not counted.
    let key = [1u8, 2, 0, 0, 0, 0, 0xaa];
    let r = offer_addr(a.discover(0, &key, None, None, 0));
    commit(&mut a, &key, r, 0);
    assert_eq!(a.pool_free(0), 4);
}

#[test]
fn first_zero_scans_words_within_bounds() {
    let bits = [u64::MAX, !(1u64 << 5), u64::MAX];
    assert_eq!(first_zero(&bits, 0, 192), Some(69));
    assert_eq!(first_zero(&bits, 70, 192), None);
    assert_eq!(first_zero(&bits, 0, 69), None, "end is exclusive");
    assert_eq!(first_zero(&bits, 69, 70), Some(69));
    assert_eq!(first_zero(&bits, 70, 1_000), None, "past the bitmap");
}

/// The last free address of a full pool is found wherever the random
/// start falls.
#[test]
fn random_free_finds_the_last_free_address() {
    // 200 addresses, one of them (10.0.0.50) reserved.
    let mut a = setup("10.0.0.1-10.0.0.200");
    let mut got = Vec::new();
    for i in 0..199u16 {
        got.push(offer_addr(a.discover(0, &i.to_be_bytes(), None, None, 0)));
        commit(&mut a, &i.to_be_bytes(), *got.last().unwrap(), 0);
    }
    assert_eq!(a.pool_free(0), 0);
    let last = got[137];
    a.released(last, key_hash(7, &137u16.to_be_bytes()))
        .unwrap();
    for i in 0..50u32 {
        assert_eq!(a.random_free(0), Some(last), "try {i}");
    }
}

#[test]
fn failed_commit_rolls_back() {
    let mut a = setup("10.0.0.100-10.0.0.100");
    let addr = offer_addr(a.discover(0, b"c", None, None, 0));
    let RequestOutcome::Commit(g) = a.request(0, b"c", None, Some(addr), 0) else {
        panic!()
    };
    assert_eq!(a.committed(&g, false, None), AllocDecision::Ignore);
    assert!(a.leases.get(addr).is_none());
    assert_eq!(offer_addr(a.discover(0, b"d", None, None, 1)), addr);
}

#[test]
fn owner_slot_is_compact_and_long_keys_work() {
    assert!(
        std::mem::size_of::<Owner>() <= 48,
        "{}",
        std::mem::size_of::<Owner>()
    );
    let mut a = setup("10.0.0.100-10.0.0.109");
    let long = [7u8; 40];
    let addr = offer_addr(a.discover(0, &long, None, None, 0));
    assert_eq!(
        commit(&mut a, &long, addr, 0),
        AllocDecision::Ack {
            addr,
            lease_secs: 3600
        }
    );
    assert_eq!(offer_addr(a.discover(0, &long, None, None, 1)), addr);
}

#[test]
fn load_restores_map() {
    let mut a = setup("10.0.0.100-10.0.0.109");
    let recs = vec![LeaseRecord {
        subnet_id: 7,
        address: Ipv4Addr::new(10, 0, 0, 105),
        client_key: b"k".to_vec(),
        hw_address: None,
        state: RecordState::Leased,
        expiry: 9_999,
        allocated_by: "x".into(),
        updated_at: 0,
        version: 3,
    }];
    assert_eq!(a.load(&recs), 1);
    assert_eq!(
        a.leases.get(Ipv4Addr::new(10, 0, 0, 105)).unwrap().expiry,
        9_999
    );
    assert_eq!(
        offer_addr(a.discover(0, b"k", None, None, 1)),
        Ipv4Addr::new(10, 0, 0, 105)
    );
}

fn record(key: &[u8], state: RecordState, expiry: u64, version: u32) -> LeaseRecord {
    LeaseRecord {
        subnet_id: 7,
        address: Ipv4Addr::new(10, 0, 0, 105),
        client_key: key.to_vec(),
        hw_address: None,
        state,
        expiry,
        allocated_by: "peer".into(),
        updated_at: 0,
        version,
    }
}

#[test]
fn records_from_elsewhere_apply_forward_only() {
    let mut a = setup("10.0.0.100-10.0.0.109");
    let addr = Ipv4Addr::new(10, 0, 0, 105);
    // Our own offer of the address gives way to a lease committed elsewhere.
    assert_eq!(
        offer_addr(a.discover(0, b"mine", None, Some(addr), 1)),
        addr
    );
    assert!(a.apply_record(&record(b"peer", RecordState::Leased, 5_000, 4)));
    assert_eq!(a.leases.get(addr).unwrap().key_hash, key_hash(7, b"peer"));
    assert_ne!(
        offer_addr(a.discover(0, b"mine", None, Some(addr), 2)),
        addr,
        "an address leased elsewhere is not offered again"
    );
    // A replayed older record changes nothing.
    assert!(!a.apply_record(&record(b"old", RecordState::Leased, 9_000, 3)));
    assert!(!a.apply_record(&record(b"peer", RecordState::Released, 0, 4)));
    assert_eq!(a.leases.get(addr).unwrap().key_hash, key_hash(7, b"peer"));
    assert_eq!(a.leases.get(addr).unwrap().expiry, 5_000);
    // A newer release frees it, and the client's previous address is kept.
    assert!(!a.apply_record(&record(b"peer", RecordState::Released, 0, 5)));
    assert!(a.leases.get(addr).is_none());
    assert_eq!(offer_addr(a.discover(0, b"peer", None, None, 3)), addr);
}

#[test]
fn a_record_of_the_same_version_extends_forward_only() {
    let mut a = setup("10.0.0.100-10.0.0.109");
    let addr = Ipv4Addr::new(10, 0, 0, 105);
    assert!(a.apply_record(&record(b"peer", RecordState::Leased, 5_000, 4)));
    // A peer persisted a renewal of that lease: same version, later expiry.
    assert!(!a.apply_record(&record(b"peer", RecordState::Leased, 8_000, 4)));
    assert_eq!(a.leases.get(addr).unwrap().durable, 8_000);
    // An older expiry of the same version never moves it back.
    assert!(!a.apply_record(&record(b"peer", RecordState::Leased, 6_000, 4)));
    assert_eq!(a.leases.get(addr).unwrap().durable, 8_000);
    // The same version under another client's key is not an extension.
    assert!(!a.apply_record(&record(b"other", RecordState::Leased, 9_000, 4)));
    assert_eq!(a.leases.get(addr).unwrap().durable, 8_000);
    assert_eq!(a.leases.get(addr).unwrap().key_hash, key_hash(7, b"peer"));
}

#[test]
fn a_cluster_server_allocates_from_its_blocks_with_their_fence_then_borrows() {
    let mut a = setup("10.0.0.100-10.0.0.131");
    let fence = crate::store::Fence { block: 3, epoch: 9 };
    a.set_owned_blocks(vec![OwnedBlock {
        subnet_id: 7,
        first: Ipv4Addr::new(10, 0, 0, 116),
        last: Ipv4Addr::new(10, 0, 0, 119),
        fence,
    }]);
    // The four addresses of the block go first, each grant fenced.
    let mut got = Vec::new();
    for i in 0..4u8 {
        let key = [b'k', i];
        let addr = offer_addr(a.discover(0, &key, None, None, 1));
        assert!(
            (Ipv4Addr::new(10, 0, 0, 116)..=Ipv4Addr::new(10, 0, 0, 119)).contains(&addr),
            "{addr} is outside the owned block"
        );
        match a.request(0, &key, None, Some(addr), 1) {
            RequestOutcome::Commit(LeaseWrite::Grant { fence: f, .. }) => {
                assert_eq!(f, Some(fence))
            }
            other => panic!("{other:?}"),
        }
        got.push(addr);
    }
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 4);
    assert_eq!(a.borrowed, 0);
    // The block is full: the next client borrows, without a fence.
    let addr = offer_addr(a.discover(0, b"late", None, None, 1));
    assert!(!(Ipv4Addr::new(10, 0, 0, 116)..=Ipv4Addr::new(10, 0, 0, 119)).contains(&addr));
    assert_eq!(a.borrowed, 1);
    match a.request(0, b"late", None, Some(addr), 1) {
        RequestOutcome::Commit(LeaseWrite::Grant { fence: f, .. }) => assert_eq!(f, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn lease_pages_filter_and_continue_after_the_cursor() {
    let mut a = setup("10.0.0.100-10.0.0.109");
    let now = 1_000;
    // Five clients, leased in reverse address order.
    for i in (0..5u8).rev() {
        let key = [b'k', i];
        let addr = Ipv4Addr::new(10, 0, 0, 100 + i);
        assert!(matches!(
            commit(&mut a, &key, addr, now),
            AllocDecision::Ack { .. }
        ));
    }
    let page = |q: LeaseQuery| a.lease_page(&q);
    let first = page(LeaseQuery {
        limit: 2,
        ..LeaseQuery::default()
    });
    let addrs =
        |p: &LeasePage| -> Vec<String> { p.leases.iter().map(|l| l.address.clone()).collect() };
    assert_eq!(addrs(&first), ["10.0.0.100", "10.0.0.101"]);
    assert_eq!(first.next, Some(Ipv4Addr::new(10, 0, 0, 101)));
    let second = page(LeaseQuery {
        limit: 2,
        after: first.next,
        ..LeaseQuery::default()
    });
    assert_eq!(addrs(&second), ["10.0.0.102", "10.0.0.103"]);
    let last = page(LeaseQuery {
        limit: 2,
        after: second.next,
        ..LeaseQuery::default()
    });
    assert_eq!(addrs(&last), ["10.0.0.104"]);
    assert_eq!(last.next, None, "the last page has no cursor");
    // By client key, by address, by subnet, by state.
    let by_key = page(LeaseQuery {
        client_key: Some(vec![b'k', 3]),
        ..LeaseQuery::default()
    });
    assert_eq!(addrs(&by_key), ["10.0.0.103"]);
    let by_addr = page(LeaseQuery {
        address: Some(Ipv4Addr::new(10, 0, 0, 102)),
        ..LeaseQuery::default()
    });
    assert_eq!(by_addr.leases[0].client_key, "6b:02");
    assert_eq!(
        page(LeaseQuery {
            subnet: Some(8),
            ..LeaseQuery::default()
        })
        .leases
        .len(),
        0
    );
    assert_eq!(
        page(LeaseQuery {
            state: Some("declined".into()),
            ..LeaseQuery::default()
        })
        .leases
        .len(),
        0
    );
    assert_eq!(a.leases().len(), 5);
}

/// Free pool addresses, and whether the used bits agree with the owners
/// and reservations (every count a reservation change must keep).
fn pool_state(a: &Allocator) -> (u64, u64) {
    let free = a.pool_free(0);
    let bits: u64 = a.used_bits.iter().map(|w| u64::from(w.count_ones())).sum();
    (free, bits)
}

#[test]
fn runtime_reservation_takes_effect_at_once_and_keeps_counts() {
    let mut a = setup("10.0.0.100-10.0.0.109");
    let r = Ipv4Addr::new(10, 0, 0, 105);
    let (free0, bits0) = pool_state(&a);
    assert_eq!(a.reserve(7, b"new", r), Ok(None));
    assert_eq!((a.pool_free(0), pool_state(&a).1), (free0 - 1, bits0 + 1));
    // Nobody else is offered it; its client is, at once.
    for i in 0..9u8 {
        let got = offer_addr(a.discover(0, &[i], None, None, 10));
        assert_ne!(got, r);
        commit(&mut a, &[i], got, 10);
    }
    assert_eq!(
        a.discover(0, b"late", None, None, 10),
        AllocDecision::Ignore,
        "the pool's other nine are gone"
    );
    assert_eq!(offer_addr(a.discover(0, b"new", None, None, 10)), r);
    assert_eq!(
        commit(&mut a, b"new", r, 10),
        AllocDecision::Ack {
            addr: r,
            lease_secs: 3600
        }
    );
    // Held by its own client, then unreserved: it becomes a dynamic lease
    // and the counts come back.
    assert_eq!(a.unreserve(7, b"new"), Ok(Some(r)));
    assert_eq!(a.pool_free(0), 0);
    assert_eq!(a.stats(10)[0].assigned, 10);
    assert_eq!(a.unreserve(7, b"new"), Ok(None), "nothing left to remove");
}

#[test]
fn runtime_reservation_refuses_held_config_and_outside_addresses() {
    let mut a = setup("10.0.0.100-10.0.0.109");
    let held = Ipv4Addr::new(10, 0, 0, 109);
    assert!(matches!(
        commit(&mut a, b"holder", held, 10),
        AllocDecision::Ack { .. }
    ));
    let e = a.reserve(7, b"new", held).unwrap_err();
    assert!(
        matches!(e, ReserveError::AddressHeld { address, .. } if address == held),
        "{e}"
    );
    assert!(e.to_string().contains("irondhcp-ctl lease release"), "{e}");
    assert_eq!(
        a.reserve(7, b"new", Ipv4Addr::new(10, 0, 0, 50)),
        Err(ReserveError::AddressInConfig(Ipv4Addr::new(10, 0, 0, 50)))
    );
    assert_eq!(
        a.reserve(7, b"new", Ipv4Addr::new(10, 0, 0, 20)),
        Err(ReserveError::OutsidePools(Ipv4Addr::new(10, 0, 0, 20), 7))
    );
    let config_client = [1u8, 2, 0, 0, 0, 0, 0xaa];
    assert_eq!(
        a.reserve(7, &config_client, Ipv4Addr::new(10, 0, 0, 101)),
        Err(ReserveError::InConfig(7))
    );
    assert_eq!(
        a.unreserve(7, &config_client),
        Err(ReserveError::InConfig(7))
    );
    assert_eq!(a.reserve(9, b"new", held), Err(ReserveError::NoSubnet(9)));
    a.reserve(7, b"one", Ipv4Addr::new(10, 0, 0, 101)).unwrap();
    assert_eq!(
        a.reserve(7, b"two", Ipv4Addr::new(10, 0, 0, 101)),
        Err(ReserveError::AddressReserved(Ipv4Addr::new(10, 0, 0, 101)))
    );
}

#[test]
fn a_client_reserved_elsewhere_leaves_the_map_and_is_moved() {
    let mut a = setup("10.0.0.100-10.0.0.109");
    let old = offer_addr(a.discover(0, b"mover", None, None, 10));
    commit(&mut a, b"mover", old, 10);
    assert!(a.leases.get(old).is_some());
    let want = if old == Ipv4Addr::new(10, 0, 0, 109) {
        Ipv4Addr::new(10, 0, 0, 100)
    } else {
        Ipv4Addr::new(10, 0, 0, 109)
    };
    assert_eq!(a.reserve(7, b"mover", want), Ok(None));
    assert!(
        a.leases.get(old).is_none(),
        "the fast path no longer renews the old lease"
    );
    assert_eq!(
        a.renew(0, b"mover", None, Some(old), 20),
        RequestOutcome::Nak
    );
    assert_eq!(offer_addr(a.discover(0, b"mover", None, None, 21)), want);
    assert_eq!(
        commit(&mut a, b"mover", want, 21),
        AllocDecision::Ack {
            addr: want,
            lease_secs: 3600
        }
    );
    assert!(a.owner(old).is_none(), "the old address is given up");
    // Moving the reservation frees the first address for others.
    let next = if want == Ipv4Addr::new(10, 0, 0, 109) {
        Ipv4Addr::new(10, 0, 0, 108)
    } else {
        Ipv4Addr::new(10, 0, 0, 101)
    };
    let free = a.pool_free(0);
    assert_eq!(a.reserve(7, b"mover", next), Ok(Some(want)));
    assert_eq!(
        a.pool_free(0),
        free - 1,
        "the lease on the old reservation now counts as taken, and the new one is reserved"
    );
}

#[test]
fn runtime_reservations_follow_the_store_set() {
    let mut a = setup("10.0.0.100-10.0.0.109");
    let (free0, bits0) = pool_state(&a);
    a.reserve(7, b"a", Ipv4Addr::new(10, 0, 0, 101)).unwrap();
    a.reserve(7, b"b", Ipv4Addr::new(10, 0, 0, 102)).unwrap();
    let held = Ipv4Addr::new(10, 0, 0, 109);
    assert!(matches!(
        commit(&mut a, b"holder", held, 10),
        AllocDecision::Ack { .. }
    ));
    // Another server's changes: b moved, a gone, c added, d conflicting.
    let refused = a.set_runtime_reservations(&[
        (7, b"b".to_vec(), Ipv4Addr::new(10, 0, 0, 103)),
        (7, b"c".to_vec(), Ipv4Addr::new(10, 0, 0, 104)),
        (7, b"d".to_vec(), held),
    ]);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].1, held);
    let mut now: Vec<_> = a.runtime_reservations().into_iter().map(|r| r.2).collect();
    now.sort();
    assert_eq!(
        now,
        [Ipv4Addr::new(10, 0, 0, 103), Ipv4Addr::new(10, 0, 0, 104)]
    );
    a.set_runtime_reservations(&[]);
    assert!(a.runtime_reservations().is_empty());
    assert_eq!(
        pool_state(&a),
        (free0 - 1, bits0 + 1),
        "only the holder's lease is left"
    );
}

#[test]
fn touched_counts_every_address_that_ever_had_a_lease() {
    let mut a = setup("10.0.0.100-10.0.0.109");
    let touched = |a: &Allocator| a.stats(10)[0].ranges[0].touched;
    assert_eq!(touched(&a), 0);
    // A stored row of a released lease counts; an offer does not.
    a.apply_record(&LeaseRecord {
        subnet_id: 7,
        address: Ipv4Addr::new(10, 0, 0, 105),
        client_key: b"gone".to_vec(),
        hw_address: None,
        state: RecordState::Released,
        expiry: 5,
        allocated_by: "s".into(),
        updated_at: 5,
        version: 2,
    });
    assert_eq!(touched(&a), 1);
    let offered = offer_addr(a.discover(0, b"c", None, None, 10));
    assert_eq!(touched(&a), 1, "an offer is not a lease");
    commit(&mut a, b"c", offered, 10);
    let expected = if offered == Ipv4Addr::new(10, 0, 0, 105) {
        1
    } else {
        2
    };
    assert_eq!(touched(&a), expected);
    // Released again, it stays touched.
    a.released(offered, key_hash(7, b"c")).unwrap();
    assert_eq!(touched(&a), expected);
    assert_eq!(a.stats(10)[0].ranges[0].assigned, 0);
}
