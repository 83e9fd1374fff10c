//! The operator's configuration file (TOML), parsed and validated.
//!
//! Everything that can be wrong in a config file is found here, at start,
//! and reported with the key that is wrong (`subnet[1].pools[0]: ...`), so the
//! daemon refuses to start rather than misbehave later. The validated
//! [`Config`] then yields the fast path's read-only view
//! ([`Config::fast_config`]) and the address ranges of the lease map.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;

use irondhcp_fastpath::config::{opt, EncodedOptions, FastConfig, SubnetView};
use serde::{Deserialize, Serialize};

/// A config error: the key it concerns and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub cluster: ClusterConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(rename = "subnet", default)]
    pub subnets: Vec<SubnetConfig>,
}

/// `[server]`: identity, interface, threads and timers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// This server's id, recorded as `allocated_by` on its leases.
    #[serde(default = "default_server_id")]
    pub id: String,
    /// Server identifier (option 54) and source address of replies.
    pub address: Ipv4Addr,
    /// The interface the XDP program attaches to.
    pub interface: String,
    /// RX queues to serve, one AF_XDP socket and worker each.
    #[serde(default = "default_queues")]
    pub queues: Vec<u32>,
    /// Core for each queue's worker (same length as `queues`), or empty.
    #[serde(default)]
    pub cores: Vec<usize>,
    /// Cores for everything else (control plane, store, management); by
    /// default every core not in `cores`.
    #[serde(default)]
    pub control_cores: Vec<usize>,
    /// Most microseconds an idle worker keeps polling its rings before it
    /// sleeps (0: sleep at once). Adaptive: a worker spins only while frames
    /// arrive less than 20 µs apart on average, and then about twice that
    /// gap, so a short latency tail at high rates costs no core at ordinary
    /// load.
    #[serde(default = "default_idle_spin_us")]
    pub idle_spin_us: u64,
    /// Most microseconds an idle worker naps, deaf to its socket, while
    /// frames come steadily, more than 20 µs and at most this far apart:
    /// the frames of a nap are then served in one batch with one kick, for
    /// a fraction of the CPU per request, at the price of this much latency
    /// at most. 0 turns naps off (sleep in poll(2), a wake-up per frame).
    #[serde(default = "default_coalesce_us")]
    pub coalesce_us: u64,
    /// Microseconds a commit waits after its first grant to gather more
    /// into the same transaction (0, the default: commit at once). Each
    /// commit costs an fsync and a hand-off whatever its size, so a window
    /// trades REQUEST→ACK latency for CPU per new lease. The wait is timed
    /// by tokio, which counts in milliseconds: anything from 1 to 1000
    /// waits about 1 ms.
    #[serde(default)]
    pub commit_window_us: u64,
    /// XDP attach mode: "native", "generic" or "auto".
    #[serde(default)]
    pub xdp_mode: XdpModeConfig,
    /// NAK unknown INIT-REBOOT clients (RFC 2131 §4.3.2) instead of silence.
    #[serde(default = "default_true")]
    pub authoritative: bool,
    /// Seconds an OFFER holds its address.
    #[serde(default = "default_offer_lifetime")]
    pub offer_lifetime: u32,
    /// Seconds a declined address stays quarantined.
    #[serde(default = "default_decline_probation")]
    pub decline_probation: u32,
    /// Upper bound, in milliseconds, on how long a renewal answered from
    /// memory waits before it is persisted.
    #[serde(default = "default_write_behind_ms")]
    pub write_behind_ms: u64,
    /// Seconds past `durable expiry + MCLT` before an address is reclaimed
    /// (the reclaim bound, docs/decisions.md, 3).
    #[serde(default = "default_reclaim_grace")]
    pub reclaim_grace: u32,
    /// Seconds between reclaim passes.
    #[serde(default = "default_reclaim_interval")]
    pub reclaim_interval: u32,
    /// Unix socket for `irondhcp-ctl`.
    #[serde(default = "default_control_socket")]
    pub control_socket: String,
    /// Capacity of the fast path → control plane channel.
    #[serde(default = "default_channel_capacity")]
    pub channel_capacity: usize,
}

/// `server.xdp_mode`: how the XDP program is attached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeConfig {
    /// In the driver (fastest; needs driver support).
    Native,
    /// In the kernel's generic path (any interface).
    Generic,
    /// Native, else generic.
    #[default]
    Auto,
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite:///path/to/leases.sqlite3` (embedded default, one box) or
    /// `postgres://user:password@host/database` (a cluster's shared store).
    #[serde(default = "default_storage_url")]
    pub url: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: default_storage_url(),
        }
    }
}

