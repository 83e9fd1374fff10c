//! The control-plane task: the only place that allocates addresses and
//! writes the lease store.
//!
//! Workers talk to it over bounded crossbeam channels (they must never
//! await) and ring its doorbell (an eventfd the task watches with
//! `AsyncFd`) once per batch. The task drains whatever has queued up and
//! answers DISCOVERs at once from the
//! [`Allocator`]. Grants (REQUESTs that need a new lease) go, together with
//! the pending write-behind (renewals, releases, declines), to a separate
//! committer task that writes everything queued in ONE store transaction:
//! group commit, so the fsync is shared by all the clients that arrived while
//! the previous batch was being written. Only when the committer reports
//! back does a DHCPACK go to the worker.
//!
//! Committing in its own task keeps the allocation loop answering while the
//! database syncs: a DISCOVER never waits behind an fsync, and the offers go
//! out evenly instead of in a burst after each commit.
//!
//! If the store fails, grants are rolled back (no ACK: the client retries)
//! and the write-behind is kept and retried, never dropped, so no lease is
//! lost while the database is away.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use irondhcp_fastpath::channel::{
    AllocDecision, AllocKind, AllocReply, AllocRequest, FastEvent, FrameBuf,
};
use irondhcp_fastpath::unix_now;
use irondhcp_fastpath::worker::{Doorbell, WorkerShared};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot, watch};

use crate::alloc::{Allocator, OwnedBlock, PoolStats, RequestOutcome};
use crate::clock::ReclaimClock;
use crate::stats::ControlStats;
use crate::store::{LeaseStore, LeaseWrite};

mod committer;
mod events;
mod lookup;
#[cfg(test)]
mod test_store;

use committer::{committer, CommitDone, CommitJob, CommitStats};
pub use events::{LeaseEvents, NoEvents};
use lookup::{LookupDone, Lookups};

/// Most messages handled per batch (bounds the time between commits).
const MAX_BATCH: usize = 2048;
/// Most grants waiting for the store at once. Past it a REQUEST is dropped
/// (counted as shed; the client retransmits): under a flood the commit
/// queue stays short, so a transaction, and the write-behind riding in it,
/// never waits behind seconds of queued grants.
const MAX_GRANTS_IN_FLIGHT: usize = 4096;
/// Most addresses looked at per reclaim pass.
const RECLAIM_PER_PASS: usize = 10_000;

/// The next message of `rx`, or never when there is none.
async fn recv_some<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next message of `rx`, or never when there is none.
async fn recv_bounded<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Option 82's identifiers in a request frame (none when the frame does not
/// parse: the fast path already parsed it once, so that does not happen).
fn relay_ids(frame: &[u8]) -> crate::store::RelayIds {
    use irondhcp_fastpath::wire::{dhcp, frame as eth};
    let rai = eth::parse_frame(frame)
        .ok()
        .and_then(|f| f.payload(frame))
        .and_then(|p| dhcp::parse_dhcp(p).ok())
        .and_then(|m| m.opts.relay_agent_info);
    rai.map(crate::store::RelayIds::from_option82)
        .unwrap_or_default()
}

/// What the fast path sends: requests that need an address, write-behind
/// events, and the doorbell the workers ring after queueing either.
pub struct FastInput {
    pub allocs: Receiver<AllocRequest>,
    pub events: Receiver<FastEvent>,
    pub bell: Arc<Doorbell>,
}

/// A message from the fast path, as the control plane handles it.
pub enum Input {
    Alloc(Box<AllocRequest>),
    Event(FastEvent),
}

impl FastInput {
    /// Moves up to `max` queued messages into `batch`; events first (they
    /// are cheap and keep renewals' lag short). Returns whether more remain.
    fn drain(&self, batch: &mut Vec<Input>, max: usize) -> bool {
        while batch.len() < max {
            match self.events.try_recv() {
                Ok(e) => batch.push(Input::Event(e)),
                Err(_) => break,
            }
        }
        while batch.len() < max {
            match self.allocs.try_recv() {
                Ok(r) => batch.push(Input::Alloc(Box::new(r))),
                Err(_) => break,
            }
        }
        !self.events.is_empty() || !self.allocs.is_empty()
    }
}

