//! The management socket that `irondhcp-ctl` talks to.
//!
//! A Unix stream socket carrying one JSON request per line and one JSON
//! response per line, the same shape as Kea's control channel
//! (`{"command": "stats"}`), so operators can also drive it with `socat`.
//! Queries are answered by the control-plane task itself (it owns the
//! allocation state), packet counters are read straight from the workers'
//! and the XDP program's counters.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use irondhcp_fastpath::counters::{CounterSnapshot, DropReason, MESSAGE_TYPE_NAMES};
use irondhcp_fastpath::lease_map::LeaseMap;
use irondhcp_fastpath::worker::WorkerShared;
use irondhcp_xdp_loader::XdpProgram;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::plane::Query;

/// A request line.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub command: String,
}

/// What the management server needs to answer.
#[derive(Clone)]
pub struct CtlContext {
    pub queries: mpsc::Sender<Query>,
    pub workers: Vec<Arc<WorkerShared>>,
    pub xdp: Arc<Mutex<Option<XdpProgram>>>,
    pub leases: Arc<LeaseMap>,
    pub server_id: String,
}

/// Serves the socket at `path` until `shutdown` turns true.
pub async fn serve(
    path: PathBuf,
    ctx: CtlContext,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            acc = listener.accept() => {
                let Ok((stream, _)) = acc else { continue };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Err(e) = session(stream, ctx).await {
                        tracing::debug!(error = %e, "management session ended with an error");
                    }
                });
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

async fn session(stream: UnixStream, ctx: CtlContext) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    while let Some(line) = lines.next_line().await? {
        let resp = match serde_json::from_str::<Request>(&line) {
            Ok(req) => answer(&req.command, &ctx).await,
            Err(e) => json!({"result": 1, "text": format!("bad request: {e}")}),
        };
        let mut out = serde_json::to_vec(&resp).unwrap_or_default();
        out.push(b'\n');
        w.write_all(&out).await?;
    }
    Ok(())
}

fn packet_counters(workers: &[Arc<WorkerShared>]) -> Value {
    let mut total = CounterSnapshot::default();
    for w in workers {
        total.add(&w.counters.snapshot());
    }
    let by_type = |arr: &[u64; 9]| {
        MESSAGE_TYPE_NAMES
            .iter()
            .zip(arr.iter())
            .map(|(n, v)| (n.to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
    };
    let drops: serde_json::Map<_, _> = DropReason::ALL
        .iter()
        .map(|r| (r.name().to_string(), json!(total.drops[*r as usize])))
        .collect();
    json!({
        "rx_frames": total.rx_frames,
        "tx_frames": total.tx_frames,
        "answered_from_map": total.answered_from_map,
        "to_control": total.to_control,
        "received": by_type(&total.received),
        "sent": by_type(&total.sent),
        "drops": drops,
        "drops_total": total.total_drops(),
    })
}

async fn answer(command: &str, ctx: &CtlContext) -> Value {
    match command {
        "stats" => {
            let (tx, rx) = oneshot::channel();
            if ctx.queries.send(Query::Stats(tx)).await.is_err() {
                return json!({"result": 1, "text": "control plane is shutting down"});
            }
            let Ok(plane) = rx.await else {
                return json!({"result": 1, "text": "control plane is shutting down"});
            };
            let xdp = match ctx.xdp.lock() {
                Ok(g) => g.as_ref().and_then(|p| p.counters().ok()),
                Err(_) => None,
            };
            json!({
                "result": 0,
                "server_id": ctx.server_id,
                "pools": plane.pools,
                "control": {
                    "offers": plane.offers, "acks": plane.acks, "naks": plane.naks,
                    "pool_exhausted": plane.pool_exhausted, "commits": plane.commits,
                    "store_errors": plane.store_errors,
                    "write_behind_pending": plane.write_behind_pending,
                    "reply_drops": plane.reply_drops, "shed": plane.shed,
                },
                "packets": packet_counters(&ctx.workers),
                "lease_map": {
                    "leases": ctx.leases.len(),
                    "capacity": ctx.leases.capacity(),
                    "bytes": ctx.leases.memory_bytes(),
                },
                "process": process_memory(),
                "xdp": xdp.map(|c| json!({
                    "redirected": c.redirected, "passed": c.passed,
                    "malformed": c.malformed, "no_socket": c.no_socket,
                    "not_ours": c.not_ours, "fragments": c.fragments,
                })),
            })
        }
        "leases" => {
            let (tx, rx) = oneshot::channel();
            if ctx.queries.send(Query::Leases(tx)).await.is_err() {
                return json!({"result": 1, "text": "control plane is shutting down"});
            }
            match rx.await {
                Ok(l) => json!({"result": 0, "leases": l}),
                Err(_) => json!({"result": 1, "text": "control plane is shutting down"}),
            }
        }
        other => {
            json!({"result": 2, "text": format!("unknown command {other:?}; known: stats, leases")})
        }
    }
}

/// Resident and peak memory of this process, from /proc/self/status.
fn process_memory() -> Value {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    json!({ "rss_kib": kib("VmRSS:"), "peak_rss_kib": kib("VmHWM:") })
}

/// Sends one command and returns the response (for `irondhcp-ctl` and tests).
pub async fn query(path: &Path, command: &str) -> std::io::Result<Value> {
    let stream = UnixStream::connect(path).await?;
    let (r, mut w) = stream.into_split();
    let mut req = serde_json::to_vec(&Request {
        command: command.into(),
    })?;
    req.push(b'\n');
    w.write_all(&req).await?;
    let mut lines = BufReader::new(r).lines();
    let line = lines
        .next_line()
        .await?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no response"))?;
    Ok(serde_json::from_str(&line)?)
}
