//! Counters, latency histograms and the final report (JSON and table).
//!
//! Rates are answers divided by the time the generator actually spent
//! sending ([`SendPhase`]), not by the nominal `--duration`: a generator
//! that fell behind its schedule keeps sending past the nominal end, and
//! dividing by the nominal length would report more than the server did.
//! A run whose achieved send rate fell short of the offered one by more
//! than [`GENERATOR_BOUND_SHORTFALL`] is marked generator-bound: it
//! measured the generator, not the server.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::cpu::ServerCpu;
use super::scenario::{ExType, Scenario};

/// How far (as a fraction) the achieved send rate may fall below the
/// offered one before the run is generator-bound.
pub const GENERATOR_BOUND_SHORTFALL: f64 = 0.02;

/// When the new exchanges of a phase were transmitted (first transmissions
/// of DISCOVERs, renewals, rebinds and RELEASEs; not the REQUEST of a DORA,
/// not retransmissions, not frames the TX ring refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendTimes {
    pub count: u64,
    /// Generator clock, ns (u64::MAX: none yet).
    pub first_ns: u64,
    pub last_ns: u64,
}

impl Default for SendTimes {
    fn default() -> Self {
        Self {
            count: 0,
            first_ns: u64::MAX,
            last_ns: 0,
        }
    }
}

impl SendTimes {
    #[inline]
    pub fn record(&mut self, now_ns: u64) {
        self.count += 1;
        self.first_ns = self.first_ns.min(now_ns);
        self.last_ns = self.last_ns.max(now_ns);
    }

    pub fn merge(&mut self, o: &SendTimes) {
        self.count += o.count;
        self.first_ns = self.first_ns.min(o.first_ns);
        self.last_ns = self.last_ns.max(o.last_ns);
    }
}

/// The send phase as it happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendPhase {
    /// Time spent sending: first to last new exchange, plus one mean gap
    /// between two (so that N exchanges sent exactly on an offered rate r
    /// last N / r, the nominal duration). s.
    pub seconds: f64,
    /// New exchanges transmitted per second over that time.
    pub achieved_rate: f64,
    /// The generator did not keep up with the offered rate.
    pub generator_bound: bool,
}

impl SendPhase {
    /// From the send times of a run offered at `offered`/s. `skipped`
    /// exchanges (due, but no bound client to use: the server NAKed it)
    /// count as kept on schedule, since the generator was not the reason
    /// they were not sent. `fallback_s` is the length used when fewer than
    /// two exchanges went out at distinct times (no rate can be measured
    /// from them; the nominal duration, or the wall time).
    pub fn measure(offered: f64, sends: &SendTimes, skipped: u64, fallback_s: f64) -> Self {
        let n = sends.count;
        let span_ns = sends.last_ns.saturating_sub(sends.first_ns);
        let (seconds, achieved_rate) = if n >= 2 && sends.first_ns != u64::MAX && span_ns > 0 {
            let achieved = (n - 1) as f64 / (span_ns as f64 / 1e9);
            (n as f64 / achieved, achieved)
        } else if fallback_s > 0.0 {
            (fallback_s, n as f64 / fallback_s)
        } else {
            (0.0, 0.0)
        };
        let kept = if seconds > 0.0 {
            (n + skipped) as f64 / seconds
        } else {
            0.0
        };
        let generator_bound =
            offered > 0.0 && seconds > 0.0 && kept < offered * (1.0 - GENERATOR_BOUND_SHORTFALL);
        Self {
            seconds,
            achieved_rate,
            generator_bound,
        }
    }
}

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
    /// When new exchanges went out.
    pub sends: SendTimes,
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
        self.sends.merge(&o.sends);
    }

    /// The report of a run; rates are per second of the measured send
    /// phase (`fallback_s`: see [`SendPhase::measure`]).
    pub fn report(&self, head: ReportHead, types: &[ExType], fallback_s: f64) -> Report {
        let phase = SendPhase::measure(head.rate, &self.sends, self.skipped, fallback_s);
        let duration_s = phase.seconds;
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
            achieved_rate: phase.achieved_rate,
            generator_bound: phase.generator_bound,
            duration_s,
            nominal_duration_s: head.nominal_duration_s,
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
            server_cpu: None,
            rx_dropped: None,
        }
    }
}

/// The fields of the report that do not come from the counters.
pub struct ReportHead {
    pub scenario: String,
    pub io: String,
    pub rate: f64,
    /// `--duration` (None with `--count`).
    pub nominal_duration_s: Option<f64>,
    pub clients: u64,
}

