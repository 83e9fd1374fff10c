//! Kea's host commands (the `host_cmds` hook's `reservation-add`,
//! `-update`, `-get`, `-get-all`, `-del`) and irondhcp's `reservations` and
//! `reservation-audit`, answered from the reservation service
//! ([`crate::reservations`]) in Kea's shapes.
//!
//! Result codes are Kea's: 0 success, 1 error, 3 nothing found.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use crate::ctl::CtlContext;
use crate::reservations::{Put, ReservationError, Reservations, Source};
use crate::store::{Identifier, Reservation};

/// The host commands answered here.
pub const COMMANDS: [&str; 7] = [
    "reservation-add",
    "reservation-update",
    "reservation-get",
    "reservation-get-all",
    "reservation-del",
    "reservations",
    "reservation-audit",
];

/// The most audit rows one answer carries.
const MAX_AUDIT: u64 = 10_000;

fn error(text: impl Into<String>) -> Value {
    json!({"result": 1, "text": text.into()})
}

/// Answers host command `command` for `actor` (the audit trail's "who").
pub async fn answer(command: &str, args: &Value, ctx: &CtlContext, actor: &str) -> Value {
    let Some(service) = ctx.reservations.as_deref() else {
        return error("this server keeps no reservations");
    };
    match command {
        "reservation-add" | "reservation-update" => {
            let r = match reservation_of(&args["reservation"]) {
                Ok(r) => r,
                Err(e) => return error(e),
            };
            let how = if command == "reservation-add" {
                Put::Add
            } else {
                Put::Update
            };
            match service.put(r, how, actor).await {
                Ok(_) if how == Put::Add => json!({"result": 0, "text": "Host added."}),
                Ok(_) => json!({"result": 0, "text": "Host updated."}),
                Err(ReservationError::NotFound(_)) => {
                    json!({"result": 3, "text": "Host not updated (not found)."})
                }
                Err(e) => error(e.to_string()),
            }
        }
        "reservation-get" => match find(service, args).await {
            Ok(Some((r, source))) => {
                json!({"result": 0, "text": "Host found.", "arguments": kea_host(&r, source)})
            }
            Ok(None) => json!({"result": 3, "text": "Host not found."}),
            Err(e) => error(e),
        },
        "reservation-get-all" => {
            let Some(id) = args["subnet-id"].as_u64() else {
                return error("'subnet-id' parameter not specified");
            };
            match service.list().await {
                Ok(all) => {
                    let hosts: Vec<Value> = all
                        .iter()
                        .filter(|(r, _)| u64::from(r.subnet_id) == id)
                        .map(|(r, s)| kea_host(r, *s))
                        .collect();
                    let n = hosts.len();
                    json!({"result": if n == 0 { 3 } else { 0 },
                           "text": format!("{n} IPv4 host(s) found."),
                           "arguments": {"hosts": hosts}})
                }
                Err(e) => error(e.to_string()),
            }
        }
        "reservation-del" => {
            let (id, identifier) = match find(service, args).await {
                Ok(Some((_, Source::Config))) => {
                    return error(
                        "this reservation is in the config file; remove it there and reload",
                    )
                }
                Ok(Some((r, Source::Store))) => (r.subnet_id, r.identifier),
                Ok(None) => return json!({"result": 3, "text": "Host not deleted (not found)."}),
                Err(e) => return error(e),
            };
            match service.delete(id, &identifier, actor).await {
                Ok(Some(_)) => json!({"result": 0, "text": "Host deleted."}),
                Ok(None) => json!({"result": 3, "text": "Host not deleted (not found)."}),
                Err(e) => error(e.to_string()),
            }
        }
        "reservations" => match service.list().await {
            Ok(all) => {
                let hosts: Vec<Value> = all.iter().map(|(r, s)| kea_host(r, *s)).collect();
                json!({"result": 0, "text": format!("{} IPv4 host(s) found.", hosts.len()),
                       "arguments": {"hosts": hosts}})
            }
            Err(e) => error(e.to_string()),
        },
        "reservation-audit" => {
            let limit = match &args["limit"] {
                Value::Null => 100,
                v => match v.as_u64() {
                    Some(n @ 1..=MAX_AUDIT) => n,
                    _ => return error(format!("'limit' must be between 1 and {MAX_AUDIT}")),
                },
            };
            match service.audit(limit as u32).await {
                Ok(rows) => json!({"result": 0, "text": format!("{} change(s).", rows.len()),
                                   "arguments": {"changes": rows}}),
                Err(e) => error(e.to_string()),
            }
        }
        other => json!({"result": 2, "text": format!("'{other}' command not supported.")}),
    }
}

/// A reservation from Kea's `reservation` object: `subnet-id`,
/// `ip-address`, one of `hw-address` / `client-id` (or
/// `identifier-type` + `identifier`), optional `hostname`.
pub fn reservation_of(v: &Value) -> Result<Reservation, String> {
    if !v.is_object() {
        return Err("'reservation' parameter not specified".into());
    }
    let subnet_id = subnet_of(v)?;
    let a = v["ip-address"]
        .as_str()
        .ok_or("'ip-address' parameter not specified (irondhcp reservations name an address)")?;
    let address: Ipv4Addr = a
        .parse()
        .map_err(|_| format!("'{a}' is not a valid IPv4 address"))?;
    let hostname = match &v["hostname"] {
        Value::Null => None,
        Value::String(h) if h.len() <= 253 => Some(h.clone()),
        _ => return Err("'hostname' must be a string of at most 253 characters".into()),
    };
    Ok(Reservation {
        subnet_id,
        identifier: identifier_of(v)?,
        address,
        hostname,
    })
}

