//! One request to the daemon, its failure as one line for the operator:
//! every subcommand reports an unreachable daemon and a refused command
//! the same way. The daemon is reached over its control socket, or, with
//! `--url`, over its HTTP listener (Kea's command shape, `POST /`, with
//! the bearer token) from another machine.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// The HTTP listener to ask instead of the socket (set once, from the
/// command line).
struct Http {
    /// `host:port`.
    addr: String,
    token: Option<String>,
}

static HTTP: OnceLock<Http> = OnceLock::new();

/// Sends every request to the HTTP listener at `url`
/// (`http://host:port`), with `token` when given.
pub fn use_http(url: &str, token: Option<String>) -> Result<(), String> {
    let addr = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--url {url}: give http://host:port (TLS is not supported here)"))?
        .trim_end_matches('/')
        .to_string();
    let _ = HTTP.set(Http { addr, token });
    Ok(())
}

/// One command over HTTP: the answer's JSON body.
fn over_http(h: &Http, command: &str, arguments: &Value) -> Result<Value, String> {
    let unreachable = |e: std::io::Error| {
        format!(
            "cannot reach irondhcp at http://{}: {e} (is its [http] listener on?)",
            h.addr
        )
    };
    let body = serde_json::json!({ "command": command, "arguments": arguments }).to_string();
    let mut s = std::net::TcpStream::connect(&h.addr).map_err(unreachable)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(unreachable)?;
    let auth = h
        .token
        .as_ref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        h.addr,
        body.len()
    )
    .map_err(unreachable)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(unreachable)?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("http://{}: not an HTTP answer", h.addr))?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status == "401" {
        return Err(format!(
            "http://{}: the token was refused (--token or IRONDHCP_TOKEN, as [http] token)",
            h.addr
        ));
    }
    serde_json::from_str(body)
        .map_err(|e| format!("http://{}: HTTP {status}, not a JSON answer: {e}", h.addr))
}

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
    if let Some(h) = HTTP.get() {
        return over_http(h, command, &arguments);
    }
    rt.block_on(irondhcp_control::ctl::request(socket, command, arguments))
        .map_err(|e| {
            format!(
                "cannot reach irondhcp at {}: {e} (is it running? --socket names its control socket)",
                socket.display()
            )
        })
}
