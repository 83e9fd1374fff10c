//! The irondhcp demo: a throw-away testbed in network namespaces, the
//! server on XDP + AF_XDP with its embedded SQLite store, a handful of real
//! DHCP clients (udhcpc, dhclient) getting leases, a short perfdhcp load run,
//! and the pool statistics at the end. Everything is torn down on exit.
//!
//! Run it as root with `cargo xtask demo` (which builds the XDP program and
//! the binaries first).

use std::process::{Command, ExitCode};
use std::time::Duration;

use irondhcp_testkit::testbed::{require_root, Testbed, TestbedOptions, SERVER_IP};

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
# Minimal udhcpc script: configure the address, log the event.
case "$1" in
  deconfig) ip -4 addr flush dev "$interface" ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    echo "$1 $interface $ip lease=$lease" >> "$(dirname "$0")/udhcpc-events.log" ;;
esac
exit 0
"#;

fn main() -> ExitCode {
    require_root("the demo");
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> std::io::Result<()> {
    let bins = irondhcp_testkit::bins::beside_example();
    let opts = TestbedOptions {
        lease_time: 600,
        ..TestbedOptions::default()
    };
    let mut tb = Testbed::new(&opts)?;
    println!(
        "== testbed: namespaces {} (server) and {} (clients), veth {} <-> {}",
        tb.server.name, tb.client.name, tb.srv_if, tb.cli_if
    );
    tb.start_daemon(&bins.join("irondhcp"))?;
    println!(
        "== irondhcp serving {} on {} (XDP native + AF_XDP), leases in {}",
        SERVER_IP,
        tb.srv_if,
        tb.db.display()
    );

    let script = tb.dir.join("udhcpc.script");
    std::fs::write(&script, UDHCPC_SCRIPT)?;
    Command::new("chmod").arg("+x").arg(&script).status()?;

    // A handful of clients, each on its own MAC (macvlan on the client veth).
    let mut got = Vec::new();
    for i in 0..4 {
        let ifname = format!("{}m{i}", tb.cli_if);
        tb.client.exec(&[
            "ip", "link", "add", "link", &tb.cli_if, "name", &ifname, "type", "macvlan", "mode",
            "bridge",
        ])?;
        tb.client.exec(&["ip", "link", "set", &ifname, "up"])?;
        let out = if i < 3 {
            let s = script.display().to_string();
            tb.client.exec(&[
                "udhcpc", "-f", "-q", "-n", "-t", "5", "-T", "2", "-i", &ifname, "-s", &s,
            ])
        } else {
            let lf = tb.dir.join("dhclient.leases").display().to_string();
            let pf = tb.dir.join("dhclient.pid").display().to_string();
            tb.client
                .exec(&["dhclient", "-1", "-4", "-lf", &lf, "-pf", &pf, &ifname])
        };
        if let Err(e) = out {
            eprintln!("client on {ifname} failed: {e}");
            continue;
        }
        let client = if i < 3 { "udhcpc" } else { "dhclient" };
        let addrs = tb.client_addrs(&ifname);
        println!(
            "   {client:<8} on {ifname}: {}",
            addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        got.extend(addrs);
    }
    let pids = tb.client.exec(&["sh", "-c", "pkill dhclient || true"]);
    drop(pids);

    // A short load run: perfdhcp acts as a relay from its own address.
    tb.add_relay_address()?;
    println!("== perfdhcp: 500 four-way exchanges/s for 5 s, 2000 simulated clients");
    let perf = tb
        .client
        .command("perfdhcp")
        .args([
            "-4",
            "-l",
            &tb.cli_if,
            "-r",
            "500",
            "-R",
            "2000",
            "-p",
            "5",
            &SERVER_IP.to_string(),
        ])
        .output()?;
    let text = String::from_utf8_lossy(&perf.stdout);
    // perfdhcp prints the DISCOVER-OFFER block, then the REQUEST-ACK block.
    let mut block = 0;
    for line in text.lines().map(str::trim) {
        if line.starts_with("Rate:") {
            println!("   {line}");
        } else if line.starts_with("sent packets") {
            block += 1;
            let name = if block == 1 {
                "DISCOVER-OFFER"
            } else {
                "REQUEST-ACK"
            };
            print!("   {name}: {line}");
        } else if line.starts_with("received packets") || line.starts_with("drops:") {
            print!(", {line}");
        } else if line.starts_with("drops ratio") {
            println!(", {line}");
        }
    }

    tb.wait_for(Duration::from_secs(2), || false);
    println!("== irondhcp-ctl stats");
    let st = Command::new(bins.join("irondhcp-ctl"))
        .arg("--socket")
        .arg(&tb.socket)
        .arg("stats")
        .output()?;
    print!("{}", String::from_utf8_lossy(&st.stdout));
    let status = tb.stop_daemon()?;
    println!("== irondhcp stopped ({status}); testbed removed");
    if got.len() < 4 {
        return Err(std::io::Error::other(format!(
            "only {} of 4 clients got a lease",
            got.len()
        )));
    }
    Ok(())
}
