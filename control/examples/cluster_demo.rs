//! The irondhcp cluster demo: three servers active/active behind a BGP
//! anycast router (bird2, ECMP), on one PostgreSQL and one Redis, with
//! dhcrelay and real udhcpc clients on the router's LAN. It shows the route
//! with a next hop per server, the clients' leases, the pool statistics of
//! every server, then kills the server that one client renews with and
//! shows the route withdrawn and every client renewing with the servers
//! that are left. Everything runs in throw-away network namespaces.
//!
//! Run it as root with `cargo xtask cluster-demo`.

use std::path::Path;
use std::process::{Child, ExitCode};
use std::time::{Duration, Instant};

use irondhcp_testkit::cluster::{client_events, wait_until, Cluster, ClusterOptions, ANYCAST};
use irondhcp_testkit::testbed::require_root;

const SERVERS: usize = 3;
const CLIENTS: usize = 6;

fn main() -> ExitCode {
    require_root("the cluster demo");
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fail(what: String) -> std::io::Error {
    std::io::Error::other(what)
}

fn renewals(log: &Path) -> usize {
    client_events(log)
        .iter()
        .filter(|l| l.starts_with("renew "))
        .count()
}

fn usr1(child: &Child) {
    // SAFETY: plain kill(2) on our own child: udhcpc renews on SIGUSR1.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
}

/// Each server's pool statistics and cluster counters, one line each.
fn show_servers(c: &Cluster, dead: Option<usize>) {
    println!(
        "  {:<6} {:>7} {:>9} {:>6} {:>7} {:>11} {:>9} {:>12}",
        "server", "blocks", "assigned", "free", "acks", "from-memory", "synced", "sync-lag-p99"
    );
    for (i, s) in c.servers.iter().enumerate() {
        if Some(i) == dead {
            println!("  {:<6} (killed)", s.id);
            continue;
        }
        let Ok(v) = c.ctl(i, "stats") else {
            println!("  {:<6} (not answering)", s.id);
            continue;
        };
        let pool = &v["pools"][0];
        // serde_json's Display ignores widths: pad the text.
        let n = |x: &serde_json::Value| x.to_string();
        println!(
            "  {:<6} {:>7} {:>9} {:>6} {:>7} {:>11} {:>9} {:>10}µs",
            s.id,
            n(&v["blocks"]["owned"]),
            n(&pool["assigned"]),
            n(&pool["free"]),
            n(&v["control"]["acks"]),
            n(&v["packets"]["answered_from_map"]),
            n(&v["control"]["synced"]),
            n(&v["sync"]["lag_us_p99"]),
        );
    }
}

fn demo() -> std::io::Result<()> {
    let bins = irondhcp_testkit::bins::beside_example();
    let (daemon, ctl) = (bins.join("irondhcp"), bins.join("irondhcp-ctl"));
    println!(
        "building the cluster: {SERVERS} servers, a bird2 router, dhcrelay, PostgreSQL, Redis"
    );
    let mut c = Cluster::new(&ClusterOptions {
        servers: SERVERS,
        ..ClusterOptions::default()
    })?;
    for i in 0..SERVERS {
        c.start_server(i, &daemon, &ctl)?;
    }
    let all: Vec<usize> = (0..SERVERS).collect();
    let t = c
        .wait_for_route(&all, Duration::from_secs(30))
        .ok_or_else(|| fail(format!("no route to every server:\n{}", c.logs())))?;
    println!(
        "router: {ANYCAST}/32 via {:?} ({} next hops after {:.1} s)",
        c.next_hops(),
        SERVERS,
        t.as_secs_f64()
    );

    let mut clients = Vec::new();
    for k in 0..CLIENTS {
        c.add_client()?;
        clients.push(c.spawn_udhcpc(k)?);
    }
    for (k, (_, log)) in clients.iter().enumerate() {
        if !wait_until(Duration::from_secs(30), || {
            client_events(log).iter().any(|l| l.starts_with("bound "))
        }) {
            return Err(fail(format!("client {k} got no lease:\n{}", c.logs())));
        }
    }
    println!("\n{CLIENTS} udhcpc clients bound through the relay:");
    for (k, (_, log)) in clients.iter().enumerate() {
        let ev = client_events(log);
        println!("  client {k}: {}", ev.last().map_or("", String::as_str));
    }
    println!("\nper server (one PostgreSQL, maps kept in step over Redis):");
    show_servers(&c, None);

    // Which server client 0's renewals reach.
    let requests = |c: &Cluster| -> Vec<u64> {
        (0..SERVERS)
            .map(|i| c.stat(i, "/packets/received/request"))
            .collect()
    };
    let (child0, log0) = &clients[0];
    let before = requests(&c);
    usr1(child0);
    wait_until(Duration::from_secs(10), || renewals(log0) >= 1);
    let after = requests(&c);
    let target = (0..SERVERS)
        .find(|&i| after[i] > before[i])
        .ok_or_else(|| fail("client 0's renewal reached no server".into()))?;
    println!(
        "\nclient 0 renews with {} (ECMP by client address); killing it (kill -9)",
        c.servers[target].id
    );
    let t0 = Instant::now();
    c.kill_server(target)?;
    let live: Vec<usize> = (0..SERVERS).filter(|&i| i != target).collect();
    let withdrawn = c
        .wait_for_route(&live, Duration::from_secs(10))
        .ok_or_else(|| fail(format!("route not withdrawn:\n{}", c.logs())))?;
    println!(
        "router: {ANYCAST}/32 via {:?} (withdrawn {:.0} ms after the kill)",
        c.next_hops(),
        withdrawn.as_secs_f64() * 1e3
    );
    let counts: Vec<usize> = clients.iter().map(|(_, l)| renewals(l)).collect();
    let ok = wait_until(Duration::from_secs(15), || {
        for (k, (child, log)) in clients.iter().enumerate() {
            if renewals(log) <= counts[k] {
                usr1(child);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
        clients
            .iter()
            .enumerate()
            .all(|(k, (_, l))| renewals(l) > counts[k])
    });
    if !ok {
        return Err(fail(format!("not every client renewed:\n{}", c.logs())));
    }
    println!(
        "every client renewed with the servers left, {:.2} s after the kill",
        t0.elapsed().as_secs_f64()
    );
    show_servers(&c, Some(target));
    let total = c.stat(live[0], "/blocks/total");
    let t = Instant::now();
    let taken = wait_until(Duration::from_secs(20), || {
        live.iter()
            .map(|&i| c.stat(i, "/blocks/owned"))
            .sum::<u64>()
            == total
    });
    if taken {
        println!(
            "\n{}'s address blocks freed (no heartbeat for release_after) and shared by the others after {:.1} s more:",
            c.servers[target].id,
            t.elapsed().as_secs_f64()
        );
        show_servers(&c, Some(target));
    }
    let rows =
        c.pg.query(
            "leases",
            "SELECT count(*), count(DISTINCT address) FROM leases WHERE state = 'leased'",
        )
        .unwrap_or_default();
    println!("\nPostgreSQL: leased rows | distinct addresses = {rows}");
    for (mut child, _) in clients {
        let _ = child.kill();
        let _ = child.wait();
    }
    println!("tearing down");
    Ok(())
}
