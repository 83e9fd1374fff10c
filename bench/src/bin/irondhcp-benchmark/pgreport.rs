//! The PostgreSQL tables (`--postgres`): irondhcp and Kea on one database,
//! and 1, 2 and 3 irondhcp servers sharing one; written into
//! docs/benchmarks.md between markers of their own, so the side-by-side
//! and the prose around both are kept.

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use crate::report::{capacity_cell, f, lat, not_sustained, show, spread, Spread};

const BEGIN: &str = "<!-- BEGIN postgres (written by cargo xtask bench --postgres) -->";
const END: &str = "<!-- END postgres -->";
const IRON: &str = "irondhcp-pg";
const KEA: &str = "kea-pg";

fn runs(r: &Value) -> Vec<Value> {
    r["runs"].as_array().cloned().unwrap_or_default()
}

/// A figure of the equal-load trial of `server` in every run.
fn equal(
    runs: &[Value],
    scen: &str,
    server: &str,
    get: impl Fn(&Value) -> Option<f64>,
) -> Option<Spread> {
    spread(
        runs.iter()
            .filter_map(|r| get(&r["equal_load"][scen][server]))
            .collect(),
    )
}

/// A cell, marked † when any run's trial did not sustain the load.
fn cell(
    runs: &[Value],
    scen: &str,
    server: &str,
    digits: usize,
    get: impl Fn(&Value) -> Option<f64>,
) -> String {
    let dagger = runs
        .iter()
        .any(|r| not_sustained(&r["equal_load"][scen][server]));
    format!(
        "{}{}",
        show(equal(runs, scen, server, get), digits, ""),
        if dagger { " †" } else { "" }
    )
}

/// irondhcp over Kea, per run.
fn ratio(runs: &[Value], scen: &str, get: impl Fn(&Value) -> Option<f64>) -> String {
    let s = spread(
        runs.iter()
            .filter_map(|r| {
                let i = get(&r["equal_load"][scen][IRON])?;
                let k = get(&r["equal_load"][scen][KEA])?;
                (k > 0.0).then(|| i / k)
            })
            .collect(),
    );
    let digits = if s.is_some_and(|s| s.median < 0.1) {
        3
    } else {
        2
    };
    show(s, digits, "×")
}

/// Reads one figure from a trial's report.
type Figure = fn(&Value) -> Option<f64>;

fn cpu(v: &Value) -> Option<f64> {
    v["server_cpu"]["us_per_exchange"].as_f64()
}
fn pg_statements(v: &Value) -> Option<f64> {
    v["postgres"]["statements_per_exchange"].as_f64()
}
fn pg_cpu(v: &Value) -> Option<f64> {
    v["postgres"]["cpu_us_per_exchange"].as_f64()
}

/// The highest-rate ratio, per run (`≥` when irondhcp's figure was a
/// lower bound in any run).
fn capacity_ratio(runs: &[Value], scen: &str) -> String {
    let s = spread(
        runs.iter()
            .filter_map(|r| {
                let i = f(&r[IRON][scen]["rate"]);
                let k = f(&r[KEA][scen]["rate"]);
                (k > 0.0).then(|| i / k)
            })
            .collect(),
    );
    let lower = runs.iter().any(|r| r[IRON][scen]["lower_bound"] == true);
    format!("{}{}", if lower { "≥ " } else { "" }, show(s, 2, "×"))
}

fn single_table(runs: &[Value], dora_rate: f64, renew_rate: f64) -> String {
    let mut t = String::new();
    t.push_str("| one server each, same PostgreSQL | irondhcp | Kea | irondhcp / Kea |\n|---|---:|---:|---:|\n");
    t.push_str(&format!(
        "| new leases per second (highest rate with < 1 % loss) | {} | {} | {} |\n",
        capacity_cell(runs, IRON, "dora"),
        capacity_cell(runs, KEA, "dora"),
        capacity_ratio(runs, "dora")
    ));
    t.push_str(&format!(
        "| renewals per second (highest rate with < 1 % loss) | {} | {} | {} |\n",
        capacity_cell(runs, IRON, "renew"),
        capacity_cell(runs, KEA, "renew"),
        capacity_ratio(runs, "renew")
    ));
    for (scen, rate, what, ex) in [
        ("dora", dora_rate, "new leases", "REQUEST-ACK"),
        ("renew", renew_rate, "renewals", "RENEW-ACK"),
    ] {
        let one = if scen == "dora" {
            "new lease"
        } else {
            "renewal"
        };
        let rows: [(&str, usize, Figure); 3] = [
            ("server CPU-ms per 1,000", 1, cpu),
            ("PostgreSQL statements per ", 2, pg_statements),
            ("PostgreSQL CPU-ms per 1,000", 1, pg_cpu),
        ];
        for (label, digits, get) in rows {
            let label = if label.ends_with("per ") {
                format!("{label}{one}")
            } else {
                format!("{label} {what}")
            };
            // CPU-µs per exchange is CPU-ms per 1,000.
            t.push_str(&format!(
                "| {what} at {rate:.0}/s: {label} | {} | {} | {} |\n",
                cell(runs, scen, IRON, digits, get),
                cell(runs, scen, KEA, digits, get),
                ratio(runs, scen, get)
            ));
        }
        let p = |q: &'static str| move |v: &Value| lat(v, ex, q);
        t.push_str(&format!(
            "| {what} at {rate:.0}/s: {ex} p50 / p99 (µs) | {} / {} | {} / {} | {} / {} |\n",
            cell(runs, scen, IRON, 0, p("p50")),
            cell(runs, scen, IRON, 0, p("p99")),
            cell(runs, scen, KEA, 0, p("p50")),
            cell(runs, scen, KEA, 0, p("p99")),
            ratio(runs, scen, p("p50")),
            ratio(runs, scen, p("p99")),
        ));
    }
    t
}

