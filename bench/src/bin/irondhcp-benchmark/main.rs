//! `irondhcp-benchmark`: irondhcp and ISC Kea side by side, the way ISC
//! measures Kea with perfdhcp: for each scenario, the highest offered rate a
//! server sustains with < 1 % loss, found by a rate search, then the
//! latencies at that rate.
//!
//! Every trial gets a fresh testbed (two network namespaces over veth, see
//! `irondhcp_control::testbed`) and a fresh server with an empty lease
//! store, so trials do not inherit each other's leases. The load comes from
//! `irondhcp-loadgen` in the client namespace; perfdhcp runs the same search
//! against Kea as a cross-check of the load generator. The memory of the
//! daemon is measured with 100k and 1M leases preloaded into its store.
//!
//! Run it through `cargo xtask bench`, which builds everything first. It
//! writes the table into `docs/benchmarks.md` (between markers, keeping the
//! rest of the file) and the raw JSON into `docs/benchmarks.json`.

mod kea;
mod memory;
mod report;
mod search;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Value};

/// Benchmark irondhcp against Kea in a network-namespace testbed.
#[derive(Parser, Debug, Clone)]
#[command(name = "irondhcp-benchmark")]
pub struct Args {
    /// Seconds of load per trial.
    #[arg(long, default_value_t = 5.0)]
    pub trial_secs: f64,
    /// Simulated clients for the renewal scenarios.
    #[arg(long, default_value_t = 5000)]
    pub renew_clients: u64,
    /// Fewer search steps (a coarser answer, for a quick look).
    #[arg(long)]
    pub quick: bool,
    /// Skip the memory measurement.
    #[arg(long)]
    pub no_memory: bool,
    /// Only the memory measurement (no rate searches).
    #[arg(long)]
    pub memory_only: bool,
    /// Rewrite the table in docs/benchmarks.md from docs/benchmarks.json
    /// (no measurement).
    #[arg(long)]
    pub render_only: bool,
    /// One trial only, printed as JSON, e.g. `irondhcp:renew:31000`
    /// (server irondhcp|kea, scenario dora|renew|relay, offered rate): for
    /// profiling a single operating point.
    #[arg(long)]
    pub trial: Option<String>,
    /// Where the workspace is (docs/ is written there).
    #[arg(long)]
    pub root: Option<PathBuf>,
}

/// The binaries under test, next to this one.
#[derive(Debug, Clone)]
pub struct Bins {
    pub irondhcp: PathBuf,
    pub loadgen: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    irondhcp_control::testbed::require_root("the benchmark");
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("irondhcp-benchmark: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bins() -> Result<Bins> {
    let exe = std::env::current_exe().context("where am I")?;
    let dir = exe.parent().context("binary has no directory")?;
    let b = Bins {
        irondhcp: dir.join("irondhcp"),
        loadgen: dir.join("irondhcp-loadgen"),
    };
    for p in [&b.irondhcp, &b.loadgen] {
        if !p.is_file() {
            bail!(
                "{} is missing: run through `cargo xtask bench`",
                p.display()
            );
        }
    }
    Ok(b)
}

fn workspace_root(args: &Args) -> PathBuf {
    args.root
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

fn run(args: &Args) -> Result<()> {
    if args.render_only {
        let root = workspace_root(args);
        let raw: Value =
            serde_json::from_slice(&std::fs::read(root.join("docs/benchmarks.json"))?)?;
        let table = report::render(&raw);
        println!("{table}");
        return report::write(&root, &table, &raw);
    }
    let bins = bins()?;
    if let Some(spec) = &args.trial {
        let (server, scenario, rate) = search::parse_trial(spec)?;
        let v = search::trial(&bins, args, server, scenario, rate)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let root = workspace_root(args);
    let started = std::time::Instant::now();
    eprintln!("== machine: {}", machine());

    let mut results = json!({
        "date": report::utc_now(),
        "machine": machine(),
        "command": "cargo xtask bench",
        "trial_secs": args.trial_secs,
    });

    let servers: &[search::Server] = if args.memory_only {
        &[]
    } else {
        &[search::Server::Irondhcp, search::Server::Kea]
    };
    for &server in servers {
        let name = server.name();
        eprintln!("== {name}: new leases (dora), rate search");
        let dora = search::rate_search(&bins, args, server, search::Scenario::Dora)?;
        eprintln!("== {name}: renewals, rate search");
        let renew = search::rate_search(&bins, args, server, search::Scenario::Renew)?;
        results[name] = json!({ "dora": dora, "renew": renew });
    }

    // Renewal latency of irondhcp at Kea's highest sustained renewal rate.
    let kea_renew_rate = results["kea"]["renew"]["rate"].as_f64().unwrap_or(0.0);
    if kea_renew_rate > 0.0 {
        eprintln!("== irondhcp: renewals at Kea's rate {kea_renew_rate:.0}/s");
        let same = search::trial(
            &bins,
            args,
            search::Server::Irondhcp,
            search::Scenario::Renew,
            kea_renew_rate,
        )?;
        results["irondhcp"]["renew_at_kea_rate"] =
            json!({ "rate": kea_renew_rate, "report": same });
    }

    if !args.memory_only {
        eprintln!("== kea: relayed DORA, load generator and perfdhcp (cross-check)");
        results["kea"]["relay"] =
            search::rate_search(&bins, args, search::Server::Kea, search::Scenario::Relay)?;
        results["kea"]["perfdhcp"] = kea::perfdhcp_search(args)?;
    }

    if !args.no_memory {
        let mut mem = Vec::new();
        for n in [100_000u64, 1_000_000] {
            eprintln!("== memory with {n} leases");
            mem.push(memory::measure(&bins, n)?);
        }
        results["memory"] = Value::Array(mem);
    }
    results["elapsed_s"] = json!(started.elapsed().as_secs_f64());

    let table = report::render(&results);
    println!("{table}");
    report::write(&root, &table, &results)?;
    eprintln!("== wrote docs/benchmarks.md and docs/benchmarks.json");
    Ok(())
}
