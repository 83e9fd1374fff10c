//! Cluster membership: a server on a shared PostgreSQL store registers at
//! start (a new boot epoch) and writes a heartbeat every second until it
//! stops, so its peers know it is alive and can tell a restart from a
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

/// Registers `store`'s server (with `address`, its server identifier) and
/// keeps its heartbeat until `shutdown` turns true.
pub async fn run(store: PgStore, address: String, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut epoch = None;
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|v| *v) => return,
            _ = tick.tick() => {}
        }
        match epoch {
            None => match store.register(&address, unix_now()).await {
                Ok(e) => {
                    tracing::info!(boot_epoch = e, "registered in the cluster");
                    epoch = Some(e);
                }
                Err(e) => tracing::warn!(error = %e, "cannot register in the cluster; retrying"),
            },
            Some(e) => match store.heartbeat(e, unix_now()).await {
                Ok(true) => {}
                Ok(false) => {
                    // Another process registered with our id: two servers
                    // with one identity would defeat the owner checks.
                    tracing::error!(
                        boot_epoch = e,
                        "another irondhcp registered with this server id; check that every server has its own `id`"
                    );
                    epoch = None;
                }
                Err(e) => tracing::warn!(error = %e, "heartbeat not written"),
            },
        }
    }
}
