//! Prometheus `/metrics`: the [`Stats`] snapshot in the text exposition
//! format.
//!
//! The DHCP figures carry the names and labels kea-exporter publishes for
//! Kea (`kea_dhcp4_packets_received_total{operation}`,
//! `kea_dhcp4_addresses_assigned_total{subnet,subnet_id,pool}`, ...), so
//! dashboards and alerts built for Kea keep working; irondhcp's own
//! figures (XDP, the lease map, the control plane, the cluster) are under
//! `irondhcp_`. A subnet's figures carry `pool=""`, each pool range's its
//! `first-last`, as kea-exporter labels Kea's subnet and pool statistics.

use std::fmt::Write;

use crate::stats::Stats;

/// One metric family being written.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.out, "{}", self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family<'a>(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out, name }
}

/// A Prometheus histogram of `h`, its bounds and sum scaled by `scale`
/// (µs to seconds: 1e-6).
fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    h: &crate::histogram::HistogramSnapshot,
    scale: f64,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut below = 0;
    for (bound, n) in h.bounds.iter().zip(&h.counts) {
        below += n;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{}\"}} {below}",
            *bound as f64 * scale
        );
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count());
    let _ = writeln!(out, "{name}_sum {}", h.sum as f64 * scale);
    let _ = writeln!(out, "{name}_count {}", h.count());
}

