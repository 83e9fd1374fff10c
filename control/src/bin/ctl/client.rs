//! One request to the daemon, its failure as one line for the operator:
//! every subcommand reports an unreachable daemon and a refused command
//! the same way.

use std::path::Path;

use serde_json::Value;

/// Sends `command` with `arguments` and returns the answer when its
/// `result` is 0; else the one line that says what went wrong.
pub fn call(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    command: &str,
    arguments: Value,
) -> Result<Value, String> {
    let resp = send(rt, socket, command, arguments)?;
    match resp["result"].as_i64() {
        Some(0) => Ok(resp),
        _ => Err(text(&resp)),
    }
}

/// As [`call`], with Kea's result 3 (nothing found) as `None`.
pub fn call_found(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    command: &str,
    arguments: Value,
) -> Result<Option<Value>, String> {
    let resp = send(rt, socket, command, arguments)?;
    match resp["result"].as_i64() {
        Some(0) => Ok(Some(resp)),
        Some(3) => Ok(None),
        _ => Err(text(&resp)),
    }
}

fn text(resp: &Value) -> String {
    resp["text"].as_str().unwrap_or("error").to_string()
}

fn send(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    command: &str,
    arguments: Value,
) -> Result<Value, String> {
    rt.block_on(irondhcp_control::ctl::request(socket, command, arguments))
        .map_err(|e| {
            format!(
                "cannot reach irondhcp at {}: {e} (is it running? --socket names its control socket)",
                socket.display()
            )
        })
}
