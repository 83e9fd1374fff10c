//! `irondhcp-ctl import-kea`: a Kea `kea-dhcp4.conf` turned into an
//! irondhcp configuration, naming every key that could not be carried over.
//!
//! Why a list of what was skipped rather than a best effort: an operator
//! moving from Kea must know which behaviour did not come along (client
//! classes, hooks, DDNS, option spaces), or the new server silently serves
//! something else. What is carried: the interface, the lease database,
//! lifetimes and timers (global and per subnet), subnets (also inside
//! shared networks) with their pools, the common options (by name or code,
//! global ones given to every subnet), reservations by hw-address or
//! client-id (global ones placed in the subnet holding their address), and
//! relay addresses where irondhcp's giaddr rule already covers them. The
//! result is checked with the daemon's own config validation before it is
//! returned.

use std::net::Ipv4Addr;

use serde_json::{Map, Value};
use toml::value::Table;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not JSON (after Kea's comments are removed): {0}")]
    Json(String),
    #[error("no Dhcp4 object: this is not a kea-dhcp4 configuration")]
    NoDhcp4,
    #[error("<?include ?> is not followed; import the included file's content in place")]
    Include,
    #[error("no subnet4 in the file (Kea may take them from a configuration backend): irondhcp needs its subnets in its configuration")]
    NoSubnets,
    #[error("the imported configuration does not pass irondhcp's checks: {0}")]
    Invalid(String),
}

/// A key of the Kea file not carried over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its path, e.g. `Dhcp4.subnet4[0].client-class`.
    pub path: String,
    pub why: String,
}

/// The result of an import.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The irondhcp configuration (TOML).
    pub toml: String,
    pub skipped: Vec<Skipped>,
    /// Values irondhcp needs that Kea's file did not give, and what was put
    /// in their place (to check before use).
    pub notes: Vec<String>,
}

/// How to fill what Kea's file does not say.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The server identifier (option 54); Kea takes it from the interface.
    pub server_address: Option<Ipv4Addr>,
}

