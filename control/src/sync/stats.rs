//! The sync layer's counters: read by `irondhcp-ctl stats` (and later
//! `/metrics`) while the tasks run, so plain atomics, written off the
//! packet path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Buckets of the sync-lag histogram: bucket `i` counts lags below 2^i µs.
const LAG_BUCKETS: usize = 32;

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
    lag_us: [AtomicU64; LAG_BUCKETS],
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
    /// Publish-to-receive lag of event messages from peers, microseconds
    /// (upper bounds of power-of-two buckets; 0 before any).
    pub lag_us_p50: u64,
    pub lag_us_p99: u64,
    pub lag_samples: u64,
}

impl SyncStats {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    /// Records one message's publish-to-receive lag.
    pub fn lag(&self, us: u64) {
        let i = (64 - us.leading_zeros() as usize).min(LAG_BUCKETS - 1);
        self.lag_us[i].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> SyncSnapshot {
        let r = |c: &AtomicU64| c.load(Relaxed);
        let buckets: Vec<u64> = self.lag_us.iter().map(r).collect();
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
                    return 1u64 << i;
                }
            }
            1u64 << (LAG_BUCKETS - 1)
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
            s.lag(300); // below 512
        }
        s.lag(5_000); // below 8192
        s.lag(70_000); // below 131072
        let snap = s.snapshot();
        assert_eq!(snap.lag_samples, 100);
        assert_eq!(snap.lag_us_p50, 512);
        assert_eq!(snap.lag_us_p99, 8192);
    }
}
