//! The committer task: the one writer of the lease store.
//!
//! It commits a job (grants waiting for their ACK plus write-behind) in one
//! transaction, merging every job that queued up behind the one in flight
//! (group commit), reports each write's outcome back to the control plane,
//! and then hands what took effect to the lease-events hook — the end of
//! the commit pipeline, where the cluster layer publishes (a no-op on one
//! box). Running apart from the allocation loop keeps DISCOVERs from ever
//! waiting behind an fsync.
//!
//! Each commit costs the same whatever its size (an fsync, a hand-off to
//! the store's writer thread and back), so an operator may trade latency for CPU with a
//! commit window (`commit_window_us`): the committer then waits that long
//! after the first job before it commits, gathering more grants into the
//! transaction. At 4,000 DORA/s a 1 ms window cut the CPU per new lease by
//! about a quarter and added about 3 ms to REQUEST→ACK (docs/benchmarks.md).

use std::sync::Arc;
use std::time::Duration;

use irondhcp_fastpath::unix_now;
use tokio::sync::mpsc;

use super::events::LeaseEvents;
use super::PendingGrant;
use crate::histogram::Histogram;
use crate::store::{LeaseStore, LeaseWrite, WriteOutcome};

/// Transactions per batch size and duration, read by `/metrics`.
pub struct CommitStats {
    /// Writes per transaction.
    pub batch: Histogram,
    /// From the start of a transaction to its commit (or failure), µs.
    pub latency_us: Histogram,
}

impl Default for CommitStats {
    fn default() -> Self {
        Self {
            batch: Histogram::new(&[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096]),
            latency_us: Histogram::new(&[
                250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 250_000, 500_000,
                1_000_000, 5_000_000,
            ]),
        }
    }
}

/// Work for the committer: grants and write-behind, one transaction.
pub(super) struct CommitJob {
    pub grants: Vec<PendingGrant>,
    pub writes: Vec<LeaseWrite>,
}

/// The committer's answer: per write what became of it, or a failure
/// (`outcomes` is `None`; the write-behind comes back to be retried).
pub(super) struct CommitDone {
    pub grants: Vec<PendingGrant>,
    pub writes: Vec<LeaseWrite>,
    /// Grants' outcomes first, then the writes'.
    pub outcomes: Option<Vec<WriteOutcome>>,
}

/// Commits jobs until the job channel closes, each transaction gathering
/// what queued up within `window` of its first job.
pub(super) async fn committer<S: LeaseStore>(
    store: Arc<S>,
    events: Arc<dyn LeaseEvents>,
    window: Duration,
    stats: Arc<CommitStats>,
    mut jobs: mpsc::UnboundedReceiver<CommitJob>,
    done: mpsc::Sender<CommitDone>,
) {
    while let Some(mut job) = jobs.recv().await {
        if !window.is_zero() {
            tokio::time::sleep(window).await;
        }
        while let Ok(more) = jobs.try_recv() {
            job.grants.extend(more.grants);
            job.writes.extend(more.writes);
        }
        let n = job.grants.len();
        let mut all: Vec<LeaseWrite> = job.grants.iter().map(|g| g.grant.clone()).collect();
        all.extend(job.writes.iter().cloned());
        let started = std::time::Instant::now();
        let applied = store.apply(&all, unix_now()).await;
        stats.batch.observe(all.len() as u64);
        stats
            .latency_us
            .observe(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        let outcomes = match applied {
            Ok(out) => {
                events.committed(&all, &out);
                Some(out)
            }
            Err(e) => {
                tracing::error!(error = %e, grants = n, writes = job.writes.len(), "lease store commit failed");
                None
            }
        };
        let result = CommitDone {
            grants: job.grants,
            writes: job.writes,
            outcomes,
        };
        if done.send(result).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plane::events::NoEvents;
    use crate::plane::test_store::FlakyStore;
    use std::net::Ipv4Addr;

    fn job(last_octet: u8) -> CommitJob {
        CommitJob {
            grants: Vec::new(),
            writes: vec![LeaseWrite::Expire {
                subnet_id: 1,
                address: Ipv4Addr::new(10, 0, 0, last_octet),
                client_key: vec![1],
                version: 1,
            }],
        }
    }

    /// Two jobs 20 ms apart: how many transactions with `window`.
    async fn transactions(window: Duration) -> Vec<usize> {
        let store = Arc::new(FlakyStore::default());
        let (job_tx, job_rx) = mpsc::unbounded_channel();
        let (done_tx, mut done_rx) = mpsc::channel(8);
        let task = tokio::spawn(committer(
            store.clone(),
            Arc::new(NoEvents),
            window,
            Arc::new(CommitStats::default()),
            job_rx,
            done_tx,
        ));
        job_tx.send(job(1)).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        job_tx.send(job(2)).unwrap();
        drop(job_tx);
        while done_rx.recv().await.is_some() {}
        task.await.unwrap();
        let v = store.transactions.lock().unwrap().clone();
        v
    }

    #[tokio::test]
    async fn every_transaction_is_measured() {
        let store = Arc::new(FlakyStore::default());
        let stats = Arc::new(CommitStats::default());
        let (job_tx, job_rx) = mpsc::unbounded_channel();
        let (done_tx, mut done_rx) = mpsc::channel(8);
        let task = tokio::spawn(committer(
            store,
            Arc::new(NoEvents),
            Duration::ZERO,
            stats.clone(),
            job_rx,
            done_tx,
        ));
        let mut two = job(1);
        two.writes.extend(job(2).writes);
        job_tx.send(two).unwrap();
        done_rx.recv().await.unwrap();
        drop(job_tx);
        task.await.unwrap();
        let b = stats.batch.snapshot();
        assert_eq!(
            (b.count(), b.sum, b.counts[1]),
            (1, 2, 1),
            "one transaction of two writes"
        );
        assert_eq!(stats.latency_us.snapshot().count(), 1);
    }

    #[tokio::test]
    async fn a_commit_window_gathers_later_jobs_into_one_transaction() {
        assert_eq!(transactions(Duration::ZERO).await, vec![1, 1]);
        assert_eq!(transactions(Duration::from_millis(200)).await, vec![2]);
    }
}
