//! The behaviour every lease store backend must show, as test bodies run
//! against each real backend: SQLite in the control crate's unit tests,
//! PostgreSQL in the integration tests (it needs a server). One contract
//! keeps the backends from drifting apart on the batch rules and guards.
//!
//! Compiled for tests and for the `store-contract` feature only.

use std::net::Ipv4Addr;

use super::{LeaseStore, LeaseWrite, RecordState, WriteOutcome};

/// Which writes took effect.
pub fn applied(r: Vec<WriteOutcome>) -> Vec<bool> {
    r.iter().map(Option::is_some).collect()
}

/// A grant in subnet 1 with no guard past the stored expiry.
pub fn grant(addr: [u8; 4], key: &[u8], expiry: u64) -> LeaseWrite {
    guarded_grant(addr, key, expiry, 0)
}

/// A grant in subnet 1 whose takeover guard is `guard_secs`.
pub fn guarded_grant(addr: [u8; 4], key: &[u8], expiry: u64, guard_secs: u32) -> LeaseWrite {
    LeaseWrite::Grant {
        subnet_id: 1,
        address: Ipv4Addr::from(addr),
        client_key: key.to_vec(),
        hw_address: Some([2, 0, 0, 0, 0, 1]),
        expiry,
        guard_secs,
        fence: None,
        relay: Default::default(),
    }
}

/// Grants, the UNIQUE guard against a second owner, monotonic extension
/// and a release replayed after the row moved on. [`reads_back`] checks
/// what this left, after the caller reopened the store if it can.
pub async fn writes_then_guards<S: LeaseStore>(s: &S) {
    let now = 1_000;
    let r = applied(
        s.apply(
            &[
                grant([10, 0, 0, 5], b"A", 2_000),
                grant([10, 0, 0, 6], b"B", 2_000),
            ],
            now,
        )
        .await
        .unwrap(),
    );
    assert_eq!(r, vec![true, true]);
    // B may not take A's live lease; A may re-grant its own.
    let r = applied(
        s.apply(
            &[
                grant([10, 0, 0, 5], b"B", 3_000),
                grant([10, 0, 0, 5], b"A", 2_500),
            ],
            now,
        )
        .await
        .unwrap(),
    );
    assert_eq!(r, vec![false, true]);
    let ext = |e| LeaseWrite::Extend {
        subnet_id: 1,
        address: Ipv4Addr::new(10, 0, 0, 5),
        client_key: b"A".to_vec(),
        expiry: e,
        version: 2,
    };
    assert_eq!(
        applied(s.apply(&[ext(4_000), ext(3_000)], now).await.unwrap()),
        vec![true, true]
    );
    let rel = LeaseWrite::Release {
        subnet_id: 1,
        address: Ipv4Addr::new(10, 0, 0, 6),
        client_key: b"B".to_vec(),
        version: 1,
    };
    assert_eq!(
        s.apply(std::slice::from_ref(&rel), now).await.unwrap(),
        vec![Some(2)]
    );
    assert_eq!(
        s.apply(&[rel], now).await.unwrap(),
        vec![None],
        "a replayed release finds the row moved on"
    );
}

/// What [`writes_then_guards`] left, written by `server_id`.
pub async fn reads_back<S: LeaseStore>(s: &S, server_id: &str) {
    let now = 1_000;
    let mut rows = s.load().await.unwrap();
    rows.sort_by_key(|r| r.address);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].expiry, 4_000, "extension is monotonic");
    assert_eq!(rows[0].state, RecordState::Leased);
    assert_eq!(rows[0].allocated_by, server_id);
    assert_eq!(rows[0].hw_address, Some([2, 0, 0, 0, 0, 1]));
    assert_eq!(rows[1].state, RecordState::Released);
    // A released address may be granted to another client.
    assert_eq!(
        s.apply(&[grant([10, 0, 0, 6], b"C", 5_000)], now)
            .await
            .unwrap(),
        vec![Some(3)]
    );
}

/// Another client's lease stays untouchable for `guard_secs` past its
/// stored expiry (a server that renewed it from memory may have promised it
/// that long), and a quarantine until its end, even for the client that
/// declined the address.
pub async fn takeover_waits_for_the_guard_and_the_quarantine<S: LeaseStore>(s: &S) {
    s.apply(&[grant([10, 0, 0, 5], b"A", 2_000)], 1_000)
        .await
        .unwrap();
    let b = guarded_grant([10, 0, 0, 5], b"B", 9_000, 90);
    assert_eq!(
        s.apply(std::slice::from_ref(&b), 2_050).await.unwrap(),
        vec![None],
        "A's lease ended at 2,000 but may have been promised until 2,090"
    );
    assert_eq!(s.apply(&[b], 2_091).await.unwrap(), vec![Some(2)]);

    s.apply(&[grant([10, 0, 0, 6], b"C", 2_000)], 1_000)
        .await
        .unwrap();
    let decline = LeaseWrite::Decline {
        subnet_id: 1,
        address: Ipv4Addr::new(10, 0, 0, 6),
        client_key: b"C".to_vec(),
        until: 5_000,
        version: 1,
    };
    assert_eq!(s.apply(&[decline], 1_100).await.unwrap(), vec![Some(2)]);
    let r = applied(
        s.apply(
            &[
                grant([10, 0, 0, 6], b"C", 9_000),
                grant([10, 0, 0, 6], b"D", 9_000),
            ],
            4_000,
        )
        .await
        .unwrap(),
    );
    assert_eq!(r, vec![false, false], "quarantined, for C too");
    assert_eq!(
        s.apply(&[grant([10, 0, 0, 6], b"D", 9_000)], 5_001)
            .await
            .unwrap(),
        vec![Some(3)]
    );
}

