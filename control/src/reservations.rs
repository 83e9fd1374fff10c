//! Reservation changes from operators, end to end: applied to the running
//! allocator at once, written to the store with their audit row, undone in
//! memory if the store refuses; and, in a cluster, followed from the
//! store when another server changes them.
//!
//! Memory first, then the store: a reservation in memory only keeps its
//! address from other clients, so the moment between the two is safe in
//! both directions, and a store failure is undone before anyone is told.
//! Changes are serialised here (they are an operator's, not a client's),
//! so an undo never crosses another change.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Mutex};

use crate::alloc::ReserveError;
use crate::plane::Query;
use crate::store::{
    AuditEntry, Identifier, LeaseStore, Reservation, ReservationChange, Store, StoreError,
};

/// Why a reservation change or read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReservationError {
    #[error("{0}")]
    Refused(#[from] ReserveError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("this client already has a reservation in subnet {0} (reservation-update changes it)")]
    Exists(u32),
    #[error("this client has no reservation in subnet {0}")]
    NotFound(u32),
    #[error("control plane is shutting down")]
    Stopping,
}

/// How a put treats a client that already has a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Kea's `reservation-add`: refused if it has one.
    Add,
    /// Kea's `reservation-update`: refused if it has none.
    Update,
}

/// Where a listed reservation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Config,
    Store,
}

/// The reservation service the management socket and HTTP share.
pub struct Reservations {
    store: Arc<Store>,
    queries: mpsc::Sender<Query>,
    /// The config file's reservations (listed, never changed here).
    config: Vec<Reservation>,
    writing: Mutex<()>,
}

impl Reservations {
    pub fn new(store: Arc<Store>, queries: mpsc::Sender<Query>, config: Vec<Reservation>) -> Self {
        Self {
            store,
            queries,
            config,
            writing: Mutex::new(()),
        }
    }

    /// Asks the allocator to reserve (`Some`) or unreserve (`None`).
    async fn in_memory(
        &self,
        subnet_id: u32,
        identifier: &Identifier,
        address: Option<Ipv4Addr>,
    ) -> Result<Option<Ipv4Addr>, ReservationError> {
        let (reply, rx) = oneshot::channel();
        self.queries
            .send(Query::Reserve {
                subnet_id,
                client_key: identifier.client_key(),
                address,
                reply,
            })
            .await
            .map_err(|_| ReservationError::Stopping)?;
        Ok(rx.await.map_err(|_| ReservationError::Stopping)??)
    }

    /// Adds or replaces `r`; returns the reservation it replaced.
    pub async fn put(
        &self,
        r: Reservation,
        how: Put,
        actor: &str,
    ) -> Result<Option<Reservation>, ReservationError> {
        let _one = self.writing.lock().await;
        let (id, ident) = (r.subnet_id, r.identifier.clone());
        let previous = self.in_memory(id, &ident, Some(r.address)).await?;
        let undo = || self.in_memory(id, &ident, previous);
        match (how, previous) {
            // The same address again is still "exists" for an add, and
            // needs no undo: nothing changed in memory.
            (Put::Add, Some(p)) => {
                if p != r.address {
                    undo().await?;
                }
                return Err(ReservationError::Exists(id));
            }
            (Put::Update, None) => {
                undo().await?;
                return Err(ReservationError::NotFound(id));
            }
            _ => {}
        }
        let change = ReservationChange {
            subnet_id: id,
            identifier: ident,
            after: Some(r),
            actor: actor.to_string(),
        };
        self.persist(&change, previous).await
    }

