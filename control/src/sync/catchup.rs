//! Catching up from PostgreSQL, the truth, whenever events may have been
//! missed: at start, after a reconnect, on a sequence gap or a quiet peer
//! (a resync), and every poll interval while Redis is away or a peer is
//! quiet (polling). Either way it reads the rows changed since a time,
//! minus the overlap window, page by page, and hands them to the control
//! plane, which applies them forward-only: reading a row twice is
//! harmless, missing one is what this exists to prevent.
//!
//! Runs as its own task so the subscriber never waits on the database;
//! requests made while a pass runs are merged into the next one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use irondhcp_fastpath::unix_now;
use tokio::sync::{mpsc, watch, Notify};

use super::stats::SyncStats;
use super::stopped;
use crate::store::postgres::{FeedCursor, PgStore};

/// Rows per page of a catch-up read.
const PAGE: u32 = 1000;

/// Requests to the catch-up task.
#[derive(Default)]
pub struct CatchUp {
    /// The earliest time asked for and not yet read.
    pending: Mutex<Option<u64>>,
    wake: Notify,
    polling: AtomicBool,
}

impl CatchUp {
    /// Asks for the rows changed since `since` (seconds) to be read.
    pub fn request(&self, since: u64) {
        if let Ok(mut p) = self.pending.lock() {
            *p = Some(p.map_or(since, |s| s.min(since)));
        }
        self.wake.notify_one();
    }

    /// Polls PostgreSQL every interval while `on` (events may be missed
    /// without any sign: Redis away, a peer quiet).
    pub fn set_polling(&self, on: bool) {
        self.polling.store(on, Ordering::Relaxed);
    }

    pub fn polling(&self) -> bool {
        self.polling.load(Ordering::Relaxed)
    }

    fn take(&self) -> Option<u64> {
        self.pending.lock().ok().and_then(|mut p| p.take())
    }
}

/// What a catch-up pass needs.
pub struct CatchUpTask {
    pub requests: Arc<CatchUp>,
    pub store: PgStore,
    pub to_plane: mpsc::Sender<super::Synced>,
    pub overlap: u64,
    pub poll_every: Duration,
    pub stats: Arc<SyncStats>,
    /// Everything changed before this time is in the map already (the
    /// store's load at start).
    pub in_step_since: u64,
}

impl CatchUpTask {
    /// Serves requests (and polls while asked to) until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.poll_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Where the next poll starts: the start of the last pass that read
        // everything.
        let mut poll_from = self.in_step_since;
        loop {
            tokio::select! {
                _ = stopped(&mut shutdown) => return,
                () = self.requests.wake.notified() => {}
                _ = tick.tick() => {
                    if self.requests.polling() {
                        self.requests.request(poll_from);
                    }
                }
            }
            let Some(since) = self.requests.take() else {
                continue;
            };
            let started = unix_now();
            match self.read_since(since.saturating_sub(self.overlap)).await {
                // A pass from no later than the poll's start covered
                // everything up to its own start.
                Ok(true) if since <= poll_from => poll_from = started,
                Ok(true) => {}
                Ok(false) => return, // the control plane has stopped
                Err(e) => {
                    SyncStats::add(&self.stats.catchup_errors, 1);
                    tracing::warn!(error = %e, "catching up from the lease store failed; retrying");
                    self.requests.request(since);
                    tokio::select! {
                        _ = stopped(&mut shutdown) => return,
                        () = tokio::time::sleep(self.poll_every) => {}
                    }
                }
            }
        }
    }

    /// Reads every row changed since `from` into the control plane.
    /// Returns false when the control plane is gone.
    async fn read_since(&self, from: u64) -> Result<bool, crate::store::StoreError> {
        SyncStats::add(&self.stats.catchups, 1);
        let mut cursor = FeedCursor::since(from);
        loop {
            let page = self.store.changed_after(cursor, PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(true);
            };
            cursor = FeedCursor::after(last);
            let full = page.len() == PAGE as usize;
            SyncStats::add(&self.stats.catchup_rows, page.len() as u64);
            let page = super::Synced {
                records: page,
                committed_us: None,
            };
            if self.to_plane.send(page).await.is_err() {
                return Ok(false);
            }
            if !full {
                return Ok(true);
            }
        }
    }
}
