//! The time reclaim runs on: wall-clock seconds that never jump forward.
//!
//! Lease expiries are wall-clock times (they are stored, and shared between
//! servers), but a wall clock can be stepped: an NTP correction or an
//! operator's `date -s` an hour forward would make every lease look an hour
//! older, and reclaim would hand live addresses to new clients. So reclaim
//! asks [`ReclaimClock::now`], which is the wall clock at start plus the
//! monotonic time elapsed since, or the wall clock if that is earlier: a
//! forward step is ignored (reclaim keeps real time), a backward step is
//! followed (reclaim waits longer; late is always safe). Promises made by
//! the fast path still use the wall clock; after a forward step they only
//! reach further into a future that reclaim arrives at later.
//!
//! What a clock cannot do across a restart (the anchor is taken again at
//! start) is written down in docs/decisions.md.

use std::time::Instant;

/// A wall clock for reclaim that cannot jump forward; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct ReclaimClock {
    wall_at_start: u64,
    mono_at_start: Instant,
}

impl ReclaimClock {
    /// Anchors the clock at the current wall-clock and monotonic times.
    pub fn start() -> Self {
        Self {
            wall_at_start: irondhcp_fastpath::unix_now(),
            mono_at_start: Instant::now(),
        }
    }

    /// Seconds since the UNIX epoch, never ahead of real elapsed time.
    pub fn now(&self) -> u64 {
        bounded(
            irondhcp_fastpath::unix_now(),
            self.wall_at_start,
            self.mono_at_start.elapsed().as_secs(),
        )
    }
}

/// The reclaim time from a wall-clock reading, the wall clock at start and
/// the monotonic seconds elapsed since: the earlier of the wall clock and
/// the start plus real elapsed time.
pub fn bounded(wall_now: u64, wall_at_start: u64, mono_elapsed: u64) -> u64 {
    wall_now.min(wall_at_start.saturating_add(mono_elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_step_is_ignored_and_a_backward_step_followed() {
        // Started at 1_000; 10 real seconds later the wall clock reads 1_010.
        assert_eq!(bounded(1_010, 1_000, 10), 1_010);
        // Someone stepped the clock an hour forward: reclaim stays on real time.
        assert_eq!(bounded(4_610, 1_000, 10), 1_010);
        // Stepped back: reclaim follows the wall clock (it only waits longer).
        assert_eq!(bounded(500, 1_000, 10), 500);
    }

    #[test]
    fn now_is_never_ahead_of_the_wall_clock() {
        let c = ReclaimClock::start();
        assert!(c.now() <= irondhcp_fastpath::unix_now());
    }
}
