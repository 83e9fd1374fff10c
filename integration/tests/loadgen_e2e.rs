//! End-to-end: the `irondhcp-loadgen` binary against the real `irondhcp`
//! daemon in a network-namespace testbed (see `irondhcp_testkit::testbed`).
//!
//! Needs root (namespaces, veth, XDP). The daemon is not a target of this
//! crate, so the first test builds it with cargo. The tests hold one lock:
//! each measures rates, and the machine has two cores.

use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use irondhcp_testkit::testbed::{
    require_root, Testbed, TestbedOptions, RELAY_GIADDR, RELAY_IP, SERVER_IP,
};
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn started(opts: &TestbedOptions) -> Testbed {
    require_root("the load generator end-to-end test");
    let mut tb = Testbed::new(opts).expect("create the testbed");
    tb.start_daemon(&irondhcp_testkit::bins::daemon())
        .expect("start irondhcp");
    tb
}

/// Runs the load generator in the client namespace with `--json` and
/// returns its report.
fn loadgen(tb: &Testbed, args: &[&str]) -> Value {
    let mut cmd = tb.client.command(irondhcp_testkit::bins::loadgen());
    cmd.args(["--iface", &tb.cli_if, "--json"]).args(args);
    let out = cmd.output().expect("run irondhcp-loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "irondhcp-loadgen {args:?} failed ({}):\n{stderr}\ndaemon log:\n{}",
        out.status,
        tb.log_text()
    );
    eprintln!("loadgen {args:?}:\n{stderr}{stdout}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"))
}

fn u(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no {pointer} in {v}"))
}

fn f(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no {pointer} in {v}"))
}

/// Every exchange of `types` fully answered: no loss, NAK, duplicate.
fn all_answered(r: &Value, types: &[&str]) {
    for t in types {
        let e = format!("/exchanges/{t}");
        let sent = u(r, &format!("{e}/sent"));
        assert!(sent > 0, "{t}: nothing sent: {r}");
        assert_eq!(u(r, &format!("{e}/answered")), sent, "{t}: {r}");
        assert_eq!(u(r, &format!("{e}/lost")), 0, "{t}: {r}");
        assert_eq!(u(r, &format!("{e}/naks")), 0, "{t}: {r}");
        assert_eq!(u(r, &format!("{e}/duplicates")), 0, "{t}: {r}");
        assert_eq!(u(r, &format!("{e}/invalid")), 0, "{t}: {r}");
        assert!(u(r, &format!("{e}/latency_us/p50")) >= 1, "{t}: {r}");
        assert!(
            u(r, &format!("{e}/latency_us/max")) >= u(r, &format!("{e}/latency_us/p99")),
            "{t}: {r}"
        );
    }
}

#[test]
fn dora_over_xdp_at_500_per_second() {
    let _g = serial();
    let tb = started(&TestbedOptions::default());
    let r = loadgen(
        &tb,
        &["--scenario", "dora", "--rate", "500", "--duration", "2"],
    );
    assert_eq!(r["scenario"], "dora");
    assert_eq!(r["io"], "xdp");
    assert_eq!(f(&r, "/rate"), 500.0);
    // The send phase as measured: 1,000 exchanges at 500/s last 2 s.
    assert_eq!(f(&r, "/nominal_duration_s"), 2.0);
    let d = f(&r, "/duration_s");
    assert!((1.98..=2.02).contains(&d), "send phase {d} s");
    let achieved = f(&r, "/achieved_rate");
    assert!((490.0..=510.0).contains(&achieved), "achieved {achieved}/s");
    assert_eq!(r["generator_bound"], false);
    all_answered(&r, &["DISCOVER-OFFER", "REQUEST-ACK"]);
    assert_eq!(u(&r, "/exchanges/DISCOVER-OFFER/sent"), 1000);
    let dps = f(&r, "/dora_per_s");
    assert!((450.0..=550.0).contains(&dps), "dora_per_s {dps}");
    assert_eq!(f(&r, "/loss_ratio"), 0.0);
    assert_eq!(u(&r, "/clients"), 1000);
    // The server agrees: a thousand leases.
    let leases = tb.ctl("leases").expect("leases");
    let n = leases["leases"].as_array().map_or(0, Vec::len);
    assert_eq!(n, 1000, "leases on the server");
}

#[test]
fn renew_200_clients_at_1000_per_second_is_answered_from_the_map() {
    let _g = serial();
    let tb = started(&TestbedOptions::default());
    let r = loadgen(
        &tb,
        &[
            "--scenario",
            "renew",
            "--clients",
            "200",
            "--rate",
            "1000",
            "--duration",
            "2",
        ],
    );
    assert_eq!(u(&r, "/clients"), 200);
    all_answered(&r, &["RENEW-ACK"]);
    let renewals = u(&r, "/exchanges/RENEW-ACK/sent");
    assert!(
        (1900..=2001).contains(&renewals),
        "{renewals} renewals sent"
    );
    let stats = tb.ctl("stats").expect("stats");
    let from_map = stats
        .pointer("/packets/answered_from_map")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    assert!(
        from_map >= renewals,
        "answered_from_map {from_map} < {renewals} renewals: {stats}"
    );
}

