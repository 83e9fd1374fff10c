//! Keeping every server's lease map in step with the cluster's shared
//! store (docs/decisions.md, 9; docs/ha.md).
//!
//! PostgreSQL is the truth and Redis pub/sub a hint. After each commit a
//! server publishes what changed ([`publisher`]); its peers apply the
//! events forward-only, by row version, so a late or repeated event
//! changes nothing ([`subscriber`]). Whenever events may have been missed
//! (start, a sequence gap, a restarted or quiet peer, a lost subscription,
//! Redis away) the rows changed since the last time known to be in step
//! are read back from PostgreSQL ([`catchup`]). Correctness never depends
//! on Redis: the UNIQUE guard in SQL decides every grant, and a renewal
//! that misses a lagging map is looked up (plane::lookup).
//!
//! Without a `cluster.redis_url` the same catch-up polls PostgreSQL every
//! interval, and that alone keeps the maps in step, only later.

mod catchup;
mod origins;
mod publisher;
pub use publisher::now_us;
mod stats;
mod subscriber;
pub mod wire;

pub use stats::{SyncSnapshot, SyncStats};

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::ClusterConfig;
use crate::plane::{LeaseEvents, NoEvents};
use crate::store::postgres::PgStore;
use crate::store::LeaseRecord;
use catchup::{CatchUp, CatchUpTask};
use publisher::Publisher;
use subscriber::Subscriber;

/// Batches of lease records queued for the control plane; past it the
/// subscriber drops a batch and catches up instead.
const TO_PLANE: usize = 256;

/// Why the sync layer could not start.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cluster.redis_url {url}: {source}")]
    RedisUrl {
        url: String,
        #[source]
        source: redis::RedisError,
    },
}

/// The running sync layer.
pub struct SyncLayer {
    /// Where the committer reports committed batches.
    pub events: Arc<dyn LeaseEvents>,
    /// Records for the control plane to apply.
    pub records: mpsc::Receiver<Synced>,
    pub stats: Arc<SyncStats>,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Records for the control plane to apply: a message heard on the channel
/// or a page read back from PostgreSQL.
#[derive(Debug)]
pub struct Synced {
    pub records: Vec<LeaseRecord>,
    /// When the origin committed them, µs since the UNIX epoch (heard
    /// messages only): the sync lag is measured from here to the moment
    /// the plane has applied them.
    pub committed_us: Option<u64>,
}

/// Returns once `shutdown` turns true (or its sender is gone). The guard
/// `wait_for` returns is dropped here, so callers stay `Send`.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|v| *v).await;
}

/// Who this server is in the cluster.
pub struct Identity {
    pub server_id: String,
    pub boot_epoch: u32,
    /// The map holds every change made before this time (seconds; the
    /// store's load at start).
    pub loaded_at: u64,
}

/// Starts the publisher, the subscriber and the catch-up task.
pub fn start(
    cfg: &ClusterConfig,
    me: Identity,
    store: PgStore,
    shutdown: &watch::Receiver<bool>,
) -> Result<SyncLayer, SyncError> {
    let stats = Arc::new(SyncStats::default());
    let (to_plane, records) = mpsc::channel(TO_PLANE);
    let poll_every = Duration::from_millis(cfg.poll_interval_ms);
    let catchup = Arc::new(CatchUp::default());
    let mut tasks = Vec::new();
    let mut events: Arc<dyn LeaseEvents> = Arc::new(NoEvents);
    match &cfg.redis_url {
        Some(url) => {
            let client =
                redis::Client::open(url.as_str()).map_err(|source| SyncError::RedisUrl {
                    url: crate::store::postgres::redacted(url),
                    source,
                })?;
            let (publisher, task) = Publisher::new(
                me.server_id.clone(),
                me.boot_epoch,
                client.clone(),
                cfg.channel.clone(),
                stats.clone(),
            );
            events = publisher;
            tasks.push(tokio::spawn(task.run(shutdown.clone())));
            let sub = Subscriber {
                origin: me.server_id.clone(),
                client,
                channel: cfg.channel.clone(),
                catchup: catchup.clone(),
                to_plane: to_plane.clone(),
                stats: stats.clone(),
                in_step_since: me.loaded_at,
            };
            tasks.push(tokio::spawn(sub.run(shutdown.clone())));
        }
        None => {
            // No events to hear: PostgreSQL is polled all the time.
            catchup.set_polling(true);
        }
    }
    let task = CatchUpTask {
        requests: catchup,
        store,
        to_plane,
        overlap: u64::from(cfg.resync_overlap),
        poll_every,
        stats: stats.clone(),
        in_step_since: me.loaded_at,
    };
    tasks.push(tokio::spawn(task.run(shutdown.clone())));
    Ok(SyncLayer {
        events,
        records,
        stats,
        tasks,
    })
}
