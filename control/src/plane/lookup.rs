//! Map misses resolved from a shared store.
//!
//! In a cluster a renewal can reach a server whose map does not hold the
//! lease: another server granted it and the sync has not brought it here,
//! or anycast moved the client after a failure. Rather than NAK a client
//! that holds a lease (a NAK sends it back to DISCOVER, off its address),
//! the control plane reads the row from the shared store, applies it to the
//! map (forward-only, by version) and then decides as for any renewal. On
//! one box (SQLite) the map holds every lease and nothing is looked up.
//!
//! Lookups run as tasks, so the control plane never waits on the database,
//! and at most [`MAX_LOOKUPS`] are in flight: a flood of renewals for
//! unknown addresses is shed and counted, never queued without bound.

use irondhcp_fastpath::channel::{AllocKind, AllocRequest};
use irondhcp_fastpath::unix_now;
use tokio::sync::mpsc;

use super::{PendingGrant, Plane};
use crate::store::{LeaseRecord, LeaseStore, StoreError};

/// Most lookups in flight at once.
pub(super) const MAX_LOOKUPS: usize = 256;

/// A finished lookup: the request that missed and the stored row.
pub(super) struct LookupDone {
    req: Box<AllocRequest>,
    record: Result<Option<LeaseRecord>, StoreError>,
}

/// The lookups in flight and where they report.
pub(super) struct Lookups {
    in_flight: usize,
    done: mpsc::UnboundedSender<LookupDone>,
}

impl Lookups {
    pub(super) fn new() -> (Self, mpsc::UnboundedReceiver<LookupDone>) {
        let (done, rx) = mpsc::unbounded_channel();
        (Self { in_flight: 0, done }, rx)
    }
}

impl<S: LeaseStore> Plane<S> {
    /// Starts a lookup when `req` is a renewal whose lease this server's map
    /// does not hold and the store is shared; otherwise hands `req` back to
    /// be decided now.
    pub(super) fn look_up_if_missed(&mut self, req: AllocRequest) -> Option<AllocRequest> {
        if req.kind != AllocKind::Renew || !self.store.is_shared() {
            return Some(req);
        }
        let Some((subnet_id, address)) = self.alloc.lease_missed(req.subnet, req.requested) else {
            return Some(req);
        };
        if self.lookups.in_flight >= MAX_LOOKUPS {
            self.stats.counters.lookups_shed += 1;
            return None;
        }
        self.lookups.in_flight += 1;
        self.stats.counters.lookups += 1;
        let store = self.store.clone();
        let done = self.lookups.done.clone();
        tokio::spawn(async move {
            let record = store.get(subnet_id, address).await;
            let _ = done.send(LookupDone {
                req: Box::new(req),
                record,
            });
        });
        None
    }

    /// Applies what a lookup found and decides its request; returns the
    /// grant to commit, if any. A failed lookup answers nothing (the client
    /// retransmits).
    pub(super) fn looked_up(&mut self, done: LookupDone) -> Vec<PendingGrant> {
        self.lookups.in_flight = self.lookups.in_flight.saturating_sub(1);
        match &done.record {
            Ok(Some(r)) => {
                if self.alloc.apply_record(r) {
                    self.stats.counters.lookups_found += 1;
                }
            }
            Ok(None) => {}
            Err(e) => {
                self.stats.counters.store_errors += 1;
                tracing::warn!(error = %e, "lease lookup failed");
                return Vec::new();
            }
        }
        let mut grants = Vec::new();
        self.decide(*done.req, unix_now(), &mut grants);
        grants
    }
}