/// One batch: a release, then a grant of the released address to another
/// client, and many renewals: the grant takes effect (per-row changes go
/// before grants), and the latest renewal wins.
pub async fn batch_order_and_multi_row_statements<S: LeaseStore>(s: &S) {
    let now = 1_000;
    let mut first: Vec<LeaseWrite> = (0..300u32)
        .map(|i| {
            grant(
                [10, 1, (i / 256) as u8, (i % 256) as u8],
                &i.to_be_bytes(),
                2_000,
            )
        })
        .collect();
    first.push(grant([10, 0, 0, 9], b"A", 2_000));
    assert!(
        s.apply(&first, now)
            .await
            .unwrap()
            .iter()
            .all(Option::is_some),
        "multi-row grants all applied"
    );

    let mut batch = vec![LeaseWrite::Grant {
        subnet_id: 1,
        address: Ipv4Addr::new(10, 0, 0, 9),
        client_key: b"B".to_vec(),
        hw_address: None,
        expiry: 3_000,
        guard_secs: 0,
        fence: None,
        relay: Default::default(),
    }];
    batch.push(LeaseWrite::Release {
        subnet_id: 1,
        address: Ipv4Addr::new(10, 0, 0, 9),
        client_key: b"A".to_vec(),
        version: 1,
    });
    for (i, e) in [(7u32, 5_000u64), (7, 6_000), (7, 5_500), (8, 4_000)] {
        batch.push(LeaseWrite::Extend {
            subnet_id: 1,
            address: Ipv4Addr::new(10, 1, 0, i as u8),
            client_key: i.to_be_bytes().to_vec(),
            expiry: e,
            version: 1,
        });
    }
    batch.push(LeaseWrite::Extend {
        subnet_id: 1,
        address: Ipv4Addr::new(10, 1, 0, 9),
        client_key: b"not the owner".to_vec(),
        expiry: 9_000,
        version: 1,
    });
    let r = applied(s.apply(&batch, now).await.unwrap());
    assert_eq!(r, vec![true, true, true, true, true, true, false]);
    let rows = s.load().await.unwrap();
    let get = |a: Ipv4Addr| rows.iter().find(|r| r.address == a).unwrap().clone();
    let nine = get(Ipv4Addr::new(10, 0, 0, 9));
    assert_eq!(
        (nine.client_key.as_slice(), nine.state),
        (&b"B"[..], RecordState::Leased)
    );
    assert_eq!(get(Ipv4Addr::new(10, 1, 0, 7)).expiry, 6_000);
    assert_eq!(get(Ipv4Addr::new(10, 1, 0, 8)).expiry, 4_000);
    assert_eq!(get(Ipv4Addr::new(10, 1, 0, 9)).expiry, 2_000);
}

/// Forward-only writes: a release, decline, expiry or extension decided
/// on an older version of a row does nothing once the address was
/// granted again (a retried batch replayed after a newer grant).
pub async fn stale_writes_never_touch_a_newer_grant<S: LeaseStore>(s: &S) {
    let a = Ipv4Addr::new(10, 0, 0, 7);
    assert_eq!(
        s.apply(&[grant([10, 0, 0, 7], b"A", 2_000)], 1_000)
            .await
            .unwrap(),
        vec![Some(1)]
    );
    // A re-grant of the same client's lease: version 2, expiry never
    // moves back.
    assert_eq!(
        s.apply(&[grant([10, 0, 0, 7], b"A", 1_500)], 1_000)
            .await
            .unwrap(),
        vec![Some(2)]
    );
    let stale = [
        LeaseWrite::Release {
            subnet_id: 1,
            address: a,
            client_key: b"A".to_vec(),
            version: 1,
        },
        LeaseWrite::Decline {
            subnet_id: 1,
            address: a,
            client_key: b"A".to_vec(),
            until: 9_000,
            version: 1,
        },
        LeaseWrite::Expire {
            subnet_id: 1,
            address: a,
            client_key: b"A".to_vec(),
            version: 1,
        },
        LeaseWrite::Extend {
            subnet_id: 1,
            address: a,
            client_key: b"A".to_vec(),
            expiry: 9_999,
            version: 1,
        },
    ];
    assert_eq!(s.apply(&stale, 1_100).await.unwrap(), vec![None; 4]);
    let rows = s.load().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, RecordState::Leased);
    assert_eq!(rows[0].expiry, 2_000, "the re-grant kept the later expiry");
    assert_eq!(rows[0].version, 2);
}

