//! Table-driven tests of the DHCP handler (katran style): each fixture is a
//! request frame (encoded by `dhcproto`, wrapped in Ethernet/IPv4/UDP by the
//! test), a lease-map state and the expected verdict. Every reply is decoded
//! by `dhcproto` after its IPv4 and UDP checksums are verified, and checked
//! for message type, addresses, destination and the exact option order.

use irondhcp_testkit::fixtures as wire_support;

use std::net::Ipv4Addr;

use dhcproto::v4::{self, DhcpOption as O, MessageType as T};
use irondhcp_fastpath::channel::{AllocDecision, AllocKind, ClientKey, FastEvent};
use irondhcp_fastpath::counters::{DropReason, WorkerCounters};
use irondhcp_fastpath::handler::{build_decision_reply, handle, HandlerCtx, Verdict};
use irondhcp_fastpath::lease_map::LeaseView;
use wire_support::*;

const OFFER: u8 = 2;
const ACK: u8 = 5;
const NAK: u8 = 6;

/// Addresses used by the fixtures.
const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 150);
const R1: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 150);
const L1: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 150);
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 5);
const INFORMER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);
const Z: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
const CLIENT_ID: [u8; 5] = [0xff, 0, 0, 0, 7];
const OTHER_KEY: u64 = 0x0123_4567_89ab_cdef;

const OFFER_OPTS: [u8; 7] = [53, 54, 51, 58, 59, 1, 3];
const NAK_OPTS: [u8; 3] = [53, 54, 56];

/// Where a reply must go: Ethernet destination, IP destination, UDP port.
type Dst = ([u8; 6], Ipv4Addr, u16);
const TO_BROADCAST: Dst = (BCAST_MAC, Ipv4Addr::BROADCAST, 68);
const TO_RELAY: Dst = (RELAY_MAC, RELAY_IP, 67);

struct ReplyExp {
    t: u8,
    yiaddr: Ipv4Addr,
    ciaddr: Ipv4Addr,
    dst: Dst,
    codes: Vec<u8>,
    lease: Option<u32>,
    event: Option<FastEvent>,
    broadcast_flag: Option<bool>,
}

fn reply(t: u8, yiaddr: Ipv4Addr, dst: Dst, codes: &[u8]) -> Expect {
    Expect::Reply(ReplyExp {
        t,
        yiaddr,
        ciaddr: Z,
        dst,
        codes: codes.to_vec(),
        lease: None,
        event: None,
        broadcast_flag: None,
    })
}

fn nak(dst: Dst) -> Expect {
    reply(NAK, Z, dst, &NAK_OPTS)
}

impl Expect {
    fn lease(mut self, l: u32) -> Self {
        if let Expect::Reply(r) = &mut self {
            r.lease = Some(l);
        }
        self
    }
    fn ciaddr(mut self, c: Ipv4Addr) -> Self {
        if let Expect::Reply(r) = &mut self {
            r.ciaddr = c;
        }
        self
    }
    fn renewed(mut self, subnet: u16, addr: Ipv4Addr, key_hash: u64, lease: u32) -> Self {
        if let Expect::Reply(r) = &mut self {
            r.event = Some(FastEvent::Renewed {
                subnet,
                addr,
                key_hash,
                expiry: NOW + u64::from(lease),
            });
        }
        self
    }
    fn broadcast_flag(mut self, b: bool) -> Self {
        if let Expect::Reply(r) = &mut self {
            r.broadcast_flag = Some(b);
        }
        self
    }
}

enum Expect {
    Reply(ReplyExp),
    Control {
        kind: AllocKind,
        subnet: u16,
        requested: Option<Ipv4Addr>,
    },
    Event(FastEvent),
    Drop(DropReason),
}

fn control(kind: AllocKind, subnet: u16, requested: Option<Ipv4Addr>) -> Expect {
    Expect::Control {
        kind,
        subnet,
        requested,
    }
}

struct Case {
    name: &'static str,
    msg: v4::Message,
    path: Path,
    leases: Vec<(Ipv4Addr, LeaseView)>,
    authoritative: bool,
    shared_store: bool,
    expect: Expect,
}

