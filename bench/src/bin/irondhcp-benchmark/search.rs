//! One trial (fresh testbed, fresh server, one load-generator run) and the
//! rate search over trials: double the offered rate while the server keeps
//! loss under 1 %, then bisect between the last pass and the first failure.

use anyhow::{bail, Context, Result};
use irondhcp_control::testbed::{Testbed, TestbedOptions, RELAY_IP, SERVER_IP};
use serde_json::{json, Value};

use crate::{kea, Args, Bins};

/// Addresses in the benchmark pool (198.18.1.0 - 198.19.255.254).
pub const POOL_SIZE: f64 = 130_815.0;
/// The loss a sustained rate may show (ISC's criterion with perfdhcp).
pub const MAX_LOSS: f64 = 0.01;
const MAX_RATE: f64 = 1_000_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Irondhcp,
    Kea,
}

impl Server {
    pub fn name(self) -> &'static str {
        match self {
            Server::Irondhcp => "irondhcp",
            Server::Kea => "kea",
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
    fn name(self) -> &'static str {
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
    let server = match *server {
        "irondhcp" => Server::Irondhcp,
        "kea" => Server::Kea,
        other => bail!("unknown server {other:?} (irondhcp, kea)"),
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

/// Runs one trial at `rate` and returns the load generator's JSON report.
pub fn trial(
    bins: &Bins,
    args: &Args,
    server: Server,
    scenario: Scenario,
    rate: f64,
) -> Result<Value> {
    let mut tb = Testbed::new(&testbed_options()).context("create the testbed")?;
    let _kea = match server {
        Server::Irondhcp => {
            tb.start_daemon(&bins.irondhcp).context("start irondhcp")?;
            None
        }
        // The relayed cross-check pins Kea to core 0, as perfdhcp's does.
        Server::Kea => {
            let core = (scenario == Scenario::Relay).then_some(0);
            Some(kea::start(&tb, core).context("start kea-dhcp4")?)
        }
    };
    // A DORA trial must not run out of addresses.
    let secs = match scenario {
        Scenario::Dora | Scenario::Relay => args.trial_secs.min(POOL_SIZE * 0.9 / rate),
        Scenario::Renew => args.trial_secs,
    };
    let clients = match scenario {
        Scenario::Dora | Scenario::Relay => ((rate * secs * 1.1) as u64).max(100),
        Scenario::Renew => args.renew_clients,
    };
    let mut cmd = tb.client.command(&bins.loadgen.display().to_string());
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
    // One try per exchange: a lost packet is lost, as perfdhcp counts it;
    // a retransmission would hide the loss the search is looking for.
    let out = cmd
        .args([
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
            "--json",
        ])
        .output()
        .context("run irondhcp-loadgen")?;
    if !out.status.success() {
        bail!(
            "irondhcp-loadgen failed ({}): {}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            tb.log_text()
        );
    }
    let v: Value =
        serde_json::from_slice(&out.stdout).context("parse the load generator's JSON")?;
    Ok(v)
}

fn passed(v: &Value) -> bool {
    let loss = v["loss_ratio"].as_f64().unwrap_or(1.0);
    let answered: u64 = v["exchanges"]
        .as_object()
        .map(|m| m.values().filter_map(|e| e["answered"].as_u64()).sum())
        .unwrap_or(0);
    loss < MAX_LOSS && answered > 0
}

/// The rate search shared by every server and tool: from 1,000/s, double
/// while `trial` passes, shrink if even the start fails, then bisect between
/// the last pass and the first failure. `trial` returns (passed, loss,
/// report). Returns `{"rate", "report", "trials"}` (rate 0: nothing passed).
pub fn search(
    quick: bool,
    max_rate: f64,
    mut trial: impl FnMut(f64) -> Result<(bool, f64, Value)>,
) -> Result<Value> {
    let mut trials = Vec::new();
    let mut run = |rate: f64| -> Result<(bool, Value)> {
        let (ok, loss, v) = trial(rate)?;
        trials.push(json!({"rate": rate, "loss_ratio": loss, "pass": ok}));
        Ok((ok, v))
    };
    let mut best: Option<(f64, Value)> = None;
    let mut fail: Option<f64> = None;
    let mut rate = 1000.0;
    while rate <= max_rate {
        let (ok, v) = run(rate)?;
        if !ok {
            fail = Some(rate);
            break;
        }
        best = Some((rate, v));
        rate *= 2.0;
    }
    while best.is_none() && rate >= 50.0 {
        rate /= 2.0;
        let (ok, v) = run(rate)?;
        if ok {
            best = Some((rate, v));
        } else {
            fail = Some(rate);
        }
    }
    for _ in 0..if quick { 2 } else { 4 } {
        let (Some(lo), Some(hi)) = (best.as_ref().map(|b| b.0), fail) else {
            break;
        };
        if hi / lo < 1.05 {
            break;
        }
        let mid = ((lo + hi) / 2.0).round();
        let (ok, v) = run(mid)?;
        if ok {
            best = Some((mid, v));
        } else {
            fail = Some(mid);
        }
    }
    let (rate, report) = best.unwrap_or((0.0, Value::Null));
    // No failure found below the cap: the rate is a lower bound.
    Ok(json!({"rate": rate, "report": report, "trials": trials, "lower_bound": fail.is_none()}))
}

/// The load generator's rate search for one server and scenario.
pub fn rate_search(bins: &Bins, args: &Args, server: Server, scenario: Scenario) -> Result<Value> {
    search(args.quick, MAX_RATE, |rate| {
        let v = trial(bins, args, server, scenario, rate)?;
        let ok = passed(&v);
        let loss = v["loss_ratio"].as_f64().unwrap_or(1.0);
        eprintln!(
            "   {:<8} {:<5} {:>9.0}/s  loss {:>6.3} %  {}",
            server.name(),
            scenario.name(),
            rate,
            loss * 100.0,
            if ok { "pass" } else { "FAIL" }
        );
        Ok((ok, loss, v))
    })
}
