//! `irondhcp-ctl`: pool statistics and leases of a running irondhcp.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::Value;

mod announce;

#[derive(Parser, Debug)]
#[command(name = "irondhcp-ctl", version, about = "Talk to a running irondhcp")]
struct Args {
    /// The daemon's management socket.
    #[arg(short, long, default_value = "/run/irondhcp/control.sock")]
    socket: PathBuf,
    /// Print the raw JSON response.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Pool statistics and packet counters.
    Stats,
    /// Live leases.
    Leases,
    /// Whether this server should be announced (exit 0 healthy, 1 not).
    Health,
    /// Withdraw this server's anycast route (it keeps answering what
    /// still reaches it) until `undrain`.
    Drain,
    /// Announce this server again after `drain`.
    Undrain,
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

fn main() -> ExitCode {
    let args = Args::parse();
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
        Cmd::Leases => "leases",
        Cmd::Health => "health",
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
    let resp = match rt.block_on(irondhcp_control::ctl::query(&args.socket, command)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!(
                "irondhcp-ctl: cannot reach irondhcp at {}: {e}",
                args.socket.display()
            );
            return ExitCode::FAILURE;
        }
    };
    if resp["result"] != 0 {
        eprintln!("irondhcp-ctl: {}", resp["text"].as_str().unwrap_or("error"));
        return ExitCode::FAILURE;
    }
    if args.json {
        println!("{resp}");
    } else {
        match command {
            "stats" => print_stats(&resp),
            "leases" => print_leases(&resp),
            "health" => {
                let reasons: Vec<&str> = resp["reasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                if reasons.is_empty() {
                    println!("healthy");
                } else {
                    println!("unhealthy: {}", reasons.join(", "));
                }
            }
            _ => println!("drained: {}", resp["drained"]),
        }
    }
    if command == "health" && resp["healthy"] != true {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn print_stats(v: &Value) {
    println!("server {}", v["server_id"].as_str().unwrap_or("?"));
    println!(
        "{:<6} {:<18} {:>8} {:>9} {:>9} {:>8} {:>8}",
        "id", "subnet", "total", "assigned", "declined", "offered", "free"
    );
    for p in v["pools"].as_array().into_iter().flatten() {
        println!(
            "{:<6} {:<18} {:>8} {:>9} {:>9} {:>8} {:>8}",
            p["subnet_id"].to_string(),
            p["subnet"].as_str().unwrap_or(""),
            p["total"].to_string(),
            p["assigned"].to_string(),
            p["declined"].to_string(),
            p["offered"].to_string(),
            p["free"].to_string()
        );
    }
    let pk = &v["packets"];
    println!(
        "packets: rx {} tx {} answered-from-memory {} to-control {} dropped {}",
        pk["rx_frames"],
        pk["tx_frames"],
        pk["answered_from_map"],
        pk["to_control"],
        pk["drops_total"]
    );
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
    println!("received: {}", list(&pk["received"]));
    println!("sent: {}", list(&pk["sent"]));
    println!("drops: {}", list(&pk["drops"]));
    let c = &v["control"];
    println!(
        "control: offers {} acks {} naks {} commits {} pool-exhausted {} store-errors {} write-behind-pending {}",
        c["offers"], c["acks"], c["naks"], c["commits"], c["pool_exhausted"], c["store_errors"], c["write_behind_pending"]
    );
    if !v["xdp"].is_null() {
        let x = &v["xdp"];
        println!(
            "xdp: redirected {} passed {} malformed {} no-socket {}",
            x["redirected"], x["passed"], x["malformed"], x["no_socket"]
        );
    }
}

fn print_leases(v: &Value) {
    println!(
        "{:<16} {:<6} {:<18} {:<9} {:>12}  client",
        "address", "subnet", "hw", "state", "expires-in"
    );
    let now = irondhcp_fastpath::unix_now() as i64;
    for l in v["leases"].as_array().into_iter().flatten() {
        println!(
            "{:<16} {:<6} {:<18} {:<9} {:>11}s  {}",
            l["address"].as_str().unwrap_or(""),
            l["subnet_id"].to_string(),
            l["hw_address"].as_str().unwrap_or("-"),
            l["state"].as_str().unwrap_or(""),
            l["expiry"].as_i64().unwrap_or(0) - now,
            l["client_key"].as_str().unwrap_or(""),
        );
    }
}
