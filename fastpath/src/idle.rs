//! What an idle worker does until the next frame: spin, nap, or sleep.
//!
//! Every wake-up from `poll(2)` costs a context switch, and every TX kick
//! costs a trip through the driver (on veth it even runs the peer's receive
//! path on our core); both are paid per batch, not per frame. So the worker
//! picks, from the recent frame rate:
//!
//! * **spin** when frames come closer together than [`SPIN_WORTH`] (50,000
//!   a second): the next one is due before a sleep would even finish, and
//!   the latency tail at high load stays short;
//! * **nap** (a timed sleep of up to `coalesce`, deaf to the socket) when
//!   they come steadily but further apart: the frames of a whole nap are
//!   then served in one batch with one kick, which cuts the CPU per request
//!   several times at ordinary rates for at most `coalesce` of latency;
//! * **sleep** in `poll(2)` until a frame or a doorbell comes when traffic is
//!   light (a nap would more often than not catch nothing: more than
//!   `coalesce` between frames), so an idle box costs nothing and a lone
//!   request is answered at once. Even a nap that catches one frame is
//!   cheaper than a wake from poll(2) (a timer instead of two wait queues
//!   set up and torn down): at 1,000 renewals/s, 42 CPU-µs a renewal
//!   against 56 to 82 in the same hour.
//!
//! The rate is estimated per frame over windows of at least
//! [`WINDOW`], not from the gaps between batches: naps make batches
//! rarer, and a batch-gap estimate would flip the policy back and forth.

use std::time::{Duration, Instant};

/// Frames closer together than this on average make spinning pay: a wake
/// from poll(2) or a nap costs about this much CPU, so spinning through
/// longer gaps would burn more than it saves (at 16,000 frames/s, spinning
/// twice the gap kept the core busy and tripled the CPU per DORA).
pub const SPIN_WORTH: Duration = Duration::from_micros(20);
/// The shortest window a rate estimate is taken over.
pub const WINDOW: Duration = Duration::from_millis(20);
/// Frames a nap aims to gather (a nap lasts this many average gaps, at
/// most `coalesce`).
const NAP_FRAMES: u32 = 8;

/// What the worker does next when it found nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Busy-poll the rings for up to this long in all.
    Spin(Duration),
    /// Sleep this long without watching the socket, then serve the batch.
    Nap(Duration),
    /// Sleep in poll(2) until a frame or a doorbell comes.
    Sleep,
}

/// The average time between frames, over recent windows.
#[derive(Debug, Clone)]
pub struct RateEstimate {
    window_start: Instant,
    frames: u32,
    /// Moving average (1/4 weight per window) of the gap between frames.
    gap: Duration,
}

impl RateEstimate {
    /// Starts "idle": a lone first frame is answered from a poll(2) wake.
    pub fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            frames: 0,
            gap: Duration::from_secs(1),
        }
    }

    /// Counts `frames` handled at `now` (frames received and replies sent).
    pub fn record(&mut self, frames: u32, now: Instant) {
        self.frames = self.frames.saturating_add(frames);
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return;
        }
        // A window without frames counts as one frame's gap of its length.
        let gap = elapsed / self.frames.max(1);
        // A rate that jumps up is taken at once (so a burst is served in
        // batches from its start); one that falls is averaged, and the open
        // window of `gap` catches traffic that stopped.
        self.gap = if gap < self.gap / 2 {
            gap
        } else {
            (self.gap * 3 + gap) / 4
        };
        self.window_start = now;
        self.frames = 0;
    }

    /// The estimated gap between frames, as of `now`: a window that has run
    /// long without frames raises it at once (traffic stopped).
    pub fn gap(&self, now: Instant) -> Duration {
        let open = now.saturating_duration_since(self.window_start) / (self.frames + 1);
        self.gap.max(open)
    }
}

/// The idle policy for a frame gap of `gap`, spinning at most `max_spin`
/// (the `idle_spin_us` setting) and napping at most `coalesce` (the
/// `coalesce_us` setting; zero turns naps off).
pub fn policy(gap: Duration, max_spin: Duration, coalesce: Duration) -> Idle {
    if gap < SPIN_WORTH && !max_spin.is_zero() {
        Idle::Spin(max_spin.min(gap * 2))
    } else if !coalesce.is_zero() && gap <= coalesce {
        Idle::Nap(coalesce.min(gap * NAP_FRAMES))
    } else {
        Idle::Sleep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const US: Duration = Duration::from_micros(1);

    #[test]
    fn the_policy_follows_the_rate() {
        let (spin, nap) = (1000 * US, 1000 * US);
        assert_eq!(policy(10 * US, spin, nap), Idle::Spin(20 * US));
        assert_eq!(policy(10 * US, Duration::ZERO, nap), Idle::Nap(80 * US));
        // 16,000 frames/s (4,000 DORA/s: requests and replies): nap.
        assert_eq!(policy(62 * US, spin, nap), Idle::Nap(496 * US));
        // 8,000 frames/s: naps gather 8 frames, capped by `coalesce`.
        assert_eq!(policy(125 * US, spin, nap), Idle::Nap(1000 * US));
        assert_eq!(policy(125 * US, spin, 300 * US), Idle::Nap(300 * US));
        assert_eq!(policy(125 * US, spin, Duration::ZERO), Idle::Sleep);
        // 1,000 frames/s: a nap catches one frame, still cheaper than a
        // wake from poll(2); below that, sleep until something comes.
        assert_eq!(policy(1000 * US, spin, nap), Idle::Nap(1000 * US));
        assert_eq!(policy(1001 * US, spin, nap), Idle::Sleep);
        assert_eq!(policy(Duration::from_secs(1), spin, nap), Idle::Sleep);
    }

    #[test]
    fn the_estimate_is_per_frame_and_drops_when_traffic_stops() {
        let t0 = Instant::now();
        let mut r = RateEstimate::new(t0);
        assert!(r.gap(t0) >= Duration::from_secs(1), "starts idle");
        // 8 frames a millisecond, served in batches of 8: the gap is per
        // frame (125 µs), not per batch.
        for i in 1..=400u32 {
            r.record(8, t0 + MS * i);
        }
        let now = t0 + MS * 400;
        let gap = r.gap(now);
        assert!(gap > 100 * US && gap < 150 * US, "{gap:?}");
        // Silence for 50 ms: the open window says traffic stopped.
        assert!(r.gap(now + 50 * MS) > 40 * MS);
        assert_eq!(policy(r.gap(now + 50 * MS), MS, MS), Idle::Sleep);
    }
}
