//! The cluster's sync, end to end: two real daemons on one real PostgreSQL
//! and one real Redis. A lease one server grants reaches the other's map
//! (so the other answers its renewal from memory, without a lookup); the
//! extension that renewal persists comes back; and when Redis is away, the
//! maps catch up from PostgreSQL, by polling or after the reconnect.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::MessageType;
use irondhcp_testkit::postgres::PgServer;
use irondhcp_testkit::rawclient::{msg_type, RawClient};
use irondhcp_testkit::redis::RedisServer;
use irondhcp_testkit::testbed::{Testbed, TestbedOptions};

use crate::lease_safety::{bind, renew_with, A_MAC};
use crate::{started, stat};

/// Two servers' options on `pg`, with `cluster` as their `[cluster]` table.
fn cluster_opts(pg: &PgServer, cluster: &str) -> TestbedOptions {
    pg.create_database("leases").expect("create database");
    TestbedOptions {
        lease_time: 600,
        pool: "198.18.0.100-198.18.0.150".into(),
        storage_url: Some(pg.socket_url("leases")),
        tail: format!("[cluster]\n{cluster}\n"),
        ..TestbedOptions::default()
    }
}

/// Whether `tb`'s map holds a lease on `addr`.
fn holds(tb: &Testbed, addr: Ipv4Addr) -> bool {
    tb.ctl("leases").is_ok_and(|v| {
        v["leases"].as_array().is_some_and(|l| {
            l.iter()
                .any(|x| x["address"].as_str() == Some(&addr.to_string()))
        })
    })
}

/// Polls `cond` every 50 ms for up to `limit`; returns how long it took.
fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if cond() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn a_lease_granted_by_one_server_reaches_the_others_map_through_redis() {
    let pg = PgServer::start().expect("start a private PostgreSQL");
    let redis = RedisServer::start().expect("start a private Redis");
    // Polling an hour apart: only the events can bring the lease in time.
    let mut opts = cluster_opts(
        &pg,
        &format!(
            "redis_url = \"{}\"\npoll_interval_ms = 3600000",
            redis.url()
        ),
    );
    // A renewal a second later is written behind (the write threshold is
    // half the grace), so its extension is published.
    opts.server_extra = "reclaim_grace = 2".into();
    let a = started(&opts);
    let b = started(&opts);
    let (addr, bound) = bind(&RawClient::open(&a).expect("raw socket"), A_MAC, 0xa000);
    let took = within(Duration::from_secs(5), || holds(&b, addr));
    assert!(
        took.is_some(),
        "the lease never reached the other server's map\n{}",
        b.log_text()
    );
    assert!(stat(&b, "/sync/received_events") >= 1);
    assert!(stat(&b, "/sync/lag_samples") >= 1);
    assert_eq!(stat(&b, "/sync/malformed"), 0);

    // The other server answers the renewal from its map: no lookup, no
    // re-grant (the row keeps its version and its allocator).
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(bound.elapsed()));
    let answered = stat(&b, "/packets/answered_from_map");
    let ack = renew_with(
        &RawClient::open(&b).expect("raw socket"),
        &b,
        A_MAC,
        addr,
        0xa100,
        Duration::from_secs(5),
    )
    .expect("the renewal is answered");
    assert_eq!(msg_type(&ack), Some(MessageType::Ack));
    assert_eq!(stat(&b, "/packets/answered_from_map"), answered + 1);
    assert_eq!(stat(&b, "/control/lookups"), 0);
    let row = |what: &str| {
        pg.query(
            "leases",
            &format!("SELECT {what} FROM leases WHERE ip = '{addr}'"),
        )
        .expect("query")
    };
    let a_id = a.ctl("stats").expect("stats")["server_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(row("allocated_by || '|' || version"), format!("{a_id}|1"));

    // The extension the other server persisted comes back to the first as
    // an event (same version, later expiry).
    let synced = stat(&a, "/control/synced");
    let extended = within(Duration::from_secs(5), || {
        stat(&a, "/control/synced") > synced
    });
    assert!(
        extended.is_some(),
        "the extension never came back\n{}",
        a.log_text()
    );
    assert!(stat(&b, "/sync/published") >= 1);
}

#[test]
fn without_redis_the_maps_catch_up_by_polling_postgres() {
    let pg = PgServer::start().expect("start a private PostgreSQL");
    let opts = cluster_opts(&pg, "poll_interval_ms = 200");
    let a = started(&opts);
    let b = started(&opts);
    let (addr, _) = bind(&RawClient::open(&a).expect("raw socket"), A_MAC, 0xb000);
    assert!(
        within(Duration::from_secs(5), || holds(&b, addr)).is_some(),
        "polling never brought the lease\n{}",
        b.log_text()
    );
    assert!(stat(&b, "/sync/catchup_rows") >= 1);
    assert_eq!(stat(&b, "/sync/received"), 0, "no Redis, no events");
}

#[test]
fn a_lease_granted_while_redis_was_down_is_caught_up_after_it_returns() {
    let pg = PgServer::start().expect("start a private PostgreSQL");
    let mut redis = RedisServer::start().expect("start a private Redis");
    let opts = cluster_opts(
        &pg,
        &format!(
            "redis_url = \"{}\"\npoll_interval_ms = 3600000",
            redis.url()
        ),
    );
    let a = started(&opts);
    let b = started(&opts);
    let connected = |tb: &Testbed| {
        tb.ctl("stats").is_ok_and(|v| {
            v.pointer("/sync/redis_connected") == Some(&serde_json::Value::Bool(true))
        })
    };
    assert!(within(Duration::from_secs(5), || connected(&a) && connected(&b)).is_some());

    redis.stop().expect("stop Redis");
    assert!(within(Duration::from_secs(10), || !connected(&b)).is_some());
    // Granted while nobody can hear: the event is lost for good.
    let (addr, _) = bind(&RawClient::open(&a).expect("raw socket"), A_MAC, 0xc000);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !holds(&b, addr),
        "nothing could have told the other server yet"
    );

    redis.restart().expect("restart Redis");
    assert!(
        within(Duration::from_secs(10), || holds(&b, addr)).is_some(),
        "the reconnect never caught up\n{}",
        b.log_text()
    );
    assert!(stat(&b, "/sync/reconnects") >= 1);
    assert!(stat(&b, "/sync/catchup_rows") >= 1);
}
