//! ISC Kea (kea-dhcp4 from Debian) in the server namespace: multi-threaded,
//! memfile with persistence on (or PostgreSQL), the same subnet, pool and
//! options as irondhcp gets, with or without lease caching; and perfdhcp's
//! own rate search against it.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use irondhcp_testkit::peers::perfdhcp_counts;
use irondhcp_testkit::testbed::{Testbed, RELAY_IP, SERVER_IP};
use serde_json::{json, Value};

use crate::search::{log_trial, testbed_options, Outcome, Trial};
use crate::Args;
use irondhcp_bench::loadgen::stats::GENERATOR_BOUND_SHORTFALL;

/// A running kea-dhcp4, stopped on drop.
pub struct Kea(Child);

impl Drop for Kea {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kea's lease caching threshold in the cached variant: a lease younger
/// than this fraction of its lifetime is renewed without a database write
/// (Kea 3.0's default; Kea 2.2 supports it but defaults to off).
pub const CACHE_THRESHOLD: f64 = 0.25;

/// Where Kea keeps its leases.
#[derive(Debug, Clone)]
pub enum KeaStore {
    /// A CSV file in the testbed's directory, persisted.
    Memfile,
    /// A PostgreSQL database (made by `kea-admin db-init pgsql`) reached
    /// over the Unix socket in `socket_dir`.
    Postgres {
        socket_dir: std::path::PathBuf,
        port: u16,
        name: String,
    },
}

impl KeaStore {
    fn lease_database(&self, dir: &Path) -> Value {
        match self {
            KeaStore::Memfile => json!({
                "type": "memfile", "persist": true, "lfc-interval": 0,
                "name": dir.join("kea-leases4.csv").display().to_string(),
            }),
            // libpq takes a host that starts with '/' as a socket directory.
            KeaStore::Postgres {
                socket_dir,
                port,
                name,
            } => json!({
                "type": "postgresql", "name": name, "user": "postgres",
                "host": socket_dir.display().to_string(), "port": port,
            }),
        }
    }
}

/// Kea's config for the testbed: the irondhcp testbed's subnet, pool,
/// lease times and options; `cache`: lease caching at [`CACHE_THRESHOLD`].
fn config(iface: &str, dir: &Path, cache: bool, store: &KeaStore) -> Value {
    let mut v = json!({"Dhcp4": {
        "interfaces-config": {"interfaces": [iface], "dhcp-socket-type": "raw"},
        "lease-database": store.lease_database(dir),
        "multi-threading": {"enable-multi-threading": true, "thread-pool-size": 2, "packet-queue-size": 64},
        "valid-lifetime": 3600, "renew-timer": 1800, "rebind-timer": 3150,
        "authoritative": true,
        "subnet4": [{
            "id": 1, "subnet": "198.18.0.0/15",
            "pools": [{"pool": "198.18.1.0 - 198.19.255.254"}],
            "option-data": [
                {"name": "routers", "data": SERVER_IP.to_string()},
                {"name": "domain-name-servers", "data": SERVER_IP.to_string()},
                {"name": "domain-name", "data": "testbed.example"}
            ]
        }],
        "loggers": [{
            "name": "kea-dhcp4", "severity": "WARN",
            "output_options": [{"output": dir.join("kea.log").display().to_string()}]
        }]
    }});
    if cache {
        v["Dhcp4"]["cache-threshold"] = json!(CACHE_THRESHOLD);
    }
    v
}

/// Starts kea-dhcp4 in the server namespace (on `core` only, if given;
/// with lease caching if `cache`) and waits until it has bound port 67
/// (observed with `ss`, not assumed after a sleep).
pub fn start(tb: &Testbed, core: Option<usize>, cache: bool, store: &KeaStore) -> Result<Kea> {
    let path = tb.dir.join("kea-dhcp4.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&config(&tb.srv_if, &tb.dir, cache, store))?,
    )?;
    let mut cmd = match core {
        Some(c) => {
            let mut cmd = tb.server.command("taskset");
            cmd.args(["-c", &c.to_string(), "kea-dhcp4"]);
            cmd
        }
        None => tb.server.command("kea-dhcp4"),
    };
    let child = cmd
        .arg("-c")
        .arg(&path)
        .env("KEA_PIDFILE_DIR", &tb.dir)
        .env("KEA_LOCKFILE_DIR", &tb.dir)
        .stdout(std::fs::File::create(tb.dir.join("kea.stdout"))?)
        .stderr(std::fs::File::create(tb.dir.join("kea.stderr"))?)
        .spawn()
        .context("spawn kea-dhcp4 (package kea-dhcp4-server)")?;
    let mut kea = Kea(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = kea.0.try_wait()? {
            bail!(
                "kea-dhcp4 exited ({st}): {}",
                std::fs::read_to_string(tb.dir.join("kea.stderr")).unwrap_or_default()
            );
        }
        let ss = tb
            .server
            .exec(&["ss", "-H", "-lunp"])
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string());
        if ss.is_ok_and(|s| s.contains("kea-dhcp4") || s.contains(":67 ")) {
            // Kea's raw socket is bound; it answers from here on.
            return Ok(kea);
        }
        if Instant::now() > deadline {
            bail!("kea-dhcp4 did not bind port 67 within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One perfdhcp run against a fresh Kea at `rate` four-way exchanges/s.
/// For the cross-check Kea runs on core 0 and the generator on core 1: on
/// two shared cores a heavier generator (perfdhcp needs a whole core near
/// 11k exchanges/s) would otherwise take CPU from the server, and the two
/// tools would measure themselves instead of Kea.
///
/// Returns the trial as the search sees it, with a report of perfdhcp's
/// counts. perfdhcp's "drops" are sent − received, so an exchange still in
/// flight when it exits would count as lost (the load generator waits for
/// those); `-W` makes it wait for them too. It is generator-bound, like the
/// load generator, when it sent fewer than 98 % of the DISCOVERs the rate
/// and period ask for.
/// perfdhcp's own output comes back too.
pub fn perfdhcp_trial(args: &Args, rate: f64) -> Result<(Trial, String)> {
    let tb = Testbed::new(&testbed_options())?;
    let _kea = start(&tb, Some(0), false, &KeaStore::Memfile)?;
    tb.client.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{RELAY_IP}/15"),
        "dev",
        &tb.cli_if,
    ])?;
    let secs = args
        .trial_secs
        .min(crate::search::POOL_SIZE * 0.9 / rate)
        .max(1.0)
        .ceil();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &tb.client.name,
            "taskset",
            "-c",
            "1",
            "perfdhcp",
            "-4",
            "-l",
            &tb.cli_if,
        ])
        .args(["-r", &format!("{rate:.0}"), "-p", &format!("{secs:.0}")])
        // Wait up to the drop time (1 s, perfdhcp's default -d) for the
        // answers still in flight at the end.
        .args(["-W", &PERFDHCP_EXIT_WAIT_US.to_string()])
        .args(["-R", &format!("{}", (rate * secs * 1.1) as u64)])
        .arg(SERVER_IP.to_string())
        .output()
        .context("run perfdhcp (package kea-admin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Replies perfdhcp's own UDP socket dropped (its receive buffer full:
    // perfdhcp did not read fast enough), counted by the client namespace.
    let rcvbuf_errors = tb
        .client
        .exec(&["cat", "/proc/net/snmp"])
        .ok()
        .and_then(|o| udp_rcvbuf_errors(&String::from_utf8_lossy(&o.stdout)));
    let (Some((d_sent, d_recv, _)), Some((r_sent, r_recv, _))) = (
        perfdhcp_counts(&text, "DISCOVER-OFFER"),
        perfdhcp_counts(&text, "REQUEST-ACK"),
    ) else {
        bail!(
            "perfdhcp printed no report: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let trial = perfdhcp_outcome(
        rate,
        secs,
        (d_sent, d_recv),
        (r_sent, r_recv),
        rcvbuf_errors,
    );
    Ok((
        trial,
        format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
    ))
}

/// `Udp: ... RcvbufErrors` of a `/proc/net/snmp` text.
fn udp_rcvbuf_errors(snmp: &str) -> Option<u64> {
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let names = udp.next()?;
    let values = udp.next()?;
    let i = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// How long perfdhcp waits for answers in flight after its last send, µs.
const PERFDHCP_EXIT_WAIT_US: u64 = 1_000_000;

/// The search's view of a perfdhcp run at `rate` for `secs` that sent and
/// received (`d`) DISCOVER/OFFERs and (`r`) REQUEST/ACKs, its socket having
/// dropped `rcvbuf_errors` replies (None: unknown).
fn perfdhcp_outcome(
    rate: f64,
    secs: f64,
    d: (u64, u64),
    r: (u64, u64),
    rcvbuf_errors: Option<u64>,
) -> Trial {
    let sent = (d.0 + r.0) as f64;
    let loss = if sent > 0.0 {
        1.0 - (d.1 + r.1) as f64 / sent
    } else {
        1.0
    };
    let achieved = if secs > 0.0 { d.0 as f64 / secs } else { 0.0 };
    let generator_bound = achieved < rate * (1.0 - GENERATOR_BOUND_SHORTFALL);
    let lost = (d.0 + r.0).saturating_sub(d.1 + r.1);
    let outcome = Outcome::judge(generator_bound, loss, r.1 > 0, lost, rcvbuf_errors);
    Trial {
        outcome,
        loss,
        achieved,
        report: json!({
            "tool": "perfdhcp", "rate": rate, "period_s": secs, "achieved_rate": achieved,
            "generator_bound": generator_bound, "loss_ratio": loss,
            "client_udp_rcvbuf_errors": rcvbuf_errors,
            "exchanges": {
                "DISCOVER-OFFER": {"sent": d.0, "answered": d.1},
                "REQUEST-ACK": {"sent": r.0, "answered": r.1},
            },
        }),
    }
}

/// perfdhcp's rate search against Kea, by the same procedure as the load
/// generator's relayed search (failures confirmed by a second trial).
pub fn perfdhcp_search(args: &Args) -> Result<Value> {
    crate::search::search(args.quick, 64_000.0, true, |rate| {
        let (t, _) = perfdhcp_trial(args, rate)?;
        log_trial("perfdhcp", "relay", rate, &t);
        Ok(t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfdhcp_counts_become_an_outcome() {
        // 5 s at 4,000/s: 20,000 DISCOVERs expected.
        let ok = perfdhcp_outcome(4000.0, 5.0, (20_000, 19_990), (19_990, 19_900), Some(0));
        assert_eq!(ok.outcome, Outcome::Pass);
        assert!((ok.loss - 100.0 / 39_990.0).abs() < 1e-12);
        assert_eq!(ok.achieved, 4000.0);
        let lossy = perfdhcp_outcome(4000.0, 5.0, (20_000, 19_000), (19_000, 19_000), Some(0));
        assert_eq!(lossy.outcome, Outcome::Fail);
        // perfdhcp could only send 3,500/s: not a measurement of Kea.
        let slow = perfdhcp_outcome(4000.0, 5.0, (17_500, 17_500), (17_500, 17_500), None);
        assert_eq!(slow.outcome, Outcome::Generator);
        assert_eq!(slow.report["generator_bound"], true);
        assert_eq!(slow.report["exchanges"]["REQUEST-ACK"]["answered"], 17_500);
        // Lossy because perfdhcp's own socket overflowed: not Kea's loss.
        let own = perfdhcp_outcome(4000.0, 5.0, (20_000, 19_000), (19_000, 19_000), Some(600));
        assert_eq!(own.outcome, Outcome::Generator);
        assert_eq!(own.report["client_udp_rcvbuf_errors"], 600);
        // Nothing answered at all.
        assert_eq!(
            perfdhcp_outcome(10.0, 1.0, (10, 0), (0, 0), None).outcome,
            Outcome::Fail
        );
    }

    #[test]
    fn rcvbuf_errors_are_read_from_snmp() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 2 64\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    Udp: 100 0 7 90 7 0\n\
                    UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    UdpLite: 0 0 0 0 0 0\n";
        assert_eq!(udp_rcvbuf_errors(snmp), Some(7));
        assert_eq!(udp_rcvbuf_errors("Udp: InDatagrams\nUdp: 1\n"), None);
        assert_eq!(udp_rcvbuf_errors(""), None);
    }

    #[test]
    fn the_cached_variant_differs_by_the_threshold_only() {
        let dir = Path::new("/tmp/tb");
        let mut cached = config("ids1", dir, true, &KeaStore::Memfile);
        let plain = config("ids1", dir, false, &KeaStore::Memfile);
        assert_eq!(cached["Dhcp4"]["cache-threshold"], 0.25);
        assert!(plain["Dhcp4"].get("cache-threshold").is_none());
        assert_eq!(plain["Dhcp4"]["interfaces-config"]["interfaces"][0], "ids1");
        assert_eq!(
            plain["Dhcp4"]["lease-database"]["name"],
            "/tmp/tb/kea-leases4.csv"
        );
        cached["Dhcp4"]
            .as_object_mut()
            .unwrap()
            .remove("cache-threshold");
        assert_eq!(cached, plain);
    }

    #[test]
    fn on_postgres_kea_reaches_the_database_over_its_socket() {
        let store = KeaStore::Postgres {
            socket_dir: "/tmp/pg-1".into(),
            port: 5433,
            name: "kea7".into(),
        };
        let v = config("ids1", Path::new("/tmp/tb"), false, &store);
        let db = &v["Dhcp4"]["lease-database"];
        assert_eq!(db["type"], "postgresql");
        assert_eq!(db["host"], "/tmp/pg-1");
        assert_eq!(db["port"], 5433);
        assert_eq!(db["name"], "kea7");
        assert!(db.get("persist").is_none());
    }
}
