//! The faults the suite injects into a running cluster, each with how it
//! is undone. One server is the victim where a fault is local (server 0 is
//! killed, 1 paused or slowed, 2 cut off), so every fault hits servers
//! that carry renewals.

use std::io;
use std::time::Duration;

use irondhcp_testkit::cluster::Cluster;

/// A fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Kill,
    Pause,
    RestartPostgres,
    RestartRedis,
    CutRedis,
    CutPostgres,
    SlowSubscriber,
}

impl Fault {
    pub const ALL: [Fault; 7] = [
        Fault::Kill,
        Fault::Pause,
        Fault::RestartPostgres,
        Fault::RestartRedis,
        Fault::CutRedis,
        Fault::CutPostgres,
        Fault::SlowSubscriber,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::RestartPostgres => "restart-postgres",
            Fault::RestartRedis => "restart-redis",
            Fault::CutRedis => "cut-redis",
            Fault::CutPostgres => "cut-postgres",
            Fault::SlowSubscriber => "slow-subscriber",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == s)
    }

    /// What the table says it did.
    pub fn describe(self) -> &'static str {
        match self {
            Fault::Kill => "`kill -9` server 1, restarted after the hold",
            Fault::Pause => "SIGSTOP server 2 past the block release time (5 s), then SIGCONT",
            Fault::RestartPostgres => "PostgreSQL stopped (immediate) and started again",
            Fault::RestartRedis => "Redis killed and started again",
            Fault::CutRedis => "server 3 cut from Redis (nft drop)",
            Fault::CutPostgres => "server 3 cut from PostgreSQL (nft drop)",
            Fault::SlowSubscriber => {
                "server 2's Redis traffic slowed to 16 kbit/s under a 16 kB pubsub buffer limit"
            }
        }
    }

    /// How long the fault lasts.
    pub fn hold(self) -> Duration {
        Duration::from_secs(match self {
            Fault::Kill => 8,
            Fault::Pause => 8,
            Fault::RestartPostgres => 5,
            Fault::RestartRedis => 4,
            Fault::CutRedis | Fault::CutPostgres => 8,
            Fault::SlowSubscriber => 10,
        })
    }

    /// The server a local fault hits (the one whose clients' renewals
    /// must go elsewhere), if any.
    pub fn victim(self) -> Option<usize> {
        match self {
            Fault::Kill => Some(0),
            Fault::Pause | Fault::SlowSubscriber => Some(1),
            Fault::CutRedis | Fault::CutPostgres => Some(2),
            Fault::RestartPostgres | Fault::RestartRedis => None,
        }
    }

    pub fn inject(self, c: &mut Cluster) -> io::Result<()> {
        match self {
            Fault::Kill => c.kill_server(0),
            Fault::Pause => c.signal_server(1, libc::SIGSTOP),
            Fault::RestartPostgres => c.pg.stop(),
            Fault::RestartRedis => redis(c)?.stop(),
            Fault::CutRedis => c.cut(2, irondhcp_testkit::redis::PORT),
            Fault::CutPostgres => {
                let port = c.pg.port();
                c.cut(2, port)
            }
            Fault::SlowSubscriber => {
                redis(c)?.cli(&[
                    "CONFIG",
                    "SET",
                    "client-output-buffer-limit",
                    "pubsub 16kb 8kb 1",
                ])?;
                c.slow_to(1, irondhcp_testkit::redis::PORT, "16kbit")
            }
        }
    }

    pub fn heal(
        self,
        c: &mut Cluster,
        daemon: &std::path::Path,
        ctl: &std::path::Path,
    ) -> io::Result<()> {
        match self {
            Fault::Kill => c.start_server(0, daemon, ctl),
            Fault::Pause => c.signal_server(1, libc::SIGCONT),
            Fault::RestartPostgres => c.pg.restart(),
            Fault::RestartRedis => redis(c)?.restart(),
            Fault::CutRedis | Fault::CutPostgres => c.heal(2),
            Fault::SlowSubscriber => c.unslow(),
        }
    }
}

fn redis(c: &mut Cluster) -> io::Result<&mut irondhcp_testkit::redis::RedisServer> {
    c.redis
        .as_mut()
        .ok_or_else(|| io::Error::other("the cluster has no Redis"))
}
