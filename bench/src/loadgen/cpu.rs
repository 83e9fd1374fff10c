//! CPU time of the server under test over the send phase, from
//! `/proc/PID/stat`.
//!
//! Why: an achieved rate depends on the generator, the day and whatever
//! else shares the machine; CPU time per answered exchange at a given
//! offered load does not, so it is the figure two servers are compared by
//! (`--server-pid`). `utime + stime` of `/proc/PID/stat` cover every thread
//! of the process, those that already ended included; they are in clock
//! ticks (`sysconf(_SC_CLK_TCK)`, 100 on Linux), so a 5 s trial resolves the
//! server's CPU time to 10 ms.
//!
//! The window opens when the timed phase starts (after any warm-up, whose
//! DORAs are not what is measured) and closes when the last thread has sent
//! its last new exchange; the exchanges still in flight then (a latency's
//! worth) are counted in the denominator although part of their CPU time
//! falls after the window, an error of latency / send phase.

use std::sync::OnceLock;

use serde::Serialize;

/// Field 14 (`utime`) and 15 (`stime`) of `/proc/PID/stat`, counted from
/// the first field after `comm` (field 3, `state`) as index 0.
const UTIME_AFTER_COMM: usize = 14 - 3;

/// `utime + stime` in clock ticks from one `/proc/PID/stat` line. `comm`
/// (field 2) is in parentheses and may itself hold spaces and parentheses,
/// so the fields are counted from the *last* `)`.
pub fn parse_stat_ticks(line: &str) -> Option<u64> {
    let rest = &line[line.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(UTIME_AFTER_COMM);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// Clock ticks to microseconds (`hz` ticks a second).
pub fn ticks_to_us(ticks: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    // In u128 (no overflow), saturating on the way back.
    let us = u128::from(ticks) * 1_000_000 / u128::from(hz);
    u64::try_from(us).unwrap_or(u64::MAX)
}

/// Clock ticks per second of `/proc` times.
pub fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

/// CPU time (user + system, all threads) process `pid` has used so far, µs.
pub fn process_cpu_us(pid: u32) -> std::io::Result<u64> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_stat_ticks(&line).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat has no utime/stime: {line:?}"),
        )
    })?;
    Ok(ticks_to_us(ticks, clk_tck()))
}

/// One reading: when (generator clock, ns) and the CPU time then (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at_ns: u64,
    pub cpu_us: u64,
}

/// The server's CPU time over the window, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerCpu {
    pub pid: u32,
    /// CPU time used in the window, µs.
    pub cpu_us: u64,
    /// Length of the window, s.
    pub window_s: f64,
    /// Average cores busy (cpu time / window).
    pub cores: f64,
    /// Exchanges completed (an answered RENEW/REBIND, a DORA's ACK, a sent
    /// RELEASE; a DORA counts once).
    pub exchanges: u64,
    /// CPU µs per exchange, i.e. CPU ms per 1,000 (null: none completed).
    pub us_per_exchange: Option<f64>,
}

/// The figures from two samples and the exchanges completed.
pub fn server_cpu(pid: u32, start: Sample, end: Sample, exchanges: u64) -> ServerCpu {
    let cpu_us = end.cpu_us.saturating_sub(start.cpu_us);
    let window_s = end.at_ns.saturating_sub(start.at_ns) as f64 / 1e9;
    ServerCpu {
        pid,
        cpu_us,
        window_s,
        cores: if window_s > 0.0 {
            cpu_us as f64 / 1e6 / window_s
        } else {
            0.0
        },
        exchanges,
        us_per_exchange: (exchanges > 0).then(|| cpu_us as f64 / exchanges as f64),
    }
}

/// The samples of one run, taken by whichever generator thread opens or
/// closes the window.
#[derive(Debug)]
pub struct CpuProbe {
    pub pid: u32,
    start: OnceLock<Sample>,
    end: OnceLock<Sample>,
}

impl CpuProbe {
    pub fn new(pid: u32) -> Self {
        Self {
            pid,
            start: OnceLock::new(),
            end: OnceLock::new(),
        }
    }

    fn sample(&self, slot: &OnceLock<Sample>, now_ns: u64) {
        // A process that is gone leaves the slot empty: no figure, reported
        // as such by `result`.
        if let Ok(cpu_us) = process_cpu_us(self.pid) {
            let _ = slot.set(Sample {
                at_ns: now_ns,
                cpu_us,
            });
        }
    }

