//! `irondhcp`: the DHCPv4 server daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use irondhcp_control::config::Config;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// A DHCPv4 server on XDP and AF_XDP.
#[derive(Parser, Debug)]
#[command(name = "irondhcp", version)]
struct Args {
    /// Path of the TOML configuration file.
    #[arg(short, long, default_value = "/etc/irondhcp/irondhcp.toml")]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Log as JSON lines.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_from_env("IRONDHCP_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    if args.json {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let cfg = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("irondhcp: configuration {}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("configuration {} is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    keep_control_off_worker_cores(&cfg.raw.server.cores, &cfg.raw.server.control_cores);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("irondhcp: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config_path = args.config.clone();
    rt.block_on(async move {
        let (tx, rx) = watch::channel(false);
        let (hup_tx, hup_rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            wait_for_signals(hup_tx).await;
            let _ = tx.send(true);
        });
        match irondhcp_control::daemon::run(cfg, config_path, hup_rx, rx).await {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("irondhcp: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Moves this thread, and so every thread it starts later except the
/// workers (which pin themselves), off the cores given to the workers: the
/// control plane, the store's threads and the management socket then never
/// preempt a worker in the middle of a burst, which is what keeps the
/// renewal latency tail short. Nothing changes when the workers have every
/// core (or are not pinned).
fn keep_control_off_worker_cores(worker_cores: &[usize], control_cores: &[usize]) {
    let online = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let rest: Vec<usize> = if control_cores.is_empty() {
        (0..online).filter(|c| !worker_cores.contains(c)).collect()
    } else {
        control_cores.to_vec()
    };
    if worker_cores.is_empty() || rest.is_empty() {
        return;
    }
    if let Err(e) = irondhcp_fastpath::worker::pin_to_cores(&rest) {
        tracing::warn!(error = %e, "could not keep the control plane off the worker cores");
    } else {
        tracing::info!(control_cores = ?rest, "control plane kept off the worker cores");
    }
}

/// Returns at SIGTERM or SIGINT (the daemon then stops cleanly: XDP
/// detached, write-behind flushed); each SIGHUP until then asks for a
/// configuration reload on `reloads`.
async fn wait_for_signals(reloads: tokio::sync::mpsc::Sender<()>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        // Without signal handlers the daemon can still be stopped by kill -9;
        // never return, so it keeps serving.
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return tracing::info!("SIGTERM"),
            _ = int.recv() => return tracing::info!("SIGINT"),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                // A reload already queued covers this one too.
                let _ = reloads.try_send(());
            }
        }
    }
}
