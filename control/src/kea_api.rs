//! Kea's control-channel commands, answered in Kea's shapes, so the
//! scripts and tools operators run against Kea (kea-exporter,
//! `lease4-get-page` dumps, monitoring checks) work against irondhcp on the
//! same socket or HTTP listener.
//!
//! Result codes are Kea's: 0 success, 1 error, 2 unsupported command, 3
//! empty (nothing found). A lease is rendered as Kea renders one; irondhcp
//! keeps the expiry, not the last transmission time, so `cltt` is now and
//! `valid-lft` the time left: `cltt + valid-lft` is the expiry, which is
//! what a script computes from them.

use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};

use crate::alloc::{LeaseInfo, LeaseQuery};
use crate::ctl::{gather, lease_page, CtlContext};

/// The Kea commands answered here (the host commands are in
/// [`crate::kea_hosts::COMMANDS`]).
pub const COMMANDS: [&str; 12] = [
    "list-commands",
    "status-get",
    "statistic-get-all",
    "stat-lease4-get",
    "lease4-get",
    "lease4-get-by-hw-address",
    "lease4-get-by-client-id",
    "lease4-get-page",
    "lease4-del",
    "lease4-wipe",
    "config-test",
    "config-reload",
];

/// The most leases one `lease4-get-page` returns (Kea has no limit; a page
/// of more would hold the control plane).
const MAX_PAGE: u64 = 10_000;

fn error(text: impl Into<String>) -> Value {
    json!({"result": 1, "text": text.into()})
}

