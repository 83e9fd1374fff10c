//! `irondhcp-ctl config check [FILE]` and `irondhcp-ctl reload`: Kea's
//! `config-test` and `config-reload` against the running daemon, which
//! says whether the file is valid and whether it can be applied without a
//! restart, naming the keys that change or that need one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::leases::Failure;

/// `config check`: `file`'s text (else the daemon's own file) tested by
/// the daemon; `reload` when `reload` is set.
pub fn run(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    file: Option<&PathBuf>,
    reload: bool,
    json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let (command, args) = if reload {
        ("config-reload", Value::Null)
    } else {
        match file {
            Some(f) => {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| Failure::Daemon(format!("cannot read {}: {e}", f.display())))?;
                ("config-test", json!({ "config": text }))
            }
            None => ("config-test", Value::Null),
        }
    };
    let resp = crate::client::call(rt, socket, command, args).map_err(Failure::Daemon)?;
    if json {
        return writeln!(out, "{resp}").map_err(Failure::Output);
    }
    let changes: Vec<&str> = resp["arguments"]["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let summary = match (reload, changes.is_empty()) {
        (true, true) => "reloaded: nothing changed".to_string(),
        (true, false) => format!("reloaded: {}", changes.join(", ")),
        (false, true) => "valid; the same as the running configuration".to_string(),
        (false, false) => format!("valid; a reload would change {}", changes.join(", ")),
    };
    writeln!(out, "{summary}").map_err(Failure::Output)
}