/// Kea's JSON with its comments (`//`, `#`, `/* */`) removed and its
/// `.5`-style numbers written as JSON's `0.5`.
pub fn strip_comments(text: &str) -> Result<String, ImportError> {
    let b = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            out.push(c);
            if c == b'\\' && i + 1 < b.len() {
                out.push(b[i + 1]);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => {
                in_str = true;
                out.push(c);
                i += 1;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'<' if b[i..].starts_with(b"<?include") => return Err(ImportError::Include),
            // Kea's parser takes numbers like `.5`; JSON wants `0.5`.
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit)
                && matches!(
                    out.iter().rev().find(|x| !x.is_ascii_whitespace()),
                    Some(b':' | b',' | b'[' | b'-')
                ) =>
            {
                out.extend_from_slice(b"0.");
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Only ASCII bytes were removed, so the rest is still UTF-8.
    String::from_utf8(out).map_err(|e| ImportError::Json(e.to_string()))
}

/// The option Kea names `name` (or numbers `code`): irondhcp's code and
/// how its data is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ips,
    Text,
    U8,
    U16,
    U32,
}

const OPTIONS: &[(&str, u8, Kind)] = &[
    ("subnet-mask", 1, Kind::Ips),
    ("time-offset", 2, Kind::U32),
    ("routers", 3, Kind::Ips),
    ("time-servers", 4, Kind::Ips),
    ("name-servers", 5, Kind::Ips),
    ("domain-name-servers", 6, Kind::Ips),
    ("log-servers", 7, Kind::Ips),
    ("host-name", 12, Kind::Text),
    ("boot-size", 13, Kind::U16),
    ("domain-name", 15, Kind::Text),
    ("swap-server", 16, Kind::Ips),
    ("root-path", 17, Kind::Text),
    ("ip-forwarding", 19, Kind::U8),
    ("default-ip-ttl", 23, Kind::U8),
    ("interface-mtu", 26, Kind::U16),
    ("broadcast-address", 28, Kind::Ips),
    ("nis-domain", 40, Kind::Text),
    ("nis-servers", 41, Kind::Ips),
    ("ntp-servers", 42, Kind::Ips),
    ("netbios-name-servers", 44, Kind::Ips),
    ("netbios-dd-server", 45, Kind::Ips),
    ("netbios-node-type", 46, Kind::U8),
    ("netbios-scope", 47, Kind::Text),
    ("font-servers", 48, Kind::Ips),
    ("x-display-manager", 49, Kind::Ips),
    ("tftp-server-name", 66, Kind::Text),
    ("boot-file-name", 67, Kind::Text),
    ("smtp-server", 69, Kind::Ips),
    ("pop-server", 70, Kind::Ips),
    ("www-server", 72, Kind::Ips),
];

/// Options the daemon fills itself: importing them would clash.
const SERVER_OWNED: &[u8] = &[1, 51, 53, 54, 58, 59];

struct Importer {
    skipped: Vec<Skipped>,
    notes: Vec<String>,
}

impl Importer {
    fn skip(&mut self, path: impl Into<String>, why: impl Into<String>) {
        self.skipped.push(Skipped {
            path: path.into(),
            why: why.into(),
        });
    }

    /// Skips every key of `obj` not in `handled`.
    fn skip_rest(&mut self, path: &str, obj: &Map<String, Value>, handled: &[&str]) {
        for k in obj.keys() {
            if !handled.contains(&k.as_str()) {
                let why = why_not(k);
                self.skip(format!("{path}.{k}"), why);
            }
        }
    }

    /// One option-data entry: `(code, toml table)` or skipped.
    fn option(&mut self, path: &str, o: &Value) -> Option<(u8, Table)> {
        let name = o["name"].as_str();
        let code = o["code"].as_u64().and_then(|c| u8::try_from(c).ok());
        if o.get("space")
            .and_then(Value::as_str)
            .is_some_and(|s| s != "dhcp4")
        {
            self.skip(
                path,
                "options of another space (vendor options) are not supported",
            );
            return None;
        }
        let known = OPTIONS
            .iter()
            .find(|(n, c, _)| Some(*n) == name || Some(*c) == code)
            .copied();
        let code = known.map(|k| k.1).or(code);
        let Some(code) = code else {
            self.skip(
                path,
                format!(
                    "option {} is not one irondhcp knows by name; give it by code",
                    name.unwrap_or("?")
                ),
            );
            return None;
        };
        if SERVER_OWNED.contains(&code) {
            self.skip(path, format!("option {code} is set by irondhcp itself"));
            return None;
        }
        let data = o["data"].as_str().unwrap_or("").trim();
        let csv = o["csv-format"].as_bool().unwrap_or(true);
        let mut t = Table::new();
        t.insert("code".into(), toml::Value::Integer(i64::from(code)));
        if o["always-send"].as_bool() == Some(true) {
            t.insert("always_send".into(), toml::Value::Boolean(true));
        }
        if !csv {
            let hex: String = data.chars().filter(|c| c.is_ascii_hexdigit()).collect();
            if hex.is_empty() || !hex.len().is_multiple_of(2) {
                self.skip(path, format!("option {code}: {data:?} is not hex bytes"));
                return None;
            }
            t.insert("hex".into(), toml::Value::String(hex));
            return Some((code, t));
        }
        let Some((_, _, kind)) = known else {
            self.skip(path, format!("option {code}: its data type is not known to irondhcp; give it with \"csv-format\": false as hex"));
            return None;
        };
        let parsed = match kind {
            Kind::Ips => data
                .split(',')
                .map(|s| s.trim().parse::<Ipv4Addr>())
                .collect::<Result<Vec<_>, _>>()
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| {
                    (
                        "ips",
                        toml::Value::Array(
                            v.iter()
                                .map(|a| toml::Value::String(a.to_string()))
                                .collect(),
                        ),
                    )
                }),
            Kind::Text => {
                (!data.is_empty()).then(|| ("text", toml::Value::String(data.to_string())))
            }
            Kind::U8 => data
                .parse::<u8>()
                .ok()
                .map(|v| ("u8", toml::Value::Integer(i64::from(v)))),
            Kind::U16 => data
                .parse::<u16>()
                .ok()
                .map(|v| ("u16", toml::Value::Integer(i64::from(v)))),
            Kind::U32 => data
                .parse::<i64>()
                .ok()
                .filter(|v| (0..=i64::from(u32::MAX)).contains(v))
                .map(|v| ("u32", toml::Value::Integer(v))),
        };
        let Some((key, value)) = parsed else {
            self.skip(
                path,
                format!("option {code}: data {data:?} does not fit its type"),
            );
            return None;
        };
        t.insert(key.into(), value);
        Some((code, t))
    }
}

