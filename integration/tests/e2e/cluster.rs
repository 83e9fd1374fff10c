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
