//! `irondhcp-ctl pools`: how full each pool range is, in dhcpd-pools'
//! columns, and, given thresholds, one Nagios/Icinga status line with the
//! monitoring exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) so a
//! check can page before a pool runs dry.

use std::io::{self, Write};

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

#[derive(Args, Debug, Clone)]
pub struct PoolsArgs {
    /// Use at or above this percent is a WARNING (exit 1).
    #[arg(long)]
    pub warning: Option<f64>,
    /// Use at or above this percent is CRITICAL (exit 2).
    #[arg(long)]
    pub critical: Option<f64>,
    /// Table for people, JSON or CSV for programs.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// One pool range's use.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub subnet_id: u64,
    pub subnet: String,
    pub range: String,
    pub max: u64,
    pub current: u64,
    pub declined: u64,
    pub offered: u64,
    pub free: u64,
    /// Addresses that have had a lease at some time.
    pub touched: u64,
}

impl Row {
    /// Addresses in use (leased), percent of the range.
    pub fn percent(&self) -> f64 {
        if self.max == 0 {
            0.0
        } else {
            self.current as f64 * 100.0 / self.max as f64
        }
    }

    /// The row's columns, in order, the percentage with `decimals`: one
    /// list for the table and the CSV.
    fn fields(&self, decimals: usize) -> [String; 10] {
        [
            self.subnet_id.to_string(),
            self.subnet.clone(),
            self.range.clone(),
            self.max.to_string(),
            self.current.to_string(),
            format!("{:.*}", decimals, self.percent()),
            self.touched.to_string(),
            self.free.to_string(),
            self.declined.to_string(),
            self.offered.to_string(),
        ]
    }
}

/// The ranges of a `stats` answer.
pub fn rows(stats: &Value) -> Vec<Row> {
    let u = |v: &Value| v.as_u64().unwrap_or(0);
    let mut out = Vec::new();
    for p in stats["pools"].as_array().into_iter().flatten() {
        for r in p["ranges"].as_array().into_iter().flatten() {
            out.push(Row {
                subnet_id: u(&p["subnet_id"]),
                subnet: p["subnet"].as_str().unwrap_or("").to_string(),
                range: r["range"].as_str().unwrap_or("").to_string(),
                max: u(&r["total"]),
                current: u(&r["assigned"]),
                declined: u(&r["declined"]),
                offered: u(&r["offered"]),
                free: u(&r["free"]),
                touched: u(&r["touched"]),
            });
        }
    }
    out
}

/// The monitoring verdict: exit code and the status line (with perfdata
/// after `|`, one value per range: use %;warning;critical;0;100).
pub fn status(rows: &[Row], warning: Option<f64>, critical: Option<f64>) -> (u8, String) {
    if rows.is_empty() {
        return (
            3,
            "IRONDHCP POOLS UNKNOWN: the server has no pool ranges".into(),
        );
    }
    let level = |p: f64| {
        if critical.is_some_and(|c| p >= c) {
            2
        } else if warning.is_some_and(|w| p >= w) {
            1
        } else {
            0
        }
    };
    let worst = rows
        .iter()
        .max_by(|a, b| a.percent().total_cmp(&b.percent()))
        .expect("not empty");
    let code = level(worst.percent());
    let word = ["OK", "WARNING", "CRITICAL"][code as usize];
    let over: Vec<&Row> = rows.iter().filter(|r| level(r.percent()) > 0).collect();
    let what = if over.is_empty() {
        format!(
            "{} ranges, fullest {:.1} % (subnet {} {})",
            rows.len(),
            worst.percent(),
            worst.subnet_id,
            worst.range
        )
    } else {
        over.iter()
            .map(|r| format!("subnet {} {} at {:.1} %", r.subnet_id, r.range, r.percent()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let limit = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
    let perf: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "'{}'={:.1}%;{};{};0;100",
                r.range,
                r.percent(),
                limit(warning),
                limit(critical)
            )
        })
        .collect();
    (
        code,
        format!("IRONDHCP POOLS {word}: {what} | {}", perf.join(" ")),
    )
}

