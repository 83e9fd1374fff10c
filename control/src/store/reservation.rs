//! Reservations as the store keeps them, and their audit trail.
//!
//! A reservation made at run time lives in the lease store, beside the
//! leases, so it survives a restart and, in a cluster, every server reads
//! the same rows. Each change is written in one transaction with its audit
//! row (who, when, the reservation before and after), so the trail can
//! never miss a change that took effect.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

/// How a reservation names its client, as Kea's `identifier-type` does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    HwAddress([u8; 6]),
    ClientId(Vec<u8>),
}

impl Identifier {
    /// Kea's name of the kind: `hw-address` or `client-id`.
    pub fn kind(&self) -> &'static str {
        match self {
            Identifier::HwAddress(_) => "hw-address",
            Identifier::ClientId(_) => "client-id",
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Identifier::HwAddress(m) => m,
            Identifier::ClientId(c) => c,
        }
    }

    /// The identifier of kind `kind` (Kea's name) with bytes `bytes`.
    pub fn new(kind: &str, bytes: Vec<u8>) -> Result<Self, String> {
        match kind {
            "hw-address" => <[u8; 6]>::try_from(bytes.as_slice())
                .map(Identifier::HwAddress)
                .map_err(|_| "a hw-address is six bytes, aa:bb:cc:dd:ee:ff".to_string()),
            "client-id" if bytes.is_empty() => Err("a client-id is at least one byte".into()),
            "client-id" if bytes.len() > 255 => Err("a client-id is at most 255 bytes".into()),
            "client-id" => Ok(Identifier::ClientId(bytes)),
            other => Err(format!(
                "identifier-type {other:?}: irondhcp reserves by hw-address or client-id"
            )),
        }
    }

    /// The allocator's client key: option 61 as sent, or for a client
    /// without one its hardware type (1, Ethernet) and address.
    pub fn client_key(&self) -> Vec<u8> {
        match self {
            Identifier::HwAddress(m) => {
                let mut k = Vec::with_capacity(7);
                k.push(1);
                k.extend_from_slice(m);
                k
            }
            Identifier::ClientId(c) => c.clone(),
        }
    }
}

/// One reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub subnet_id: u32,
    pub identifier: Identifier,
    pub address: Ipv4Addr,
    pub hostname: Option<String>,
}

impl Reservation {
    /// As the audit trail and the APIs show it (Kea's key names).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "subnet-id": self.subnet_id,
            "ip-address": self.address.to_string(),
            self.identifier.kind(): crate::hex::colon(self.identifier.bytes()),
        });
        if let Some(h) = &self.hostname {
            v["hostname"] = json!(h);
        }
        v
    }
}

/// A change to write: `after` is the new reservation of the client
/// `identifier` in `subnet_id`, or `None` to delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationChange {
    pub subnet_id: u32,
    pub identifier: Identifier,
    pub after: Option<Reservation>,
    /// Who asked (the audit trail's "who").
    pub actor: String,
}

/// What a change did, by the row it found.
pub fn action(before: Option<&Reservation>, after: Option<&Reservation>) -> &'static str {
    match (before, after) {
        (None, _) => "add",
        (Some(_), Some(_)) => "update",
        (Some(_), None) => "delete",
    }
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    /// Seconds since the UNIX epoch.
    pub at: u64,
    pub actor: String,
    pub action: String,
    pub subnet_id: u32,
    pub identifier_type: String,
    pub identifier: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}
