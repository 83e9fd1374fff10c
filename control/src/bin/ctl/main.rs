//! `irondhcp-ctl`: pool statistics and leases of a running irondhcp.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::Value;

mod announce;
mod client;
mod config;
mod lease;
mod leases;
mod pools;
mod reservations;
mod top;

#[derive(Parser, Debug)]
#[command(name = "irondhcp-ctl", version, about = "Talk to a running irondhcp")]
struct Args {
    /// The daemon's management socket.
    #[arg(
        short,
        long,
        global = true,
        default_value = "/run/irondhcp/control.sock"
    )]
    socket: PathBuf,
    /// Ask the daemon's HTTP listener instead of the socket
    /// (http://host:8000), e.g. from another machine.
    #[arg(long, global = true)]
    url: Option<String>,
    /// The listener's bearer token ([http] token).
    #[arg(long, global = true, env = "IRONDHCP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the raw JSON response (`leases`: one lease per line).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Pool statistics and packet counters.
    Stats,
    /// How full each pool range is (dhcpd-pools' columns); with
    /// --warning/--critical, one monitoring line and exit 0/1/2 (3 when the
    /// server cannot be asked).
    Pools(pools::PoolsArgs),
    /// Turn a kea-dhcp4 configuration into an irondhcp one, naming every
    /// key that could not be carried over (on stderr).
    ImportKea {
        /// The Kea configuration file (kea-dhcp4.conf).
        file: PathBuf,
        /// Write the irondhcp configuration here (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// The server identifier (Kea takes it from the interface).
        #[arg(long)]
        address: Option<std::net::Ipv4Addr>,
    },
    /// Live leases, filtered, in address order.
    Leases(leases::LeaseFilter),
    /// One lease: show it, or release it.
    #[command(subcommand)]
    Lease(lease::LeaseCmd),
    /// Reservations: list, add, edit, del, audit.
    #[command(subcommand)]
    Reservations(reservations::ReservationsCmd),
    /// Test a configuration file against the running daemon: valid, and
    /// appliable without a restart? (Without FILE: the daemon's own file.)
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Reload the daemon's configuration file (lease times and options
    /// change at once; anything else is refused and named).
    Reload,
    /// Whether this server should be announced (exit 0 healthy, 1 not).
    Health,
    /// The cluster's servers: heartbeat, boot epoch, version, address
    /// blocks owned (one box: this server).
    Servers,
    /// Withdraw this server's anycast route (it keeps answering what
    /// still reaches it) until `undrain`.
    Drain,
    /// Announce this server again after `drain`.
    Undrain,
    /// A live view: pool use, packets per second by type, drops, commits
    /// and their latency (Ctrl-C quits).
    Top {
        /// Milliseconds between frames.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Draw this many frames, then exit.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Keep bird's anycast announcement in step with the server's health:
    /// withdraw at the first failed check, announce after three good ones.
    Announce {
        /// bird's control socket.
        #[arg(long, default_value = "/run/bird/bird.ctl")]
        bird_socket: PathBuf,
        /// The bird protocol that exports the anycast route (a `static`).
        #[arg(long, default_value = "anycast")]
        protocol: String,
        /// Milliseconds between checks.
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Is FILE valid, and what would reloading it change?
    Check { file: Option<PathBuf> },
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(url) = &args.url {
        if let Err(e) = client::use_http(url, args.token.clone()) {
            eprintln!("irondhcp-ctl: {e}");
            return ExitCode::FAILURE;
        }
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("irondhcp-ctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = match &args.cmd {
        Cmd::Stats => "stats",
        Cmd::Pools(p) => return run_pools(&rt, &args.socket, p),
        Cmd::ImportKea {
            file,
            output,
            address,
        } => return import_kea(file, output.as_deref(), *address),
        Cmd::Leases(filter) => {
            return buffered(|out| leases::run(&rt, &args.socket, filter, args.json, out))
        }
        Cmd::Lease(cmd) => {
            return buffered(|out| lease::run(&rt, &args.socket, cmd, args.json, out))
        }
        Cmd::Config(ConfigCmd::Check { file }) => {
            return buffered(|out| {
                config::run(&rt, &args.socket, file.as_ref(), false, args.json, out)
            })
        }
        Cmd::Reload => {
            return buffered(|out| config::run(&rt, &args.socket, None, true, args.json, out))
        }
        Cmd::Top { interval_ms, count } => {
            let every = std::time::Duration::from_millis((*interval_ms).max(100));
            return buffered(|out| top::run(&rt, &args.socket, every, *count, out));
        }
        Cmd::Reservations(cmd) => {
            return buffered(|out| reservations::run(&rt, &args.socket, cmd, args.json, out))
        }
        Cmd::Health => "health",
        Cmd::Servers => "servers",
        Cmd::Drain => "drain",
        Cmd::Undrain => "undrain",
        Cmd::Announce {
            bird_socket,
            protocol,
            interval_ms,
        } => {
            let every = std::time::Duration::from_millis((*interval_ms).max(10));
            return announce::run(&rt, &args.socket, bird_socket, protocol, every);
        }
    };
    let resp = match client::call(&rt, &args.socket, command, Value::Null) {
        Ok(v) => v,
        Err(text) => {
            eprintln!("irondhcp-ctl: {text}");
            return ExitCode::FAILURE;
        }
    };
    // Output goes through one buffered writer; a reader that went away
    // (`| head`) ends the run quietly, as it does for any Unix tool.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if let Err(e) = print(&mut out, command, &resp, args.json).and_then(|()| out.flush()) {
        return output_failed(&e);
    }
    if command == "health" && resp["healthy"] != true {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Runs a subcommand whose output goes through one buffered stdout; a
/// reader that went away ends it quietly, a refusal is one line.
fn buffered(
    run: impl FnOnce(&mut io::BufWriter<io::StdoutLock<'static>>) -> Result<(), leases::Failure>,
) -> ExitCode {
    let mut out = io::BufWriter::new(io::stdout().lock());
    let done = run(&mut out).and_then(|()| out.flush().map_err(leases::Failure::Output));
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(leases::Failure::Output(e)) => output_failed(&e),
        Err(leases::Failure::Daemon(text)) => {
            eprintln!("irondhcp-ctl: {text}");
            ExitCode::FAILURE
        }
    }
}

/// `irondhcp-ctl import-kea`.
fn import_kea(
    file: &std::path::Path,
    output: Option<&std::path::Path>,
    address: Option<std::net::Ipv4Addr>,
) -> ExitCode {
    use irondhcp_control::kea_import::{import, ImportOptions};
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("irondhcp-ctl: cannot read {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let im = match import(
        &text,
        &ImportOptions {
            server_address: address,
        },
    ) {
        Ok(im) => im,
        Err(e) => {
            eprintln!("irondhcp-ctl: {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    for s in &im.skipped {
        eprintln!("skipped {}: {}", s.path, s.why);
    }
    for n in &im.notes {
        eprintln!("check {n}");
    }
    let written = match output {
        Some(path) => std::fs::write(path, &im.toml),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(im.toml.as_bytes()).and_then(|()| out.flush())
        }
    };
    if let Err(e) = written {
        return output_failed(&e);
    }
    eprintln!(
        "imported {}: {} key(s) skipped, {} value(s) to check",
        file.display(),
        im.skipped.len(),
        im.notes.len()
    );
    ExitCode::SUCCESS
}

/// `irondhcp-ctl pools`.
fn run_pools(
    rt: &tokio::runtime::Runtime,
    socket: &std::path::Path,
    p: &pools::PoolsArgs,
) -> ExitCode {
    let check = p.warning.is_some() || p.critical.is_some();
    let stats = match client::call(rt, socket, "stats", Value::Null) {
        Ok(v) => v,
        Err(text) => return unknown(check, &text),
    };
    let rows = pools::rows(&stats);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if check {
        let (code, line) = pools::status(&rows, p.warning, p.critical);
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            return output_failed(&e);
        }
        return ExitCode::from(code);
    }
    match pools::write(&mut out, &rows, p.format).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => output_failed(&e),
    }
}

/// The server could not be asked: a monitoring check is UNKNOWN (exit 3,
/// one line on stdout, where Nagios reads it); otherwise one line on stderr.
fn unknown(check: bool, text: &str) -> ExitCode {
    if check {
        println!("IRONDHCP POOLS UNKNOWN: {text}");
        ExitCode::from(3)
    } else {
        eprintln!("irondhcp-ctl: {text}");
        ExitCode::FAILURE
    }
}

/// A write to stdout failed: a reader that went away (`| head`) ends the
/// run quietly, as for any Unix tool; anything else is one line.
fn output_failed(e: &io::Error) -> ExitCode {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("irondhcp-ctl: cannot write the output: {e}");
    ExitCode::FAILURE
}

/// Writes the answer to `command` for people (or as JSON).
fn print(out: &mut impl Write, command: &str, resp: &Value, json: bool) -> io::Result<()> {
    if json {
        return writeln!(out, "{resp}");
    }
    match command {
        "stats" => print_stats(out, resp),
        "health" => {
            let reasons: Vec<&str> = resp["reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if reasons.is_empty() {
                writeln!(out, "healthy")
            } else {
                writeln!(out, "unhealthy: {}", reasons.join(", "))
            }
        }
        "servers" => print_servers(out, resp),
        _ => writeln!(out, "drained: {}", resp["drained"]),
    }
}

fn print_servers(out: &mut impl Write, v: &Value) -> io::Result<()> {
    writeln!(
        out,
        "{:<20} {:<16} {:<8} {:>5} {:>10} {:>7} {:>10}",
        "server", "address", "version", "epoch", "heartbeat", "blocks", "addresses"
    )?;
    let or_dash = |x: &Value| match x {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for s in v["arguments"]["servers"].as_array().into_iter().flatten() {
        let id = format!(
            "{}{}",
            s["id"].as_str().unwrap_or("?"),
            if s["this"] == true { " *" } else { "" }
        );
        writeln!(
            out,
            "{:<20} {:<16} {:<8} {:>5} {:>9}s {:>7} {:>10}",
            id,
            or_dash(&s["address"]),
            or_dash(&s["version"]),
            or_dash(&s["boot_epoch"]),
            s["heartbeat_age"],
            or_dash(&s["blocks"]),
            or_dash(&s["addresses"])
        )?;
    }
    Ok(())
}

fn print_stats(out: &mut impl Write, v: &Value) -> io::Result<()> {
    writeln!(out, "server {}", v["server_id"].as_str().unwrap_or("?"))?;
    writeln!(
        out,
        "{:<6} {:<18} {:>8} {:>9} {:>9} {:>8} {:>8}",
        "id", "subnet", "total", "assigned", "declined", "offered", "free"
    )?;
    for p in v["pools"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "{:<6} {:<18} {:>8} {:>9} {:>9} {:>8} {:>8}",
            p["subnet_id"].to_string(),
            p["subnet"].as_str().unwrap_or(""),
            p["total"].to_string(),
            p["assigned"].to_string(),
            p["declined"].to_string(),
            p["offered"].to_string(),
            p["free"].to_string()
        )?;
    }
    let pk = &v["packets"];
    writeln!(
        out,
        "packets: rx {} tx {} answered-from-memory {} to-control {} dropped {}",
        pk["rx_frames"],
        pk["tx_frames"],
        pk["answered_from_map"],
        pk["to_control"],
        pk["drops_total"]
    )?;
    let list = |o: &Value| {
        let items: Vec<String> = o
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| v.as_u64() != Some(0))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect()
            })
            .unwrap_or_default();
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(" ")
        }
    };
    writeln!(out, "received: {}", list(&pk["received"]))?;
    writeln!(out, "sent: {}", list(&pk["sent"]))?;
    writeln!(out, "drops: {}", list(&pk["drops"]))?;
    let c = &v["control"];
    writeln!(out,
        "control: offers {} acks {} naks {} commits {} pool-exhausted {} store-errors {} write-behind-pending {}",
        c["offers"], c["acks"], c["naks"], c["commits"], c["pool_exhausted"], c["store_errors"], c["write_behind_pending"]
    )?;
    if !v["xdp"].is_null() {
        let x = &v["xdp"];
        writeln!(
            out,
            "xdp: redirected {} passed {} malformed {} no-socket {}",
            x["redirected"], x["passed"], x["malformed"], x["no_socket"]
        )?;
    }
    Ok(())
}