/// `[cluster]`: how the servers sharing a PostgreSQL store keep their lease
/// maps in step (docs/ha.md). Ignored on SQLite.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://host:port/` or `unix:///path/to/redis.sock`: where lease
    /// events are published. Without it the servers catch up by polling
    /// PostgreSQL only.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// The pub/sub channel (one per cluster).
    #[serde(default = "default_channel")]
    pub channel: String,
    /// How often PostgreSQL is polled for changes while events may be
    /// missed (no Redis, Redis away, a peer gone quiet).
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How far back a catch-up reads before the last time it knows it was
    /// in step: covers commits that were slow to become visible and clocks
    /// that differ between servers.
    #[serde(default = "default_resync_overlap")]
    pub resync_overlap: u32,
    /// Addresses per ownership block (a power of two, 16 to 1024). Every
    /// server of a cluster must use the same value.
    #[serde(default = "default_block_size")]
    pub block_size: u32,
    /// Seconds after a server's last heartbeat before its blocks are freed
    /// for the others (its leases stay valid and renewable anywhere).
    #[serde(default = "default_release_after")]
    pub release_after: u32,
}

/// `[http]`: the HTTP listener (Prometheus `/metrics`, `/health`, Kea's
/// control-channel commands). On loopback by default; on any other address
/// a bearer token is required.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `address:port`, or `""` for no listener.
    #[serde(default = "default_http_listen")]
    pub listen: String,
    /// Clients must send `Authorization: Bearer <token>`.
    #[serde(default)]
    pub token: Option<String>,
}

/// Kea's control agent's port, on loopback: scripts that talk to Kea's
/// control channel there keep working.
fn default_http_listen() -> String {
    "127.0.0.1:8000".into()
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_http_listen(),
            token: None,
        }
    }
}

impl HttpConfig {
    /// The address to listen on (None: no listener), checked: a
    /// non-loopback address needs a token.
    pub fn address(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        let a: std::net::SocketAddr = self.listen.parse().map_err(|_| {
            invalid(
                "http.listen",
                format!(
                    "{:?}: use address:port, e.g. 127.0.0.1:8000, or \"\" for none",
                    self.listen
                ),
            )
        })?;
        if self.token.as_deref().is_some_and(str::is_empty) {
            return Err(invalid("http.token", "an empty token would let anyone in"));
        }
        if !a.ip().is_loopback() && self.token.is_none() {
            return Err(invalid(
                "http.listen",
                format!("{a} is not loopback: set http.token, which clients then send as a bearer token"),
            ));
        }
        Ok(Some(a))
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            channel: default_channel(),
            poll_interval_ms: default_poll_interval_ms(),
            resync_overlap: default_resync_overlap(),
            block_size: default_block_size(),
            release_after: default_release_after(),
        }
    }
}

fn default_channel() -> String {
    "irondhcp:leases".into()
}
fn default_poll_interval_ms() -> u64 {
    1000
}
fn default_resync_overlap() -> u32 {
    5
}
fn default_block_size() -> u32 {
    256
}
fn default_release_after() -> u32 {
    30
}

/// `[[subnet]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetConfig {
    pub id: u32,
    /// `a.b.c.d/len`.
    pub cidr: String,
    /// `first-last` address ranges handed out dynamically.
    #[serde(default)]
    pub pools: Vec<String>,
    #[serde(default = "default_lease_time")]
    pub lease_time: u32,
    /// T1; default lease_time / 2.
    pub renew_time: Option<u32>,
    /// T2; default lease_time * 7 / 8.
    pub rebind_time: Option<u32>,
    /// Maximum client lead time: how far past the durable expiry a renewal
    /// answered from memory may reach; default lease_time / 2 (a client
    /// renewing at T1 then gets a whole lease without a synchronous write).
    pub mclt: Option<u32>,
    #[serde(default)]
    pub routers: Vec<Ipv4Addr>,
    #[serde(default)]
    pub dns_servers: Vec<Ipv4Addr>,
    pub domain_name: Option<String>,
    #[serde(rename = "option", default)]
    pub options: Vec<OptionConfig>,
    #[serde(rename = "reservation", default)]
    pub reservations: Vec<ReservationConfig>,
}

/// `[[subnet.option]]`: an arbitrary option, given as exactly one of
/// addresses, text, a number or hex bytes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OptionConfig {
    pub code: u8,
    pub ips: Option<Vec<Ipv4Addr>>,
    pub text: Option<String>,
    pub u32: Option<u32>,
    pub u16: Option<u16>,
    pub u8: Option<u8>,
    pub hex: Option<String>,
    /// Send even when the client did not ask for it.
    #[serde(default)]
    pub always_send: bool,
}

/// `[[subnet.reservation]]`: a fixed address for a MAC or a client id.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationConfig {
    pub hw_address: Option<String>,
    pub client_id: Option<String>,
    pub address: Ipv4Addr,
}