fn case(name: &'static str, msg: v4::Message, path: Path, expect: Expect) -> Case {
    Case {
        name,
        msg,
        path,
        leases: Vec::new(),
        authoritative: true,
        shared_store: false,
        expect,
    }
}

impl Case {
    fn lease(mut self, addr: Ipv4Addr, v: LeaseView) -> Self {
        self.leases.push((addr, v));
        self
    }
    fn not_authoritative(mut self) -> Self {
        self.authoritative = false;
        self
    }
    fn shared_store(mut self) -> Self {
        self.shared_store = true;
        self
    }
}

fn no_bcast(mut m: v4::Message) -> v4::Message {
    m.set_flags(v4::Flags::default());
    m
}

fn ci(mut m: v4::Message, ciaddr: Ipv4Addr) -> v4::Message {
    m.set_ciaddr(ciaddr);
    m
}

fn gi(mut m: v4::Message, giaddr: Ipv4Addr) -> v4::Message {
    m.set_giaddr(giaddr);
    m
}

fn fixtures() -> Vec<Case> {
    let hw = hw_key(LOCAL.0);
    let hw_relayed = hw_key(RELAYED.0);
    let valid = leased(hw, NOW + 1800);
    let discover = || msg(T::Discover);
    let request = || msg(T::Request);
    let selecting = |sid| {
        with(
            with(request(), O::ServerIdentifier(sid)),
            O::RequestedIpAddress(A),
        )
    };
    let init_reboot = |addr| with(request(), O::RequestedIpAddress(addr));
    let renewing = |addr| no_bcast(ci(request(), addr));
    let release = |sid, addr| no_bcast(ci(with(msg(T::Release), O::ServerIdentifier(sid)), addr));
    let decline = |addr| {
        with(
            with(msg(T::Decline), O::ServerIdentifier(SERVER_IP)),
            O::RequestedIpAddress(addr),
        )
    };
    let relayed_discover = || gi(with(discover(), relay_info(None)), RELAY_IP);
    let offer_base = OFFER_OPTS.to_vec();
    let with_tail = |tail: &[u8]| [&OFFER_OPTS[..], tail].concat();

    vec![
        // DISCOVER
        case(
            "discover new client → control",
            discover(),
            Path::broadcast(),
            control(AllocKind::Discover, 0, None),
        ),
        case(
            "discover new client with option 50 → control carries it",
            with(discover(), O::RequestedIpAddress(A)),
            Path::broadcast(),
            control(AllocKind::Discover, 0, Some(A)),
        ),
        case(
            "discover known client → offer from map, broadcast",
            discover(),
            Path::broadcast(),
            reply(OFFER, A, TO_BROADCAST, &offer_base).lease(3600),
        )
        .lease(A, valid),
        case(
            "discover known client, no broadcast flag → unicast to chaddr",
            no_bcast(discover()),
            Path::broadcast(),
            reply(OFFER, A, (CLIENT_MAC, A, 68), &offer_base).lease(3600),
        )
        .lease(A, valid),
        case(
            "discover, lease expired but held → offer",
            discover(),
            Path::broadcast(),
            reply(OFFER, A, TO_BROADCAST, &offer_base).lease(3600),
        )
        .lease(A, leased(hw, NOW - 10)),
        case(
            "discover, client declined its address → control",
            discover(),
            Path::broadcast(),
            control(AllocKind::Discover, 0, None),
        )
        .lease(A, declined(hw)),
        case(
            "discover known client, another client holds nothing of ours → control",
            discover(),
            Path::broadcast(),
            control(AllocKind::Discover, 0, None),
        )
        .lease(A, leased(OTHER_KEY, NOW + 1800)),
        // REQUEST, SELECTING
        case(
            "request selecting ours, new → control",
            selecting(SERVER_IP),
            Path::broadcast(),
            control(AllocKind::Request, 0, Some(A)),
        ),
        case(
            "request selecting ours, retransmit of a committed lease → ACK from map",
            selecting(SERVER_IP),
            Path::broadcast(),
            reply(ACK, A, TO_BROADCAST, &offer_base)
                .lease(3600)
                .renewed(0, A, hw, 3600),
        )
        .lease(A, valid),
        case(
            "request selecting ours, lease expired → control",
            selecting(SERVER_IP),
            Path::broadcast(),
            control(AllocKind::Request, 0, Some(A)),
        )
        .lease(A, leased(hw, NOW - 1)),
        case(
            "request selecting another server → drop",
            selecting(OTHER_SERVER),
            Path::broadcast(),
            Expect::Drop(DropReason::NotForUs),
        )
        .lease(A, valid),
        case(
            "request selecting without option 50 → drop",
            with(request(), O::ServerIdentifier(SERVER_IP)),
            Path::broadcast(),
            Expect::Drop(DropReason::BadDhcp),
        ),
        // REQUEST, INIT-REBOOT
        case(
            "init-reboot, own lease → ACK + renewal",
            init_reboot(A),
            Path::broadcast(),
            reply(ACK, A, TO_BROADCAST, &offer_base)
                .lease(3600)
                .renewed(0, A, hw, 3600),
        )
        .lease(A, valid),
        case(
            "init-reboot, own lease, no broadcast flag → unicast to chaddr",
            no_bcast(init_reboot(A)),
            Path::broadcast(),
            reply(ACK, A, (CLIENT_MAC, A, 68), &offer_base)
                .lease(3600)
                .renewed(0, A, hw, 3600),
        )
        .lease(A, valid),
        case(
            "init-reboot, own lease expired → control (renew only)",
            init_reboot(A),
            Path::broadcast(),
            control(AllocKind::Renew, 0, Some(A)),
        )
        .lease(A, leased(hw, NOW - 1)),
        case(
            "init-reboot, another client's lease → NAK",
            init_reboot(A),
            Path::broadcast(),
            nak(TO_BROADCAST),
        )
        .lease(A, leased(OTHER_KEY, NOW + 1800)),
        case(
            "init-reboot, declined address → NAK",
            init_reboot(A),
            Path::broadcast(),
            nak(TO_BROADCAST),
        )
        .lease(A, declined(OTHER_KEY)),
        case(
            "init-reboot, unknown, authoritative → NAK",
            init_reboot(A),
            Path::broadcast(),
            nak(TO_BROADCAST),
        ),
        case(
            "init-reboot, unknown, shared store → control (looked up)",
            init_reboot(A),
            Path::broadcast(),
            control(AllocKind::Renew, 0, Some(A)),
        )
        .shared_store(),
        case(
            "init-reboot, unknown, not authoritative → silent",
            init_reboot(A),
            Path::broadcast(),
            Expect::Drop(DropReason::Silent),
        )
        .not_authoritative(),
        case(
            "init-reboot, wrong network, authoritative → NAK",
            init_reboot(OUTSIDE),
            Path::broadcast(),
            nak(TO_BROADCAST),
        ),
        case(
            "init-reboot, wrong network, not authoritative → silent",
            init_reboot(OUTSIDE),
            Path::broadcast(),
            Expect::Drop(DropReason::Silent),
        )
        .not_authoritative(),
        case(
            "init-reboot via relay, unknown → NAK to the relay with the broadcast bit",
            no_bcast(gi(init_reboot(Ipv4Addr::new(10, 1, 0, 199)), RELAY_IP)),
            Path::relayed(),
            nak(TO_RELAY).broadcast_flag(true),
        ),
        // REQUEST, RENEWING / REBINDING
        case(
            "renewing, own lease → ACK unicast to ciaddr",
            renewing(A),
            Path::unicast(A, CLIENT_MAC),
            reply(ACK, A, (CLIENT_MAC, A, 68), &offer_base)
                .ciaddr(A)
                .lease(3600)
                .renewed(0, A, hw, 3600),
        )
        .lease(A, valid),
        case(
            "renewing, another client's lease → NAK broadcast",
            renewing(A),
            Path::unicast(A, CLIENT_MAC),
            nak(TO_BROADCAST),
        )
        .lease(A, leased(OTHER_KEY, NOW + 1800)),
        case(
            "renewing, unknown lease → control (renew only) with ciaddr",
            renewing(A),
            Path::unicast(A, CLIENT_MAC),
            control(AllocKind::Renew, 0, Some(A)),
        ),
        case(
            "renewing, own lease expired → control (renew only)",
            renewing(A),
            Path::unicast(A, CLIENT_MAC),
            control(AllocKind::Renew, 0, Some(A)),
        )
        .lease(A, leased(hw, NOW - 1)),
        // The promise bound: at most durable + MCLT (1800 s here).
        case(
            "renewing, bound leaves 1900 s → ACK shortened to 1900",
            renewing(A),
            Path::unicast(A, CLIENT_MAC),
            reply(ACK, A, (CLIENT_MAC, A, 68), &offer_base)
                .ciaddr(A)
                .lease(1900)
                .renewed(0, A, hw, 1900),
        )
        .lease(A, leased(hw, NOW + 100)),
        case(
            "renewing, bound leaves less than half a lease → control (durable renewal)",
            renewing(A),
            Path::unicast(A, CLIENT_MAC),
            control(AllocKind::Renew, 0, Some(A)),
        )
        .lease(
            A,
            LeaseView {
                durable: NOW - 100,
                ..leased(hw, NOW + 500)
            },
        ),
        case(
            "renewing with our option 54 (a client bug) → ACK",
            with(renewing(A), O::ServerIdentifier(SERVER_IP)),
            Path::unicast(A, CLIENT_MAC),
            reply(ACK, A, (CLIENT_MAC, A, 68), &offer_base)
                .ciaddr(A)
                .lease(3600)
                .renewed(0, A, hw, 3600),
        )
        .lease(A, valid),
        case(
            "renewing with another server's option 54 → drop",
            with(renewing(A), O::ServerIdentifier(OTHER_SERVER)),
            Path::unicast(A, CLIENT_MAC),
            Expect::Drop(DropReason::NotForUs),
        )
        .lease(A, valid),
        case(
            "rebinding, own lease → ACK to ciaddr",
            ci(request(), A),
            Path::broadcast_from(A),
            reply(ACK, A, (CLIENT_MAC, A, 68), &offer_base)
                .ciaddr(A)
                .lease(3600)
                .renewed(0, A, hw, 3600),
        )
        .lease(A, valid),
        case(
            "rebinding, another client's lease → NAK",
            ci(request(), A),
            Path::broadcast_from(A),
            nak(TO_BROADCAST),
        )
        .lease(A, leased(OTHER_KEY, NOW + 1800)),
        case(
            "rebinding, unknown lease → control (renew only)",
            ci(request(), A),
            Path::broadcast_from(A),
            control(AllocKind::Renew, 0, Some(A)),
        ),
        case(
            "rebinding with an address of another subnet, not authoritative → silent",
            ci(request(), R1),
            Path::broadcast_from(R1),
            Expect::Drop(DropReason::Silent),
        )
        .lease(R1, leased(hw_relayed, NOW + 1800))
        .not_authoritative(),
        case(
            "rebinding on the local link with an address of another subnet → NAK",
            ci(request(), R1),
            Path::broadcast_from(R1),
            nak(TO_BROADCAST),
        )
        .lease(R1, leased(hw_relayed, NOW + 1800)),
        case(
            "renewing through a router, subnet chosen by ciaddr → ACK via the router's MAC",
            renewing(R1),
            Path::unicast(R1, ROUTER_MAC),
            reply(ACK, R1, (ROUTER_MAC, R1, 68), &offer_base)
                .ciaddr(R1)
                .lease(7200)
                .renewed(1, R1, hw_relayed, 7200),
        )
        .lease(R1, leased(hw_relayed, NOW + 3600)),
        // RELEASE / DECLINE
        case(
            "release own lease → event",
            release(SERVER_IP, A),
            Path::unicast(A, CLIENT_MAC),
            Expect::Event(FastEvent::Released {
                subnet: 0,
                addr: A,
                key_hash: hw,
            }),
        )
        .lease(A, valid),
        case(
            "release with a forged chaddr (Ethernet source is another host) → drop",
            release(SERVER_IP, A),
            Path {
                src_mac: [0x02, 0x66, 0x66, 0x66, 0x66, 0x66],
                src_ip: Ipv4Addr::new(10, 0, 0, 66),
                ..Path::unicast(A, CLIENT_MAC)
            },
            Expect::Drop(DropReason::NotFromClient),
        )
        .lease(A, valid),
        case(
            "release routed by a router, IP source is the address → event",
            release(SERVER_IP, A),
            Path::unicast(A, ROUTER_MAC),
            Expect::Event(FastEvent::Released {
                subnet: 0,
                addr: A,
                key_hash: hw,
            }),
        )
        .lease(A, valid),
        case(
            "decline with a forged chaddr → drop",
            decline(A),
            Path {
                src_mac: [0x02, 0x66, 0x66, 0x66, 0x66, 0x66],
                ..Path::broadcast()
            },
            Expect::Drop(DropReason::NotFromClient),
        )
        .lease(A, valid),
        case(
            "release to another server → drop",
            release(OTHER_SERVER, A),
            Path::unicast(A, CLIENT_MAC),
            Expect::Drop(DropReason::NotForUs),
        )
        .lease(A, valid),
        case(
            "release of another client's lease → silent",
            release(SERVER_IP, A),
            Path::unicast(A, CLIENT_MAC),
            Expect::Drop(DropReason::Silent),
        )
        .lease(A, leased(OTHER_KEY, NOW + 1800)),
        case(
            "release of an unknown lease → silent",
            release(SERVER_IP, A),
            Path::unicast(A, CLIENT_MAC),
            Expect::Drop(DropReason::Silent),
        ),
        case(
            "decline own lease → event",
            decline(A),
            Path::broadcast(),
            Expect::Event(FastEvent::Declined {
                subnet: 0,
                addr: A,
                key_hash: hw,
            }),
        )
        .lease(A, valid),
        case(
            "decline of another client's lease → silent",
            decline(A),
            Path::broadcast(),
            Expect::Drop(DropReason::Silent),
        )
        .lease(A, leased(OTHER_KEY, NOW + 1800)),
        // INFORM
        case(
            "inform → ACK to ciaddr, yiaddr 0, no lease options",
            no_bcast(ci(with(msg(T::Inform), prl(&[6, 15, 51])), INFORMER)),
            Path::unicast(INFORMER, CLIENT_MAC),
            reply(ACK, Z, (CLIENT_MAC, INFORMER, 68), &[53, 54, 1, 3, 6, 15]).ciaddr(INFORMER),
        ),
        case(
            "inform relayed → ACK to the relay",
            gi(ci(msg(T::Inform), Ipv4Addr::new(10, 1, 0, 50)), RELAY_IP),
            Path::relayed(),
            reply(ACK, Z, TO_RELAY, &[53, 54, 1, 3]).ciaddr(Ipv4Addr::new(10, 1, 0, 50)),
        ),
        // Relays, link selection, subnet selection
        case(
            "relayed discover, new → control in the relay's subnet",
            relayed_discover(),
            Path::relayed(),
            control(AllocKind::Discover, 1, None),
        ),
        case(
            "relayed discover, known → offer to the relay on port 67, 82 echoed last",
            with(relayed_discover(), prl(&[6])),
            Path::relayed(),
            reply(OFFER, R1, TO_RELAY, &with_tail(&[6, 82])).lease(7200),
        )
        .lease(R1, leased(hw_relayed, NOW + 1800)),
        case(
            "link selection overrides giaddr",
            gi(
                with(discover(), relay_info(Some(Ipv4Addr::new(10, 2, 0, 0)))),
                RELAY_IP,
            ),
            Path::relayed(),
            control(AllocKind::Discover, 2, None),
        ),
        case(
            "link selection, known → offer from the selected subnet",
            gi(
                with(discover(), relay_info(Some(Ipv4Addr::new(10, 2, 0, 0)))),
                RELAY_IP,
            ),
            Path::relayed(),
            reply(OFFER, L1, TO_RELAY, &with_tail(&[82])).lease(1800),
        )
        .lease(L1, leased(hw_key(LINKSEL.0), NOW + 1800)),
        case(
            "link selection outside every subnet → drop",
            gi(
                with(discover(), relay_info(Some(Ipv4Addr::new(172, 16, 0, 0)))),
                RELAY_IP,
            ),
            Path::relayed(),
            Expect::Drop(DropReason::NoSubnet),
        ),
        case(
            "option 118 selects the subnet",
            with(discover(), O::SubnetSelection(Ipv4Addr::new(10, 2, 0, 0))),
            Path::broadcast(),
            control(AllocKind::Discover, 2, None),
        ),
        case(
            "relay from an unknown network → drop",
            gi(discover(), Ipv4Addr::new(192, 168, 7, 1)),
            Path::relayed(),
            Expect::Drop(DropReason::NoSubnet),
        ),
        // Framing, keys, options
        case(
            "VLAN-tagged discover → tagged reply",
            discover(),
            Path::broadcast().vlan(0x2064),
            reply(OFFER, A, TO_BROADCAST, &offer_base).lease(3600),
        )
        .lease(A, valid),
        case(
            "client id is the key and is echoed",
            with(discover(), O::ClientIdentifier(CLIENT_ID.to_vec())),
            Path::broadcast(),
            reply(OFFER, A, TO_BROADCAST, &with_tail(&[61])).lease(3600),
        )
        .lease(A, leased(id_key(&CLIENT_ID, LOCAL.0), NOW + 1800)),
        case(
            "client id, MAC-keyed lease is not this client → control",
            with(discover(), O::ClientIdentifier(CLIENT_ID.to_vec())),
            Path::broadcast(),
            control(AllocKind::Discover, 0, None),
        )
        .lease(A, valid),
        case(
            "client id and relay info → 61 then 82 last",
            with(
                with(relayed_discover(), O::ClientIdentifier(CLIENT_ID.to_vec())),
                prl(&[15]),
            ),
            Path::relayed(),
            reply(OFFER, R1, TO_RELAY, &with_tail(&[15, 61, 82])).lease(7200),
        )
        .lease(R1, leased(id_key(&CLIENT_ID, RELAYED.0), NOW + 1800)),
        case(
            "parameter request list in client order, reserved and unconfigured skipped",
            with(discover(), prl(&[42, 15, 3, 51, 82, 6, 1, 200, 54, 42])),
            Path::broadcast(),
            reply(OFFER, A, TO_BROADCAST, &with_tail(&[42, 15, 6])).lease(3600),
        )
        .lease(A, valid),
        // Messages a server never receives, and malformed requests
        case(
            "offer received → drop",
            msg(T::Offer),
            Path::broadcast(),
            Expect::Drop(DropReason::BadMessageType),
        ),
        case(
            "ack received → drop",
            msg(T::Ack),
            Path::broadcast(),
            Expect::Drop(DropReason::BadMessageType),
        ),
        case(
            "nak received → drop",
            msg(T::Nak),
            Path::broadcast(),
            Expect::Drop(DropReason::BadMessageType),
        ),
        case(
            "request with no 50, 54 or ciaddr → drop",
            request(),
            Path::broadcast(),
            Expect::Drop(DropReason::BadDhcp),
        ),
    ]
}