/// The largest of a figure over a cluster trial's servers.
fn servers_max(trial: &Value, pointer: &str) -> Option<f64> {
    trial["server_stats"]
        .as_array()?
        .iter()
        .filter_map(|s| s.pointer(pointer).and_then(Value::as_f64))
        .reduce(f64::max)
}

fn servers_sum(trial: &Value, pointer: &str) -> f64 {
    trial["server_stats"].as_array().map_or(0.0, |a| {
        a.iter()
            .filter_map(|s| s.pointer(pointer).and_then(Value::as_f64))
            .sum()
    })
}

fn scaling_table(runs: &[Value]) -> String {
    let mut t = String::from(
        "| servers | load per server | sent, in all | loss | servers' CPU-ms per 1,000 | PostgreSQL statements per exchange | PostgreSQL CPU-ms per 1,000 | sync lag p50 / p99 (µs) | refused / borrowed grants |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let trials = |scen: &str, n: u64| -> Vec<Value> {
        runs.iter()
            .filter_map(|r| {
                r["scaling"]
                    .as_array()?
                    .iter()
                    .find(|t| t["scenario"] == scen && t["servers"].as_u64() == Some(n))
                    .cloned()
            })
            .collect()
    };
    for scen in ["dora", "renew"] {
        for n in 1..=3u64 {
            let ts = trials(scen, n);
            let Some(first) = ts.first() else { continue };
            let s =
                |get: &dyn Fn(&Value) -> Option<f64>| spread(ts.iter().filter_map(get).collect());
            let bound = ts.iter().any(|t| t["generator_bound"] == true);
            let lag = if n == 1 {
                "—".to_string()
            } else {
                format!(
                    "{} / {}",
                    show(s(&|t| servers_max(t, "/sync/lag_us_p50")), 0, ""),
                    show(s(&|t| servers_max(t, "/sync/lag_us_p99")), 0, "")
                )
            };
            t.push_str(&format!(
                "| {n} | {} {:.0}/s | {}{} | {} | {} | {} | {} | {lag} | {} / {} |\n",
                if scen == "dora" {
                    "new leases"
                } else {
                    "renewals"
                },
                f(&first["rate_per_server"]),
                show(s(&|t| t["achieved_rate"].as_f64()), 0, "/s"),
                if bound { " (generator-bound)" } else { "" },
                show(s(&|t| t["loss_ratio"].as_f64().map(|l| l * 100.0)), 2, " %"),
                show(s(&|t| t["servers_cpu_us_per_exchange"].as_f64()), 1, ""),
                show(
                    s(&|t| t
                        .pointer("/postgres/statements_per_exchange")
                        .and_then(Value::as_f64)),
                    3,
                    ""
                ),
                show(
                    s(&|t| t
                        .pointer("/postgres/cpu_us_per_exchange")
                        .and_then(Value::as_f64)),
                    1,
                    ""
                ),
                show(s(&|t| Some(servers_sum(t, "/control/conflicts"))), 0, ""),
                show(s(&|t| Some(servers_sum(t, "/control/borrowed"))), 0, ""),
            ));
        }
    }
    t
}

