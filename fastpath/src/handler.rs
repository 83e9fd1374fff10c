//! DHCP decision logic: what to answer to one request frame (RFC 2131 §4.3).
//!
//! Everything that can be decided from the lease map is decided here, at
//! packet rate, on the worker thread: offers to clients that already hold a
//! lease, renewals, rebinds, init-reboots, releases, declines and informs.
//! Only a client that needs an address the map does not already give it
//! goes to the control plane ([`Verdict::Control`]), which makes the
//! allocation durable before the ACK (docs/decisions.md, 3); its
//! decision comes back through [`build_decision_reply`], which shares the
//! reply code of [`handle`].
//!
//! A lease is only extended from memory while it is still valid (`expiry >
//! now`). A lease past its expiry belongs to the reclaimer's timeline
//! (decision 3), so a client asking for it again goes to the control plane,
//! which may re-grant it; the handler never resurrects one by itself.
//!
//! A renewal from memory never promises more than the durable expiry the
//! map records plus the subnet's MCLT ([`promise`]; the lease-safety
//! invariant in docs/decisions.md): whatever a crash or a store outage
//! loses of the write-behind, the reclaimer waits past every promise made.
//! When the bound leaves less than half a lease, the request goes to the
//! control plane as [`AllocKind::Renew`], which commits the extension
//! before the ACK. A renewal for an address the map does not hold goes
//! there too, and the control plane only ever extends an existing lease
//! for it. `authoritative = false` turns every NAK for an address the
//! server does not know into silence.
//!
//! Subnet selection, first match wins: the relay's link-selection
//! sub-option (RFC 3527), option 118 (RFC 3011), giaddr, and finally the
//! subnet of the receiving interface. A unicast RENEWING request and an
//! INFORM, which arrive without giaddr from clients that may sit behind a
//! router, use the subnet containing ciaddr before falling back to the local
//! one; a broadcast REBINDING request can only come from the local link, so
//! the local subnet applies to it. RELEASE and DECLINE act on an existing
//! lease, so they use the subnet containing the address in question.
//!
//! The handler counts received message types; every other counter (drops,
//! sent types, answers from the map, control-plane hand-offs) follows from
//! the [`Verdict`] and is the worker's to bump, so nothing is counted twice.

use std::net::Ipv4Addr;

use crate::channel::{AllocDecision, AllocKind, ClientKey, FastEvent};
use crate::config::{FastConfig, SubnetView};
use crate::counters::{DropReason, WorkerCounters};
use crate::lease_map::{LeaseMap, LeaseState, LeaseView, SlotBusy};
use crate::wire::{
    build_reply, msg_type, parse_dhcp, parse_frame, DhcpMessage, FrameInfo, LeaseTimes, ReplySpec,
};

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
///
/// `Control` is large (a client key is up to 255 bytes), but a verdict is
/// returned by value and consumed at once, never stored; boxing it would
/// put an allocation on the packet path.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
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

/// Option 56 texts of the NAKs, static so a NAK costs no formatting.
const NAK_WRONG_NETWORK: &[u8] = b"requested address not on this network";
const NAK_NOT_YOURS: &[u8] = b"requested address not available";
const NAK_UNKNOWN: &[u8] = b"no lease for this client";

/// Decides the answer to one frame; a reply is written into `tx`.
pub fn handle(ctx: &HandlerCtx, frame: &[u8], now: u64, tx: &mut [u8]) -> Verdict {
    match handle_frame(ctx, frame, now, tx) {
        Ok(v) => v,
        Err(reason) => Verdict::Drop(reason),
    }
}

/// Builds the reply to `frame` (the request a `Control` verdict was given
/// for) once the control plane has decided. Returns the frame length and the
/// DHCP message type sent.
pub fn build_decision_reply(
    ctx: &HandlerCtx,
    frame: &[u8],
    decision: AllocDecision,
    tx: &mut [u8],
) -> Result<(usize, u8), DropReason> {
    let (fi, msg) = parse(frame)?;
    let answer = match decision {
        AllocDecision::Offer { addr, lease_secs } => Answer::Offer { addr, lease_secs },
        AllocDecision::Ack { addr, lease_secs } => Answer::Ack { addr, lease_secs },
        AllocDecision::Nak => Answer::Nak(NAK_NOT_YOURS),
        AllocDecision::Ignore => return Err(DropReason::Silent),
    };
    let subnet = match answer {
        // The address's own subnet supplies mask and routers; selection is
        // the fallback for an address outside every configured subnet.
        Answer::Offer { addr, .. } | Answer::Ack { addr, .. } => match ctx.cfg.subnet_for(addr) {
            Some(i) => ctx.cfg.subnets.get(i),
            None => Some(select_subnet(ctx.cfg, &msg, None)?.view),
        },
        _ => None,
    };
    reply(ctx.cfg, &fi, &msg, subnet, answer, tx)
}

