//! An anycast cluster in network namespaces, for the cluster demo and the
//! cluster tests: N irondhcp servers behind one router, as docs/ha.md
//! deploys them.
//!
//! ```text
//!  client ns ─┐                  ┌─ server ns 1: irondhcp + bird + announcer
//!  client ns ─┼─ br (router ns) ─┼─ server ns 2: irondhcp + bird + announcer
//!  relay ns  ─┘  bird (ECMP)     └─ server ns 3: ...
//!  (dhcrelay)
//!  PostgreSQL and Redis: private servers on Unix sockets (testkit::postgres,
//!  testkit::redis), reachable from every namespace.
//! ```
//!
//! Every server holds the anycast address on `lo`, uses it as its server
//! identifier, and runs bird2 with a `static` protocol exporting the
//! anycast /32 over eBGP (hold 3 s, keepalive 1 s). The protocol starts
//! disabled; `irondhcp-ctl announce` enables it once the daemon is healthy
//! and disables it at the first failed check. The router's bird installs one
//! ECMP route with a next hop per announcing server; dhcrelay, a host on the
//! LAN, relays the clients' broadcasts into it, and the clients' unicast
//! renewals follow it through the router.
//!
//! Names are unique per process and call, readiness is observed (a
//! management socket answering, a route with N next hops), and everything
//! is killed and removed on drop, even when a test panics.

use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::netns::{ip, Netns};
use crate::postgres::PgServer;
use crate::redis::RedisServer;

/// The servers' shared identifier and the announced /32.
pub const ANYCAST: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 53);
/// The router's address on the clients' LAN (their default gateway).
pub const LAN_GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The router's MAC on the LAN: fixed, so a load generator can be told
/// where unicast renewals go (`--server-mac`).
pub const GATEWAY_MAC: &str = "0a:00:00:00:00:01";
/// The relay's address on the LAN (its giaddr).
pub const RELAY_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
/// The database namespace's address (PostgreSQL and Redis over TCP).
pub const DB_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 2);

static SEQ: AtomicU32 = AtomicU32::new(0);

/// How the cluster is built.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub servers: usize,
    pub lease_time: u32,
    /// The pool on the LAN.
    pub pool: String,
    /// Extra TOML for every server's `[cluster]` table.
    pub cluster_extra: String,
    /// Publish lease events on a private Redis (else PostgreSQL polling
    /// only).
    pub redis: bool,
    /// Run PostgreSQL and Redis in a namespace of their own behind the
    /// router, reached over TCP (so a server can be cut off from them);
    /// else on Unix sockets.
    pub db_namespace: bool,
    /// Prefix length of the clients' LAN 198.19.0.0.
    pub lan_prefix: u8,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            servers: 3,
            lease_time: 600,
            pool: "198.19.0.10-198.19.0.250".into(),
            cluster_extra: "block_size = 16\nrelease_after = 5\n".into(),
            redis: true,
            db_namespace: false,
            lan_prefix: 24,
        }
    }
}

/// One server of the cluster.
pub struct ClusterServer {
    pub ns: Netns,
    pub id: String,
    /// The server's end of its link to the router (XDP attaches here).
    pub ifname: String,
    /// Its own address on that link (the BGP session's).
    pub link_ip: Ipv4Addr,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    bird_socket: PathBuf,
    daemon: Option<Child>,
    bird: Option<Child>,
    announcer: Option<Child>,
}

/// A client namespace on the LAN.
pub struct LanClient {
    pub ns: Netns,
    pub ifname: String,
}

/// The whole cluster.
pub struct Cluster {
    pub router: Netns,
    /// PostgreSQL's and Redis's namespace (with `db_namespace`).
    pub db: Option<Netns>,
    pub servers: Vec<ClusterServer>,
    pub clients: Vec<LanClient>,
    pub pg: PgServer,
    pub redis: Option<RedisServer>,
    pub dir: PathBuf,
    tag: String,
    router_bird_socket: PathBuf,
    router_bird: Option<Child>,
    relay: Option<Child>,
    relay_ns: Option<Netns>,
}

