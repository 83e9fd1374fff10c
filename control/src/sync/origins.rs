//! What this server has heard from each peer, and whether it missed
//! anything.
//!
//! Each origin numbers its messages (per boot epoch); a heartbeat repeats
//! the last number. A number that skips, a new boot epoch, a first message
//! that is not the origin's first, or an origin gone quiet all mean events
//! may have been missed: the verdict says from when the rows must be read
//! again from PostgreSQL. Pure bookkeeping, so every case is a unit test.

use std::collections::HashMap;

/// What to do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Next in order (or a heartbeat that matches): apply its events.
    InOrder,
    /// Already seen, or from an older boot: ignore it.
    Stale,
    /// Events may have been missed since this time (seconds): apply this
    /// message's events and read the rows changed since then.
    Missed { since: u64 },
}

struct Origin {
    epoch: u32,
    seq: u64,
    /// When the last message in order was heard (seconds).
    heard_at: u64,
    quiet: bool,
}

/// Every origin heard, by id.
pub struct Origins {
    by_id: HashMap<String, Origin>,
    /// Rows changed before this time were read when this server caught up
    /// (at start or after a reconnect): an origin first heard now may have
    /// published before it, and only that is covered.
    in_step_since: u64,
}

/// An origin quiet this long (seconds) is resynced once: it died, or it
/// was cut from Redis (and still writes to PostgreSQL).
pub const QUIET_AFTER: u64 = 3;
/// Most origins remembered; past it the quietest are forgotten (a
/// returning one is then treated as new, which costs a resync).
const MAX_ORIGINS: usize = 1024;

impl Origins {
    pub fn new(in_step_since: u64) -> Self {
        Self {
            by_id: HashMap::new(),
            in_step_since,
        }
    }

    /// Caught up again as of `t` (a reconnect's resync covers from there).
    pub fn caught_up(&mut self, t: u64) {
        self.in_step_since = t;
    }

    /// Judges a message from `origin` heard at `now`.
    pub fn heard(
        &mut self,
        origin: &str,
        epoch: u32,
        seq: u64,
        heartbeat: bool,
        now: u64,
    ) -> Verdict {
        let first = if heartbeat { 0 } else { 1 };
        let Some(o) = self.by_id.get_mut(origin) else {
            if self.by_id.len() >= MAX_ORIGINS {
                self.forget_quietest();
            }
            self.by_id.insert(
                origin.to_string(),
                Origin {
                    epoch,
                    seq,
                    heard_at: now,
                    quiet: false,
                },
            );
            return if seq == first {
                Verdict::InOrder
            } else {
                Verdict::Missed {
                    since: self.in_step_since,
                }
            };
        };
        if epoch < o.epoch {
            return Verdict::Stale;
        }
        let was_quiet = std::mem::take(&mut o.quiet);
        let since = o.heard_at;
        if epoch > o.epoch {
            // A restart: whatever the old boot published last, and the new
            // boot's first messages, may have been missed.
            *o = Origin {
                epoch,
                seq,
                heard_at: now,
                quiet: false,
            };
            return Verdict::Missed { since };
        }
        let expected = if heartbeat { o.seq } else { o.seq + 1 };
        if seq < expected {
            // A heartbeat behind the events already heard is not news; an
            // event number already heard is a duplicate.
            o.heard_at = now;
            return Verdict::Stale;
        }
        o.seq = seq;
        o.heard_at = now;
        if seq > expected {
            return Verdict::Missed { since };
        }
        if was_quiet {
            // Back in order after a silence: the resync done when it went
            // quiet may have read before its last commits were visible.
            return Verdict::Missed { since };
        }
        Verdict::InOrder
    }