fn default_server_id() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "irondhcp".into())
}
fn default_queues() -> Vec<u32> {
    vec![0]
}
fn default_true() -> bool {
    true
}
fn default_offer_lifetime() -> u32 {
    30
}
fn default_decline_probation() -> u32 {
    86_400
}
fn default_idle_spin_us() -> u64 {
    1000
}
/// The longest commit window `commit_window_us` may ask for.
const MAX_COMMIT_WINDOW_US: u64 = 20_000;

/// The longest nap `coalesce_us` may ask for.
const MAX_COALESCE_US: u64 = 10_000;

fn default_coalesce_us() -> u64 {
    1000
}
fn default_write_behind_ms() -> u64 {
    500
}
fn default_reclaim_grace() -> u32 {
    60
}
fn default_reclaim_interval() -> u32 {
    10
}
fn default_control_socket() -> String {
    "/run/irondhcp/control.sock".into()
}
fn default_channel_capacity() -> usize {
    4096
}
fn default_storage_url() -> String {
    "sqlite:///var/lib/irondhcp/leases.sqlite3".into()
}
fn default_lease_time() -> u32 {
    3600
}

/// A validated subnet with its ranges resolved.
#[derive(Debug, Clone)]
pub struct Subnet {
    pub id: u32,
    pub network: Ipv4Addr,
    pub prefix_len: u8,
    pub pools: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub lease_time: u32,
    pub renew_time: u32,
    pub rebind_time: u32,
    /// Maximum client lead time (seconds).
    pub mclt: u32,
    pub options: EncodedOptions,
    /// (client key as the fast path computes it, address).
    pub reservations: Vec<(Vec<u8>, Ipv4Addr)>,
}

impl Subnet {
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let mask = prefix_mask(self.prefix_len);
        u32::from(a) & mask == u32::from(self.network) & mask
    }

    pub fn in_pool(&self, a: Ipv4Addr) -> bool {
        self.pools.iter().any(|(f, l)| (*f..=*l).contains(&a))
    }

    /// Number of addresses in the pools.
    pub fn pool_size(&self) -> u64 {
        self.pools
            .iter()
            .map(|(f, l)| u64::from(u32::from(*l) - u32::from(*f)) + 1)
            .sum()
    }
}

