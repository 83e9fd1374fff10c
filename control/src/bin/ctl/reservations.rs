//! `irondhcp-ctl reservations list|add|edit|del|audit`: reservations
//! made while the server runs, through Kea's host commands, so what this
//! does a Kea script can do too.

use std::io::{self, Write};
use std::path::Path;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

#[derive(Subcommand, Debug)]
pub enum ReservationsCmd {
    /// Every reservation (the config file's and the stored ones).
    List {
        /// Only this subnet.
        #[arg(long)]
        subnet: Option<u32>,
    },
    /// Reserve an address for a client; it takes effect at once.
    Add(Host),
    /// Change a client's reservation (its address or hostname).
    Edit(Host),
    /// Remove a client's reservation.
    Del(Client),
    /// Who changed which reservation, when, from what to what.
    Audit {
        /// The newest this many changes.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

/// The client a reservation is for.
#[derive(Args, Debug)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("who").required(true).multiple(false)))]
pub struct Client {
    /// The subnet's id.
    #[arg(long)]
    subnet: u32,
    /// By hardware address (aa:bb:cc:dd:ee:ff).
    #[arg(long, group = "who")]
    mac: Option<String>,
    /// By client identifier (option 61, hex).
    #[arg(long, group = "who")]
    client_id: Option<String>,
    /// By the reserved address (`del` only).
    #[arg(long, group = "who")]
    address: Option<String>,
}

/// A reservation to write.
#[derive(Args, Debug)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("who").required(true).multiple(false)))]
pub struct Host {
    /// The subnet's id.
    #[arg(long)]
    subnet: u32,
    /// By hardware address (aa:bb:cc:dd:ee:ff).
    #[arg(long, group = "who")]
    mac: Option<String>,
    /// By client identifier (option 61, hex).
    #[arg(long, group = "who")]
    client_id: Option<String>,
    /// The address to reserve (inside one of the subnet's pools).
    #[arg(long)]
    address: String,
    /// A hostname to keep with it.
    #[arg(long)]
    hostname: Option<String>,
}

/// The keys naming the subnet and the client, as Kea's host commands
/// take them.
fn client_keys(
    subnet: u32,
    mac: &Option<String>,
    client_id: &Option<String>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("subnet-id".into(), json!(subnet));
    if let Some(h) = mac {
        m.insert("hw-address".into(), json!(h));
    }
    if let Some(c) = client_id {
        m.insert("client-id".into(), json!(c));
    }
    m
}

impl Host {
    /// Kea's `reservation` object.
    fn reservation(&self) -> Value {
        let mut m = client_keys(self.subnet, &self.mac, &self.client_id);
        m.insert("ip-address".into(), json!(self.address));
        if let Some(h) = &self.hostname {
            m.insert("hostname".into(), json!(h));
        }
        Value::Object(m)
    }
}

impl Client {
    /// `reservation-del`'s arguments.
    fn arguments(&self) -> Value {
        let mut m = client_keys(self.subnet, &self.mac, &self.client_id);
        if let Some(a) = &self.address {
            m.insert("ip-address".into(), json!(a));
        }
        Value::Object(m)
    }
}

/// The command and arguments for `cmd`.
pub fn request(cmd: &ReservationsCmd) -> (&'static str, Value) {
    match cmd {
        ReservationsCmd::List { .. } => ("reservations", Value::Null),
        ReservationsCmd::Add(h) => ("reservation-add", json!({"reservation": h.reservation()})),
        ReservationsCmd::Edit(h) => (
            "reservation-update",
            json!({"reservation": h.reservation()}),
        ),
        ReservationsCmd::Del(c) => ("reservation-del", c.arguments()),
        ReservationsCmd::Audit { limit } => ("reservation-audit", json!({"limit": limit})),
    }
}

/// Runs `cmd`; the daemon's refusal is the one line returned.
pub fn run(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    cmd: &ReservationsCmd,
    json: bool,
    out: &mut impl Write,
) -> Result<(), crate::leases::Failure> {
    use crate::leases::Failure;
    let (command, args) = request(cmd);
    let resp = crate::client::call(rt, socket, command, args).map_err(Failure::Daemon)?;
    if json {
        return writeln!(out, "{resp}").map_err(Failure::Output);
    }
    match cmd {
        ReservationsCmd::List { subnet } => {
            let hosts = resp["arguments"]["hosts"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            list(out, &hosts, *subnet).map_err(Failure::Output)
        }
        ReservationsCmd::Audit { .. } => {
            let rows = resp["arguments"]["changes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            audit(out, &rows).map_err(Failure::Output)
        }
        _ => writeln!(out, "{}", resp["text"].as_str().unwrap_or("done")).map_err(Failure::Output),
    }
}

fn list(out: &mut impl Write, hosts: &[Value], subnet: Option<u32>) -> io::Result<()> {
    writeln!(
        out,
        "{:<6} {:<16} {:<10} {:<24} {:<7} hostname",
        "subnet", "address", "by", "identifier", "source"
    )?;
    for h in hosts {
        if subnet.is_some_and(|s| h["subnet-id"] != s) {
            continue;
        }
        let (by, id) = match (h["hw-address"].as_str(), h["client-id"].as_str()) {
            (Some(m), _) => ("hw-address", m),
            (None, Some(c)) => ("client-id", c),
            _ => ("?", ""),
        };
        writeln!(
            out,
            "{:<6} {:<16} {:<10} {:<24} {:<7} {}",
            h["subnet-id"].to_string(),
            h["ip-address"].as_str().unwrap_or(""),
            by,
            id,
            h["source"].as_str().unwrap_or(""),
            h["hostname"].as_str().unwrap_or("")
        )?;
    }
    Ok(())
}

fn audit(out: &mut impl Write, rows: &[Value]) -> io::Result<()> {
    writeln!(
        out,
        "{:<19} {:<7} {:<6} {:<28} {:<16} {:<16} who",
        "at (UTC)", "action", "subnet", "client", "before", "after"
    )?;
    let addr = |v: &Value| v["ip-address"].as_str().unwrap_or("-").to_string();
    for r in rows {
        writeln!(
            out,
            "{:<19} {:<7} {:<6} {:<28} {:<16} {:<16} {}",
            irondhcp_control::kea_api::timestamp(
                r["at"].as_u64().unwrap_or(0).saturating_mul(1_000_000)
            )
            .get(..19)
            .unwrap_or_default(),
            r["action"].as_str().unwrap_or(""),
            r["subnet_id"].to_string(),
            format!(
                "{} {}",
                r["identifier_type"].as_str().unwrap_or(""),
                r["identifier"].as_str().unwrap_or("")
            ),
            addr(&r["before"]),
            addr(&r["after"]),
            r["actor"].as_str().unwrap_or("")
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_kea_s_host_commands() {
        let add = ReservationsCmd::Add(Host {
            subnet: 1,
            mac: Some("02:00:00:00:00:05".into()),
            client_id: None,
            address: "10.0.0.5".into(),
            hostname: Some("printer".into()),
        });
        assert_eq!(
            request(&add),
            (
                "reservation-add",
                json!({"reservation": {"subnet-id": 1, "hw-address": "02:00:00:00:00:05",
                                       "ip-address": "10.0.0.5", "hostname": "printer"}})
            )
        );
        let del = ReservationsCmd::Del(Client {
            subnet: 1,
            mac: None,
            client_id: None,
            address: Some("10.0.0.5".into()),
        });
        assert_eq!(
            request(&del),
            (
                "reservation-del",
                json!({"subnet-id": 1, "ip-address": "10.0.0.5"})
            )
        );
    }
}