/// A question from the management socket.
pub enum Query {
    Stats(oneshot::Sender<PlaneStats>),
    /// One page of the leases a query asks for.
    Leases(
        crate::alloc::LeaseQuery,
        oneshot::Sender<crate::alloc::LeasePage>,
    ),
    /// Reserve `address` for the client (`None`: remove its reservation)
    /// in memory, at once; answers the address it had reserved before.
    Reserve {
        subnet_id: u32,
        client_key: Vec<u8>,
        address: Option<Ipv4Addr>,
        reply: oneshot::Sender<Result<Option<Ipv4Addr>, crate::alloc::ReserveError>>,
    },
    /// The runtime reservations become exactly these ((subnet id, client
    /// key, address), the store's); answers how many were refused.
    SetReservations(Vec<(u32, Vec<u8>, Ipv4Addr)>, oneshot::Sender<usize>),
    /// A reloaded configuration's subnets (lease times and options).
    Reconfigure(Vec<crate::config::Subnet>, oneshot::Sender<()>),
    /// An operator's release of the lease on `address` (Kea's
    /// `lease4-del`); answers the lease released.
    Release(Ipv4Addr, oneshot::Sender<Option<crate::alloc::LeaseInfo>>),
}

/// Control-plane counters and pool statistics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PlaneStats {
    pub pools: Vec<PoolStats>,
    pub counters: ControlStats,
    /// Writes per store transaction.
    pub commit_batch: crate::histogram::HistogramSnapshot,
    /// Store transaction durations, µs.
    pub commit_latency_us: crate::histogram::HistogramSnapshot,
}

