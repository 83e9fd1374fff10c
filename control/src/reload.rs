//! Configuration test and reload while the server runs (Kea's
//! `config-test` and `config-reload`, SIGHUP), without dropping a frame.
//!
//! What a reload may change is what can change under live leases and in
//! flight packets: per subnet its lease times and its options. Workers
//! take the new fast-path view between two frames
//! ([`WorkerShared::reconfigure`]); the allocator takes the same values for
//! its next offer and grant. Anything else (the interface, queues, store,
//! cluster, subnets and pools, reservations, the MCLT) is refused with
//! every such key named, and the running configuration stays:
//! - subnets and pools size the lease map, fixed at start;
//! - the MCLT bounds promises already made (promise ≤ durable expiry +
//!   MCLT, reclaim after durable expiry + MCLT + grace): lowering it under
//!   live promises would let reclaim come before one of them ends;
//! - the config file's reservations change with a restart; at run time
//!   they are changed with `irondhcp-ctl reservations`.

use std::path::PathBuf;
use std::sync::Arc;

use irondhcp_fastpath::worker::WorkerShared;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::config::{Config, Validated};
use crate::plane::Query;

/// Per subnet, the keys a reload may change.
const RELOADABLE: [&str; 7] = [
    "lease_time",
    "renew_time",
    "rebind_time",
    "routers",
    "dns_servers",
    "domain_name",
    "option",
];

/// What a reload would change, or why it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Applicable: the keys that change (none: the same configuration).
    Changes(Vec<String>),
    /// Not applicable while running: the keys that need a restart.
    NeedsRestart(Vec<String>),
}

/// Compares the running configuration with a new one.
pub fn compare(old: &Validated, new: &Validated) -> Verdict {
    let (a, b) = (as_json(&old.raw), as_json(&new.raw));
    let mut changes = Vec::new();
    let mut refused = Vec::new();
    for section in ["server", "storage", "cluster", "http"] {
        differing(&a[section], &b[section], section, &mut refused);
    }
    let (sa, sb) = (subnets(&a), subnets(&b));
    if sa.len() != sb.len() {
        refused.push(format!(
            "subnet (from {} to {} subnets)",
            sa.len(),
            sb.len()
        ));
    }
    for (i, (x, y)) in sa.iter().zip(&sb).enumerate() {
        let mut keys = Vec::new();
        differing(x, y, &format!("subnet[{i}]"), &mut keys);
        for k in keys {
            let field = k.rsplit('.').next().unwrap_or_default();
            if field == "mclt" {
                // Judged by the MCLT in effect, below: writing out the
                // value already in effect changes nothing.
                continue;
            }
            if RELOADABLE.contains(&field) {
                changes.push(k);
            } else {
                refused.push(k);
            }
        }
    }
    // The MCLT a subnet runs with, also when it follows from lease_time.
    for (i, (x, y)) in old.subnets.iter().zip(&new.subnets).enumerate() {
        if x.mclt != y.mclt {
            refused.push(format!(
                "subnet[{i}].mclt (in effect {} s, would be {} s: set mclt = {} to keep it)",
                x.mclt, y.mclt, x.mclt
            ));
        }
    }
    if refused.is_empty() {
        Verdict::Changes(changes)
    } else {
        Verdict::NeedsRestart(refused)
    }
}

fn as_json(c: &Config) -> Value {
    serde_json::to_value(c).unwrap_or(Value::Null)
}

fn subnets(v: &Value) -> Vec<Value> {
    v["subnet"].as_array().cloned().unwrap_or_default()
}

