//! Everything the server counts, gathered once into one typed structure.
//!
//! The management socket and the HTTP listener render it as JSON, and
//! Prometheus `/metrics` (`metrics.rs`) renders the same structure, so a
//! counter is defined, summed and named in one place (docs/decisions.md,
//! 5 and 10).

use std::collections::BTreeMap;
use std::sync::Arc;

use irondhcp_fastpath::counters::{CounterSnapshot, DropReason, MESSAGE_TYPE_NAMES};
use irondhcp_fastpath::lease_map::LeaseMap;
use irondhcp_fastpath::worker::WorkerShared;
use irondhcp_xdp_loader::XdpCounters;
use serde::Serialize;

use crate::alloc::PoolStats;
use crate::plane::PlaneStats;

/// One snapshot of every counter.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub server_id: String,
    pub pools: Vec<PoolStats>,
    pub control: ControlStats,
    pub packets: PacketStats,
    pub lease_map: LeaseMapStats,
    pub process: ProcessStats,
    /// `None` once the XDP program is detached (shutting down).
    pub xdp: Option<XdpStats>,
    /// The cluster's sync (`None` on one box).
    pub sync: Option<crate::sync::SyncSnapshot>,
    /// The cluster's address blocks (`None` on one box).
    pub blocks: Option<crate::ownership::OwnershipSnapshot>,
    /// Per queue, the kernel's counters of its AF_XDP socket.
    pub queues: Vec<QueueStats>,
    /// Writes per store transaction.
    pub commit_batch: crate::histogram::HistogramSnapshot,
    /// Store transaction durations, µs.
    pub commit_latency_us: crate::histogram::HistogramSnapshot,
}

/// The kernel's counters of one queue's AF_XDP socket (XDP_STATISTICS):
/// frames it dropped and why.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueStats {
    pub queue: u32,
    /// Dropped for any other reason (no room in the UMEM).
    pub rx_dropped: u64,
    /// Dropped because the RX ring was full (the worker fell behind).
    pub rx_ring_full: u64,
    /// Times the fill ring was empty (no buffer to receive into).
    pub rx_fill_ring_empty: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    /// Times the TX ring was empty when the kernel looked.
    pub tx_ring_empty: u64,
}

/// The cluster's live counters (both `None` on one box).
#[derive(Clone, Default)]
pub struct ClusterStats {
    pub sync: Option<Arc<crate::sync::SyncStats>>,
    pub blocks: Option<Arc<crate::ownership::OwnershipStats>>,
}

/// The control plane's counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ControlStats {
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    pub pool_exhausted: u64,
    pub commits: u64,
    pub store_errors: u64,
    pub write_behind_pending: usize,
    pub reply_drops: u64,
    /// REQUESTs dropped because too many grants were waiting for the store.
    pub shed: u64,
    /// Renewals that missed the map and were looked up in the shared store,
    /// those whose lease was found there, and those dropped because too
    /// many lookups were in flight.
    pub lookups: u64,
    pub lookups_found: u64,
    pub lookups_shed: u64,
    /// Lease records from other servers applied to this server's map.
    pub synced: u64,
    /// Grants the store refused (the address was another client's, or its
    /// block changed hands): answered with a NAK or nothing, never an ACK.
    pub conflicts: u64,
    /// New addresses taken outside this server's blocks (they were full).
    pub borrowed: u64,
    /// Requests and events queued from the workers to the control plane.
    pub control_queue: usize,
    pub event_queue: usize,
    /// How long the write-behind queue has held writes (0: empty).
    pub write_behind_lag_ms: u64,
}

/// The workers' counters, summed over queues.
#[derive(Debug, Clone, Serialize)]
pub struct PacketStats {
    pub rx_frames: u64,
    pub tx_frames: u64,
    pub answered_from_map: u64,
    pub to_control: u64,
    /// Renewals from memory ACKed shorter than the lease (promise bound).
    pub promise_shortened: u64,
    /// Renewals sent to the durable path because the bound was near.
    pub promise_deferred: u64,
    /// By DHCP message type name.
    pub received: BTreeMap<&'static str, u64>,
    pub sent: BTreeMap<&'static str, u64>,
    /// By drop reason name.
    pub drops: BTreeMap<&'static str, u64>,
    pub drops_total: u64,
}

/// Size of the lease map.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseMapStats {
    pub leases: usize,
    pub capacity: usize,
    pub bytes: usize,
}

