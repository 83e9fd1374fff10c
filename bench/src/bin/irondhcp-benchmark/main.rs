//! `irondhcp-benchmark`: irondhcp and ISC Kea side by side, the way ISC
//! measures Kea with perfdhcp: for each scenario, the highest offered rate a
//! server sustains with < 1 % loss, found by a rate search; and, because
//! rates on a shared 2-core machine move from day to day, the cost that
//! does not: the server's CPU time per answered exchange at the same
//! offered load for every server, with the latencies at that load.
//!
//! Kea runs twice, without and with lease caching (`cache-threshold`
//! 0.25); ratios are taken against the better Kea. The whole side-by-side
//! is repeated (`--repeats`, 3 by default) and the report gives the spread
//! of every ratio over the repeats.
//!
//! Every trial gets a fresh testbed (two network namespaces over veth, see
//! `irondhcp_testkit::testbed`) and a fresh server with an empty lease
//! store, so trials do not inherit each other's leases. The load comes from
//! `irondhcp-loadgen` in the client namespace, which also reads the
//! server's CPU time (`--server-pid`); a trial in which it could not send
//! the offered rate is generator-bound and is not counted as a pass or a
//! failure. perfdhcp runs the same search against Kea as a cross-check of
//! the load generator. The memory of the daemon is measured with 100k and
//! 1M leases preloaded into its store.
//!
//! Run it through `cargo xtask bench`, which builds everything first. It
//! writes the table into `docs/benchmarks.md` (between markers, keeping the
//! rest of the file) and the raw JSON into `docs/benchmarks.json`.

mod kea;
mod memory;
mod pgreport;
mod postgres;
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
    /// (server irondhcp|kea|kea-cache|irondhcp-pg|kea-pg, scenario
    /// dora|renew|relay, offered rate), `perfdhcp:relay:6000` (perfdhcp
    /// against Kea, as in the cross-check), or `cluster3:dora:500` (3
    /// irondhcp servers on one PostgreSQL, the rate per server): for looking at
    /// a single operating point.
    #[arg(long)]
    pub trial: Option<String>,
    /// How many times to run the whole side-by-side (rate searches and
    /// equal-load points); the report gives each figure's median and the
    /// spread (min–max) of each ratio.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Offered renewal rate at which every server's CPU time and latency
    /// are compared.
    #[arg(long, default_value_t = 8000.0)]
    pub equal_renew_rate: f64,
    /// Offered DORA rate at which every server's CPU time and latency are
    /// compared.
    #[arg(long, default_value_t = 4000.0)]
    pub equal_dora_rate: f64,
    /// Skip the perfdhcp cross-check.
    #[arg(long)]
    pub no_cross_check: bool,
    /// The cluster's figures instead of the side-by-side: irondhcp and
    /// Kea on the same PostgreSQL, and 1, 2 and 3 irondhcp servers on one
    /// (written between their own markers in docs/benchmarks.md).
    #[arg(long)]
    pub postgres: bool,
    /// Offered renewal rate of the PostgreSQL equal-load and 1/2/3-server
    /// trials.
    #[arg(long, default_value_t = 500.0)]
    pub pg_renew_rate: f64,
    /// Offered DORA rate of the PostgreSQL equal-load and 1/2/3-server
    /// trials.
    #[arg(long, default_value_t = 400.0)]
    pub pg_dora_rate: f64,
    /// Offered DORA rate per server of the 1/2/3-server trials (the same
    /// for every cluster size, so a server's batches are the same size and
    /// only what servers do to each other can change its costs).
    #[arg(long, default_value_t = 500.0)]
    pub pg_cluster_dora_rate: f64,
    /// Offered renewal rate per server of the 1/2/3-server trials.
    #[arg(long, default_value_t = 2000.0)]
    pub pg_cluster_renew_rate: f64,
    /// Where the workspace is (docs/ is written there).
    #[arg(long)]
    pub root: Option<PathBuf>,
}

/// The binaries under test, next to this one.
#[derive(Clone)]
pub struct Bins {
    pub irondhcp: PathBuf,
    pub loadgen: PathBuf,
    /// The run's PostgreSQL and Redis, for servers on PostgreSQL.
    pub pg: Option<std::sync::Arc<postgres::PgBench>>,
}

