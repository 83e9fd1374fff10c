//! Leases survive a graceful restart and a `kill -9`: a client that renews
//! after the restart keeps its address, answered from the reloaded map.
//! On the embedded SQLite file and on a real PostgreSQL server.

use irondhcp_testkit::postgres::PgServer;
use irondhcp_testkit::testbed::{Testbed, TestbedOptions};

use crate::{daemon_bin, db_row, events, spawn_udhcpc, started, stat, LONG};

/// Where the leases are stored, and how a test reads a row's state.
enum Storage {
    Sqlite,
    Postgres(PgServer),
}

impl Storage {
    fn url(&self) -> Option<String> {
        match self {
            Storage::Sqlite => None,
            // With a password (trust authentication ignores it): it must
            // not reach the daemon's log.
            Storage::Postgres(pg) => Some(pg.socket_url("leases").replacen(
                "postgres@",
                "postgres:s3cret@",
                1,
            )),
        }
    }

    /// The daemon's boot epoch and heartbeat age (s) in the cluster's
    /// server registry (PostgreSQL only).
    fn registered(&self) -> Option<(u32, i64)> {
        let Storage::Postgres(pg) = self else {
            return None;
        };
        let out = pg
            .query(
                "leases",
                "SELECT boot_epoch, extract(epoch from now())::bigint - heartbeat_at FROM servers",
            )
            .ok()?;
        let (epoch, age) = out.split_once('|')?;
        Some((epoch.parse().ok()?, age.parse().ok()?))
    }

    /// The stored state of `addr`, and the server that allocated it.
    fn row(&self, tb: &Testbed, addr: &str) -> Option<(String, String)> {
        match self {
            Storage::Sqlite => db_row(&tb.db, addr).map(|r| (r.1, String::new())),
            Storage::Postgres(pg) => {
                let out = pg
                    .query(
                        "leases",
                        &format!("SELECT state, allocated_by FROM leases WHERE ip = '{addr}'"),
                    )
                    .ok()?;
                let (state, by) = out.split_once('|')?;
                Some((state.to_string(), by.to_string()))
            }
        }
    }
}

fn restart_keeps_lease(kill: bool, storage: Storage) {
    let mut tb = started(&TestbedOptions {
        lease_time: 20,
        storage_url: storage.url(),
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
    let row = storage.row(&tb, &addr);
    assert_eq!(row.as_ref().map(|r| r.0.as_str()), Some("leased"), "{addr}");
    if let Storage::Postgres(_) = storage {
        assert!(
            row.is_some_and(|r| r.1.starts_with("testbed-")),
            "allocated_by names the server"
        );
    }

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
    assert!(
        !tb.log_text().contains("s3cret"),
        "the storage URL's password is in the log"
    );
    let first_boot = storage.registered();
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
    if let Some((epoch, _)) = first_boot {
        let (again, age) = storage.registered().expect("still registered");
        assert_eq!(again, epoch + 1, "a restart is a new boot epoch");
        assert!(age <= 3, "heartbeat {age} s old");
    }
    let _ = client.kill();
    let _ = client.wait();
}

#[test]
fn graceful_restart_keeps_leases() {
    restart_keeps_lease(false, Storage::Sqlite);
}

#[test]
fn kill_9_keeps_leases() {
    restart_keeps_lease(true, Storage::Sqlite);
}

#[test]
fn kill_9_keeps_leases_on_postgres() {
    let pg = PgServer::start().expect("start a private PostgreSQL");
    pg.create_database("leases").expect("create database");
    restart_keeps_lease(true, Storage::Postgres(pg));
}