fn subnet_of(v: &Value) -> Result<u32, String> {
    v["subnet-id"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| "'subnet-id' parameter not specified".to_string())
}

/// The client a request names: `hw-address` or `client-id` as keys, or
/// Kea's `identifier-type` and `identifier`.
fn identifier_of(v: &Value) -> Result<Identifier, String> {
    let (kind, text) = match (
        v["hw-address"].as_str(),
        v["client-id"].as_str(),
        v["identifier-type"].as_str(),
    ) {
        (Some(h), None, None) => ("hw-address", h),
        (None, Some(c), None) => ("client-id", c),
        (None, None, Some(kind)) => (
            kind,
            v["identifier"]
                .as_str()
                .ok_or("'identifier' parameter not specified")?,
        ),
        (None, None, None) => {
            return Err(
                "give one of 'hw-address', 'client-id' or 'identifier-type' with 'identifier'"
                    .into(),
            )
        }
        _ => return Err("give only one identifier".into()),
    };
    let bytes = crate::hex::parse(text).map_err(|e| format!("'{text}' {e}"))?;
    Identifier::new(kind, bytes)
}

/// The reservation `reservation-get` / `-del` name: by `subnet-id` and
/// `ip-address`, or by `subnet-id` and the client's identifier.
async fn find(
    service: &Reservations,
    args: &Value,
) -> Result<Option<(Reservation, Source)>, String> {
    let id = subnet_of(args)?;
    let by_address = match args["ip-address"].as_str() {
        Some(a) => Some(
            a.parse::<Ipv4Addr>()
                .map_err(|_| format!("'{a}' is not a valid IPv4 address"))?,
        ),
        None => None,
    };
    let identifier = match by_address {
        Some(_) => None,
        None => Some(identifier_of(args)?),
    };
    let all = service.list().await.map_err(|e| e.to_string())?;
    Ok(all.into_iter().find(|(r, _)| {
        r.subnet_id == id
            && by_address.is_none_or(|a| r.address == a)
            && identifier.as_ref().is_none_or(|i| r.identifier == *i)
    }))
}

/// A reservation as Kea's `reservation-get` renders a host, with where it
/// comes from (irondhcp's `source`: `config` or `store`).
fn kea_host(r: &Reservation, source: Source) -> Value {
    let mut v = r.to_json();
    for (k, d) in [
        ("boot-file-name", json!("")),
        ("client-classes", json!([])),
        ("next-server", json!("0.0.0.0")),
        ("option-data", json!([])),
        ("server-hostname", json!("")),
    ] {
        v[k] = d;
    }
    if v.get("hostname").is_none() {
        v["hostname"] = json!("");
    }
    v["source"] = json!(source);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_take_kea_s_parameters() {
        let r = reservation_of(&json!({"subnet-id": 1, "hw-address": "1a:1b:1c:1d:1e:1f",
                                       "ip-address": "192.0.2.202", "hostname": "special"}))
        .unwrap();
        assert_eq!(
            r.identifier,
            Identifier::HwAddress([0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f])
        );
        assert_eq!(r.hostname.as_deref(), Some("special"));
        let r = reservation_of(&json!({"subnet-id": 1, "identifier-type": "client-id",
                                       "identifier": "01:0a:0b", "ip-address": "192.0.2.5"}))
        .unwrap();
        assert_eq!(r.identifier, Identifier::ClientId(vec![1, 10, 11]));
        for (bad, why) in [
            (
                json!({"hw-address": "1a:1b:1c:1d:1e:1f", "ip-address": "192.0.2.5"}),
                "subnet-id",
            ),
            (
                json!({"subnet-id": 1, "hw-address": "1a:1b", "ip-address": "192.0.2.5"}),
                "six bytes",
            ),
            (
                json!({"subnet-id": 1, "hw-address": "zz", "ip-address": "192.0.2.5"}),
                "not hex",
            ),
            (
                json!({"subnet-id": 1, "hw-address": "1a:1b:1c:1d:1e:1f"}),
                "ip-address",
            ),
            (
                json!({"subnet-id": 1, "ip-address": "192.0.2.5"}),
                "give one of",
            ),
            (
                json!({"subnet-id": 1, "identifier-type": "duid", "identifier": "01", "ip-address": "192.0.2.5"}),
                "hw-address or client-id",
            ),
            (
                json!({"subnet-id": 1, "hw-address": "1a:1b:1c:1d:1e:1f", "client-id": "01", "ip-address": "192.0.2.5"}),
                "only one",
            ),
            (json!("x"), "'reservation'"),
        ] {
            let e = reservation_of(&bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_host_reads_as_kea_s() {
        let r = Reservation {
            subnet_id: 3,
            identifier: Identifier::ClientId(vec![0xff, 1]),
            address: Ipv4Addr::new(192, 0, 2, 9),
            hostname: None,
        };
        let v = kea_host(&r, Source::Store);
        assert_eq!(v["client-id"], "ff:01");
        assert_eq!(v["ip-address"], "192.0.2.9");
        assert_eq!(v["subnet-id"], 3);
        assert_eq!(v["hostname"], "");
        assert_eq!(v["option-data"], json!([]));
        assert_eq!(v["source"], "store");
    }
}
