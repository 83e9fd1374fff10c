//! The side-by-side table, and writing it into docs/benchmarks.md (between
//! markers, so the rest of the page is kept) with the raw JSON beside it.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

const BEGIN: &str = "<!-- BEGIN side-by-side (written by cargo xtask bench) -->";
const END: &str = "<!-- END side-by-side -->";

/// Puts `body` between the `markers` of docs/benchmarks.md, keeping the
/// rest of the page; without the markers, appends it under `heading`.
pub fn write_section(root: &Path, markers: (&str, &str), heading: &str, body: &str) -> Result<()> {
    let (begin, end) = markers;
    let md = root.join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&md).unwrap_or_else(|_| "# Benchmarks\n".into());
    let section = format!("{begin}\n{body}\n{end}");
    let new = match (old.find(begin), old.find(end)) {
        (Some(a), Some(b)) if a < b => format!("{}{}{}", &old[..a], section, &old[b + end.len()..]),
        _ => format!("{}\n## {heading}\n\n{section}\n", old.trim_end()),
    };
    std::fs::write(&md, new).with_context(|| format!("write {}", md.display()))
}

pub fn utc_now() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub(crate) fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// The runs of the side-by-side (a file written before `--repeats` holds
/// one, at the top level).
fn runs(r: &Value) -> Vec<Value> {
    match r["runs"].as_array() {
        Some(a) => a.clone(),
        None if !r["irondhcp"].is_null() => vec![r.clone()],
        None => Vec::new(),
    }
}

/// The cross-check's two searches (load generator, perfdhcp).
fn cross_check(r: &Value) -> (&Value, &Value) {
    if r["cross_check"].is_null() {
        (&r["kea"]["relay"], &r["kea"]["perfdhcp"])
    } else {
        (&r["cross_check"]["relay"], &r["cross_check"]["perfdhcp"])
    }
}

/// Median and range of some figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

pub(crate) fn spread(mut v: Vec<f64>) -> Option<Spread> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
        n,
    })
}

/// `1234` or, over several runs, `1234 (1100–1300)`; `digits` decimals.
pub(crate) fn show(s: Option<Spread>, digits: usize, unit: &str) -> String {
    match s {
        None => "—".into(),
        Some(s) if s.n == 1 || s.min == s.max => format!("{:.*}{unit}", digits, s.median),
        Some(s) => format!(
            "{:.*}{unit} ({:.*}–{:.*}{unit})",
            digits, s.median, digits, s.min, digits, s.max
        ),
    }
}

/// Decimals for a ratio: two, or three below 0.1.
fn ratio_digits(s: Option<Spread>) -> usize {
    match s {
        Some(s) if s.median.abs() < 0.1 => 3,
        _ => 2,
    }
}

const KEAS: [&str; 2] = ["kea", "kea-cache"];
const SERVERS: [&str; 3] = ["irondhcp", "kea", "kea-cache"];

/// A rate search's figure as a cell: the median over the runs, with `≥`
/// and the reason when any run's figure was a lower bound.
pub(crate) fn capacity_cell(runs: &[Value], server: &str, scen: &str) -> String {
    let searches: Vec<&Value> = runs
        .iter()
        .map(|r| &r[server][scen])
        .filter(|v| !v.is_null())
        .collect();
    let rates = spread(searches.iter().map(|v| f(&v["rate"])).collect());
    let any = |limit: &str| searches.iter().any(|v| v["limit"] == limit);
    let lower = searches.iter().any(|v| v["lower_bound"] == true);
    let why = if any("generator") {
        Some("generator")
    } else if any("cap") {
        Some("search cap")
    } else {
        None
    };
    let Some(r) = rates else { return "—".into() };
    let range = (r.n > 1 && r.min != r.max).then(|| format!("{:.0}–{:.0}", r.min, r.max));
    let note = match (why, range) {
        (None, None) => String::new(),
        (Some(w), None) => format!(" ({w})"),
        (None, Some(g)) => format!(" ({g})"),
        (Some(w), Some(g)) => format!(" ({w}; {g})"),
    };
    format!("{}{:.0}{note}", if lower { "≥ " } else { "" }, r.median)
}

/// Per run: irondhcp's figure over the best Kea's (`higher_is_better`
/// picks the Kea with the higher figure, else the lower).
fn per_run_ratio(
    runs: &[Value],
    higher_is_better: bool,
    get: impl Fn(&Value, &str) -> Option<f64>,
) -> Option<Spread> {
    spread(
        runs.iter()
            .filter_map(|r| {
                let i = get(r, "irondhcp")?;
                let keas = KEAS.iter().filter_map(|k| get(r, k));
                let k = if higher_is_better {
                    keas.fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
                } else {
                    keas.fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.min(x))))
                }?;
                (k > 0.0).then(|| i / k)
            })
            .collect(),
    )
}

