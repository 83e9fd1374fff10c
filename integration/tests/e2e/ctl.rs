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

/// `irondhcp-ctl` with `args` against the testbed's daemon: (exit code,
/// stdout, stderr).
pub(crate) fn ctl(tb: &Testbed, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(irondhcp_testkit::bins::ctl())
        .arg("--socket")
        .arg(&tb.socket)
        .args(args)
        .output()
        .expect("run irondhcp-ctl");
    crate::outcome(out)
}

/// `irondhcp-ctl leases` with `args`: (exit success, stdout, stderr).
fn ctl_leases(tb: &Testbed, args: &[&str]) -> (bool, String, String) {
    let (code, out, err) = ctl(tb, &[&["leases"], args].concat());
    (code == 0, out, err)
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

#[test]
fn pools_show_use_and_page_before_a_pool_runs_dry() {
    // 2,500 of the pool's 65,279 addresses in use: 3.83 %.
    let tb = with_leases(2_500);
    let (code, csv, err) = ctl(&tb, &["pools", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        csv.lines().nth(1),
        Some("1,198.18.0.0/16,198.18.1.0-198.18.255.254,65279,2500,3.83,2500,62779,0,0"),
        "{csv}"
    );
    let (code, table, _) = ctl(&tb, &["pools"]);
    assert_eq!(code, 0);
    assert!(table.lines().last().unwrap().starts_with("all"), "{table}");
    // A monitoring check: one line, the exit code by the thresholds.
    let (code, line, _) = ctl(&tb, &["pools", "--warning", "3"]);
    assert_eq!(code, 1, "{line}");
    assert_eq!(line.lines().count(), 1);
    assert!(
        line.starts_with("IRONDHCP POOLS WARNING: subnet 1 198.18.1.0-198.18.255.254 at 3.8 % | "),
        "{line}"
    );
    assert_eq!(
        ctl(&tb, &["pools", "--warning", "2", "--critical", "3.5"]).0,
        2
    );
    let (code, line, _) = ctl(&tb, &["pools", "--warning", "50", "--critical", "90"]);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.starts_with("IRONDHCP POOLS OK: 1 ranges, fullest 3.8 %"),
        "{line}"
    );
    // No server to ask: UNKNOWN, exit 3, still one line.
    let out = Command::new(irondhcp_testkit::bins::ctl())
        .args([
            "--socket",
            "/nonexistent/irondhcp.sock",
            "pools",
            "--warning",
            "80",
        ])
        .output()
        .expect("run irondhcp-ctl");
    assert_eq!(out.status.code(), Some(3));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.starts_with("IRONDHCP POOLS UNKNOWN: cannot reach irondhcp"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1);
}

/// A tmux session, killed when dropped.
struct Tmux(String);

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

/// `irondhcp-ctl top` in a real terminal (tmux), while a load runs: the
/// screen shows the pool's bar and DISCOVERs per second above zero, and it
/// redraws (the rates change from frame to frame).
#[test]
fn top_shows_the_load_live_in_a_terminal() {
    let tb = with_leases(3_000);
    let tmux = Tmux(format!("irondhcp-top-{}", std::process::id()));
    let top = format!(
        "{} --socket {} top --interval-ms 300",
        irondhcp_testkit::bins::ctl().display(),
        tb.socket.display()
    );
    let ok = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &tmux.0,
            "-x",
            "120",
            "-y",
            "40",
            &top,
        ])
        .status()
        .expect("run tmux");
    assert!(ok.success());
    let screen = || {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &tmux.0])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // 1,500 new clients at 300/s: 5 s of load.
    let mut load = tb
        .client
        .command(irondhcp_testkit::bins::loadgen())
        .args(["--iface", &tb.cli_if, "--json", "--scenario", "dora"])
        .args(["--rate", "300", "--count", "1500", "--tries", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run irondhcp-loadgen");
    let busy = |s: &str| {
        s.lines()
            .find_map(|l| l.trim().strip_prefix("received  discover "))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut frames = Vec::new();
    while std::time::Instant::now() < deadline {
        let s = screen();
        if busy(&s) {
            frames.push(s);
            if frames.len() == 2 {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(350));
    }
    let _ = load.wait();
    let last = screen();
    assert!(
        frames.len() == 2,
        "the screen never showed DISCOVERs per second:\n{last}"
    );
    let bar = frames[0]
        .lines()
        .find(|l| l.contains("198.18.1.0-198.18.255.254"))
        .unwrap_or_else(|| panic!("no pool line:\n{}", frames[0]));
    assert!(bar.contains("[#") && bar.contains('%'), "{bar}");
    assert!(frames[0].contains("COMMITS PER SECOND"), "{}", frames[0]);
    assert_ne!(frames[0], frames[1], "the view did not redraw");
    assert!(!last.contains("irondhcp-ctl:"), "top failed:\n{last}");
}
