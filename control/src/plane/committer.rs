//! The committer task: the one writer of the lease store.
//!
//! It commits a job (grants waiting for their ACK plus write-behind) in one
//! transaction, merging every job that queued up behind the one in flight
//! (group commit), reports each write's outcome back to the control plane,
//! and then hands what took effect to the lease-events hook — the end of
//! the commit pipeline, where the cluster layer publishes (a no-op on one
//! box). Running apart from the allocation loop keeps DISCOVERs from ever
//! waiting behind an fsync.

use std::sync::Arc;

use irondhcp_fastpath::unix_now;
use tokio::sync::mpsc;

use super::events::LeaseEvents;
use super::PendingGrant;
use crate::store::{LeaseStore, LeaseWrite, WriteOutcome};

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

/// Commits jobs until the job channel closes.
pub(super) async fn committer<S: LeaseStore>(
    store: Arc<S>,
    events: Arc<dyn LeaseEvents>,
    mut jobs: mpsc::UnboundedReceiver<CommitJob>,
    done: mpsc::Sender<CommitDone>,
) {
    while let Some(mut job) = jobs.recv().await {
        while let Ok(more) = jobs.try_recv() {
            job.grants.extend(more.grants);
            job.writes.extend(more.writes);
        }
        let n = job.grants.len();
        let mut all: Vec<LeaseWrite> = job.grants.iter().map(|g| g.grant.clone()).collect();
        all.extend(job.writes.iter().cloned());
        let outcomes = match store.apply(&all, unix_now()).await {
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
