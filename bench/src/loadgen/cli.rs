//! Command-line flags and their validation.

use std::net::Ipv4Addr;

use clap::Parser;

use super::scenario::{Mix, Scenario};

/// Packet I/O back end (`--io`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IoKind {
    /// AF_XDP sockets fed by the irondhcp XDP program.
    Xdp,
    /// An AF_PACKET raw socket (works everywhere, slower).
    Packet,
}

impl IoKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Xdp => "xdp",
            Self::Packet => "packet",
        }
    }
}

/// How the XDP program is attached (`--xdp-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum XdpModeArg {
    Native,
    Generic,
    Auto,
}

/// A DHCPv4 client simulator: open-loop load at a fixed rate, through
/// AF_XDP (or AF_PACKET), with per-exchange latency percentiles.
///
/// Works against any RFC 2131 server. Needs root.
#[derive(Parser, Debug, Clone)]
#[command(name = "irondhcp-loadgen", version)]
pub struct Args {
    /// Interface to send and receive on (the server is on its link).
    #[arg(long, short = 'i')]
    pub iface: String,
    /// Packet I/O: AF_XDP with the irondhcp XDP program, or AF_PACKET.
    #[arg(long, value_enum, default_value_t = IoKind::Xdp)]
    pub io: IoKind,
    /// How to attach the XDP program (auto: native, else generic).
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    pub xdp_mode: XdpModeArg,
    /// Sending/receiving threads; thread i uses RX/TX queue i.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Cores to pin the threads to (thread i on the i-th core of the list);
    /// unpinned when not given.
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// What to simulate.
    #[arg(long, value_enum, default_value_t = Scenario::Dora)]
    pub scenario: Scenario,
    /// Proportions of `--scenario mixed`: names dora, renew, rebind, release.
    /// DORAs use new clients; renew, rebind and release take the warmed-up
    /// clients round-robin, and a released client is not renewed again.
    #[arg(long, default_value = "renew=80,dora=15,release=5")]
    pub mix: Mix,
    /// Simulated clients. renew/rebind/release/mixed: the clients that get a
    /// lease in the warm-up (default 1000). dora/relay: the most new clients
    /// to use (default: as many as the run needs). discover: the clients
    /// that send, each reused round-robin when the run needs more DISCOVERs
    /// (default: a new client for every DISCOVER).
    #[arg(long)]
    pub clients: Option<u64>,
    /// Index of the first client (MAC 02:xx:xx:xx:xx:xx encodes the index):
    /// successive runs with different offsets use fresh clients.
    #[arg(long, default_value_t = 0)]
    pub client_offset: u64,
    /// Send option 61 (client identifier 0x01 + MAC).
    #[arg(long)]
    pub client_id: bool,
    /// Set the BROADCAST flag in DISCOVER and SELECTING REQUEST.
    #[arg(long)]
    pub broadcast_flag: bool,
    /// Offered load: new exchanges per second (a DORA counts once; a
    /// DISCOVER of --scenario discover is one).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Length of the send phase in seconds (default 10 unless --count).
    #[arg(long, conflicts_with = "count")]
    pub duration: Option<f64>,
    /// Number of exchanges to send instead of a duration.
    #[arg(long)]
    pub count: Option<u64>,
    /// Rate of the untimed warm-up DORAs (renew, rebind, release, mixed).
    #[arg(long, default_value_t = 2000.0)]
    pub warmup_rate: f64,
    /// Retransmit an unanswered request after this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub retransmit_ms: u64,
    /// Transmissions per request at most (same xid), first included.
    #[arg(long, default_value_t = 3)]
    pub tries: u8,
    /// An exchange unanswered this long after its first transmission is
    /// lost (like perfdhcp -d).
    #[arg(long, default_value_t = 2000)]
    pub drop_time_ms: u64,
    /// Server address: relay target, and unicast target of renewals and
    /// releases (default: the lease's server identifier).
    #[arg(long)]
    pub server: Option<Ipv4Addr>,
    /// Server MAC (default: learnt from its replies; ARP in relay mode).
    #[arg(long, value_parser = parse_mac)]
    pub server_mac: Option<[u8; 6]>,
    /// Relay: the giaddr to put in relayed requests.
    #[arg(long)]
    pub giaddr: Option<Ipv4Addr>,
    /// Relay: the source address of relayed requests (on the server's link).
    #[arg(long)]
    pub relay_ip: Option<Ipv4Addr>,
    /// Print one JSON object on stdout at the end instead of a table.
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Do not answer ARP requests for the simulated clients' addresses.
    #[arg(long)]
    pub no_arp: bool,
    /// PID of the server under test (on this host): report its CPU time
    /// (user + system, all threads, from /proc/PID/stat) over the send
    /// phase and per completed exchange.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write every exchange that ended (warm-up included) to this CSV
    /// file: start and end (UNIX ms), type, client MAC, address, outcome
    /// (ack, nak, lost), lease seconds. For checkers that compare what
    /// clients were promised with what a server stored.
    #[arg(long)]
    pub exchange_log: Option<std::path::PathBuf>,
    /// Create `PATH.start` when the timed phase starts and `PATH.end` when
    /// the last new exchange has been sent (the `--server-pid` window), so
    /// a harness can read its own counters over the same window.
    #[arg(long)]
    pub window_marks: Option<std::path::PathBuf>,
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with dashes).
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"));
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16)
            .map_err(|_| format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"))?;
    }
    Ok(mac)
}

