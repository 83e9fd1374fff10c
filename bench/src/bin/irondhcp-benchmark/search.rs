//! One trial (fresh testbed, fresh server, one load-generator run) and the
//! rate search over trials: double the offered rate while the server keeps
//! loss under 1 %, then bisect between the last pass and the first failure.
//!
//! A trial whose generator could not send the offered rate (the load
//! generator's `generator_bound`) measured the generator, not the server:
//! it is neither a pass nor a failure. The search does not go above it,
//! and when it is what stopped the search the figure is reported as a
//! lower bound, `≥ achieved (generator)`: the highest rate the server was
//! seen to sustain, offered or (in a generator-bound trial with < 1 %
//! loss) achieved.

use anyhow::{bail, Context, Result};
use irondhcp_testkit::testbed::{Testbed, TestbedOptions, RELAY_IP, SERVER_IP};
use serde_json::{json, Value};

use crate::kea::{self, KeaStore};
use crate::{Args, Bins};

/// Addresses in the benchmark pool (198.18.1.0 - 198.19.255.254).
pub const POOL_SIZE: f64 = 130_815.0;
/// The loss a sustained rate may show (ISC's criterion with perfdhcp).
pub const MAX_LOSS: f64 = 0.01;
const MAX_RATE: f64 = 1_000_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Irondhcp,
    Kea,
    /// Kea with lease caching (`cache-threshold` 0.25, Kea 3.0's default):
    /// a renewal of a young lease is answered without a database write.
    KeaCache,
    /// irondhcp on PostgreSQL with Redis sync, as a cluster member runs.
    IrondhcpPg,
    /// Kea on PostgreSQL (`kea-admin db-init pgsql`), multi-threaded.
    KeaPg,
}

impl Server {
    /// Every server measured, in report order.
    pub const ALL: [Server; 3] = [Server::Irondhcp, Server::Kea, Server::KeaCache];
    /// The servers of the PostgreSQL side-by-side (`--postgres`).
    pub const POSTGRES: [Server; 2] = [Server::IrondhcpPg, Server::KeaPg];

    /// Whether it keeps its leases in the run's PostgreSQL.
    pub fn on_postgres(self) -> bool {
        matches!(self, Server::IrondhcpPg | Server::KeaPg)
    }

    pub fn name(self) -> &'static str {
        match self {
            Server::Irondhcp => "irondhcp",
            Server::Kea => "kea",
            Server::KeaCache => "kea-cache",
            Server::IrondhcpPg => "irondhcp-pg",
            Server::KeaPg => "kea-pg",
        }
    }

    /// Its process name (`/proc/PID/comm`).
    fn comm(self) -> &'static str {
        match self {
            Server::Irondhcp | Server::IrondhcpPg => "irondhcp",
            Server::Kea | Server::KeaCache | Server::KeaPg => "kea-dhcp4",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Dora,
    Renew,
    /// DORA through a relay (the load generator is the relay), as perfdhcp
    /// runs it: for the cross-check.
    Relay,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Dora => "dora",
            Scenario::Renew => "renew",
            Scenario::Relay => "relay",
        }
    }
}

/// Parses `server:scenario:rate` (the `--trial` option).
pub fn parse_trial(spec: &str) -> Result<(Server, Scenario, f64)> {
    let parts: Vec<&str> = spec.split(':').collect();
    let [server, scenario, rate] = parts.as_slice() else {
        bail!("--trial takes server:scenario:rate, e.g. irondhcp:renew:31000");
    };
    let Some(server) = Server::ALL
        .into_iter()
        .chain(Server::POSTGRES)
        .find(|s| s.name() == *server)
    else {
        bail!("unknown server {server:?} (irondhcp, kea, kea-cache, irondhcp-pg, kea-pg)");
    };
    let scenario = match *scenario {
        "dora" => Scenario::Dora,
        "renew" => Scenario::Renew,
        "relay" => Scenario::Relay,
        other => bail!("unknown scenario {other:?} (dora, renew, relay)"),
    };
    let rate: f64 = rate.parse().context("rate")?;
    Ok((server, scenario, rate))
}