/// Why a key irondhcp does not carry is not carried.
fn why_not(key: &str) -> String {
    match key {
        "client-class" | "client-classes" | "require-client-classes" | "only-if-required" => {
            "client classes are not supported".into()
        }
        "hooks-libraries" => "hook libraries are Kea's; irondhcp has none".into(),
        "loggers" => "logging is set with IRONDHCP_LOG and --json".into(),
        "control-socket" => {
            "irondhcp has its own control socket ([server] control_socket) and HTTP listener ([http])".into()
        }
        "dhcp-ddns" | "ddns-send-updates" | "ddns-qualifying-suffix" | "ddns-override-client-update"
        | "ddns-override-no-update" | "ddns-replace-client-name" | "ddns-generated-prefix" => {
            "DNS updates (DDNS) are not supported".into()
        }
        "option-def" => "option definitions are not supported; give options by code".into(),
        "expired-leases-processing" => {
            "irondhcp reclaims expired leases on its own schedule ([server] reclaim_interval)".into()
        }
        "host-reservation-identifiers" => {
            "irondhcp matches reservations by hw-address or client-id".into()
        }
        "hosts-database" | "hosts-databases" | "config-control" => {
            "reservations and configuration from a database are not supported".into()
        }
        "next-server" | "server-hostname" | "boot-file-name" => {
            "BOOTP header fields are not set by irondhcp".into()
        }
        "match-client-id" | "authoritative" => "irondhcp's behaviour here is fixed".into(),
        "user-context" | "comment" => "comments are not carried".into(),
        _ => "not supported by irondhcp".into(),
    }
}

/// `a.b.c.d - e.f.g.h` or `a.b.c.d/len` as `a.b.c.d-e.f.g.h`.
fn pool_range(p: &str) -> Option<String> {
    let p = p.trim();
    if let Some((a, b)) = p.split_once('-') {
        let (a, b): (Ipv4Addr, Ipv4Addr) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        return Some(format!("{a}-{b}"));
    }
    let (net, len) = p.split_once('/')?;
    let net: Ipv4Addr = net.trim().parse().ok()?;
    let len: u32 = len.trim().parse().ok()?;
    if len > 32 {
        return None;
    }
    let size = if len == 0 {
        u32::MAX
    } else {
        (1u32 << (32 - len)) - 1
    };
    let first = u32::from(net) & !size;
    Some(format!(
        "{}-{}",
        Ipv4Addr::from(first),
        Ipv4Addr::from(first | size)
    ))
}

/// `a.b.c.d/len` as (network, len).
fn cidr(s: &str) -> Option<(u32, u32)> {
    let (a, l) = s.split_once('/')?;
    let a: Ipv4Addr = a.trim().parse().ok()?;
    let l: u32 = l.trim().parse().ok()?;
    (l <= 32).then_some((u32::from(a), l))
}

fn in_cidr(a: Ipv4Addr, (net, len): (u32, u32)) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(a) & mask == net & mask
}

/// The elements of the array `o[key]` (none when it is missing).
fn items<'a>(o: &'a Map<String, Value>, key: &str) -> impl Iterator<Item = &'a Value> {
    o.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// Imports the text of a kea-dhcp4 configuration file.
