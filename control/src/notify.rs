//! systemd's service protocol (sd_notify): `READY=1` once the daemon
//! serves, `WATCHDOG=1` every half `WatchdogSec` while the control plane
//! still answers, `STOPPING=1` on the way out.
//!
//! Why the watchdog asks the control plane instead of ticking from a
//! timer: a timer keeps ticking while the plane is wedged, and a wedged
//! plane is what the watchdog is for. Workers that die stop the daemon on
//! their own (daemon.rs supervises them). Without `$NOTIFY_SOCKET` (not
//! under systemd) nothing is sent; the protocol is one datagram per
//! message, so no crate is needed.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use tokio::sync::watch;

use crate::ctl::CtlContext;

/// Where systemd listens (`$NOTIFY_SOCKET`; `@name` is an abstract socket).
fn socket() -> Option<String> {
    std::env::var("NOTIFY_SOCKET")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Sends `state` (e.g. `READY=1`); Ok(false) when not under systemd.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = socket() else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            sock.send_to(state.as_bytes(), &path)?;
        }
    }
    Ok(true)
}

/// How often to pet the watchdog: half of `$WATCHDOG_USEC`, when it is
/// meant for this process (`$WATCHDOG_PID` unset or ours).
pub fn watchdog_every() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pets the watchdog every `every` while the control plane answers a
/// health check, until `shutdown`.
pub async fn watchdog(ctx: CtlContext, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = crate::sync::stopped(&mut shutdown) => return,
            _ = tick.tick() => {
                if crate::ctl::plane_answers(&ctx).await {
                    if let Err(e) = notify("WATCHDOG=1") {
                        tracing::warn!(error = %e, "systemd watchdog not reached");
                    }
                } else {
                    tracing::error!("control plane not answering: the systemd watchdog is not petted");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_message_reaches_the_socket() {
        let dir = std::env::temp_dir().join(format!("notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        // This is the only test that sets NOTIFY_SOCKET.
        std::env::set_var("NOTIFY_SOCKET", &path);
        assert!(notify("READY=1\nSTATUS=serving").unwrap());
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving");
        std::env::remove_var("NOTIFY_SOCKET");
        assert!(!notify("READY=1").unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