    /// Origins that went quiet since the last call (nothing heard for
    /// [`QUIET_AFTER`]), each with the time to resync from.
    pub fn newly_quiet(&mut self, now: u64) -> Vec<u64> {
        self.by_id
            .values_mut()
            .filter(|o| !o.quiet && now.saturating_sub(o.heard_at) >= QUIET_AFTER)
            .map(|o| {
                o.quiet = true;
                o.heard_at
            })
            .collect()
    }

    /// Whether any origin is quiet: its changes reach this server only by
    /// polling PostgreSQL until it is heard again (or forgotten).
    pub fn any_quiet(&self) -> bool {
        self.by_id.values().any(|o| o.quiet)
    }

    /// Forgets origins quiet for longer than `age` seconds (dead servers
    /// stop the polling they caused).
    pub fn forget_older_than(&mut self, now: u64, age: u64) {
        self.by_id
            .retain(|_, o| !o.quiet || now.saturating_sub(o.heard_at) <= age);
    }

    fn forget_quietest(&mut self) {
        if let Some(id) = self
            .by_id
            .iter()
            .min_by_key(|(_, o)| o.heard_at)
            .map(|(id, _)| id.clone())
        {
            self.by_id.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_duplicates_and_gaps() {
        let mut o = Origins::new(100);
        assert_eq!(o.heard("a", 1, 1, false, 101), Verdict::InOrder);
        assert_eq!(o.heard("a", 1, 2, false, 102), Verdict::InOrder);
        assert_eq!(
            o.heard("a", 1, 2, true, 103),
            Verdict::InOrder,
            "heartbeat repeats the last"
        );
        assert_eq!(o.heard("a", 1, 2, false, 103), Verdict::Stale, "duplicate");
        assert_eq!(
            o.heard("a", 1, 1, true, 103),
            Verdict::Stale,
            "late heartbeat"
        );
        assert_eq!(
            o.heard("a", 1, 5, false, 104),
            Verdict::Missed { since: 103 }
        );
        assert_eq!(o.heard("a", 1, 6, false, 105), Verdict::InOrder);
        // A heartbeat ahead of the events heard: the last ones were lost.
        assert_eq!(
            o.heard("a", 1, 8, true, 106),
            Verdict::Missed { since: 105 }
        );
    }

    #[test]
    fn a_new_origin_or_boot_is_caught_up_from_what_is_known() {
        let mut o = Origins::new(100);
        assert_eq!(
            o.heard("a", 1, 0, true, 101),
            Verdict::InOrder,
            "started after us"
        );
        assert_eq!(
            o.heard("b", 3, 40, false, 101),
            Verdict::Missed { since: 100 },
            "published before we were in step"
        );
        o.heard("a", 1, 1, false, 102);
        assert_eq!(
            o.heard("a", 2, 1, false, 110),
            Verdict::Missed { since: 102 },
            "restarted"
        );
        assert_eq!(
            o.heard("a", 1, 2, false, 111),
            Verdict::Stale,
            "the old boot"
        );
        assert_eq!(o.heard("a", 2, 2, false, 111), Verdict::InOrder);
    }

    #[test]
    fn quiet_origins_are_resynced_once_polled_for_and_forgotten() {
        let mut o = Origins::new(100);
        o.heard("a", 1, 1, false, 100);
        o.heard("b", 1, 1, false, 100);
        o.heard("b", 1, 1, true, 102);
        assert_eq!(o.newly_quiet(103), vec![100], "only a is quiet");
        assert!(o.newly_quiet(104).is_empty(), "reported once");
        assert!(o.any_quiet());
        // Heard again, in order: one more catch-up, then no longer quiet.
        assert_eq!(
            o.heard("a", 1, 1, true, 105),
            Verdict::Missed { since: 100 }
        );
        assert!(!o.any_quiet());
        assert_eq!(o.heard("a", 1, 1, true, 106), Verdict::InOrder);
        // A dead one stops the polling once forgotten.
        assert_eq!(o.newly_quiet(120).len(), 2);
        o.forget_older_than(200, 60);
        assert!(!o.any_quiet());
    }
}
