//! The lease-store contract (`irondhcp_control::store::contract`) against a
//! real PostgreSQL server, the same bodies the SQLite store passes, and
//! what only a shared store meets: two servers granting the same addresses
//! at the same moment. Each test runs its own private server
//! (`testkit::postgres`).

use irondhcp_control::store::contract;
use irondhcp_control::store::postgres::PgStore;
use irondhcp_control::store::{LeaseStore, LeaseWrite, RecordState, Store, StoreError};
use irondhcp_testkit::postgres::PgServer;

async fn fresh(server_id: &str) -> (PgServer, PgStore) {
    let pg = PgServer::start().expect("start a private PostgreSQL");
    let url = pg.create_database("leases").expect("create database");
    let store = PgStore::open(&url, server_id).await.expect("open store");
    (pg, store)
}

#[tokio::test]
async fn writes_and_guards_survive_a_reopen() {
    let (pg, s) = fresh("srv-a").await;
    contract::writes_then_guards(&s).await;
    s.close().await;
    // Through the URL dispatch, as the daemon opens it.
    let s = Store::open(&pg.url("leases"), "srv-a").await.unwrap();
    contract::reads_back(&s, "srv-a").await;
    // One row by address, as a renewal that missed the map reads it.
    assert!(s.is_shared());
    let got = s
        .get(1, "10.0.0.5".parse().unwrap())
        .await
        .unwrap()
        .expect("the row of 10.0.0.5");
    assert_eq!((got.client_key.as_slice(), got.version), (&b"A"[..], 2));
    assert_eq!(s.get(1, "10.0.0.77".parse().unwrap()).await.unwrap(), None);
    assert_eq!(s.get(2, "10.0.0.5".parse().unwrap()).await.unwrap(), None);
    // The address column reads as an address in psql.
    assert_eq!(
        pg.query("leases", "SELECT ip FROM leases ORDER BY address LIMIT 1")
            .unwrap(),
        "10.0.0.5"
    );
}

/// A grant stores the relay's circuit-id and remote-id with the lease (or
/// NULL without option 82); a later grant to another client replaces them.
#[tokio::test]
async fn a_grant_stores_option_82_ids() {
    let (pg, s) = fresh("srv").await;
    let mut relayed = contract::grant([10, 0, 0, 5], b"A", 2_000);
    if let LeaseWrite::Grant { relay, .. } = &mut relayed {
        relay.circuit_id = Some(b"eth0/7".to_vec());
        relay.remote_id = Some(vec![2, 0, 0, 0, 0, 9]);
    }
    let plain = contract::grant([10, 0, 0, 6], b"B", 2_000);
    let r = contract::applied(s.apply(&[relayed, plain], 1_000).await.unwrap());
    assert_eq!(r, [true, true]);
    let ids = |addr: &str| {
        pg.query(
            "leases",
            &format!(
                "SELECT coalesce(encode(circuit_id, 'escape'), 'null') || ' ' || \
                 coalesce(encode(remote_id, 'hex'), 'null') FROM leases WHERE ip = '{addr}'"
            ),
        )
        .unwrap()
    };
    assert_eq!(ids("10.0.0.5"), "eth0/7 020000000009");
    assert_eq!(ids("10.0.0.6"), "null null");
    // Found by either id, or both; not by another, nor once expired.
    let by = |circuit: Option<&[u8]>, remote: Option<&[u8]>, now: u64| {
        let ids = irondhcp_control::store::RelayIds {
            circuit_id: circuit.map(<[u8]>::to_vec),
            remote_id: remote.map(<[u8]>::to_vec),
        };
        let s = &s;
        async move { s.relay_addresses(&ids, now, 10).await.unwrap() }
    };
    let five: Vec<std::net::Ipv4Addr> = vec!["10.0.0.5".parse().unwrap()];
    assert_eq!(by(Some(b"eth0/7"), None, 1_000).await, five);
    assert_eq!(by(None, Some(&[2, 0, 0, 0, 0, 9]), 1_000).await, five);
    assert_eq!(
        by(Some(b"eth0/7"), Some(&[2, 0, 0, 0, 0, 9]), 1_000).await,
        five
    );
    assert!(by(Some(b"eth0/8"), None, 1_000).await.is_empty());
    assert!(by(Some(b"eth0/7"), None, 2_000).await.is_empty(), "expired");
    // Released, then granted to another client without option 82.
    let release = LeaseWrite::Release {
        subnet_id: 1,
        address: "10.0.0.5".parse().unwrap(),
        client_key: b"A".to_vec(),
        version: 1,
    };
    let next = contract::grant([10, 0, 0, 5], b"C", 3_000);
    let r = contract::applied(s.apply(&[release, next], 1_100).await.unwrap());
    assert_eq!(r, [true, true]);
    assert_eq!(ids("10.0.0.5"), "null null");
}

#[tokio::test]
async fn batch_order_and_multi_row_statements() {
    let (_pg, s) = fresh("srv").await;
    contract::batch_order_and_multi_row_statements(&s).await;
}

