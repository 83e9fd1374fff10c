//! The lease-safety invariant end to end (docs/decisions.md): promise at
//! most the durable expiry plus MCLT, reclaim only past the durable expiry
//! plus MCLT plus grace, and stop cleanly on SIGTERM. Real frames through
//! XDP and AF_XDP, the real daemon, the real SQLite file, `kill -9`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Message, MessageType};
use irondhcp_testkit::postgres::PgServer;
use irondhcp_testkit::testbed::{Testbed, TestbedOptions, SERVER_IP};

use crate::{daemon_bin, db_row, started};
use irondhcp_testkit::rawclient::{lease_time, mac_in, message, msg_type, Path, RawClient};

pub(crate) const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xa0, 0x01];
const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xb0, 0x02];

/// A testbed whose pool is one address, lease 40 s (T1 20 s, MCLT 20 s).
fn one_address(server_extra: &str) -> Testbed {
    started(&TestbedOptions {
        lease_time: 40,
        pool: "198.18.0.100-198.18.0.100".into(),
        server_extra: server_extra.into(),
        ..TestbedOptions::default()
    })
}

/// PostgreSQL goes down (killed at once) and comes back: while it is down
/// a new client gets an OFFER but no ACK (nothing is promised that is not
/// stored), a bound client's renewals are answered from memory; once it is
/// back, the new client is ACKed without a daemon restart and both leases
/// are in PostgreSQL.
#[test]
fn postgres_restart_holds_new_leases_until_it_is_back() {
    let pg = PgServer::start().expect("start a private PostgreSQL");
    pg.create_database("leases").expect("create database");
    let tb = started(&TestbedOptions {
        lease_time: 40,
        pool: "198.18.0.100-198.18.0.101".into(),
        storage_url: Some(pg.socket_url("leases")),
        ..TestbedOptions::default()
    });
    let c = RawClient::open(&tb).expect("raw socket");
    let (a, _) = bind(&c, A_MAC, 0x8000);

    pg.stop().expect("stop PostgreSQL");
    let offer = c
        .exchange(
            &message(MessageType::Discover, B_MAC, 0x8100),
            &Path::broadcast(B_MAC),
            Duration::from_secs(5),
        )
        .expect("an OFFER while the store is down");
    let b = offer.yiaddr();
    assert_ne!(a, b);
    let req = selecting(B_MAC, b, 0x8101);
    let answer = c.exchange(&req, &Path::broadcast(B_MAC), Duration::from_secs(3));
    assert!(
        answer.is_none(),
        "ACKed while PostgreSQL was down: {answer:?}"
    );
    let renewal = renew_with(&c, &tb, A_MAC, a, 0x8200, Duration::from_secs(3))
        .expect("a renewal answered from memory");
    assert_eq!(msg_type(&renewal), Some(MessageType::Ack));

    pg.restart().expect("restart PostgreSQL");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut acked = false;
    let mut xid = 0x8300;
    while !acked && Instant::now() < deadline {
        let req = selecting(B_MAC, b, xid);
        acked = c
            .exchange(&req, &Path::broadcast(B_MAC), Duration::from_secs(1))
            .is_some_and(|r| msg_type(&r) == Some(MessageType::Ack) && r.yiaddr() == b);
        xid += 1;
    }
    assert!(
        acked,
        "no ACK after PostgreSQL came back\n{}",
        tb.log_text()
    );
    let rows = pg
        .query("leases", "SELECT ip, state FROM leases ORDER BY address")
        .expect("query");
    let (lo, hi) = (a.min(b), a.max(b));
    assert_eq!(rows, format!("{lo}|leased\n{hi}|leased"), "{rows}");
}

/// DISCOVER, OFFER, REQUEST, ACK for `mac`; returns the address and the
/// time the ACK arrived.
pub(crate) fn bind(c: &RawClient, mac: [u8; 6], xid: u32) -> (Ipv4Addr, Instant) {
    (bind_ack(c, mac, xid).yiaddr(), Instant::now())
}

/// DISCOVER, OFFER, REQUEST: the ACK.
pub(crate) fn bind_ack(c: &RawClient, mac: [u8; 6], xid: u32) -> Message {
    let offer = c
        .exchange(
            &message(MessageType::Discover, mac, xid),
            &Path::broadcast(mac),
            Duration::from_secs(10),
        )
        .expect("an OFFER");
    assert_eq!(msg_type(&offer), Some(MessageType::Offer));
    let req = selecting(mac, offer.yiaddr(), xid + 1);
    let ack = c
        .exchange(&req, &Path::broadcast(mac), Duration::from_secs(10))
        .expect("an ACK");
    assert_eq!(msg_type(&ack), Some(MessageType::Ack), "{ack:?}");
    ack
}

