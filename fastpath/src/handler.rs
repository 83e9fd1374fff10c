//! DHCP decision logic (STUB: interface only, being implemented).
use std::net::Ipv4Addr;

use crate::channel::{AllocDecision, AllocKind, ClientKey, FastEvent};
use crate::config::FastConfig;
use crate::counters::{DropReason, WorkerCounters};
use crate::lease_map::LeaseMap;

/// What a worker needs to answer one frame.
pub struct HandlerCtx<'a> {
    pub cfg: &'a FastConfig,
    pub leases: &'a LeaseMap,
    pub counters: &'a WorkerCounters,
}

/// The parts of a request the control plane needs (the worker adds its id
/// and a copy of the frame to make an `AllocRequest`).
#[derive(Debug, Clone)]
pub struct AllocMeta {
    pub kind: AllocKind,
    pub subnet: u16,
    pub client_key: ClientKey,
    pub hw_addr: [u8; 6],
    pub requested: Option<Ipv4Addr>,
}

/// What the worker must do with a frame.
#[derive(Debug)]
pub enum Verdict {
    /// Send the first `len` bytes of `tx` (a whole Ethernet frame). When
    /// `event` is set the worker must enqueue it first, and must not send the
    /// reply if the event cannot be enqueued.
    Reply {
        len: usize,
        msg_type: u8,
        event: Option<FastEvent>,
    },
    /// No reply; persist the event (RELEASE, DECLINE).
    Event(FastEvent),
    /// Needs the control plane.
    Control(AllocMeta),
    /// Dropped and not answered.
    Drop(DropReason),
}

pub fn handle(_ctx: &HandlerCtx, _frame: &[u8], _now: u64, _tx: &mut [u8]) -> Verdict {
    todo!()
}

pub fn build_decision_reply(
    _ctx: &HandlerCtx,
    _frame: &[u8],
    _decision: AllocDecision,
    _tx: &mut [u8],
) -> Result<(usize, u8), DropReason> {
    todo!()
}