impl Bins {
    /// The run's PostgreSQL (started for `--postgres` and for a
    /// `--trial` of a server on PostgreSQL).
    pub fn pg(&self) -> Result<&postgres::PgBench> {
        self.pg
            .as_deref()
            .context("no PostgreSQL in this run (use --postgres)")
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    irondhcp_testkit::testbed::require_root("the benchmark");
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
        pg: None,
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

/// How this run was asked for, as `cargo xtask bench` would be given it
/// (the driver's own arguments, without `--root`).
fn command_line() -> String {
    let mut words = vec!["cargo xtask bench".to_owned()];
    let mut argv = std::env::args().skip(1);
    while let Some(a) = argv.next() {
        if a == "--root" {
            argv.next();
        } else if !a.starts_with("--root=") {
            words.push(a);
        }
    }
    words.join(" ")
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

/// One whole side-by-side: every server's rate searches, irondhcp at the
/// better Kea's highest rates, and every server at the equal-load points.
fn side_by_side(bins: &Bins, args: &Args) -> Result<Value> {
    use search::{Scenario, Server};
    let mut run = search::searches(bins, args, &Server::ALL)?;
    // irondhcp at the better Kea's highest sustained rate: latencies at
    // equal offered load where Kea is at its limit.
    for scenario in [Scenario::Renew, Scenario::Dora] {
        let s = scenario.name();
        let (kea, rate) = [Server::Kea, Server::KeaCache]
            .iter()
            .map(|k| (k.name(), run[k.name()][s]["rate"].as_f64().unwrap_or(0.0)))
            .fold(("", 0.0), |best, x| if x.1 > best.1 { x } else { best });
        if rate > 0.0 {
            eprintln!("== irondhcp: {s} at {kea}'s highest rate {rate:.0}/s");
            let v = search::trial(bins, args, Server::Irondhcp, scenario, rate)?;
            search::log_trial("irondhcp", s, rate, &search::classify(&v));
            run["irondhcp"][format!("{s}_at_kea_rate")] =
                json!({ "rate": rate, "kea": kea, "report": v });
        }
    }
    let equal = search::equal_load(
        bins,
        args,
        &Server::ALL,
        [
            (Scenario::Renew, args.equal_renew_rate),
            (Scenario::Dora, args.equal_dora_rate),
        ],
        "every server",
    )?;
    run["equal_load"] = equal;
    Ok(run)
}

/// What every results file starts with: when, where, how it was asked for.
fn run_header(args: &Args) -> Value {
    eprintln!("== machine: {}", machine());
    json!({
        "date": report::utc_now(),
        "machine": machine(),
        "command": command_line(),
        "trial_secs": args.trial_secs,
        "repeats": args.repeats,
    })
}

/// `--postgres`: the cluster's figures, written into docs/benchmarks.md
/// between their own markers, the raw results into
/// docs/benchmarks-postgres.json.
fn run_postgres(args: &Args) -> Result<()> {
    let root = workspace_root(args);
    let json_path = root.join("docs/benchmarks-postgres.json");
    let results = if args.render_only {
        serde_json::from_slice(&std::fs::read(&json_path)?)?
    } else {
        if args.repeats == 0 {
            bail!("--repeats must be at least 1");
        }
        let mut bins = bins()?;
        bins.pg = Some(std::sync::Arc::new(postgres::PgBench::start()?));
        let started = std::time::Instant::now();
        let mut results = run_header(args);
        results["pg_dora_rate"] = json!(args.pg_dora_rate);
        results["pg_renew_rate"] = json!(args.pg_renew_rate);
        let mut runs = Vec::new();
        for i in 0..args.repeats {
            eprintln!("== on PostgreSQL, run {} of {}", i + 1, args.repeats);
            runs.push(postgres::run(&bins, args)?);
        }
        results["runs"] = Value::Array(runs);
        results["elapsed_s"] = json!(started.elapsed().as_secs_f64());
        std::fs::write(&json_path, serde_json::to_vec_pretty(&results)?)?;
        results
    };
    let table = pgreport::render(&results);
    println!("{table}");
    pgreport::write(&root, &table)?;
    eprintln!("== wrote docs/benchmarks.md and docs/benchmarks-postgres.json");
    Ok(())
}

fn run(args: &Args) -> Result<()> {
    if args.postgres {
        return run_postgres(args);
    }
    if args.render_only {
        let root = workspace_root(args);
        let raw: Value =
            serde_json::from_slice(&std::fs::read(root.join("docs/benchmarks.json"))?)?;
        let table = report::render(&raw);
        println!("{table}");
        return report::write(&root, &table, &raw);
    }
    if let Some(rate) = args
        .trial
        .as_deref()
        .and_then(|s| s.strip_prefix("perfdhcp:relay:"))
    {
        let rate: f64 = rate.parse().context("rate")?;
        let (t, output) = kea::perfdhcp_trial(args, rate)?;
        eprintln!("{output}");
        search::log_trial("perfdhcp", "relay", rate, &t);
        println!("{}", serde_json::to_string_pretty(&t.report)?);
        return Ok(());
    }
    let mut bins = bins()?;
    if let Some((n, spec)) = args
        .trial
        .as_deref()
        .and_then(|s| s.strip_prefix("cluster"))
        .and_then(|s| s.split_once(':'))
    {
        let n: usize = n.parse().context("cluster<N>:scenario:rate")?;
        let (_, scenario, rate) = search::parse_trial(&format!("irondhcp-pg:{spec}"))?;
        bins.pg = Some(std::sync::Arc::new(postgres::PgBench::start()?));
        let v = postgres::cluster_trial(&bins, args, n, scenario, rate)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if let Some(spec) = &args.trial {
        let (server, scenario, rate) = search::parse_trial(spec)?;
        if server.on_postgres() {
            bins.pg = Some(std::sync::Arc::new(postgres::PgBench::start()?));
        }
        let v = search::trial(&bins, args, server, scenario, rate)?;
        search::log_trial(server.name(), scenario.name(), rate, &search::classify(&v));
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let root = workspace_root(args);
    let started = std::time::Instant::now();
    let mut results = run_header(args);

    if !args.memory_only {
        let mut runs = Vec::new();
        for i in 0..args.repeats {
            eprintln!("== side-by-side, run {} of {}", i + 1, args.repeats);
            runs.push(side_by_side(&bins, args)?);
        }
        results["runs"] = Value::Array(runs);
    }

    if !args.memory_only && !args.no_cross_check {
        eprintln!("== kea: relayed DORA, load generator and perfdhcp (cross-check)");
        let relay = search::rate_search(&bins, args, search::Server::Kea, search::Scenario::Relay)?;
        let perfdhcp = kea::perfdhcp_search(args)?;
        results["cross_check"] = json!({ "relay": relay, "perfdhcp": perfdhcp });
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