pub(crate) fn lat(report: &Value, exchange: &str, q: &str) -> Option<f64> {
    report["exchanges"][exchange]["latency_us"][q].as_f64()
}

/// Whether an equal-load trial did not measure what it says: the
/// generator fell short, or the server lost 1 % or more.
pub(crate) fn not_sustained(report: &Value) -> bool {
    report["generator_bound"] == true || f(&report["loss_ratio"]) >= crate::search::MAX_LOSS
}

/// Markdown for the results.
pub fn render(r: &Value) -> String {
    let runs = runs(r);
    let n = runs.len();
    let mut t = String::new();
    t += &format!(
        "Measured {} on {} by `{}` ({} s per trial; {}). irondhcp with its embedded SQLite store; \
         Kea 2.2 kea-dhcp4 multi-threaded with memfile, persist on, without and with lease caching \
         (`cache-threshold` 0.25, Kea 3.0's default); all on the same veth testbed, AF_XDP copy mode \
         for irondhcp and the load generator. Ratios are irondhcp over the better of the two Kea \
         configurations, taken within each run.\n\n",
        r["date"].as_str().unwrap_or(""),
        r["machine"].as_str().unwrap_or(""),
        r["command"].as_str().unwrap_or(""),
        f(&r["trial_secs"]),
        if n > 1 {
            format!("the side-by-side run {n} times; each cell is the median over the runs, with the range in parentheses")
        } else {
            "one run of the side-by-side".into()
        }
    );
    if n == 0 {
        t += "(No side-by-side in this run.)\n";
    } else {
        t += &capacity_table(&runs);
        t += &equal_load_table(&runs);
        t += &generator_note(&runs);
    }
    let (lg, pd) = cross_check(r);
    let (pr, lr) = (f(&pd["rate"]), f(&lg["rate"]));
    if pr > 0.0 {
        let tag = |v: &Value| match v["limit"].as_str() {
            Some("generator") => " (≥, the tool was the limit)",
            Some("cap") => " (≥, the search cap)",
            _ => "",
        };
        t += &format!(
            "\nCross-check on Kea (pinned to core 0, the generator to core 1), both tools as a relay \
             (perfdhcp's only mode), same search: perfdhcp found \
             {pr:.0}{} four-way exchanges/s with < 1 % loss, irondhcp-loadgen {lr:.0}{}/s; they differ \
             by {:.1} % (target: within 15 %).\n",
            tag(pd),
            tag(lg),
            ((lr - pr) / pr * 100.0).abs()
        );
    }
    if let Some(mem) = r["memory"].as_array() {
        t += "\n| leases loaded | lease map bytes per lease | per covered address | daemon RSS (MiB) |\n|---:|---:|---:|---:|\n";
        for m in mem {
            t += &format!(
                "| {} | {:.1} | {:.1} | {:.1} |\n",
                m["leases"],
                f(&m["lease_map_bytes_per_lease"]),
                f(&m["lease_map_bytes_per_address"]),
                f(&m["rss_mib"])
            );
        }
    }
    t
}

/// Highest sustained rates (rate searches).
fn capacity_table(runs: &[Value]) -> String {
    let mut t = String::from(
        "| highest rate with < 1 % loss | irondhcp | Kea | Kea, cache 0.25 | irondhcp / better Kea |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for (label, scen) in [
        ("new leases per second (dora, durable before ACK)", "dora"),
        ("renewals per second", "renew"),
    ] {
        let rate = |r: &Value, s: &str| r[s][scen]["rate"].as_f64();
        let ratio = per_run_ratio(runs, true, rate);
        let lb = |s: &str| runs.iter().any(|r| r[s][scen]["lower_bound"] == true);
        let kea_lb = KEAS.iter().any(|k| lb(k));
        let prefix = match (lb("irondhcp"), kea_lb) {
            (false, false) => "",
            (true, false) => "≥ ",
            (false, true) => "≤ ",
            (true, true) => "~ ",
        };
        t += &format!(
            "| {label} | {} | {} | {} | {prefix}{} |\n",
            capacity_cell(runs, "irondhcp", scen),
            capacity_cell(runs, "kea", scen),
            capacity_cell(runs, "kea-cache", scen),
            show(ratio, ratio_digits(ratio), "×"),
        );
    }
    t
}

