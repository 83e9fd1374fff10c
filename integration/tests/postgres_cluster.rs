//! What a cluster's servers rely on PostgreSQL for, beyond the lease-store
//! contract, against a real server: address blocks that change hands only
//! under their exclusive advisory lock and a new epoch, allocation commits
//! fenced by owner and epoch, and the change feed the sync catches up
//! from.

use std::net::Ipv4Addr;
use std::time::Duration;

use irondhcp_control::store::contract;
use irondhcp_control::store::postgres::{FeedCursor, PgStore, BLOCK_LOCKS};
use irondhcp_control::store::{Fence, LeaseStore, LeaseWrite};
use irondhcp_testkit::postgres::PgServer;

/// A private server with two stores on one database, both registered at
/// time 1,000.
async fn two_servers() -> (PgServer, PgStore, PgStore) {
    let pg = PgServer::start().expect("start a private PostgreSQL");
    let url = pg.create_database("leases").expect("create database");
    let a = PgStore::open(&url, "srv-a").await.expect("open store");
    let b = PgStore::open(&url, "srv-b").await.expect("open store");
    a.register("192.0.2.1", 1_000).await.unwrap();
    b.register("192.0.2.1", 1_000).await.unwrap();
    // Two blocks of 16 addresses in 10.0.0.0/24 (subnet 1).
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    a.ensure_blocks(&[(1, base, base + 15), (1, base + 16, base + 31)])
        .await
        .unwrap();
    (pg, a, b)
}

fn fenced_grant(last_octet: u8, key: &[u8], fence: Fence) -> LeaseWrite {
    let mut g = contract::grant([10, 0, 0, last_octet], key, 5_000);
    if let LeaseWrite::Grant { fence: f, .. } = &mut g {
        *f = Some(fence);
    }
    g
}

#[tokio::test]
async fn a_grant_from_a_block_that_changed_hands_is_refused() {
    let (_pg, a, b) = two_servers().await;
    let id = a.blocks().await.unwrap()[0].id;
    let e1 = a
        .claim_block(id, 1, 1_000)
        .await
        .unwrap()
        .expect("a free block");
    assert_eq!(
        b.claim_block(id, 1, 1_000).await.unwrap(),
        None,
        "owned by srv-a"
    );
    let mine = Fence {
        block: id,
        epoch: e1,
    };
    let out = a
        .apply(&[fenced_grant(1, b"x", mine)], 1_000)
        .await
        .unwrap();
    assert_eq!(out, vec![Some(1)], "the owner's fenced grant is written");

    // srv-a stops (no heartbeat); after the release time its blocks are
    // freed and srv-b takes this one.
    b.heartbeat(1, 1_040).await.unwrap();
    assert_eq!(b.release_dead_owners(1_040, 30).await.unwrap(), 1);
    let e3 = b.claim_block(id, 1, 1_040).await.unwrap().expect("freed");
    assert!(e3 > e1 + 1, "freeing and claiming each bump the epoch");
    // srv-a wakes and commits with the fence it had: refused, although
    // the address is free.
    let out = a
        .apply(&[fenced_grant(2, b"y", mine)], 1_041)
        .await
        .unwrap();
    assert_eq!(out, vec![None]);
    // A grant in the same batch without a fence is still decided by the
    // UNIQUE guard alone (a borrowed address).
    let borrowed = contract::grant([10, 0, 0, 3], b"z", 5_000);
    let out = a
        .apply(&[fenced_grant(4, b"w", mine), borrowed], 1_041)
        .await
        .unwrap();
    assert_eq!(out, vec![None, Some(1)]);
    let theirs = Fence {
        block: id,
        epoch: e3,
    };
    let out = b
        .apply(&[fenced_grant(2, b"y", theirs)], 1_041)
        .await
        .unwrap();
    assert_eq!(out, vec![Some(1)]);
    // The lease srv-a granted before stays (and stays renewable).
    assert!(a
        .get(1, Ipv4Addr::new(10, 0, 0, 1))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn an_earlier_boot_gets_its_blocks_back_and_a_live_server_keeps_them() {
    let (_pg, a, b) = two_servers().await;
    let id = a.blocks().await.unwrap()[1].id;
    let e1 = a.claim_block(id, 1, 1_000).await.unwrap().unwrap();
    // A live owner's blocks are not released.
    a.heartbeat(1, 1_020).await.unwrap();
    b.heartbeat(1, 1_020).await.unwrap();
    assert_eq!(b.release_dead_owners(1_030, 30).await.unwrap(), 0);
    // srv-a restarts (boot 2) and claims the block of its boot 1 again.
    let e2 = a
        .claim_block(id, 2, 1_031)
        .await
        .unwrap()
        .expect("our old block");
    assert!(e2 > e1);
    let old = Fence {
        block: id,
        epoch: e1,
    };
    let out = a
        .apply(&[fenced_grant(20, b"x", old)], 1_031)
        .await
        .unwrap();
    assert_eq!(out, vec![None], "the old boot's fence no longer holds");
    assert!(a.give_back_block(id, 2).await.unwrap());
    assert!(!a.give_back_block(id, 2).await.unwrap(), "given once");
}

/// A block never changes hands while a commit into it holds its shared
/// lock: the claim waits for that transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_waits_for_the_commits_in_flight_in_its_block() {
    let (pg, a, b) = two_servers().await;
    let id = a.blocks().await.unwrap()[0].id;
    let pool = sqlx::PgPool::connect(&pg.url("leases")).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1, $2)")
        .bind(BLOCK_LOCKS)
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let claim = tokio::spawn(async move { b.claim_block(id, 1, 1_000).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !claim.is_finished(),
        "the claim went past a commit in flight"
    );
    tx.commit().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), claim)
        .await
        .expect("the claim proceeds once the commit is done")
        .unwrap()
        .unwrap();
    assert!(got.is_some());
    drop(a);
}

#[tokio::test]
async fn the_change_feed_pages_every_row_changed_since_a_time_once() {
    let (_pg, a, _b) = two_servers().await;
    // 25 rows at time 2,000 and 5 at 2,001 (same second: the cursor must
    // page within it), 3 older ones at 1,000.
    let batch = |range: std::ops::Range<u8>| -> Vec<LeaseWrite> {
        range
            .map(|i| contract::grant([10, 0, 1, i], &[i], 9_000))
            .collect()
    };
    a.apply(&batch(0..3), 1_000).await.unwrap();
    a.apply(&batch(10..35), 2_000).await.unwrap();
    a.apply(&batch(40..45), 2_001).await.unwrap();
    let mut cursor = FeedCursor::since(2_000);
    let mut seen = Vec::new();
    loop {
        let page = a.changed_after(cursor, 7).await.unwrap();
        let Some(last) = page.last() else { break };
        cursor = FeedCursor::after(last);
        seen.extend(page.iter().map(|r| r.address));
    }
    let mut want: Vec<Ipv4Addr> = (10..35)
        .chain(40..45)
        .map(|i| Ipv4Addr::new(10, 0, 1, i))
        .collect();
    want.sort();
    let mut got = seen.clone();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), seen.len(), "no row twice");
    assert_eq!(got, want, "every row since 2,000, none before");
}
