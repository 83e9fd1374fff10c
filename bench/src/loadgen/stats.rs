//! Counters, latency histograms and the final report (JSON and table).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::scenario::ExType;

/// Latencies are recorded in microseconds, 1 µs .. 60 s, 3 significant digits.
const HIST_LOW: u64 = 1;
const HIST_HIGH: u64 = 60_000_000;
const HIST_SIGFIG: u8 = 3;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(HIST_LOW, HIST_HIGH, HIST_SIGFIG).expect("valid histogram bounds")
}

/// Counters of one exchange type.
#[derive(Clone)]
pub struct TypeStats {
    /// Exchanges started (first transmissions).
    pub sent: u64,
    pub answered: u64,
    pub lost: u64,
    pub naks: u64,
    pub invalid: u64,
    pub duplicates: u64,
    /// From the first transmission to the answer, in µs.
    pub hist: Histogram<u64>,
}

impl Default for TypeStats {
    fn default() -> Self {
        Self {
            sent: 0,
            answered: 0,
            lost: 0,
            naks: 0,
            invalid: 0,
            duplicates: 0,
            hist: histogram(),
        }
    }
}

impl TypeStats {
    /// Records an answer `ns` after the first transmission. Never allocates:
    /// the histogram covers its whole range from the start, out-of-range
    /// values are clamped.
    #[inline]
    pub fn answer(&mut self, ns: u64) {
        self.answered += 1;
        self.hist.saturating_record((ns / 1000).max(HIST_LOW));
    }

    fn merge(&mut self, o: &TypeStats) {
        self.sent += o.sent;
        self.answered += o.answered;
        self.lost += o.lost;
        self.naks += o.naks;
        self.invalid += o.invalid;
        self.duplicates += o.duplicates;
        // Same bounds on both sides: cannot fail.
        let _ = self.hist.add(&o.hist);
    }
}

/// Everything one thread counted during one phase.
#[derive(Clone, Default)]
pub struct Stats {
    pub types: [TypeStats; ExType::COUNT],
    /// Four-way exchanges that got their ACK.
    pub dora_completed: u64,
    /// Retransmissions (not counted in `sent`).
    pub retransmits: u64,
    /// Replies that matched a client and its xid, but no exchange waiting
    /// for that message (e.g. the answer to a retransmission after the first
    /// answer arrived).
    pub late: u64,
    /// Frames that could not be queued for transmission (TX ring full).
    pub tx_errors: u64,
    /// Scheduled exchanges not sent because no client was in the needed
    /// state (no bound client left to renew or release).
    pub skipped: u64,
    /// Longest the send schedule ran behind (a generator-side limit when
    /// large), in ns.
    pub max_lag_ns: u64,
}

impl Stats {
    #[inline]
    pub fn of(&mut self, t: ExType) -> &mut TypeStats {
        &mut self.types[t.index()]
    }

    pub fn merge(&mut self, o: &Stats) {
        for (a, b) in self.types.iter_mut().zip(&o.types) {
            a.merge(b);
        }
        self.dora_completed += o.dora_completed;
        self.retransmits += o.retransmits;
        self.late += o.late;
        self.tx_errors += o.tx_errors;
        self.skipped += o.skipped;
        self.max_lag_ns = self.max_lag_ns.max(o.max_lag_ns);
    }

    /// The report of a run whose send phase lasted `duration_s`.
    pub fn report(&self, head: ReportHead, types: &[ExType], duration_s: f64) -> Report {
        let per_s = |n: u64| {
            if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            }
        };
        let mut exchanges = BTreeMap::new();
        let (mut lost, mut sent) = (0u64, 0u64);
        for &t in types {
            let s = &self.types[t.index()];
            if t.timed() {
                lost += s.lost;
                sent += s.sent;
            }
            let h = &s.hist;
            let q = |p: f64| {
                if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(p)
                }
            };
            exchanges.insert(
                t.name().to_owned(),
                ExchangeReport {
                    sent: s.sent,
                    answered: s.answered,
                    lost: s.lost,
                    naks: s.naks,
                    invalid: s.invalid,
                    duplicates: s.duplicates,
                    // RELEASE has no answer: its throughput is what was sent.
                    per_s: per_s(if t.timed() { s.answered } else { s.sent }),
                    latency_us: Latency {
                        p50: q(0.5),
                        p90: q(0.9),
                        p99: q(0.99),
                        p999: q(0.999),
                        max: if h.is_empty() { 0 } else { h.max() },
                    },
                },
            );
        }
        Report {
            scenario: head.scenario,
            io: head.io,
            rate: head.rate,
            duration_s,
            clients: head.clients,
            exchanges,
            dora_per_s: per_s(self.dora_completed),
            loss_ratio: if sent > 0 {
                lost as f64 / sent as f64
            } else {
                0.0
            },
            extra: Extra {
                retransmits: self.retransmits,
                late: self.late,
                tx_errors: self.tx_errors,
                skipped: self.skipped,
                max_lag_ns: self.max_lag_ns,
                dora_completed: self.dora_completed,
            },
        }
    }
}

/// The fields of the report that do not come from the counters.
pub struct ReportHead {
    pub scenario: String,
    pub io: String,
    pub rate: f64,
    pub clients: u64,
}

/// The run's result; serialises to the JSON the benchmark driver parses.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub io: String,
    /// Offered rate, exchanges per second.
    pub rate: f64,
    /// Length of the send phase.
    pub duration_s: f64,
    pub clients: u64,
    pub exchanges: BTreeMap<String, ExchangeReport>,
    pub dora_per_s: f64,
    pub loss_ratio: f64,
    /// Shown in the table, not part of the JSON.
    #[serde(skip)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default)]