/// A SELECTING REQUEST: `mac` takes the offer of `addr` from this server.
fn selecting(mac: [u8; 6], addr: Ipv4Addr, xid: u32) -> Message {
    let mut m = message(MessageType::Request, mac, xid);
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(addr));
    m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER_IP));
    m
}

/// `mac` renews `addr` with `tb`'s server (RENEWING, unicast) and waits up
/// to `wait` for the answer.
pub(crate) fn renew_with(
    c: &RawClient,
    tb: &Testbed,
    mac: [u8; 6],
    addr: Ipv4Addr,
    xid: u32,
    wait: Duration,
) -> Option<Message> {
    c.exchange(
        &renewing(mac, addr, xid),
        &unicast_path(tb, mac, addr),
        wait,
    )
}

/// A RENEWING request: unicast from `addr` to the server.
fn renewing(mac: [u8; 6], addr: Ipv4Addr, xid: u32) -> Message {
    let mut m = message(MessageType::Request, mac, xid);
    m.set_flags(dhcproto::v4::Flags::default());
    m.set_ciaddr(addr);
    m
}

fn unicast_path(tb: &Testbed, mac: [u8; 6], addr: Ipv4Addr) -> Path {
    Path {
        src_mac: mac,
        dst_mac: mac_in(&tb.server, &tb.srv_if),
        src_ip: addr,
        dst_ip: SERVER_IP,
    }
}

/// Another client asks for `addr` by option 50, DISCOVER then REQUEST;
/// true when it got it ACKed.
fn try_take(c: &RawClient, addr: Ipv4Addr, xid: u32) -> bool {
    let mut d = message(MessageType::Discover, B_MAC, xid);
    d.opts_mut().insert(DhcpOption::RequestedIpAddress(addr));
    c.send(&d, &Path::broadcast(B_MAC)).expect("send");
    let Some(offer) = c.recv(xid, Duration::from_millis(700)) else {
        return false;
    };
    if msg_type(&offer) != Some(MessageType::Offer) || offer.yiaddr() != addr {
        return false;
    }
    let r = selecting(B_MAC, addr, xid + 1);
    c.send(&r, &Path::broadcast(B_MAC)).expect("send");
    c.recv(xid + 1, Duration::from_millis(700))
        .is_some_and(|a| msg_type(&a) == Some(MessageType::Ack) && a.yiaddr() == addr)
}

