//! The sync layer's counters: read by `irondhcp-ctl stats` (and later
//! `/metrics`) while the tasks run, so plain atomics, written off the
//! packet path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Buckets of the sync-lag histogram: one per µs below 8 µs, then four
/// per power of two (a quantile is read as its bucket's upper bound, at
/// most 25 % above the true lag), up to 2^33 µs (about 2.4 hours).
const LAG_BUCKETS: usize = 8 + 4 * 30;

/// The histogram bucket of a lag of `us` microseconds.
fn lag_bucket(us: u64) -> usize {
    if us < 8 {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros() as usize; // ≥ 3
    let quarter = ((us >> (octave - 2)) & 3) as usize;
    (8 + (octave - 3) * 4 + quarter).min(LAG_BUCKETS - 1)
}

/// The upper bound (exclusive) of bucket `i`, µs.
fn lag_bucket_bound(i: usize) -> u64 {
    if i < 8 {
        return i as u64 + 1;
    }
    let octave = (i - 8) / 4 + 3;
    let quarter = ((i - 8) % 4) as u64;
    (5 + quarter) << (octave - 2)
}

/// Counters of the publisher, the subscriber and the catch-up reads.
#[derive(Default)]
pub struct SyncStats {
    pub redis_connected: AtomicU64,
    pub published: AtomicU64,
    /// Messages that could not be published (Redis away, queue full):
    /// peers see the gap in the sequence and catch up from PostgreSQL.
    pub publish_failures: AtomicU64,
    pub heartbeats: AtomicU64,
    pub received: AtomicU64,
    pub received_events: AtomicU64,
    /// Messages or events that were not irondhcp's and were dropped.
    pub malformed: AtomicU64,
    /// Times events may have been missed (a sequence gap, a restart, a
    /// quiet peer, a reconnect).
    pub gaps: AtomicU64,
    /// Subscriptions that went silent and were reconnected.
    pub stalls: AtomicU64,
    pub reconnects: AtomicU64,
    /// Catch-up reads of PostgreSQL (resyncs and polls) and the rows they
    /// brought.
    pub catchups: AtomicU64,
    pub catchup_rows: AtomicU64,
    pub catchup_errors: AtomicU64,
    /// Event batches the control plane had no room for (caught up instead).
    pub plane_drops: AtomicU64,
    lag_us: LagHistogram,
}

/// The sync-lag histogram's counters.
struct LagHistogram([AtomicU64; LAG_BUCKETS]);

impl Default for LagHistogram {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// One reading of [`SyncStats`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncSnapshot {
    pub redis_connected: bool,
    pub published: u64,
    pub publish_failures: u64,
    pub heartbeats: u64,
    pub received: u64,
    pub received_events: u64,
    pub malformed: u64,
    pub gaps: u64,
    pub stalls: u64,
    pub reconnects: u64,
    pub catchups: u64,
    pub catchup_rows: u64,
    pub catchup_errors: u64,
    pub plane_drops: u64,
    /// Sync lag of events from peers: from the origin's commit to this
    /// server's map holding them, microseconds
    /// (upper bounds of quarter-octave buckets; 0 before any).
    pub lag_us_p50: u64,
    pub lag_us_p99: u64,
    pub lag_samples: u64,
}

impl SyncStats {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    /// Records one batch's sync lag (origin's commit to this map).
    pub fn lag(&self, us: u64) {
        self.lag_us.0[lag_bucket(us)].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> SyncSnapshot {
        let r = |c: &AtomicU64| c.load(Relaxed);
        let buckets: Vec<u64> = self.lag_us.0.iter().map(r).collect();
        let samples: u64 = buckets.iter().sum();
        let quantile = |q: f64| {
            if samples == 0 {
                return 0;
            }
            let want = ((samples as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, b) in buckets.iter().enumerate() {
                seen += b;
                if seen >= want {
                    return lag_bucket_bound(i);
                }
            }
            lag_bucket_bound(LAG_BUCKETS - 1)
        };
        SyncSnapshot {
            redis_connected: r(&self.redis_connected) != 0,
            published: r(&self.published),
            publish_failures: r(&self.publish_failures),
            heartbeats: r(&self.heartbeats),
            received: r(&self.received),
            received_events: r(&self.received_events),
            malformed: r(&self.malformed),
            gaps: r(&self.gaps),
            stalls: r(&self.stalls),
            reconnects: r(&self.reconnects),
            catchups: r(&self.catchups),
            catchup_rows: r(&self.catchup_rows),
            catchup_errors: r(&self.catchup_errors),
            plane_drops: r(&self.plane_drops),
            lag_us_p50: quantile(0.5),
            lag_us_p99: quantile(0.99),
            lag_samples: samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_quantiles_are_bucket_bounds() {
        let s = SyncStats::default();
        assert_eq!(s.snapshot().lag_us_p99, 0);
        for _ in 0..98 {
            s.lag(300); // in [256, 320)
        }
        s.lag(5_000); // in [4096, 5120)
        s.lag(70_000); // in [65536, 81920)
        let snap = s.snapshot();
        assert_eq!(snap.lag_samples, 100);
        assert_eq!(snap.lag_us_p50, 320);
        assert_eq!(snap.lag_us_p99, 5120);
    }

    #[test]
    fn every_lag_falls_in_a_bucket_that_bounds_it_within_a_quarter() {
        for us in (0..5000).chain([1 << 20, (1 << 33) - 1, u64::MAX]) {
            let i = lag_bucket(us);
            assert!(i < LAG_BUCKETS);
            let hi = lag_bucket_bound(i);
            if i < LAG_BUCKETS - 1 {
                assert!(us < hi, "{us} µs in bucket {i} below {hi}");
                let lo = if i == 0 { 0 } else { lag_bucket_bound(i - 1) };
                assert!(us >= lo, "{us} µs in bucket {i} from {lo}");
                assert!(hi as f64 <= (us.max(1) as f64) * 1.25 + 1.0, "{us}: {hi}");
            }
        }
        // Buckets are contiguous and increasing.
        for i in 1..LAG_BUCKETS {
            assert!(lag_bucket_bound(i) > lag_bucket_bound(i - 1));
        }
    }
}