fn prefix_mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Validated {
    pub raw: Config,
    pub subnets: Vec<Subnet>,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Validated, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Validated, ConfigError> {
        let raw: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse(one_line(text, &e)))?;
        raw.validate()
    }

    fn validate(self) -> Result<Validated, ConfigError> {
        let s = &self.server;
        if s.interface.is_empty() {
            return Err(invalid("server.interface", "must name a network interface"));
        }
        if s.queues.is_empty() {
            return Err(invalid("server.queues", "must list at least one RX queue"));
        }
        let mut seen = HashSet::new();
        for q in &s.queues {
            if !seen.insert(q) {
                return Err(invalid(
                    "server.queues",
                    format!("queue {q} is listed twice"),
                ));
            }
        }
        // A nap longer than this would add latency no client should see,
        // and would overflow the RX ring at high rates.
        if s.coalesce_us > MAX_COALESCE_US {
            return Err(invalid(
                "server.coalesce_us",
                format!("{} is above the most, {MAX_COALESCE_US}", s.coalesce_us),
            ));
        }
        if s.commit_window_us > MAX_COMMIT_WINDOW_US {
            return Err(invalid(
                "server.commit_window_us",
                format!(
                    "{} is above the most, {MAX_COMMIT_WINDOW_US} (every ACK waits that long)",
                    s.commit_window_us
                ),
            ));
        }
        if !s.cores.is_empty() && s.cores.len() != s.queues.len() {
            return Err(invalid(
                "server.cores",
                format!(
                    "has {} entries but server.queues has {}",
                    s.cores.len(),
                    s.queues.len()
                ),
            ));
        }
        if !s.cores.is_empty() || !s.control_cores.is_empty() {
            let allowed = irondhcp_fastpath::worker::allowed_cores().unwrap_or_default();
            for (key, list) in [
                ("server.cores", &s.cores),
                ("server.control_cores", &s.control_cores),
            ] {
                if let Some(c) = list.iter().find(|c| !allowed.contains(c)) {
                    return Err(invalid(
                        key,
                        format!(
                            "core {c} is not one this machine lets the daemon use ({allowed:?})"
                        ),
                    ));
                }
            }
        }
        if s.offer_lifetime == 0 {
            return Err(invalid(
                "server.offer_lifetime",
                "must be at least 1 second",
            ));
        }
        if s.write_behind_ms == 0 || s.write_behind_ms > 10_000 {
            return Err(invalid(
                "server.write_behind_ms",
                "must be between 1 and 10000",
            ));
        }
        if s.channel_capacity < 16 {
            return Err(invalid("server.channel_capacity", "must be at least 16"));
        }
        if s.reclaim_interval == 0 {
            return Err(invalid(
                "server.reclaim_interval",
                "must be at least 1 second",
            ));
        }
        let url = &self.storage.url;
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            return Err(invalid(
                "storage.url",
                format!(
                    "{:?}: use sqlite:///path/to/leases.sqlite3 (one box) or postgres://user:password@host/database (a cluster)",
                    crate::store::postgres::redacted(url)
                ),
            ));
        }
        if let Some(r) = &self.cluster.redis_url {
            if url.starts_with("sqlite:") {
                return Err(invalid(
                    "cluster.redis_url",
                    "a cluster shares a postgres:// storage.url; one box on SQLite has no peers to tell",
                ));
            }
            if !["redis://", "unix://", "redis+unix://"]
                .iter()
                .any(|p| r.starts_with(p))
            {
                return Err(invalid(
                    "cluster.redis_url",
                    format!(
                        "{:?}: use redis://host:port/ or unix:///path/to/redis.sock",
                        crate::store::postgres::redacted(r)
                    ),
                ));
            }
        }
        self.http.address()?;
        let bs = self.cluster.block_size;
        if !(16..=1024).contains(&bs) || !bs.is_power_of_two() {
            return Err(invalid(
                "cluster.block_size",
                format!("{bs}: use a power of two from 16 to 1024"),
            ));
        }
        if self.cluster.release_after < 3 {
            return Err(invalid(
                "cluster.release_after",
                "must be at least 3 seconds (three missed heartbeats)",
            ));
        }
        if self.cluster.poll_interval_ms == 0 {
            return Err(invalid(
                "cluster.poll_interval_ms",
                "must be at least 1 millisecond",
            ));
        }
        if self.subnets.is_empty() {
            return Err(invalid("subnet", "at least one [[subnet]] is required"));
        }
        let mut subnets: Vec<Subnet> = Vec::new();
        for (i, sc) in self.subnets.iter().enumerate() {
            let sub = validate_subnet(i, sc)?;
            if let Some(o) = subnets.iter().find(|o| o.id == sub.id) {
                return Err(invalid(
                    format!("subnet[{i}].id"),
                    format!(
                        "id {} is already used by subnet {}/{}",
                        o.id, o.network, o.prefix_len
                    ),
                ));
            }
            if let Some(o) = subnets
                .iter()
                .find(|o| o.contains(sub.network) || sub.contains(o.network))
            {
                return Err(invalid(
                    format!("subnet[{i}].cidr"),
                    format!("overlaps subnet {}/{}", o.network, o.prefix_len),
                ));
            }
            subnets.push(sub);
        }
        Ok(Validated { raw: self, subnets })
    }
}

fn parse_cidr(key: &str, s: &str) -> Result<(Ipv4Addr, u8), ConfigError> {
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| invalid(key, format!("{s:?} is not of the form a.b.c.d/len")))?;
    let addr: Ipv4Addr = a
        .trim()
        .parse()
        .map_err(|_| invalid(key, format!("{a:?} is not an IPv4 address")))?;
    let len: u8 = l
        .trim()
        .parse()
        .map_err(|_| invalid(key, format!("{l:?} is not a prefix length")))?;
    if !(8..=30).contains(&len) {
        return Err(invalid(
            key,
            format!("prefix length {len} is outside 8..=30"),
        ));
    }
    if u32::from(addr) & !prefix_mask(len) != 0 {
        return Err(invalid(key, format!("{s} has host bits set")));
    }
    Ok((addr, len))
}

/// A TOML error as one line: where, and what (toml's own rendering
/// quotes the line over several).
fn one_line(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before.len() - start + 1;
            let source = text[start..].lines().next().unwrap_or("").trim();
            format!(
                "TOML line {line}, column {column} ({source}): {}",
                e.message().trim()
            )
        }
        None => e.message().trim().to_string(),
    }
}

fn parse_hex(key: &str, s: &str) -> Result<Vec<u8>, ConfigError> {
    crate::hex::parse(s).map_err(|e| match e {
        crate::hex::HexError::NotHex => invalid(key, format!("{s:?} is not hex")),
        _ => invalid(key, format!("{s:?} is not an even number of hex digits")),
    })
}

