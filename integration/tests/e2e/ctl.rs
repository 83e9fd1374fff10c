//! `irondhcp-ctl` as an operator runs it against a daemon with many leases:
//! output piped into `head` ends quietly (no panic, no backtrace).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use irondhcp_testkit::testbed::{require_root, Testbed, TestbedOptions};

use crate::daemon_bin;

const SCHEMA: &str = include_str!("../../../migrations/sqlite/20261121000001_leases.sql");

/// A testbed whose lease store holds `n` leases in 198.18.0.0/16 before the
/// daemon starts (written with the sqlite3 shell).
fn with_leases(n: u32) -> Testbed {
    require_root("this end-to-end test");
    let mut tb = Testbed::new(&TestbedOptions::default()).expect("testbed");
    let fill = format!(
        "{SCHEMA}\nWITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {n} - 1)
         INSERT INTO leases SELECT 1, '198.18.' || (1 + i / 256) || '.' || (i % 256),
           CAST(printf('%07d', i) AS BLOB), NULL, 'leased', strftime('%s', 'now') + 3600, 'test', 0 FROM c;"
    );
    let mut child = Command::new("sqlite3")
        .arg(&tb.db)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run sqlite3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(fill.as_bytes())
        .expect("write SQL");
    assert!(child.wait().expect("sqlite3").success());
    tb.start_daemon(&daemon_bin()).expect("start irondhcp");
    tb
}

#[test]
fn leases_piped_into_head_ends_quietly() {
    let tb = with_leases(20_000);
    // 20,000 lines are far more than a pipe holds: the reader goes away
    // while irondhcp-ctl is still writing, as `| head -3` does.
    let mut ctl = Command::new(irondhcp_testkit::bins::ctl())
        .arg("--socket")
        .arg(&tb.socket)
        .arg("leases")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run irondhcp-ctl");
    let stdout = ctl.stdout.take().expect("stdout");
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .take(3)
        .map(|l| l.expect("a line"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("address"), "{lines:?}");
    // The pipe's reader is gone now (dropped with the BufReader).
    let out = ctl.wait_with_output().expect("wait for irondhcp-ctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && stderr.is_empty(),
        "irondhcp-ctl complained about the closed pipe: {stderr}"
    );
    assert!(out.status.success(), "exit status {}", out.status);
}

/// `irondhcp-ctl leases` with `args`: (exit success, stdout, stderr).
fn ctl_leases(tb: &Testbed, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(irondhcp_testkit::bins::ctl())
        .arg("--socket")
        .arg(&tb.socket)
        .arg("leases")
        .args(args)
        .output()
        .expect("run irondhcp-ctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn leases_are_filtered_and_fetched_page_by_page() {
    // Lease i is 198.18.(1 + i / 256).(i % 256).
    let tb = with_leases(2_500);
    // Every lease, over three pages of 1,000, plus the header.
    let (ok, all, _) = ctl_leases(&tb, &[]);
    assert!(ok);
    assert_eq!(all.lines().count(), 2_501);
    assert!(all.lines().nth(1).unwrap().starts_with("198.18.1.0 "));
    assert!(all.lines().last().unwrap().starts_with("198.18.10.195 "));
    // One address.
    let (ok, one, _) = ctl_leases(&tb, &["--address", "198.18.2.7"]);
    assert!(ok);
    assert_eq!(one.lines().count(), 2, "{one}");
    assert!(one.lines().nth(1).unwrap().starts_with("198.18.2.7 "));
    // A limit across a page boundary, as JSON lines.
    let (ok, some, err) = ctl_leases(&tb, &["--limit", "1500", "--json"]);
    assert!(ok, "{err}");
    assert_eq!(some.lines().count(), 1_500);
    let last: serde_json::Value = serde_json::from_str(some.lines().last().unwrap()).unwrap();
    assert_eq!(last["address"], "198.18.6.219", "lease 1499");
    // After a cursor: leases 2304..2500.
    let (ok, rest, err) = ctl_leases(&tb, &["--after", "198.18.9.255", "--json"]);
    assert!(ok, "{err}");
    assert_eq!(rest.lines().count(), 196);
    // A bad filter is one line that says what is wrong.
    let (ok, _, err) = ctl_leases(&tb, &["--mac", "zz"]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("irondhcp-ctl: hw-address: "), "{err}");
}
