//! `irondhcp-faults`: the cluster fault suite (`cargo xtask faults`).
//!
//! For each fault: a fresh anycast cluster of three servers
//! (`testkit::cluster`, PostgreSQL and Redis in their own namespace over
//! TCP), `irondhcp-loadgen` on the clients' LAN running new leases (through
//! dhcrelay) and unicast renewals mixed, the fault injected a few seconds
//! into the timed phase and undone after its hold, then the independent
//! checker (`checker`) over the generator's exchange log and every lease
//! row in PostgreSQL: addresses promised to two clients at once, promises
//! missing or shortened in PostgreSQL, the share of renewals answered while
//! the fault lasted and, for a local fault, how long renewals kept failing.
//! Prints a Markdown table (the one in docs/reliability.md) and, with
//! `--json`, the raw figures.

mod checker;
mod nemesis;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use irondhcp_testkit::cluster::{Cluster, ClusterOptions, GATEWAY_MAC};
use irondhcp_testkit::testbed::require_root;
use nemesis::Fault;

#[derive(Parser, Debug)]
#[command(name = "irondhcp-faults", about = "The cluster fault suite")]
struct Args {
    /// Faults to run (comma-separated; default all): kill, pause,
    /// restart-postgres, restart-redis, cut-redis, cut-postgres,
    /// slow-subscriber.
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// Exchanges per second offered (70 % renewals, 30 % new leases).
    #[arg(long, default_value_t = 150)]
    rate: u64,
    /// Clients bound before the timed phase (the renewing population).
    #[arg(long, default_value_t = 300)]
    clients: u64,
    /// Seconds of load per fault.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Seconds into the timed phase the fault starts.
    #[arg(long, default_value_t = 6)]
    fault_at: u64,
    /// Also print the figures as JSON.
    #[arg(long)]
    json: bool,
}

/// What one fault run measured.
#[derive(Debug, serde::Serialize)]
struct Outcome {
    fault: &'static str,
    what: &'static str,
    acks: u64,
    duplicates: u64,
    lost: u64,
    renewals_during: (u64, u64),
    /// The longest a renewal started during the fault waited (ms).
    slowest_renewal_ms: u64,
    /// For a local fault: how long after it renewals still failed (ms).
    blackout_ms: Option<u64>,
    new_leases: u64,
    conflicts: u64,
    gaps: u64,
    /// Redis subscriptions lost and made again (all servers).
    resubscribes: u64,
    /// What the generator sent (exchanges/s, timed phase).
    achieved_rate: f64,
    problems: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("irondhcp-faults: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<bool> {
    require_root("the fault suite");
    let faults: Vec<Fault> = if args.faults.is_empty() {
        Fault::ALL.to_vec()
    } else {
        args.faults
            .iter()
            .map(|f| Fault::parse(f).with_context(|| format!("unknown fault {f:?}")))
            .collect::<Result<_>>()?
    };
    let bins = irondhcp_testkit::bins::beside_self();
    let mut outcomes = Vec::new();
    for f in faults {
        eprintln!("== {}: {}", f.name(), f.describe());
        let o = one(f, args, &bins).with_context(|| format!("fault {}", f.name()))?;
        eprintln!(
            "   acks {} duplicates {} lost {} renewals during {}/{} blackout {:?} ms",
            o.acks, o.duplicates, o.lost, o.renewals_during.0, o.renewals_during.1, o.blackout_ms
        );
        outcomes.push(o);
    }
    println!("{}", table(&outcomes, args));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    }
    Ok(outcomes.iter().all(|o| o.duplicates == 0 && o.lost == 0))
}