/// The keys of object `a` and `b` (under `path`) whose values differ.
fn differing(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a.as_object(), b.as_object()) {
        (Some(x), Some(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                if x.get(k) != y.get(k) {
                    out.push(format!("{path}.{k}"));
                }
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}

/// Why a test or reload failed, in one line.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Invalid(#[from] crate::config::ConfigError),
    #[error("these changes need a restart (nothing was applied): {}", .0.join(", "))]
    NeedsRestart(Vec<String>),
    #[error("control plane is shutting down")]
    Stopping,
}

/// Tests and applies configurations for the running daemon.
pub struct Reloader {
    /// The file the daemon was started with (and reloads from).
    path: PathBuf,
    current: Mutex<Validated>,
    server_mac: [u8; 6],
    workers: Vec<Arc<WorkerShared>>,
    queries: mpsc::Sender<Query>,
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        current: Validated,
        server_mac: [u8; 6],
        workers: Vec<Arc<WorkerShared>>,
        queries: mpsc::Sender<Query>,
    ) -> Self {
        Self {
            path,
            current: Mutex::new(current),
            server_mac,
            workers,
            queries,
        }
    }

    /// Reads and validates `text` (else the daemon's own file) and says
    /// what a reload of it would change; applies nothing.
    pub async fn test(&self, text: Option<&str>) -> Result<Vec<String>, ReloadError> {
        let new = self.read(text)?;
        let current = self.current.lock().await;
        match compare(&current, &new) {
            Verdict::Changes(c) => Ok(c),
            Verdict::NeedsRestart(k) => Err(ReloadError::NeedsRestart(k)),
        }
    }

    /// Reads the daemon's file again and applies it; returns the keys
    /// that changed. On any error the running configuration stays.
    pub async fn reload(&self) -> Result<Vec<String>, ReloadError> {
        let new = self.read(None)?;
        let mut current = self.current.lock().await;
        let changes = match compare(&current, &new) {
            Verdict::Changes(c) => c,
            Verdict::NeedsRestart(k) => return Err(ReloadError::NeedsRestart(k)),
        };
        let (tx, rx) = oneshot::channel();
        self.queries
            .send(Query::Reconfigure(new.subnets.clone(), tx))
            .await
            .map_err(|_| ReloadError::Stopping)?;
        rx.await.map_err(|_| ReloadError::Stopping)?;
        let fast = Arc::new(new.fast_config(self.server_mac));
        for w in &self.workers {
            w.reconfigure(fast.clone());
        }
        *current = new;
        Ok(changes)
    }

    fn read(&self, text: Option<&str>) -> Result<Validated, ReloadError> {
        Ok(match text {
            Some(t) => Config::parse(t)?,
            None => Config::load(&self.path)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[server]
address = "10.0.0.1"
interface = "eth1"
[[subnet]]
id = 1
cidr = "10.0.0.0/24"
pools = ["10.0.0.10-10.0.0.99"]
lease_time = 3600
mclt = 600
routers = ["10.0.0.1"]
"#;

    fn with(from: &str, to: &str) -> Validated {
        Config::parse(&BASE.replace(from, to)).expect("valid")
    }

    #[test]
    fn lease_times_and_options_reload_and_the_rest_needs_a_restart() {
        let old = Config::parse(BASE).unwrap();
        assert_eq!(compare(&old, &old), Verdict::Changes(vec![]));
        let new = with("lease_time = 3600", "lease_time = 7200");
        assert_eq!(
            compare(&old, &new),
            Verdict::Changes(vec!["subnet[0].lease_time".into()])
        );
        let new = with(
            "routers = [\"10.0.0.1\"]",
            "routers = [\"10.0.0.2\"]\ndomain_name = \"example.net\"",
        );
        assert_eq!(
            compare(&old, &new),
            Verdict::Changes(vec![
                "subnet[0].domain_name".into(),
                "subnet[0].routers".into()
            ])
        );
        for (from, to, key) in [
            ("10.0.0.99", "10.0.0.199", "subnet[0].pools"),
            (
                "interface = \"eth1\"",
                "interface = \"eth2\"",
                "server.interface",
            ),
            (
                "mclt = 600",
                "mclt = 60",
                "subnet[0].mclt (in effect 600 s, would be 60 s: set mclt = 600 to keep it)",
            ),
            ("id = 1", "id = 2", "subnet[0].id"),
        ] {
            match compare(&old, &with(from, to)) {
                Verdict::NeedsRestart(k) => assert_eq!(k, vec![key.to_string()], "{from}"),
                other => panic!("{from} -> {to}: {other:?}"),
            }
        }
    }

    #[test]
    fn writing_out_the_mclt_in_effect_changes_nothing() {
        let old = Config::parse(&BASE.replace("mclt = 600\n", "")).unwrap();
        let new = Config::parse(
            &BASE
                .replace("mclt = 600", "mclt = 1800")
                .replace("lease_time = 3600", "lease_time = 7200"),
        )
        .unwrap();
        assert_eq!(
            compare(&old, &new),
            Verdict::Changes(vec!["subnet[0].lease_time".into()])
        );
    }

    #[test]
    fn an_mclt_that_follows_lease_time_may_not_move_with_it() {
        let old = Config::parse(&BASE.replace("mclt = 600\n", "")).unwrap();
        let new = Config::parse(&BASE.replace("mclt = 600\n", "").replace("3600", "60")).unwrap();
        match compare(&old, &new) {
            Verdict::NeedsRestart(k) => {
                assert_eq!(k.len(), 1);
                assert!(
                    k[0].starts_with("subnet[0].mclt (in effect 1800 s, would be 30 s"),
                    "{k:?}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
