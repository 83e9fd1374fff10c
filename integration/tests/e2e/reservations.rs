//! Reservations made while the daemon runs, as an operator makes them with
//! `irondhcp-ctl`: given to the real client (udhcpc) at once, refused for
//! a second client, audited with who made them, kept across a restart in
//! the SQLite file, deleted; and a lease released by the operator.

use irondhcp_testkit::rawclient::mac_in;
use irondhcp_testkit::testbed::{Testbed, TestbedOptions};

use crate::clients::wait_addr;
use crate::ctl::ctl;
use crate::{daemon_bin, db_row, spawn_udhcpc, started};

#[test]
fn a_reservation_made_at_run_time_is_given_at_once_audited_and_kept() {
    let mut tb = started(&TestbedOptions::default());
    let mac = mac_in(&tb.client, &tb.cli_if);
    let mac = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    // Far from where a random free address is likely to fall.
    let want = "198.18.200.7";
    let add = |tb: &Testbed, mac: &str, addr: &str| {
        ctl(
            tb,
            &[
                "reservations",
                "add",
                "--subnet",
                "1",
                "--mac",
                mac,
                "--address",
                addr,
                "--hostname",
                "printer",
            ],
        )
    };
    let (code, out, err) = add(&tb, &mac, want);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "Host added.");
    // The same client again, and another client on the same address: one
    // line each, exit 1.
    let (code, _, err) = add(&tb, &mac, want);
    assert_eq!(code, 1);
    assert!(err.contains("already has a reservation"), "{err}");
    let (code, _, err) = add(&tb, "02:00:00:00:00:99", want);
    assert_eq!(code, 1);
    assert!(err.contains("is reserved for another client"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // A real client gets it, with nothing restarted.
    let (mut child, _events) = spawn_udhcpc(&tb);
    let got = wait_addr(&tb);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(got, want, "the client was not given its reservation");
    assert_eq!(db_row(&tb.db, want).map(|r| r.1).as_deref(), Some("leased"));

    let (code, list, _) = ctl(&tb, &["reservations", "list"]);
    assert_eq!(code, 0);
    let row = list.lines().find(|l| l.contains(want)).unwrap_or_default();
    assert!(
        row.contains(&mac) && row.contains("store") && row.contains("printer"),
        "{list}"
    );

    // Kept across a restart: in the SQLite file, and applied again.
    tb.stop_daemon().expect("stop irondhcp");
    tb.start_daemon(&daemon_bin()).expect("restart irondhcp");
    let (_, list, _) = ctl(&tb, &["reservations", "list"]);
    assert!(list.contains(want), "{list}");
    let (code, _, err) = add(&tb, "02:00:00:00:00:99", want);
    assert!(
        code == 1 && err.contains("reserved for another client"),
        "{err}"
    );

    // The lease, shown and released by the operator.
    let (code, show, _) = ctl(&tb, &["lease", "show", want]);
    assert_eq!(code, 0);
    assert!(show.contains(&mac) && show.contains("leased"), "{show}");
    let (code, out, _) = ctl(&tb, &["lease", "release", want]);
    assert_eq!((code, out.trim()), (0, format!("released {want}").as_str()));
    let released = tb.wait_for(std::time::Duration::from_secs(5), || {
        db_row(&tb.db, want).is_some_and(|r| r.1 == "released")
    });
    assert!(released, "the release did not reach the lease file");
    let (code, _, err) = ctl(&tb, &["lease", "show", want]);
    assert_eq!(
        (code, err.trim()),
        (1, format!("irondhcp-ctl: no lease on {want}").as_str())
    );

    let (code, out, err) = ctl(
        &tb,
        &["reservations", "del", "--subnet", "1", "--address", want],
    );
    assert_eq!((code, out.trim()), (0, "Host deleted."), "{err}");
    let (code, _, err) = ctl(
        &tb,
        &["reservations", "del", "--subnet", "1", "--mac", &mac],
    );
    assert_eq!(code, 1, "deleting it twice");
    assert_eq!(err.trim(), "irondhcp-ctl: Host not deleted (not found).");
    // Free for anyone now.
    let (code, _, err) = add(&tb, "02:00:00:00:00:99", want);
    assert_eq!(code, 0, "{err}");

    // The trail: newest first, who and what.
    let (code, json, _) = ctl(&tb, &["--json", "reservations", "audit"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("audit JSON");
    let changes = v["arguments"]["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let actions: Vec<&str> = changes
        .iter()
        .filter_map(|c| c["action"].as_str())
        .collect();
    assert_eq!(actions, ["add", "delete", "add"], "{json}");
    assert!(
        changes
            .iter()
            .all(|c| c["actor"].as_str().is_some_and(|a| a.contains("uid 0"))),
        "{json}"
    );
    assert_eq!(changes[1]["before"]["ip-address"], want);
    assert_eq!(changes[1]["before"]["hw-address"], mac.as_str());
    assert!(changes[1]["after"].is_null());
}