fn validate_subnet(i: usize, sc: &SubnetConfig) -> Result<Subnet, ConfigError> {
    let k = |f: &str| format!("subnet[{i}].{f}");
    let (network, prefix_len) = parse_cidr(&k("cidr"), &sc.cidr)?;
    let mask = prefix_mask(prefix_len);
    let net = u32::from(network);
    let bcast = net | !mask;
    let inside = |a: Ipv4Addr| u32::from(a) & mask == net;

    let mut pools: Vec<(Ipv4Addr, Ipv4Addr)> = Vec::new();
    for (j, p) in sc.pools.iter().enumerate() {
        let key = k(&format!("pools[{j}]"));
        let (f, l) = p
            .split_once('-')
            .ok_or_else(|| invalid(&key, format!("{p:?} is not of the form first-last")))?;
        let f: Ipv4Addr = f
            .trim()
            .parse()
            .map_err(|_| invalid(&key, format!("{f:?} is not an IPv4 address")))?;
        let l: Ipv4Addr = l
            .trim()
            .parse()
            .map_err(|_| invalid(&key, format!("{l:?} is not an IPv4 address")))?;
        if f > l {
            return Err(invalid(&key, format!("range {p} is reversed")));
        }
        if !inside(f) || !inside(l) {
            return Err(invalid(
                &key,
                format!("range {p} is not inside {}", sc.cidr),
            ));
        }
        if u32::from(f) == net || u32::from(l) == bcast {
            return Err(invalid(
                &key,
                "range includes the network or broadcast address",
            ));
        }
        if let Some((of, ol)) = pools.iter().find(|(of, ol)| f <= *ol && *of <= l) {
            return Err(invalid(&key, format!("range {p} overlaps {of}-{ol}")));
        }
        pools.push((f, l));
    }
    if sc.lease_time < 10 {
        return Err(invalid(k("lease_time"), "must be at least 10 seconds"));
    }
    let renew_time = sc.renew_time.unwrap_or(sc.lease_time / 2);
    let rebind_time = sc.rebind_time.unwrap_or(sc.lease_time / 8 * 7);
    if !(renew_time < rebind_time && rebind_time < sc.lease_time) {
        return Err(invalid(
            k("renew_time"),
            format!(
                "need renew_time ({renew_time}) < rebind_time ({rebind_time}) < lease_time ({})",
                sc.lease_time
            ),
        ));
    }
    let mclt = sc.mclt.unwrap_or(sc.lease_time / 2);
    if mclt > sc.lease_time {
        return Err(invalid(
            k("mclt"),
            format!("{mclt} is longer than lease_time ({})", sc.lease_time),
        ));
    }

    let mut options = EncodedOptions::default();
    let opt_err = |key: String| {
        move |e: irondhcp_fastpath::config::ConfigError| invalid(key.clone(), e.to_string())
    };
    options
        .set(opt::SUBNET_MASK, &mask.to_be_bytes(), true)
        .map_err(opt_err(k("cidr")))?;
    let ips = |v: &[Ipv4Addr]| v.iter().flat_map(|a| a.octets()).collect::<Vec<u8>>();
    if !sc.routers.is_empty() {
        options
            .set(opt::ROUTERS, &ips(&sc.routers), true)
            .map_err(opt_err(k("routers")))?;
    }
    if !sc.dns_servers.is_empty() {
        options
            .set(opt::DNS_SERVERS, &ips(&sc.dns_servers), true)
            .map_err(opt_err(k("dns_servers")))?;
    }
    if let Some(d) = &sc.domain_name {
        options
            .set(opt::DOMAIN_NAME, d.as_bytes(), true)
            .map_err(opt_err(k("domain_name")))?;
    }
    for (j, o) in sc.options.iter().enumerate() {
        let key = k(&format!("option[{j}]"));
        const MANAGED: [u8; 9] = [0, 50, 51, 53, 54, 58, 59, 61, 82];
        if MANAGED.contains(&o.code) || o.code == 255 {
            return Err(invalid(
                format!("{key}.code"),
                format!("option {} is set by the server itself", o.code),
            ));
        }
        let mut vals: Vec<Vec<u8>> = Vec::new();
        if let Some(v) = &o.ips {
            vals.push(ips(v));
        }
        if let Some(t) = &o.text {
            vals.push(t.as_bytes().to_vec());
        }
        if let Some(n) = o.u32 {
            vals.push(n.to_be_bytes().to_vec());
        }
        if let Some(n) = o.u16 {
            vals.push(n.to_be_bytes().to_vec());
        }
        if let Some(n) = o.u8 {
            vals.push(vec![n]);
        }
        if let Some(h) = &o.hex {
            vals.push(parse_hex(&format!("{key}.hex"), h)?);
        }
        if vals.len() != 1 {
            return Err(invalid(
                &key,
                "give exactly one of ips, text, u32, u16, u8, hex",
            ));
        }
        options
            .set(o.code, &vals[0], o.always_send)
            .map_err(opt_err(key))?;
    }

    let mut reservations: Vec<(Vec<u8>, Ipv4Addr)> = Vec::new();
    for (j, r) in sc.reservations.iter().enumerate() {
        let key = k(&format!("reservation[{j}]"));
        let client_key = match (&r.hw_address, &r.client_id) {
            (Some(hw), None) => {
                let mac = parse_hex(&format!("{key}.hw_address"), hw)?;
                if mac.len() != 6 {
                    return Err(invalid(
                        format!("{key}.hw_address"),
                        format!("{hw:?} is not a 6-byte MAC"),
                    ));
                }
                // htype 1 (Ethernet) + chaddr: the key of a client without option 61.
                let mut k = vec![1u8];
                k.extend_from_slice(&mac);
                k
            }
            (None, Some(id)) => parse_hex(&format!("{key}.client_id"), id)?,
            _ => return Err(invalid(&key, "give exactly one of hw_address, client_id")),
        };
        if !inside(r.address) || u32::from(r.address) == net || u32::from(r.address) == bcast {
            return Err(invalid(
                format!("{key}.address"),
                format!("{} is not a host address of {}", r.address, sc.cidr),
            ));
        }
        if reservations.iter().any(|(_, a)| *a == r.address) {
            return Err(invalid(
                format!("{key}.address"),
                format!("{} is reserved twice", r.address),
            ));
        }
        if reservations.iter().any(|(ck, _)| *ck == client_key) {
            return Err(invalid(
                &key,
                "this client already has a reservation in this subnet",
            ));
        }
        reservations.push((client_key, r.address));
    }

    Ok(Subnet {
        id: sc.id,
        network,
        prefix_len,
        pools,
        lease_time: sc.lease_time,
        renew_time,
        rebind_time,
        mclt,
        options,
        reservations,
    })
}

