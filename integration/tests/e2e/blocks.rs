//! Address ownership, end to end: two real daemons on one real PostgreSQL
//! split the pool's blocks between them and each allocates new addresses
//! only from its own, so their allocations never race.

use std::net::Ipv4Addr;
use std::time::Duration;

use irondhcp_testkit::postgres::PgServer;
use irondhcp_testkit::rawclient::RawClient;
use irondhcp_testkit::testbed::TestbedOptions;

use crate::lease_safety::bind;
use crate::{started, stat};

#[test]
fn two_servers_split_the_blocks_and_allocate_only_from_their_own() {
    let pg = PgServer::start().expect("start a private PostgreSQL");
    pg.create_database("leases").expect("create database");
    let opts = TestbedOptions {
        lease_time: 600,
        // 64 addresses in blocks of 16: two blocks for each server.
        pool: "198.18.0.64-198.18.0.127".into(),
        storage_url: Some(pg.socket_url("leases")),
        tail: "[cluster]\nblock_size = 16\npoll_interval_ms = 200\n".into(),
        ..TestbedOptions::default()
    };
    let a = started(&opts);
    let b = started(&opts);
    let settled = || stat(&a, "/blocks/owned") == 2 && stat(&b, "/blocks/owned") == 2;
    let t0 = std::time::Instant::now();
    while !settled() && t0.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        settled(),
        "blocks a/b: {} / {}",
        stat(&a, "/blocks/owned"),
        stat(&b, "/blocks/owned")
    );
    let mut leased: Vec<(String, Ipv4Addr)> = Vec::new();
    for (i, tb) in [&a, &b, &a, &b, &a, &b].into_iter().enumerate() {
        let mac = [0x02, 0, 0, 0, 0xb0, i as u8];
        let (addr, _) = bind(
            &RawClient::open(tb).expect("raw socket"),
            mac,
            0xd000 + 16 * i as u32,
        );
        let id = tb.ctl("stats").expect("stats")["server_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        leased.push((id, addr));
    }
    for (server, addr) in &leased {
        let owner = pg
            .query(
                "leases",
                &format!(
                    "SELECT owner FROM blocks WHERE '{addr}'::inet - '0.0.0.0'::inet BETWEEN first_addr AND last_addr"
                ),
            )
            .expect("query");
        assert_eq!(
            &owner, server,
            "{addr} was allocated outside its server's blocks"
        );
        let by = pg
            .query(
                "leases",
                &format!("SELECT allocated_by FROM leases WHERE ip = '{addr}'"),
            )
            .expect("query");
        assert_eq!(&by, server);
    }
    for tb in [&a, &b] {
        assert_eq!(stat(tb, "/control/conflicts"), 0);
        assert_eq!(stat(tb, "/control/borrowed"), 0);
    }
}