/// CPU time and latency at the same offered load for every server.
fn equal_load_table(runs: &[Value]) -> String {
    let mut t = String::from(
        "\n| at equal offered load | irondhcp | Kea | Kea, cache 0.25 | irondhcp / better Kea |\n\
         |---|---:|---:|---:|---:|\n",
    );
    let mut dagger = false;
    let rows: [(&str, &str, &str, &str, Option<&str>); 8] = [
        ("renew", "CPU-µs per renewal", "cpu", "", None),
        ("renew", "cores busy", "cores", "", None),
        ("renew", "RENEW→ACK p50 (µs)", "RENEW-ACK", "p50", None),
        ("renew", "RENEW→ACK p99 (µs)", "RENEW-ACK", "p99", None),
        (
            "dora",
            "CPU-µs per new lease (DISCOVER + REQUEST)",
            "cpu",
            "",
            None,
        ),
        ("dora", "cores busy", "cores", "", None),
        (
            "dora",
            "DISCOVER→OFFER p99 (µs)",
            "DISCOVER-OFFER",
            "p99",
            None,
        ),
        (
            "dora",
            "REQUEST→ACK p50 / p99 (µs)",
            "REQUEST-ACK",
            "p50",
            Some("p99"),
        ),
    ];
    for (scen, label, what, q, q2) in rows {
        let rate = spread(
            runs.iter()
                .filter_map(|r| r["equal_load"][scen]["rate"].as_f64())
                .collect(),
        );
        let Some(rate) = rate else { continue };
        let get_q = |rep: &Value, q: &str| -> Option<f64> {
            match what {
                "cpu" => rep["server_cpu"]["us_per_exchange"].as_f64(),
                "cores" => rep["server_cpu"]["cores"].as_f64(),
                ex => lat(rep, ex, q),
            }
        };
        let (digits, digits2) = match what {
            "cores" => (2, 2),
            "cpu" => (1, 1),
            _ => (0, 0),
        };
        let mut cell = |server: &str| -> String {
            let reps: Vec<&Value> = runs
                .iter()
                .map(|r| &r["equal_load"][scen][server])
                .filter(|v| !v.is_null())
                .collect();
            let mark = if reps.iter().any(|v| not_sustained(v)) {
                dagger = true;
                " †"
            } else {
                ""
            };
            let one = show(
                spread(reps.iter().filter_map(|v| get_q(v, q)).collect()),
                digits,
                "",
            );
            match q2 {
                None => format!("{one}{mark}"),
                Some(q2) => format!(
                    "{one} / {}{mark}",
                    show(
                        spread(reps.iter().filter_map(|v| get_q(v, q2)).collect()),
                        digits2,
                        ""
                    )
                ),
            }
        };
        // The ratio of the row's (last) figure: p99 where two are shown.
        let rq = q2.unwrap_or(q);
        let ratio = per_run_ratio(runs, false, |r, s| get_q(&r["equal_load"][scen][s], rq));
        t += &format!(
            "| {} at {:.0}/s: {label} | {} | {} | {} | {} |\n",
            if scen == "renew" {
                "renewals"
            } else {
                "new leases"
            },
            rate.median,
            cell("irondhcp"),
            cell("kea"),
            cell("kea-cache"),
            show(ratio, ratio_digits(ratio), "×"),
        );
    }
    // irondhcp at the better Kea's highest sustained rates.
    for (scen, ex, label) in [
        (
            "renew",
            "RENEW-ACK",
            "RENEW→ACK p99 (µs) at the better Kea's highest renewal rate",
        ),
        (
            "dora",
            "REQUEST-ACK",
            "REQUEST→ACK p99 (µs) at the better Kea's highest DORA rate",
        ),
    ] {
        let key = format!("{scen}_at_kea_rate");
        let pairs: Vec<(f64, f64, f64, String)> = runs
            .iter()
            .filter_map(|r| {
                let same = &r["irondhcp"][&key];
                let kea = same["kea"].as_str().unwrap_or("kea");
                let i = lat(&same["report"], ex, "p99")?;
                let k = lat(&r[kea][scen]["report"], ex, "p99")?;
                Some((f(&same["rate"]), i, k, kea.to_owned()))
            })
            .collect();
        if pairs.is_empty() {
            continue;
        }
        let rates = spread(pairs.iter().map(|p| p.0).collect());
        let ratio = spread(
            pairs
                .iter()
                .filter(|p| p.2 > 0.0)
                .map(|p| p.1 / p.2)
                .collect(),
        );
        // Each Kea's p99 in its own column, from the runs where it was
        // the better one.
        let kea_p99 = |k: &str| {
            let v: Vec<f64> = pairs.iter().filter(|p| p.3 == k).map(|p| p.2).collect();
            if v.is_empty() {
                String::new()
            } else {
                show(spread(v), 0, "")
            }
        };
        t += &format!(
            "| {label} ({}/s) | {} | {} | {} | {} |\n",
            show(rates, 0, ""),
            show(spread(pairs.iter().map(|p| p.1).collect()), 0, ""),
            kea_p99("kea"),
            kea_p99("kea-cache"),
            show(ratio, ratio_digits(ratio), "×"),
        );
    }
    if dagger {
        t += "\n† in at least one run this trial was generator-bound or lost 1 % or more: the \
              figure is not at a load the server sustained.\n";
    }
    t
}

