//! Real, unmodified DHCP clients obtain, renew and release leases over the
//! AF_XDP path; each step is checked in the client, in the server's counters
//! and in the lease file.

use std::process::Stdio;
use std::time::Duration;

use irondhcp_testkit::testbed::{Testbed, TestbedOptions};

use crate::{db_row, events, spawn_udhcpc, started, stat, LONG};

/// Lease 20 s, so T1 (renewal) comes after 10 s.
fn short_leases() -> TestbedOptions {
    TestbedOptions {
        lease_time: 20,
        ..TestbedOptions::default()
    }
}

/// Waits for one address on the client interface and returns it.
pub(crate) fn wait_addr(tb: &Testbed) -> String {
    let mut addr = None;
    let ok = tb.wait_for(LONG, || {
        addr = tb.client_addrs(&tb.cli_if).first().map(|a| a.to_string());
        addr.is_some()
    });
    assert!(ok, "client got no address; server log:\n{}", tb.log_text());
    addr.unwrap_or_default()
}

/// After a lease is bound: the server answers the renewal from memory, the
/// extension reaches the lease file (write-behind), the address stays.
fn check_renewal(tb: &Testbed, addr: &str, expiry_before: u64) {
    let ok = tb.wait_for(LONG, || stat(tb, "/packets/answered_from_map") >= 1);
    assert!(
        ok,
        "no renewal answered from memory; log:\n{}",
        tb.log_text()
    );
    let ok = tb.wait_for(Duration::from_secs(5), || {
        db_row(&tb.db, addr).is_some_and(|r| r.2 > expiry_before)
    });
    assert!(ok, "renewal not persisted: {:?}", db_row(&tb.db, addr));
    assert_eq!(
        tb.client_addrs(&tb.cli_if)
            .first()
            .map(|a| a.to_string())
            .as_deref(),
        Some(addr)
    );
}

fn wait_released(tb: &Testbed, addr: &str) {
    let ok = tb.wait_for(Duration::from_secs(10), || {
        db_row(&tb.db, addr).is_some_and(|r| r.1 == "released")
    });
    assert!(
        ok,
        "release not recorded: {:?}; log:\n{}",
        db_row(&tb.db, addr),
        tb.log_text()
    );
    let leases = tb.ctl("leases").expect("ctl leases");
    let live: Vec<&str> = leases["leases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["address"].as_str())
        .collect();
    assert!(
        !live.contains(&addr),
        "released {addr} still live: {live:?}"
    );
}

#[test]
fn dhclient_obtains_renews_and_releases() {
    let tb = started(&short_leases());
    let lf = tb.dir.join("dhclient.leases").display().to_string();
    let pf = tb.dir.join("dhclient.pid").display().to_string();
    let mut child = tb
        .client
        .command("dhclient")
        .args(["-d", "-4", "-v", "-lf", &lf, "-pf", &pf, &tb.cli_if])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dhclient");
    let addr = wait_addr(&tb);
    let row = db_row(&tb.db, &addr).expect("lease in the lease file");
    assert_eq!((row.1.as_str(), row.3), ("leased", 1));
    check_renewal(&tb, &addr, row.2);
    let _ = child.kill();
    let _ = child.wait();
    tb.client
        .exec(&["dhclient", "-4", "-r", "-lf", &lf, "-pf", &pf, &tb.cli_if])
        .expect("dhclient -r");
    wait_released(&tb, &addr);
}

#[test]
fn udhcpc_obtains_renews_and_releases() {
    let tb = started(&short_leases());
    let (mut child, ev) = spawn_udhcpc(&tb);
    let addr = wait_addr(&tb);
    let row = db_row(&tb.db, &addr).expect("lease in the lease file");
    assert_eq!(row.1, "leased");
    check_renewal(&tb, &addr, row.2);
    let ok = tb.wait_for(LONG, || {
        events(&ev).iter().any(|l| l == &format!("renew {addr}"))
    });
    assert!(ok, "udhcpc saw no renewal: {:?}", events(&ev));
    // SIGUSR2: udhcpc sends DHCPRELEASE.
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR2) };
    wait_released(&tb, &addr);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn dhcpcd_obtains_renews_and_releases() {
    let tb = started(&short_leases());
    let conf = tb.dir.join("dhcpcd.conf");
    std::fs::write(&conf, "option rapid_commit\nnoipv4ll\nnoarp\n").expect("write dhcpcd.conf");
    let mut child = tb
        .client
        .command("dhcpcd")
        .args([
            "-4",
            "-B",
            "-f",
            &conf.display().to_string(),
            "-t",
            "30",
            &tb.cli_if,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dhcpcd");
    let addr = wait_addr(&tb);
    let row = db_row(&tb.db, &addr).expect("lease in the lease file");
    assert_eq!(row.1, "leased");
    check_renewal(&tb, &addr, row.2);
    // `dhcpcd -k` asks the running instance to release and exit.
    let _ = tb.client.exec(&["dhcpcd", "-4", "-k", &tb.cli_if]);
    wait_released(&tb, &addr);
    let _ = child.kill();
    let _ = child.wait();
}