/// The client key the handler must derive from `m`.
fn expected_key(m: &v4::Message) -> ClientKey {
    match m.opts().get(v4::OptionCode::ClientIdentifier) {
        Some(O::ClientIdentifier(id)) => ClientKey::new(id),
        _ => ClientKey::from_hw(1, &CLIENT_MAC),
    }
}

fn msg_type_code(m: &v4::Message) -> u8 {
    u8::from(m.opts().msg_type().unwrap())
}

/// Checks a reply frame against the request it answers.
fn check_reply(name: &str, req: &v4::Message, path: &Path, f: &[u8], e: &ReplyExp) {
    let d = decode(f);
    let m = &d.msg;
    assert_eq!(m.opcode(), v4::Opcode::BootReply, "{name}: op");
    assert_eq!(m.xid(), XID, "{name}: xid");
    assert_eq!(m.chaddr(), req.chaddr(), "{name}: chaddr");
    assert_eq!(m.giaddr(), req.giaddr(), "{name}: giaddr");
    assert_eq!(m.siaddr(), Z, "{name}: siaddr");
    assert_eq!(m.yiaddr(), e.yiaddr, "{name}: yiaddr");
    assert_eq!(m.ciaddr(), e.ciaddr, "{name}: ciaddr");
    assert_eq!(msg_type_code(m), e.t, "{name}: message type");
    assert_eq!(d.eth_src, SERVER_MAC, "{name}: source MAC");
    assert_eq!((d.ip_src, d.udp_src), (SERVER_IP, 67), "{name}: source");
    assert_eq!(
        (d.eth_dst, d.ip_dst, d.udp_dst),
        e.dst,
        "{name}: destination"
    );
    assert_eq!(d.vlan, path.vlan, "{name}: VLAN tag");
    assert_eq!(d.codes, e.codes, "{name}: option order");
    assert_eq!(
        m.opts().get(v4::OptionCode::ServerIdentifier),
        Some(&O::ServerIdentifier(SERVER_IP)),
        "{name}: server id"
    );
    match e.lease {
        Some(l) => {
            assert_eq!(
                m.opts().get(v4::OptionCode::AddressLeaseTime),
                Some(&O::AddressLeaseTime(l)),
                "{name}: lease"
            );
            let (Some(O::Renewal(t1)), Some(O::Rebinding(t2))) = (
                m.opts().get(v4::OptionCode::Renewal),
                m.opts().get(v4::OptionCode::Rebinding),
            ) else {
                panic!("{name}: T1/T2 missing");
            };
            assert!(t1 < t2 && *t2 < l, "{name}: T1 {t1} < T2 {t2} < lease {l}");
        }
        None => assert!(!d.codes.contains(&51), "{name}: no lease time"),
    }
    for code in [61u8, 82] {
        if let Some((_, v)) = d.raw.iter().find(|(c, _)| *c == code) {
            assert_eq!(
                Some(v.clone()),
                encoded_option(req, code),
                "{name}: option {code} echoed verbatim"
            );
        }
    }
    if let Some(b) = e.broadcast_flag {
        assert_eq!(m.flags().broadcast(), b, "{name}: broadcast flag");
    }
}

