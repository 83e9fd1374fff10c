//! The lease-events hook: what the commit pipeline tells the world.
//!
//! Every committed batch ends here, with each write and what became of it.
//! On one box nothing needs to hear it ([`NoEvents`]); in a cluster the
//! sync layer publishes the writes that took effect to the other servers.
//! The control plane reaches the cluster only through this interface
//! (docs/decisions.md, 5), and it is called off the allocation loop, from
//! the committer task, so it must not block: a publisher queues and
//! returns.

use crate::store::{LeaseWrite, WriteOutcome};

/// Hears every committed batch.
pub trait LeaseEvents: Send + Sync {
    /// `writes[i]` was committed with outcome `outcomes[i]` (`None`: it did
    /// not take effect).
    fn committed(&self, writes: &[LeaseWrite], outcomes: &[WriteOutcome]);
}

/// One box: nobody to tell.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl LeaseEvents for NoEvents {
    fn committed(&self, _writes: &[LeaseWrite], _outcomes: &[WriteOutcome]) {}
}
