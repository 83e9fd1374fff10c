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

use std::net::Ipv4Addr;

use crate::alloc::{LeasePage, LeaseQuery, DEFAULT_PAGE};
use crate::plane::Query;
use crate::stats::Stats;
use crate::store::LeaseStore;

/// A request line: Kea's shape, a command and its arguments.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub command: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub arguments: Value,
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
    /// The lease store, for lookups the allocator cannot answer (leases
    /// by relay ids); `None` in tests without one.
    pub store: Option<Arc<crate::store::Store>>,
    /// The cluster's store, for `servers` (`None` on one box).
    pub cluster_store: Option<crate::store::postgres::PgStore>,
    /// Configuration test and reload (`None` in tests without a daemon).
    pub reloader: Option<Arc<crate::reload::Reloader>>,
    /// Reservation changes (`None` in tests without a store).
    pub reservations: Option<Arc<crate::reservations::Reservations>>,
}

/// irondhcp's own commands (Kea's are in [`crate::kea_api::COMMANDS`]).
pub const COMMANDS: [&str; 6] = ["stats", "leases", "health", "drain", "undrain", "servers"];

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
    let actor = match stream.peer_cred() {
        Ok(c) => actor_of_uid(c.uid()),
        Err(_) => "an unknown user of the control socket".to_string(),
    };
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
            Ok(req) => answer(&req.command, &req.arguments, &ctx, &actor).await,
            Err(e) => json!({"result": 1, "text": format!("bad request: {e}")}),
        };
        let mut out = serde_json::to_vec(&resp).unwrap_or_default();
        out.push(b'\n');
        w.write_all(&out).await?;
    }
}

/// What a management command gets when the control plane has stopped.
const STOPPING: &str = "control plane is shutting down";

/// Asks the control plane: `query` wraps the reply channel in the question.
pub(crate) async fn ask<T>(
    ctx: &CtlContext,
    query: impl FnOnce(oneshot::Sender<T>) -> Query,
) -> Result<T, &'static str> {
    let (tx, rx) = oneshot::channel();
    ctx.queries.send(query(tx)).await.map_err(|_| STOPPING)?;
    rx.await.map_err(|_| STOPPING)
}

/// Who is on the other end of the control socket, for the audit trail:
/// the user's name (from /etc/passwd) and uid.
fn actor_of_uid(uid: u32) -> String {
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
        p.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid.to_string()).then(|| name.to_string())
        })
    });
    match name {
        Some(n) => format!("{n} (uid {uid}) on the control socket"),
        None => format!("uid {uid} on the control socket"),
    }
}

/// Every counter, from the control plane, the workers and the XDP program.
pub(crate) async fn gather(ctx: &CtlContext) -> Result<Stats, &'static str> {
    let plane = ask(ctx, Query::Stats).await?;
    let xdp = match ctx.xdp.lock() {
        Ok(g) => g.as_ref().and_then(|p| p.counters().ok()),
        Err(_) => None,
    };
    Ok(Stats::gather(
        &ctx.server_id,
        plane,
        &ctx.workers,
        &ctx.leases,
        xdp,
        &ctx.cluster,
    ))
}

/// One page of leases.
pub(crate) async fn lease_page(ctx: &CtlContext, q: LeaseQuery) -> Result<LeasePage, &'static str> {
    ask(ctx, |tx| Query::Leases(q, tx)).await
}

/// The answer to one command: irondhcp's own, else Kea's
/// ([`crate::kea_api`]).
pub(crate) async fn answer(
    command: &str,
    arguments: &Value,
    ctx: &CtlContext,
    actor: &str,
) -> Value {
    match command {
        "stats" => match gather(ctx).await {
            Ok(stats) => match serde_json::to_value(&stats) {
                Ok(Value::Object(mut m)) => {
                    m.insert("result".into(), json!(0));
                    Value::Object(m)
                }
                _ => json!({"result": 1, "text": "statistics could not be rendered"}),
            },
            Err(e) => json!({"result": 1, "text": e}),
        },
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
            let mut q = match lease_query(arguments) {
                Ok(q) => q,
                Err(e) => return json!({"result": 1, "text": e}),
            };
            let relay = relay_filter(arguments);
            if relay.circuit_id.is_some() || relay.remote_id.is_some() {
                let Some(store) = &ctx.store else {
                    return json!({"result": 1, "text": "this server has no lease store to search by relay ids"});
                };
                let now = irondhcp_fastpath::unix_now();
                match store.relay_addresses(&relay, now, MAX_PAGE as u32).await {
                    Ok(found) => q.among = Some(found),
                    Err(e) => return json!({"result": 1, "text": format!("the lease store: {e}")}),
                }
            }
            match lease_page(ctx, q).await {
                Ok(page) => json!({"result": 0, "leases": page.leases, "next": page.next}),
                Err(e) => json!({"result": 1, "text": e}),
            }
        }
        "servers" => servers(ctx).await,
        other => crate::kea_api::answer(other, arguments, ctx, actor).await,
    }
}