pub struct Extra {
    pub retransmits: u64,
    pub late: u64,
    pub tx_errors: u64,
    pub skipped: u64,
    pub max_lag_ns: u64,
    pub dora_completed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExchangeReport {
    pub sent: u64,
    pub answered: u64,
    pub lost: u64,
    pub naks: u64,
    pub invalid: u64,
    pub duplicates: u64,
    pub per_s: f64,
    pub latency_us: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("the report serialises")
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "scenario {}  io {}  offered {:.0}/s  send phase {:.2} s  clients {}",
            self.scenario, self.io, self.rate, self.duration_s, self.clients
        );
        let _ = writeln!(
            s,
            "{:<15} {:>10} {:>10} {:>8} {:>6} {:>7} {:>5} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "exchange",
            "sent",
            "answered",
            "lost",
            "naks",
            "invalid",
            "dups",
            "per_s",
            "p50_us",
            "p90_us",
            "p99_us",
            "p999_us",
            "max_us"
        );
        // In exchange order (DISCOVER-OFFER before REQUEST-ACK, …).
        let rows = ExType::ALL
            .iter()
            .filter_map(|t| self.exchanges.get_key_value(t.name()));
        for (name, e) in rows {
            let l = &e.latency_us;
            let _ = writeln!(
                s,
                "{:<15} {:>10} {:>10} {:>8} {:>6} {:>7} {:>5} {:>10.1} {:>8} {:>8} {:>8} {:>8} {:>9}",
                name, e.sent, e.answered, e.lost, e.naks, e.invalid, e.duplicates, e.per_s, l.p50, l.p90, l.p99, l.p999, l.max
            );
        }
        let x = &self.extra;
        let _ = writeln!(
            s,
            "DORA completed {} ({:.1}/s)  loss ratio {:.4}  retransmits {}  late replies {}  tx errors {}  skipped {}  max send lag {:.1} ms",
            x.dora_completed, self.dora_per_s, self.loss_ratio, x.retransmits, x.late, x.tx_errors, x.skipped, x.max_lag_ns as f64 / 1e6
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> ReportHead {
        ReportHead {
            scenario: "dora".into(),
            io: "xdp".into(),
            rate: 500.0,
            clients: 1000,
        }
    }

    #[test]
    fn report_json_has_exactly_the_documented_shape() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        for (s, base) in [(&mut a, 0u64), (&mut b, 500)] {
            let d = s.of(ExType::DiscoverOffer);
            d.sent = 500;
            for i in 0..500 {
                d.answer((base + i) * 1000);
            }
            let r = s.of(ExType::RequestAck);
            r.sent = 500;
            r.lost = 5;
            r.naks = 1;
            for _ in 0..494 {
                r.answer(2_000_000);
            }
            s.dora_completed = 494;
        }
        a.merge(&b);
        let rep = a.report(head(), &[ExType::DiscoverOffer, ExType::RequestAck], 2.0);
        let v: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
        let keys = |v: &serde_json::Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(&v),
            [
                "clients",
                "dora_per_s",
                "duration_s",
                "exchanges",
                "io",
                "loss_ratio",
                "rate",
                "scenario"
            ]
        );
        assert_eq!(keys(&v["exchanges"]), ["DISCOVER-OFFER", "REQUEST-ACK"]);
        let d = &v["exchanges"]["DISCOVER-OFFER"];
        assert_eq!(
            keys(d),
            [
                "answered",
                "duplicates",
                "invalid",
                "latency_us",
                "lost",
                "naks",
                "per_s",
                "sent"
            ]
        );
        assert_eq!(keys(&d["latency_us"]), ["max", "p50", "p90", "p99", "p999"]);
        assert!(v["scenario"].is_string() && v["io"].is_string());
        assert!(v["rate"].is_f64() && v["duration_s"].is_f64() && v["dora_per_s"].is_f64());
        assert!(v["clients"].is_u64() && d["sent"].is_u64() && d["latency_us"]["p50"].is_u64());
        assert_eq!(d["sent"], 1000);
        assert_eq!(d["answered"], 1000);
        assert_eq!(d["per_s"], 500.0);
        // 0..999 µs uniformly: the median near 0.5 ms, max near 1 ms.
        let p50 = d["latency_us"]["p50"].as_u64().unwrap();
        assert!((495..=505).contains(&p50), "{p50}");
        let max = d["latency_us"]["max"].as_u64().unwrap();
        assert!((995..=1000).contains(&max), "{max}");
        let r = &v["exchanges"]["REQUEST-ACK"];
        let p99 = r["latency_us"]["p99"].as_u64().unwrap();
        assert!((1998..=2002).contains(&p99), "{p99}");
        assert_eq!(r["lost"], 10);
        assert_eq!(v["dora_per_s"], 494.0);
        assert!((v["loss_ratio"].as_f64().unwrap() - 10.0 / 2000.0).abs() < 1e-12);
        assert!(rep.table().contains("REQUEST-ACK"));
    }

    #[test]
    fn release_counts_sent_and_empty_histograms_report_zero() {
        let mut s = Stats::default();
        s.of(ExType::Release).sent = 300;
        let rep = s.report(head(), &[ExType::Release], 3.0);
        let e = &rep.exchanges["RELEASE"];
        assert_eq!(e.per_s, 100.0);
        assert_eq!((e.latency_us.p50, e.latency_us.max), (0, 0));
        assert_eq!(rep.loss_ratio, 0.0);
        // Out-of-range latencies are clamped, not dropped.
        let mut t = TypeStats::default();
        t.answer(0);
        t.answer(3_600_000_000_000);
        assert_eq!(t.answered, 2);
        assert_eq!(t.hist.len(), 2);
    }
}
