//! Memory of the daemon with many leases: a lease store preloaded with N
//! leases (written with the sqlite3 shell, no DHCP traffic needed), the
//! daemon started on it, and its own report of the lease map's size and its
//! resident memory once every lease is loaded.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use irondhcp_testkit::testbed::{Testbed, TestbedOptions};
use serde_json::{json, Value};

use crate::Bins;

const SCHEMA: &str = include_str!("../../../../migrations/sqlite/20261121000001_leases.sql");
/// Leases go into 100.64.0.0/10 (shared address space, 4M addresses; no
/// packet is ever sent to it).
const FIRST: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);

pub fn measure(bins: &Bins, n: u64) -> Result<Value> {
    let last = Ipv4Addr::from(u32::from(FIRST) + n as u32 - 1);
    let opts = TestbedOptions {
        pool: "198.18.1.0-198.18.1.255".into(),
        tail: format!(
            "[[subnet]]\nid = 3\ncidr = \"100.64.0.0/10\"\npools = [\"{FIRST}-{last}\"]\n"
        ),
        ..TestbedOptions::default()
    };
    let mut tb = Testbed::new(&opts)?;
    let fill = format!(
        "{SCHEMA}\nWITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {n} - 1)
         INSERT INTO leases SELECT 3,
           '100.' || (64 + (i + 1) / 65536) || '.' || (((i + 1) / 256) % 256) || '.' || ((i + 1) % 256),
           CAST(printf('%07d', i) AS BLOB), NULL, 'leased', strftime('%s', 'now') + 86400, 'bench', 0 FROM c;"
    );
    // The SQL goes through stdin: its leading "--" comment would be taken
    // for an option on the command line.
    let mut child = Command::new("sqlite3")
        .arg(&tb.db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run sqlite3")?;
    child
        .stdin
        .take()
        .context("sqlite3 stdin")?
        .write_all(fill.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "preloading the store failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    tb.start_daemon(&bins.irondhcp)?;
    let st = tb.ctl("stats")?;
    let leases = st["lease_map"]["leases"].as_u64().unwrap_or(0);
    if leases != n {
        bail!("the daemon loaded {leases} leases, expected {n}");
    }
    let bytes = st["lease_map"]["bytes"].as_u64().unwrap_or(0);
    let capacity = st["lease_map"]["capacity"].as_u64().unwrap_or(0);
    let rss_kib = st["process"]["rss_kib"].as_u64().unwrap_or(0);
    let peak_kib = st["process"]["peak_rss_kib"].as_u64().unwrap_or(0);
    let v = json!({
        "leases": leases,
        "lease_map_bytes": bytes,
        "lease_map_capacity": capacity,
        "lease_map_bytes_per_lease": bytes as f64 / leases.max(1) as f64,
        "lease_map_bytes_per_address": bytes as f64 / capacity.max(1) as f64,
        "rss_mib": rss_kib as f64 / 1024.0,
        "peak_rss_mib": peak_kib as f64 / 1024.0,
    });
    eprintln!(
        "   {n} leases: lease map {:.1} B/lease, RSS {:.1} MiB (peak {:.1})",
        v["lease_map_bytes_per_lease"].as_f64().unwrap_or(0.0),
        v["rss_mib"].as_f64().unwrap_or(0.0),
        v["peak_rss_mib"].as_f64().unwrap_or(0.0)
    );
    Ok(v)
}