/// The cluster's servers (one box: this one): heartbeat age, boot epoch,
/// version, and the address blocks each owns.
async fn servers(ctx: &CtlContext) -> Value {
    let now = irondhcp_fastpath::unix_now();
    let Some(pg) = &ctx.cluster_store else {
        return json!({"result": 0, "arguments": {"servers": [{
            "id": ctx.server_id, "heartbeat_age": 0, "boot_epoch": null,
            "version": env!("CARGO_PKG_VERSION"), "address": null,
            "blocks": null, "addresses": null, "this": true,
        }]}});
    };
    let (servers, blocks) = match tokio::try_join!(pg.servers(), pg.blocks()) {
        Ok(x) => x,
        Err(e) => return json!({"result": 1, "text": format!("the cluster's store: {e}")}),
    };
    let rows: Vec<Value> = servers
        .iter()
        .map(|s| {
            let owned: Vec<_> = blocks
                .iter()
                .filter(|b| b.owner.as_deref() == Some(s.id.as_str()))
                .collect();
            let addresses: u64 = owned.iter().map(|b| u64::from(b.last - b.first) + 1).sum();
            json!({
                "id": s.id,
                "address": s.address,
                "version": s.version,
                "boot_epoch": s.boot_epoch,
                "heartbeat_age": now.saturating_sub(s.heartbeat_at),
                "blocks": owned.len(),
                "addresses": addresses,
                "this": s.id == ctx.server_id,
            })
        })
        .collect();
    json!({"result": 0, "arguments": {"servers": rows}})
}

/// Whether this server should be announced: its XDP program is attached,
/// its control plane answers within [`HEALTH_TIMEOUT`], and it is not
/// drained. Only local faults count (docs/decisions.md): a database or
/// Redis outage is shared by every server and must not withdraw them all.
/// A dead worker stops the whole daemon, and then nothing answers here.
/// Whether the control plane answers a question within [`HEALTH_TIMEOUT`].
pub(crate) async fn plane_answers(ctx: &CtlContext) -> bool {
    let (tx, rx) = oneshot::channel();
    ctx.queries.try_send(Query::Stats(tx)).is_ok()
        && matches!(tokio::time::timeout(HEALTH_TIMEOUT, rx).await, Ok(Ok(_)))
}

pub(crate) async fn health(ctx: &CtlContext) -> Value {
    let mut reasons: Vec<&str> = Vec::new();
    let attached = ctx.xdp.lock().map(|g| g.is_some()).unwrap_or(false);
    if !attached {
        reasons.push("XDP program detached");
    }
    if !plane_answers(ctx).await {
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

/// The `leases` command's arguments (every one optional): `subnet`,
/// `address`, `hw-address` (`aa:bb:cc:dd:ee:ff`), `client-key` (hex, `:`
/// allowed), `state` (`leased`, `declined`), `after` (an address: the
/// previous page's `next`), `limit` (1 to 10,000; 1,000 by default).
fn lease_query(args: &Value) -> Result<LeaseQuery, String> {
    if !(args.is_null() || args.is_object()) {
        return Err("arguments must be an object".into());
    }
    let text = |k: &str| -> Result<Option<&str>, String> {
        match &args[k] {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.as_str())),
            other => Err(format!("{k}: expected a string, got {other}")),
        }
    };
    let addr = |k: &str| -> Result<Option<Ipv4Addr>, String> {
        text(k)?
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("{k}: {s:?} is not an IPv4 address"))
            })
            .transpose()
    };
    let hex = |k: &str| -> Result<Option<Vec<u8>>, String> {
        text(k)?
            .map(|s| crate::hex::parse(s).map_err(|_| format!("{k}: {s:?} is not hex bytes")))
            .transpose()
    };
    let hw_address = match hex("hw-address")? {
        None => None,
        Some(b) => Some(
            <[u8; 6]>::try_from(b.as_slice())
                .map_err(|_| "hw-address: expected six bytes, aa:bb:cc:dd:ee:ff".to_string())?,
        ),
    };
    let state = text("state")?.map(str::to_string);
    if let Some(s) = &state {
        if s != "leased" && s != "declined" {
            return Err(format!("state: {s:?} is not leased or declined"));
        }
    }
    let number = |k: &str| -> Result<Option<u64>, String> {
        match &args[k] {
            Value::Null => Ok(None),
            v => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("{k}: expected a whole number, got {v}")),
        }
    };
    let subnet = number("subnet")?
        .map(|n| u32::try_from(n).map_err(|_| format!("subnet: {n} is too large")))
        .transpose()?;
    let limit = match number("limit")? {
        None => DEFAULT_PAGE,
        Some(n @ 1..=MAX_PAGE) => n as usize,
        Some(n) => return Err(format!("limit: {n} is not between 1 and {MAX_PAGE}")),
    };
    Ok(LeaseQuery {
        subnet,
        address: addr("address")?,
        hw_address,
        client_key: hex("client-key")?,
        state,
        after: addr("after")?,
        among: None,
        limit,
    })
}