fn parse(frame: &[u8]) -> Result<(FrameInfo, DhcpMessage<'_>), DropReason> {
    let fi = parse_frame(frame)?;
    let payload = fi.payload(frame).ok_or(DropReason::BadFrame)?;
    Ok((fi, parse_dhcp(payload)?))
}

/// One parsed request and what answering it needs.
struct Request<'a, 'f> {
    ctx: &'a HandlerCtx<'a>,
    fi: FrameInfo,
    msg: DhcpMessage<'f>,
    now: u64,
}

fn handle_frame(
    ctx: &HandlerCtx,
    frame: &[u8],
    now: u64,
    tx: &mut [u8],
) -> Result<Verdict, DropReason> {
    let (fi, msg) = parse(frame)?;
    ctx.counters.received_type(msg.opts.msg_type);
    let r = Request { ctx, fi, msg, now };
    match msg.opts.msg_type {
        msg_type::DISCOVER => r.discover(tx),
        msg_type::REQUEST => r.request(tx),
        msg_type::DECLINE => r.decline(),
        msg_type::RELEASE => r.release(),
        msg_type::INFORM => r.inform(tx),
        _ => Err(DropReason::BadMessageType),
    }
}

/// A subnet chosen for a request: its index (as the channel carries it)
/// and its configuration.
#[derive(Clone, Copy)]
struct Selected<'c> {
    index: u16,
    view: &'c SubnetView,
}

fn selected(cfg: &FastConfig, index: usize) -> Result<Selected<'_>, DropReason> {
    let view = cfg.subnets.get(index).ok_or(DropReason::NoSubnet)?;
    let index = u16::try_from(index).map_err(|_| DropReason::NoSubnet)?;
    Ok(Selected { index, view })
}

/// The subnet a request belongs to (see the module documentation).
/// `client_addr` is an address the client already uses, tried just before
/// the receiving interface's subnet.
fn select_subnet<'c>(
    cfg: &'c FastConfig,
    msg: &DhcpMessage,
    client_addr: Option<Ipv4Addr>,
) -> Result<Selected<'c>, DropReason> {
    let hint = msg
        .opts
        .link_selection
        .or(msg.opts.subnet_selection)
        .or_else(|| (!msg.giaddr.is_unspecified()).then_some(msg.giaddr));
    if let Some(a) = hint {
        // The relay or the client said which link: no falling back.
        return selected(cfg, cfg.subnet_for(a).ok_or(DropReason::NoSubnet)?);
    }
    if let Some(i) = client_addr.and_then(|a| cfg.subnet_for(a)) {
        return selected(cfg, i);
    }
    selected(cfg, cfg.local_subnet.ok_or(DropReason::NoSubnet)?)
}

/// Lease time and T1/T2 for a lease of `lease` seconds: the subnet's T1/T2
/// when both fit inside the lease, else the RFC 2131 §4.4.5 defaults (0.5
/// and 0.875 of the lease), so a lease shortened by the promise bound still
/// has T1 < T2 < lease.
fn lease_times(s: &SubnetView, lease: u32) -> LeaseTimes {
    let (renew, rebind) =
        if s.renew_time > 0 && s.renew_time < s.rebind_time && s.rebind_time < lease {
            (s.renew_time, s.rebind_time)
        } else {
            (lease / 2, lease - lease / 8)
        };
    LeaseTimes {
        lease,
        renew,
        rebind,
    }
}