/// Highest client index the address table and ARP responder can name.
const MAX_CLIENT_INDEX: u64 = u32::MAX as u64 - 1;

impl Args {
    /// The send phase's length when neither --duration nor --count is given.
    pub const DEFAULT_DURATION_S: f64 = 10.0;

    pub fn duration_s(&self) -> Option<f64> {
        match (self.duration, self.count) {
            (Some(d), _) => Some(d),
            (None, Some(_)) => None,
            (None, None) => Some(Self::DEFAULT_DURATION_S),
        }
    }

    /// Bound clients for the scenarios that renew/rebind/release.
    pub fn fixed_clients(&self) -> u64 {
        if self.scenario.needs_bound_clients(&self.mix) {
            self.clients.unwrap_or(1000)
        } else {
            0
        }
    }

    /// Exchanges the send phase starts at most (rate × duration, or count).
    pub fn planned_exchanges(&self) -> u64 {
        match (self.duration_s(), self.count) {
            (Some(d), _) => (self.rate * d).ceil() as u64 + 1,
            (None, Some(c)) => c,
            (None, None) => 0,
        }
    }

    /// Checks what clap cannot; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("--{name} must be a positive number, got {v}"))
            }
        };
        positive("rate", self.rate)?;
        positive("warmup-rate", self.warmup_rate)?;
        if let Some(d) = self.duration {
            positive("duration", d)?;
        }
        if self.count == Some(0) {
            return Err("--count must be at least 1".into());
        }
        if !(1..=64).contains(&self.threads) {
            return Err(format!("--threads must be 1..=64, got {}", self.threads));
        }
        if self.tries == 0 {
            return Err("--tries must be at least 1".into());
        }
        if self.retransmit_ms == 0 || self.drop_time_ms == 0 {
            return Err("--retransmit-ms and --drop-time-ms must be at least 1".into());
        }
        if self.clients == Some(0) {
            return Err("--clients must be at least 1".into());
        }
        let relay = self.scenario == Scenario::Relay;
        if relay {
            if self.giaddr.is_none() || self.relay_ip.is_none() || self.server.is_none() {
                return Err("--scenario relay needs --giaddr, --relay-ip and --server".into());
            }
        } else if self.giaddr.is_some() || self.relay_ip.is_some() {
            return Err("--giaddr and --relay-ip only apply to --scenario relay".into());
        }
        if self.scenario != Scenario::Mixed
            && self.mix
                != "renew=80,dora=15,release=5"
                    .parse::<Mix>()
                    .map_err(|e| e.to_string())?
        {
            return Err("--mix only applies to --scenario mixed".into());
        }
        if self.scenario == Scenario::Discover
            && self.clients.is_some_and(|n| n < self.threads as u64)
        {
            // A thread without a client would send nothing of its share.
            return Err("--scenario discover needs --clients of at least --threads".into());
        }
        let new_clients = match self.scenario {
            Scenario::Dora | Scenario::Discover | Scenario::Relay => self
                .clients
                .unwrap_or(u64::MAX)
                .min(self.planned_exchanges()),
            Scenario::Mixed => self.planned_exchanges(),
            _ => 0,
        };
        let last = self
            .client_offset
            .saturating_add(self.fixed_clients())
            .saturating_add(new_clients);
        if last > MAX_CLIENT_INDEX {
            return Err(format!(
                "--client-offset + clients needed ({last}) must stay below {MAX_CLIENT_INDEX}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<Args, String> {
        let mut v = vec!["irondhcp-loadgen", "--iface", "eth0"];
        v.extend_from_slice(extra);
        let a = Args::try_parse_from(v).map_err(|e| e.to_string())?;
        a.validate()?;
        Ok(a)
    }

    #[test]
    fn defaults() {
        let a = args(&[]).unwrap();
        assert_eq!(a.io, IoKind::Xdp);
        assert_eq!(a.scenario, Scenario::Dora);
        assert_eq!(a.duration_s(), Some(10.0));
        assert_eq!((a.retransmit_ms, a.tries, a.drop_time_ms), (1000, 3, 2000));
        assert_eq!(a.fixed_clients(), 0);
        let r = args(&["--scenario", "renew"]).unwrap();
        assert_eq!(r.fixed_clients(), 1000);
        assert_eq!(r.warmup_rate, 2000.0);
        let d = args(&["--scenario", "discover", "--clients", "500"]).unwrap();
        assert_eq!(d.fixed_clients(), 0);
        // 10 s at 1000/s with 500 clients: each is reused, the run is allowed.
        assert!(d.planned_exchanges() > 500);
    }

    #[test]
    fn flags_parse() {
        let a = args(&[
            "--io",
            "packet",
            "--threads",
            "2",
            "--cores",
            "0,1",
            "--scenario",
            "mixed",
            "--mix",
            "renew=50,rebind=50",
            "--clients",
            "200",
            "--client-offset",
            "5000",
            "--client-id",
            "--rate",
            "2500",
            "--count",
            "100",
            "--server",
            "198.18.0.1",
            "--server-mac",
            "0e:00:00:00:00:01",
            "--json",
            "--server-pid",
            "4242",
        ])
        .unwrap();
        assert_eq!(a.server_pid, Some(4242));
        assert_eq!(a.cores, vec![0, 1]);
        assert_eq!(a.duration_s(), None);
        assert_eq!(a.planned_exchanges(), 100);
        assert_eq!(a.server_mac, Some([0x0e, 0, 0, 0, 0, 1]));
        assert!(a.client_id && a.json);
    }

    #[test]
    fn bad_flags_are_refused() {
        for bad in [
            &["--rate", "0"][..],
            &["--rate", "-5"],
            &["--duration", "0"],
            &["--count", "0"],
            &["--duration", "1", "--count", "5"],
            &["--threads", "0"],
            &["--tries", "0"],
            &["--clients", "0"],
            &["--scenario", "relay"],
            &["--scenario", "relay", "--giaddr", "198.19.0.1"],
            &["--giaddr", "198.19.0.1"],
            &["--mix", "renew=1"],
            &["--scenario", "mixed", "--mix", "bogus=1"],
            &["--server-mac", "zz:00:00:00:00:00"],
            &["--scenario", "fly"],
            &["--client-offset", "4294967290", "--count", "100"],
            &["--scenario", "discover", "--clients", "1", "--threads", "2"],
            &["--server-pid", "-1"],
        ] {
            assert!(args(bad).is_err(), "{bad:?} accepted");
        }
        assert!(args(&[
            "--scenario",
            "relay",
            "--giaddr",
            "198.19.0.1",
            "--relay-ip",
            "198.18.0.2",
            "--server",
            "198.18.0.1"
        ])
        .is_ok());
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02-00-00-00-00-ff"), Ok([2, 0, 0, 0, 0, 0xff]));
        assert!(parse_mac("02:00:00:00:00").is_err());
        assert!(parse_mac("02:00:00:00:00:100").is_err());
    }
}