    /// Opens the window (first call wins).
    pub fn mark_start(&self, now_ns: u64) {
        self.sample(&self.start, now_ns);
    }

    /// Closes the window (first call wins).
    pub fn mark_end(&self, now_ns: u64) {
        self.sample(&self.end, now_ns);
    }

    /// The figures, or None when a sample is missing (the process was gone
    /// or the window never closed).
    pub fn result(&self, exchanges: u64) -> Option<ServerCpu> {
        Some(server_cpu(
            self.pid,
            *self.start.get()?,
            *self.end.get()?,
            exchanges,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line (kernel 6.x, 52 fields) with utime 1234 and stime 567.
    fn line(comm: &str) -> String {
        format!(
            "4242 ({comm}) S 1 4242 4242 0 -1 4194560 1517 0 0 0 1234 567 3 4 20 0 5 0 \
             123456 1234567168 4242 18446744073709551615 1 1 0 0 0 0 0 4096 17922 0 0 0 17 1 \
             0 0 0 0 0 0 0 0 0 0 0 0 0"
        )
    }

    #[test]
    fn utime_plus_stime_whatever_the_comm() {
        assert_eq!(parse_stat_ticks(&line("irondhcp")), Some(1801));
        // Spaces and parentheses in comm must not shift the fields.
        assert_eq!(parse_stat_ticks(&line("kea dhcp4")), Some(1801));
        assert_eq!(parse_stat_ticks(&line("a) b (c) d")), Some(1801));
        assert_eq!(parse_stat_ticks(&line(")")), Some(1801));
        assert_eq!(parse_stat_ticks(&line("")), Some(1801));
    }

    #[test]
    fn truncated_or_garbled_lines_are_none() {
        assert_eq!(parse_stat_ticks(""), None);
        assert_eq!(parse_stat_ticks("4242 irondhcp S 1 2 3"), None);
        assert_eq!(
            parse_stat_ticks("4242 (x) S 1 4242 4242 0 -1 0 0 0 0 0 7"),
            None
        );
        assert_eq!(
            parse_stat_ticks("4242 (x) S 1 4242 4242 0 -1 0 0 0 0 0 7 -3"),
            None
        );
        assert_eq!(
            parse_stat_ticks("4242 (x) S 1 4242 4242 0 -1 0 0 0 0 0 18446744073709551615 1"),
            None
        );
    }

    #[test]
    fn ticks_become_microseconds() {
        assert_eq!(ticks_to_us(1801, 100), 18_010_000);
        assert_eq!(ticks_to_us(3, 250), 12_000);
        // Cannot occur, but saturates rather than wrapping or panicking.
        assert_eq!(ticks_to_us(u64::MAX, 1), u64::MAX);
        assert_eq!(ticks_to_us(5, 0), 0);
    }

    #[test]
    fn per_exchange_over_the_window() {
        let s = |at_ns, cpu_us| Sample { at_ns, cpu_us };
        // 0.56 s of CPU over 5 s for 40,000 renewals: 14 µs each, 0.112 cores.
        let c = server_cpu(
            7,
            s(1_000_000, 2_000_000),
            s(5_001_000_000, 2_560_000),
            40_000,
        );
        assert_eq!(c.cpu_us, 560_000);
        assert!((c.window_s - 5.0).abs() < 1e-12);
        assert!((c.cores - 0.112).abs() < 1e-12);
        assert_eq!(c.us_per_exchange, Some(14.0));
        // Nothing answered: no per-exchange figure, not a division by zero.
        let none = server_cpu(7, s(0, 10), s(0, 5), 0);
        assert_eq!(
            (none.cpu_us, none.cores, none.us_per_exchange),
            (0, 0.0, None)
        );
        // A probe whose window never closed has no result.
        let p = CpuProbe::new(u32::MAX);
        p.mark_start(1);
        assert_eq!(p.result(10), None);
    }

    #[test]
    fn reads_its_own_process() {
        // Our own /proc entry parses and the value does not go backwards.
        let me = std::process::id();
        let a = process_cpu_us(me).expect("own /proc/PID/stat");
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_us(me).expect("again") >= a);
        assert!(process_cpu_us(u32::MAX).is_err());
    }
}