/// The testbed every trial uses: a /15 so a DORA trial has 130k addresses.
pub fn testbed_options() -> TestbedOptions {
    TestbedOptions {
        prefix_len: 15,
        pool: "198.18.1.0-198.19.255.254".into(),
        lease_time: 3600,
        // The worker on core 0, the load generator on core 1.
        server_extra: std::env::var("IRONDHCP_BENCH_SERVER_EXTRA")
            .unwrap_or_else(|_| "cores = [0]".into()),
        ..TestbedOptions::default()
    }
}

/// Runs one trial at `rate` and returns the load generator's JSON report
/// (for a server on PostgreSQL with PostgreSQL's work over the window
/// under `"postgres"`).
pub fn trial(
    bins: &Bins,
    args: &Args,
    server: Server,
    scenario: Scenario,
    rate: f64,
) -> Result<Value> {
    let mut opts = testbed_options();
    let db = match server.on_postgres() {
        true => {
            let pg = bins.pg()?;
            let db = pg.database(server == Server::KeaPg)?;
            opts.storage_url = Some(db.url());
            opts.tail = pg.cluster_toml();
            Some(db)
        }
        false => None,
    };
    let mut tb = Testbed::new(&opts).context("create the testbed")?;
    // The relayed cross-check pins Kea to core 0, as perfdhcp's does.
    let kea_core = (scenario == Scenario::Relay).then_some(0);
    let _kea = match server {
        Server::Irondhcp | Server::IrondhcpPg => {
            tb.start_daemon(&bins.irondhcp).context("start irondhcp")?;
            None
        }
        Server::Kea | Server::KeaCache => {
            let cache = server == Server::KeaCache;
            Some(kea::start(&tb, kea_core, cache, &KeaStore::Memfile).context("start kea-dhcp4")?)
        }
        Server::KeaPg => {
            let store = db.as_ref().map(|d| d.kea_store()).context("no database")?;
            Some(kea::start(&tb, kea_core, false, &store).context("start kea-dhcp4")?)
        }
    };
    let pid = server_pid(&tb.server.name, server.comm())?;
    let secs = crate::postgres::load_secs(args, scenario, rate);
    let clients = match scenario {
        Scenario::Dora | Scenario::Relay => ((rate * secs * 1.1) as u64).max(100),
        Scenario::Renew => args.renew_clients,
    };
    let mut cmd = tb.client.command(&bins.loadgen);
    if scenario == Scenario::Relay {
        let relay = RELAY_IP.to_string();
        tb.client.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{relay}/15"),
            "dev",
            &tb.cli_if,
        ])?;
        cmd.args(["--giaddr", &relay, "--relay-ip", &relay]);
    }
    loadgen_args(&mut cmd, &tb, scenario, rate, secs, clients, pid);
    let marks = crate::postgres::marks_in(&tb.dir);
    let run = |cmd: &mut std::process::Command| -> Result<Value> {
        let out = cmd.output().context("run irondhcp-loadgen")?;
        if !out.status.success() {
            bail!(
                "irondhcp-loadgen failed ({}): {}\nserver log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                tb.log_text()
            );
        }
        serde_json::from_slice(&out.stdout).context("parse the load generator's JSON")
    };
    match &db {
        None => run(&mut cmd),
        Some(db) => {
            cmd.arg("--window-marks").arg(&marks);
            let (mut v, window) = db.over_window(&marks, || run(&mut cmd))?;
            let exchanges = v
                .pointer("/server_cpu/exchanges")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            v["postgres"] = crate::postgres::per_exchange(window, exchanges);
            Ok(v)
        }
    }
}