fn one(f: Fault, args: &Args, bins: &Path) -> Result<Outcome> {
    let (daemon, ctl, loadgen) = (
        bins.join("irondhcp"),
        bins.join("irondhcp-ctl"),
        bins.join("irondhcp-loadgen"),
    );
    let mut c = Cluster::new(&ClusterOptions {
        servers: 3,
        lease_time: 600,
        pool: "198.19.1.0-198.19.15.254".into(),
        cluster_extra: "block_size = 64\nrelease_after = 5\n".into(),
        redis: true,
        db_namespace: true,
        lan_prefix: 20,
    })?;
    for i in 0..3 {
        c.start_server(i, &daemon, &ctl)?;
    }
    if c.wait_for_route(&[0, 1, 2], Duration::from_secs(30))
        .is_none()
    {
        bail!("no route to all three servers:\n{}", c.logs());
    }
    let k = c.add_client()?;
    let log = c.dir.join("exchanges.csv");
    let mut gen = c.clients[k]
        .ns
        .command(&loadgen)
        .args(["--iface", &c.clients[k].ifname, "--io", "packet"])
        .args(["--scenario", "mixed", "--mix", "renew=70,dora=30"])
        // Renewals go to the router, as a client's kernel would send them,
        // not back to the relay that delivered the ACK.
        .args(["--server-mac", GATEWAY_MAC])
        .args(["--clients", &args.clients.to_string()])
        .args(["--rate", &args.rate.to_string()])
        .args(["--duration", &args.duration.to_string()])
        .args([
            "--retransmit-ms",
            "1000",
            "--tries",
            "3",
            "--drop-time-ms",
            "4000",
        ])
        .arg("--exchange-log")
        .arg(&log)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start irondhcp-loadgen")?;
    // The timed phase starts when the generator prints its first "[ t s]"
    // progress line; its warm-up lines come before.
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = gen.stderr.take().context("loadgen stderr")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    let started = loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(l) if l.starts_with('[') => break Instant::now(),
            Ok(l) => seen.push(l),
            Err(_) if Instant::now() > deadline || matches!(gen.try_wait(), Ok(Some(_))) => {
                let _ = gen.kill();
                bail!("the load never started: {seen:?}\n{}", c.logs());
            }
            Err(_) => {}
        }
    };
    std::thread::sleep(Duration::from_secs(args.fault_at.saturating_sub(1)));
    let fault_ms = unix_ms();
    f.inject(&mut c).context("inject")?;
    std::thread::sleep(f.hold());
    f.heal(&mut c, &daemon, &ctl).context("heal")?;
    let heal_ms = unix_ms();
    let done = gen.wait_with_output()?;
    while rx.try_recv().is_ok() {}
    if !done.status.success() {
        bail!(
            "irondhcp-loadgen failed ({}) after {:?}",
            done.status,
            started.elapsed()
        );
    }
    // A generator that could not send the offered rate has not measured
    // the cluster.
    let report: serde_json::Value =
        serde_json::from_slice(&done.stdout).context("irondhcp-loadgen's JSON report")?;
    let achieved = report["achieved_rate"].as_f64().unwrap_or(0.0);
    if report["generator_bound"] != false {
        bail!(
            "the generator sent only {achieved:.0}/s of the {} offered",
            args.rate
        );
    }
    // Everything written behind reaches PostgreSQL: stop the servers
    // gracefully (they flush at shutdown) before reading the rows.
    for i in 0..3 {
        let _ = c.signal_server(i, libc::SIGCONT);
    }
    let stats: Vec<serde_json::Value> = (0..3).filter_map(|i| c.ctl(i, "stats").ok()).collect();
    for i in 0..3 {
        let _ = c.signal_server(i, libc::SIGTERM);
    }
    std::thread::sleep(Duration::from_secs(2));
    let text = std::fs::read_to_string(&log).context("read the exchange log")?;
    let exchanges = checker::parse_log(&text).map_err(anyhow::Error::msg)?;
    let rows = c.pg.query(
        "leases",
        "SELECT host(ip), encode(client_key, 'hex'), state, expiry FROM leases",
    )?;
    let rows = checker::parse_rows(&rows).map_err(anyhow::Error::msg)?;
    let v = checker::check(&exchanges, &rows, 300);
    let sum = |p: &str| -> u64 {
        stats
            .iter()
            .filter_map(|s| s.pointer(p).and_then(serde_json::Value::as_u64))
            .sum()
    };
    Ok(Outcome {
        fault: f.name(),
        what: f.describe(),
        acks: v.acks,
        duplicates: v.duplicates,
        lost: v.lost,
        renewals_during: checker::renewals_between(&exchanges, fault_ms, heal_ms),
        slowest_renewal_ms: checker::slowest_renewal_ms(&exchanges, fault_ms, heal_ms),
        blackout_ms: f
            .victim()
            .map(|_| checker::blackout_ms(&exchanges, fault_ms, heal_ms - fault_ms)),
        new_leases: exchanges
            .iter()
            .filter(|e| e.kind == "REQUEST-ACK" && e.outcome == "ack")
            .count() as u64,
        conflicts: sum("/control/conflicts"),
        gaps: sum("/sync/gaps"),
        resubscribes: sum("/sync/reconnects"),
        achieved_rate: achieved,
        problems: v.problems,
    })
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn table(outcomes: &[Outcome], args: &Args) -> String {
    let mut t = format!(
        "Load: irondhcp-loadgen on the clients' LAN, {} exchanges/s (70 % unicast renewals of {} bound clients, 30 % new leases through dhcrelay), {} s per fault, fault at {} s. Clients retransmit after 1 s, 3 tries, give up at 4 s. Checker: every ACK in the generator's exchange log against every row in PostgreSQL; a renewal counts as answered when one of its tries got the ACK.\n\n",
        args.rate, args.clients, args.duration, args.fault_at
    );
    t.push_str("| fault | sent | ACKs checked | duplicates | lost leases | renewals answered during the fault | slowest of them | renewals failing after a local fault | new leases | conflicts refused | sync gaps caught up | subscriptions re-made |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for o in outcomes {
        let (a, n) = o.renewals_during;
        let pct = if n == 0 {
            "–".to_string()
        } else {
            format!("{:.1} % ({a}/{n})", 100.0 * a as f64 / n as f64)
        };
        t.push_str(&format!(
            "| {} | {:.0}/s | {} | {} | {} | {} | {:.1} s | {} | {} | {} | {} | {} |\n",
            o.what,
            o.achieved_rate,
            o.acks,
            o.duplicates,
            o.lost,
            pct,
            o.slowest_renewal_ms as f64 / 1000.0,
            o.blackout_ms.map_or("–".to_string(), |ms| format!(
                "{:.1} s",
                ms as f64 / 1000.0
            )),
            o.new_leases,
            o.conflicts,
            o.gaps,
            o.resubscribes
        ));
    }
    t
}