/// Writes the rows in `format`.
pub fn write(out: &mut impl Write, rows: &[Row], format: Format) -> io::Result<()> {
    match format {
        Format::Table => {
            writeln!(
                out,
                "{:<6} {:<18} {:<33} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                "subnet",
                "network",
                "range",
                "max",
                "current",
                "percent",
                "touched",
                "free",
                "declined",
                "offered"
            )?;
            for r in rows {
                let [id, net, range, max, cur, pct, touched, free, declined, offered] = r.fields(1);
                writeln!(
                    out,
                    "{id:<6} {net:<18} {range:<33} {max:>8} {cur:>8} {:>8} {touched:>8} {free:>8} {declined:>8} {offered:>8}",
                    format!("{pct}%")
                )?;
            }
            let (max, cur) = rows
                .iter()
                .fold((0, 0), |(m, c), r| (m + r.max, c + r.current));
            let pct = if max == 0 {
                0.0
            } else {
                cur as f64 * 100.0 / max as f64
            };
            writeln!(
                out,
                "{:<6} {:<18} {:<33} {:>8} {:>8} {:>7.1}%",
                "all", "", "", max, cur, pct
            )
        }
        Format::Csv => {
            writeln!(
                out,
                "subnet_id,subnet,range,max,current,percent,touched,free,declined,offered"
            )?;
            for r in rows {
                writeln!(out, "{}", r.fields(2).join(","))?;
            }
            Ok(())
        }
        Format::Json => {
            let v: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "subnet_id": r.subnet_id, "subnet": r.subnet, "range": r.range,
                        "max": r.max, "current": r.current,
                        "percent": (r.percent() * 100.0).round() / 100.0,
                        "touched": r.touched, "free": r.free, "declined": r.declined, "offered": r.offered,
                    })
                })
                .collect();
            writeln!(out, "{}", Value::Array(v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> Value {
        json!({"pools": [
            {"subnet_id": 1, "subnet": "10.0.0.0/24", "ranges": [
                {"range": "10.0.0.10-10.0.0.109", "total": 100, "assigned": 85, "declined": 1, "offered": 2, "free": 12, "touched": 90},
                {"range": "10.0.0.200-10.0.0.249", "total": 50, "assigned": 10, "declined": 0, "offered": 0, "free": 40}]},
            {"subnet_id": 2, "subnet": "10.0.1.0/24", "ranges": [
                {"range": "10.0.1.10-10.0.1.29", "total": 20, "assigned": 19, "declined": 0, "offered": 0, "free": 1}]}
        ]})
    }

    #[test]
    fn thresholds_give_the_monitoring_exit_code_and_one_line() {
        let rows = rows(&stats());
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].percent(), 85.0);
        let (code, line) = status(&rows, Some(80.0), Some(90.0));
        assert_eq!(code, 2, "{line}");
        assert!(
            line.starts_with("IRONDHCP POOLS CRITICAL: subnet 1 10.0.0.10-10.0.0.109 at 85.0 %, subnet 2 10.0.1.10-10.0.1.29 at 95.0 % | "),
            "{line}"
        );
        assert!(
            line.contains("'10.0.1.10-10.0.1.29'=95.0%;80;90;0;100"),
            "{line}"
        );
        assert_eq!(status(&rows, Some(80.0), Some(96.0)).0, 1);
        let (ok, line) = status(&rows, Some(96.0), None);
        assert_eq!(ok, 0);
        assert!(
            line.starts_with(
                "IRONDHCP POOLS OK: 3 ranges, fullest 95.0 % (subnet 2 10.0.1.10-10.0.1.29) | "
            ),
            "{line}"
        );
        assert_eq!(status(&[], Some(1.0), None).0, 3);
        assert_eq!(line.lines().count(), 1);
    }

    #[test]
    fn csv_and_table_carry_every_range() {
        let rows = rows(&stats());
        let mut csv = Vec::new();
        write(&mut csv, &rows, Format::Csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert_eq!(csv.lines().count(), 4);
        assert_eq!(
            csv.lines().nth(1).unwrap(),
            "1,10.0.0.0/24,10.0.0.10-10.0.0.109,100,85,85.00,90,12,1,2"
        );
        let mut table = Vec::new();
        write(&mut table, &rows, Format::Table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert_eq!(table.lines().count(), 5);
        // The sum line: 114 of 170 in use.
        let all = table.lines().last().unwrap();
        assert!(
            all.starts_with("all") && all.contains(" 170 ") && all.contains(" 114 "),
            "{all}"
        );
        assert!(all.ends_with("67.1%"), "{all}");
        let mut js = Vec::new();
        write(&mut js, &rows, Format::Json).unwrap();
        let v: Value = serde_json::from_slice(&js).unwrap();
        assert_eq!(v[2]["percent"], 95.0);
    }
}