    /// Writes `change` to the store; if the store refuses, the client's
    /// reservation in memory goes back to `previous`.
    async fn persist(
        &self,
        change: &ReservationChange,
        previous: Option<Ipv4Addr>,
    ) -> Result<Option<Reservation>, ReservationError> {
        match self
            .store
            .change_reservation(change, irondhcp_fastpath::unix_now())
            .await
        {
            Ok(before) => {
                if before.is_some() || change.after.is_some() {
                    tracing::info!(
                        subnet_id = change.subnet_id,
                        identifier = %crate::hex::colon(change.identifier.bytes()),
                        address = ?change.after.as_ref().map(|r| r.address),
                        actor = %change.actor,
                        "reservation change: {}",
                        crate::store::reservation::action(before.as_ref(), change.after.as_ref())
                    );
                }
                Ok(before)
            }
            Err(e) => {
                self.in_memory(change.subnet_id, &change.identifier, previous)
                    .await?;
                Err(e.into())
            }
        }
    }

    /// Deletes the reservation of `identifier` in subnet `subnet_id`;
    /// returns it (`None`: there was none).
    pub async fn delete(
        &self,
        subnet_id: u32,
        identifier: &Identifier,
        actor: &str,
    ) -> Result<Option<Reservation>, ReservationError> {
        let _one = self.writing.lock().await;
        let previous = self.in_memory(subnet_id, identifier, None).await?;
        let change = ReservationChange {
            subnet_id,
            identifier: identifier.clone(),
            after: None,
            actor: actor.to_string(),
        };
        self.persist(&change, previous).await
    }

    /// Every reservation, the config file's first, in (subnet, address)
    /// order within each source.
    pub async fn list(&self) -> Result<Vec<(Reservation, Source)>, ReservationError> {
        let mut out: Vec<(Reservation, Source)> = self
            .config
            .iter()
            .map(|r| (r.clone(), Source::Config))
            .collect();
        out.extend(
            self.store
                .reservations()
                .await?
                .into_iter()
                .map(|r| (r, Source::Store)),
        );
        Ok(out)
    }

    /// The newest `limit` changes, newest first.
    pub async fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, ReservationError> {
        Ok(self.store.reservation_audit(limit).await?)
    }
}

/// The store's reservations, for the allocator.
pub fn as_keys(rs: &[Reservation]) -> Vec<(u32, Vec<u8>, Ipv4Addr)> {
    rs.iter()
        .map(|r| (r.subnet_id, r.identifier.client_key(), r.address))
        .collect()
}

/// In a cluster: every `every`, whether the reservations changed (the
/// audit table's newest id moved, whichever server changed them); if so,
/// the allocator is given the store's set. A change made here comes back
/// too, and changes nothing.
pub async fn follow(
    store: Arc<Store>,
    queries: mpsc::Sender<Query>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut seen: Option<i64> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = crate::sync::stopped(&mut shutdown) => return,
            _ = tick.tick() => {}
        }
        let version = match store.reservations_version().await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, "reservations not read; next interval");
                continue;
            }
        };
        if seen == Some(version) {
            continue;
        }
        let all = match store.reservations().await {
            Ok(all) => all,
            Err(e) => {
                tracing::debug!(error = %e, "reservations not read; next interval");
                continue;
            }
        };
        let (tx, rx) = oneshot::channel();
        if queries
            .send(Query::SetReservations(as_keys(&all), tx))
            .await
            .is_err()
        {
            return;
        }
        if rx.await.is_ok() {
            seen = Some(version);
        }
    }
}

/// The config file's reservations, as the store's are listed (the config
/// was validated, so every identifier parses).
pub fn from_config(cfg: &crate::config::Validated) -> Vec<Reservation> {
    let mut out = Vec::new();
    for s in &cfg.raw.subnets {
        for r in &s.reservations {
            let identifier = match (&r.hw_address, &r.client_id) {
                (Some(hw), _) => crate::hex::parse(hw)
                    .ok()
                    .and_then(|b| Identifier::new("hw-address", b).ok()),
                (None, Some(id)) => crate::hex::parse(id)
                    .ok()
                    .and_then(|b| Identifier::new("client-id", b).ok()),
                (None, None) => None,
            };
            if let Some(identifier) = identifier {
                out.push(Reservation {
                    subnet_id: s.id,
                    identifier,
                    address: r.address,
                    hostname: None,
                });
            }
        }
    }
    out
}
