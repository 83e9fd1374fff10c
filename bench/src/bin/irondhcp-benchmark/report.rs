//! The side-by-side table, and writing it into docs/benchmarks.md (between
//! markers, so the rest of the page is kept) with the raw JSON beside it.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

const BEGIN: &str = "<!-- BEGIN side-by-side (written by cargo xtask bench) -->";
const END: &str = "<!-- END side-by-side -->";

pub fn utc_now() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "—".into()
    }
}

fn lat(report: &Value, exchange: &str, q: &str) -> f64 {
    f(&report["exchanges"][exchange]["latency_us"][q])
}

/// Markdown for the results.
pub fn render(r: &Value) -> String {
    let mut t = String::new();
    let i = &r["irondhcp"];
    let k = &r["kea"];
    t += &format!(
        "Measured {} on {} by `{}` ({} s per trial; irondhcp with its embedded SQLite store, Kea 2.2 \
         kea-dhcp4 multi-threaded with memfile, persist on; both on the same veth testbed, AF_XDP copy \
         mode for irondhcp and the load generator).\n\n",
        r["date"].as_str().unwrap_or(""),
        r["machine"].as_str().unwrap_or(""),
        r["command"].as_str().unwrap_or(""),
        f(&r["trial_secs"])
    );
    t += "| metric (highest rate with < 1 % loss) | irondhcp | Kea | irondhcp / Kea |\n|---|---:|---:|---:|\n";
    let (id, kd) = (f(&i["dora"]["rate"]), f(&k["dora"]["rate"]));
    let (ir, kr) = (f(&i["renew"]["rate"]), f(&k["renew"]["rate"]));
    // "≥": the search reached its cap without a failure.
    let at_least = |v: &Value| if v["lower_bound"] == true { "≥ " } else { "" };
    t += &format!(
        "| new leases per second (dora, durable before ACK) | {}{id:.0} | {}{kd:.0} | {}{} |\n",
        at_least(&i["dora"]),
        at_least(&k["dora"]),
        at_least(&i["dora"]),
        ratio(id, kd)
    );
    t += &format!(
        "| renewals per second | {}{ir:.0} | {}{kr:.0} | {}{} |\n",
        at_least(&i["renew"]),
        at_least(&k["renew"]),
        at_least(&i["renew"]),
        ratio(ir, kr)
    );
    for (name, scen, ex) in [
        ("DISCOVER→OFFER", "dora", "DISCOVER-OFFER"),
        ("REQUEST→ACK", "dora", "REQUEST-ACK"),
        ("RENEW→ACK", "renew", "RENEW-ACK"),
    ] {
        for q in ["p50", "p99"] {
            let (a, b) = (
                lat(&i[scen]["report"], ex, q),
                lat(&k[scen]["report"], ex, q),
            );
            t += &format!(
                "| {name} {q} latency at that rate (µs) | {a:.0} | {b:.0} | {} |\n",
                ratio(a, b)
            );
        }
    }
    let same = &i["renew_at_kea_rate"];
    if !same.is_null() {
        let p99 = lat(&same["report"], "RENEW-ACK", "p99");
        let kp50 = lat(&k["renew"]["report"], "RENEW-ACK", "p50");
        t += &format!(
            "| RENEW→ACK at Kea's highest renewal rate ({:.0}/s): irondhcp p99 vs Kea p50 (µs) | {p99:.0} | {kp50:.0} | {} |\n",
            f(&same["rate"]),
            ratio(p99, kp50)
        );
    }
    let pd = f(&k["perfdhcp"]["rate"]);
    let lr = f(&k["relay"]["rate"]);
    if pd > 0.0 {
        t += &format!(
            "\nCross-check on Kea (pinned to core 0, the generator to core 1), both tools as a relay \
             (perfdhcp's only mode), same search: perfdhcp found \
             {pd:.0} four-way exchanges/s with < 1 % loss, irondhcp-loadgen {lr:.0}/s; they differ by {:.1} % \
             (target: within 15 %).\n",
            ((lr - pd) / pd * 100.0).abs()
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

/// Replaces the side-by-side section of docs/benchmarks.md and writes
/// docs/benchmarks.json.
pub fn write(root: &Path, table: &str, raw: &Value) -> Result<()> {
    let md = root.join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&md).unwrap_or_else(|_| "# Benchmarks\n".into());
    let section =
        format!("{BEGIN}\n{table}\nRaw results: [benchmarks.json](benchmarks.json).\n{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(b)) if a < b => format!("{}{}{}", &old[..a], section, &old[b + END.len()..]),
        _ => format!(
            "{}\n## irondhcp and Kea side by side\n\n{section}\n",
            old.trim_end()
        ),
    };
    std::fs::write(&md, new).with_context(|| format!("write {}", md.display()))?;
    std::fs::write(
        root.join("docs/benchmarks.json"),
        serde_json::to_vec_pretty(raw)?,
    )?;
    Ok(())
}
