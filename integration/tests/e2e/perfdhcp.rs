//! perfdhcp (ISC's load generator, acting as a relay from its own address)
//! at a moderate rate: every exchange is answered, and no address is given
//! to two clients.

use std::collections::HashSet;
use std::time::Duration;

use irondhcp_testkit::peers::perfdhcp_counts;
use irondhcp_testkit::testbed::{TestbedOptions, SERVER_IP};

use crate::{db_rows, started};

#[test]
fn perfdhcp_1000_per_second_no_drops_no_duplicates() {
    let tb = started(&TestbedOptions::default());
    tb.add_relay_address().expect("perfdhcp address");
    let out = tb
        .client
        .command("perfdhcp")
        .args([
            "-4",
            "-l",
            &tb.cli_if,
            "-r",
            "1000",
            "-p",
            "10",
            "-R",
            "5000",
            "-W",
            "2000000",
            &SERVER_IP.to_string(),
        ])
        .output()
        .expect("run perfdhcp");
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    let (d_sent, d_recv, d_drops) = perfdhcp_counts(&report, "DISCOVER-OFFER")
        .unwrap_or_else(|| panic!("no DISCOVER-OFFER block:\n{report}"));
    let (r_sent, r_recv, r_drops) = perfdhcp_counts(&report, "REQUEST-ACK")
        .unwrap_or_else(|| panic!("no REQUEST-ACK block:\n{report}"));
    assert!(
        d_sent >= 8_000,
        "perfdhcp sent only {d_sent} DISCOVERs:\n{report}"
    );
    assert_eq!(
        (d_drops, r_drops),
        (0, 0),
        "drops:\n{report}\nserver log:\n{}",
        tb.log_text()
    );
    assert_eq!(d_recv, d_sent);
    assert_eq!(r_recv, r_sent);

    // Every ACK is a distinct address, durable in the lease file.
    let ok = tb.wait_for(Duration::from_secs(5), || {
        db_rows(&tb.db).iter().filter(|r| r.1 == "leased").count() as u64 >= r_recv.min(5_000)
    });
    let rows = db_rows(&tb.db);
    let leased: Vec<_> = rows.iter().filter(|r| r.1 == "leased").collect();
    assert!(ok, "{} leased rows for {r_recv} ACKs", leased.len());
    let distinct: HashSet<&String> = leased.iter().map(|r| &r.0).collect();
    assert_eq!(distinct.len(), leased.len(), "an address appears twice");
    let stats = tb.ctl("stats").expect("stats");
    assert_eq!(stats["control"]["naks"], 0, "{stats}");
    // Every DHCP frame went through XDP to the AF_XDP socket.
    assert!(
        stats["xdp"]["redirected"].as_u64().unwrap_or(0) >= d_sent + r_sent,
        "{stats}"
    );
    assert_eq!(stats["xdp"]["no_socket"], 0, "{stats}");
    assert_eq!(
        stats["pools"][0]["assigned"].as_u64(),
        Some(leased.len() as u64),
        "{stats}"
    );
}
