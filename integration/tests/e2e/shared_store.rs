//! Two servers on one PostgreSQL: a lease granted by one is renewed by the
//! other, whose map never saw it — the renewal misses its map, the control
//! plane reads the row from the shared store and the lease is renewed, not
//! NAKed (docs/decisions.md: any server answers any renewal).

use std::time::Duration;

use dhcproto::v4::{DhcpOption, MessageType};
use irondhcp_testkit::postgres::PgServer;
use irondhcp_testkit::rawclient::{message, msg_type, Path, RawClient};
use irondhcp_testkit::testbed::TestbedOptions;

use crate::lease_safety::{bind, renew_with, A_MAC};
use crate::{started, stat};

const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xa0, 0x02];

#[test]
fn a_renewal_reaching_another_server_is_answered_from_the_shared_store() {
    let pg = PgServer::start().expect("start a private PostgreSQL");
    pg.create_database("leases").expect("create database");
    let opts = TestbedOptions {
        lease_time: 600,
        pool: "198.18.0.100-198.18.0.150".into(),
        storage_url: Some(pg.socket_url("leases")),
        // No Redis, and polling an hour apart: the second server's map
        // cannot learn of the lease before the renewal, which must miss.
        tail: "[cluster]\npoll_interval_ms = 3600000\n".into(),
        ..TestbedOptions::default()
    };
    let a = started(&opts);
    let b = started(&opts);
    let (addr, _) = bind(&RawClient::open(&a).expect("raw socket"), A_MAC, 0x9000);
    let row = |what: &str| {
        pg.query(
            "leases",
            &format!("SELECT {what} FROM leases WHERE ip = '{addr}'"),
        )
        .expect("query")
    };
    let granted_by = row("allocated_by");
    assert!(granted_by.starts_with("testbed-"), "{granted_by}");

    // The same client renews with the other server (as anycast would send
    // it after the first one failed).
    let cb = RawClient::open(&b).expect("raw socket");
    let ack = renew_with(&cb, &b, A_MAC, addr, 0x9100, Duration::from_secs(5))
        .expect("the other server answers the renewal");
    assert_eq!(
        msg_type(&ack),
        Some(MessageType::Ack),
        "{ack:?}\n{}",
        b.log_text()
    );
    assert_eq!(ack.yiaddr(), addr);
    assert_eq!(stat(&b, "/control/lookups_found"), 1);
    // The renewal was committed by the second server, over the same row.
    let renewed_by = row("allocated_by || '|' || version");
    let b_id = b.ctl("stats").expect("stats")["server_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_ne!(b_id, granted_by);
    assert_eq!(renewed_by, format!("{b_id}|2"));

    // A client rebooting with its remembered address (INIT-REBOOT) that
    // reaches the other server is looked up too, not NAKed.
    let (addr2, _) = bind(&RawClient::open(&a).expect("raw socket"), B_MAC, 0x9300);
    let mut reboot = message(MessageType::Request, B_MAC, 0x9400);
    reboot
        .opts_mut()
        .insert(DhcpOption::RequestedIpAddress(addr2));
    let ack = cb
        .exchange(&reboot, &Path::broadcast(B_MAC), Duration::from_secs(5))
        .expect("the INIT-REBOOT is answered");
    assert_eq!(msg_type(&ack), Some(MessageType::Ack), "{ack:?}");
    assert_eq!(ack.yiaddr(), addr2);
    assert_eq!(stat(&b, "/control/lookups_found"), 2);

    // A renewal of an address nobody leased still creates nothing: NAK.
    let other = (100..=150u8)
        .map(|i| std::net::Ipv4Addr::new(198, 18, 0, i))
        .find(|o| *o != addr && *o != addr2)
        .expect("a free address");
    let nak = renew_with(&cb, &b, A_MAC, other, 0x9200, Duration::from_secs(5)).expect("an answer");
    assert_eq!(msg_type(&nak), Some(MessageType::Nak));
    assert_eq!(
        pg.query("leases", "SELECT count(*) FROM leases")
            .expect("count"),
        "2"
    );
}