/// The run's result; serialises to the JSON the benchmark driver parses.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub io: String,
    /// Offered rate, exchanges per second.
    pub rate: f64,
    /// New exchanges actually transmitted per second of the send phase.
    pub achieved_rate: f64,
    /// The achieved rate fell short of the offered one by more than
    /// [`GENERATOR_BOUND_SHORTFALL`]: the run measured the generator.
    pub generator_bound: bool,
    /// Length of the send phase as measured ([`SendPhase::seconds`]); every
    /// `per_s` divides by it.
    pub duration_s: f64,
    /// `--duration`, or null with `--count`.
    pub nominal_duration_s: Option<f64>,
    pub clients: u64,
    pub exchanges: BTreeMap<String, ExchangeReport>,
    pub dora_per_s: f64,
    pub loss_ratio: f64,
    /// CPU time of `--server-pid` over the send phase (null without it, or
    /// when the process could not be read).
    pub server_cpu: Option<ServerCpu>,
    /// Replies the generator's own sockets dropped in the timed phase
    /// (receive ring full, no free buffer): counted lost, but lost by the
    /// generator. Null where the socket type does not report it
    /// (AF_PACKET).
    pub rx_dropped: Option<u64>,
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

    /// Exchanges the server completed: answered renewals and rebinds, a
    /// DORA's ACK (a DORA counts once), sent RELEASEs (they have no answer),
    /// and in a `discover` run the OFFERs (no REQUEST follows them).
    pub fn exchanges_done(&self) -> u64 {
        let offers_complete = self.scenario == Scenario::Discover.name();
        self.exchanges
            .iter()
            .map(|(name, e)| match name.as_str() {
                n if n == ExType::DiscoverOffer.name() => {
                    if offers_complete {
                        e.answered
                    } else {
                        0
                    }
                }
                n if n == ExType::Release.name() => e.sent,
                _ => e.answered,
            })
            .sum()
    }

    /// The first line of the table: offered and achieved rate.
    fn headline(&self) -> String {
        let nominal = match self.nominal_duration_s {
            Some(d) if (d - self.duration_s).abs() >= 0.005 => format!(" (nominal {d:.2} s)"),
            _ => String::new(),
        };
        let bound = if self.generator_bound {
            format!(
                "  GENERATOR-BOUND ({:.1} % short of the offered rate: these figures measure the generator, not the server)",
                (1.0 - self.achieved_rate / self.rate) * 100.0
            )
        } else {
            String::new()
        };
        format!(
            "scenario {}  io {}  offered {:.0}/s  achieved {:.0}/s  send phase {:.2} s{nominal}  clients {}{bound}",
            self.scenario, self.io, self.rate, self.achieved_rate, self.duration_s, self.clients
        )
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}", self.headline());
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
            "DORA completed {} ({:.1}/s)  loss ratio {:.4}  retransmits {}  late replies {}  tx errors {}  rx dropped by the generator {}  skipped {}  max send lag {:.1} ms",
            x.dora_completed, self.dora_per_s, self.loss_ratio, x.retransmits, x.late, x.tx_errors,
            self.rx_dropped.map_or_else(|| "n/a".to_owned(), |n| n.to_string()), x.skipped, x.max_lag_ns as f64 / 1e6
        );
        if let Some(c) = &self.server_cpu {
            let per = c
                .us_per_exchange
                .map_or_else(|| "-".to_owned(), |u| format!("{u:.1}"));
            let _ = writeln!(
                s,
                "server pid {}: {:.3} CPU-s in {:.2} s ({:.2} cores), {per} CPU-µs per exchange ({} exchanges)",
                c.pid,
                c.cpu_us as f64 / 1e6,
                c.window_s,
                c.cores,
                c.exchanges
            );
        }
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
            nominal_duration_s: Some(2.0),
            clients: 1000,
        }
    }

    /// `n` sends evenly spaced `gap_ns` apart from `first_ns`.
    fn sends(n: u64, first_ns: u64, gap_ns: u64) -> SendTimes {
        let mut t = SendTimes::default();
        for k in 0..n {
            t.record(first_ns + k * gap_ns);
        }
        t
    }

    #[test]
    fn an_on_schedule_run_lasts_its_nominal_duration() {
        // 1,000 exchanges at 500/s: sent from t0 to t0 + 999 × 2 ms.
        let p = SendPhase::measure(500.0, &sends(1000, 7_000_000_000, 2_000_000), 0, 99.0);
        assert!((p.seconds - 2.0).abs() < 1e-9, "{p:?}");
        assert!((p.achieved_rate - 500.0).abs() < 1e-9, "{p:?}");
        assert!(!p.generator_bound);
    }

    #[test]
    fn a_generator_that_fell_behind_is_divided_by_the_time_it_took() {
        // The case: 2,000,000/s offered for 3 s, but the 6 M
        // exchanges took 15 s to send. Every one answered.
        let mut st = Stats::default();
        let n = 6_000_000u64;
        let r = st.of(ExType::RenewAck);
        r.sent = n;
        r.answered = n;
        st.sends = SendTimes {
            count: n,
            first_ns: 1_000,
            last_ns: 1_000 + 15_000_000_000,
        };
        let mut h = head();
        h.scenario = "renew".into();
        h.rate = 2_000_000.0;
        h.nominal_duration_s = Some(3.0);
        let rep = st.report(h, &[ExType::RenewAck], 3.0);
        let per_s = rep.exchanges["RENEW-ACK"].per_s;
        assert!((per_s - 400_000.0).abs() < 1.0, "{per_s}");
        assert!((rep.achieved_rate - 400_000.0).abs() < 1.0);
        assert!((rep.duration_s - 15.0).abs() < 1e-5);
        assert!(rep.generator_bound);
        let t = rep.table();
        assert!(t.contains("GENERATOR-BOUND (80.0 % short"), "{t}");
        assert!(t.contains("achieved 400000/s"), "{t}");
        assert!(t.contains("(nominal 3.00 s)"), "{t}");
        let v: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
        assert_eq!(v["generator_bound"], true);
        assert_eq!(v["nominal_duration_s"], 3.0);
    }

    #[test]
    fn the_shortfall_threshold_is_two_percent() {
        // 10,001 sends over 1 s: 10,000/s achieved.
        let ten_k = sends(10_001, 0, 100_000);
        let at = |offered: f64| SendPhase::measure(offered, &ten_k, 0, 1.0);
        // 1.9 % short, then 2.1 % short.
        assert!(!at(10_000.0 / 0.981).generator_bound);
        assert!(at(10_000.0 / 0.979).generator_bound);
        // Faster than offered (batched catch-up) is never bound.
        assert!(!at(5_000.0).generator_bound);
    }

    #[test]
    fn skipped_exchanges_are_the_servers_doing_not_the_generators() {
        // 500 sent every 4 ms and 500 skipped (no bound client left after
        // NAKs) at 500/s offered: half the send rate, but on schedule.
        let p = SendPhase::measure(500.0, &sends(500, 0, 4_000_000), 500, 2.0);
        assert!((p.achieved_rate - 250.0).abs() < 1e-9);
        assert!(!p.generator_bound, "{p:?}");
        assert!(SendPhase::measure(500.0, &sends(500, 0, 4_000_000), 0, 2.0).generator_bound);
    }

    #[test]
    fn too_few_sends_fall_back_and_threads_merge() {
        // One send: no rate measurable, the fallback length is used.
        let one = SendPhase::measure(100.0, &sends(1, 5, 0), 0, 0.01);
        assert_eq!(
            (one.seconds, one.achieved_rate, one.generator_bound),
            (0.01, 100.0, false)
        );
        // Two sends at the same instant: likewise.
        let burst = SendPhase::measure(100.0, &sends(2, 5, 0), 0, 0.02);
        assert_eq!(burst.seconds, 0.02);
        // Nothing sent in a 3 s run: bound (it sent nothing); no length, no
        // verdict.
        assert!(SendPhase::measure(100.0, &SendTimes::default(), 0, 3.0).generator_bound);
        let none = SendPhase::measure(100.0, &SendTimes::default(), 0, 0.0);
        assert_eq!(
            (none.seconds, none.achieved_rate, none.generator_bound),
            (0.0, 0.0, false)
        );
        // Two threads interleaved: the union of their spans.
        let mut a = sends(500, 0, 4_000_000);
        a.merge(&sends(500, 2_000_000, 4_000_000));
        a.merge(&SendTimes::default());
        assert_eq!((a.count, a.first_ns, a.last_ns), (1000, 0, 1_998_000_000));
        let p = SendPhase::measure(500.0, &a, 0, 0.0);
        assert!((p.seconds - 2.0).abs() < 1e-9 && !p.generator_bound);
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
        // Each thread sent every 4 ms, interleaved: 1,000 at 500/s.
        a.sends = sends(500, 0, 4_000_000);
        b.sends = sends(500, 2_000_000, 4_000_000);
        a.merge(&b);
        let mut rep = a.report(head(), &[ExType::DiscoverOffer, ExType::RequestAck], 9.0);
        rep.server_cpu = Some(crate::loadgen::cpu::server_cpu(
            9,
            crate::loadgen::cpu::Sample {
                at_ns: 0,
                cpu_us: 0,
            },
            crate::loadgen::cpu::Sample {
                at_ns: 2_000_000_000,
                cpu_us: 98_800,
            },
            rep.exchanges_done(),
        ));
        let v: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
        let keys = |v: &serde_json::Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(&v),
            [
                "achieved_rate",
                "clients",
                "dora_per_s",
                "duration_s",
                "exchanges",
                "generator_bound",
                "io",
                "loss_ratio",
                "nominal_duration_s",
                "rate",
                "rx_dropped",
                "scenario",
                "server_cpu"
            ]
        );
        assert_eq!(
            keys(&v["server_cpu"]),
            [
                "cores",
                "cpu_us",
                "exchanges",
                "pid",
                "us_per_exchange",
                "window_s"
            ]
        );
        // 988 ACKs (a DORA counts once): 100 µs each.
        assert_eq!(v["server_cpu"]["exchanges"], 988);
        assert_eq!(v["server_cpu"]["us_per_exchange"], 100.0);
        assert!(rep.table().contains("100.0 CPU-µs per exchange"));
        assert_eq!(v["generator_bound"], false);
        let near = |x: &serde_json::Value, want: f64| (x.as_f64().unwrap() - want).abs() < 1e-6;
        assert!(near(&v["duration_s"], 2.0), "{}", v["duration_s"]);
        assert!(near(&v["achieved_rate"], 500.0), "{}", v["achieved_rate"]);
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
        assert!(near(&d["per_s"], 500.0), "{}", d["per_s"]);
        // 0..999 µs uniformly: the median near 0.5 ms, max near 1 ms.
        let p50 = d["latency_us"]["p50"].as_u64().unwrap();
        assert!((495..=505).contains(&p50), "{p50}");
        let max = d["latency_us"]["max"].as_u64().unwrap();
        assert!((995..=1000).contains(&max), "{max}");
        let r = &v["exchanges"]["REQUEST-ACK"];
        let p99 = r["latency_us"]["p99"].as_u64().unwrap();
        assert!((1998..=2002).contains(&p99), "{p99}");
        assert_eq!(r["lost"], 10);
        assert!(near(&v["dora_per_s"], 494.0), "{}", v["dora_per_s"]);
        assert!((v["loss_ratio"].as_f64().unwrap() - 10.0 / 2000.0).abs() < 1e-12);
        assert!(rep.table().contains("REQUEST-ACK"));
    }

    #[test]
    fn release_counts_sent_and_empty_histograms_report_zero() {
        let mut s = Stats::default();
        s.of(ExType::Release).sent = 300;
        // 300 sent over 2.99 s: 3 s of send phase.
        s.sends = sends(300, 0, 10_000_000);
        let rep = s.report(head(), &[ExType::Release], 1.0);
        let e = &rep.exchanges["RELEASE"];
        assert!((e.per_s - 100.0).abs() < 1e-9);
        assert_eq!(rep.exchanges_done(), 300);
        assert!(rep.generator_bound, "100/s offered at 500/s");
        assert_eq!((e.latency_us.p50, e.latency_us.max), (0, 0));
        assert_eq!(rep.loss_ratio, 0.0);
        // Out-of-range latencies are clamped, not dropped.
        let mut t = TypeStats::default();
        t.answer(0);
        t.answer(3_600_000_000_000);
        assert_eq!(t.answered, 2);
        assert_eq!(t.hist.len(), 2);
    }

    #[test]
    fn a_discover_run_completes_its_exchanges_with_the_offer() {
        let mut s = Stats::default();
        let o = s.of(ExType::DiscoverOffer);
        o.sent = 1000;
        for _ in 0..990 {
            o.answer(50_000);
        }
        o.lost = 10;
        s.sends = sends(1000, 0, 2_000_000);
        let dora = s.report(head(), &[ExType::DiscoverOffer], 2.0);
        assert_eq!(dora.exchanges_done(), 0, "a DORA is done at its ACK");
        let discover = s.report(
            ReportHead {
                scenario: "discover".into(),
                ..head()
            },
            &[ExType::DiscoverOffer],
            2.0,
        );
        assert_eq!(discover.exchanges_done(), 990);
        assert_eq!(discover.dora_per_s, 0.0);
        assert!((discover.loss_ratio - 0.01).abs() < 1e-12);
        assert!(!discover.generator_bound);
        assert!(!discover.table().contains("REQUEST-ACK"));
    }
}
