//! Leases survive a graceful restart and a `kill -9`: a client that renews
//! after the restart keeps its address, answered from the reloaded map.

use irondhcp_testkit::testbed::TestbedOptions;

use crate::{daemon_bin, db_row, events, spawn_udhcpc, started, stat, LONG};

fn restart_keeps_lease(kill: bool) {
    let mut tb = started(&TestbedOptions {
        lease_time: 20,
        ..TestbedOptions::default()
    });
    let (mut client, ev) = spawn_udhcpc(&tb);
    let mut bound = None;
    let ok = tb.wait_for(LONG, || {
        bound = events(&ev)
            .iter()
            .find_map(|l| l.strip_prefix("bound ").map(str::to_string));
        bound.is_some()
    });
    assert!(ok, "no lease: {:?}\n{}", events(&ev), tb.log_text());
    let addr = bound.unwrap_or_default();
    assert_eq!(
        db_row(&tb.db, &addr).map(|r| r.1),
        Some("leased".to_string())
    );

    if kill {
        tb.kill_daemon().expect("kill -9");
    } else {
        let st = tb.stop_daemon().expect("SIGTERM");
        assert!(st.success(), "graceful stop exited with {st}");
        let link = tb
            .server
            .exec(&["ip", "-d", "link", "show", "dev", &tb.srv_if])
            .expect("ip link");
        let link = String::from_utf8_lossy(&link.stdout);
        assert!(
            !link.contains("prog/xdp"),
            "XDP still attached after SIGTERM:\n{link}"
        );
    }
    tb.start_daemon(&daemon_bin()).expect("restart irondhcp");
    let leases = tb.ctl("leases").expect("leases");
    assert!(
        leases["leases"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|l| l["address"] == addr.as_str()),
        "{addr} not reloaded: {leases}"
    );
    // T1 is 10 s: the client renews with the restarted server.
    let ok = tb.wait_for(LONG, || {
        events(&ev).iter().any(|l| l == &format!("renew {addr}"))
    });
    assert!(
        ok,
        "no renewal of {addr} after restart: {:?}\n{}",
        events(&ev),
        tb.log_text()
    );
    assert!(
        stat(&tb, "/packets/answered_from_map") >= 1,
        "renewal not answered from the reloaded map"
    );
    assert!(
        !events(&ev)
            .iter()
            .any(|l| l.starts_with("bound ") && l != &format!("bound {addr}")),
        "address changed: {:?}",
        events(&ev)
    );
    let _ = client.kill();
    let _ = client.wait();
}

#[test]
fn graceful_restart_keeps_leases() {
    restart_keeps_lease(false);
}

#[test]
fn kill_9_keeps_leases() {
    restart_keeps_lease(true);
}
