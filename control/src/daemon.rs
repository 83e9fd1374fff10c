//! Starting and stopping the whole server: store, lease map, XDP program,
//! AF_XDP workers, control plane and management socket.
//!
//! [`run`] takes the validated config and a shutdown signal (mini-redis
//! style), so tests and the binary drive it the same way. Start order
//! matters: leases are loaded into the map before any worker can answer,
//! and sockets are registered in the XSKMAP only after their fill rings are
//! full. Stop order is the reverse: the XDP program is detached first (new
//! DHCP frames go back to the kernel), then the control plane stops taking
//! allocations and flushes the write-behind, then workers exit.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use irondhcp_fastpath::lease_map::LeaseMap;
use irondhcp_fastpath::worker::{Doorbell, Worker, WorkerShared};
use irondhcp_fastpath::xsk::{raise_memlock_limit, XskConfig, XskSocket};
use irondhcp_xdp_loader::{SteerConfig, XdpError, XdpMode, XdpProgram};
use tokio::sync::{mpsc, watch};

use crate::alloc::{Allocator, Timers};
use crate::config::{Validated, XdpModeConfig};
use crate::ctl::{self, CtlContext};
use crate::plane::{FastInput, Plane, PlaneStats};
use crate::store::{LeaseStore, Store, StoreError};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("lease store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Sync(#[from] crate::sync::SyncError),
    #[error("lease map: {0}")]
    LeaseMap(#[from] irondhcp_fastpath::lease_map::LeaseMapError),
    #[error("XDP: {0}")]
    Xdp(#[from] XdpError),
    #[error("AF_XDP socket on {iface} queue {queue}: {source}")]
    Xsk {
        iface: String,
        queue: u32,
        #[source]
        source: irondhcp_fastpath::xsk::XskError,
    },
    #[error("interface {iface}: {source}")]
    Interface {
        iface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} stopped unexpectedly; the daemon stops rather than leave its queue unserved")]
    Died(String),
    #[error("http.listen {addr}: {source}")]
    Http {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("config: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> DaemonError {
    move |source| DaemonError::Io { what, source }
}

/// Runs the server until `shutdown` turns true. Returns the control plane's
/// final counters.
///
/// `config_path` is the file `config-reload` and each message on `reloads`
/// (SIGHUP) read again.
pub async fn run(
    cfg: Validated,
    config_path: PathBuf,
    mut reloads: mpsc::Receiver<()>,
    shutdown: watch::Receiver<bool>,
) -> Result<PlaneStats, DaemonError> {
    let s = cfg.raw.server.clone();
    if let Err(e) = raise_memlock_limit() {
        tracing::warn!(error = %e, "could not raise RLIMIT_MEMLOCK; UMEM and BPF maps may not fit");
    }

    // Storage first: the lease map is loaded before anything can answer.
    let store = Arc::new(Store::open(&cfg.raw.storage.url, &s.id).await?);
    let leases = Arc::new(LeaseMap::new(&cfg.lease_map_ranges())?);
    let timers = Timers {
        offer_lifetime: s.offer_lifetime,
        decline_probation: s.decline_probation,
        grace: u64::from(s.reclaim_grace),
        write_threshold: u64::from(s.reclaim_grace / 2),
    };
    let mut alloc = Allocator::new(cfg.subnets.clone(), leases.clone(), timers);
    alloc.authoritative = s.authoritative;
    let mut live = 0u64;
    // Every change before this time is in the load; the cluster's sync
    // catches up from here (minus its overlap window).
    let loaded_at = irondhcp_fastpath::unix_now();
    let stored = store
        .load_each(|r| {
            if alloc.apply_record(&r) {
                live += 1;
            }
        })
        .await?;
    tracing::info!(stored, live, url = %crate::store::postgres::redacted(&cfg.raw.storage.url), "lease store loaded");
    // Reservations after the leases: a client that holds another address
    // then leaves the fast path's map and is moved at its next renewal.
    let stored_reservations = store.reservations().await?;
    let refused =
        alloc.set_runtime_reservations(&crate::reservations::as_keys(&stored_reservations));
    for (subnet_id, address, why) in &refused {
        tracing::warn!(subnet_id, %address, error = %why, "stored reservation not applied");
    }
    tracing::info!(
        reservations = stored_reservations.len() - refused.len(),
        "stored reservations applied"
    );

    let mac = crate::netif::mac_of(&s.interface).map_err(|source| DaemonError::Interface {
        iface: s.interface.clone(),
        source,
    })?;
    let fast = Arc::new(cfg.fast_config(mac));

    let mode = match s.xdp_mode {
        XdpModeConfig::Native => XdpMode::Native,
        XdpModeConfig::Generic => XdpMode::Generic,
        XdpModeConfig::Auto => XdpMode::Auto,
    };
    // Steer only what is addressed to us; the kernel keeps the rest.
    let steer = SteerConfig::server(mac, &[s.address]);
    let mut xdp = XdpProgram::load(&s.interface, mode, &steer)?;
    tracing::info!(interface = %s.interface, mode = %xdp.mode(), "XDP program attached");

    // Channels: one shared request channel and one event channel into the
    // control plane, one reply channel back to each worker.
    let (alloc_tx, alloc_rx) = crossbeam_channel::bounded(s.channel_capacity);
    let (event_tx, event_rx) = crossbeam_channel::bounded(s.channel_capacity * 4);
    let control_bell = Arc::new(Doorbell::new().map_err(io("eventfd"))?);
    let mut reply_txs = Vec::new();
    let mut shared = Vec::new();
    let mut handles = Vec::new();
    for (i, q) in s.queues.iter().enumerate() {
        let sock = XskSocket::open(&s.interface, *q, &XskConfig::default()).map_err(|source| {
            DaemonError::Xsk {
                iface: s.interface.clone(),
                queue: *q,
                source,
            }
        })?;
        xdp.register_socket(*q, sock.fd())?;
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(s.channel_capacity);
        let sh = Arc::new(WorkerShared::new(i as u16).map_err(io("eventfd"))?);
        sh.watch_socket(*q, sock.stats_handle().map_err(io("AF_XDP socket handle"))?);
        let worker = Worker {
            socket: sock,
            cfg: fast.clone(),
            leases: leases.clone(),
            shared: sh.clone(),
            core: s.cores.get(i).copied(),
            to_control: alloc_tx.clone(),
            events: event_tx.clone(),
            replies: reply_rx,
            control_bell: control_bell.clone(),
            bell_pending: false,
            idle_spin: Duration::from_micros(s.idle_spin_us),
            coalesce: Duration::from_micros(s.coalesce_us),
        };
        handles.push(worker.spawn().map_err(io("spawning a worker"))?);
        reply_txs.push(reply_tx);
        shared.push(sh);
    }
    drop(alloc_tx);
    drop(event_tx);

    let fast_input = FastInput {
        allocs: alloc_rx,
        events: event_rx,
        bell: control_bell,
    };
    // In a cluster: register (a new boot epoch), then start the sync that
    // keeps this map in step with the other servers' commits.
    let (mut membership, sync) = match &*store {
        Store::Postgres(pg) => {
            let epoch = pg
                .register(&s.address.to_string(), irondhcp_fastpath::unix_now())
                .await?;
            tracing::info!(boot_epoch = epoch, "registered in the cluster");
            let me = crate::sync::Identity {
                server_id: s.id.clone(),
                boot_epoch: epoch,
                loaded_at,
            };
            let sync = crate::sync::start(&cfg.raw.cluster, me, pg.clone(), &shutdown)?;
            let (blocks_tx, blocks_rx) = mpsc::channel(4);
            let ownership = crate::ownership::Ownership {
                store: pg.clone(),
                server_id: s.id.clone(),
                boot_epoch: epoch,
                layout: cfg.block_layout(),
                release_after: u64::from(cfg.raw.cluster.release_after),
                to_plane: blocks_tx,
                stats: Default::default(),
            };
            let blocks_stats = ownership.stats.clone();
            let tasks = vec![
                tokio::spawn(crate::membership::run(pg.clone(), epoch, shutdown.clone())),
                tokio::spawn(ownership.run(shutdown.clone())),
            ];
            (tasks, Some((sync, blocks_rx, blocks_stats)))
        }
        Store::Sqlite(_) => (Vec::new(), None),
    };
    let (query_tx, query_rx) = mpsc::channel(16);
    let xdp = Arc::new(Mutex::new(Some(xdp)));
    let ctl_ctx = CtlContext {
        queries: query_tx.clone(),
        workers: shared.clone(),
        xdp: xdp.clone(),
        leases: leases.clone(),
        server_id: s.id.clone(),
        cluster: crate::stats::ClusterStats {
            sync: sync.as_ref().map(|x| x.0.stats.clone()),
            blocks: sync.as_ref().map(|x| x.2.clone()),
        },
        drained: Default::default(),
        store: Some(store.clone()),
        cluster_store: match &*store {
            Store::Postgres(pg) => Some(pg.clone()),
            Store::Sqlite(_) => None,
        },
        reloader: Some(Arc::new(crate::reload::Reloader::new(
            config_path,
            cfg.clone(),
            mac,
            shared.clone(),
            query_tx.clone(),
        ))),
        reservations: Some(Arc::new(crate::reservations::Reservations::new(
            store.clone(),
            query_tx.clone(),
            crate::reservations::from_config(&cfg),
        ))),
    };
    // In a cluster, reservations other servers change are followed from
    // the store.
    if store.is_shared() {
        membership.push(tokio::spawn(crate::reservations::follow(
            store.clone(),
            query_tx.clone(),
            Duration::from_millis(cfg.raw.cluster.poll_interval_ms),
            shutdown.clone(),
        )));
    }
    // The HTTP listener is bound before serving starts: a port that is
    // taken stops the daemon with one clear line, not later and silently.
    let http_task = match cfg.raw.http.address()? {
        Some(addr) => {
            let listener = crate::http::bind(addr)
                .await
                .map_err(|source| DaemonError::Http { addr, source })?;
            tracing::info!(%addr, "HTTP listener (/metrics, /health, Kea's commands)");
            Some(tokio::spawn(crate::http::serve(
                listener,
                ctl_ctx.clone(),
                cfg.raw.http.token.clone(),
                shutdown.clone(),
            )))
        }
        None => None,
    };
    // SIGHUP: reload the file; the outcome is logged (the operator who
    // wants it answered uses `irondhcp-ctl reload`).
    let reload_task = ctl_ctx.reloader.clone().map(|reloader| {
        tokio::spawn(async move {
            while reloads.recv().await.is_some() {
                match reloader.reload().await {
                    Ok(changes) => tracing::info!(?changes, "SIGHUP: configuration reloaded"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: configuration not reloaded; the running one stays"),
                }
            }
        })
    });
    let watchdog_ctx = ctl_ctx.clone();
    let ctl_task = tokio::spawn(ctl::serve(
        PathBuf::from(&s.control_socket),
        ctl_ctx,
        shutdown.clone(),
    ));
    let plane = Plane::new(
        alloc,
        store.clone(),
        reply_txs,
        shared.clone(),
        Duration::from_millis(s.write_behind_ms),
        Duration::from_secs(u64::from(s.reclaim_interval)),
    )
    .with_commit_window(Duration::from_micros(s.commit_window_us));
    let (plane, sync_tasks) = match sync {
        Some((sync, blocks, _)) => (
            plane
                .with_events(sync.events)
                .with_synced(sync.records, sync.stats.clone())
                .with_blocks(blocks),
            sync.tasks,
        ),
        None => (plane, Vec::new()),
    };
    tracing::info!(queues = ?s.queues, socket = %s.control_socket, "irondhcp serving");
    // Under systemd (Type=notify): ready now, and a watchdog petted while
    // the control plane answers.
    if let Err(e) = crate::notify::notify("READY=1\nSTATUS=serving") {
        tracing::warn!(error = %e, "systemd not told that irondhcp is ready");
    }
    let watchdog_task = crate::notify::watchdog_every().map(|every| {
        tokio::spawn(crate::notify::watchdog(
            watchdog_ctx,
            every,
            shutdown.clone(),
        ))
    });

    // The plane runs until shutdown; then it has flushed the write-behind.
    let mut plane_shutdown = shutdown.clone();
    let (plane_stop_tx, plane_stop_rx) = watch::channel(false);
    let mut plane_task = tokio::spawn(plane.run(fast_input, query_rx, plane_stop_rx));
    // Supervise: a worker or the control plane that ends on its own (a
    // panic, a bug) stops the daemon loudly. Nothing would restart it, and
    // XDP would keep redirecting its queue into a socket nobody reads.
    let mut check = tokio::time::interval(Duration::from_millis(200));
    let died: Option<String> = loop {
        tokio::select! {
            _ = plane_shutdown.wait_for(|v| *v) => break None,
            r = &mut plane_task => {
                break Some(match r {
                    Err(e) if e.is_panic() => "the control plane (panicked)".to_string(),
                    _ => "the control plane".to_string(),
                });
            }
            _ = check.tick() => {
                if let Some(i) = handles.iter().position(|h| h.is_finished()) {
                    break Some(format!("worker {i} (queue {})", s.queues[i]));
                }
            }
        }
    };
    if let Some(what) = died {
        tracing::error!(%what, "stopped unexpectedly; shutting down");
        if let Ok(mut g) = xdp.lock() {
            g.take();
        }
        for sh in &shared {
            sh.stop();
        }
        let _ = plane_stop_tx.send(true);
        for h in handles {
            let _ = h.join();
        }
        if !plane_task.is_finished() {
            let _ = plane_task.await;
        }
        store.close().await;
        return Err(DaemonError::Died(what));
    }
    tracing::info!("shutting down: detaching XDP, flushing leases");
    let _ = crate::notify::notify("STOPPING=1");

    // 1. Detach: DHCP frames go back to the kernel from now on.
    if let Ok(mut g) = xdp.lock() {
        g.take();
    }
    // 2. Stop workers (their last batches are already queued).
    for sh in &shared {
        sh.stop();
    }
    for h in handles {
        let _ = h.join();
    }
    // 3. The plane applies the events the workers queued, flushes and stops.
    let _ = plane_stop_tx.send(true);
    let stats = plane_task.await.unwrap_or_default();
    if let Some(t) = reload_task {
        t.abort();
    }
    let _ = ctl_task.await;
    if let Some(t) = http_task {
        let _ = t.await;
    }
    if let Some(t) = watchdog_task {
        let _ = t.await;
    }
    for t in membership.into_iter().chain(sync_tasks) {
        let _ = t.await;
    }
    store.close().await;
    if stats.counters.write_behind_pending > 0 {
        tracing::error!(
            pending = stats.counters.write_behind_pending,
            "lease writes could not be persisted at shutdown"
        );
    }
    tracing::info!(
        acks = stats.counters.acks,
        commits = stats.counters.commits,
        "irondhcp stopped"
    );
    Ok(stats)
}