impl Validated {
    /// The fast path's read-only view.
    pub fn fast_config(&self, server_mac: [u8; 6]) -> FastConfig {
        let subnets: Vec<SubnetView> = self
            .subnets
            .iter()
            .map(|s| SubnetView {
                id: s.id,
                network: s.network,
                prefix_len: s.prefix_len,
                lease_time: s.lease_time,
                renew_time: s.renew_time,
                rebind_time: s.rebind_time,
                mclt: s.mclt,
                options: s.options.clone(),
            })
            .collect();
        let local_subnet = subnets
            .iter()
            .position(|s| s.contains(self.raw.server.address));
        FastConfig {
            server_ip: self.raw.server.address,
            server_mac,
            authoritative: self.raw.server.authoritative,
            shared_store: !self.raw.storage.url.starts_with("sqlite:"),
            subnets,
            local_subnet,
        }
    }

    /// The address ranges the lease map must cover: every pool, plus every
    /// reserved address outside the pools.
    /// The cluster's ownership blocks: every pool cut into runs of
    /// `cluster.block_size` addresses from its first (the last run of a
    /// pool may be shorter), as (subnet id, first, last).
    pub fn block_layout(&self) -> Vec<(u32, u32, u32)> {
        let size = u64::from(self.raw.cluster.block_size.max(1));
        let mut out = Vec::new();
        for s in &self.subnets {
            for (f, l) in &s.pools {
                let (f, l) = (u64::from(u32::from(*f)), u64::from(u32::from(*l)));
                let mut first = f;
                while first <= l {
                    let last = (first + size - 1).min(l);
                    out.push((s.id, first as u32, last as u32));
                    first = last + 1;
                }
            }
        }
        out
    }

