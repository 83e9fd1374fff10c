//! A throw-away network testbed in network namespaces, for the demo and the
//! end-to-end tests.
//!
//! Each [`Testbed`] creates two namespaces with names unique to this process
//! and call (so tests can run in parallel), joined by a veth pair: the server
//! end carries the server address and the XDP program, the client end is
//! where real DHCP clients (or perfdhcp) run. Everything is removed on drop,
//! even when a test panics. Readiness is observed, never slept for: the
//! daemon is ready when its management socket answers.
//!
//! Requires root (namespaces, veth, XDP). Traffic never leaves the
//! namespaces: the addresses are from the benchmarking range 198.18.0.0/15
//! (RFC 2544) and exist only inside them.

use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::netns::ip;
pub use crate::netns::{require_root, run, Netns};

/// The served subnet on the veth link (with the default prefix length).
pub const SUBNET: &str = "198.18.0.0/16";
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The address a relay (or perfdhcp, which acts as one) uses on the link.
pub const RELAY_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// A subnet behind the relay; the relay's giaddr there.
pub const RELAY_SUBNET: &str = "198.19.0.0/24";
pub const RELAY_GIADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Options of a testbed.
#[derive(Debug, Clone)]
pub struct TestbedOptions {
    /// Extra TOML appended to the `[server]` table.
    pub server_extra: String,
    /// Extra TOML appended after the subnets.
    pub tail: String,
    pub pool: String,
    pub lease_time: u32,
    /// Whether the client end gets an address (perfdhcp needs one).
    pub client_ip: Option<&'static str>,
    /// Add the relayed subnet 198.19.0.0/24 (id 2); needs `prefix_len` 16.
    pub relay_subnet: bool,
    /// Prefix length of the served subnet 198.18.0.0 (15 doubles it to
    /// 131,072 addresses for load runs).
    pub prefix_len: u8,
    /// The lease store's URL (default: a SQLite file in the testbed's
    /// directory, `Testbed::db`).
    pub storage_url: Option<String>,
}

impl Default for TestbedOptions {
    fn default() -> Self {
        Self {
            server_extra: String::new(),
            tail: String::new(),
            pool: "198.18.1.0-198.18.255.254".into(),
            lease_time: 3600,
            client_ip: None,
            relay_subnet: false,
            prefix_len: 16,
            storage_url: None,
        }
    }
}

/// Two namespaces over a veth pair, a config file, and the daemon.
pub struct Testbed {
    pub server: Netns,
    pub client: Netns,
    pub srv_if: String,
    pub cli_if: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub db: PathBuf,
    pub log: PathBuf,
    daemon: Option<Child>,
}