/// Markdown for the results.
pub fn render(r: &Value) -> String {
    let runs = runs(r);
    let n = runs.len();
    let dora = f(&r["pg_dora_rate"]);
    let renew = f(&r["pg_renew_rate"]);
    format!(
        "Measured {} on {} by `{}` ({} s per trial, {n} run{}; a cell is the median over the runs with the range in parentheses). \
One PostgreSQL server (Debian's, default settings: fsync and synchronous commit on; `pg_stat_statements` loaded to count statements) \
and one Redis on the same machine, reached over their Unix sockets; every trial on a fresh database. \
irondhcp runs as a cluster member (Redis sync, address blocks with fencing); Kea 2.2 `kea-dhcp4` multi-threaded (2 threads) on the schema of \
`kea-admin db-init pgsql`. Same veth testbed, subnet and generator as the side-by-side above. \
PostgreSQL's statements (BEGIN and COMMIT included) and the CPU time of all its processes are read over the load generator's measured window \
and divided by the exchanges completed in it; a cell marked † is from a trial that lost 1 % or more or was generator-bound in at least one run.\n\n\
{}\n\
1, 2 and 3 irondhcp servers on the one PostgreSQL and Redis, each in a testbed of its own with its own generator and clients offering \
the same load per server (so each server's commit batches are alike and only what the servers do to each other can change the costs); all \
workers on core 0, the generators on core 1. Per new lease and per renewal the servers' CPU and PostgreSQL's work should stay flat as servers \
are added; the sync lag runs from a server's commit to a peer's map holding the lease (the largest p50 and p99 over the \
servers; quarter-octave histogram buckets, so a figure is at most 25 % above the true one).\n\n{}",
        r["date"].as_str().unwrap_or("?"),
        r["machine"].as_str().unwrap_or("?"),
        r["command"].as_str().unwrap_or("?"),
        f(&r["trial_secs"]),
        if n == 1 { "" } else { "s" },
        single_table(&runs, dora, renew),
        scaling_table(&runs),
    )
}

pub fn write(root: &Path, table: &str) -> Result<()> {
    crate::report::write_section(
        root,
        (BEGIN, END),
        "irondhcp and Kea on PostgreSQL, and a cluster on one",
        &format!("{table}\nRaw results: [benchmarks-postgres.json](benchmarks-postgres.json)."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trial(cpu: f64, statements: f64, pg_cpu: f64) -> Value {
        json!({
            "loss_ratio": 0.0, "generator_bound": false,
            "server_cpu": {"us_per_exchange": cpu},
            "postgres": {"statements_per_exchange": statements, "cpu_us_per_exchange": pg_cpu},
            "exchanges": {"REQUEST-ACK": {"latency_us": {"p50": 400, "p99": 900}},
                          "RENEW-ACK": {"latency_us": {"p50": 300, "p99": 700}}},
        })
    }

    fn scaling(n: u64, scen: &str, lag99: u64) -> Value {
        let stats: Vec<Value> = (0..n)
            .map(|_| {
                json!({"sync": {"lag_us_p50": 640, "lag_us_p99": lag99},
                            "control": {"conflicts": 0, "borrowed": 1}})
            })
            .collect();
        json!({"servers": n, "scenario": scen, "rate": 1500.0, "rate_per_server": 500.0, "generator_bound": false,
               "loss_ratio": 0.0, "achieved_rate": 1500.0, "servers_cpu_us_per_exchange": 300.0,
               "postgres": {"statements_per_exchange": 1.7, "cpu_us_per_exchange": 400.0},
               "server_stats": stats})
    }

    #[test]
    fn ratios_are_irondhcp_over_kea_and_every_cluster_size_has_a_row() {
        let run = json!({
            "irondhcp-pg": {"dora": {"rate": 10000.0}, "renew": {"rate": 200000.0, "lower_bound": true}},
            "kea-pg": {"dora": {"rate": 500.0}, "renew": {"rate": 640.0}},
            "equal_load": {
                "dora": {"irondhcp-pg": trial(300.0, 1.5, 400.0), "kea-pg": trial(900.0, 15.0, 1200.0)},
                "renew": {"irondhcp-pg": trial(40.0, 0.04, 10.0), "kea-pg": trial(500.0, 10.0, 900.0)},
            },
            "scaling": [scaling(1, "dora", 0), scaling(2, "dora", 2560), scaling(3, "dora", 3072),
                        scaling(1, "renew", 0)],
        });
        let md = render(
            &json!({"date": "d", "machine": "m", "command": "c", "trial_secs": 5.0,
                                "pg_dora_rate": 500.0, "pg_renew_rate": 500.0, "runs": [run]}),
        );
        assert!(md.contains("| 10000 | 500 | 20.00× |"), "{md}");
        assert!(md.contains("| ≥ 200000 | 640 | ≥ 312.50× |"), "{md}");
        // CPU per new lease: 300 / 900.
        assert!(
            md.contains("server CPU-ms per 1,000 new leases | 300.0 | 900.0 | 0.33× |"),
            "{md}"
        );
        assert!(
            md.contains("PostgreSQL statements per new lease | 1.50 | 15.00 | 0.10× |"),
            "{md}"
        );
        assert!(md.contains("| 2 | new leases 500/s | 1500/s |"), "{md}");
        assert!(md.contains("| 640 / 3072 |"), "{md}");
        assert!(md.contains("| 1 | renewals 500/s |"), "{md}");
        // One server has no peers: no sync lag.
        assert!(md.contains("| — | 0 / 1 |"), "{md}");
    }
}