/// The bug this guards: a renewal ACKed from memory, then `kill -9` before
/// the write-behind reached the store; after the restart the address went
/// to a new client at stored expiry + grace, while the first client's lease
/// still ran. Now nobody else gets it before the promised expiry.
#[test]
fn crash_after_renewal_never_gives_the_address_to_a_second_client_early() {
    // The write-behind waits up to 5 s, so the kill surely beats it.
    let mut tb = one_address("reclaim_grace = 5\nreclaim_interval = 1\nwrite_behind_ms = 5000");
    let c = RawClient::open(&tb).expect("raw socket");
    let (addr, t0) = bind(&c, A_MAC, 0x1000);

    // Renew at T1: answered from memory with a whole lease, promised until
    // t0 + 60 s (durable t0 + 40 plus MCLT 20).
    let t1 = t0 + Duration::from_secs(20);
    std::thread::sleep(t1.saturating_duration_since(Instant::now()));
    let ack =
        renew_with(&c, &tb, A_MAC, addr, 0x2000, Duration::from_secs(3)).expect("renewal answered");
    let renewed_at = Instant::now();
    tb.kill_daemon().expect("kill -9");
    assert_eq!(msg_type(&ack), Some(MessageType::Ack));
    let promised = lease_time(&ack).expect("option 51");
    assert!(promised >= 20, "renewal at T1 got {promised} s");
    let promised_end = renewed_at + Duration::from_secs(u64::from(promised));

    tb.start_daemon(&daemon_bin()).expect("restart irondhcp");
    // Until A's promised end, no one else may get the address.
    let mut xid = 0x3000;
    while Instant::now() + Duration::from_secs(1) < promised_end {
        assert!(
            !try_take(&c, addr, xid),
            "{addr} ACKed to a second client {:?} before the first one's lease ends\n{}",
            promised_end.saturating_duration_since(Instant::now()),
            tb.log_text()
        );
        xid += 2;
        std::thread::sleep(Duration::from_millis(300));
    }
    // And reclaim does happen once the bound (durable + MCLT + grace) has
    // passed: the test would pass vacuously if the address never came back.
    let deadline = promised_end + Duration::from_secs(20);
    let mut taken = false;
    while !taken && Instant::now() < deadline {
        taken = try_take(&c, addr, xid);
        xid += 2;
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(taken, "{addr} never reclaimed\n{}", tb.log_text());
}

/// A store outage while a client renews: answers from memory keep coming
/// but shorten, never promising past durable expiry + MCLT; near the bound
/// the renewal needs the store and gets no ACK while it is away.
#[test]
fn store_outage_shortens_renewals_and_never_over_promises() {
    let mut tb = one_address("write_behind_ms = 200");
    let c = RawClient::open(&tb).expect("raw socket");
    let (addr, t0) = bind(&c, A_MAC, 0x5000);
    // The store goes away: another process holds SQLite's write lock.
    let mut locker = std::process::Command::new("sqlite3")
        .arg(&tb.db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("sqlite3");
    {
        use std::io::Write;
        let stdin = locker.stdin.as_mut().expect("stdin");
        stdin
            .write_all(b"PRAGMA busy_timeout=100; BEGIN EXCLUSIVE; INSERT INTO leases (subnet_id, address, client_key, state, expiry, allocated_by, updated_at) VALUES (99, 'x', x'00', 'expired', 0, 'lock', 0);\n")
            .expect("lock");
        stdin.flush().expect("flush");
    }
    std::thread::sleep(Duration::from_millis(500));
    let bound = t0 + Duration::from_secs(40 + 20);
    let mut acked = 0;
    let mut unanswered_near_bound = false;
    // Renew every 5 s from 10 s to 55 s after the bind.
    for k in 2..=11u64 {
        let xid = 0x6000 + k as u32;
        let at = t0 + Duration::from_secs(5 * k);
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let sent = Instant::now();
        c.send(&renewing(A_MAC, addr, xid), &unicast_path(&tb, A_MAC, addr))
            .expect("send");
        match c.recv(xid, Duration::from_millis(1500)) {
            Some(r) if msg_type(&r) == Some(MessageType::Ack) => {
                acked += 1;
                let secs = u64::from(lease_time(&r).expect("option 51"));
                let end = sent + Duration::from_secs(secs);
                assert!(
                    end <= bound + Duration::from_secs(2),
                    "ACK at +{} s promised {secs} s: past durable + MCLT",
                    (sent - t0).as_secs()
                );
            }
            Some(r) => panic!("unexpected {:?}", msg_type(&r)),
            None => {
                unanswered_near_bound |=
                    bound.saturating_duration_since(sent) < Duration::from_secs(21)
            }
        }
    }
    let _ = locker.kill();
    let _ = locker.wait();
    assert!(
        acked >= 3,
        "renewals from memory during the outage: {acked}"
    );
    assert!(
        unanswered_near_bound,
        "near the bound a renewal must wait for the store"
    );
    // The operator sees both in the counters: ACKs the bound shortened,
    // and renewals it sent to the durable path.
    assert!(crate::stat(&tb, "/packets/promise_shortened") >= 1);
    assert!(crate::stat(&tb, "/packets/promise_deferred") >= 1);
    let _ = tb.stop_daemon();
}

/// SIGTERM stops the daemon cleanly: a renewal ACKed from memory, not yet
/// written (write-behind of 10 s), is in the store after the stop. (SIGHUP
/// reloads the configuration: `reload::`.)
#[test]
fn sigterm_stops_cleanly_and_flushes_the_write_behind() {
    let mut tb = one_address("reclaim_grace = 0\nwrite_behind_ms = 10000");
    let c = RawClient::open(&tb).expect("raw socket");
    let (addr, _) = bind(&c, A_MAC, 0x7000);
    let before = db_row(&tb.db, &addr.to_string()).expect("row").2;
    std::thread::sleep(Duration::from_secs(2));
    let ack =
        renew_with(&c, &tb, A_MAC, addr, 0x7100, Duration::from_secs(3)).expect("renewal answered");
    assert_eq!(msg_type(&ack), Some(MessageType::Ack));
    let status = tb.signal_daemon(libc::SIGTERM).expect("SIGTERM");
    assert!(
        status.success(),
        "SIGTERM exit: {status}\n{}",
        tb.log_text()
    );
    let after = db_row(&tb.db, &addr.to_string()).expect("row").2;
    assert!(after > before, "extension lost: {before} -> {after}");
}