#[test]
fn handler_fixtures() {
    let mut failures = Vec::new();
    for c in fixtures() {
        let mut cfg = config(c.authoritative);
        cfg.shared_store = c.shared_store;
        let leases = lease_map();
        for (addr, v) in &c.leases {
            leases.set(*addr, *v).unwrap();
        }
        let counters = WorkerCounters::default();
        let ctx = HandlerCtx {
            cfg: &cfg,
            leases: &leases,
            counters: &counters,
        };
        let f = frame(&c.msg, &c.path);
        let mut tx = [0u8; 2048];
        let v = handle(&ctx, &f, NOW, &mut tx);
        let t = msg_type_code(&c.msg);
        assert_eq!(
            counters.snapshot().received[usize::from(t)],
            1,
            "{}: received counter",
            c.name
        );
        let ok = match (&v, &c.expect) {
            (
                Verdict::Reply {
                    len,
                    msg_type,
                    event,
                },
                Expect::Reply(e),
            ) => {
                assert_eq!(*msg_type, e.t, "{}: verdict message type", c.name);
                assert_eq!(*event, e.event, "{}: event", c.name);
                check_reply(c.name, &c.msg, &c.path, &tx[..*len], e);
                true
            }
            (
                Verdict::Control(meta),
                Expect::Control {
                    kind,
                    subnet,
                    requested,
                },
            ) => {
                assert_eq!(meta.kind, *kind, "{}: kind", c.name);
                assert_eq!(meta.subnet, *subnet, "{}: subnet", c.name);
                assert_eq!(meta.requested, *requested, "{}: requested", c.name);
                assert_eq!(meta.hw_addr, CLIENT_MAC, "{}: hw_addr", c.name);
                assert_eq!(
                    meta.client_key,
                    expected_key(&c.msg),
                    "{}: client key",
                    c.name
                );
                true
            }
            (Verdict::Event(got), Expect::Event(want)) => got == want,
            (Verdict::Drop(got), Expect::Drop(want)) => got == want,
            _ => false,
        };
        if !ok {
            failures.push(format!("{}: got {v:?}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "fixtures failed:\n{}",
        failures.join("\n")
    );
}

/// Replies built from a control-plane decision share the handler's code.
#[test]
fn decision_replies() {
    let cfg = config(true);
    let leases = lease_map();
    let counters = WorkerCounters::default();
    let ctx = HandlerCtx {
        cfg: &cfg,
        leases: &leases,
        counters: &counters,
    };
    let mut tx = [0u8; 2048];

    // OFFER for a DISCOVER, with a lease shorter than the subnet's T1/T2.
    let disc = with(msg(T::Discover), prl(&[6]));
    let f = frame(&disc, &Path::broadcast());
    let offer = AllocDecision::Offer {
        addr: A,
        lease_secs: 600,
    };
    let (n, t) = build_decision_reply(&ctx, &f, offer, &mut tx).unwrap();
    assert_eq!(t, OFFER);
    let d = decode(&tx[..n]);
    assert_eq!(d.msg.yiaddr(), A);
    assert_eq!(d.codes, [53, 54, 51, 58, 59, 1, 3, 6]);
    assert_eq!(
        d.msg.opts().get(v4::OptionCode::AddressLeaseTime),
        Some(&O::AddressLeaseTime(600))
    );
    assert_eq!(
        d.msg.opts().get(v4::OptionCode::Renewal),
        Some(&O::Renewal(300))
    );
    assert_eq!(
        d.msg.opts().get(v4::OptionCode::Rebinding),
        Some(&O::Rebinding(525))
    );

    // ACK for a SELECTING REQUEST, relayed with option 82.
    let req = gi(
        with(
            with(
                with(msg(T::Request), O::ServerIdentifier(SERVER_IP)),
                O::RequestedIpAddress(R1),
            ),
            relay_info(None),
        ),
        RELAY_IP,
    );
    let f = frame(&req, &Path::relayed());
    let ack = AllocDecision::Ack {
        addr: R1,
        lease_secs: 7200,
    };
    let (n, t) = build_decision_reply(&ctx, &f, ack, &mut tx).unwrap();
    assert_eq!(t, ACK);
    let d = decode(&tx[..n]);
    assert_eq!(d.msg.yiaddr(), R1);
    assert_eq!((d.eth_dst, d.ip_dst, d.udp_dst), TO_RELAY);
    assert_eq!(d.codes, [53, 54, 51, 58, 59, 1, 3, 82]);
    assert_eq!(
        d.msg.opts().get(v4::OptionCode::Router),
        Some(&O::Router(vec![Ipv4Addr::new(10, 1, 0, 1)]))
    );

    // NAK, and Ignore.
    let (n, t) = build_decision_reply(&ctx, &f, AllocDecision::Nak, &mut tx).unwrap();
    assert_eq!(t, NAK);
    let d = decode(&tx[..n]);
    assert_eq!(d.codes, [53, 54, 56, 82]);
    assert_eq!(d.msg.yiaddr(), Z);
    assert!(d.msg.flags().broadcast());
    assert_eq!(
        build_decision_reply(&ctx, &f, AllocDecision::Ignore, &mut tx),
        Err(DropReason::Silent)
    );

    // A corrupt stored frame and a tiny buffer fail cleanly.
    assert_eq!(
        build_decision_reply(&ctx, &f[..40], ack, &mut tx),
        Err(DropReason::BadFrame)
    );
    assert_eq!(
        build_decision_reply(&ctx, &f, ack, &mut [0u8; 100]),
        Err(DropReason::ReplyTooLarge)
    );
}

/// A reply never exceeds the buffer, and a buffer too small for one is a
/// counted drop, not a panic.
#[test]
fn small_tx_buffers() {
    let cfg = config(true);
    let leases = lease_map();
    leases.set(A, leased(hw_key(LOCAL.0), NOW + 1800)).unwrap();
    let counters = WorkerCounters::default();
    let ctx = HandlerCtx {
        cfg: &cfg,
        leases: &leases,
        counters: &counters,
    };
    let f = frame(&msg(T::Discover), &Path::broadcast());
    let mut big = [0u8; 2048];
    let Verdict::Reply { len, .. } = handle(&ctx, &f, NOW, &mut big) else {
        panic!("expected an offer");
    };
    for n in 0..len {
        let mut tx = vec![0u8; n];
        assert!(
            matches!(
                handle(&ctx, &f, NOW, &mut tx),
                Verdict::Drop(DropReason::ReplyTooLarge)
            ),
            "tx {n}"
        );
    }
}
