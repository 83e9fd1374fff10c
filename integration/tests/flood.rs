//! A DISCOVER flood cannot starve the control plane (docs/decisions.md):
//! while `irondhcp-loadgen` floods DISCOVERs from 100,000 MACs as fast as
//! it can send against a /16 and a /24, `irondhcp-ctl
//! stats` answers every poll within a second, a real dhclient gets a lease
//! and its renewal reaches the store within the write-behind bound, and the
//! daemon's memory stays bounded.
//!
//! Needs root (namespaces, veth, XDP). The load generator uses AF_PACKET
//! here so that dhclient, on the same client interface, still sees its
//! own replies.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use irondhcp_testkit::testbed::{require_root, Testbed, TestbedOptions};
use serde_json::Value;

/// Runs dhclient (in namespace `ns` on `ifname`, its files in `dir`)
/// until it writes one more lease into `lease_file`, 20 s at most, then
/// stops it; true when it did. With a lease already in the file, dhclient
/// asks for it again (INIT-REBOOT): a renewal.
fn dhclient_once(ns: &str, dir: &Path, lease_file: &Path, ifname: &str) -> bool {
    let leases = || {
        std::fs::read_to_string(lease_file)
            .unwrap_or_default()
            .matches("fixed-address")
            .count()
    };
    let before = leases();
    let Ok(mut child) = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "dhclient",
            "-4",
            "-d",
            "-sf",
            "/bin/true",
        ])
        .arg("-lf")
        .arg(lease_file)
        .arg("-pf")
        .arg(dir.join("dhclient.pid"))
        .arg(ifname)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let start = Instant::now();
    let mut got = false;
    while !got && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
        got = leases() > before;
    }
    let _ = child.kill();
    let _ = child.wait();
    got
}

/// The address of the last lease in a dhclient lease file.
fn leased_address(lease_file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lease_file).ok()?;
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("fixed-address "))
        .map(|a| a.trim_end_matches(';').to_string())
}

/// Expiry of `addr` in the lease file of the daemon.
fn stored_expiry(db: &Path, addr: &str) -> Option<u64> {
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg(format!(
            "SELECT expiry FROM leases WHERE address = '{addr}'"
        ))
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// One flood at a time: the scenario is one generator at its top rate
/// against one server. Two at once on a 2-core machine halve each other's
/// CPU and measure the machine, not the server.
static ONE_FLOOD: Mutex<()> = Mutex::new(());

fn flood(pool: &str, prefix_len: u8) {
    require_root("the flood test");
    let _one = ONE_FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let mut tb = Testbed::new(&TestbedOptions {
        pool: pool.into(),
        prefix_len,
        // Every renewal is written (no lease caching), within 500 ms.
        server_extra: "reclaim_grace = 0\nwrite_behind_ms = 500".into(),
        ..TestbedOptions::default()
    })
    .expect("testbed");
    tb.start_daemon(&irondhcp_testkit::bins::daemon())
        .expect("start irondhcp");

    // DISCOVERs only, from 100,000 MACs reused round-robin, for 15 s at
    // 40,000/s: about what the generator sends through AF_PACKET here (it
    // sends every planned DISCOVER, so an offered rate far above what it
    // can send would stretch the run, not the flood).
    let gen = tb
        .client
        .command(irondhcp_testkit::bins::loadgen())
        .args(["--iface", &tb.cli_if, "--io", "packet", "--json", "--quiet"])
        .args([
            "--scenario",
            "discover",
            "--clients",
            "100000",
            "--rate",
            "40000",
        ])
        .args(["--duration", "15", "--tries", "1", "--no-arp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start irondhcp-loadgen");

    // Poll stats every 0.5 s through the flood; a real client joins after 3 s.
    let start = Instant::now();
    let lease_file = tb.dir.join("dhclient.leases");
    let mut slowest = Duration::ZERO;
    let mut polls = 0;
    let mut client: Option<std::thread::JoinHandle<bool>> = None;
    let mut max_rss = 0u64;
    while start.elapsed() < Duration::from_secs(16) {
        let t = Instant::now();
        let stats = tb.ctl("stats");
        let took = t.elapsed();
        assert!(stats.is_ok(), "stats did not answer: {stats:?}");
        slowest = slowest.max(took);
        polls += 1;
        let v = stats.unwrap_or(Value::Null);
        max_rss = max_rss.max(
            v.pointer("/process/rss_kib")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        );
        if client.is_none() && start.elapsed() > Duration::from_secs(3) {
            let (ns, conf_dir, lf, ifname) = (
                tb.client.name.clone(),
                tb.dir.clone(),
                lease_file.clone(),
                tb.cli_if.clone(),
            );
            client = Some(std::thread::spawn(move || {
                dhclient_once(&ns, &conf_dir, &lf, &ifname)
            }));
        }
        std::thread::sleep(Duration::from_millis(500).saturating_sub(took));
    }
    let got_lease = client.map(|h| h.join().unwrap_or(false)).unwrap_or(false);
    let out = gen.wait_with_output().expect("loadgen output");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let sent = report
        .pointer("/exchanges/DISCOVER-OFFER/sent")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    eprintln!(
        "flood {pool}: {polls} polls, slowest {slowest:?}, max RSS {max_rss} KiB, loadgen {report}"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a stats poll took {slowest:?}"
    );
    assert!(polls >= 25, "only {polls} polls");
    assert!(
        sent >= 100_000,
        "the generator sent only {sent} DISCOVERs: {report}"
    );
    assert!(
        got_lease,
        "dhclient got no lease during the flood\n{}",
        tb.log_text()
    );
    let addr = leased_address(&lease_file).expect("a lease in dhclient's file");

    // A renewal during load (INIT-REBOOT from the lease file, answered from
    // memory) reaches the store within write_behind_ms + 1 s.
    let before = stored_expiry(&tb.db, &addr).expect("the lease is stored");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        dhclient_once(&tb.client.name, &tb.dir, &lease_file, &tb.cli_if),
        "renewal not answered"
    );
    let renewed_at = Instant::now();
    let mut after = before;
    while renewed_at.elapsed() < Duration::from_millis(1500) && after <= before {
        after = stored_expiry(&tb.db, &addr).unwrap_or(before);
        std::thread::sleep(Duration::from_millis(50));
    }
    if after <= before {
        std::thread::sleep(Duration::from_secs(5));
        eprintln!(
            "before {before}, after 5 s more: {:?}; leases file:\n{}\nstats {}",
            stored_expiry(&tb.db, &addr),
            std::fs::read_to_string(&lease_file).unwrap_or_default(),
            tb.ctl("stats").unwrap_or_default()
        );
    }
    assert!(
        after > before,
        "renewal of {addr} not persisted within 1.5 s"
    );
    assert!(
        max_rss > 0 && max_rss < 256 << 10,
        "daemon RSS {max_rss} KiB over the 256 MiB bound"
    );
    let stats = tb.ctl("stats").expect("stats");
    let exhausted = stats
        .pointer("/control/pool_exhausted")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    eprintln!("pool exhausted {exhausted} times");
    let _ = tb.stop_daemon();
}

#[test]
fn discover_flood_on_a_slash_24_never_starves_the_control_plane() {
    flood("198.18.0.10-198.18.0.250", 16);
}

#[test]
fn discover_flood_on_a_slash_16_never_starves_the_control_plane() {
    flood("198.18.1.0-198.18.255.254", 16);
}