/// The kinds of reply the server sends.
#[derive(Clone, Copy)]
enum Answer {
    Offer { addr: Ipv4Addr, lease_secs: u32 },
    Ack { addr: Ipv4Addr, lease_secs: u32 },
    InformAck,
    Nak(&'static [u8]),
}

/// The one place replies are built, for both the map and the control plane.
fn reply(
    cfg: &FastConfig,
    fi: &FrameInfo,
    msg: &DhcpMessage,
    subnet: Option<&SubnetView>,
    answer: Answer,
    tx: &mut [u8],
) -> Result<(usize, u8), DropReason> {
    let unspecified = Ipv4Addr::UNSPECIFIED;
    let options = subnet.map(|s| &s.options);
    let (t, yiaddr, ciaddr, lease, message) = match answer {
        Answer::Offer { addr, lease_secs } => (
            msg_type::OFFER,
            addr,
            unspecified,
            subnet.map(|s| lease_times(s, lease_secs)),
            None,
        ),
        Answer::Ack { addr, lease_secs } => (
            msg_type::ACK,
            addr,
            msg.ciaddr,
            subnet.map(|s| lease_times(s, lease_secs)),
            None,
        ),
        Answer::InformAck => (msg_type::ACK, unspecified, msg.ciaddr, None, None),
        Answer::Nak(text) => (msg_type::NAK, unspecified, unspecified, None, Some(text)),
    };
    let spec = ReplySpec {
        msg_type: t,
        yiaddr,
        ciaddr,
        server_ip: cfg.server_ip,
        server_mac: cfg.server_mac,
        lease,
        message,
        // A NAK carries no configuration (RFC 2131 table 3).
        options: if t == msg_type::NAK { None } else { options },
    };
    build_reply(tx, fi, msg, &spec).map(|len| (len, t))
}

/// What the lease map says about an address a client asks for.
enum Known {
    /// Leased to this client and not expired: answer from memory.
    Valid(LeaseView),
    /// Leased to this client but past its expiry.
    Expired,
    /// Leased to another client, or quarantined after a DECLINE.
    Foreign,
    /// Free or not covered.
    Unknown,
    /// The slot stayed busy for a whole bounded read.
    Busy,
}

/// The lease time a renewal answered from memory may promise (the promise
/// bound of docs/decisions.md): `min(lease, durable + mclt - now)`, or `None`
/// when that is under half a lease and the request must take the durable
/// path.
#[inline]
pub fn promise(lease: u32, mclt: u32, durable: u64, now: u64) -> Option<u32> {
    let room = durable.saturating_add(u64::from(mclt)).saturating_sub(now);
    let secs = u32::try_from(room.min(u64::from(lease))).unwrap_or(lease);
    (secs > 0 && secs >= lease / 2).then_some(secs)
}

/// Whether `v` is a lease of `key_hash`, valid or expired but still held.
#[inline]
fn held_by(v: &LeaseView, key_hash: u64) -> bool {
    v.state == LeaseState::Leased && v.key_hash == key_hash
}

impl Request<'_, '_> {
    fn client_key(&self) -> ClientKey {
        match self.msg.opts.client_id {
            Some(id) => ClientKey::new(id),
            None => ClientKey::from_hw(self.msg.htype, self.msg.hw_addr()),
        }
    }

    /// `ciaddr` as a subnet hint, for unicast requests only (see the module
    /// documentation).
    fn unicast_ciaddr(&self) -> Option<Ipv4Addr> {
        (!self.msg.ciaddr.is_unspecified() && !self.fi.dst_ip.is_broadcast())
            .then_some(self.msg.ciaddr)
    }

    fn select(&self, client_addr: Option<Ipv4Addr>) -> Result<Selected<'_>, DropReason> {
        select_subnet(self.ctx.cfg, &self.msg, client_addr)
    }

    fn reply(
        &self,
        subnet: Option<&SubnetView>,
        answer: Answer,
        tx: &mut [u8],
    ) -> Result<(usize, u8), DropReason> {
        reply(self.ctx.cfg, &self.fi, &self.msg, subnet, answer, tx)
    }

    fn nak(&self, text: &'static [u8], tx: &mut [u8]) -> Result<Verdict, DropReason> {
        let (len, msg_type) = self.reply(None, Answer::Nak(text), tx)?;
        Ok(Verdict::Reply {
            len,
            msg_type,
            event: None,
        })
    }

    /// ACKs `addr` from the map within the promise bound: the client gets
    /// `min(lease_time, durable + MCLT - now)`. When that would be short
    /// (under half a lease) the request takes the durable path instead: the
    /// control plane commits the extension, then ACKs a whole lease.
    fn ack_from_map(
        &self,
        sel: Selected,
        addr: Ipv4Addr,
        view: LeaseView,
        key: ClientKey,
        tx: &mut [u8],
    ) -> Result<Verdict, DropReason> {
        let lease = sel.view.lease_time;
        let Some(lease_secs) = promise(lease, sel.view.mclt, view.durable, self.now) else {
            WorkerCounters::bump(&self.ctx.counters.promise_deferred);
            return Ok(self.control(AllocKind::Renew, sel, key, Some(addr)));
        };
        if lease_secs < lease {
            WorkerCounters::bump(&self.ctx.counters.promise_shortened);
        }
        let (len, msg_type) = self.reply(Some(sel.view), Answer::Ack { addr, lease_secs }, tx)?;
        Ok(Verdict::Reply {
            len,
            msg_type,
            event: Some(FastEvent::Renewed {
                subnet: sel.index,
                addr,
                key_hash: view.key_hash,
                expiry: self.now.saturating_add(u64::from(lease_secs)),
            }),
        })
    }

