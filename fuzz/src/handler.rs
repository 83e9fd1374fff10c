//! Fuzz target `handler`: one request frame through
//! `irondhcp_fastpath::handler::handle`, as a worker would run it.
//!
//! The world is the handler fixtures' (`irondhcp_testkit::fixtures`): three
//! subnets (local, relayed, link-selection) and a lease map holding leases
//! of the fixture client by MAC and by client id, a foreign lease, a
//! declined address, an expired lease, and (added here) a lease near the
//! promise bound, so that mutated fixture frames
//! reach the renew, rebind, init-reboot, release and decline paths and not
//! only "unknown client, ask the control plane". One map serves every
//! input, and the target asserts that no input changes it (workers only
//! read the map), so an input's outcome never depends on the ones before
//! it and every finding replays from its file alone.
//!
//! Every frame runs against the authoritative and the non-authoritative
//! configuration. A frame handed to the control plane is answered with
//! each kind of decision (OFFER and ACK inside and outside the configured
//! subnets, NAK, silence) through `build_decision_reply`.
//!
//! Every reply frame must satisfy [`check_reply`]: it fits the TX buffer
//! and the size the client accepts, its lengths and checksums are right,
//! it comes from the server and goes to the port RFC 2131 §4.1 says, the
//! BOOTP header copies the request's identity fields, the options are
//! well-formed with the message type first and the echoed client id and
//! relay information intact, and the load generator's independent reply
//! parser reads the same message type, xid and addresses from it.

use std::net::Ipv4Addr;

use irondhcp_bench::loadgen::reply::{self as lg, Parsed};
use irondhcp_fastpath::channel::{AllocDecision, ClientKey};
use irondhcp_fastpath::config::FastConfig;
use irondhcp_fastpath::counters::WorkerCounters;
use irondhcp_fastpath::handler::{build_decision_reply, handle, HandlerCtx, Verdict};
use irondhcp_fastpath::lease_map::{LeaseMap, LeaseView};
use irondhcp_fastpath::wire::{parse_dhcp, parse_frame, DhcpMessage, FrameInfo};

use super::wire_support::{
    checksums_ok, config, leased, populated_lease_map, LOCAL, NOW, SERVER_IP, SERVER_MAC,
};

/// The TX buffer a worker hands the handler: one UMEM frame (the default
/// 2048-byte frame size of `fastpath::xsk`).
pub const TX_BUF: usize = 2048;

/// An address in the local pool that the fixture map leaves free, and one
/// outside every configured subnet (the control plane never decides such
/// an address, but the reply code must not trust that it does not).
const FREE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 160);
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 5);
/// A client of the local subnet whose lease is near the promise bound.
pub const NEAR_BOUND_MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x66];
pub const NEAR_BOUND_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 154);

/// The configurations and the lease map every input runs against.
struct World {
    authoritative: FastConfig,
    not_authoritative: FastConfig,
    leases: LeaseMap,
    /// What `leases` holds, to check that no input changed it.
    snapshot: Vec<(Ipv4Addr, LeaseView)>,
}

impl World {
    fn new() -> World {
        let leases = populated_lease_map();
        // A valid lease whose durable expiry lags so far behind that a
        // renewal from memory may not promise half a lease: the request
        // must take the durable path (the promise bound of
        // docs/decisions.md), which the fixture map alone never reaches.
        let near_bound = LeaseView {
            durable: NOW - 100,
            ..leased(
                ClientKey::from_hw(1, &NEAR_BOUND_MAC).hash(LOCAL.0),
                NOW + 1000,
            )
        };
        if let Err(e) = leases.set(NEAR_BOUND_ADDR, near_bound) {
            panic!("the fixture map covers {NEAR_BOUND_ADDR}: {e}");
        }
        let snapshot = Self::contents(&leases);
        World {
            authoritative: config(true),
            not_authoritative: config(false),
            leases,
            snapshot,
        }
    }

    fn contents(leases: &LeaseMap) -> Vec<(Ipv4Addr, LeaseView)> {
        let mut v = Vec::new();
        leases.for_each(|a, l| v.push((a, l)));
        v
    }
}

