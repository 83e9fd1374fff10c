//! The control-plane task: the only place that allocates addresses and
//! writes the lease store.
//!
//! Workers talk to it over bounded crossbeam channels (they must never
//! await); a bridge thread moves those messages into this tokio task. The
//! task drains whatever has queued up, answers DISCOVERs at once from the
//! [`Allocator`], and commits every grant of the drained batch together with
//! the pending write-behind (renewals, releases, declines) in ONE store
//! transaction: group commit, so the fsync cost is shared by all the clients
//! that arrived while the previous batch was being written. Only after that
//! commit does a DHCPACK go back to the worker.
//!
//! If the store fails, grants are rolled back (no ACK: the client retries)
//! and the write-behind is kept and retried, never dropped, so no lease is
//! lost while the database is away.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use irondhcp_fastpath::channel::{
    AllocDecision, AllocKind, AllocReply, AllocRequest, FastEvent, FrameBuf,
};
use irondhcp_fastpath::unix_now;
use irondhcp_fastpath::worker::WorkerShared;
use tokio::sync::{mpsc, oneshot, watch};

use crate::alloc::{Allocator, LeaseInfo, PoolStats, RequestOutcome};
use crate::store::{LeaseStore, LeaseWrite};

/// Most messages handled per batch (bounds the time between commits).
const MAX_BATCH: usize = 2048;
/// Most addresses looked at per reclaim pass.
const RECLAIM_PER_PASS: usize = 10_000;

/// A message from the fast path.
pub enum Input {
    Alloc(Box<AllocRequest>),
    Event(FastEvent),
}

/// A question from the management socket.
pub enum Query {
    Stats(oneshot::Sender<PlaneStats>),
    Leases(oneshot::Sender<Vec<LeaseInfo>>),
}

/// Control-plane counters and pool statistics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PlaneStats {
    pub pools: Vec<PoolStats>,
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    pub pool_exhausted: u64,
    pub commits: u64,
    pub store_errors: u64,
    pub write_behind_pending: usize,
    pub reply_drops: u64,
}

/// Moves fast-path messages from crossbeam into the tokio task. Runs on its
/// own thread; ends when every worker's sender is gone or the task is gone.
pub fn spawn_bridge(
    allocs: Receiver<AllocRequest>,
    events: Receiver<FastEvent>,
    to_plane: mpsc::Sender<Input>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("irondhcp-bridge".into()).spawn(move || {
        // A receiver is only done when it is empty AND disconnected; keep
        // draining the other until both are, so nothing queued is lost.
        let (never_a, never_e) = (crossbeam_channel::never(), crossbeam_channel::never());
        let (mut allocs_open, mut events_open) = (true, true);
        while allocs_open || events_open {
            let a = if allocs_open { &allocs } else { &never_a };
            let e = if events_open { &events } else { &never_e };
            let msg = crossbeam_channel::select! {
                recv(a) -> m => match m { Ok(r) => Input::Alloc(Box::new(r)), Err(_) => { allocs_open = false; continue } },
                recv(e) -> m => match m { Ok(ev) => Input::Event(ev), Err(_) => { events_open = false; continue } },
            };
            if to_plane.blocking_send(msg).is_err() {
                break;
            }
        }
    })
}

/// The control plane.
pub struct Plane<S: LeaseStore> {
    pub alloc: Allocator,
    pub store: Arc<S>,
    /// Per-worker reply channels and doorbells, indexed by worker id.
    pub replies: Vec<Sender<AllocReply>>,
    pub workers: Vec<Arc<WorkerShared>>,
    pub write_behind: Duration,
    pub reclaim_every: Duration,
    pending: Vec<LeaseWrite>,
    stats: PlaneStats,
}

impl<S: LeaseStore> Plane<S> {
    pub fn new(
        alloc: Allocator,
        store: Arc<S>,
        replies: Vec<Sender<AllocReply>>,
        workers: Vec<Arc<WorkerShared>>,
        write_behind: Duration,
        reclaim_every: Duration,
    ) -> Self {
        Self {
            alloc,
            store,
            replies,
            workers,
            write_behind,
            reclaim_every,
            pending: Vec::new(),
            stats: PlaneStats::default(),
        }
    }