/// Answers Kea command `command` for `actor` (who asked, for the audit
/// trail of the changes it makes).
pub async fn answer(command: &str, args: &Value, ctx: &CtlContext, actor: &str) -> Value {
    match command {
        "list-commands" => {
            let mut all: Vec<&str> = crate::ctl::COMMANDS.to_vec();
            all.extend(COMMANDS);
            all.extend(crate::kea_hosts::COMMANDS);
            json!({"result": 0, "arguments": all})
        }
        "status-get" => json!({"result": 0, "arguments": {
            "pid": std::process::id(),
            "multi-threading-enabled": true,
            "thread-pool-size": ctx.workers.len(),
            "server-id": ctx.server_id,
        }}),
        "statistic-get-all" | "stat-lease4-get" => match gather(ctx).await {
            Ok(s) if command == "statistic-get-all" => {
                json!({"result": 0, "arguments": statistics(&s, &timestamp(now_us()))})
            }
            Ok(s) => stat_lease4(&s, args, &timestamp(now_us())),
            Err(e) => error(e),
        },
        "lease4-get" | "lease4-get-by-hw-address" | "lease4-get-by-client-id" => {
            let q = match lookup_query(command, args) {
                Ok(q) => q,
                Err(e) => return error(e),
            };
            let page = match lease_page(ctx, q).await {
                Ok(p) => p,
                Err(e) => return error(e),
            };
            let now = irondhcp_fastpath::unix_now();
            let leases: Vec<Value> = page.leases.iter().map(|l| kea_lease(l, now)).collect();
            match (command, leases.len()) {
                (_, 0) => json!({"result": 3, "text": "Lease not found."}),
                ("lease4-get", _) => {
                    json!({"result": 0, "text": "IPv4 lease found.", "arguments": leases[0]})
                }
                (_, n) => json!({"result": 0, "text": format!("{n} IPv4 lease(s) found."),
                                 "arguments": {"leases": leases}}),
            }
        }
        "lease4-get-page" => {
            let (after, limit) = match page_arguments(args) {
                Ok(a) => a,
                Err(e) => return error(e),
            };
            let q = LeaseQuery {
                after,
                limit,
                ..LeaseQuery::default()
            };
            let page = match lease_page(ctx, q).await {
                Ok(p) => p,
                Err(e) => return error(e),
            };
            let now = irondhcp_fastpath::unix_now();
            let leases: Vec<Value> = page.leases.iter().map(|l| kea_lease(l, now)).collect();
            let n = leases.len();
            json!({
                "result": if n == 0 { 3 } else { 0 },
                "text": format!("{n} IPv4 lease(s) found."),
                "arguments": {"leases": leases, "count": n},
            })
        }
        "lease4-del" => {
            let Some(a) = args["ip-address"].as_str() else {
                return error("'ip-address' parameter not specified (irondhcp deletes a lease by its address)");
            };
            let Ok(addr) = a.parse::<Ipv4Addr>() else {
                return error(format!("'{a}' is not a valid IPv4 address"));
            };
            match release(ctx, addr, actor).await {
                Ok(true) => json!({"result": 0, "text": "IPv4 lease deleted."}),
                Ok(false) => json!({"result": 3, "text": "IPv4 lease not found."}),
                Err(e) => error(e),
            }
        }
        "lease4-wipe" => {
            let subnet = match &args["subnet-id"] {
                Value::Null => None,
                v => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                    Some(n) => Some(n),
                    None => return error("'subnet-id' must be a subnet's id"),
                },
            };
            let mut wiped = 0u64;
            let mut after = None;
            loop {
                let q = LeaseQuery {
                    subnet,
                    after,
                    limit: MAX_PAGE as usize,
                    ..LeaseQuery::default()
                };
                let page = match lease_page(ctx, q).await {
                    Ok(p) => p,
                    Err(e) => return error(e),
                };
                for l in &page.leases {
                    let Ok(addr) = l.address.parse() else {
                        continue;
                    };
                    match release(ctx, addr, actor).await {
                        Ok(true) => wiped += 1,
                        Ok(false) => {}
                        Err(e) => return error(e),
                    }
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            let which = subnet.map_or("all subnets".to_string(), |s| format!("subnet {s}"));
            json!({"result": if wiped == 0 { 3 } else { 0 },
                   "text": format!("Deleted {wiped} IPv4 lease(s) from {which}.")})
        }
        "config-test" | "config-reload" => {
            let Some(reloader) = ctx.reloader.as_deref() else {
                return error("this server cannot reload its configuration");
            };
            if command == "config-test" && args.get("Dhcp4").is_some() {
                return error("irondhcp reads TOML: give {\"config\": \"<the file's text>\"} (irondhcp-ctl import-kea converts a Kea configuration)");
            }
            let text = match &args["config"] {
                Value::Null => None,
                Value::String(t) => Some(t.as_str()),
                _ => return error("'config' must be the configuration's text"),
            };
            let outcome = if command == "config-test" {
                reloader.test(text).await
            } else if text.is_some() {
                return error("config-reload reads the daemon's own file; write it there first");
            } else {
                reloader.reload().await
            };
            match outcome {
                Ok(changes) => {
                    if command == "config-reload" {
                        tracing::info!(?changes, actor, "configuration reloaded");
                    }
                    let text = match command {
                        "config-test" => {
                            "Configuration seems sane. It can be reloaded without a restart."
                        }
                        _ => "Configuration successful.",
                    };
                    json!({"result": 0, "text": text, "arguments": {"changes": changes}})
                }
                Err(e) => error(e.to_string()),
            }
        }
        other if crate::kea_hosts::COMMANDS.contains(&other) => {
            crate::kea_hosts::answer(other, args, ctx, actor).await
        }
        other => json!({"result": 2, "text": format!("'{other}' command not supported.")}),
    }
}

/// Releases the lease on `addr` for an operator; whether there was one.
async fn release(ctx: &CtlContext, addr: Ipv4Addr, actor: &str) -> Result<bool, &'static str> {
    let released = crate::ctl::ask(ctx, |tx| crate::plane::Query::Release(addr, tx)).await?;
    if let Some(l) = &released {
        tracing::info!(address = %l.address, client = %l.client_key, actor, "lease released by an operator");
    }
    Ok(released.is_some())
}