thread_local! {
    static WORLD: World = World::new();
}

/// Runs one input; panics on a finding.
pub fn run(frame: &[u8]) {
    WORLD.with(|w| {
        let counters = WorkerCounters::default();
        let mut tx = [0u8; TX_BUF];
        for cfg in [&w.authoritative, &w.not_authoritative] {
            let ctx = HandlerCtx {
                cfg,
                leases: &w.leases,
                counters: &counters,
            };
            answer(&ctx, frame, &mut tx);
        }
        // Workers only read the map; the control plane writes it after the
        // commit (docs/architecture.md). That is also what lets one map
        // serve every input and keeps each finding reproducible alone.
        // (The count and the leases present: cheaper than a walk of every
        // slot, and any write changes one or the other.)
        assert!(
            w.leases.len() == w.snapshot.len()
                && w.snapshot.iter().all(|(a, l)| w.leases.get(*a) == Some(*l)),
            "the handler wrote the lease map"
        );
    });
}

/// One frame through `handle`, and through `build_decision_reply` with each
/// kind of decision when the handler hands it to the control plane.
fn answer(ctx: &HandlerCtx, frame: &[u8], tx: &mut [u8; TX_BUF]) {
    // A stale byte pattern, so that a reply relying on a zeroed buffer
    // shows up as malformed.
    tx.fill(0xa5);
    match handle(ctx, frame, NOW, tx) {
        Verdict::Reply { len, msg_type, .. } => check_reply(frame, tx, len, msg_type),
        Verdict::Control(meta) => {
            let asked = meta.requested.unwrap_or(FREE);
            let decisions = [
                AllocDecision::Offer {
                    addr: asked,
                    lease_secs: 3600,
                },
                AllocDecision::Ack {
                    addr: asked,
                    lease_secs: u32::MAX,
                },
                AllocDecision::Offer {
                    addr: OUTSIDE,
                    lease_secs: 0,
                },
                AllocDecision::Ack {
                    addr: OUTSIDE,
                    lease_secs: 60,
                },
                AllocDecision::Nak,
                AllocDecision::Ignore,
            ];
            for decision in decisions {
                tx.fill(0xa5);
                let ignore = matches!(decision, AllocDecision::Ignore);
                if let Ok((len, msg_type)) = build_decision_reply(ctx, frame, decision, tx) {
                    assert!(!ignore, "an Ignore decision produced a reply");
                    check_reply(frame, tx, len, msg_type);
                }
            }
        }
        Verdict::Event(_) | Verdict::Drop(_) => {}
    }
}