pub fn import(text: &str, opts: &ImportOptions) -> Result<Imported, ImportError> {
    let json: Value = serde_json::from_str(&strip_comments(text)?)
        .map_err(|e| ImportError::Json(e.to_string()))?;
    let mut im = Importer {
        skipped: Vec::new(),
        notes: Vec::new(),
    };
    let top = json.as_object().ok_or(ImportError::NoDhcp4)?;
    for k in top.keys().filter(|k| *k != "Dhcp4") {
        im.skip(
            k.clone(),
            "only the Dhcp4 server's configuration is imported",
        );
    }
    let d = top
        .get("Dhcp4")
        .and_then(Value::as_object)
        .ok_or(ImportError::NoDhcp4)?;

    // The interface (Kea allows "eth0/192.0.2.1": the address is then the
    // server's).
    let mut interface = None;
    let mut iface_addr = None;
    if let Some(ic) = d.get("interfaces-config").and_then(Value::as_object) {
        let ifs: Vec<&str> = ic["interfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for (i, spec) in ifs.iter().enumerate() {
            let (name, addr) = match spec.split_once('/') {
                Some((n, a)) => (n, a.parse::<Ipv4Addr>().ok()),
                None => (*spec, None),
            };
            if i > 0 {
                im.skip(
                    format!("Dhcp4.interfaces-config.interfaces[{i}]"),
                    "irondhcp serves one interface per server (its XDP program's); run one server per interface",
                );
            } else if name == "*" {
                im.notes.push("server.interface: Kea listens on every interface (\"*\"); set to \"eth0\": name the dedicated interface".into());
            } else {
                interface = Some(name.to_string());
                iface_addr = addr;
            }
        }
        im.skip_rest("Dhcp4.interfaces-config", ic, &["interfaces"]);
    }
    let interface = interface.unwrap_or_else(|| {
        if !im.notes.iter().any(|n| n.starts_with("server.interface")) {
            im.notes.push("server.interface: the file names no interface; set to \"eth0\": name the dedicated interface".into());
        }
        "eth0".into()
    });

    // Lifetimes and timers: global, overridden per subnet.
    let num = |o: &Map<String, Value>, k: &str| o.get(k).and_then(Value::as_u64);
    let global_valid = num(d, "valid-lifetime");
    let global_t1 = num(d, "renew-timer");
    let global_t2 = num(d, "rebind-timer");

    // The lease database.
    let mut storage = "sqlite:///var/lib/irondhcp/leases.sqlite3".to_string();
    if let Some(db) = d.get("lease-database").and_then(Value::as_object) {
        match db.get("type").and_then(Value::as_str) {
            Some("memfile") | None => {
                im.notes.push("storage.url: Kea's memfile becomes the SQLite store /var/lib/irondhcp/leases.sqlite3; the leases in Kea's CSV file are not carried over".into());
                im.skip_rest("Dhcp4.lease-database", db, &["type", "name", "persist"]);
            }
            Some("postgresql") => {
                let s = |k: &str| db.get(k).and_then(Value::as_str).unwrap_or("");
                let port = db
                    .get("port")
                    .and_then(Value::as_u64)
                    .map(|p| format!(":{p}"))
                    .unwrap_or_default();
                let host = if s("host").is_empty() {
                    "localhost"
                } else {
                    s("host")
                };
                let auth = match (s("user"), s("password")) {
                    ("", _) => String::new(),
                    (u, "") => format!("{u}@"),
                    (u, p) => format!("{u}:{p}@"),
                };
                storage = format!("postgres://{auth}{host}{port}/{}", s("name"));
                im.notes.push("storage.url: Kea's PostgreSQL lease database becomes irondhcp's, in a database of its own schema: point it at a new database, not Kea's".into());
                im.skip_rest(
                    "Dhcp4.lease-database",
                    db,
                    &["type", "name", "host", "port", "user", "password"],
                );
            }
            Some(other) => {
                im.skip(
                    "Dhcp4.lease-database",
                    format!(
                        "lease database type {other:?} is not supported; the SQLite store is used"
                    ),
                );
            }
        }
    }

    // Global options, given to every subnet that does not set its own.
    let mut global_options: Vec<(u8, Table)> = Vec::new();
    for (i, o) in items(d, "option-data").enumerate() {
        if let Some(opt) = im.option(&format!("Dhcp4.option-data[{i}]"), o) {
            global_options.push(opt);
        }
    }

    // Subnets, from the top level and from shared networks, in Kea's order.
    let mut kea_subnets: Vec<(String, &Map<String, Value>)> = Vec::new();
    for (i, s) in items(d, "subnet4").enumerate() {
        if let Some(o) = s.as_object() {
            kea_subnets.push((format!("Dhcp4.subnet4[{i}]"), o));
        }
    }
    for (n, net) in items(d, "shared-networks").enumerate() {
        let Some(net) = net.as_object() else { continue };
        let path = format!("Dhcp4.shared-networks[{n}]");
        im.skip(
            format!("{path} (the grouping)"),
            "shared networks are not supported: its subnets are imported as plain subnets",
        );
        for (i, s) in items(net, "subnet4").enumerate() {
            if let Some(o) = s.as_object() {
                kea_subnets.push((format!("{path}.subnet4[{i}]"), o));
            }
        }
        im.skip_rest(&path, net, &["subnet4", "name"]);
    }
    if kea_subnets.is_empty() {
        return Err(ImportError::NoSubnets);
    }

    let mut subnets: Vec<toml::Value> = Vec::new();
    let mut cidrs: Vec<(u32, (u32, u32))> = Vec::new();
    let mut used_ids: Vec<u64> = Vec::new();
    for (idx, (path, s)) in kea_subnets.iter().enumerate() {
        let s: &Map<String, Value> = s;
        let Some(net) = s
            .get("subnet")
            .and_then(Value::as_str)
            .and_then(|c| cidr(c).map(|x| (c, x)))
        else {
            im.skip(path.clone(), "no valid \"subnet\"");
            continue;
        };
        // Kea numbers subnets without an id in order.
        let id = s
            .get("id")
            .and_then(Value::as_u64)
            .unwrap_or(idx as u64 + 1);
        if used_ids.contains(&id) || id > u64::from(u32::MAX) {
            im.skip(
                path.clone(),
                format!("subnet id {id} is used twice or too large"),
            );
            continue;
        }
        used_ids.push(id);
        let mut t = Table::new();
        t.insert("id".into(), toml::Value::Integer(id as i64));
        t.insert("cidr".into(), toml::Value::String(net.0.to_string()));
        let mut pools = Vec::new();
        for (p, pool) in items(s, "pools").enumerate() {
            let ppath = format!("{path}.pools[{p}]");
            match pool["pool"].as_str().and_then(pool_range) {
                Some(r) => pools.push(toml::Value::String(r)),
                None => im.skip(ppath.clone(), "not a pool range"),
            }
            if let Some(o) = pool.as_object() {
                im.skip_rest(&ppath, o, &["pool"]);
            }
        }
        t.insert("pools".into(), toml::Value::Array(pools));
        let valid = num(s, "valid-lifetime").or(global_valid);
        if let Some(v) = valid {
            t.insert("lease_time".into(), toml::Value::Integer(v as i64));
        }
        if let Some(v) = num(s, "renew-timer").or(global_t1) {
            t.insert("renew_time".into(), toml::Value::Integer(v as i64));
        }
        if let Some(v) = num(s, "rebind-timer").or(global_t2) {
            t.insert("rebind_time".into(), toml::Value::Integer(v as i64));
        }
        // Options: the subnet's own, then the global ones it lacks.
        let mut own: Vec<(u8, Table)> = Vec::new();
        for (i, o) in items(s, "option-data").enumerate() {
            if let Some(opt) = im.option(&format!("{path}.option-data[{i}]"), o) {
                own.push(opt);
            }
        }
        for g in &global_options {
            if !own.iter().any(|(c, _)| *c == g.0) {
                own.push(g.clone());
            }
        }
        let mut options = Vec::new();
        for (code, o) in own {
            let ips = o.get("ips").cloned();
            let text = o.get("text").cloned();
            match (code, ips, text) {
                (3, Some(ips), _) => {
                    t.insert("routers".into(), ips);
                }
                (6, Some(ips), _) => {
                    t.insert("dns_servers".into(), ips);
                }
                (15, _, Some(text)) => {
                    t.insert("domain_name".into(), text);
                }
                _ => options.push(toml::Value::Table(o)),
            }
        }
        if !options.is_empty() {
            t.insert("option".into(), toml::Value::Array(options));
        }
        let mut res = Vec::new();
        for (r, rv) in items(s, "reservations").enumerate() {
            if let Some(x) = reservation(&mut im, &format!("{path}.reservations[{r}]"), rv) {
                res.push(x);
            }
        }
        if let Some(relay) = s.get("relay").and_then(Value::as_object) {
            let addrs: Vec<&str> = items(relay, "ip-addresses")
                .filter_map(Value::as_str)
                .chain(relay.get("ip-address").and_then(Value::as_str))
                .collect();
            for a in addrs {
                let inside = a.parse::<Ipv4Addr>().is_ok_and(|a| in_cidr(a, net.1));
                if !inside {
                    im.skip(
                        format!("{path}.relay ({a})"),
                        "irondhcp picks a relayed client's subnet by the relay's giaddr inside it; a relay address outside the subnet is not supported",
                    );
                }
            }
        }
        im.skip_rest(
            path,
            s,
            &[
                "id",
                "subnet",
                "pools",
                "valid-lifetime",
                "renew-timer",
                "rebind-timer",
                "option-data",
                "reservations",
                "relay",
                "interface",
            ],
        );
        cidrs.push((id as u32, net.1));
        subnets.push(toml::Value::Table(t));
        if !res.is_empty() {
            if let Some(toml::Value::Table(t)) = subnets.last_mut() {
                t.insert("reservation".into(), toml::Value::Array(res));
            }
        }
    }

    // Global reservations go to the subnet holding their address.
    for (r, rv) in items(d, "reservations").enumerate() {
        let path = format!("Dhcp4.reservations[{r}]");
        let Some(x) = reservation(&mut im, &path, rv) else {
            continue;
        };
        let addr = x
            .get("address")
            .and_then(|a| a.as_str())
            .and_then(|a| a.parse::<Ipv4Addr>().ok());
        let Some(i) = addr.and_then(|a| cidrs.iter().position(|(_, c)| in_cidr(a, *c))) else {
            im.skip(
                path,
                "a global reservation whose address is in no imported subnet",
            );
            continue;
        };
        if let Some(toml::Value::Table(t)) = subnets.get_mut(i) {
            let list = t
                .entry("reservation")
                .or_insert_with(|| toml::Value::Array(Vec::new()));
            if let toml::Value::Array(a) = list {
                a.push(x);
            }
        }
    }

    im.skip_rest(
        "Dhcp4",
        d,
        &[
            "interfaces-config",
            "lease-database",
            "valid-lifetime",
            "renew-timer",
            "rebind-timer",
            "option-data",
            "subnet4",
            "shared-networks",
            "reservations",
        ],
    );

    // The server identifier: given, from the interface spec, or the first
    // subnet's first address (to check).
    let address = match opts.server_address.or(iface_addr) {
        Some(a) => a,
        None => {
            let (_, (net, _)) = cidrs.first().copied().ok_or(ImportError::NoSubnets)?;
            let a = Ipv4Addr::from(net + 1);
            im.notes.push(format!("server.address: Kea takes the server identifier from the interface; set to {a}, the first address of the first subnet: give the interface's address with --address"));
            a
        }
    };
    let mut server = Table::new();
    server.insert("address".into(), toml::Value::String(address.to_string()));
    server.insert("interface".into(), toml::Value::String(interface));
    let mut root = Table::new();
    root.insert("server".into(), toml::Value::Table(server));
    let mut st = Table::new();
    st.insert("url".into(), toml::Value::String(storage));
    root.insert("storage".into(), toml::Value::Table(st));
    root.insert("subnet".into(), toml::Value::Array(subnets));
    let body = toml::to_string(&toml::Value::Table(root))
        .map_err(|e| ImportError::Invalid(e.to_string()))?;
    let toml =
        format!("# Imported from a kea-dhcp4 configuration by irondhcp-ctl import-kea.\n{body}");
    crate::config::Config::parse(&toml).map_err(|e| ImportError::Invalid(e.to_string()))?;
    Ok(Imported {
        toml,
        skipped: im.skipped,
        notes: im.notes,
    })
}

