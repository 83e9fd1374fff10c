//! Address ownership in a cluster: which blocks of each pool this server
//! allocates from (docs/decisions.md, 9; the SQL is in
//! `store::postgres::blocks`).
//!
//! Every second the task frees the blocks of servers whose heartbeat is
//! older than `cluster.release_after`, counts the live servers, and moves
//! this server's holding toward its fair share of each subnet's blocks
//! (the block count divided by the live servers, rounded up): it claims
//! free blocks when it has fewer, gives blocks back when it has more, so a
//! server that joins finds room within a few seconds. The control plane
//! gets the owned set (with each block's fencing epoch) whenever it
//! changes. Runs beside the control plane: a slow database delays a
//! rebalance, never a packet.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use irondhcp_fastpath::unix_now;
use rand::seq::SliceRandom;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::alloc::OwnedBlock;
use crate::store::postgres::{BlockRow, PgStore};
use crate::store::{Fence, StoreError};

/// How often ownership is looked at.
const PERIOD: Duration = Duration::from_secs(1);

/// The ownership task's counters.
#[derive(Debug, Default)]
pub struct OwnershipStats {
    pub owned: AtomicU64,
    pub total: AtomicU64,
    pub live_servers: AtomicU64,
    pub claimed: AtomicU64,
    pub given_back: AtomicU64,
    /// Blocks this server freed because their owner's heartbeat stopped.
    pub released_dead: AtomicU64,
    pub errors: AtomicU64,
}

/// One reading of [`OwnershipStats`].
#[derive(Debug, Clone, Serialize)]
pub struct OwnershipSnapshot {
    pub owned: u64,
    pub total: u64,
    pub live_servers: u64,
    pub claimed: u64,
    pub given_back: u64,
    pub released_dead: u64,
    pub errors: u64,
}

impl OwnershipStats {
    pub fn snapshot(&self) -> OwnershipSnapshot {
        let r = |c: &AtomicU64| c.load(Relaxed);
        OwnershipSnapshot {
            owned: r(&self.owned),
            total: r(&self.total),
            live_servers: r(&self.live_servers),
            claimed: r(&self.claimed),
            given_back: r(&self.given_back),
            released_dead: r(&self.released_dead),
            errors: r(&self.errors),
        }
    }
}

/// The ownership task.
pub struct Ownership {
    pub store: PgStore,
    pub server_id: String,
    pub boot_epoch: u32,
    /// (subnet id, first, last) of every block, from the configuration.
    pub layout: Vec<(u32, u32, u32)>,
    pub release_after: u64,
    pub to_plane: mpsc::Sender<Vec<OwnedBlock>>,
    pub stats: Arc<OwnershipStats>,
}

/// What one pass decided, as pure data (unit-tested).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub claim: Vec<i32>,
    pub give_back: Vec<i32>,
}

/// Moves `me`'s holding toward its share of each subnet's blocks of
/// `layout` among `live` servers. `rows` are the stored blocks; blocks
/// outside `layout` (another configuration's) are left alone.
pub fn plan(
    rows: &[BlockRow],
    layout: &HashSet<(u32, u32, u32)>,
    me: &str,
    boot_epoch: u32,
    live: u32,
) -> Plan {
    let live = live.max(1) as usize;
    let mut by_subnet: HashMap<u32, Vec<&BlockRow>> = HashMap::new();
    for r in rows
        .iter()
        .filter(|r| layout.contains(&(r.subnet_id, r.first, r.last)))
    {
        by_subnet.entry(r.subnet_id).or_default().push(r);
    }
    let mut p = Plan::default();
    let mut rng = rand::thread_rng();
    let mut subnets: Vec<_> = by_subnet.into_iter().collect();
    subnets.sort_unstable_by_key(|(s, _)| *s);
    for (_, blocks) in subnets {
        let share = blocks.len().div_ceil(live);
        let mine: Vec<i32> = blocks
            .iter()
            .filter(|b| b.owner.as_deref() == Some(me) && b.owner_epoch == boot_epoch)
            .map(|b| b.id)
            .collect();
        if mine.len() < share {
            let mut free: Vec<i32> = blocks
                .iter()
                .filter(|b| match b.owner.as_deref() {
                    None => true,
                    // An earlier boot of this server: ours to take again.
                    Some(o) => o == me && b.owner_epoch != boot_epoch,
                })
                .map(|b| b.id)
                .collect();
            free.shuffle(&mut rng);
            p.claim.extend(free.into_iter().take(share - mine.len()));
        } else if mine.len() > share {
            let over = mine.len() - share;
            let mut extra = mine;
            extra.shuffle(&mut rng);
            p.give_back.extend(extra.into_iter().take(over));
        }
    }
    p
}

/// Whether this server may free other servers' blocks: only once it has
/// itself reached the database for `release_after` seconds without a
/// break. After an outage every heartbeat is old, the others' only because
/// they could not write them either; freeing their blocks then would fence
/// out every grant they have in flight (a storm of NAKs after PostgreSQL
/// restarts). Waiting one release time lets the live ones heartbeat again.
pub fn may_release(connected_since: u64, now: u64, release_after: u64) -> bool {
    now.saturating_sub(connected_since) >= release_after
}

