//! Open-loop rate control.
//!
//! Exchange `k` (counting from 0) is due at `start + k / rate`, whatever
//! happened to the earlier ones. The loop asks how many are due now and
//! sends them as one batch, so pacing costs one clock read per loop and no
//! sleep per packet; a loop that fell behind catches up in batches of at
//! most `max` at a time.

/// Paces new exchanges of one thread.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Exchanges per second.
    rate: f64,
    start_ns: u64,
    /// End of the send phase (exclusive), if bounded by time.
    end_ns: Option<u64>,
    /// Most exchanges to send, if bounded by count.
    limit: Option<u64>,
    sent: u64,
    stopped: bool,
}

impl Pacer {
    /// `rate` per second from `start_ns`, until `end_ns` and/or `limit`
    /// exchanges. A non-positive rate sends nothing.
    pub fn new(rate: f64, start_ns: u64, end_ns: Option<u64>, limit: Option<u64>) -> Self {
        Self {
            rate,
            start_ns,
            end_ns,
            limit,
            sent: 0,
            stopped: rate.is_nan() || rate <= 0.0 || limit == Some(0),
        }
    }

    /// How many exchanges should have been sent by `now_ns` in total.
    pub fn target(&self, now_ns: u64) -> u64 {
        if self.stopped || now_ns < self.start_ns {
            return self.sent;
        }
        let t = match self.end_ns {
            // The last one is due strictly before the end.
            Some(end) if now_ns >= end => end.saturating_sub(1).max(self.start_ns),
            _ => now_ns,
        };
        let due = ((t - self.start_ns) as f64 * self.rate / 1e9).floor() as u64 + 1;
        match self.limit {
            Some(l) => due.min(l),
            None => due,
        }
    }

    /// Takes up to `max` due exchanges: the caller sends that many now.
    pub fn take(&mut self, now_ns: u64, max: u64) -> u64 {
        let n = self.target(now_ns).saturating_sub(self.sent).min(max);
        self.sent += n;
        n
    }

    /// Gives back `n` taken exchanges that could not be started.
    pub fn untake(&mut self, n: u64) {
        self.sent = self.sent.saturating_sub(n);
    }

    /// Ends the send phase now (e.g. no more clients to use).
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Exchanges taken so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Whether the send phase is over at `now_ns`.
    pub fn done(&self, now_ns: u64) -> bool {
        self.stopped
            || self.limit.is_some_and(|l| self.sent >= l)
            || self
                .end_ns
                .is_some_and(|e| now_ns >= e && self.sent >= self.target(now_ns))
    }

    /// When the next exchange is due (`None` when the phase is over).
    pub fn next_due_ns(&self, now_ns: u64) -> Option<u64> {
        if self.done(now_ns) {
            return None;
        }
        // target(t) ≥ sent + 1  ⟺  (t − start)·rate ≥ sent.
        let at = self.start_ns + (self.sent as f64 / self.rate * 1e9).ceil() as u64;
        Some(at.max(self.start_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn first_exchange_is_due_at_start_and_then_every_period() {
        let p = Pacer::new(500.0, 10 * S, Some(12 * S), None);
        assert_eq!(p.target(10 * S - 1), 0);
        assert_eq!(p.target(10 * S), 1);
        assert_eq!(p.target(10 * S + 1_999_999), 1);
        assert_eq!(p.target(10 * S + 2_000_000), 2);
        assert_eq!(p.target(11 * S), 501);
        // Exactly rate × duration over the whole phase, however late we look.
        assert_eq!(p.target(12 * S - 1), 1000);
        assert_eq!(p.target(12 * S), 1000);
        assert_eq!(p.target(99 * S), 1000);
    }

    #[test]
    fn take_batches_and_catches_up() {
        let mut p = Pacer::new(1000.0, 0, None, Some(250));
        assert_eq!(p.take(0, 64), 1);
        assert_eq!(p.take(0, 64), 0);
        // 100 ms late: 100 due, at most 64 per batch.
        assert_eq!(p.take(100_000_000, 64), 64);
        assert_eq!(p.take(100_000_000, 64), 36);
        assert_eq!(p.sent(), 101);
        assert!(!p.done(100_000_000));
        assert_eq!(p.take(10 * S, 1000), 149);
        assert!(p.done(10 * S));
        assert_eq!(p.take(20 * S, 1000), 0);
    }

    #[test]
    fn next_due_and_done() {
        let mut p = Pacer::new(4.0, S, Some(2 * S), None);
        assert_eq!(p.next_due_ns(0), Some(S));
        assert_eq!(p.take(S, 10), 1);
        assert_eq!(p.next_due_ns(S), Some(S + 250_000_000));
        assert_eq!(p.take(2 * S, 10), 3);
        assert!(p.done(2 * S));
        assert_eq!(p.next_due_ns(2 * S), None);
        p.untake(1);
        assert_eq!(p.sent(), 3);
        let mut q = Pacer::new(10.0, 0, None, None);
        assert!(!q.done(u64::MAX / 2));
        q.stop();
        assert!(q.done(0));
        assert!(Pacer::new(0.0, 0, None, None).done(0));
        assert!(Pacer::new(5.0, 0, None, Some(0)).done(0));
    }
}