/// Resident and peak memory of the daemon.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessStats {
    pub rss_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
}

/// The XDP program's counters.
#[derive(Debug, Clone, Serialize)]
pub struct XdpStats {
    pub redirected: u64,
    pub passed: u64,
    pub malformed: u64,
    pub no_socket: u64,
    pub not_ours: u64,
    pub fragments: u64,
}

impl Stats {
    /// Gathers the snapshot from the plane's counters, the workers', the
    /// lease map, the process and the XDP program.
    pub fn gather(
        server_id: &str,
        plane: PlaneStats,
        workers: &[Arc<WorkerShared>],
        leases: &LeaseMap,
        xdp: Option<XdpCounters>,
        cluster: &ClusterStats,
    ) -> Self {
        Stats {
            server_id: server_id.to_string(),
            control: plane.counters,
            pools: plane.pools,
            packets: PacketStats::sum(workers),
            lease_map: LeaseMapStats {
                leases: leases.len(),
                capacity: leases.capacity(),
                bytes: leases.memory_bytes(),
            },
            process: ProcessStats::read(),
            xdp: xdp.map(|c| XdpStats {
                redirected: c.redirected,
                passed: c.passed,
                malformed: c.malformed,
                no_socket: c.no_socket,
                not_ours: c.not_ours,
                fragments: c.fragments,
            }),
            sync: cluster.sync.as_ref().map(|s| s.snapshot()),
            blocks: cluster.blocks.as_ref().map(|s| s.snapshot()),
            queues: workers
                .iter()
                .filter_map(|w| w.socket_statistics())
                .map(|(queue, st)| QueueStats {
                    queue,
                    rx_dropped: st.rx_dropped,
                    rx_ring_full: st.rx_ring_full,
                    rx_fill_ring_empty: st.rx_fill_ring_empty_descs,
                    rx_invalid_descs: st.rx_invalid_descs,
                    tx_invalid_descs: st.tx_invalid_descs,
                    tx_ring_empty: st.tx_ring_empty_descs,
                })
                .collect(),
            commit_batch: plane.commit_batch,
            commit_latency_us: plane.commit_latency_us,
        }
    }
}

impl PacketStats {
    /// The workers' counters summed.
    pub fn sum(workers: &[Arc<WorkerShared>]) -> Self {
        let mut total = CounterSnapshot::default();
        for w in workers {
            total.add(&w.counters.snapshot());
        }
        Self::from_snapshot(&total)
    }

    fn from_snapshot(t: &CounterSnapshot) -> Self {
        let by_type = |arr: &[u64; 9]| {
            MESSAGE_TYPE_NAMES
                .iter()
                .zip(arr.iter())
                .map(|(n, v)| (*n, *v))
                .collect()
        };
        PacketStats {
            rx_frames: t.rx_frames,
            tx_frames: t.tx_frames,
            answered_from_map: t.answered_from_map,
            to_control: t.to_control,
            promise_shortened: t.promise_shortened,
            promise_deferred: t.promise_deferred,
            received: by_type(&t.received),
            sent: by_type(&t.sent),
            drops: DropReason::ALL
                .iter()
                .map(|r| (r.name(), t.drops[*r as usize]))
                .collect(),
            drops_total: t.total_drops(),
        }
    }
}

impl ProcessStats {
    /// From /proc/self/status (None where it cannot be read).
    pub fn read() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Self::parse(&status)
    }

    fn parse(status: &str) -> Self {
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        ProcessStats {
            rss_kib: kib("VmRSS:"),
            peak_rss_kib: kib("VmHWM:"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_stats_name_every_type_and_reason() {
        let mut t = CounterSnapshot::default();
        t.received[1] = 7;
        t.drops[DropReason::NotFromClient as usize] = 2;
        let p = PacketStats::from_snapshot(&t);
        assert_eq!(p.received["discover"], 7);
        assert_eq!(p.drops["not_from_client"], 2);
        assert_eq!(p.drops.len(), DropReason::COUNT);
        assert_eq!(p.drops_total, 2);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v.pointer("/received/discover").unwrap(), 7);
    }

    #[test]
    fn process_memory_from_status_text() {
        let p = ProcessStats::parse("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n");
        assert_eq!((p.rss_kib, p.peak_rss_kib), (Some(1024), Some(2048)));
        assert_eq!(ProcessStats::parse("").rss_kib, None);
    }
}