/// The query of `lease4-get` (`ip-address`), `lease4-get-by-hw-address`
/// (`hw-address`) or `lease4-get-by-client-id` (`client-id`).
fn lookup_query(command: &str, args: &Value) -> Result<LeaseQuery, String> {
    let text = |k: &str| -> Result<&str, String> {
        args[k]
            .as_str()
            .ok_or_else(|| format!("'{k}' parameter not specified"))
    };
    let mut q = LeaseQuery {
        limit: MAX_PAGE as usize,
        ..LeaseQuery::default()
    };
    match command {
        "lease4-get" => {
            let a = text("ip-address")?;
            q.address = Some(
                a.parse()
                    .map_err(|_| format!("'{a}' is not a valid IPv4 address"))?,
            );
        }
        "lease4-get-by-hw-address" => {
            let h = text("hw-address")?;
            let b = crate::hex::parse(h)
                .ok()
                .ok_or_else(|| format!("'{h}' is not a valid hardware address"))?;
            q.hw_address = Some(
                <[u8; 6]>::try_from(b.as_slice())
                    .map_err(|_| format!("'{h}' is not a 6-byte hardware address"))?,
            );
        }
        _ => {
            let c = text("client-id")?;
            q.client_key = Some(
                crate::hex::parse(c)
                    .ok()
                    .ok_or_else(|| format!("'{c}' is not a valid client-id"))?,
            );
        }
    }
    if let Some(id) = args.get("subnet-id").and_then(Value::as_u64) {
        q.subnet = u32::try_from(id).ok();
    }
    Ok(q)
}

/// `lease4-get-page`'s `from` ("start" or an address) and `limit`.
fn page_arguments(args: &Value) -> Result<(Option<Ipv4Addr>, usize), String> {
    let from = args["from"]
        .as_str()
        .ok_or("'from' parameter not specified")?;
    let after = match from {
        "start" => None,
        a => Some(a.parse().map_err(|_| {
            format!("'from' parameter value {a} is neither 'start' nor a valid IPv4 address")
        })?),
    };
    let limit = args["limit"]
        .as_u64()
        .ok_or("'limit' parameter not specified")?;
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(format!(
            "page size of retrieved leases must not be 0 or above {MAX_PAGE}"
        ));
    }
    Ok((after, limit as usize))
}

/// One lease as Kea renders it.
fn kea_lease(l: &LeaseInfo, now: u64) -> Value {
    json!({
        "ip-address": l.address,
        "hw-address": l.hw_address.clone().unwrap_or_default(),
        "client-id": l.client_key,
        "subnet-id": l.subnet_id,
        "cltt": now,
        "valid-lft": l.expiry.saturating_sub(now),
        "state": if l.state == "declined" { 1 } else { 0 },
        "fqdn-fwd": false,
        "fqdn-rev": false,
        "hostname": "",
    })
}

/// Kea's statistics (`statistic-get-all`): every figure as `[[value,
/// timestamp]]`, global and per subnet and pool (`subnet[id].…`,
/// `subnet[id].pool[i].…`).
fn statistics(s: &crate::stats::Stats, ts: &str) -> Value {
    let mut m = Map::new();
    let mut put = |k: String, v: u64| {
        m.insert(k, json!([[v, ts]]));
    };
    let pk = &s.packets;
    let received = |t: &str| pk.received.get(t).copied().unwrap_or(0);
    let sent = |t: &str| pk.sent.get(t).copied().unwrap_or(0);
    for (kea, ours) in [
        ("discover", "discover"),
        ("request", "request"),
        ("release", "release"),
        ("decline", "decline"),
        ("inform", "inform"),
        ("unknown", "other"),
    ] {
        put(format!("pkt4-{kea}-received"), received(ours));
    }
    put("pkt4-received".into(), pk.received.values().sum());
    let parse_failed = ["bad_frame", "bad_dhcp", "bad_message_type"]
        .iter()
        .map(|r| pk.drops.get(r).copied().unwrap_or(0))
        .sum();
    put("pkt4-parse-failed".into(), parse_failed);
    put("pkt4-receive-drop".into(), pk.drops_total);
    for t in ["offer", "ack", "nak"] {
        put(format!("pkt4-{t}-sent"), sent(t));
    }
    put("pkt4-sent".into(), pk.sent.values().sum());
    put("v4-allocation-fail".into(), s.control.pool_exhausted);
    put("v4-allocation-fail-subnet".into(), s.control.pool_exhausted);
    for p in &s.pools {
        let id = p.subnet_id;
        put(format!("subnet[{id}].total-addresses"), p.total);
        put(format!("subnet[{id}].assigned-addresses"), p.assigned);
        put(format!("subnet[{id}].declined-addresses"), p.declined);
        for (i, r) in p.ranges.iter().enumerate() {
            put(format!("subnet[{id}].pool[{i}].total-addresses"), r.total);
            put(
                format!("subnet[{id}].pool[{i}].assigned-addresses"),
                r.assigned,
            );
            put(
                format!("subnet[{id}].pool[{i}].declined-addresses"),
                r.declined,
            );
        }
    }
    Value::Object(m)
}