/// A decline stores the end of the quarantine as the expiry, and an
/// expiry of the declined row frees it.
pub async fn decline_stores_the_quarantine_and_expire_ends_it<S: LeaseStore>(s: &S) {
    let a = Ipv4Addr::new(10, 0, 0, 8);
    s.apply(&[grant([10, 0, 0, 8], b"A", 2_000)], 1_000)
        .await
        .unwrap();
    let decline = LeaseWrite::Decline {
        subnet_id: 1,
        address: a,
        client_key: b"A".to_vec(),
        until: 7_777,
        version: 1,
    };
    assert_eq!(s.apply(&[decline], 1_100).await.unwrap(), vec![Some(2)]);
    let row = s.load().await.unwrap().remove(0);
    assert_eq!(
        (row.state, row.expiry, row.updated_at),
        (RecordState::Declined, 7_777, 1_100)
    );
    let expire = LeaseWrite::Expire {
        subnet_id: 1,
        address: a,
        client_key: b"A".to_vec(),
        version: 2,
    };
    assert_eq!(s.apply(&[expire], 7_800).await.unwrap(), vec![Some(3)]);
    let row = s.load().await.unwrap().remove(0);
    assert_eq!((row.state, row.version), (RecordState::Expired, 3));
}

/// Reservation changes: an add, an update, a conflict refused, a delete,
/// deleting nothing, each change (and only each change) with its audit
/// row, newest first, and the version moving with every change.
pub async fn reservations_change_with_their_audit_rows<S: LeaseStore>(s: &S) {
    use super::{Identifier, Reservation, ReservationChange, StoreError};
    let mac = Identifier::HwAddress([2, 0, 0, 0, 0, 7]);
    let r = |identifier: &Identifier, last: u8| Reservation {
        subnet_id: 1,
        identifier: identifier.clone(),
        address: Ipv4Addr::new(10, 0, 0, last),
        hostname: Some("printer".into()),
    };
    let change = |identifier: &Identifier, after: Option<Reservation>| ReservationChange {
        subnet_id: 1,
        identifier: identifier.clone(),
        after,
        actor: "uid 0".into(),
    };
    assert_eq!(s.reservations_version().await.unwrap(), 0);
    let before = s
        .change_reservation(&change(&mac, Some(r(&mac, 50))), 100)
        .await
        .unwrap();
    assert_eq!(before, None, "an add replaces nothing");
    let v1 = s.reservations_version().await.unwrap();
    assert!(v1 > 0);
    let before = s
        .change_reservation(&change(&mac, Some(r(&mac, 51))), 101)
        .await
        .unwrap();
    assert_eq!(before, Some(r(&mac, 50)), "an update returns the old row");
    // Another client may not take the address.
    let other = Identifier::ClientId(vec![0xff, 1, 2]);
    let refused = s
        .change_reservation(&change(&other, Some(r(&other, 51))), 102)
        .await;
    assert!(
        matches!(&refused, Err(StoreError::ReservationConflict(t)) if t.contains("10.0.0.51") && t.contains("02:00:00:00:00:07")),
        "{refused:?}"
    );
    s.change_reservation(&change(&other, Some(r(&other, 52))), 103)
        .await
        .unwrap();
    let all = s.reservations().await.unwrap();
    assert_eq!(all, vec![r(&mac, 51), r(&other, 52)]);
    assert_eq!(
        s.change_reservation(&change(&mac, None), 104)
            .await
            .unwrap(),
        Some(r(&mac, 51))
    );
    let v = s.reservations_version().await.unwrap();
    assert_eq!(
        s.change_reservation(&change(&mac, None), 105)
            .await
            .unwrap(),
        None,
        "deleting nothing"
    );
    assert_eq!(
        s.reservations_version().await.unwrap(),
        v,
        "and writes no audit row"
    );
    assert_eq!(s.reservations().await.unwrap(), vec![r(&other, 52)]);
    let trail = s.reservation_audit(10).await.unwrap();
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["delete", "add", "update", "add"],
        "newest first; the refusal left none"
    );
    let del = &trail[0];
    assert_eq!((del.at, del.actor.as_str()), (104, "uid 0"));
    assert_eq!(del.identifier, "02:00:00:00:00:07");
    assert_eq!(del.before.as_ref().unwrap()["ip-address"], "10.0.0.51");
    assert!(del.after.is_none());
    assert_eq!(trail[2].before.as_ref().unwrap()["ip-address"], "10.0.0.50");
    assert_eq!(trail[2].after.as_ref().unwrap()["hostname"], "printer");
    assert_eq!(s.reservation_audit(1).await.unwrap().len(), 1);
}
