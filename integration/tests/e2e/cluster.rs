//! The anycast cluster, end to end and shortened for CI: three real
//! daemons behind a router running bird2 (ECMP), dhcrelay on the LAN, one real
//! PostgreSQL and one real Redis, real udhcpc clients on the LAN. Clients
//! bind through the relay; the server a client's renewals reach is killed;
//! its route is withdrawn and the client's next renewal is answered by
//! another server, from that server's map.

use std::process::Child;
use std::time::{Duration, Instant};

use irondhcp_testkit::cluster::{client_events as events, wait_until, Cluster, ClusterOptions};
use irondhcp_testkit::testbed::require_root;

use crate::daemon_bin;

/// Requests each server has received, by index.
fn requests(c: &Cluster) -> Vec<u64> {
    (0..c.servers.len())
        .map(|i| c.stat(i, "/packets/received/request"))
        .collect()
}

fn renewals(log: &std::path::Path) -> usize {
    events(log)
        .iter()
        .filter(|l| l.starts_with("renew "))
        .count()
}

fn usr1(child: &Child) {
    // SAFETY: plain kill(2) on our own child: udhcpc renews on SIGUSR1.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
}

#[test]
fn a_killed_server_s_clients_renew_with_another_through_anycast() {
    require_root("the cluster test");
    let mut c = Cluster::new(&ClusterOptions::default()).expect("build the cluster");
    let ctl = irondhcp_testkit::bins::ctl();
    for i in 0..3 {
        c.start_server(i, &daemon_bin(), &ctl)
            .expect("start a server");
    }
    assert!(
        c.wait_for_route(&[0, 1, 2], Duration::from_secs(30))
            .is_some(),
        "the router never had all three next hops: {:?}\n{}",
        c.next_hops(),
        c.logs()
    );
    let mut clients = Vec::new();
    for k in 0..3 {
        c.add_client().expect("add a client");
        clients.push(c.spawn_udhcpc(k).expect("start udhcpc"));
    }
    for (k, (_, log)) in clients.iter().enumerate() {
        assert!(
            wait_until(Duration::from_secs(30), || events(log)
                .iter()
                .any(|l| l.starts_with("bound "))),
            "client {k} never bound: {:?}\n{}",
            events(log),
            c.logs()
        );
    }
    // Which server client 0's unicast renewals reach (ECMP by address).
    let (child, log) = &clients[0];
    let before = requests(&c);
    usr1(child);
    assert!(
        wait_until(Duration::from_secs(10), || renewals(log) >= 1),
        "no renewal: {:?}\n{}",
        events(log),
        c.logs()
    );
    let after = requests(&c);
    let target = (0..3)
        .find(|&i| after[i] > before[i])
        .expect("one server received the renewal");
    // The lease is in the other servers' maps (Redis sync), whichever
    // server granted it.
    let addr = events(log)
        .iter()
        .find_map(|l| l.strip_prefix("bound ").map(str::to_string))
        .expect("bound address");
    let others: Vec<usize> = (0..3).filter(|&i| i != target).collect();
    for &i in &others {
        let holds = c.ctl(i, "leases").is_ok_and(|v| {
            v["leases"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x["address"].as_str() == Some(&addr)))
        });
        assert!(holds, "server {i} does not know {addr}");
    }

    // Kill it. Its route goes at once; the renewal goes elsewhere.
    let t0 = Instant::now();
    c.kill_server(target).expect("kill");
    let withdrawn = c.wait_for_route(&others, Duration::from_secs(10));
    assert!(
        withdrawn.is_some(),
        "route still {:?}\n{}",
        c.next_hops(),
        c.logs()
    );
    let answered_before: u64 = others
        .iter()
        .map(|&i| c.stat(i, "/packets/answered_from_map"))
        .sum();
    let n = renewals(log);
    let renewed = wait_until(Duration::from_secs(15), || {
        usr1(child);
        std::thread::sleep(Duration::from_millis(250));
        renewals(log) > n
    });
    let flowing = t0.elapsed();
    assert!(
        renewed,
        "no renewal after the kill: {:?}\n{}",
        events(log),
        c.logs()
    );
    let answered_after: u64 = others
        .iter()
        .map(|&i| c.stat(i, "/packets/answered_from_map"))
        .sum();
    assert!(
        answered_after > answered_before,
        "the surviving servers answered from their maps"
    );
    eprintln!(
        "route withdrawn {:?} after the kill; renewals flowing again after {:?}",
        withdrawn.unwrap_or_default(),
        flowing
    );
    // No address given twice: three clients, three distinct leased rows.
    let rows =
        c.pg.query(
            "leases",
            "SELECT count(*), count(DISTINCT client_key) FROM leases WHERE state = 'leased'",
        )
        .expect("query");
    assert_eq!(rows, "3|3");
    for (mut child, _) in clients {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A reservation made on one server is applied by the other (it follows
/// the store), so a client given to the other server gets it.
#[test]
fn a_reservation_made_on_one_server_is_given_by_the_other() {
    require_root("the cluster test");
    let mut c = Cluster::new(&ClusterOptions {
        servers: 2,
        ..ClusterOptions::default()
    })
    .expect("build the cluster");
    let ctl = irondhcp_testkit::bins::ctl();
    for i in 0..2 {
        c.start_server(i, &daemon_bin(), &ctl)
            .expect("start a server");
    }
    c.add_client().expect("add a client");
    let mac = c.client_mac(0);
    let want = "198.19.0.200";
    let add = |i: usize, mac: &str| {
        c.ctl_with(
            i,
            "reservation-add",
            serde_json::json!({"reservation": {"subnet-id": 1, "hw-address": mac, "ip-address": want}}),
        )
        .expect("ask the server")
    };
    let r = add(0, &mac);
    assert_eq!(r["result"], 0, "{r}");
    // Server 1 holds it in memory: it refuses another client the address
    // before the store is asked (the store's refusal reads differently).
    let mut last = serde_json::Value::Null;
    let applied = wait_until(Duration::from_secs(10), || {
        last = add(1, "02:00:00:00:00:99");
        last["text"]
            .as_str()
            .is_some_and(|t| t.contains("is reserved for another client"))
    });
    assert!(applied, "server 1 never applied it: {last}\n{}", c.logs());
    // Only server 1 is announced now; the client reaches it alone.
    assert_eq!(c.ctl(0, "drain").expect("drain")["drained"], true);
    assert!(
        c.wait_for_route(&[1], Duration::from_secs(30)).is_some(),
        "the route never went to server 1 alone: {:?}\n{}",
        c.next_hops(),
        c.logs()
    );
    let before = requests(&c);
    let (mut child, log) = c.spawn_udhcpc(0).expect("start udhcpc");
    let bound = wait_until(Duration::from_secs(30), || {
        events(&log).iter().any(|l| l.starts_with("bound "))
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(bound, "never bound: {:?}\n{}", events(&log), c.logs());
    assert!(
        events(&log).contains(&format!("bound {want}")),
        "not given its reservation: {:?}",
        events(&log)
    );
    let after = requests(&c);
    assert_eq!(after[0], before[0], "server 0 was drained and got nothing");
    // Both servers are seen alive, and they share the pool's blocks.
    let v = c.ctl(1, "servers").expect("servers");
    let rows = v["arguments"]["servers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rows.len(), 2, "{v}");
    assert!(
        rows.iter()
            .all(|r| r["heartbeat_age"].as_u64().is_some_and(|a| a <= 5)),
        "{v}"
    );
    assert_eq!(rows.iter().filter(|r| r["this"] == true).count(), 1, "{v}");
    let owned: u64 = rows.iter().filter_map(|r| r["blocks"].as_u64()).sum();
    assert!(owned >= 2, "no blocks owned: {v}");
}
