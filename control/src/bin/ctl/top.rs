//! `irondhcp-ctl top`: a live terminal view for an operator who would
//! rather look than read: pool use as bars, packets per second by type,
//! drops, commits and their latency, redrawn every interval from two
//! readings of `stats` (rates are the difference over the interval).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::leases::Failure;

/// Width of a pool's bar, in characters.
const BAR: usize = 30;

/// Redraws until interrupted (`count` frames when given).
pub fn run(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    every: Duration,
    count: Option<u64>,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut prev: Option<(Value, Instant)> = None;
    let mut drawn = 0u64;
    loop {
        let now = crate::client::call(rt, socket, "stats", Value::Null).map_err(Failure::Daemon)?;
        let at = Instant::now();
        let dt = prev
            .as_ref()
            .map(|(_, t)| at.duration_since(*t).as_secs_f64());
        let screen = render(prev.as_ref().map(|(v, _)| v), &now, dt, every);
        // Home and clear, then the frame: one write, so it never flickers
        // half-drawn.
        write!(out, "\x1b[H\x1b[2J{screen}").map_err(Failure::Output)?;
        out.flush().map_err(Failure::Output)?;
        drawn += 1;
        if count.is_some_and(|c| drawn >= c) {
            return Ok(());
        }
        prev = Some((now, at));
        std::thread::sleep(every);
    }
}

/// One frame: `now`, with rates against `prev` taken `dt` seconds before.
pub fn render(prev: Option<&Value>, now: &Value, dt: Option<f64>, every: Duration) -> String {
    let mut s = String::new();
    let u = |v: &Value| v.as_u64().unwrap_or(0);
    let rate = |ptr: &str| -> String {
        match (prev, dt) {
            (Some(p), Some(dt)) if dt > 0.0 => {
                let d = u(&now.pointer(ptr).cloned().unwrap_or_default())
                    .saturating_sub(u(&p.pointer(ptr).cloned().unwrap_or_default()));
                format!("{:.0}", d as f64 / dt)
            }
            _ => "-".into(),
        }
    };
    s += &format!(
        "irondhcp top: server {}, every {:.1} s (Ctrl-C quits)\n\n",
        now["server_id"].as_str().unwrap_or("?"),
        every.as_secs_f64()
    );
    s += "POOLS\n";
    for p in now["pools"].as_array().into_iter().flatten() {
        for r in p["ranges"].as_array().into_iter().flatten() {
            let (total, used) = (u(&r["total"]), u(&r["assigned"]) + u(&r["declined"]));
            let pct = if total == 0 {
                0.0
            } else {
                used as f64 * 100.0 / total as f64
            };
            let filled = ((pct / 100.0) * BAR as f64).round() as usize;
            s += &format!(
                "  {:<4} {:<28} [{}{}] {:>5.1}% {:>9}/{}\n",
                p["subnet_id"].to_string(),
                r["range"].as_str().unwrap_or(""),
                "#".repeat(filled.min(BAR)),
                ".".repeat(BAR - filled.min(BAR)),
                pct,
                used,
                total
            );
        }
    }
    s += "\nPACKETS PER SECOND\n";
    let types = |dir: &str, names: &[&str]| -> String {
        names
            .iter()
            .map(|n| format!("{n} {}", rate(&format!("/packets/{dir}/{n}"))))
            .collect::<Vec<_>>()
            .join("  ")
    };
    s += &format!(
        "  received  {}\n",
        types(
            "received",
            &["discover", "request", "release", "decline", "inform"]
        )
    );
    s += &format!("  sent      {}\n", types("sent", &["offer", "ack", "nak"]));
    s += &format!(
        "  answered from memory {}  to the control plane {}\n",
        rate("/packets/answered_from_map"),
        rate("/packets/to_control")
    );
    s += &format!(
        "\nDROPS PER SECOND  {}  (total {})\n",
        rate("/packets/drops_total"),
        u(&now["packets"]["drops_total"])
    );
    let afxdp: u64 = now["queues"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| u(&q["rx_dropped"]) + u(&q["rx_ring_full"]))
        .sum();
    s += &format!("  AF_XDP sockets dropped {afxdp} in all\n");
    let (p50, p99) = latency(prev, now);
    s += &format!(
        "\nCOMMITS PER SECOND  {}  latency p50 {}  p99 {}  write-behind {} (lag {:.1} s)\n",
        commits_rate(prev, now, dt),
        p50,
        p99,
        u(&now["control"]["write_behind_pending"]),
        u(&now["control"]["write_behind_lag_ms"]) as f64 / 1e3
    );
    s
}