/// The request as the fast path's own parser reads it (it was answered,
/// so it parses).
fn request(frame: &[u8]) -> (FrameInfo, DhcpMessage<'_>) {
    let fi = parse_frame(frame).expect("an answered request parses");
    let payload = fi
        .payload(frame)
        .expect("an answered request has a payload");
    (fi, parse_dhcp(payload).expect("an answered request parses"))
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

/// Asserts everything a reply frame must satisfy, whatever the request.
pub fn check_reply(req_frame: &[u8], tx: &[u8], len: usize, msg_type: u8) {
    const OFFER: u8 = 2;
    const ACK: u8 = 5;
    const NAK: u8 = 6;
    assert!(
        matches!(msg_type, OFFER | ACK | NAK),
        "reply of message type {msg_type}"
    );
    assert!(
        len <= tx.len(),
        "reply of {len} bytes in a {} buffer",
        tx.len()
    );
    let f = &tx[..len];
    assert!(
        checksums_ok(f),
        "reply lengths or checksums wrong: {f:02x?}"
    );

    let (fi, req) = request(req_frame);
    let l2 = if fi.vlan_tci.is_some() { 18 } else { 14 };
    if let Some(tci) = fi.vlan_tci {
        assert_eq!(
            &f[12..16],
            &[0x81, 0x00, (tci >> 8) as u8, tci as u8],
            "VLAN tag"
        );
    } else {
        assert_eq!(&f[12..14], &[0x08, 0x00], "untagged ethertype");
    }
    assert_eq!(f[6..12], SERVER_MAC, "Ethernet source");

    // Size: within 576 bytes of IP datagram unless option 57 allows more,
    // never above a 1500-byte MTU (RFC 2131 §2, RFC 2132 §9.10).
    let ip = &f[l2..];
    let ip_len = be16(ip, 2);
    let allowed = match req.opts.max_message_size.map(usize::from) {
        Some(m) if m >= 576 => m.min(1500),
        _ => 576,
    };
    assert!(
        ip_len <= allowed,
        "IP datagram of {ip_len} bytes, client accepts {allowed}"
    );
    assert_eq!(ip[12..16], SERVER_IP.octets(), "IP source");

    // Ports: to a relay on 67, to a client on 68 (RFC 2131 §4.1).
    let udp = &ip[20..];
    let dst_port = be16(udp, 2);
    assert_eq!(be16(udp, 0), 67, "UDP source port");
    let relayed = !req.giaddr.is_unspecified();
    assert_eq!(
        dst_port,
        if relayed { 67 } else { 68 },
        "UDP destination port"
    );
    if relayed {
        assert_eq!(
            ip[16..20],
            req.giaddr.octets(),
            "a relayed reply goes to giaddr"
        );
    }

    // BOOTP header: a reply to this request.
    let b = &udp[8..];
    assert!(b.len() >= 300, "BOOTP message of {} bytes", b.len());
    assert_eq!(b[0], 2, "op BOOTREPLY");
    assert_eq!((b[1], b[2]), (req.htype, req.hlen), "htype/hlen echoed");
    assert_eq!(b[4..8], req.xid.to_be_bytes(), "xid echoed");
    assert_eq!(b[24..28], req.giaddr.octets(), "giaddr echoed");
    assert_eq!(b[28..44], req.chaddr, "chaddr echoed");
    assert_eq!(b[236..240], [99, 130, 83, 99], "magic cookie");
    if msg_type == NAK {
        assert_eq!(b[16..20], [0; 4], "a NAK has no yiaddr");
    }

    // Options: well-formed, each code once, 53 first, 82 last, END present.
    let mut at = 240;
    let mut seen = [false; 256];
    let mut order: Vec<(u8, &[u8])> = Vec::new();
    loop {
        let code = *b.get(at).expect("options run past the message without END");
        if code == 255 {
            break;
        }
        assert_ne!(code, 0, "PAD inside the options");
        let l = usize::from(*b.get(at + 1).expect("option length past the end"));
        let value = b
            .get(at + 2..at + 2 + l)
            .expect("option value past the end");
        assert!(!seen[usize::from(code)], "option {code} sent twice");
        seen[usize::from(code)] = true;
        order.push((code, value));
        at += 2 + l;
    }
    assert_eq!(
        order.first().copied(),
        Some((53, &[msg_type][..])),
        "option 53 first"
    );
    let opt = |c: u8| order.iter().find(|(k, _)| *k == c).map(|(_, v)| *v);
    assert_eq!(opt(54), Some(&SERVER_IP.octets()[..]), "server identifier");
    if msg_type == NAK {
        assert_eq!(opt(51), None, "a NAK carries no lease time");
    }
    if let Some(id) = req.opts.client_id {
        assert_eq!(opt(61), Some(id), "client identifier echoed (RFC 6842)");
    }
    if let Some(rai) = req.opts.relay_agent_info {
        assert_eq!(
            order.last().copied(),
            Some((82, rai)),
            "option 82 echoed last"
        );
    }

    // The load generator's parser (written independently) agrees.
    if req.htype == 1 && req.hlen == 6 {
        let Parsed::Reply(r) = lg::parse(f, dst_port as u16) else {
            panic!("the load generator cannot read the reply {f:02x?}");
        };
        assert_eq!(r.msg_type, msg_type, "loadgen: message type");
        assert_eq!(r.xid, req.xid, "loadgen: xid");
        assert_eq!(r.yiaddr[..], b[16..20], "loadgen: yiaddr");
        assert_eq!(r.chaddr, req.mac(), "loadgen: chaddr");
        assert_eq!(r.server_id, SERVER_IP.octets(), "loadgen: server id");
        assert_eq!(r.src_mac, SERVER_MAC, "loadgen: source MAC");
    }
}
