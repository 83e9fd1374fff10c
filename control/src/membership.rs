//! Cluster membership: a server on a shared PostgreSQL store registers at
//! start (a new boot epoch, `PgStore::register`, done by the daemon before
//! anything is published under it) and writes a heartbeat every second
//! until it stops, so its peers know it is alive and can tell a restart from a
//! pause. On one box (SQLite) there is nothing to do.
//!
//! Runs beside the control plane as its own task: a slow or absent
//! database delays heartbeats, never packets or commits.

use std::time::Duration;

use irondhcp_fastpath::unix_now;
use tokio::sync::watch;

use crate::store::postgres::PgStore;

/// How often the heartbeat is written.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Keeps the heartbeat of `store`'s server, registered with boot `epoch`,
/// until `shutdown` turns true.
pub async fn run(store: PgStore, epoch: u32, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut replaced = false;
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|v| *v) => return,
            _ = tick.tick() => {}
        }
        match store.heartbeat(epoch, unix_now()).await {
            Ok(true) => replaced = false,
            Ok(false) if !replaced => {
                // Another process registered with our id: two servers
                // with one identity would defeat the owner checks.
                replaced = true;
                tracing::error!(
                    boot_epoch = epoch,
                    "another irondhcp registered with this server id; check that every server has its own `id`"
                );
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "heartbeat not written"),
        }
    }
}
