//! ISC Kea (kea-dhcp4 from Debian) in the server namespace: multi-threaded,
//! memfile with persistence on, the same subnet, pool and options as
//! irondhcp gets; and perfdhcp's own rate search against it.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use irondhcp_control::testbed::{perfdhcp_counts, Testbed, RELAY_IP, SERVER_IP};
use serde_json::{json, Value};

use crate::search::{testbed_options, MAX_LOSS};
use crate::Args;

/// A running kea-dhcp4, stopped on drop.
pub struct Kea(Child);

impl Drop for Kea {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kea's config for the testbed: the irondhcp testbed's subnet, pool,
/// lease times and options.
fn config(tb: &Testbed) -> Value {
    json!({"Dhcp4": {
        "interfaces-config": {"interfaces": [tb.srv_if], "dhcp-socket-type": "raw"},
        "lease-database": {
            "type": "memfile", "persist": true, "lfc-interval": 0,
            "name": tb.dir.join("kea-leases4.csv").display().to_string(),
        },
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
            "output_options": [{"output": tb.dir.join("kea.log").display().to_string()}]
        }]
    }})
}

/// Starts kea-dhcp4 in the server namespace (on `core` only, if given) and
/// waits until it has bound port 67 (observed with `ss`, not assumed after
/// a sleep).
pub fn start(tb: &Testbed, core: Option<usize>) -> Result<Kea> {
    let path = tb.dir.join("kea-dhcp4.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config(tb))?)?;
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
fn perfdhcp_trial(args: &Args, rate: f64) -> Result<(bool, f64)> {
    let tb = Testbed::new(&testbed_options())?;
    let _kea = start(&tb, Some(0))?;
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
        .max(1.0);
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
        .args([
            "-r",
            &format!("{rate:.0}"),
            "-p",
            &format!("{}", secs.ceil() as u64),
        ])
        .args([
            "-R",
            &format!("{}", (rate * secs * 1.1) as u64),
            &SERVER_IP.to_string(),
        ])
        .output()
        .context("run perfdhcp (package kea-admin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
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
    let sent = (d_sent + r_sent) as f64;
    let loss = if sent > 0.0 {
        1.0 - (d_recv + r_recv) as f64 / sent
    } else {
        1.0
    };
    let ok = loss < MAX_LOSS && r_recv > 0;
    eprintln!(
        "   perfdhcp kea   {rate:>9.0}/s  loss {:>6.3} %  {}",
        loss * 100.0,
        if ok { "pass" } else { "FAIL" }
    );
    Ok((ok, loss))
}

/// perfdhcp's rate search against Kea, by the same procedure as the load
/// generator's: `{"rate", "trials"}`.
pub fn perfdhcp_search(args: &Args) -> Result<Value> {
    crate::search::search(args.quick, 64_000.0, |rate| {
        let (ok, loss) = perfdhcp_trial(args, rate)?;
        Ok((ok, loss, Value::Null))
    })
}