    /// Runs until `shutdown` turns true; then stops allocating, persists the
    /// write-behind and returns.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<Input>,
        mut queries: mpsc::Receiver<Query>,
        mut shutdown: watch::Receiver<bool>,
    ) -> PlaneStats {
        let mut flush = tokio::time::interval(self.write_behind / 2);
        let mut reclaim = tokio::time::interval(self.reclaim_every);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reclaim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch: Vec<Input> = Vec::with_capacity(MAX_BATCH);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                n = input.recv_many(&mut batch, MAX_BATCH) => {
                    if n == 0 {
                        break;
                    }
                    self.process(&mut batch).await;
                }
                Some(q) = queries.recv() => self.answer(q),
                _ = flush.tick() => { self.flush(Vec::new()).await; }
                _ = reclaim.tick() => self.reclaim().await,
            }
        }
        // Shutting down: no new allocations, but every event already
        // received is applied and persisted.
        input.close();
        while let Ok(msg) = input.try_recv() {
            if let Input::Event(e) = msg {
                self.event(e);
            }
        }
        for attempt in 0..5 {
            self.flush(Vec::new()).await;
            if self.pending.is_empty() {
                break;
            }
            tracing::warn!(
                attempt,
                pending = self.pending.len(),
                "write-behind flush failed at shutdown; retrying"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.stats.write_behind_pending = self.pending.len();
        self.stats.clone()
    }

    fn answer(&mut self, q: Query) {
        match q {
            Query::Stats(tx) => {
                let mut s = self.stats.clone();
                s.pools = self.alloc.stats(unix_now());
                s.pool_exhausted = self.alloc.exhausted;
                s.write_behind_pending = self.pending.len();
                let _ = tx.send(s);
            }
            Query::Leases(tx) => {
                let _ = tx.send(self.alloc.leases());
            }
        }
    }

    fn event(&mut self, e: FastEvent) {
        let now = unix_now();
        let w = match e {
            FastEvent::Renewed {
                addr,
                key_hash,
                expiry,
                ..
            } => self.alloc.renewed(addr, key_hash, expiry),
            FastEvent::Released { addr, key_hash, .. } => self.alloc.released(addr, key_hash),
            FastEvent::Declined { addr, key_hash, .. } => self.alloc.declined(addr, key_hash, now),
        };
        self.pending.extend(w);
    }

    fn reply(&mut self, worker: u16, decision: AllocDecision, frame: FrameBuf) {
        match decision {
            AllocDecision::Offer { .. } => self.stats.offers += 1,
            AllocDecision::Ack { .. } => self.stats.acks += 1,
            AllocDecision::Nak => self.stats.naks += 1,
            AllocDecision::Ignore => return,
        }
        let w = worker as usize;
        let (Some(tx), Some(shared)) = (self.replies.get(w), self.workers.get(w)) else {
            self.stats.reply_drops += 1;
            return;
        };
        if tx.try_send(AllocReply { decision, frame }).is_err() {
            self.stats.reply_drops += 1;
            return;
        }
        shared.doorbell.ring();
    }

    async fn process(&mut self, batch: &mut Vec<Input>) {
        let now = unix_now();
        let mut grants: Vec<(u16, FrameBuf, LeaseWrite)> = Vec::new();
        for msg in batch.drain(..) {
            match msg {
                Input::Event(e) => self.event(e),
                Input::Alloc(req) => {
                    let req = *req;
                    let hw = Some(req.hw_addr);
                    let key = req.client_key.as_bytes();
                    match req.kind {
                        AllocKind::Discover => {
                            let d = self.alloc.discover(req.subnet, key, hw, req.requested, now);
                            self.reply(req.worker, d, req.frame);
                        }
                        AllocKind::Request => {
                            match self.alloc.request(req.subnet, key, hw, req.requested, now) {
                                RequestOutcome::Commit(g) => {
                                    grants.push((req.worker, req.frame, g))
                                }
                                RequestOutcome::Nak => {
                                    self.reply(req.worker, AllocDecision::Nak, req.frame)
                                }
                                RequestOutcome::Ignore => {}
                            }
                        }
                    }
                }
            }
        }
        if grants.is_empty() {
            // Persist write-behind only on its timer, to batch it.
            return;
        }
        let writes: Vec<LeaseWrite> = grants.iter().map(|(_, _, g)| g.clone()).collect();
        let results = self.flush(writes).await;
        for (i, (worker, frame, g)) in grants.into_iter().enumerate() {
            let (ok, applied) = match &results {
                Some(r) => (true, r.get(i).copied().unwrap_or(false)),
                None => (false, false),
            };
            let d = self.alloc.committed(&g, ok, applied);
            self.reply(worker, d, frame);
        }
    }

    /// Commits `grants` plus the pending write-behind in one transaction.
    /// Returns the grants' applied flags, or None if the store failed (the
    /// write-behind is then kept for the next attempt).
    async fn flush(&mut self, grants: Vec<LeaseWrite>) -> Option<Vec<bool>> {
        if grants.is_empty() && self.pending.is_empty() {
            return Some(Vec::new());
        }
        let n = grants.len();
        let mut writes = grants;
        writes.extend(self.pending.iter().cloned());
        match self.store.apply(&writes, unix_now()).await {
            Ok(mut applied) => {
                self.stats.commits += 1;
                self.pending.clear();
                applied.truncate(n);
                Some(applied)
            }
            Err(e) => {
                self.stats.store_errors += 1;
                tracing::error!(error = %e, grants = n, pending = self.pending.len(), "lease store commit failed");
                None
            }
        }
    }

    async fn reclaim(&mut self) {
        let w = self.alloc.reclaim(unix_now(), RECLAIM_PER_PASS);
        if !w.is_empty() {
            tracing::debug!(count = w.len(), "reclaimed expired addresses");
            self.pending.extend(w);
        }
        self.flush(Vec::new()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::Timers;
    use crate::config::Config;
    use crate::store::{LeaseRecord, StoreError};
    use irondhcp_fastpath::channel::{key_hash, ClientKey};
    use irondhcp_fastpath::lease_map::LeaseMap;
    use std::net::Ipv4Addr;
    use std::sync::Mutex;

    /// A store double that fails while `down` is set and records what it
    /// committed (unit test only; the real stores are tested on real files).
    #[derive(Default)]
    struct FlakyStore {
        down: Mutex<bool>,
        committed: Mutex<Vec<LeaseWrite>>,
    }

    impl LeaseStore for FlakyStore {
        async fn load_each<F: FnMut(LeaseRecord) + Send>(
            &self,
            _each: F,
        ) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn apply(&self, writes: &[LeaseWrite], _now: u64) -> Result<Vec<bool>, StoreError> {
            if *self.down.lock().unwrap() {
                return Err(StoreError::BadRow("store is down".into()));
            }
            self.committed
                .lock()
                .unwrap()
                .extend(writes.iter().cloned());
            Ok(vec![true; writes.len()])
        }
    }

    fn plane(
        store: Arc<FlakyStore>,
    ) -> (Plane<FlakyStore>, crossbeam_channel::Receiver<AllocReply>) {
        let v = Config::parse(
            "[server]\naddress = \"10.0.0.1\"\ninterface = \"x\"\n[[subnet]]\nid = 1\ncidr = \"10.0.0.0/24\"\npools = [\"10.0.0.10-10.0.0.20\"]\n",
        )
        .unwrap();
        let map = Arc::new(LeaseMap::new(&v.lease_map_ranges()).unwrap());
        let timers = Timers {
            offer_lifetime: 30,
            decline_probation: 60,
            reclaim_margin: 61,
        };
        let alloc = Allocator::new(v.subnets.clone(), map, timers);
        let (tx, rx) = crossbeam_channel::bounded(16);
        let shared = Arc::new(WorkerShared::new(0).unwrap());
        let p = Plane::new(
            alloc,
            store,
            vec![tx],
            vec![shared],
            Duration::from_millis(100),
            Duration::from_secs(10),
        );
        (p, rx)
    }

    fn request(addr: Ipv4Addr) -> Input {
        Input::Alloc(Box::new(AllocRequest {
            worker: 0,
            kind: AllocKind::Request,
            subnet: 0,
            client_key: ClientKey::new(b"client"),
            hw_addr: [2, 0, 0, 0, 0, 1],
            requested: Some(addr),
            frame: FrameBuf::copy_from(&[0u8; 64]).unwrap(),
        }))
    }

    #[tokio::test]
    async fn store_outage_withholds_acks_and_keeps_write_behind() {
        let store = Arc::new(FlakyStore::default());
        let (mut p, replies) = plane(store.clone());
        let addr = Ipv4Addr::new(10, 0, 0, 15);

        // A grant while the store is down: no ACK, nothing in the map.
        *store.down.lock().unwrap() = true;
        p.process(&mut vec![request(addr)]).await;
        assert!(replies.try_recv().is_err(), "no ACK without a commit");
        assert!(p.alloc.stats(0)[0].assigned == 0);

        // Store back: the retransmitted REQUEST is committed, then ACKed.
        *store.down.lock().unwrap() = false;
        p.process(&mut vec![request(addr)]).await;
        let rep = replies.try_recv().expect("ACK after the commit");
        assert!(matches!(rep.decision, AllocDecision::Ack { addr: a, .. } if a == addr));

        // A renewal answered from memory while the store is down is kept
        // and persisted once the store returns.
        *store.down.lock().unwrap() = true;
        let kh = key_hash(1, b"client");
        let expiry = unix_now() + 10_000;
        p.process(&mut vec![Input::Event(FastEvent::Renewed {
            subnet: 0,
            addr,
            key_hash: kh,
            expiry,
        })])
        .await;
        p.flush(Vec::new()).await;
        assert_eq!(p.pending.len(), 1, "write-behind kept through the outage");
        *store.down.lock().unwrap() = false;
        p.flush(Vec::new()).await;
        assert!(p.pending.is_empty());
        let committed = store.committed.lock().unwrap();
        assert!(committed
            .iter()
            .any(|w| matches!(w, LeaseWrite::Extend { expiry: e, .. } if *e == expiry)));
        assert_eq!(p.stats.store_errors, 2);
    }
}