/// How many trials measured the generator rather than a server.
fn generator_note(runs: &[Value]) -> String {
    let (mut total, mut bound) = (0usize, 0usize);
    for r in runs {
        for s in SERVERS {
            for scen in ["dora", "renew"] {
                // (Trials from before generator-bound detection have no
                // outcome: they cannot say.)
                let judged = r[s][scen]["trials"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|tr| tr["outcome"].is_string());
                for tr in judged {
                    total += 1;
                    if tr["outcome"] == "generator-bound" {
                        bound += 1;
                    }
                }
            }
        }
    }
    if total == 0 {
        return String::new();
    }
    format!(
        "\n{bound} of the {total} rate-search trials were generator-bound (the load generator sent \
         less than 98 % of the offered rate): they count as neither a pass nor a failure, and a \
         figure marked \"(generator)\" is the most the generator could show, not the server's limit.\n"
    )
}

/// Replaces the side-by-side section of docs/benchmarks.md and writes
/// docs/benchmarks.json.
pub fn write(root: &Path, table: &str, raw: &Value) -> Result<()> {
    write_section(
        root,
        (BEGIN, END),
        "irondhcp and Kea side by side",
        &format!("{table}\nRaw results: [benchmarks.json](benchmarks.json)."),
    )?;
    std::fs::write(
        root.join("docs/benchmarks.json"),
        serde_json::to_vec_pretty(raw)?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One run's results: rates (irondhcp's renewals generator-limited),
    /// equal-load reports with CPU µs per exchange and p99s.
    fn run(k: f64) -> Value {
        let search = |rate: f64, limit: &str| {
            json!({"rate": rate, "limit": limit, "lower_bound": limit != "server",
                   "report": {"exchanges": {"RENEW-ACK": {"latency_us": {"p99": 900.0 * k}},
                                             "REQUEST-ACK": {"latency_us": {"p99": 5000.0 * k}}}},
                   "trials": [{"outcome": "pass"}, {"outcome": if limit == "generator" {"generator-bound"} else {"FAIL"}}]})
        };
        let eq = |cpu: f64, p99: f64, bound: bool| {
            json!({"generator_bound": bound, "loss_ratio": 0.0,
                   "server_cpu": {"us_per_exchange": cpu, "cores": cpu * 8000.0 / 1e6},
                   "exchanges": {"RENEW-ACK": {"latency_us": {"p50": p99 / 4.0, "p99": p99}},
                                 "DISCOVER-OFFER": {"latency_us": {"p99": p99}},
                                 "REQUEST-ACK": {"latency_us": {"p50": p99 / 4.0, "p99": p99}}}})
        };
        json!({
            "irondhcp": {
                "dora": search(40_000.0 * k, "server"),
                "renew": search(300_000.0 * k, "generator"),
                "renew_at_kea_rate": {"rate": 31_000.0 * k, "kea": "kea-cache",
                    "report": {"exchanges": {"RENEW-ACK": {"latency_us": {"p99": 200.0}}}}},
            },
            "kea": {"dora": search(16_000.0, "server"), "renew": search(30_000.0 * k, "server")},
            "kea-cache": {"dora": search(15_000.0, "server"), "renew": search(31_000.0 * k, "server")},
            "equal_load": {
                "renew": {"rate": 8000.0, "irondhcp": eq(14.0 * k, 100.0, false),
                          "kea": eq(92.0, 2000.0, false), "kea-cache": eq(70.0, 1000.0, false)},
                "dora": {"rate": 4000.0, "irondhcp": eq(184.0, 5000.0, k > 1.05),
                         "kea": eq(155.0, 1000.0, false), "kea-cache": eq(160.0, 1000.0, false)},
            },
        })
    }

    fn results() -> Value {
        json!({"date": "2026-11-27 10:00 UTC", "machine": "2 cores", "command": "cargo xtask bench",
               "trial_secs": 5.0, "repeats": 3, "runs": [run(1.0), run(0.9), run(1.1)],
               "cross_check": {"relay": {"rate": 6000.0, "limit": "server"},
                               "perfdhcp": {"rate": 5800.0, "limit": "server"}}})
    }

    #[test]
    fn medians_ranges_and_lower_bounds() {
        let t = render(&results());
        assert!(t.contains("run 3 times"), "{t}");
        // Renewals: generator-limited in every run, the ratio a lower
        // bound against the better (cached) Kea: 300k / 31k in each run.
        assert!(
            t.contains("| renewals per second | ≥ 300000 (generator; 270000–330000) | 30000 (27000–33000) | 31000 (27900–34100) | ≥ 9.68× |"),
            "{t}"
        );
        // New leases against the faster Kea (16k): 2.5× (2.25–2.75×).
        assert!(
            t.contains("| 40000 (36000–44000) | 16000 | 15000 | 2.50× (2.25–2.75×) |"),
            "{t}"
        );
        // CPU per renewal against the cheaper Kea (70 µs).
        assert!(
            t.contains("| renewals at 8000/s: CPU-µs per renewal | 14.0 (12.6–15.4) | 92.0 | 70.0 | 0.20× (0.18–0.22×) |"),
            "{t}"
        );
        // A generator-bound equal-load trial is marked, and explained.
        assert!(
            t.contains("CPU-µs per new lease (DISCOVER + REQUEST) | 184.0 †"),
            "{t}"
        );
        assert!(t.contains("† in at least one run"), "{t}");
        assert!(
            t.contains("REQUEST→ACK p50 / p99 (µs) | 1250 / 5000 †"),
            "{t}"
        );
        // irondhcp at the cached Kea's highest renewal rate: p99 200 vs 900k.
        assert!(
            t.contains("at the better Kea's highest renewal rate (31000 (27900–34100)/s) | 200 |  | 900 (810–990) | 0.22× (0.20–0.25×) |"),
            "{t}"
        );
        // 3 runs × 3 servers × 2 searches × 2 trials, one in each irondhcp
        // renewal search generator-bound.
        assert!(
            t.contains("3 of the 36 rate-search trials were generator-bound"),
            "{t}"
        );
        assert!(t.contains("differ by 3.4 %"), "{t}");
    }

    #[test]
    fn a_file_from_before_repeats_still_renders() {
        let old = json!({"date": "d", "machine": "m", "command": "c", "trial_secs": 5.0,
            "irondhcp": {"dora": {"rate": 44000.0, "lower_bound": false,
                                  "trials": [{"rate": 1000.0, "loss_ratio": 0.0, "pass": true}]},
                         "renew": {"rate": 512000.0, "lower_bound": true}},
            "kea": {"dora": {"rate": 16000.0, "lower_bound": false},
                    "renew": {"rate": 31000.0, "lower_bound": false},
                    "relay": {"rate": 11500.0}, "perfdhcp": {"rate": 12000.0}}});
        let t = render(&old);
        assert!(t.contains("one run of the side-by-side"), "{t}");
        assert!(
            t.contains("| renewals per second | ≥ 512000 | 31000 | — | ≥ 16.52× |"),
            "{t}"
        );
        assert!(t.contains("perfdhcp found 12000 four-way"), "{t}");
        assert!(!t.contains("generator-bound"), "no verdicts to count: {t}");
        assert!(!t.contains("at equal offered load | irondhcp | Kea | Kea, cache 0.25 | irondhcp / better Kea |\n|---|---:|---:|---:|---:|\n|"));
    }

    #[test]
    fn spreads() {
        assert_eq!(spread(vec![]), None);
        assert_eq!(spread(vec![f64::NAN]), None);
        let s = spread(vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(spread(vec![4.0, 1.0]).unwrap().median, 2.5);
        assert_eq!(show(spread(vec![2.0]), 1, "×"), "2.0×");
        assert_eq!(show(spread(vec![2.0, 2.0]), 0, ""), "2");
        assert_eq!(
            show(spread(vec![1.0, 2.0, 4.0]), 2, "×"),
            "2.00× (1.00–4.00×)"
        );
    }
}