/// One reservation as `[[subnet.reservation]]`, or skipped.
fn reservation(im: &mut Importer, path: &str, r: &Value) -> Option<toml::Value> {
    let o = r.as_object()?;
    let Some(addr) = o.get("ip-address").and_then(Value::as_str) else {
        im.skip(
            path,
            "a reservation without an ip-address (only options or a hostname) is not supported",
        );
        return None;
    };
    let mut t = Table::new();
    t.insert("address".into(), toml::Value::String(addr.to_string()));
    if let Some(hw) = o.get("hw-address").and_then(Value::as_str) {
        t.insert("hw_address".into(), toml::Value::String(hw.to_string()));
    } else if let Some(c) = o.get("client-id").and_then(Value::as_str) {
        t.insert("client_id".into(), toml::Value::String(c.to_string()));
    } else {
        im.skip(
            path,
            "reserved by an identifier irondhcp does not match (only hw-address and client-id)",
        );
        return None;
    }
    im.skip_rest(path, o, &["ip-address", "hw-address", "client-id"]);
    Some(toml::Value::Table(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_go_and_strings_stay() {
        let s = strip_comments("{ // a\n \"a\": \"x//y#z\", # b\n /* c\n d */ \"b\": 1 }").unwrap();
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "x//y#z");
        assert_eq!(v["b"], 1);
        assert!(matches!(
            strip_comments("<?include \"x.json\"?>"),
            Err(ImportError::Include)
        ));
        let kea = "{\"t\": .5, \"u\": [-.25], \"s\": \"a .5\"}";
        let v: Value = serde_json::from_str(&strip_comments(kea).unwrap()).unwrap();
        assert_eq!(v["t"], 0.5);
        assert_eq!(v["u"][0], -0.25);
        assert_eq!(v["s"], "a .5");
    }

    #[test]
    fn pools_in_both_spellings() {
        assert_eq!(
            pool_range("192.0.2.1 - 192.0.2.200").as_deref(),
            Some("192.0.2.1-192.0.2.200")
        );
        assert_eq!(
            pool_range("192.0.3.0/25").as_deref(),
            Some("192.0.3.0-192.0.3.127")
        );
        assert_eq!(pool_range("nope"), None);
    }

    const KEA: &str = r#"
    // A subnet with a pool, options, a reservation, and things irondhcp
    // does not do.
    { "Dhcp4": {
        "interfaces-config": { "interfaces": [ "eth1/192.0.2.1", "eth2" ] },
        "valid-lifetime": 4000, "renew-timer": 1000,
        "option-data": [ { "name": "domain-name-servers", "data": "192.0.2.53, 192.0.2.54" },
                         { "name": "ntp-servers", "data": "192.0.2.123" } ],
        "client-classes": [ { "name": "x" } ],
        "subnet4": [ {
            "subnet": "192.0.2.0/24",
            "pools": [ { "pool": "192.0.2.10 - 192.0.2.200" } ],
            "option-data": [ { "name": "routers", "data": "192.0.2.1" },
                             { "code": 150, "data": "C0000201", "csv-format": false },
                             { "name": "vendor-thing", "data": "1" } ],
            "reservations": [ { "hw-address": "1a:1b:1c:1d:1e:1f", "ip-address": "192.0.2.202",
                                "hostname": "special" },
                              { "circuit-id": "01:11", "ip-address": "192.0.2.203" } ],
            "client-class": "x"
        } ],
        "loggers": []
    } }"#;

    #[test]
    fn a_subnet_comes_over_and_the_rest_is_named() {
        let im = import(KEA, &ImportOptions::default()).unwrap();
        let v: toml::Value = toml::from_str(&im.toml).unwrap();
        assert_eq!(v["server"]["interface"].as_str(), Some("eth1"));
        assert_eq!(v["server"]["address"].as_str(), Some("192.0.2.1"));
        let s = &v["subnet"][0];
        assert_eq!(s["id"].as_integer(), Some(1));
        assert_eq!(s["pools"][0].as_str(), Some("192.0.2.10-192.0.2.200"));
        assert_eq!(s["lease_time"].as_integer(), Some(4000));
        assert_eq!(s["renew_time"].as_integer(), Some(1000));
        assert_eq!(s["routers"][0].as_str(), Some("192.0.2.1"));
        assert_eq!(s["dns_servers"][1].as_str(), Some("192.0.2.54"));
        let opts = s["option"].as_array().unwrap();
        assert!(opts
            .iter()
            .any(|o| o["code"].as_integer() == Some(150) && o["hex"].as_str() == Some("C0000201")));
        assert!(opts.iter().any(|o| o["code"].as_integer() == Some(42)));
        assert_eq!(
            s["reservation"][0]["hw_address"].as_str(),
            Some("1a:1b:1c:1d:1e:1f")
        );
        assert_eq!(s["reservation"].as_array().unwrap().len(), 1);
        let paths: Vec<&str> = im.skipped.iter().map(|s| s.path.as_str()).collect();
        for p in [
            "Dhcp4.interfaces-config.interfaces[1]",
            "Dhcp4.client-classes",
            "Dhcp4.loggers",
            "Dhcp4.subnet4[0].client-class",
            "Dhcp4.subnet4[0].option-data[2]",
            "Dhcp4.subnet4[0].reservations[0].hostname",
            "Dhcp4.subnet4[0].reservations[1]",
        ] {
            assert!(paths.contains(&p), "{p} not named as skipped: {paths:?}");
        }
        assert_eq!(im.skipped.len(), 7, "{:?}", im.skipped);
        // The address came with the interface; there was no lease database.
        assert!(im.notes.is_empty(), "{:?}", im.notes);
    }

    #[test]
    fn without_subnets_there_is_nothing_to_import() {
        let e = import(
            r#"{"Dhcp4": {"config-control": {}}}"#,
            &ImportOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(e, ImportError::NoSubnets));
        assert!(matches!(
            import("{}", &ImportOptions::default()),
            Err(ImportError::NoDhcp4)
        ));
        assert!(matches!(
            import("{", &ImportOptions::default()),
            Err(ImportError::Json(_))
        ));
    }
}