/// The exposition of `s`.
pub fn render(s: &Stats) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let pk = &s.packets;
    let received = |t: &str| pk.received.get(t).copied().unwrap_or(0) as f64;
    let drop_sum = |reasons: &[&str]| -> f64 {
        reasons
            .iter()
            .map(|r| pk.drops.get(r).copied().unwrap_or(0) as f64)
            .sum()
    };
    let mut f = family(
        &mut out,
        "kea_dhcp4_packets_received_total",
        "counter",
        "DHCPv4 packets received, by type (kea-exporter's names)",
    );
    for (op, v) in [
        ("discover", received("discover")),
        ("request", received("request")),
        ("release", received("release")),
        ("decline", received("decline")),
        ("inform", received("inform")),
        ("unknown", received("other")),
        (
            "parse-failed",
            drop_sum(&["bad_frame", "bad_dhcp", "bad_message_type"]),
        ),
        ("drop", pk.drops_total as f64),
    ] {
        f.sample(&[("operation", op)], v);
    }
    let mut f = family(
        &mut out,
        "kea_dhcp4_packets_sent_total",
        "counter",
        "DHCPv4 packets sent, by type",
    );
    for op in ["offer", "ack", "nak"] {
        f.sample(
            &[("operation", op)],
            pk.sent.get(op).copied().unwrap_or(0) as f64,
        );
    }
    for (name, help, pick) in [
        (
            "kea_dhcp4_addresses_total",
            "Addresses in the subnet (pool=\"\") or pool range",
            0,
        ),
        (
            "kea_dhcp4_addresses_assigned_total",
            "Addresses leased (or being committed)",
            1,
        ),
        (
            "kea_dhcp4_addresses_declined_total",
            "Addresses quarantined after a DHCPDECLINE",
            2,
        ),
    ] {
        let mut f = family(&mut out, name, "gauge", help);
        for p in &s.pools {
            let id = p.subnet_id.to_string();
            let v = [p.total, p.assigned, p.declined][pick];
            f.sample(
                &[("subnet", &p.subnet), ("subnet_id", &id), ("pool", "")],
                v as f64,
            );
            for r in &p.ranges {
                let v = [r.total, r.assigned, r.declined][pick];
                f.sample(
                    &[
                        ("subnet", &p.subnet),
                        ("subnet_id", &id),
                        ("pool", &r.range),
                    ],
                    v as f64,
                );
            }
        }
    }
    let c = &s.control;
    family(
        &mut out,
        "kea_dhcp4_allocations_failed_total",
        "counter",
        "Requests for a new address that found every pool full (all subnets)",
    )
    .sample(
        &[("subnet", ""), ("subnet_id", ""), ("context", "subnet")],
        c.pool_exhausted as f64,
    );

    // irondhcp's own.
    for (name, help, v) in [
        (
            "irondhcp_rx_frames_total",
            "Frames the workers received",
            pk.rx_frames,
        ),
        (
            "irondhcp_tx_frames_total",
            "Frames the workers sent",
            pk.tx_frames,
        ),
        (
            "irondhcp_answered_from_map_total",
            "Requests answered from the lease map, without the control plane",
            pk.answered_from_map,
        ),
        (
            "irondhcp_to_control_total",
            "Requests handed to the control plane",
            pk.to_control,
        ),
        (
            "irondhcp_commits_total",
            "Lease-store transactions committed",
            c.commits,
        ),
        (
            "irondhcp_store_errors_total",
            "Lease-store writes that failed",
            c.store_errors,
        ),
        (
            "irondhcp_shed_total",
            "Requests the control plane shed under overload",
            c.shed,
        ),
        (
            "irondhcp_conflicts_total",
            "Grants refused by the store (another owner, a lost block): NAKed, never ACKed",
            c.conflicts,
        ),
        (
            "irondhcp_borrowed_total",
            "Addresses allocated outside this server's blocks",
            c.borrowed,
        ),
        (
            "irondhcp_synced_total",
            "Lease records from other servers applied to the map",
            c.synced,
        ),
    ] {
        family(&mut out, name, "counter", help).sample(&[], v as f64);
    }
    for (name, help, v) in [
        (
            "irondhcp_promise_shortened_total",
            "Renewals from memory ACKed shorter than the lease: the promise bound (durable expiry + MCLT) was nearer",
            pk.promise_shortened,
        ),
        (
            "irondhcp_promise_deferred_total",
            "Renewals sent to the durable path: the promise bound would have left under half a lease",
            pk.promise_deferred,
        ),
    ] {
        family(&mut out, name, "counter", help).sample(&[], v as f64);
    }
    let mut f = family(
        &mut out,
        "irondhcp_control_queue_depth",
        "gauge",
        "Requests and events queued from the workers to the control plane",
    );
    f.sample(&[("queue", "requests")], c.control_queue as f64);
    f.sample(&[("queue", "events")], c.event_queue as f64);
    family(
        &mut out,
        "irondhcp_write_behind_lag_seconds",
        "gauge",
        "How long renewal extensions have waited in memory for the store (0: none waiting)",
    )
    .sample(&[], c.write_behind_lag_ms as f64 / 1e3);
    histogram(
        &mut out,
        "irondhcp_commit_batch_size",
        "Writes per lease-store transaction",
        &s.commit_batch,
        1.0,
    );
    histogram(
        &mut out,
        "irondhcp_commit_duration_seconds",
        "Lease-store transaction durations, from the start to the commit",
        &s.commit_latency_us,
        1e-6,
    );
    if !s.queues.is_empty() {
        let mut f = family(
            &mut out,
            "irondhcp_afxdp_drops_total",
            "counter",
            "Frames the kernel dropped at a queue's AF_XDP socket, by reason (XDP_STATISTICS)",
        );
        for q in &s.queues {
            let queue = q.queue.to_string();
            for (reason, v) in [
                ("rx_dropped", q.rx_dropped),
                ("rx_ring_full", q.rx_ring_full),
                ("rx_invalid_descs", q.rx_invalid_descs),
                ("tx_invalid_descs", q.tx_invalid_descs),
            ] {
                f.sample(&[("queue", &queue), ("reason", reason)], v as f64);
            }
        }
        let mut f = family(
            &mut out,
            "irondhcp_afxdp_ring_empty_total",
            "counter",
            "Times a queue's AF_XDP fill or TX ring was found empty",
        );
        for q in &s.queues {
            let queue = q.queue.to_string();
            f.sample(
                &[("queue", &queue), ("ring", "fill")],
                q.rx_fill_ring_empty as f64,
            );
            f.sample(&[("queue", &queue), ("ring", "tx")], q.tx_ring_empty as f64);
        }
    }
    let mut f = family(
        &mut out,
        "irondhcp_drops_total",
        "counter",
        "Frames the workers dropped, by reason",
    );
    for (reason, v) in &pk.drops {
        f.sample(&[("reason", reason)], *v as f64);
    }
    if let Some(x) = &s.xdp {
        let mut f = family(
            &mut out,
            "irondhcp_xdp_frames_total",
            "counter",
            "The XDP program's verdicts",
        );
        for (verdict, v) in [
            ("redirected", x.redirected),
            ("passed", x.passed),
            ("malformed", x.malformed),
            ("no_socket", x.no_socket),
            ("not_ours", x.not_ours),
            ("fragments", x.fragments),
        ] {
            f.sample(&[("verdict", verdict)], v as f64);
        }
    }
    for (name, help, v) in [
        (
            "irondhcp_write_behind_pending",
            "Renewal extensions waiting to be written",
            c.write_behind_pending as f64,
        ),
        (
            "irondhcp_lease_map_leases",
            "Leases in the lease map",
            s.lease_map.leases as f64,
        ),
        (
            "irondhcp_lease_map_bytes",
            "Memory of the lease map",
            s.lease_map.bytes as f64,
        ),
        (
            "irondhcp_resident_memory_bytes",
            "Resident memory of the daemon",
            s.process.rss_kib.unwrap_or(0) as f64 * 1024.0,
        ),
    ] {
        family(&mut out, name, "gauge", help).sample(&[], v);
    }
    if let Some(sy) = &s.sync {
        let mut f = family(
            &mut out,
            "irondhcp_sync_lag_seconds",
            "gauge",
            "From a peer's commit to this map holding it (quarter-octave bucket bounds)",
        );
        f.sample(&[("quantile", "0.5")], sy.lag_us_p50 as f64 / 1e6);
        f.sample(&[("quantile", "0.99")], sy.lag_us_p99 as f64 / 1e6);
        for (name, help, v) in [
            (
                "irondhcp_sync_resyncs_total",
                "Catch-up reads of the lease store (resyncs and polls)",
                sy.catchups,
            ),
            (
                "irondhcp_sync_gaps_total",
                "Times events may have been missed",
                sy.gaps,
            ),
            (
                "irondhcp_sync_events_received_total",
                "Lease events heard from peers",
                sy.received_events,
            ),
        ] {
            family(&mut out, name, "counter", help).sample(&[], v as f64);
        }
        family(
            &mut out,
            "irondhcp_sync_redis_connected",
            "gauge",
            "1 while subscribed to the cluster's Redis channel",
        )
        .sample(&[], if sy.redis_connected { 1.0 } else { 0.0 });
    }
    if let Some(b) = &s.blocks {
        for (name, help, v) in [
            (
                "irondhcp_blocks_owned",
                "Address blocks this server owns",
                b.owned,
            ),
            ("irondhcp_blocks", "Address blocks in the cluster", b.total),
            (
                "irondhcp_cluster_live_servers",
                "Servers with a live heartbeat",
                b.live_servers,
            ),
        ] {
            family(&mut out, name, "gauge", help).sample(&[], v as f64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::{PoolStats, RangeStats};
    use crate::stats::{LeaseMapStats, PacketStats, ProcessStats};

    fn stats() -> Stats {
        let mut packets = PacketStats {
            rx_frames: 0,
            tx_frames: 0,
            answered_from_map: 0,
            to_control: 0,
            promise_shortened: 4,
            promise_deferred: 0,
            received: Default::default(),
            sent: Default::default(),
            drops: Default::default(),
            drops_total: 5,
        };
        packets.received.insert("discover", 7);
        packets.received.insert("other", 1);
        packets.sent.insert("ack", 5);
        packets.drops.insert("bad_dhcp", 2);
        packets.drops.insert("control_busy", 3);
        Stats {
            server_id: "s1".into(),
            pools: vec![PoolStats {
                subnet_id: 3,
                subnet: "10.0.0.0/24".into(),
                total: 100,
                assigned: 40,
                declined: 1,
                offered: 2,
                free: 57,
                ranges: vec![RangeStats {
                    range: "10.0.0.10-10.0.0.109".into(),
                    total: 100,
                    assigned: 40,
                    declined: 1,
                    offered: 2,
                    free: 57,
                    touched: 45,
                }],
            }],
            control: Default::default(),
            packets,
            lease_map: LeaseMapStats {
                leases: 40,
                capacity: 100,
                bytes: 5600,
            },
            process: ProcessStats {
                rss_kib: Some(1024),
                peak_rss_kib: None,
            },
            xdp: None,
            sync: None,
            blocks: None,
            queues: vec![crate::stats::QueueStats {
                queue: 2,
                rx_ring_full: 9,
                ..Default::default()
            }],
            commit_batch: {
                let h = crate::histogram::Histogram::new(&[1, 4]);
                for v in [1, 3, 3, 10] {
                    h.observe(v);
                }
                h.snapshot()
            },
            commit_latency_us: Default::default(),
        }
    }

    #[test]
    fn kea_exporter_names_and_labels() {
        let text = render(&stats());
        for line in [
            "kea_dhcp4_packets_received_total{operation=\"discover\"} 7",
            "kea_dhcp4_packets_received_total{operation=\"unknown\"} 1",
            "kea_dhcp4_packets_received_total{operation=\"parse-failed\"} 2",
            "kea_dhcp4_packets_received_total{operation=\"drop\"} 5",
            "kea_dhcp4_packets_sent_total{operation=\"ack\"} 5",
            "kea_dhcp4_packets_sent_total{operation=\"nak\"} 0",
            "kea_dhcp4_addresses_total{subnet=\"10.0.0.0/24\",subnet_id=\"3\",pool=\"\"} 100",
            "kea_dhcp4_addresses_assigned_total{subnet=\"10.0.0.0/24\",subnet_id=\"3\",pool=\"10.0.0.10-10.0.0.109\"} 40",
            "kea_dhcp4_addresses_declined_total{subnet=\"10.0.0.0/24\",subnet_id=\"3\",pool=\"\"} 1",
            "irondhcp_drops_total{reason=\"control_busy\"} 3",
            "irondhcp_resident_memory_bytes 1048576",
            "# TYPE kea_dhcp4_packets_received_total counter",
            "irondhcp_afxdp_drops_total{queue=\"2\",reason=\"rx_ring_full\"} 9",
            "irondhcp_commit_batch_size_bucket{le=\"1\"} 1",
            "irondhcp_commit_batch_size_bucket{le=\"4\"} 3",
            "irondhcp_commit_batch_size_bucket{le=\"+Inf\"} 4",
            "irondhcp_commit_batch_size_sum 17",
            "irondhcp_commit_batch_size_count 4",
            "irondhcp_write_behind_lag_seconds 0",
            "irondhcp_promise_shortened_total 4",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // One box: no cluster families.
        assert!(!text.contains("irondhcp_sync_"));
        // Every sample line is `name{labels} value` with a number.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