    /// A NAK where the server knows better, silence when it is not
    /// authoritative (`authoritative = false` is honoured everywhere).
    fn nak_if_authoritative(
        &self,
        text: &'static [u8],
        tx: &mut [u8],
    ) -> Result<Verdict, DropReason> {
        if self.ctx.cfg.authoritative {
            self.nak(text, tx)
        } else {
            Err(DropReason::Silent)
        }
    }

    /// Whether a RELEASE or DECLINE for `addr` came from the lease's client
    /// as far as the server can tell: relayed ones are trusted as the relay
    /// is; from the receiving link the Ethernet source must be chaddr; a
    /// routed unicast (it arrives with a router's MAC) must come from the
    /// address itself.
    fn sent_by_client(&self, addr: Ipv4Addr) -> bool {
        !self.msg.giaddr.is_unspecified()
            || self.fi.src_mac == self.msg.mac()
            || self.fi.src_ip == addr
    }

    fn control(
        &self,
        kind: AllocKind,
        sel: Selected,
        key: ClientKey,
        requested: Option<Ipv4Addr>,
    ) -> Verdict {
        Verdict::Control(AllocMeta {
            kind,
            subnet: sel.index,
            client_key: key,
            hw_addr: self.msg.mac(),
            requested,
        })
    }

    /// What the map says about `addr` for the client `key_hash`.
    fn lookup(&self, addr: Ipv4Addr, key_hash: u64) -> Known {
        match self.ctx.leases.try_get(addr) {
            Ok(Some(v)) if held_by(&v, key_hash) && v.expiry > self.now => Known::Valid(v),
            Ok(Some(v)) if held_by(&v, key_hash) => Known::Expired,
            Ok(Some(_)) => Known::Foreign,
            Ok(None) => Known::Unknown,
            Err(SlotBusy) => Known::Busy,
        }
    }

    fn discover(&self, tx: &mut [u8]) -> Result<Verdict, DropReason> {
        let sel = self.select(None)?;
        let key = self.client_key();
        let key_hash = key.hash(sel.view.id);
        if let Some((addr, v)) = self.ctx.leases.find_client(key_hash) {
            // Offering the client's own lease, even expired, promises
            // nothing: the REQUEST that follows is checked again.
            if held_by(&v, key_hash) && sel.view.contains(addr) {
                let lease_secs = sel.view.lease_time;
                let (len, msg_type) =
                    self.reply(Some(sel.view), Answer::Offer { addr, lease_secs }, tx)?;
                return Ok(Verdict::Reply {
                    len,
                    msg_type,
                    event: None,
                });
            }
        }
        Ok(self.control(AllocKind::Discover, sel, key, self.msg.opts.requested_ip))
    }