#[test]
fn discover_flood_from_500_reused_clients_is_offered_and_never_acked() {
    let _g = serial();
    let tb = started(&TestbedOptions::default());
    let r = loadgen(
        &tb,
        &[
            "--scenario",
            "discover",
            "--rate",
            "2000",
            "--duration",
            "2",
            "--clients",
            "500",
        ],
    );
    assert_eq!(r["scenario"], "discover");
    // Every DISCOVER got its OFFER; no REQUEST was sent.
    all_answered(&r, &["DISCOVER-OFFER"]);
    assert!(r.pointer("/exchanges/REQUEST-ACK").is_none(), "{r}");
    // 4,000 DISCOVERs from 500 clients: each client sent 8 (reused
    // round-robin rather than ending the run after 500).
    let sent = u(&r, "/exchanges/DISCOVER-OFFER/sent");
    assert!((3990..=4001).contains(&sent), "{sent} DISCOVERs sent");
    assert_eq!(u(&r, "/clients"), 500);
    assert_eq!(r["generator_bound"], false);
    let d = f(&r, "/duration_s");
    assert!((1.98..=2.02).contains(&d), "send phase {d} s");
    assert_eq!(f(&r, "/dora_per_s"), 0.0);
    assert_eq!(f(&r, "/loss_ratio"), 0.0);
    // The server saw the DISCOVERs and made no ACK.
    let stats = tb.ctl("stats").expect("stats");
    let n = |p: &str| {
        stats
            .pointer(p)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no {p} in {stats}"))
    };
    assert!(
        n("/packets/received/discover") >= sent,
        "server received fewer DISCOVERs than {sent}: {stats}"
    );
    assert_eq!(n("/packets/received/request"), 0, "{stats}");
    assert_eq!(n("/control/acks"), 0, "{stats}");
    assert_eq!(n("/packets/sent/ack"), 0, "{stats}");
}

#[test]
fn dora_over_af_packet() {
    let _g = serial();
    let tb = started(&TestbedOptions::default());
    let r = loadgen(
        &tb,
        &[
            "--io",
            "packet",
            "--scenario",
            "dora",
            "--rate",
            "200",
            "--count",
            "200",
            "--client-id",
        ],
    );
    assert_eq!(r["io"], "packet");
    all_answered(&r, &["DISCOVER-OFFER", "REQUEST-ACK"]);
    assert_eq!(u(&r, "/exchanges/REQUEST-ACK/sent"), 200);
}

#[test]
fn relayed_dora_gets_the_relay_subnet() {
    let _g = serial();
    let tb = started(&TestbedOptions {
        relay_subnet: true,
        ..TestbedOptions::default()
    });
    for addr in [format!("{RELAY_IP}/16"), format!("{RELAY_GIADDR}/24")] {
        tb.client
            .exec(&["ip", "addr", "add", &addr, "dev", &tb.cli_if])
            .expect("relay address");
    }
    let (giaddr, relay_ip, server) = (
        RELAY_GIADDR.to_string(),
        RELAY_IP.to_string(),
        SERVER_IP.to_string(),
    );
    let r = loadgen(
        &tb,
        &[
            "--scenario",
            "relay",
            "--giaddr",
            &giaddr,
            "--relay-ip",
            &relay_ip,
            "--server",
            &server,
            "--rate",
            "200",
            "--count",
            "100",
        ],
    );
    assert_eq!(r["scenario"], "relay");
    all_answered(&r, &["DISCOVER-OFFER", "REQUEST-ACK"]);
    assert_eq!(u(&r, "/exchanges/REQUEST-ACK/sent"), 100);
    let leases = tb.ctl("leases").expect("leases");
    let addrs: Vec<&str> = leases["leases"]
        .as_array()
        .expect("lease list")
        .iter()
        .filter_map(|l| l["address"].as_str())
        .collect();
    assert_eq!(addrs.len(), 100, "{leases}");
    assert!(
        addrs.iter().all(|a| a.starts_with("198.19.0.")),
        "not all in 198.19.0.0/24: {addrs:?}"
    );
}

#[test]
fn clear_errors() {
    let _g = serial();
    let bin = irondhcp_testkit::bins::loadgen();
    let out = Command::new(&bin)
        .args(["--iface", "no-such-if0", "--count", "1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-if0"), "{err}");
    let out = Command::new(&bin)
        .args(["--iface", "lo", "--rate", "0"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rate"));
}
