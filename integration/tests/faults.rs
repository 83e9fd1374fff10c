//! The cluster fault suite, shortened for CI: `irondhcp-faults` (the tool
//! behind `cargo xtask faults`) with two of its faults, a server killed and
//! a server cut from Redis, on the debug binaries. It exits 0 only when its
//! checker found no address promised to two clients and no promise missing
//! from PostgreSQL; the table it prints must show renewals answered.

use std::process::Command;

use irondhcp_testkit::bins::binary;
use irondhcp_testkit::testbed::require_root;

#[test]
fn a_killed_server_and_a_redis_cut_lose_no_lease_and_promise_none_twice() {
    require_root("the fault suite");
    // The suite runs the daemon, its ctl and the generator from beside
    // itself: build them all into one directory.
    for (package, bin) in [
        ("irondhcp-control", "irondhcp"),
        ("irondhcp-control", "irondhcp-ctl"),
        ("irondhcp-bench", "irondhcp-loadgen"),
    ] {
        binary(package, bin);
    }
    let faults = binary("irondhcp-bench", "irondhcp-faults");
    let out = Command::new(&faults)
        .args([
            "--faults",
            "kill,cut-redis",
            "--duration",
            "14",
            "--fault-at",
            "4",
        ])
        .args(["--rate", "100", "--clients", "120"])
        .output()
        .expect("run irondhcp-faults");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the checker found a problem ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Two rows, each with renewals answered during the fault.
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| fault"))
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    for r in rows {
        let cells: Vec<&str> = r.split('|').map(str::trim).collect();
        // | fault | sent | ACKs | duplicates | lost | renewals answered | ...
        assert_eq!((cells[4], cells[5]), ("0", "0"), "{r}");
        assert!(!cells[6].starts_with("0.0 %") && cells[6] != "–", "{r}");
    }
}
