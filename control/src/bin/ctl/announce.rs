//! `irondhcp-ctl announce`: the health checker that keeps a server's
//! anycast route in step with its health.
//!
//! It runs beside bird, outside the daemon, because a daemon that died
//! cannot withdraw its own route: a refused or silent management socket is
//! itself the signal. The first failed check withdraws the route at once
//! (`birdc disable <protocol>`); three good checks in a row announce it
//! again, so a server that flaps does not pull clients back and forth.
//! Only local faults fail the check (see the daemon's `health`); a box that
//! dies whole, checker and all, is dropped by the router's BGP hold timer.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;

/// Good checks in a row before the route is announced again.
const GOOD_TO_ANNOUNCE: u32 = 3;

/// Checks every `every` until killed.
pub fn run(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    bird_socket: &Path,
    protocol: &str,
    every: Duration,
) -> ExitCode {
    // What bird was last told (None: not yet, or the telling failed).
    let mut announced: Option<bool> = None;
    let mut good = 0u32;
    loop {
        let healthy = rt.block_on(async {
            let q = irondhcp_control::ctl::query(socket, "health");
            match tokio::time::timeout(Duration::from_secs(1), q).await {
                Ok(Ok(v)) => v["healthy"] == true,
                _ => false,
            }
        });
        good = if healthy { good + 1 } else { 0 };
        let want = match announced {
            // At start, say what holds now.
            None => healthy,
            Some(true) => healthy,
            Some(false) => good >= GOOD_TO_ANNOUNCE,
        };
        if announced != Some(want) {
            let verb = if want { "enable" } else { "disable" };
            let done = Command::new("birdc")
                .arg("-s")
                .arg(bird_socket)
                .args([verb, protocol])
                .output();
            match done {
                Ok(o) if o.status.success() => {
                    println!(
                        "{} {}",
                        if want { "announced" } else { "withdrawn" },
                        protocol
                    );
                    announced = Some(want);
                }
                Ok(o) => {
                    eprintln!(
                        "irondhcp-ctl: birdc {verb} {protocol} failed: {}",
                        String::from_utf8_lossy(&o.stdout).trim()
                    );
                    announced = None;
                }
                Err(e) => {
                    eprintln!("irondhcp-ctl: cannot run birdc: {e}");
                    announced = None;
                }
            }
        }
        std::thread::sleep(every);
    }
}
