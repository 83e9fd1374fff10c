//! The management socket that `irondhcp-ctl` talks to.
//!
//! A Unix stream socket carrying one JSON request per line and one JSON
//! response per line, the same shape as Kea's control channel
//! (`{"command": "stats"}`), so operators can also drive it with `socat`.
//! Queries are answered by the control-plane task itself (it owns the
//! allocation state), packet counters are read straight from the workers'
//! and the XDP program's counters.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use irondhcp_fastpath::lease_map::LeaseMap;
use irondhcp_fastpath::worker::WorkerShared;
use irondhcp_xdp_loader::XdpProgram;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::plane::Query;
use crate::stats::Stats;

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
    /// The cluster's counters (empty on one box).
    pub cluster: crate::stats::ClusterStats,
    /// Set by `drain`: the server reports itself unhealthy, so its anycast
    /// route is withdrawn, while it keeps answering what still reaches it.
    pub drained: Arc<AtomicBool>,
}

/// How long the control plane may take to answer a health check before
/// the server counts as unhealthy (a wedged control plane).
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

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
    // Only root (the daemon's user) may drive the server.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let sessions = Arc::new(tokio::sync::Semaphore::new(MAX_SESSIONS));
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            acc = listener.accept() => {
                let Ok((stream, _)) = acc else { continue };
                // A client past the session limit is turned away at once.
                let Ok(permit) = sessions.clone().try_acquire_owned() else {
                    tracing::warn!(limit = MAX_SESSIONS, "management session refused: too many open");
                    continue;
                };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Err(e) = session(stream, ctx).await {
                        tracing::debug!(error = %e, "management session ended with an error");
                    }
                    drop(permit);
                });
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// Sessions served at once.
const MAX_SESSIONS: usize = 16;
/// Longest request line accepted; a longer one ends the session.
const MAX_LINE: u64 = 64 * 1024;

async fn session(stream: UnixStream, ctx: CtlContext) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // Read at most MAX_LINE + 1 bytes: a line that long is refused
        // rather than grown without bound.
        let n = (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if buf.last() != Some(&b'\n') && n as u64 > MAX_LINE {
            let resp =
                json!({"result": 1, "text": format!("request line longer than {MAX_LINE} bytes")});
            let mut out = serde_json::to_vec(&resp).unwrap_or_default();
            out.push(b'\n');
            w.write_all(&out).await?;
            return Ok(());
        }
        let line = String::from_utf8_lossy(&buf);
        let resp = match serde_json::from_str::<Request>(line.trim_end()) {
            Ok(req) => answer(&req.command, &ctx).await,
            Err(e) => json!({"result": 1, "text": format!("bad request: {e}")}),
        };
        let mut out = serde_json::to_vec(&resp).unwrap_or_default();
        out.push(b'\n');
        w.write_all(&out).await?;
    }
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
            let stats = Stats::gather(
                &ctx.server_id,
                plane,
                &ctx.workers,
                &ctx.leases,
                xdp,
                &ctx.cluster,
            );
            match serde_json::to_value(&stats) {
                Ok(Value::Object(mut m)) => {
                    m.insert("result".into(), json!(0));
                    Value::Object(m)
                }
                _ => json!({"result": 1, "text": "statistics could not be rendered"}),
            }
        }
        "health" => health(ctx).await,
        "drain" | "undrain" => {
            let on = command == "drain";
            ctx.drained.store(on, Ordering::Relaxed);
            tracing::info!(
                drained = on,
                "anycast announcement {}",
                if on {
                    "withdrawn (drained)"
                } else {
                    "restored (undrained)"
                }
            );
            json!({"result": 0, "drained": on})
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
            json!({"result": 2, "text": format!("unknown command {other:?}; known: stats, leases, health, drain, undrain")})
        }
    }
}

