//! What a lease event looks like on the Redis channel.
//!
//! One message per committed batch, JSON so an operator can read the
//! channel with `redis-cli subscribe`. A message with no events is a
//! heartbeat: it repeats the origin's last sequence number, so a peer that
//! lost the last message of a burst learns of the gap within a second.
//! Everything a peer needs to apply an event forward-only is in it: the
//! row's version and its durable expiry, never a relative time.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::store::batch::{self, RowChangeKind};
use crate::store::{LeaseRecord, LeaseWrite, RecordState, WriteOutcome};

/// One message on the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The publishing server's id.
    pub origin: String,
    /// Its boot epoch (from the servers table): a restart starts a new
    /// sequence.
    pub epoch: u32,
    /// Per origin and epoch, from 1, one per message with events; a
    /// heartbeat repeats the last one (0 before the first).
    pub seq: u64,
    /// When it was published, microseconds since the UNIX epoch.
    pub sent_us: u64,
    /// When its batch was committed, microseconds since the UNIX epoch:
    /// a peer's sync lag runs from here to the moment its map holds the
    /// events (0: not known, a sender from before this field).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub committed_us: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

impl Message {
    pub fn is_heartbeat(&self) -> bool {
        self.events.is_empty()
    }
}

/// One committed change of a lease row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub subnet: u32,
    pub address: Ipv4Addr,
    /// The client key, hex.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hw: Option<String>,
    pub state: String,
    /// The row's durable expiry (for a decline, the end of its quarantine).
    pub expiry: u64,
    /// The row's version after the change.
    pub version: u32,
    /// The commit's time, seconds since the UNIX epoch.
    pub at: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Event {
    /// The event of a write that took effect with `outcome` at `at`; `None`
    /// when it did not take effect.
    pub fn of(w: &LeaseWrite, outcome: WriteOutcome, at: u64) -> Option<Self> {
        let version = outcome?;
        let (subnet, address, key, hw, state, expiry) = match w {
            LeaseWrite::Grant {
                subnet_id,
                address,
                client_key,
                hw_address,
                expiry,
                ..
            } => (
                *subnet_id,
                *address,
                client_key.as_slice(),
                hw_address.map(|h| crate::hex::plain(&h)),
                RecordState::Leased,
                *expiry,
            ),
            LeaseWrite::Extend {
                subnet_id,
                address,
                client_key,
                expiry,
                ..
            } => (
                *subnet_id,
                *address,
                client_key.as_slice(),
                None,
                RecordState::Leased,
                *expiry,
            ),
            // Releases, declines and expiries: the store's per-row change.
            other => {
                let c = batch::row_change(other)?;
                let (state, expiry) = match c.kind {
                    RowChangeKind::Release => (RecordState::Released, at),
                    RowChangeKind::Decline { until } => (RecordState::Declined, until),
                    RowChangeKind::Expire => (RecordState::Expired, at),
                };
                (c.subnet_id, c.address, c.client_key, None, state, expiry)
            }
        };
        Some(Event {
            subnet,
            address,
            key: crate::hex::plain(key),
            hw,
            state: state.as_str().to_string(),
            expiry,
            version,
            at,
        })
    }

    /// The lease record this event describes, as `origin` committed it;
    /// `None` when a field is malformed (a message from something that is
    /// not irondhcp).
    pub fn record(&self, origin: &str) -> Option<LeaseRecord> {
        let hw = match &self.hw {
            Some(h) => Some(<[u8; 6]>::try_from(crate::hex::parse_plain(h)?.as_slice()).ok()?),
            None => None,
        };
        Some(LeaseRecord {
            subnet_id: self.subnet,
            address: self.address,
            client_key: crate::hex::parse_plain(&self.key)?,
            hw_address: hw,
            state: RecordState::parse(&self.state)?,
            expiry: self.expiry,
            allocated_by: origin.to_string(),
            updated_at: self.at,
            version: self.version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> LeaseWrite {
        LeaseWrite::Grant {
            subnet_id: 3,
            address: Ipv4Addr::new(10, 0, 0, 7),
            client_key: vec![1, 0xab, 0xff],
            hw_address: Some([2, 0, 0, 0, 0, 9]),
            expiry: 5_000,
            guard_secs: 60,
            fence: None,
            relay: Default::default(),
        }
    }

    #[test]
    fn a_committed_write_round_trips_to_the_record_a_peer_applies() {
        let e = Event::of(&grant(), Some(4), 1_000).unwrap();
        let m = Message {
            origin: "a".into(),
            epoch: 2,
            seq: 9,
            sent_us: 1,
            committed_us: 0,
            events: vec![e],
        };
        let text = serde_json::to_string(&m).unwrap();
        let back: Message = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
        let r = back.events[0].record("a").unwrap();
        assert_eq!(r.client_key, vec![1, 0xab, 0xff]);
        assert_eq!(r.hw_address, Some([2, 0, 0, 0, 0, 9]));
        assert_eq!(
            (r.state, r.expiry, r.version),
            (RecordState::Leased, 5_000, 4)
        );
        // A write that did not take effect is not an event.
        assert!(Event::of(&grant(), None, 1_000).is_none());
        // A heartbeat has no events and says so on the wire.
        let hb = Message {
            events: Vec::new(),
            ..m
        };
        assert!(hb.is_heartbeat());
        assert!(!serde_json::to_string(&hb).unwrap().contains("events"));
    }

    #[test]
    fn releases_declines_and_expiries_carry_their_state() {
        let key = vec![7];
        let addr = Ipv4Addr::new(10, 0, 0, 9);
        let decline = LeaseWrite::Decline {
            subnet_id: 3,
            address: addr,
            client_key: key.clone(),
            until: 9_000,
            version: 2,
        };
        let r = Event::of(&decline, Some(3), 1_000)
            .unwrap()
            .record("a")
            .unwrap();
        assert_eq!(
            (r.state, r.expiry, r.version),
            (RecordState::Declined, 9_000, 3)
        );
        let expire = LeaseWrite::Expire {
            subnet_id: 3,
            address: addr,
            client_key: key,
            version: 3,
        };
        let r = Event::of(&expire, Some(4), 1_000)
            .unwrap()
            .record("a")
            .unwrap();
        assert_eq!(
            (r.state, r.expiry, r.address),
            (RecordState::Expired, 1_000, addr)
        );
    }

    #[test]
    fn malformed_fields_are_refused_not_guessed() {
        let mut e = Event::of(&grant(), Some(4), 1_000).unwrap();
        e.key = "abc".into();
        assert!(e.record("a").is_none(), "odd-length hex");
        e.key = "zz".into();
        assert!(e.record("a").is_none(), "not hex");
        let mut e = Event::of(&grant(), Some(4), 1_000).unwrap();
        e.hw = Some("0102".into());
        assert!(e.record("a").is_none(), "a MAC is 6 bytes");
        let mut e = Event::of(&grant(), Some(4), 1_000).unwrap();
        e.state = "stolen".into();
        assert!(e.record("a").is_none());
        assert_eq!(
            crate::hex::parse_plain(&crate::hex::plain(&[0, 15, 16, 255])).unwrap(),
            vec![0, 15, 16, 255]
        );
    }
}