impl Testbed {
    pub fn new(opts: &TestbedOptions) -> io::Result<Self> {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{}{}", pid % 100_000, n);
        let server = Netns::new(format!("irondhcp-{tag}-srv"))?;
        let client = Netns::new(format!("irondhcp-{tag}-cli"))?;
        // Interface names are at most 15 bytes.
        let srv_if = format!("ids{tag}");
        let cli_if = format!("idc{tag}");
        // Equal queue counts on both ends: native XDP on veth needs at
        // least as many RX queues as the peer has TX queues.
        ip(&[
            "link",
            "add",
            &srv_if,
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
            "type",
            "veth",
            "peer",
            "name",
            &cli_if,
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
        ])?;
        ip(&["link", "set", &srv_if, "netns", &server.name])?;
        ip(&["link", "set", &cli_if, "netns", &client.name])?;
        server.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{SERVER_IP}/{}", opts.prefix_len),
            "dev",
            &srv_if,
        ])?;
        server.exec(&["ip", "link", "set", &srv_if, "up"])?;
        client.exec(&["ip", "link", "set", &cli_if, "up"])?;
        // A sender on a veth leaves UDP checksums to offload; AF_XDP
        // receives the frame before anyone finishes them.
        let _ = client.exec(&["ethtool", "-K", &cli_if, "tx", "off"]);
        if let Some(addr) = opts.client_ip {
            client.exec(&["ip", "addr", "add", addr, "dev", &cli_if])?;
        }
        if opts.relay_subnet {
            // Replies to the relay's giaddr leave via the veth.
            server.exec(&[
                "ip",
                "route",
                "add",
                RELAY_SUBNET,
                "via",
                &RELAY_IP.to_string(),
            ])?;
        }

        let dir = std::env::temp_dir().join(format!("irondhcp-testbed-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("control.sock");
        let db = dir.join("leases.sqlite3");
        let config = dir.join("irondhcp.toml");
        let relay = if opts.relay_subnet {
            format!(
                "\n[[subnet]]\nid = 2\ncidr = \"{RELAY_SUBNET}\"\npools = [\"198.19.0.10-198.19.0.200\"]\nlease_time = {}\nrouters = [\"{RELAY_GIADDR}\"]\n",
                opts.lease_time
            )
        } else {
            String::new()
        };
        let text = format!(
            r#"[server]
id = "testbed-{tag}"
address = "{SERVER_IP}"
interface = "{srv_if}"
queues = [0]
xdp_mode = "native"
control_socket = "{socket}"
{server_extra}

[storage]
url = "{storage_url}"

[[subnet]]
id = 1
cidr = "198.18.0.0/{prefix_len}"
pools = ["{pool}"]
lease_time = {lease}
routers = ["{SERVER_IP}"]
dns_servers = ["{SERVER_IP}"]
domain_name = "testbed.example"
{relay}
{tail}
"#,
            socket = socket.display(),
            server_extra = opts.server_extra,
            storage_url = opts
                .storage_url
                .clone()
                .unwrap_or_else(|| format!("sqlite://{}", db.display())),
            pool = opts.pool,
            lease = opts.lease_time,
            prefix_len = opts.prefix_len,
            tail = opts.tail,
        );
        std::fs::write(&config, text)?;
        let log = dir.join("irondhcp.log");
        Ok(Self {
            server,
            client,
            srv_if,
            cli_if,
            dir,
            config,
            socket,
            db,
            log,
            daemon: None,
        })
    }

    /// Starts `irondhcp` (the binary at `bin`) in the server namespace and
    /// waits until its management socket answers.
    pub fn start_daemon(&mut self, bin: &Path) -> io::Result<()> {
        self.start_daemon_with_env(bin, &[])
    }

    /// [`Testbed::start_daemon`] with extra environment variables (e.g.
    /// systemd's `NOTIFY_SOCKET`).
    pub fn start_daemon_with_env(&mut self, bin: &Path, env: &[(&str, &str)]) -> io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = self.server.command(bin);
        cmd.arg("--config")
            .arg(&self.config)
            .env(
                "IRONDHCP_LOG",
                std::env::var("IRONDHCP_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let _ = std::fs::remove_file(&self.socket);
        let mut child = cmd.spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "irondhcp exited during start ({status}); log:\n{}",
                    self.log_text()
                )));
            }
            if self.ctl("stats").is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(io::Error::other(format!(
                    "irondhcp not ready after 30 s; log:\n{}",
                    self.log_text()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.daemon = Some(child);
        Ok(())
    }

    /// SIGTERM and wait (graceful stop). Returns the exit status.
    pub fn stop_daemon(&mut self) -> io::Result<std::process::ExitStatus> {
        self.signal_daemon(libc::SIGTERM)
    }

    /// Sends `signal` and waits for the daemon to exit (20 s at most).
    pub fn signal_daemon(&mut self, signal: i32) -> io::Result<std::process::ExitStatus> {
        let mut child = self
            .daemon
            .take()
            .ok_or_else(|| io::Error::other("no daemon running"))?;
        // `ip netns exec` execs the program, so the child pid is irondhcp.
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait()? {
                return Ok(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(io::Error::other(format!(
                    "irondhcp did not stop within 20 s of signal {signal}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to the daemon and returns at once (SIGHUP: reload).
    pub fn send_signal(&self, signal: i32) -> io::Result<()> {
        let child = self
            .daemon
            .as_ref()
            .ok_or_else(|| io::Error::other("no daemon running"))?;
        // SAFETY: plain kill(2) on our own child, which has not been reaped.
        if unsafe { libc::kill(child.id() as i32, signal) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill_daemon(&mut self) -> io::Result<()> {
        let mut child = self
            .daemon
            .take()
            .ok_or_else(|| io::Error::other("no daemon running"))?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Whether the daemon process is still alive.
    pub fn daemon_alive(&mut self) -> bool {
        matches!(self.daemon.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// One management command, answered as JSON.
    pub fn ctl(&self, command: &str) -> io::Result<serde_json::Value> {
        crate::ctl::query(&self.socket, command, Duration::from_secs(5))
    }

    /// Polls `cond` every 50 ms until it holds or `timeout` passes.
    pub fn wait_for(&self, timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        cond()
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Puts the relay's address (RELAY_IP/16) on the client interface: for
    /// a relay agent, or perfdhcp, which always acts as one.
    pub fn add_relay_address(&self) -> io::Result<()> {
        self.client.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{RELAY_IP}/16"),
            "dev",
            &self.cli_if,
        ])?;
        Ok(())
    }

    /// IPv4 addresses on the client interface (or `ifname` in the client
    /// namespace).
    pub fn client_addrs(&self, ifname: &str) -> Vec<Ipv4Addr> {
        let out = self
            .client
            .exec(&["ip", "-4", "-o", "addr", "show", "dev", ifname])
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        // Lines look like "2: if inet 198.18.1.7/16 brd 198.18.255.255 ...":
        // the address is the word after "inet".
        out.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace().skip_while(|w| *w != "inet");
                w.nth(1)?.split('/').next()?.parse().ok()
            })
            .collect()
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting the namespaces (fields drop after this) removes the veth.
        if std::env::var_os("IRONDHCP_KEEP_TESTBED").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