/// A veth pair `a` – `b`, `a` moved into `a_ns` and `b` into `b_ns`.
fn veth(a: &str, a_ns: &Netns, b: &str, b_ns: &Netns) -> io::Result<()> {
    ip(&["link", "add", a, "type", "veth", "peer", "name", b])?;
    ip(&["link", "set", a, "netns", &a_ns.name])?;
    ip(&["link", "set", b, "netns", &b_ns.name])?;
    Ok(())
}

fn spawn_logged(mut cmd: Command, log: &Path) -> io::Result<Child> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    cmd.stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .spawn()
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The lines of a client's event log (see [`Cluster::spawn_udhcpc`]).
pub fn client_events(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

impl Cluster {
    /// Builds the namespaces, links, PostgreSQL, Redis, the router's bird
    /// and relay, and each server's config and bird; servers' daemons are
    /// started with [`Cluster::start_server`].
    pub fn new(opts: &ClusterOptions) -> io::Result<Self> {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{}", std::process::id() % 100_000, n);
        let dir = std::env::temp_dir().join(format!("irondhcp-cluster-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let router = Netns::new(format!("irondhcp-{tag}-rtr"))?;
        let db = if opts.db_namespace {
            let db = Netns::new(format!("irondhcp-{tag}-db"))?;
            let (rif, dif) = (format!("ird{tag}"), format!("idd{tag}"));
            veth(&rif, &router, &dif, &db)?;
            router.exec(&["ip", "addr", "add", "198.18.200.1/24", "dev", &rif])?;
            router.exec(&["ip", "link", "set", &rif, "up"])?;
            db.exec(&["ip", "addr", "add", &format!("{DB_IP}/24"), "dev", &dif])?;
            db.exec(&["ip", "link", "set", &dif, "up"])?;
            db.exec(&["ip", "route", "add", "default", "via", "198.18.200.1"])?;
            Some(db)
        } else {
            None
        };
        let db_ns = db.as_ref().map(|d| d.name.as_str());
        let pg = match db_ns {
            Some(ns) => PgServer::start_on(Some(ns), &DB_IP.to_string())?,
            None => PgServer::start()?,
        };
        pg.create_database("leases")?;
        let redis = match (opts.redis, db_ns) {
            (false, _) => None,
            (true, Some(ns)) => Some(RedisServer::start_on(ns, &DB_IP.to_string())?),
            (true, None) => Some(RedisServer::start()?),
        };
        for (k, v) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
            // Hash renewals by client address across the next hops.
            ("net.ipv4.fib_multipath_hash_policy", "0"),
        ] {
            router.exec(&["sysctl", "-q", "-w", &format!("{k}={v}")])?;
        }
        let br = format!("ibr{tag}");
        router.exec(&["ip", "link", "add", &br, "type", "bridge"])?;
        // A fixed MAC: a bridge otherwise takes its lowest port's, which
        // changes as clients join, while dhcrelay keeps sending from the
        // one it saw at start (and clients unicast renewals to that).
        router.exec(&["ip", "link", "set", &br, "address", GATEWAY_MAC])?;
        router.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{LAN_GATEWAY}/{}", opts.lan_prefix),
            "dev",
            &br,
        ])?;
        router.exec(&["ip", "link", "set", &br, "up"])?;
        let mut cluster = Self {
            router,
            db,
            servers: Vec::new(),
            clients: Vec::new(),
            pg,
            redis,
            dir,
            tag,
            router_bird_socket: PathBuf::new(),
            router_bird: None,
            relay: None,
            relay_ns: None,
        };
        for i in 1..=opts.servers {
            cluster.add_server_ns(i, opts)?;
        }
        cluster.start_router_bird()?;
        cluster.start_relay(opts.lan_prefix)?;
        Ok(cluster)
    }

    fn add_server_ns(&mut self, i: usize, opts: &ClusterOptions) -> io::Result<()> {
        let tag = &self.tag;
        let ns = Netns::new(format!("irondhcp-{tag}-s{i}"))?;
        let (rif, sif) = (format!("irs{tag}{i}"), format!("iss{tag}{i}"));
        // One queue each way: native XDP on veth needs as many RX queues
        // as the peer has TX queues.
        ip(&[
            "link",
            "add",
            &rif,
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
            "type",
            "veth",
            "peer",
            "name",
            &sif,
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
        ])?;
        ip(&["link", "set", &rif, "netns", &self.router.name])?;
        ip(&["link", "set", &sif, "netns", &ns.name])?;
        let (rip, sip) = (
            Ipv4Addr::new(198, 18, i as u8, 1),
            Ipv4Addr::new(198, 18, i as u8, 2),
        );
        self.router
            .exec(&["ip", "addr", "add", &format!("{rip}/24"), "dev", &rif])?;
        self.router.exec(&["ip", "link", "set", &rif, "up"])?;
        ns.exec(&["ip", "addr", "add", &format!("{sip}/24"), "dev", &sif])?;
        ns.exec(&["ip", "link", "set", &sif, "up"])?;
        ns.exec(&["ip", "addr", "add", &format!("{ANYCAST}/32"), "dev", "lo"])?;
        ns.exec(&["ip", "route", "add", "default", "via", &rip.to_string()])?;
        let id = format!("srv{i}");
        let socket = self.dir.join(format!("{id}.sock"));
        let config = self.dir.join(format!("{id}.toml"));
        let redis = self
            .redis
            .as_ref()
            .map(|r| format!("redis_url = \"{}\"\n", r.network_url()))
            .unwrap_or_default();
        let storage = if self.db.is_some() {
            self.pg.url("leases")
        } else {
            self.pg.socket_url("leases")
        };
        std::fs::write(
            &config,
            format!(
                r#"[server]
id = "{id}"
address = "{ANYCAST}"
interface = "{sif}"
queues = [0]
xdp_mode = "native"
control_socket = "{socket}"

[storage]
url = "{url}"

[cluster]
{redis}{extra}

[[subnet]]
id = 1
cidr = "198.19.0.0/{prefix}"
pools = ["{pool}"]
lease_time = {lease}
routers = ["{LAN_GATEWAY}"]
"#,
                socket = socket.display(),
                url = storage,
                prefix = opts.lan_prefix,
                extra = opts.cluster_extra,
                pool = opts.pool,
                lease = opts.lease_time,
            ),
        )?;
        let bird_conf = self.dir.join(format!("{id}.bird.conf"));
        std::fs::write(
            &bird_conf,
            format!(
                r#"router id {sip};
protocol device {{ }}
# Announced only while `irondhcp-ctl announce` finds the server healthy.
protocol static anycast {{
    disabled;
    ipv4;
    route {ANYCAST}/32 via "lo";
}}
protocol bgp uplink {{
    local {sip} as {asn};
    neighbor {rip} as 65000;
    hold time 3;
    keepalive time 1;
    connect retry time 1;
    ipv4 {{ import none; export where proto = "anycast"; }};
}}
"#,
                asn = 65000 + i
            ),
        )?;
        let bird_socket = self.dir.join(format!("{id}.bird.ctl"));
        let log = self.dir.join(format!("{id}.log"));
        let mut bird = ns.command("bird");
        bird.arg("-f")
            .arg("-c")
            .arg(&bird_conf)
            .arg("-s")
            .arg(&bird_socket)
            .arg("-P")
            .arg(self.dir.join(format!("{id}.bird.pid")));
        let bird = spawn_logged(bird, &self.dir.join(format!("{id}.bird.log")))?;
        self.servers.push(ClusterServer {
            ns,
            id,
            ifname: sif,
            link_ip: sip,
            config,
            socket,
            log,
            bird_socket,
            daemon: None,
            bird: Some(bird),
            announcer: None,
        });
        Ok(())
    }

    fn start_router_bird(&mut self) -> io::Result<()> {
        let mut conf = String::from(
            "router id 198.19.0.1;\nprotocol device { }\n\
             # One route with a next hop per announcing server.\n\
             protocol kernel { ipv4 { export all; }; merge paths on; }\n",
        );
        for (k, s) in self.servers.iter().enumerate() {
            let i = k + 1;
            conf.push_str(&format!(
                "protocol bgp {id} {{\n    local 198.18.{i}.1 as 65000;\n    neighbor {ip} as {asn};\n    hold time 3;\n    keepalive time 1;\n    connect retry time 1;\n    ipv4 {{ import all; export none; }};\n}}\n",
                id = s.id,
                ip = s.link_ip,
                asn = 65000 + i,
            ));
        }
        let path = self.dir.join("router.bird.conf");
        std::fs::write(&path, conf)?;
        self.router_bird_socket = self.dir.join("router.bird.ctl");
        let mut bird = self.router.command("bird");
        bird.arg("-f")
            .arg("-c")
            .arg(&path)
            .arg("-s")
            .arg(&self.router_bird_socket)
            .arg("-P")
            .arg(self.dir.join("router.bird.pid"));
        self.router_bird = Some(spawn_logged(bird, &self.dir.join("router.bird.log"))?);
        Ok(())
    }

    /// dhcrelay in a namespace of its own on the LAN (RELAY_IP), not on the
    /// router: ISC dhcrelay's packet socket sees every BOOTREQUEST that
    /// reaches its interface, so on the router's LAN bridge it also relayed
    /// the clients' unicast renewals (addressed to the anycast address,
    /// through the bridge's MAC), and every renewal reached two servers.
    /// On a host of its own it sees only broadcasts and what is sent to it.
    fn start_relay(&mut self, prefix: u8) -> io::Result<()> {
        let (ns, rif) = self.lan_host("rly", "irl", "irb")?;
        ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{RELAY_IP}/{prefix}"),
            "dev",
            &rif,
        ])?;
        ns.exec(&[
            "ip",
            "route",
            "add",
            "default",
            "via",
            &LAN_GATEWAY.to_string(),
        ])?;
        let mut relay = ns.command("dhcrelay");
        relay
            .args(["-4", "-d", "-i", &rif])
            .arg(ANYCAST.to_string());
        self.relay = Some(spawn_logged(relay, &self.dir.join("dhcrelay.log"))?);
        self.relay_ns = Some(ns);
        Ok(())
    }

    /// Adds a client namespace with one interface on the LAN bridge.
    pub fn add_client(&mut self) -> io::Result<usize> {
        let k = self.clients.len();
        let (ns, cif) =
            self.lan_host(&format!("c{k}"), &format!("icc{k}_"), &format!("icb{k}_"))?;
        self.clients.push(LanClient { ns, ifname: cif });
        Ok(k)
    }

    /// A new namespace `irondhcp-TAG-<name>` with one interface on the LAN
    /// bridge (up, no address yet); returns it and the interface's name.
    /// Interface names are `<host_if>TAG` and `<bridge_if>TAG`.
    fn lan_host(&self, name: &str, host_if: &str, bridge_if: &str) -> io::Result<(Netns, String)> {
        let tag = &self.tag;
        let ns = Netns::new(format!("irondhcp-{tag}-{name}"))?;
        let (hif, bif) = (format!("{host_if}{tag}"), format!("{bridge_if}{tag}"));
        veth(&hif, &ns, &bif, &self.router)?;
        self.router
            .exec(&["ip", "link", "set", &bif, "master", &format!("ibr{tag}")])?;
        self.router.exec(&["ip", "link", "set", &bif, "up"])?;
        ns.exec(&["ip", "link", "set", &hif, "up"])?;
        Ok((ns, hif))
    }

    /// Starts udhcpc in client `k`'s namespace: it configures its address
    /// and default route and logs each event as "<event> <ip>" to the
    /// returned file (read it with [`client_events`]). SIGUSR1 makes it
    /// renew at once.
    pub fn spawn_udhcpc(&self, k: usize) -> io::Result<(Child, PathBuf)> {
        let cl = &self.clients[k];
        let script = self.dir.join(format!("udhcpc{k}.sh"));
        let log = self.dir.join(format!("udhcpc{k}.events"));
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncase \"$1\" in\n  deconfig) ip -4 addr flush dev \"$interface\" ;;\n  bound|renew) ip -4 addr flush dev \"$interface\"; ip addr add \"$ip/${{mask:-24}}\" dev \"$interface\"; ip route replace default via \"$router\" ;;\nesac\necho \"$1 $ip\" >> {}\nexit 0\n",
                log.display()
            ),
        )?;
        crate::netns::run(Command::new("chmod").arg("+x").arg(&script))?;
        let child = cl
            .ns
            .command("udhcpc")
            .args([
                "-f", "-i", &cl.ifname, "-t", "20", "-T", "1", "-A", "1", "-s",
            ])
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok((child, log))
    }

    /// Starts server `i`'s daemon and its announcer; returns once its
    /// management socket answers.
    pub fn start_server(&mut self, i: usize, daemon_bin: &Path, ctl_bin: &Path) -> io::Result<()> {
        let s = &mut self.servers[i];
        let _ = std::fs::remove_file(&s.socket);
        let mut cmd = s.ns.command(daemon_bin);
        cmd.arg("--config").arg(&s.config).env(
            "IRONDHCP_LOG",
            std::env::var("IRONDHCP_LOG").unwrap_or_else(|_| "info".into()),
        );
        let mut child = spawn_logged(cmd, &s.log)?;
        let ready = wait_until(Duration::from_secs(30), || {
            crate::ctl::query(&s.socket, "stats", Duration::from_secs(2)).is_ok()
                || matches!(child.try_wait(), Ok(Some(_)))
        });
        if !ready || matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            return Err(io::Error::other(format!(
                "{} did not start; log:\n{}",
                s.id,
                std::fs::read_to_string(&s.log).unwrap_or_default()
            )));
        }
        s.daemon = Some(child);
        if s.announcer.is_none() {
            let mut a = s.ns.command(ctl_bin);
            a.arg("--socket")
                .arg(&s.socket)
                .arg("announce")
                .arg("--bird-socket")
                .arg(&s.bird_socket)
                .args(["--protocol", "anycast", "--interval-ms", "100"]);
            s.announcer = Some(spawn_logged(
                a,
                &self.dir.join(format!("{}.announce.log", s.id)),
            )?);
        }
        Ok(())
    }

    /// Kills server `i`'s daemon (SIGKILL, as in a crash); its bird and
    /// announcer live on, as on a box whose daemon died.
    pub fn kill_server(&mut self, i: usize) -> io::Result<()> {
        kill(&mut self.servers[i].daemon);
        Ok(())
    }

    /// Cuts server `i` off from TCP port `port` of the database namespace
    /// (PostgreSQL's or Redis's): its packets there are dropped, so
    /// connections hang as on a broken path. Undone by [`Cluster::heal`].
    pub fn cut(&self, i: usize, port: u16) -> io::Result<()> {
        let ns = &self.servers[i].ns;
        ns.exec(&["nft", "add", "table", "inet", "irondhcp_cut"])?;
        ns.exec(&[
            "nft",
            "add",
            "chain",
            "inet",
            "irondhcp_cut",
            "out",
            "{ type filter hook output priority 0 ; }",
        ])?;
        ns.exec(&[
            "nft",
            "add",
            "rule",
            "inet",
            "irondhcp_cut",
            "out",
            "ip",
            "daddr",
            &DB_IP.to_string(),
            "tcp",
            "dport",
            &port.to_string(),
            "drop",
        ])?;
        Ok(())
    }

    /// Removes every cut of server `i`.
    pub fn heal(&self, i: usize) -> io::Result<()> {
        self.servers[i]
            .ns
            .exec(&["nft", "delete", "table", "inet", "irondhcp_cut"])?;
        Ok(())
    }

    /// Slows what the database namespace sends to server `i` from TCP
    /// port `sport` to `rate` (tc htb), e.g. to make its Redis
    /// subscription fall behind.
    pub fn slow_to(&self, i: usize, sport: u16, rate: &str) -> io::Result<()> {
        let db = self
            .db
            .as_ref()
            .ok_or_else(|| io::Error::other("no database namespace"))?;
        let dev = format!("idd{}", self.tag);
        let dst = format!("{}/32", self.servers[i].link_ip);
        let sport = sport.to_string();
        // htb (this kernel kind has neither prio nor netem): everything in
        // a fast default class, the matched flow in a slow one.
        let steps: [&[&str]; 4] = [
            &[
                "qdisc", "add", "dev", &dev, "root", "handle", "1:", "htb", "default", "10",
            ],
            &[
                "class", "add", "dev", &dev, "parent", "1:", "classid", "1:10", "htb", "rate",
                "1gbit",
            ],
            &[
                "class", "add", "dev", &dev, "parent", "1:", "classid", "1:30", "htb", "rate",
                rate, "ceil", rate,
            ],
            &[
                "filter", "add", "dev", &dev, "protocol", "ip", "parent", "1:0", "prio", "3",
                "u32", "match", "ip", "dst", &dst, "match", "ip", "sport", &sport, "0xffff",
                "flowid", "1:30",
            ],
        ];
        for step in steps {
            let mut argv = vec!["tc"];
            argv.extend_from_slice(step);
            db.exec(&argv)?;
        }
        Ok(())
    }

    /// Removes what [`Cluster::slow_to`] added.
    pub fn unslow(&self) -> io::Result<()> {
        if let Some(db) = &self.db {
            db.exec(&[
                "tc",
                "qdisc",
                "del",
                "dev",
                &format!("idd{}", self.tag),
                "root",
            ])?;
        }
        Ok(())
    }

    /// Sends `signal` to server `i`'s daemon (SIGSTOP, SIGCONT).
    pub fn signal_server(&self, i: usize, signal: i32) -> io::Result<()> {
        let c = self.servers[i]
            .daemon
            .as_ref()
            .ok_or_else(|| io::Error::other("no daemon running"))?;
        // SAFETY: plain kill(2) on our own child.
        if unsafe { libc::kill(c.id() as i32, signal) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One management command to server `i`.
    pub fn ctl(&self, i: usize, command: &str) -> io::Result<serde_json::Value> {
        crate::ctl::query(&self.servers[i].socket, command, Duration::from_secs(5))
    }

    /// One management command with `arguments` to server `i`.
    pub fn ctl_with(
        &self,
        i: usize,
        command: &str,
        arguments: serde_json::Value,
    ) -> io::Result<serde_json::Value> {
        crate::ctl::request(
            &self.servers[i].socket,
            command,
            arguments,
            Duration::from_secs(5),
        )
    }

    /// The MAC of client `k` (`aa:bb:cc:dd:ee:ff`).
    pub fn client_mac(&self, k: usize) -> String {
        let cl = &self.clients[k];
        crate::rawclient::mac_in(&cl.ns, &cl.ifname)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// A stats counter of server `i` by JSON pointer (0 when unreadable).
    pub fn stat(&self, i: usize, pointer: &str) -> u64 {
        self.ctl(i, "stats")
            .ok()
            .and_then(|v| v.pointer(pointer).and_then(serde_json::Value::as_u64))
            .unwrap_or(0)
    }

    /// The router's next hops toward the anycast address.
    pub fn next_hops(&self) -> Vec<Ipv4Addr> {
        let out = self
            .router
            .exec(&["ip", "-4", "route", "show", &format!("{ANYCAST}/32")])
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        // "198.18.255.53 via 198.18.1.2 dev ..." or, with ECMP, one
        // "nexthop via ..." line per hop.
        let words: Vec<&str> = out.split_whitespace().collect();
        words
            .windows(2)
            .filter(|w| w[0] == "via")
            .filter_map(|w| w[1].parse().ok())
            .collect()
    }

    /// Waits until the router routes the anycast address to exactly the
    /// servers `live` (indexes); returns how long it took.
    pub fn wait_for_route(&self, live: &[usize], limit: Duration) -> Option<Duration> {
        let mut want: Vec<Ipv4Addr> = live.iter().map(|&i| self.servers[i].link_ip).collect();
        want.sort();
        let t0 = Instant::now();
        wait_until(limit, || {
            let mut hops = self.next_hops();
            hops.sort();
            hops == want
        })
        .then(|| t0.elapsed())
    }

    /// The cluster's files (configs, logs) for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for p in paths
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
            {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                out.push_str(&format!("==> {} <==\n", p.display()));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in &mut self.servers {
            kill(&mut s.announcer);
            kill(&mut s.daemon);
            kill(&mut s.bird);
        }
        kill(&mut self.relay);
        kill(&mut self.router_bird);
        // Namespaces (and their veths) go with the fields.
        if std::env::var_os("IRONDHCP_KEEP_TESTBED").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