/// The load generator's arguments for a trial (one try per exchange: a
/// lost packet is lost, as perfdhcp counts it; a retransmission would
/// hide the loss the search is looking for).
pub fn loadgen_args(
    cmd: &mut std::process::Command,
    tb: &Testbed,
    scenario: Scenario,
    rate: f64,
    secs: f64,
    clients: u64,
    pid: u32,
) {
    cmd.args([
        "--iface",
        &tb.cli_if,
        "--server",
        &SERVER_IP.to_string(),
        "--scenario",
        scenario.name(),
    ])
    .args([
        "--tries",
        "1",
        "--rate",
        &format!("{rate:.0}"),
        "--duration",
        &format!("{secs:.2}"),
    ])
    .args([
        "--clients",
        &clients.to_string(),
        "--warmup-rate",
        "4000",
        "--cores",
        "1",
        "--server-pid",
        &pid.to_string(),
        "--json",
    ]);
}

/// The process named `comm` in network namespace `netns` (the server under
/// test is the only one there).
pub fn server_pid(netns: &str, comm: &str) -> Result<u32> {
    let out = std::process::Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .context("ip netns pids")?;
    let pids = String::from_utf8_lossy(&out.stdout);
    pick_pid(&pids, comm, |pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()
    })
    .with_context(|| format!("no {comm} process in namespace {netns} (pids: {pids:?})"))
}

/// The first pid of `pids` (whitespace-separated) whose comm is `comm`.
fn pick_pid(pids: &str, comm: &str, comm_of: impl Fn(u32) -> Option<String>) -> Option<u32> {
    pids.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .find(|&pid| comm_of(pid).is_some_and(|c| c.trim_end() == comm))
}

/// What one trial showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Loss under 1 % and something answered.
    Pass,
    /// The server lost 1 % or more.
    Fail,
    /// The generator did not send the offered rate: not a measurement.
    Generator,
}

impl Outcome {
    /// The verdict on a trial, whichever tool ran it: generator-bound when
    /// the tool could not send the offered rate (`send_bound`), or when its
    /// own sockets dropped (`own_drops`) enough of the `lost` replies to
    /// explain a failure; else a pass under 1 % `loss` with something
    /// `answered`; else a failure.
    pub fn judge(
        send_bound: bool,
        loss: f64,
        answered: bool,
        lost: u64,
        own_drops: Option<u64>,
    ) -> Outcome {
        if send_bound {
            Outcome::Generator
        } else if loss < MAX_LOSS && answered {
            Outcome::Pass
        } else if receive_bound(lost, own_drops) {
            Outcome::Generator
        } else {
            Outcome::Fail
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Generator => "generator-bound",
        }
    }
}

/// One trial's outcome and figures, as the search sees them.
#[derive(Debug, Clone)]
pub struct Trial {
    pub outcome: Outcome,
    pub loss: f64,
    /// New exchanges actually sent per second.
    pub achieved: f64,
    pub report: Value,
}

/// Whether a lossy trial's loss was mostly the generator's own: its
/// sockets dropped (`own_drops`) at least half as many replies as were
/// counted lost. Such a failure is not the server's.
fn receive_bound(lost: u64, own_drops: Option<u64>) -> bool {
    own_drops.is_some_and(|d| d > 0 && d.saturating_mul(2) >= lost)
}

/// A load generator report's outcome.
pub fn classify(v: &Value) -> Trial {
    let loss = v["loss_ratio"].as_f64().unwrap_or(1.0);
    let sum = |key: &str| -> u64 {
        v["exchanges"]
            .as_object()
            .map(|m| m.values().filter_map(|e| e[key].as_u64()).sum())
            .unwrap_or(0)
    };
    let outcome = Outcome::judge(
        v["generator_bound"] == true,
        loss,
        sum("answered") > 0,
        sum("lost"),
        v["rx_dropped"].as_u64(),
    );
    Trial {
        outcome,
        loss,
        achieved: v["achieved_rate"].as_f64().unwrap_or(0.0),
        report: v.clone(),
    }
}