/// The `leases` command's relay filters: `circuit-id` and `remote-id`
/// (option 82 sub-options 1 and 2), each as colon-separated hex
/// (`01:02:0a`) or, when it is not that, as the literal text the relay
/// sent (`eth0/7`).
fn relay_filter(args: &Value) -> crate::store::RelayIds {
    let id = |k: &str| {
        args[k].as_str().map(|s| match crate::hex::parse(s) {
            Ok(b) if s.contains(':') => b,
            _ => s.as_bytes().to_vec(),
        })
    };
    crate::store::RelayIds {
        circuit_id: id("circuit-id"),
        remote_id: id("remote-id"),
    }
}

/// The most leases one `leases` answer carries.
const MAX_PAGE: u64 = 10_000;

/// Sends one command and returns the response (for `irondhcp-ctl` and tests).
pub async fn query(path: &Path, command: &str) -> std::io::Result<Value> {
    request(path, command, Value::Null).await
}

/// Sends one command with its arguments and returns the response.
pub async fn request(path: &Path, command: &str, arguments: Value) -> std::io::Result<Value> {
    let stream = UnixStream::connect(path).await?;
    let (r, mut w) = stream.into_split();
    let mut req = serde_json::to_vec(&Request {
        command: command.into(),
        arguments,
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
            store: None,
            cluster_store: None,
            reloader: None,
            reservations: None,
        };
        (ctx, rx)
    }

    /// Health names each local fault, and drain withdraws a healthy
    /// server until undrained.
    #[test]
    fn lease_query_arguments_are_checked_and_parsed() {
        let q = lease_query(&json!({
            "subnet": 2, "hw-address": "02:00:00:0A:0b:0c", "client-key": "01:02:ff",
            "state": "declined", "after": "10.0.0.7", "limit": 50, "address": "10.0.0.9"
        }))
        .unwrap();
        assert_eq!(q.subnet, Some(2));
        assert_eq!(q.hw_address, Some([2, 0, 0, 0x0a, 0x0b, 0x0c]));
        assert_eq!(q.client_key, Some(vec![1, 2, 0xff]));
        assert_eq!(q.state.as_deref(), Some("declined"));
        assert_eq!(q.after, Some(Ipv4Addr::new(10, 0, 0, 7)));
        assert_eq!(q.address, Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(q.limit, 50);
        assert_eq!(lease_query(&Value::Null).unwrap(), LeaseQuery::default());
        for (bad, says) in [
            (
                json!({"hw-address": "02:00"}),
                "hw-address: expected six bytes",
            ),
            (
                json!({"client-key": "0g"}),
                "client-key: \"0g\" is not hex bytes",
            ),
            (
                json!({"state": "free"}),
                "state: \"free\" is not leased or declined",
            ),
            (
                json!({"after": "10.0.0"}),
                "after: \"10.0.0\" is not an IPv4 address",
            ),
            (json!({"limit": 0}), "limit: 0 is not between 1 and 10000"),
            (json!({"limit": "ten"}), "limit: expected a whole number"),
            (
                json!({"subnet": 5_000_000_000u64}),
                "subnet: 5000000000 is too large",
            ),
            (json!([1]), "arguments must be an object"),
        ] {
            let e = lease_query(&bad).unwrap_err();
            assert!(e.starts_with(says), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn health_names_local_faults_and_drain_toggles_it() {
        let (ctx, mut rx) = context();
        // Nobody answers queries yet: the control plane counts as wedged.
        let h = answer("health", &Value::Null, &ctx, "test").await;
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
        let h = answer("health", &Value::Null, &ctx, "test").await;
        assert!(!h["reasons"].to_string().contains("control plane"), "{h}");
        assert_eq!(
            answer("drain", &Value::Null, &ctx, "test").await["drained"],
            true
        );
        let h = answer("health", &Value::Null, &ctx, "test").await;
        assert!(h["reasons"].to_string().contains("drained"), "{h}");
        assert_eq!(
            answer("undrain", &Value::Null, &ctx, "test").await["drained"],
            false
        );
        assert_eq!(
            answer("health", &Value::Null, &ctx, "test").await["drained"],
            false
        );
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
