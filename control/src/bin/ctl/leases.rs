//! `irondhcp-ctl leases`: the daemon's leases, filtered and fetched a page
//! at a time (a busy /16 has 60,000 of them; one answer of that size would
//! hold the control plane and the socket for nothing when the operator
//! wanted one MAC).

use std::io::{self, Write};
use std::path::Path;

use clap::Args;
use serde_json::{json, Map, Value};

/// Filters and paging of `irondhcp-ctl leases`.
#[derive(Args, Debug, Clone, Default)]
pub struct LeaseFilter {
    /// Only this subnet (its id).
    #[arg(long)]
    pub subnet: Option<u32>,
    /// Only this address.
    #[arg(long)]
    pub address: Option<String>,
    /// Only this hardware address (aa:bb:cc:dd:ee:ff).
    #[arg(long)]
    pub mac: Option<String>,
    /// Only this client key (hex, as the client column shows it).
    #[arg(long)]
    pub client_key: Option<String>,
    /// Only leases got through this relay circuit (option 82.1): the
    /// relay's text (eth0/7), or colon-separated hex.
    #[arg(long)]
    pub circuit_id: Option<String>,
    /// Only leases got with this relay remote-id (option 82.2): text, or
    /// colon-separated hex.
    #[arg(long)]
    pub remote_id: Option<String>,
    /// Only leases in this state (leased, declined).
    #[arg(long)]
    pub state: Option<String>,
    /// Start after this address (the cursor a previous run printed).
    #[arg(long)]
    pub after: Option<String>,
    /// Print at most this many leases (default: all, fetched 1,000 at a
    /// time).
    #[arg(long)]
    pub limit: Option<u64>,
}

/// Leases fetched per request.
const PAGE: u64 = 1000;

impl LeaseFilter {
    /// The `leases` command's arguments for the page after `after`.
    pub fn arguments(&self, after: Option<&str>, limit: u64) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        };
        put("subnet", self.subnet.map(|s| json!(s)));
        put("address", self.address.as_ref().map(|s| json!(s)));
        put("hw-address", self.mac.as_ref().map(|s| json!(s)));
        put("client-key", self.client_key.as_ref().map(|s| json!(s)));
        put("state", self.state.as_ref().map(|s| json!(s)));
        put("circuit-id", self.circuit_id.as_ref().map(|s| json!(s)));
        put("remote-id", self.remote_id.as_ref().map(|s| json!(s)));
        put("after", after.map(|s| json!(s)));
        put("limit", Some(json!(limit)));
        Value::Object(m)
    }
}

/// What went wrong: the daemon's answer (one line for the operator) or
/// the output.
pub enum Failure {
    Daemon(String),
    Output(io::Error),
}

/// Fetches and writes the leases page by page; as JSON lines (one lease
/// per line) with `json`.
pub fn run(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    filter: &LeaseFilter,
    json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut after = filter.after.clone();
    let mut left = filter.limit.unwrap_or(u64::MAX);
    if !json {
        header(out).map_err(Failure::Output)?;
    }
    while left > 0 {
        let args = filter.arguments(after.as_deref(), left.min(PAGE));
        let resp = crate::client::call(rt, socket, "leases", args).map_err(Failure::Daemon)?;
        let leases = resp["leases"].as_array().cloned().unwrap_or_default();
        left = left.saturating_sub(leases.len() as u64);
        for l in &leases {
            if json {
                writeln!(out, "{l}")
            } else {
                row(out, l)
            }
            .map_err(Failure::Output)?;
        }
        match resp["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    Ok(())
}

fn header(out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<16} {:<6} {:<18} {:<9} {:>12}  client",
        "address", "subnet", "hw", "state", "expires-in"
    )
}

fn row(out: &mut impl Write, l: &Value) -> io::Result<()> {
    let now = irondhcp_fastpath::unix_now() as i64;
    writeln!(
        out,
        "{:<16} {:<6} {:<18} {:<9} {:>11}s  {}",
        l["address"].as_str().unwrap_or(""),
        l["subnet_id"].to_string(),
        l["hw_address"].as_str().unwrap_or("-"),
        l["state"].as_str().unwrap_or(""),
        l["expiry"].as_i64().unwrap_or(0) - now,
        l["client_key"].as_str().unwrap_or(""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_filters_given_are_sent() {
        let f = LeaseFilter {
            mac: Some("02:00:00:00:00:01".into()),
            subnet: Some(3),
            ..LeaseFilter::default()
        };
        assert_eq!(
            f.arguments(Some("10.0.0.9"), 1000),
            json!({"hw-address": "02:00:00:00:00:01", "subnet": 3, "after": "10.0.0.9", "limit": 1000})
        );
        assert_eq!(
            LeaseFilter::default().arguments(None, 5),
            json!({"limit": 5})
        );
    }
}