/// The rate search shared by every server and tool: from 1,000/s, double
/// while `trial` passes, shrink if even the start does not pass, then
/// bisect between the last pass and the lowest rate that failed or was
/// generator-bound. Returns `{"rate", "report", "trials", "limit",
/// "lower_bound"}`:
///
/// * `limit` "server": a failure bounds the rate from above; `rate` is the
///   highest offered rate that passed.
/// * "generator": the generator could not offer more; `rate` is a lower
///   bound, the larger of the highest passing rate and the achieved rate of
///   a generator-bound trial that still had < 1 % loss.
/// * "cap": every rate up to `max_rate` passed (a lower bound).
/// * "none": nothing passed (`rate` 0).
///
/// With `confirm`, a failed trial is run once more and the rate fails only
/// if the second trial fails too: on a shared machine one unlucky trial
/// (another job taking the server's core for a moment) would otherwise
/// stop the doubling early and halve the answer.
pub fn search(
    quick: bool,
    max_rate: f64,
    confirm: bool,
    mut trial: impl FnMut(f64) -> Result<Trial>,
) -> Result<Value> {
    let mut trials = Vec::new();
    // The generator-bound trials' best sustained rate, and its report.
    let mut gen_best: Option<(f64, Value)> = None;
    let mut run = |rate: f64| -> Result<(Outcome, Value)> {
        let mut t = trial(rate)?;
        if confirm && t.outcome == Outcome::Fail {
            trials.push(json!({
                "rate": rate, "achieved_rate": t.achieved, "loss_ratio": t.loss,
                "outcome": "FAIL, retried", "pass": false,
            }));
            t = trial(rate)?;
        }
        let cpu = &t.report["server_cpu"]["us_per_exchange"];
        trials.push(json!({
            "rate": rate,
            "achieved_rate": t.achieved,
            "loss_ratio": t.loss,
            "outcome": t.outcome.name(),
            "pass": t.outcome == Outcome::Pass,
            "server_cpu_us_per_exchange": cpu,
        }));
        if t.outcome == Outcome::Generator
            && t.loss < MAX_LOSS
            && gen_best.as_ref().is_none_or(|(a, _)| t.achieved > *a)
        {
            gen_best = Some((t.achieved, t.report.clone()));
        }
        Ok((t.outcome, t.report))
    };
    let mut best: Option<(f64, Value)> = None;
    let mut fail: Option<f64> = None;
    let mut gen: Option<f64> = None;
    let lower = |slot: &mut Option<f64>, r: f64| *slot = Some(slot.map_or(r, |x| x.min(r)));
    let mut rate = 1000.0;
    while rate <= max_rate {
        match run(rate)? {
            (Outcome::Pass, v) => best = Some((rate, v)),
            (Outcome::Fail, _) => {
                lower(&mut fail, rate);
                break;
            }
            (Outcome::Generator, _) => {
                lower(&mut gen, rate);
                break;
            }
        }
        rate *= 2.0;
    }
    while best.is_none() && rate >= 50.0 {
        rate /= 2.0;
        match run(rate)? {
            (Outcome::Pass, v) => best = Some((rate, v)),
            (Outcome::Fail, _) => lower(&mut fail, rate),
            (Outcome::Generator, _) => lower(&mut gen, rate),
        }
    }
    for _ in 0..if quick { 2 } else { 4 } {
        let hi = match (fail, gen) {
            (Some(f), Some(g)) => f.min(g),
            (f, g) => match f.or(g) {
                Some(h) => h,
                None => break,
            },
        };
        let Some(lo) = best.as_ref().map(|b| b.0) else {
            break;
        };
        if hi / lo < 1.05 {
            break;
        }
        let mid = ((lo + hi) / 2.0).round();
        match run(mid)? {
            (Outcome::Pass, v) => best = Some((mid, v)),
            (Outcome::Fail, _) => lower(&mut fail, mid),
            (Outcome::Generator, _) => lower(&mut gen, mid),
        }
    }
    let limit = match (best.is_some(), fail, gen) {
        (false, _, _) => "none",
        (true, Some(f), g) if g.is_none_or(|g| f < g) => "server",
        (true, _, Some(_)) => "generator",
        (true, _, None) => "cap",
    };
    let (mut rate, mut report) = best.unwrap_or((0.0, Value::Null));
    if limit == "generator" {
        if let Some((a, v)) = gen_best {
            if a > rate {
                (rate, report) = (a, v);
            }
        }
    }
    Ok(json!({
        "rate": rate,
        "report": report,
        "trials": trials,
        "limit": limit,
        "lower_bound": limit != "server",
    }))
}