/// `stat-lease4-get`: a result set of the subnets' lease counts (all, or
/// `subnet-id`'s).
fn stat_lease4(s: &crate::stats::Stats, args: &Value, ts: &str) -> Value {
    let only = args.get("subnet-id").and_then(Value::as_u64);
    let rows: Vec<Value> = s
        .pools
        .iter()
        .filter(|p| only.is_none_or(|id| u64::from(p.subnet_id) == id))
        .map(|p| json!([p.subnet_id, p.total, p.assigned, p.assigned, p.declined]))
        .collect();
    if rows.is_empty() {
        return json!({"result": 3, "text": "stat-lease4-get: no matching data"});
    }
    json!({"result": 0, "text": "stat-lease4-get: stats retrieved", "arguments": {"result-set": {
        "columns": ["subnet-id", "total-addresses", "cumulative-assigned-addresses",
                    "assigned-addresses", "declined-addresses"],
        "rows": rows,
        "timestamp": ts,
    }}})
}

fn now_us() -> u64 {
    crate::sync::now_us()
}

/// `unix_us` as `YYYY-MM-DD HH:MM:SS.ffffff` (UTC), as Kea stamps its
/// statistics.
pub fn timestamp(unix_us: u64) -> String {
    let secs = unix_us / 1_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm), days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_us % 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_kea_s() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000000");
        // 2026-11-28 04:30:15.000123 UTC.
        assert_eq!(
            timestamp(1_795_840_215_000_123),
            "2026-11-28 04:30:15.000123"
        );
        // A leap day.
        assert_eq!(timestamp(951_782_400_000_000), "2000-02-29 00:00:00.000000");
    }

    #[test]
    fn lookups_take_kea_s_parameters() {
        let q = lookup_query("lease4-get", &json!({"ip-address": "10.0.0.5"})).unwrap();
        assert_eq!(q.address, Some(Ipv4Addr::new(10, 0, 0, 5)));
        let q = lookup_query(
            "lease4-get-by-hw-address",
            &json!({"hw-address": "02:00:00:00:00:0a", "subnet-id": 4}),
        )
        .unwrap();
        assert_eq!(q.hw_address, Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(q.subnet, Some(4));
        let q = lookup_query("lease4-get-by-client-id", &json!({"client-id": "01:02:00"})).unwrap();
        assert_eq!(q.client_key, Some(vec![1, 2, 0]));
        assert_eq!(
            lookup_query("lease4-get", &json!({})).unwrap_err(),
            "'ip-address' parameter not specified"
        );
        assert!(lookup_query("lease4-get-by-hw-address", &json!({"hw-address": "zz"})).is_err());
        assert_eq!(
            page_arguments(&json!({"from": "start", "limit": 10})).unwrap(),
            (None, 10)
        );
        assert_eq!(
            page_arguments(&json!({"from": "10.0.0.9", "limit": 1})).unwrap(),
            (Some(Ipv4Addr::new(10, 0, 0, 9)), 1)
        );
        assert!(page_arguments(&json!({"from": "start", "limit": 0})).is_err());
        assert!(page_arguments(&json!({"from": "nope", "limit": 5})).is_err());
    }

    #[test]
    fn a_lease_reads_as_kea_s() {
        let l = LeaseInfo {
            subnet_id: 2,
            address: "10.0.0.7".into(),
            client_key: "01:02:00:00:00:00:07".into(),
            hw_address: Some("02:00:00:00:00:07".into()),
            state: "declined".into(),
            expiry: 1_600,
        };
        let v = kea_lease(&l, 1_000);
        assert_eq!(v["ip-address"], "10.0.0.7");
        assert_eq!(v["subnet-id"], 2);
        assert_eq!(v["state"], 1);
        assert_eq!(
            v["cltt"].as_u64().unwrap() + v["valid-lft"].as_u64().unwrap(),
            1_600
        );
    }
}