/// Whether this server should be announced: its XDP program is attached,
/// its control plane answers within [`HEALTH_TIMEOUT`], and it is not
/// drained. Only local faults count (docs/decisions.md): a database or
/// Redis outage is shared by every server and must not withdraw them all.
/// A dead worker stops the whole daemon, and then nothing answers here.
async fn health(ctx: &CtlContext) -> Value {
    let mut reasons: Vec<&str> = Vec::new();
    let attached = ctx.xdp.lock().map(|g| g.is_some()).unwrap_or(false);
    if !attached {
        reasons.push("XDP program detached");
    }
    let (tx, rx) = oneshot::channel();
    let plane_ok = ctx.queries.try_send(Query::Stats(tx)).is_ok()
        && matches!(tokio::time::timeout(HEALTH_TIMEOUT, rx).await, Ok(Ok(_)));
    if !plane_ok {
        reasons.push("control plane not answering");
    }
    let drained = ctx.drained.load(Ordering::Relaxed);
    if drained {
        reasons.push("drained");
    }
    json!({
        "result": 0,
        "healthy": reasons.is_empty(),
        "drained": drained,
        "reasons": reasons,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn context() -> (CtlContext, mpsc::Receiver<Query>) {
        let (tx, rx) = mpsc::channel(4);
        let leases = LeaseMap::new(&[(Ipv4Addr::new(10, 0, 0, 1), 1)]).unwrap();
        let ctx = CtlContext {
            queries: tx,
            workers: Vec::new(),
            xdp: Arc::new(Mutex::new(None)),
            leases: Arc::new(leases),
            server_id: "t".into(),
            cluster: Default::default(),
            drained: Default::default(),
        };
        (ctx, rx)
    }

    /// Health names each local fault, and drain withdraws a healthy
    /// server until undrained.
    #[tokio::test]
    async fn health_names_local_faults_and_drain_toggles_it() {
        let (ctx, mut rx) = context();
        // Nobody answers queries yet: the control plane counts as wedged.
        let h = answer("health", &ctx).await;
        assert_eq!(h["healthy"], false);
        let reasons = h["reasons"].to_string();
        assert!(reasons.contains("XDP program detached"), "{reasons}");
        assert!(reasons.contains("control plane not answering"), "{reasons}");
        // A control plane that answers.
        tokio::spawn(async move {
            while let Some(q) = rx.recv().await {
                if let Query::Stats(tx) = q {
                    let _ = tx.send(Default::default());
                }
            }
        });
        let h = answer("health", &ctx).await;
        assert!(!h["reasons"].to_string().contains("control plane"), "{h}");
        assert_eq!(answer("drain", &ctx).await["drained"], true);
        let h = answer("health", &ctx).await;
        assert!(h["reasons"].to_string().contains("drained"), "{h}");
        assert_eq!(answer("undrain", &ctx).await["drained"], false);
        assert_eq!(answer("health", &ctx).await["drained"], false);
    }

    /// The socket is root's only, a hostile line is refused without
    /// growing a buffer, and sessions past the limit are turned away.
    #[tokio::test]
    async fn socket_is_private_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl.sock");
        let (ctx, _rx) = context();
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(serve(path.clone(), ctx, stop_rx));
        for _ in 0..100 {
            if path.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let mut s = UnixStream::connect(&path).await.unwrap();
        let long = vec![b'x'; MAX_LINE as usize + 10];
        s.write_all(&long).await.unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.unwrap();
        assert!(resp.contains("longer than"), "{resp}");

        let mut held = Vec::new();
        for _ in 0..MAX_SESSIONS {
            let c = UnixStream::connect(&path).await.unwrap();
            held.push(c);
        }
        // Let the server take them all before the one too many.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let mut extra = UnixStream::connect(&path).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(std::time::Duration::from_secs(2), extra.read(&mut buf))
            .await
            .expect("the extra session is closed at once")
            .unwrap_or(0);
        assert_eq!(n, 0, "session past the limit must be closed");
        drop(held);
        stop_tx.send(true).unwrap();
        server.await.unwrap().unwrap();
    }
}