/// The load generator's rate search for one server and scenario (failures
/// confirmed in the relayed cross-check, as perfdhcp's are).
pub fn rate_search(bins: &Bins, args: &Args, server: Server, scenario: Scenario) -> Result<Value> {
    search(args.quick, MAX_RATE, scenario == Scenario::Relay, |rate| {
        let v = trial(bins, args, server, scenario, rate)?;
        let t = classify(&v);
        log_trial(server.name(), scenario.name(), rate, &t);
        Ok(t)
    })
}

/// One progress line on stderr.
pub fn log_trial(who: &str, scenario: &str, rate: f64, t: &Trial) {
    let cpu = t.report["server_cpu"]["us_per_exchange"]
        .as_f64()
        .map_or_else(String::new, |u| format!("  {u:.1} CPU-µs/exchange"));
    eprintln!(
        "   {who:<9} {scenario:<5} {rate:>9.0}/s  sent {:>9.0}/s  loss {:>6.3} %  {}{cpu}",
        t.achieved,
        t.loss * 100.0,
        t.outcome.name(),
    );
}

/// Each of `servers`' highest sustained rate of new leases and of
/// renewals, by server name.
pub fn searches(bins: &Bins, args: &Args, servers: &[Server]) -> Result<Value> {
    let mut out = serde_json::json!({});
    for &server in servers {
        let name = server.name();
        eprintln!("== {name}: new leases (dora), rate search");
        let dora = rate_search(bins, args, server, Scenario::Dora)?;
        eprintln!("== {name}: renewals, rate search");
        let renew = rate_search(bins, args, server, Scenario::Renew)?;
        out[name] = serde_json::json!({ "dora": dora, "renew": renew });
    }
    Ok(out)
}

