//! End-to-end tests: the real `irondhcp` binary on real XDP + AF_XDP in
//! network namespaces over veth, its real SQLite file, and real clients
//! (dhclient, udhcpc, dhcpcd, perfdhcp) or hand-built frames.
//!
//! Every test needs root and builds its own uniquely named testbed, removed
//! afterwards (see `irondhcp_testkit::testbed`). Readiness and progress are
//! observed (management socket, client event logs, the lease file), never
//! assumed after a fixed sleep.

mod blocks;
mod clients;
mod cluster;
mod ctl;
mod http;
mod lease_safety;
mod malformed;
mod perfdhcp;
mod relay;
mod reload;
mod reservations;
mod restart;
mod shared_store;
mod sync;
mod systemd;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use irondhcp_testkit::testbed::{require_root, Testbed, TestbedOptions};
use serde_json::Value;

/// A finished command as (exit code, stdout, stderr).
pub fn outcome(out: std::process::Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The daemon under test, built on first use.
pub fn daemon_bin() -> PathBuf {
    irondhcp_testkit::bins::daemon()
}

/// A testbed with the daemon started.
pub fn started(opts: &TestbedOptions) -> Testbed {
    require_root("this end-to-end test");
    let mut tb = Testbed::new(opts).expect("create the testbed");
    tb.start_daemon(&daemon_bin()).expect("start irondhcp");
    tb
}

/// A stats counter by JSON pointer (e.g. "/packets/answered_from_map").
pub fn stat(tb: &Testbed, pointer: &str) -> u64 {
    tb.ctl("stats")
        .ok()
        .and_then(|v| v.pointer(pointer).and_then(Value::as_u64))
        .unwrap_or(0)
}

/// Rows of the lease file as (address, state, expiry, subnet_id), read with
/// the sqlite3 shell (read-only; the daemon keeps writing in WAL mode).
pub fn db_rows(db: &Path) -> Vec<(String, String, u64, u32)> {
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg("SELECT address, state, expiry, subnet_id FROM leases ORDER BY address")
        .output()
        .expect("run sqlite3");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            Some((
                f.first()?.to_string(),
                f.get(1)?.to_string(),
                f.get(2)?.parse().ok()?,
                f.get(3)?.parse().ok()?,
            ))
        })
        .collect()
}

/// The row of `addr`, if any.
pub fn db_row(db: &Path, addr: &str) -> Option<(String, String, u64, u32)> {
    db_rows(db).into_iter().find(|r| r.0 == addr)
}

/// A udhcpc script that configures the address and logs each event to
/// `events` as "<event> <ip>".
pub fn udhcpc_script(tb: &Testbed) -> (PathBuf, PathBuf) {
    let script = tb.dir.join("udhcpc.sh");
    let events = tb.dir.join("udhcpc.events");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  deconfig) ip -4 addr flush dev \"$interface\" ;;\n  bound|renew) ip -4 addr flush dev \"$interface\"; ip addr add \"$ip/${{mask:-16}}\" dev \"$interface\" ;;\nesac\necho \"$1 $ip\" >> {}\nexit 0\n",
            events.display()
        ),
    )
    .expect("write udhcpc script");
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .expect("chmod");
    (script, events)
}

/// Starts udhcpc in the foreground on the client interface (it renews at
/// T1 and releases on SIGUSR2); returns it and its event log.
pub fn spawn_udhcpc(tb: &Testbed) -> (std::process::Child, PathBuf) {
    let (script, ev) = udhcpc_script(tb);
    let child = tb
        .client
        .command("udhcpc")
        .args([
            "-f",
            "-i",
            &tb.cli_if,
            "-s",
            &script.display().to_string(),
            "-t",
            "20",
            "-T",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start udhcpc");
    (child, ev)
}

/// Lines of a client event log.
pub fn events(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

pub const LONG: Duration = Duration::from_secs(40);
