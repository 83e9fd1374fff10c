//! `irondhcp-ctl lease show|release ADDRESS`: one lease, through Kea's
//! `lease4-get` and `lease4-del`.

use std::io::Write;
use std::path::Path;

use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand, Debug)]
pub enum LeaseCmd {
    /// The lease on an address.
    Show { address: String },
    /// End the lease on an address now, freeing it (for a client that is
    /// gone; the client is not told).
    Release { address: String },
}

pub fn run(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    cmd: &LeaseCmd,
    json: bool,
    out: &mut impl Write,
) -> Result<(), crate::leases::Failure> {
    use crate::leases::Failure;
    let (command, address) = match cmd {
        LeaseCmd::Show { address } => ("lease4-get", address),
        LeaseCmd::Release { address } => ("lease4-del", address),
    };
    let args = json!({"ip-address": address});
    let resp = crate::client::call_found(rt, socket, command, args)
        .map_err(Failure::Daemon)?
        .ok_or_else(|| Failure::Daemon(format!("no lease on {address}")))?;
    if json {
        return writeln!(out, "{resp}").map_err(Failure::Output);
    }
    match cmd {
        LeaseCmd::Show { .. } => show(out, &resp["arguments"]),
        LeaseCmd::Release { address } => writeln!(out, "released {address}"),
    }
    .map_err(Failure::Output)
}

fn show(out: &mut impl Write, l: &Value) -> std::io::Result<()> {
    let s = |k: &str| l[k].as_str().unwrap_or("").to_string();
    writeln!(out, "address     {}", s("ip-address"))?;
    writeln!(out, "subnet      {}", l["subnet-id"])?;
    writeln!(out, "hw-address  {}", s("hw-address"))?;
    writeln!(out, "client      {}", s("client-id"))?;
    let state = if l["state"] == 1 {
        "declined"
    } else {
        "leased"
    };
    writeln!(out, "state       {state}")?;
    writeln!(out, "expires-in  {} s", l["valid-lft"])
}