#[tokio::test]
async fn stale_writes_never_touch_a_newer_grant() {
    let (_pg, s) = fresh("srv").await;
    contract::stale_writes_never_touch_a_newer_grant(&s).await;
}

#[tokio::test]
async fn decline_stores_the_quarantine_and_expire_ends_it() {
    let (_pg, s) = fresh("srv").await;
    contract::decline_stores_the_quarantine_and_expire_ends_it(&s).await;
}

#[tokio::test]
async fn takeover_waits_for_the_guard_and_the_quarantine() {
    let (_pg, s) = fresh("srv").await;
    contract::takeover_waits_for_the_guard_and_the_quarantine(&s).await;
}

/// Two servers commit grants of the same 256 addresses to different
/// clients at the same time, in many small batches: every address ends up
/// granted exactly once, to the server whose row is in the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_never_grant_one_address_twice() {
    let (pg, a) = fresh("srv-a").await;
    let b = PgStore::open(&pg.url("leases"), "srv-b").await.unwrap();
    let grants = |key: &'static [u8], order_reversed: bool| {
        let mut v: Vec<LeaseWrite> = (0..=255u8)
            .map(|i| contract::guarded_grant([10, 9, 0, i], key, 5_000, 60))
            .collect();
        if order_reversed {
            v.reverse();
        }
        v
    };
    let run = |s: PgStore, writes: Vec<LeaseWrite>| async move {
        let mut won = Vec::new();
        for chunk in writes.chunks(8) {
            let out = s.apply(chunk, 1_000).await.unwrap();
            for (w, o) in chunk.iter().zip(out) {
                if let (LeaseWrite::Grant { address, .. }, Some(_)) = (w, o) {
                    won.push(*address);
                }
            }
        }
        won
    };
    let (won_a, won_b) = tokio::join!(
        tokio::spawn(run(a.clone(), grants(b"A", false))),
        tokio::spawn(run(b.clone(), grants(b"B", true)))
    );
    let (won_a, won_b) = (won_a.unwrap(), won_b.unwrap());
    assert_eq!(won_a.len() + won_b.len(), 256, "every address granted once");
    let rows = a.load().await.unwrap();
    assert_eq!(rows.len(), 256);
    for r in &rows {
        let (key, by) = if won_a.contains(&r.address) {
            (&b"A"[..], "srv-a")
        } else {
            assert!(
                won_b.contains(&r.address),
                "{} granted by nobody",
                r.address
            );
            (&b"B"[..], "srv-b")
        };
        assert_eq!(
            (r.client_key.as_slice(), r.allocated_by.as_str(), r.state),
            (key, by, RecordState::Leased),
            "{}",
            r.address
        );
    }
    assert!(
        !won_a.is_empty() && !won_b.is_empty(),
        "both servers won some addresses (they raced from opposite ends)"
    );
}

/// Registration bumps the boot epoch; a heartbeat only keeps alive the
/// boot that owns the row, and never moves back.
#[tokio::test]
async fn servers_register_with_a_new_epoch_and_keep_a_heartbeat() {
    let (pg, a) = fresh("srv-a").await;
    let b = PgStore::open(&pg.url("leases"), "srv-b").await.unwrap();
    assert_eq!(a.register("192.0.2.1", 1_000).await.unwrap(), 1);
    assert_eq!(b.register("192.0.2.1", 1_000).await.unwrap(), 1);
    // srv-a restarts: epoch 2; the old boot's heartbeat no longer counts.
    let a2 = PgStore::open(&pg.url("leases"), "srv-a").await.unwrap();
    assert_eq!(a2.register("192.0.2.1", 1_005).await.unwrap(), 2);
    assert!(!a.heartbeat(1, 1_010).await.unwrap(), "a replaced boot");
    assert!(a2.heartbeat(2, 1_010).await.unwrap());
    assert!(a2.heartbeat(2, 1_008).await.unwrap());
    let servers = a.servers().await.unwrap();
    let got: Vec<(&str, u32, u64)> = servers
        .iter()
        .map(|r| (r.id.as_str(), r.boot_epoch, r.heartbeat_at))
        .collect();
    assert_eq!(got, vec![("srv-a", 2, 1_010), ("srv-b", 1, 1_000)]);
    assert_eq!(servers[0].version, env!("CARGO_PKG_VERSION"));
    assert_eq!(servers[0].address, "192.0.2.1");
}

/// An unreachable database is a clear error at start, without the password.
#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://irondhcp:s3cret@127.0.0.1:{port}/leases");
    let e = match PgStore::open(&url, "srv").await {
        Err(e) => e,
        Ok(_) => panic!("opened a database nobody serves"),
    };
    assert!(matches!(e, StoreError::Open { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("127.0.0.1") && !msg.contains("s3cret"),
        "{msg}"
    );
}

#[tokio::test]
async fn reservations_change_with_their_audit_rows() {
    let (_pg, s) = fresh("srv").await;
    contract::reservations_change_with_their_audit_rows(&s).await;
}