/// Transactions per second over the interval.
fn commits_rate(prev: Option<&Value>, now: &Value, dt: Option<f64>) -> String {
    let count = |v: &Value| -> u64 {
        v["commit_batch"]["counts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .sum()
    };
    match (prev, dt) {
        (Some(p), Some(dt)) if dt > 0.0 => {
            format!("{:.0}", count(now).saturating_sub(count(p)) as f64 / dt)
        }
        _ => "-".into(),
    }
}

/// The p50 and p99 commit latency over the interval (a bucket's upper
/// bound), from the difference of two histogram readings.
fn latency(prev: Option<&Value>, now: &Value) -> (String, String) {
    let counts = |v: &Value| -> Vec<u64> {
        v["commit_latency_us"]["counts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect()
    };
    let bounds: Vec<u64> = now["commit_latency_us"]["bounds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
    let (a, b) = (prev.map(counts).unwrap_or_default(), counts(now));
    let delta: Vec<u64> = b
        .iter()
        .enumerate()
        .map(|(i, n)| n.saturating_sub(a.get(i).copied().unwrap_or(0)))
        .collect();
    let total: u64 = delta.iter().sum();
    let q = |f: f64| -> String {
        if total == 0 {
            return "-".into();
        }
        let want = (total as f64 * f).ceil() as u64;
        let mut seen = 0;
        for (i, n) in delta.iter().enumerate() {
            seen += n;
            if seen >= want {
                return match bounds.get(i) {
                    Some(us) => format!("≤{:.1} ms", *us as f64 / 1e3),
                    None => format!(
                        ">{:.1} ms",
                        bounds.last().copied().unwrap_or(0) as f64 / 1e3
                    ),
                };
            }
        }
        "-".into()
    };
    (q(0.5), q(0.99))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stats(discovers: u64, latency: [u64; 3]) -> Value {
        json!({
            "server_id": "s1",
            "pools": [{"subnet_id": 1, "ranges": [{"range": "10.0.0.10-10.0.0.109", "total": 100, "assigned": 50, "declined": 0}]}],
            "packets": {"received": {"discover": discovers}, "sent": {}, "drops_total": 0, "answered_from_map": 0, "to_control": 0},
            "queues": [],
            "control": {"write_behind_pending": 0, "write_behind_lag_ms": 0},
            "commit_batch": {"bounds": [1], "counts": [latency.iter().sum::<u64>(), 0], "sum": 0},
            "commit_latency_us": {"bounds": [1000, 10000], "counts": latency, "sum": 0},
        })
    }

    #[test]
    fn a_frame_shows_bars_rates_and_latency() {
        let a = stats(100, [0, 0, 0]);
        let b = stats(300, [10, 90, 0]);
        let f = render(Some(&a), &b, Some(2.0), Duration::from_secs(2));
        assert!(
            f.contains(&format!("[{}{}]  50.0%", "#".repeat(15), ".".repeat(15))),
            "{f}"
        );
        assert!(f.contains("discover 100"), "{f}");
        assert!(f.contains("COMMITS PER SECOND  50"), "{f}");
        assert!(f.contains("p50 ≤10.0 ms  p99 ≤10.0 ms"), "{f}");
        let first = render(None, &b, None, Duration::from_secs(2));
        assert!(
            first.contains("discover -") && first.contains("p50 ≤10.0 ms"),
            "{first}"
        );
    }
}