/// A grant waiting for its commit, with what the ACK needs.
pub(crate) struct PendingGrant {
    worker: u16,
    frame: FrameBuf,
    grant: LeaseWrite,
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
    /// Reclaim's time: never jumps forward with the wall clock.
    clock: ReclaimClock,
    /// Where committed batches are told (a no-op on one box).
    events: Arc<dyn LeaseEvents>,
    /// Write-behind not yet handed to the committer.
    pending: Vec<LeaseWrite>,
    /// Since when `pending` has not been empty (the write-behind lag).
    pending_since: Option<std::time::Instant>,
    /// Every transaction's size and duration.
    commit_stats: Arc<CommitStats>,
    /// Grants handed to the committer and not yet reported back.
    grants_in_flight: usize,
    /// Workers with replies queued since their doorbell last rang: one
    /// eventfd write per worker per batch, not per reply.
    to_wake: Vec<bool>,
    stats: PlaneStats,
    /// How long a commit gathers grants after its first (zero: none).
    commit_window: Duration,
    /// Renewals that missed the map, being looked up in a shared store.
    lookups: Lookups,
    lookups_done: Option<mpsc::UnboundedReceiver<LookupDone>>,
    /// Lease records other servers committed (the cluster's sync).
    synced: Option<mpsc::Receiver<crate::sync::Synced>>,
    /// Where the sync lag is counted (with `synced`).
    sync_stats: Option<Arc<crate::sync::SyncStats>>,
    /// The address blocks this server owns (the cluster's ownership task).
    blocks: Option<mpsc::Receiver<Vec<OwnedBlock>>>,
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
        let n = workers.len();
        let (lookups, lookups_done) = Lookups::new();
        Self {
            alloc,
            store,
            replies,
            workers,
            write_behind,
            reclaim_every,
            clock: ReclaimClock::start(),
            events: Arc::new(NoEvents),
            pending: Vec::new(),
            pending_since: None,
            commit_stats: Arc::new(CommitStats::default()),
            grants_in_flight: 0,
            to_wake: vec![false; n],
            stats: PlaneStats::default(),
            commit_window: Duration::ZERO,
            lookups,
            lookups_done: Some(lookups_done),
            synced: None,
            sync_stats: None,
            blocks: None,
        }
    }

    /// Gathers each commit's grants for `window` after the first (the
    /// `commit_window_us` setting; see `committer`).
    pub fn with_commit_window(mut self, window: Duration) -> Self {
        self.commit_window = window;
        self
    }

    /// Tells `events` of every committed batch (the cluster's publisher).
    pub fn with_events(mut self, events: Arc<dyn LeaseEvents>) -> Self {
        self.events = events;
        self
    }

    /// Applies the lease records `records` brings (other servers' commits,
    /// from the cluster's sync) to the allocator and the lease map.
    pub fn with_synced(
        mut self,
        records: mpsc::Receiver<crate::sync::Synced>,
        stats: Arc<crate::sync::SyncStats>,
    ) -> Self {
        self.synced = Some(records);
        self.sync_stats = Some(stats);
        self
    }

    /// Allocates from the address blocks `blocks` names (the cluster's
    /// ownership task sends the owned set whenever it changes).
    pub fn with_blocks(mut self, blocks: mpsc::Receiver<Vec<OwnedBlock>>) -> Self {
        self.blocks = Some(blocks);
        self
    }

    /// Runs until `shutdown` turns true; then stops allocating, persists the
    /// write-behind and returns.
    pub async fn run(
        mut self,
        input: FastInput,
        mut queries: mpsc::Receiver<Query>,
        mut shutdown: watch::Receiver<bool>,
    ) -> PlaneStats {
        // SAFETY: the Arc keeps the eventfd open, and its fd unchanged, for
        // as long as the AsyncFd holds it.
        let bell = match unsafe { AsyncFd::register(input.bell.clone()) } {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e.into_parts().1, "cannot watch the control plane's doorbell");
                return self.stats;
            }
        };
        let mut more = false;
        // Unbounded on purpose: a bounded queue made this loop await the
        // committer under a burst of grants, and then neither queries nor
        // timers were served (a stats poll took seconds in the flood test).
        // What waits in it is bounded anyway: grants by the addresses being
        // committed (at most the pools), write-behind by the leases.
        let (job_tx, job_rx) = mpsc::unbounded_channel::<CommitJob>();
        let (done_tx, mut done_rx) = mpsc::channel::<CommitDone>(64);
        let committer = tokio::spawn(committer(
            self.store.clone(),
            self.events.clone(),
            self.commit_window,
            self.commit_stats.clone(),
            job_rx,
            done_tx,
        ));
        let mut flush = tokio::time::interval(self.write_behind / 2);
        let mut reclaim = tokio::time::interval(self.reclaim_every);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reclaim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch: Vec<Input> = Vec::with_capacity(MAX_BATCH);
        let mut lookups_done = self.lookups_done.take();
        let mut synced = self.synced.take();
        let mut blocks = self.blocks.take();
        loop {
            // Biased, in this order: stop, commits done, management queries
            // and the timers come before the packet backlog. Those branches
            // are ready only now and then, so serving them first costs a
            // flood nothing, while a backlog that is always ready (`more`)
            // listed first would starve persistence, reclaim and
            // `irondhcp-ctl` (docs/decisions.md, a control plane that never
            // starves).
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                Some(d) = done_rx.recv() => {
                    self.committed(d);
                    self.ring_doorbells();
                }
                Some(l) = recv_some(&mut lookups_done) => {
                    let grants = self.looked_up(l);
                    if let Err(()) = self.hand_over(grants, &job_tx) {
                        break;
                    }
                }
                Some(q) = queries.recv() => {
                    // The control channel's depth, as the question finds it.
                    self.stats.counters.control_queue = input.allocs.len();
                    self.stats.counters.event_queue = input.events.len();
                    self.answer(q);
                }
                Some(batch) = recv_bounded(&mut synced) => self.apply_synced(&batch),
                Some(owned) = recv_bounded(&mut blocks) => self.alloc.set_owned_blocks(owned),
                _ = flush.tick() => {
                    // Workers ring for write-behind only once it backs up;
                    // whatever is queued below that is collected here.
                    while let Ok(e) = input.events.try_recv() {
                        self.event(e);
                    }
                    if !self.pending.is_empty() {
                        let writes = std::mem::take(&mut self.pending);
                        if job_tx.send(CommitJob { grants: Vec::new(), writes }).is_err() {
                            break;
                        }
                    }
                }
                _ = reclaim.tick() => {
                    let w = self.alloc.reclaim(self.clock.now(), RECLAIM_PER_PASS);
                    if !w.is_empty() {
                        tracing::debug!(count = w.len(), "reclaimed expired addresses");
                        self.pending.extend(w);
                    }
                }
                r = bell.readable(), if !more => {
                    if let Ok(mut guard) = r {
                        guard.clear_ready();
                    }
                    // Drain the doorbell before the channels, so a ring that
                    // comes after this drain is never lost.
                    input.bell.drain();
                    more = input.drain(&mut batch, MAX_BATCH);
                    if let Err(()) = self.dispatch(&mut batch, &job_tx) {
                        break;
                    }
                }
                () = std::future::ready(()), if more => {
                    more = input.drain(&mut batch, MAX_BATCH);
                    if let Err(()) = self.dispatch(&mut batch, &job_tx) {
                        break;
                    }
                }
            }
            // The write-behind lag counts from the moment the queue stopped
            // being empty (an Instant read only at that change).
            match (self.pending.is_empty(), self.pending_since) {
                (true, Some(_)) => self.pending_since = None,
                (false, None) => self.pending_since = Some(std::time::Instant::now()),
                _ => {}
            }
        }
        // Shutting down: no new allocations, but every event already
        // received is applied and persisted, and every commit in flight
        // finishes.
        while let Ok(e) = input.events.try_recv() {
            self.event(e);
        }
        let writes = std::mem::take(&mut self.pending);
        let _ = job_tx.send(CommitJob {
            grants: Vec::new(),
            writes,
        });
        drop(job_tx);
        while let Some(d) = done_rx.recv().await {
            self.committed(d);
            self.ring_doorbells();
        }
        let _ = committer.await;
        // What still failed gets a few direct attempts.
        for attempt in 0..5 {
            if self.pending.is_empty() {
                break;
            }
            match self.store.apply(&self.pending, unix_now()).await {
                Ok(out) => {
                    for w in out
                        .iter()
                        .zip(std::mem::take(&mut self.pending))
                        .filter_map(|(o, w)| o.map(|_| w))
                    {
                        self.alloc.persisted(&w);
                    }
                }
                Err(e) => {
                    tracing::warn!(attempt, pending = self.pending.len(), error = %e, "write-behind flush failed at shutdown; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        self.stats.counters.write_behind_pending = self.pending.len();
        self.stats.clone()
    }

    /// Processes a drained batch and hands its grants, with the
    /// write-behind queued so far, to the committer.
    fn dispatch(
        &mut self,
        batch: &mut Vec<Input>,
        jobs: &mpsc::UnboundedSender<CommitJob>,
    ) -> Result<(), ()> {
        let grants = self.process(batch);
        self.hand_over(grants, jobs)
    }

    /// Hands `grants`, with the write-behind queued so far, to the
    /// committer, and rings the workers that have replies.
    fn hand_over(
        &mut self,
        grants: Vec<PendingGrant>,
        jobs: &mpsc::UnboundedSender<CommitJob>,
    ) -> Result<(), ()> {
        self.pending.extend(self.alloc.take_side_writes());
        self.ring_doorbells();
        if !grants.is_empty() {
            self.grants_in_flight += grants.len();
            let writes = std::mem::take(&mut self.pending);
            jobs.send(CommitJob { grants, writes }).map_err(|_| ())?;
        }
        Ok(())
    }

    fn answer(&mut self, q: Query) {
        match q {
            Query::Stats(tx) => {
                let mut s = self.stats.clone();
                s.pools = self.alloc.stats(unix_now());
                s.counters.pool_exhausted = self.alloc.exhausted;
                s.counters.borrowed = self.alloc.borrowed;
                s.counters.write_behind_pending = self.pending.len();
                s.counters.write_behind_lag_ms = self
                    .pending_since
                    .filter(|_| !self.pending.is_empty())
                    .map_or(0, |t| t.elapsed().as_millis() as u64);
                s.commit_batch = self.commit_stats.batch.snapshot();
                s.commit_latency_us = self.commit_stats.latency_us.snapshot();
                let _ = tx.send(s);
            }
            Query::Leases(q, tx) => {
                let _ = tx.send(self.alloc.lease_page(&q));
            }
            Query::Reserve {
                subnet_id,
                client_key,
                address,
                reply,
            } => {
                let r = match address {
                    Some(a) => self.alloc.reserve(subnet_id, &client_key, a),
                    None => self.alloc.unreserve(subnet_id, &client_key),
                };
                let _ = reply.send(r);
            }
            Query::SetReservations(want, tx) => {
                let refused = self.alloc.set_runtime_reservations(&want);
                for (subnet_id, address, why) in &refused {
                    tracing::warn!(subnet_id, %address, error = %why, "stored reservation not applied");
                }
                let _ = tx.send(refused.len());
            }
            Query::Reconfigure(subnets, tx) => {
                self.alloc.reconfigure(&subnets);
                let _ = tx.send(());
            }
            Query::Release(address, tx) => {
                let released = self.alloc.release_by_operator(address, unix_now());
                let _ = tx.send(released.map(|(info, write)| {
                    self.pending.push(write);
                    info
                }));
            }
        }
    }

    /// Applies records other servers committed, forward-only, and counts
    /// the sync lag of a batch heard on the channel: from the origin's
    /// commit to this map holding it.
    fn apply_synced(&mut self, batch: &crate::sync::Synced) {
        for r in &batch.records {
            self.alloc.apply_record(r);
        }
        self.stats.counters.synced += batch.records.len() as u64;
        if let (Some(at), Some(stats)) = (batch.committed_us, &self.sync_stats) {
            stats.lag(crate::sync::now_us().saturating_sub(at));
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
            AllocDecision::Offer { .. } => self.stats.counters.offers += 1,
            AllocDecision::Ack { .. } => self.stats.counters.acks += 1,
            AllocDecision::Nak => self.stats.counters.naks += 1,
            AllocDecision::Ignore => return,
        }
        let w = worker as usize;
        let (Some(tx), Some(shared)) = (self.replies.get(w), self.workers.get(w)) else {
            self.stats.counters.reply_drops += 1;
            return;
        };
        if tx.try_send(AllocReply { decision, frame }).is_err() {
            self.stats.counters.reply_drops += 1;
            // A full reply channel means the worker is behind: wake it now.
            shared.wake();
            return;
        }
        self.to_wake[w] = true;
    }

    fn ring_doorbells(&mut self) {
        for (w, wake) in self.to_wake.iter_mut().enumerate() {
            if std::mem::take(wake) {
                if let Some(shared) = self.workers.get(w) {
                    shared.wake();
                }
            }
        }
    }

    /// Handles a drained batch: answers what needs no commit, returns the
    /// grants to commit.
    fn process(&mut self, batch: &mut Vec<Input>) -> Vec<PendingGrant> {
        let now = unix_now();
        let mut grants = Vec::new();
        for msg in batch.drain(..) {
            match msg {
                Input::Event(e) => self.event(e),
                Input::Alloc(req) => {
                    let req = *req;
                    match req.kind {
                        AllocKind::Discover => {
                            let key = req.client_key.as_bytes();
                            let hw = Some(req.hw_addr);
                            let d = self.alloc.discover(req.subnet, key, hw, req.requested, now);
                            self.reply(req.worker, d, req.frame);
                        }
                        AllocKind::Request | AllocKind::Renew => {
                            if self.grants_in_flight + grants.len() >= MAX_GRANTS_IN_FLIGHT {
                                self.stats.counters.shed += 1;
                                continue;
                            }
                            if let Some(req) = self.look_up_if_missed(req) {
                                self.decide(req, now, &mut grants);
                            }
                        }
                    }
                }
            }
        }
        grants
    }

    /// Decides a REQUEST or a durable renewal: a grant to commit, a NAK, or
    /// silence.
    fn decide(&mut self, req: AllocRequest, now: u64, grants: &mut Vec<PendingGrant>) {
        let key = req.client_key.as_bytes();
        let hw = Some(req.hw_addr);
        let outcome = if req.kind == AllocKind::Request {
            self.alloc.request(req.subnet, key, hw, req.requested, now)
        } else {
            self.alloc.renew(req.subnet, key, hw, req.requested, now)
        };
        match outcome {
            RequestOutcome::Commit(mut grant) => {
                if let LeaseWrite::Grant { relay, .. } = &mut grant {
                    *relay = relay_ids(req.frame.as_slice());
                }
                grants.push(PendingGrant {
                    worker: req.worker,
                    frame: req.frame,
                    grant,
                })
            }
            RequestOutcome::Nak => self.reply(req.worker, AllocDecision::Nak, req.frame),
            RequestOutcome::Ignore => {}
        }
    }

    /// The committer's report: ACK (or roll back) each grant, requeue
    /// write-behind that failed.
    fn committed(&mut self, d: CommitDone) {
        let n = d.grants.len();
        self.grants_in_flight = self.grants_in_flight.saturating_sub(n);
        match &d.outcomes {
            Some(out) => {
                self.stats.counters.commits += 1;
                // Persisted extensions raise the durable expiry the fast
                // path's promise bound follows.
                for (w, o) in d.writes.iter().zip(out.iter().skip(n)) {
                    if o.is_some() {
                        self.alloc.persisted(w);
                    }
                }
            }
            None => {
                self.stats.counters.store_errors += 1;
                self.pending.extend(d.writes);
            }
        }
        for (i, g) in d.grants.into_iter().enumerate() {
            let (ok, version) = match &d.outcomes {
                Some(out) => (true, out.get(i).copied().flatten()),
                None => (false, None),
            };
            if ok && version.is_none() {
                // Refused by the store: another client may hold the address
                // (the UNIQUE guard) or its block changed hands (the fence).
                self.stats.counters.conflicts += 1;
            }
            let decision = self.alloc.committed(&g.grant, ok, version);
            self.reply(g.worker, decision, g.frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::Timers;
    use crate::config::Config;
    use crate::store::WriteOutcome;
    use irondhcp_fastpath::channel::{key_hash, ClientKey};
    use irondhcp_fastpath::lease_map::LeaseMap;
    use std::net::Ipv4Addr;
    use std::sync::Mutex;

    use super::test_store::FlakyStore;

    /// Records what the lease-events hook hears.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<LeaseWrite>>);

    impl LeaseEvents for Recorder {
        fn committed(&self, writes: &[LeaseWrite], outcomes: &[WriteOutcome]) {
            let mut v = self.0.lock().unwrap();
            for (w, o) in writes.iter().zip(outcomes) {
                if o.is_some() {
                    v.push(w.clone());
                }
            }
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
            grace: 61,
            write_threshold: 0,
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

    fn request(addr: Ipv4Addr) -> AllocRequest {
        AllocRequest {
            worker: 0,
            kind: AllocKind::Request,
            subnet: 0,
            client_key: ClientKey::new(b"client"),
            hw_addr: [2, 0, 0, 0, 0, 1],
            requested: Some(addr),
            frame: FrameBuf::copy_from(&[0u8; 64]).unwrap(),
        }
    }

    /// Polls `cond` until it holds (5 s at most).
    async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
        for _ in 0..500 {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cond()
    }

    #[tokio::test]
    async fn store_outage_withholds_acks_and_keeps_write_behind() {
        let store = Arc::new(FlakyStore::default());
        let (p, replies) = plane(store.clone());
        let heard = Arc::new(Recorder::default());
        let p = p.with_events(heard.clone());
        let (alloc_tx, allocs) = crossbeam_channel::bounded(16);
        let (event_tx, events) = crossbeam_channel::bounded(16);
        let bell = Arc::new(Doorbell::new().unwrap());
        let input = FastInput {
            allocs,
            events,
            bell: bell.clone(),
        };
        let (_q_tx, q_rx) = mpsc::channel(1);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(p.run(input, q_rx, stop_rx));
        let addr = Ipv4Addr::new(10, 0, 0, 15);

        // A grant while the store is down: the commit fails, no ACK.
        *store.down.lock().unwrap() = true;
        alloc_tx.send(request(addr)).unwrap();
        bell.ring();
        assert!(eventually(|| *store.failures.lock().unwrap() >= 1).await);
        assert!(replies.try_recv().is_err(), "no ACK without a commit");

        // Store back: the retransmitted REQUEST is committed, then ACKed.
        *store.down.lock().unwrap() = false;
        alloc_tx.send(request(addr)).unwrap();
        bell.ring();
        assert!(
            eventually(|| !replies.is_empty()).await,
            "ACK after the commit"
        );
        let rep = replies.try_recv().unwrap();
        assert!(matches!(rep.decision, AllocDecision::Ack { addr: a, .. } if a == addr));

        // A renewal answered from memory while the store is down is kept
        // through failed flushes and persisted once the store returns.
        *store.down.lock().unwrap() = true;
        let failures = *store.failures.lock().unwrap();
        let kh = key_hash(1, b"client");
        let expiry = unix_now() + 10_000;
        event_tx
            .send(FastEvent::Renewed {
                subnet: 0,
                addr,
                key_hash: kh,
                expiry,
            })
            .unwrap();
        bell.ring();
        assert!(
            eventually(|| *store.failures.lock().unwrap() >= failures + 2).await,
            "flushes retried"
        );
        *store.down.lock().unwrap() = false;
        let persisted = || {
            let c = store.committed.lock().unwrap();
            c.iter()
                .any(|w| matches!(w, LeaseWrite::Extend { expiry: e, .. } if *e == expiry))
        };
        assert!(
            eventually(persisted).await,
            "renewal persisted after the outage"
        );
        stop_tx.send(true).unwrap();
        let stats = task.await.unwrap();
        assert!(stats.counters.store_errors >= 3, "{stats:?}");
        // The hook heard the grant and the extension, after their commit.
        let h = heard.0.lock().unwrap();
        assert!(h
            .iter()
            .any(|w| matches!(w, LeaseWrite::Grant { address, .. } if *address == addr)));
        assert!(h
            .iter()
            .any(|w| matches!(w, LeaseWrite::Extend { expiry: e, .. } if *e == expiry)));
        assert_eq!(stats.counters.write_behind_pending, 0);
        assert_eq!(stats.counters.acks, 1);
    }
}