    fn request(&self, tx: &mut [u8]) -> Result<Verdict, DropReason> {
        let o = &self.msg.opts;
        if !self.msg.ciaddr.is_unspecified() {
            // RENEWING (unicast) or REBINDING (broadcast). Option 54 must
            // not be here (RFC 2131 §4.3.2), but some clients add it: ours
            // is answered, another server's is that server's business.
            if o.server_id.is_some_and(|s| s != self.ctx.cfg.server_ip) {
                return Err(DropReason::NotForUs);
            }
            let addr = self.msg.ciaddr;
            let sel = self.select(self.unicast_ciaddr())?;
            if !sel.view.contains(addr) {
                return self.nak_if_authoritative(NAK_WRONG_NETWORK, tx);
            }
            let key = self.client_key();
            let key_hash = key.hash(sel.view.id);
            return match self.lookup(addr, key_hash) {
                Known::Valid(v) => self.ack_from_map(sel, addr, v, key, tx),
                Known::Foreign => self.nak(NAK_NOT_YOURS, tx),
                // Expired, or lost by the map (restart, resync): the control
                // plane decides whether the client still holds it; it never
                // creates a lease for a renewal.
                Known::Expired | Known::Unknown | Known::Busy => {
                    Ok(self.control(AllocKind::Renew, sel, key, Some(addr)))
                }
            };
        }
        if let Some(server_id) = o.server_id {
            // SELECTING: the client chose an offer.
            if server_id != self.ctx.cfg.server_ip {
                return Err(DropReason::NotForUs);
            }
            let addr = o.requested_ip.ok_or(DropReason::BadDhcp)?;
            let sel = self.select(None)?;
            let key = self.client_key();
            let key_hash = key.hash(sel.view.id);
            if sel.view.contains(addr) {
                if let Known::Valid(v) = self.lookup(addr, key_hash) {
                    // A retransmitted REQUEST for a lease already committed.
                    return self.ack_from_map(sel, addr, v, key, tx);
                }
            }
            return Ok(self.control(AllocKind::Request, sel, key, Some(addr)));
        }
        // INIT-REBOOT: verify a remembered address.
        let addr = o.requested_ip.ok_or(DropReason::BadDhcp)?;
        let sel = self.select(None)?;
        if !sel.view.contains(addr) {
            return self.nak_if_authoritative(NAK_WRONG_NETWORK, tx);
        }
        let key = self.client_key();
        let key_hash = key.hash(sel.view.id);
        match self.lookup(addr, key_hash) {
            Known::Valid(v) => self.ack_from_map(sel, addr, v, key, tx),
            Known::Foreign => self.nak(NAK_NOT_YOURS, tx),
            // A busy slot is not "unknown": never NAK a client on a read
            // that gave up.
            Known::Expired | Known::Busy => {
                Ok(self.control(AllocKind::Renew, sel, key, Some(addr)))
            }
            // In a cluster the map may not have heard of it yet.
            Known::Unknown if self.ctx.cfg.shared_store => {
                Ok(self.control(AllocKind::Renew, sel, key, Some(addr)))
            }
            Known::Unknown => self.nak_if_authoritative(NAK_UNKNOWN, tx),
        }
    }

    /// The subnet of a lease a RELEASE or DECLINE acts on.
    fn lease_subnet(&self, addr: Ipv4Addr) -> Result<Selected<'_>, DropReason> {
        selected(
            self.ctx.cfg,
            self.ctx.cfg.subnet_for(addr).ok_or(DropReason::NoSubnet)?,
        )
    }

    fn release(&self) -> Result<Verdict, DropReason> {
        if self.msg.opts.server_id != Some(self.ctx.cfg.server_ip) {
            return Err(DropReason::NotForUs);
        }
        let addr = self.msg.ciaddr;
        if addr.is_unspecified() {
            return Err(DropReason::BadDhcp);
        }
        let sel = self.lease_subnet(addr)?;
        let key_hash = self.client_key().hash(sel.view.id);
        if !self.sent_by_client(addr) {
            return Err(DropReason::NotFromClient);
        }
        match self.ctx.leases.get(addr) {
            Some(v) if held_by(&v, key_hash) => Ok(Verdict::Event(FastEvent::Released {
                subnet: sel.index,
                addr,
                key_hash,
            })),
            _ => Err(DropReason::Silent),
        }
    }

    fn decline(&self) -> Result<Verdict, DropReason> {
        if self
            .msg
            .opts
            .server_id
            .is_some_and(|s| s != self.ctx.cfg.server_ip)
        {
            return Err(DropReason::NotForUs);
        }
        let addr = self.msg.opts.requested_ip.ok_or(DropReason::BadDhcp)?;
        let sel = self.lease_subnet(addr)?;
        let key_hash = self.client_key().hash(sel.view.id);
        if !self.sent_by_client(addr) {
            return Err(DropReason::NotFromClient);
        }
        match self.ctx.leases.get(addr) {
            Some(v) if held_by(&v, key_hash) => Ok(Verdict::Event(FastEvent::Declined {
                subnet: sel.index,
                addr,
                key_hash,
            })),
            _ => Err(DropReason::Silent),
        }
    }

    fn inform(&self, tx: &mut [u8]) -> Result<Verdict, DropReason> {
        let ciaddr = (!self.msg.ciaddr.is_unspecified()).then_some(self.msg.ciaddr);
        let sel = self.select(ciaddr)?;
        let (len, msg_type) = self.reply(Some(sel.view), Answer::InformAck, tx)?;
        Ok(Verdict::Reply {
            len,
            msg_type,
            event: None,
        })
    }
}