impl Ownership {
    /// Runs until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let layout: HashSet<(u32, u32, u32)> = self.layout.iter().copied().collect();
        self.stats.total.store(layout.len() as u64, Relaxed);
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut created = false;
        let mut sent: Option<Vec<OwnedBlock>> = None;
        // Since when this server has reached the database without a break.
        let mut connected_since: Option<u64> = None;
        loop {
            tokio::select! {
                _ = crate::sync::stopped(&mut shutdown) => return,
                _ = tick.tick() => {}
            }
            if !created {
                match self.store.ensure_blocks(&self.layout).await {
                    Ok(()) => created = true,
                    Err(e) => {
                        self.failed(&e);
                        continue;
                    }
                }
            }
            let now = unix_now();
            let release = may_release(*connected_since.get_or_insert(now), now, self.release_after);
            match self.pass(&layout, release).await {
                Ok(owned) => {
                    self.stats.owned.store(owned.len() as u64, Relaxed);
                    if sent.as_ref() != Some(&owned) {
                        if self.to_plane.send(owned.clone()).await.is_err() {
                            return;
                        }
                        sent = Some(owned);
                    }
                }
                Err(e) => {
                    connected_since = None;
                    self.failed(&e);
                }
            }
        }
    }

    fn failed(&self, e: &StoreError) {
        self.stats.errors.fetch_add(1, Relaxed);
        tracing::warn!(error = %e, "address block ownership not updated; retrying");
    }

    /// One pass: free dead owners' blocks (when `release`), rebalance,
    /// return what is owned.
    async fn pass(
        &self,
        layout: &HashSet<(u32, u32, u32)>,
        release: bool,
    ) -> Result<Vec<OwnedBlock>, StoreError> {
        let now = unix_now();
        let freed = if release {
            self.store
                .release_dead_owners(now, self.release_after)
                .await?
        } else {
            0
        };
        if freed > 0 {
            self.stats.released_dead.fetch_add(freed, Relaxed);
            tracing::info!(
                blocks = freed,
                "freed the address blocks of servers whose heartbeat stopped"
            );
        }
        let live = self.store.live_servers(now, self.release_after).await?;
        self.stats.live_servers.store(u64::from(live), Relaxed);
        let rows = self.store.blocks().await?;
        let p = plan(&rows, layout, &self.server_id, self.boot_epoch, live);
        let mut changed = false;
        for id in &p.claim {
            if self
                .store
                .claim_block(*id, self.boot_epoch, now)
                .await?
                .is_some()
            {
                self.stats.claimed.fetch_add(1, Relaxed);
                changed = true;
            }
        }
        for id in &p.give_back {
            if self.store.give_back_block(*id, self.boot_epoch).await? {
                self.stats.given_back.fetch_add(1, Relaxed);
                changed = true;
            }
        }
        let rows = if changed {
            self.store.blocks().await?
        } else {
            rows
        };
        Ok(rows
            .iter()
            .filter(|b| {
                b.owner.as_deref() == Some(self.server_id.as_str())
                    && b.owner_epoch == self.boot_epoch
                    && layout.contains(&(b.subnet_id, b.first, b.last))
            })
            .map(|b| OwnedBlock {
                subnet_id: b.subnet_id,
                first: Ipv4Addr::from(b.first),
                last: Ipv4Addr::from(b.last),
                fence: Fence {
                    block: b.id,
                    epoch: b.epoch,
                },
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i32, subnet: u32, owner: Option<&str>, owner_epoch: u32) -> BlockRow {
        BlockRow {
            id,
            subnet_id: subnet,
            first: 1000 + id as u32 * 16,
            last: 1000 + id as u32 * 16 + 15,
            owner: owner.map(str::to_string),
            owner_epoch,
            epoch: 1,
        }
    }

    fn layout(rows: &[BlockRow]) -> HashSet<(u32, u32, u32)> {
        rows.iter()
            .map(|r| (r.subnet_id, r.first, r.last))
            .collect()
    }

    #[test]
    fn blocks_are_freed_only_after_a_release_time_of_unbroken_contact() {
        assert!(!may_release(1_000, 1_000, 30), "just (re)connected");
        assert!(!may_release(1_000, 1_029, 30));
        assert!(may_release(1_000, 1_030, 30));
    }

    #[test]
    fn a_server_claims_its_share_of_free_blocks() {
        let rows: Vec<BlockRow> = (0..8).map(|i| row(i, 1, None, 0)).collect();
        let p = plan(&rows, &layout(&rows), "a", 1, 3);
        assert_eq!(p.claim.len(), 3, "ceil(8 / 3)");
        assert!(p.give_back.is_empty());
        // Alone, it takes them all.
        assert_eq!(plan(&rows, &layout(&rows), "a", 1, 1).claim.len(), 8);
    }

    #[test]
    fn a_server_over_its_share_gives_back_and_takes_its_old_boots_blocks() {
        let mut rows: Vec<BlockRow> = (0..8).map(|i| row(i, 1, Some("a"), 1)).collect();
        let p = plan(&rows, &layout(&rows), "a", 1, 2);
        assert_eq!(p.give_back.len(), 4, "a second server joined");
        assert!(p.claim.is_empty());
        // After a restart (boot 2) the old boot's blocks are ours to claim,
        // another server's are not.
        rows[0].owner = Some("b".into());
        let p = plan(&rows, &layout(&rows), "a", 2, 2);
        assert_eq!(p.claim.len(), 4);
        assert!(!p.claim.contains(&0));
    }

    #[test]
    fn blocks_of_another_layout_and_other_subnets_are_counted_apart() {
        let mut rows: Vec<BlockRow> = (0..4).map(|i| row(i, 1, None, 0)).collect();
        rows.extend((4..6).map(|i| row(i, 2, None, 0)));
        let mut l = layout(&rows);
        l.remove(&(1, rows[0].first, rows[0].last));
        let p = plan(&rows, &l, "a", 1, 2);
        // Subnet 1: three blocks in the layout, share 2; subnet 2: share 1.
        assert_eq!(p.claim.len(), 3);
        assert!(!p.claim.contains(&0));
    }
}