/// Every one of `servers` at the same offered load, per (scenario, rate):
/// CPU per exchange and latencies that do not depend on where each one's
/// ceiling fell. `who` names them in the progress lines.
pub fn equal_load(
    bins: &Bins,
    args: &Args,
    servers: &[Server],
    points: [(Scenario, f64); 2],
    who: &str,
) -> Result<Value> {
    let mut equal = serde_json::json!({});
    for (scenario, rate) in points {
        let s = scenario.name();
        eprintln!("== {who}: {s} at {rate:.0}/s (equal load)");
        equal[s] = serde_json::json!({ "rate": rate });
        for &server in servers {
            let v = trial(bins, args, server, scenario, rate)?;
            log_trial(server.name(), s, rate, &classify(&v));
            equal[s][server.name()] = v;
        }
    }
    Ok(equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated trial: the server sustains `capacity`, the generator
    /// sends at most `gen_max` (and then loses nothing extra).
    fn sim(capacity: f64, gen_max: f64) -> impl FnMut(f64) -> Result<Trial> {
        move |rate: f64| {
            let achieved = rate.min(gen_max);
            let generator_bound = achieved < rate * 0.98;
            let loss = if achieved > capacity {
                1.0 - capacity / achieved
            } else {
                0.0
            };
            let v = json!({
                "rate": rate, "achieved_rate": achieved, "generator_bound": generator_bound,
                "loss_ratio": loss, "exchanges": {"RENEW-ACK": {"answered": 100}},
            });
            Ok(classify(&v))
        }
    }

    fn outcomes(v: &Value) -> Vec<(f64, String)> {
        v["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["rate"].as_f64().unwrap(),
                    t["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn a_server_limit_is_found_by_doubling_then_bisecting() {
        let v = search(false, 1e6, false, sim(11_000.0, 1e9)).unwrap();
        assert_eq!(v["limit"], "server");
        assert_eq!(v["lower_bound"], false);
        // 8000 passes, 16000 fails; bisection: 12000 F, 10000 P, 11000 P,
        // 11500 F.
        assert_eq!(v["rate"], 11_000.0);
        assert_eq!(
            outcomes(&v)[4..],
            [
                (16_000.0, "FAIL".into()),
                (12_000.0, "FAIL".into()),
                (10_000.0, "pass".into()),
                (11_000.0, "pass".into()),
                (11_500.0, "FAIL".into())
            ]
        );
    }

    #[test]
    fn a_generator_bound_trial_is_not_a_pass_nor_a_failure() {
        // The generator sends 300k/s at most; the server would do 1M.
        let v = search(true, 1e6, false, sim(1e6, 300_000.0)).unwrap();
        assert_eq!(v["limit"], "generator");
        assert_eq!(v["lower_bound"], true);
        let o = outcomes(&v);
        // Doubling stops at the first generator-bound rate (512,000), not a
        // FAIL; bisection (384k, 320k) never records a failure either.
        assert_eq!(
            o[8..],
            [
                (256_000.0, "pass".into()),
                (512_000.0, "generator-bound".into()),
                (384_000.0, "generator-bound".into()),
                (320_000.0, "generator-bound".into())
            ]
        );
        // The figure is what the server was seen to sustain: 300k achieved
        // with no loss (more than the highest passing offered rate).
        assert_eq!(v["rate"], 300_000.0);
        assert!(v["report"]["generator_bound"] == true);
    }

    #[test]
    fn a_generator_bound_trial_with_loss_does_not_raise_the_figure() {
        // The generator tops out at 300k/s and the server at 280k/s: the
        // generator-bound trials (512k, 384k, 320k) also lose more than 1 %,
        // so the figure stays the highest passing offered rate, a lower
        // bound limited by the generator (no failure was seen below it).
        let v = search(true, 1e6, false, sim(280_000.0, 300_000.0)).unwrap();
        assert_eq!(v["limit"], "generator");
        assert_eq!(v["rate"], 256_000.0);
        assert_eq!(v["report"]["generator_bound"], false);
        let o = outcomes(&v);
        assert!(o.iter().all(|(_, x)| x != "FAIL"), "{o:?}");
    }

    #[test]
    fn a_failure_below_the_generator_limit_makes_it_the_servers() {
        // Generator-bound at 512k first, then a real failure while
        // bisecting: the server is the limit.
        let v = search(false, 1e6, false, sim(270_000.0, 400_000.0)).unwrap();
        assert_eq!(v["limit"], "server", "{:?}", outcomes(&v));
        assert_eq!(v["lower_bound"], false);
    }

    #[test]
    fn the_cap_and_nothing_passing() {
        let v = search(true, 16_000.0, false, sim(1e9, 1e9)).unwrap();
        assert_eq!(
            (v["limit"].as_str(), v["rate"].as_f64()),
            (Some("cap"), Some(16_000.0))
        );
        let v = search(true, 16_000.0, false, sim(10.0, 1e9)).unwrap();
        assert_eq!(
            (v["limit"].as_str(), v["rate"].as_f64()),
            (Some("none"), Some(0.0))
        );
        // A generator too slow even for the start: the search shrinks
        // until it can measure.
        let v = search(true, 1e6, false, sim(1e9, 700.0)).unwrap();
        assert_eq!(
            outcomes(&v)[..2],
            [(1000.0, "generator-bound".into()), (500.0, "pass".into())]
        );
    }

    #[test]
    fn a_confirmed_search_retries_a_failure_once() {
        // The server sustains 11,000/s, but the first trial at 4,000/s is
        // unlucky (another job took its core).
        let flaky = |confirm: bool| {
            let mut calls_here = 0;
            let mut inner = sim(11_000.0, 1e9);
            search(false, 1e6, confirm, move |rate| {
                calls_here += 1;
                if rate == 4000.0 && calls_here == 3 {
                    return Ok(classify(&json!({"loss_ratio": 0.05, "achieved_rate": rate,
                        "exchanges": {"RENEW-ACK": {"answered": 95, "lost": 5}}})));
                }
                inner(rate)
            })
            .unwrap()
        };
        // Unconfirmed, the unlucky trial halves the answer.
        let once = flaky(false);
        assert!(once["rate"].as_f64().unwrap() < 4000.0, "{once}");
        // Confirmed, the retry passes and the search goes on to 11,000/s.
        let v = flaky(true);
        assert_eq!(v["rate"], 11_000.0, "{v}");
        assert_eq!(outcomes(&v)[2], (4000.0, "FAIL, retried".into()));
        assert_eq!(outcomes(&v)[3], (4000.0, "pass".into()));
        // A real failure is retried and still fails.
        let real = search(false, 1e6, true, sim(11_000.0, 1e9)).unwrap();
        assert_eq!(real["rate"], 11_000.0);
        assert!(outcomes(&real).contains(&(16_000.0, "FAIL, retried".into())));
        assert!(outcomes(&real).contains(&(16_000.0, "FAIL".into())));
    }

    #[test]
    fn classification() {
        let rep = |gb: bool, loss: f64, answered: u64| {
            json!({"generator_bound": gb, "loss_ratio": loss, "achieved_rate": 5.0,
                   "exchanges": {"REQUEST-ACK": {"answered": answered}}})
        };
        assert_eq!(classify(&rep(false, 0.0099, 1)).outcome, Outcome::Pass);
        assert_eq!(classify(&rep(false, 0.01, 1)).outcome, Outcome::Fail);
        assert_eq!(classify(&rep(false, 0.0, 0)).outcome, Outcome::Fail);
        // Generator-bound wins over loss either way.
        assert_eq!(classify(&rep(true, 0.0, 1)).outcome, Outcome::Generator);
        assert_eq!(classify(&rep(true, 0.5, 1)).outcome, Outcome::Generator);
        // A report without the fields (an older generator) is a failure, not
        // a pass.
        assert_eq!(classify(&json!({})).outcome, Outcome::Fail);
        // A failure the generator's own receive drops explain is not the
        // server's; drops that explain less than half of it do not excuse it.
        let lossy = |rx: Value| {
            json!({"generator_bound": false, "loss_ratio": 0.02, "rx_dropped": rx,
                   "exchanges": {"RENEW-ACK": {"answered": 980, "lost": 20}}})
        };
        assert_eq!(classify(&lossy(json!(10))).outcome, Outcome::Generator);
        assert_eq!(classify(&lossy(json!(9))).outcome, Outcome::Fail);
        assert_eq!(classify(&lossy(json!(0))).outcome, Outcome::Fail);
        assert_eq!(classify(&lossy(Value::Null)).outcome, Outcome::Fail);
        // A passing trial stays a pass whatever the generator dropped.
        let mut ok = lossy(json!(10));
        ok["loss_ratio"] = json!(0.005);
        assert_eq!(classify(&ok).outcome, Outcome::Pass);
    }

    #[test]
    fn the_servers_pid_is_found_by_its_name() {
        let comm = |pid: u32| match pid {
            10 => Some("ip\n".to_owned()),
            11 => Some("kea-dhcp4\n".to_owned()),
            12 => Some("irondhcp\n".to_owned()),
            _ => None,
        };
        assert_eq!(pick_pid("10\n9\n11\n12\n", "irondhcp", comm), Some(12));
        assert_eq!(pick_pid("10 11", "kea-dhcp4", comm), Some(11));
        assert_eq!(pick_pid("10 x 9", "irondhcp", comm), None);
        assert_eq!(pick_pid("", "irondhcp", comm), None);
    }
}
