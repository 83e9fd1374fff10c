//! Hearing the other servers: subscribes to the cluster's channel, applies
//! their lease events to this server's map (through the control plane),
//! and asks for a catch-up from PostgreSQL whenever something may have
//! been missed.
//!
//! The subscription hears this server's own heartbeat too; when nothing at
//! all arrives for [`QUIET_AFTER`] seconds the subscription is taken to be
//! dead (a half-open connection, Redis dropping a slow subscriber) and is
//! made again. While there is no subscription PostgreSQL is polled.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use irondhcp_fastpath::unix_now;
use tokio::sync::{mpsc, watch};

use super::catchup::CatchUp;
use super::origins::{Origins, Verdict, QUIET_AFTER};
use super::publisher::REDIS_TIMEOUT;
use super::stats::SyncStats;
use super::stopped;
use super::wire::Message;
use super::Synced;
use crate::store::LeaseRecord;

/// A quiet origin is forgotten after this long (seconds): a dead server
/// stops the polling it caused.
const FORGET_AFTER: u64 = 60;

/// The subscriber task.
pub struct Subscriber {
    pub origin: String,
    pub client: redis::Client,
    pub channel: String,
    pub catchup: Arc<CatchUp>,
    pub to_plane: mpsc::Sender<Synced>,
    pub stats: Arc<SyncStats>,
    /// The map holds every change before this time (the store's load).
    pub in_step_since: u64,
}

impl Subscriber {
    /// Subscribes, and subscribes again after every loss, until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut origins = Origins::new(self.in_step_since);
        // Until this time every event was heard (or read back).
        let mut in_step = self.in_step_since;
        let mut first = true;
        loop {
            let Some(pubsub) = self.subscribe().await else {
                self.catchup.set_polling(true);
                tokio::select! {
                    _ = stopped(&mut shutdown) => return,
                    () = tokio::time::sleep(REDIS_TIMEOUT) => continue,
                }
            };
            if !first {
                SyncStats::add(&self.stats.reconnects, 1);
                tracing::info!("lease events subscription restored; catching up");
            }
            first = false;
            self.stats
                .redis_connected
                .store(1, std::sync::atomic::Ordering::Relaxed);
            // Everything published from now on is heard; what came before
            // is read back from the lease store.
            let connected = unix_now();
            origins.caught_up(connected);
            self.catchup.request(in_step);
            self.catchup.set_polling(origins.any_quiet());
            let mut stream = pubsub.into_on_message();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last_heard = connected;
            loop {
                tokio::select! {
                    _ = stopped(&mut shutdown) => return,
                    m = stream.next() => {
                        let Some(m) = m else {
                            tracing::warn!("lease events subscription lost; polling the lease store until it is back");
                            break;
                        };
                        last_heard = unix_now();
                        self.heard(m.get_payload_bytes(), &mut origins, last_heard);
                    }
                    _ = tick.tick() => {
                        let now = unix_now();
                        if now.saturating_sub(last_heard) >= QUIET_AFTER {
                            // Not even our own heartbeat: the subscription
                            // is dead without having been closed.
                            SyncStats::add(&self.stats.stalls, 1);
                            tracing::warn!("lease events subscription silent; subscribing again");
                            break;
                        }
                        for since in origins.newly_quiet(now) {
                            SyncStats::add(&self.stats.gaps, 1);
                            self.catchup.request(since);
                        }
                        origins.forget_older_than(now, FORGET_AFTER);
                        self.catchup.set_polling(origins.any_quiet());
                    }
                }
            }
            self.stats
                .redis_connected
                .store(0, std::sync::atomic::Ordering::Relaxed);
            self.catchup.set_polling(true);
            in_step = last_heard;
        }
    }

    async fn subscribe(&self) -> Option<redis::aio::PubSub> {
        let mut ps = match tokio::time::timeout(REDIS_TIMEOUT, self.client.get_async_pubsub()).await
        {
            Ok(Ok(ps)) => ps,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot reach Redis to subscribe");
                return None;
            }
            Err(_) => return None,
        };
        match tokio::time::timeout(REDIS_TIMEOUT, ps.subscribe(&self.channel)).await {
            Ok(Ok(())) => Some(ps),
            _ => None,
        }
    }

    /// Handles one message from the channel.
    fn heard(&self, payload: &[u8], origins: &mut Origins, now: u64) {
        SyncStats::add(&self.stats.received, 1);
        let Ok(m) = serde_json::from_slice::<Message>(payload) else {
            SyncStats::add(&self.stats.malformed, 1);
            return;
        };
        if m.origin == self.origin {
            return; // our own: proof the subscription is alive, nothing more
        }
        match origins.heard(&m.origin, m.epoch, m.seq, m.is_heartbeat(), now) {
            Verdict::Stale => return,
            Verdict::InOrder => {}
            Verdict::Missed { since } => {
                SyncStats::add(&self.stats.gaps, 1);
                self.catchup.request(since);
            }
        }
        if m.is_heartbeat() {
            return;
        }
        SyncStats::add(&self.stats.received_events, m.events.len() as u64);
        let records: Vec<LeaseRecord> = m
            .events
            .iter()
            .filter_map(|e| e.record(&m.origin))
            .collect();
        if records.len() != m.events.len() {
            SyncStats::add(
                &self.stats.malformed,
                (m.events.len() - records.len()) as u64,
            );
        }
        let oldest = records.iter().map(|r| r.updated_at).min();
        let batch = Synced {
            records,
            committed_us: (m.committed_us > 0).then_some(m.committed_us),
        };
        if self.to_plane.try_send(batch).is_err() {
            SyncStats::add(&self.stats.plane_drops, 1);
            if let Some(t) = oldest {
                self.catchup.request(t);
            }
        }
    }
}