    pub fn lease_map_ranges(&self) -> Vec<(Ipv4Addr, u32)> {
        let mut ranges: Vec<(Ipv4Addr, u32)> = Vec::new();
        for s in &self.subnets {
            for (f, l) in &s.pools {
                ranges.push((*f, u32::from(*l) - u32::from(*f) + 1));
            }
            for (_, a) in &s.reservations {
                if !s.in_pool(*a) {
                    ranges.push((*a, 1));
                }
            }
        }
        ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
id = "t1"
address = "10.0.0.1"
interface = "eth1"

[[subnet]]
id = 1
cidr = "10.0.0.0/24"
pools = ["10.0.0.100-10.0.0.199"]
routers = ["10.0.0.1"]
dns_servers = ["10.0.0.53", "10.0.0.54"]
domain_name = "example.net"
[[subnet.option]]
code = 42
ips = ["10.0.0.123"]
[[subnet.reservation]]
hw_address = "02:00:00:00:00:01"
address = "10.0.0.10"
"#;

    #[test]
    fn good_config_yields_fast_view_and_ranges() {
        let v = Config::parse(GOOD).unwrap();
        let f = v.fast_config([2, 0, 0, 0, 0, 9]);
        assert_eq!(f.local_subnet, Some(0));
        let o = &f.subnets[0].options;
        assert_eq!(
            o.tlv(opt::SUBNET_MASK),
            Some(&[1u8, 4, 255, 255, 255, 0][..])
        );
        assert_eq!(o.tlv(opt::DNS_SERVERS).unwrap().len(), 10);
        assert_eq!(o.tlv(42), Some(&[42u8, 4, 10, 0, 0, 123][..]));
        assert_eq!(f.subnets[0].renew_time, 1800);
        assert_eq!(f.subnets[0].rebind_time, 3150);
        let r = v.lease_map_ranges();
        assert_eq!(
            r,
            vec![
                (Ipv4Addr::new(10, 0, 0, 100), 100),
                (Ipv4Addr::new(10, 0, 0, 10), 1)
            ]
        );
        assert_eq!(v.subnets[0].reservations[0].0, vec![1, 2, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn documented_example_config_is_valid() {
        let v = Config::parse(include_str!("../../docs/irondhcp.example.toml")).unwrap();
        assert_eq!(v.subnets.len(), 2);
        assert_eq!(v.subnets[0].reservations.len(), 2);
    }

    fn err_of(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn broken_configs_name_the_key() {
        let e = err_of(&GOOD.replace("10.0.0.100-10.0.0.199", "10.0.0.199-10.0.0.100"));
        assert!(e.starts_with("subnet[0].pools[0]: "), "{e}");
        let e = err_of(&GOOD.replace("10.0.0.0/24", "10.0.0.0/33"));
        assert!(e.starts_with("subnet[0].cidr: "), "{e}");
        let e = err_of(&GOOD.replace("10.0.0.100-10.0.0.199", "10.0.1.100-10.0.1.199"));
        assert!(e.contains("is not inside"), "{e}");
        let e = err_of(&GOOD.replace("interface = \"eth1\"", "interface = \"eth1\"\nbogus = 1"));
        assert!(e.contains("bogus"), "{e}");
        let e = err_of(&GOOD.replace("address = \"10.0.0.1\"", "address = \"10.0.0.300\""));
        assert!(e.contains("address"), "{e}");
        let e = err_of(&GOOD.replace("code = 42", "code = 53"));
        assert!(e.starts_with("subnet[0].option[0].code: "), "{e}");
        let e = err_of(&GOOD.replace("02:00:00:00:00:01", "02:00:00"));
        assert!(
            e.starts_with("subnet[0].reservation[0].hw_address: "),
            "{e}"
        );
        let e = err_of(&GOOD.replace("[server]", "[server]\nxdp_mode = \"turbo\""));
        assert!(e.contains("xdp_mode") && e.contains("turbo"), "{e}");
        let e = err_of(&format!(
            "{GOOD}\n[[subnet]]\nid = 1\ncidr = \"10.9.0.0/24\"\n"
        ));
        assert!(e.starts_with("subnet[1].id: "), "{e}");
        let e = err_of(&format!(
            "{GOOD}\n[[subnet]]\nid = 2\ncidr = \"10.0.0.0/16\"\n"
        ));
        assert!(e.starts_with("subnet[1].cidr: "), "{e}");
        let e = err_of("not toml at all [");
        assert!(e.contains("TOML") || e.contains("expected"), "{e}");
    }

    #[test]
    fn storage_urls_name_a_backend_and_errors_hide_the_password() {
        let with = |url: &str| format!("{GOOD}\n[storage]\nurl = \"{url}\"\n");
        for ok in [
            "sqlite:///var/lib/irondhcp/leases.sqlite3",
            "postgres://irondhcp:pw@db/irondhcp",
            "postgresql://irondhcp@localhost/irondhcp?host=/run/postgresql",
        ] {
            assert!(Config::parse(&with(ok)).is_ok(), "{ok}");
        }
        let e = err_of(&with("mysql://irondhcp:s3cret@db/irondhcp"));
        assert!(e.starts_with("storage.url: "), "{e}");
        assert!(e.contains("postgres://") && !e.contains("s3cret"), "{e}");
    }

    #[test]
    fn the_http_listener_is_loopback_unless_a_token_guards_it() {
        let base = "[server]\naddress = \"10.0.0.1\"\ninterface = \"x\"\n\
                    [[subnet]]\nid = 1\ncidr = \"10.0.0.0/24\"\npools = [\"10.0.0.10-10.0.0.20\"]\n";
        let v = Config::parse(base).unwrap();
        assert_eq!(
            v.raw.http.address().unwrap(),
            Some("127.0.0.1:8000".parse().unwrap())
        );
        let off = Config::parse(&format!("{base}[http]\nlisten = \"\"\n")).unwrap();
        assert_eq!(off.raw.http.address().unwrap(), None);
        let e = err_of(&format!("{base}[http]\nlisten = \"0.0.0.0:8000\"\n"));
        assert!(
            e.starts_with("http.listen: 0.0.0.0:8000 is not loopback"),
            "{e}"
        );
        let ok = format!("{base}[http]\nlisten = \"0.0.0.0:8000\"\ntoken = \"s3cret\"\n");
        assert!(Config::parse(&ok).is_ok());
        let e = err_of(&format!("{base}[http]\nlisten = \"localhost\"\n"));
        assert!(e.starts_with("http.listen: "), "{e}");
        let e = err_of(&format!("{base}[http]\ntoken = \"\"\n"));
        assert!(e.starts_with("http.token: "), "{e}");
    }

    #[test]
    fn a_cluster_needs_postgres_and_a_redis_url() {
        let pg = "[storage]\nurl = \"postgres://irondhcp@db/irondhcp\"\n";
        let with =
            |storage: &str, cluster: &str| format!("{GOOD}\n{storage}[cluster]\n{cluster}\n");
        let v = Config::parse(&with(pg, "redis_url = \"redis://10.0.0.9:6379/\"")).unwrap();
        assert_eq!(v.raw.cluster.channel, "irondhcp:leases");
        assert_eq!(v.raw.cluster.poll_interval_ms, 1000);
        let e = Config::parse("[server]\naddress = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "TOML line 2, column 11 (address = \"x\"): invalid IPv4 address syntax"
        );
        assert!(Config::parse(&with(pg, "redis_url = \"unix:///run/redis.sock\"")).is_ok());
        let e = err_of(&with("", "redis_url = \"redis://10.0.0.9/\""));
        assert!(
            e.starts_with("cluster.redis_url: ") && e.contains("postgres"),
            "{e}"
        );
        let e = err_of(&with(pg, "redis_url = \"http://u:s3cret@10.0.0.9/\""));
        assert!(
            e.starts_with("cluster.redis_url: ") && !e.contains("s3cret"),
            "{e}"
        );
        let e = err_of(&with(pg, "poll_interval_ms = 0"));
        assert!(e.starts_with("cluster.poll_interval_ms: "), "{e}");
        for bad in ["block_size = 100", "block_size = 8", "block_size = 2048"] {
            let e = err_of(&with(pg, bad));
            assert!(e.starts_with("cluster.block_size: "), "{bad}: {e}");
        }
        let e = err_of(&with(pg, "release_after = 1"));
        assert!(e.starts_with("cluster.release_after: "), "{e}");
    }

    #[test]
    fn pools_are_cut_into_blocks_that_cover_them_once() {
        let v = Config::parse(&format!(
            "{}\n[cluster]\nblock_size = 16\n",
            GOOD.replace("pools = [", "pools = [\"10.0.0.200-10.0.0.239\", ")
        ))
        .unwrap();
        let layout = v.block_layout();
        let covered: u64 = layout.iter().map(|b| u64::from(b.2 - b.1) + 1).sum();
        let pool: u64 = v.subnets.iter().map(|s| s.pool_size()).sum();
        assert_eq!(covered, pool);
        assert!(layout.iter().all(|b| b.2 - b.1 < 16));
        let first = u32::from(Ipv4Addr::new(10, 0, 0, 200));
        assert!(layout.contains(&(v.subnets[0].id, first, first + 15)));
        assert!(
            layout.contains(&(v.subnets[0].id, first + 32, first + 39)),
            "a short last block"
        );
    }

    /// Inputs that used to panic or pass `--check` and then abort the daemon.
    #[test]
    fn hostile_values_are_config_errors_not_panics() {
        let e = err_of(&GOOD.replace(
            "code = 42\nips = [\"10.0.0.123\"]",
            "code = 42\nhex = \"aé\"",
        ));
        assert!(e.starts_with("subnet[0].option[0].hex: "), "{e}");
        let e = err_of(&GOOD.replace("[server]", "[server]\ncores = [5000]"));
        assert!(e.starts_with("server.cores: "), "{e}");
        let e = err_of(&GOOD.replace("[server]", "[server]\ncontrol_cores = [4096]"));
        assert!(e.starts_with("server.control_cores: "), "{e}");
        let e = err_of(&GOOD.replace("[server]", "[server]\ncoalesce_us = 60000000"));
        assert!(e.starts_with("server.coalesce_us: "), "{e}");
        let e = err_of(&GOOD.replace("[server]", "[server]\ncommit_window_us = 1000000"));
        assert!(e.starts_with("server.commit_window_us: "), "{e}");
        let e = err_of(&GOOD.replace(
            "domain_name = \"example.net\"",
            "domain_name = \"example.net\"\nmclt = 99999",
        ));
        assert!(e.starts_with("subnet[0].mclt: "), "{e}");
        let v = Config::parse(GOOD).unwrap();
        assert_eq!(v.subnets[0].mclt, 1800, "MCLT defaults to half the lease");
    }
}
