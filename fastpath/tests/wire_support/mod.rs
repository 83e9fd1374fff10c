//! Shared set-up for the handler tests: a three-subnet configuration, a
//! lease map, request frames built with `dhcproto`'s encoder inside a small
//! Ethernet/IPv4/UDP wrapper, and a reply decoder that checks both
//! checksums before handing the message to `dhcproto`.
//!
//! The wrapper is written here, independently of `irondhcp_fastpath::wire`,
//! so the tests do not check the code with itself.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use dhcproto::v4::{self, relay};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use irondhcp_fastpath::channel::ClientKey;
use irondhcp_fastpath::config::{opt, EncodedOptions, FastConfig, SubnetView};
use irondhcp_fastpath::lease_map::{LeaseMap, LeaseState, LeaseView};

mod frames;
pub use frames::*;

pub const NOW: u64 = 1_700_000_000;
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const OTHER_SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const SERVER_MAC: [u8; 6] = [0x02, 0x5e, 0x00, 0x00, 0x00, 0x01];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
pub const RELAY_MAC: [u8; 6] = [0x02, 0xee, 0xee, 0xee, 0xee, 0x01];
pub const ROUTER_MAC: [u8; 6] = [0x02, 0xcc, 0xcc, 0xcc, 0xcc, 0x01];
pub const BCAST_MAC: [u8; 6] = [0xff; 6];
pub const RELAY_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
pub const XID: u32 = 0x1234_5678;

/// Subnet ids (what key hashes use) and indexes (what the channel carries).
pub const LOCAL: (u32, u16) = (100, 0);
pub const RELAYED: (u32, u16) = (200, 1);
pub const LINKSEL: (u32, u16) = (300, 2);

pub fn subnet(id: u32, third: u8, lease: u32) -> SubnetView {
    let mut o = EncodedOptions::default();
    o.set(opt::SUBNET_MASK, &[255, 255, 255, 0], true).unwrap();
    o.set(opt::ROUTERS, &[10, third, 0, 1], true).unwrap();
    o.set(opt::DNS_SERVERS, &[10, 0, 0, 53, 10, 0, 0, 54], false)
        .unwrap();
    o.set(opt::DOMAIN_NAME, b"example.net", false).unwrap();
    o.set(42, &[10, 0, 0, 123], false).unwrap(); // NTP
    SubnetView {
        id,
        network: Ipv4Addr::new(10, third, 0, 0),
        prefix_len: 24,
        lease_time: lease,
        renew_time: lease / 2,
        rebind_time: lease / 8 * 7,
        mclt: lease / 2,
        options: o,
    }
}

pub fn config(authoritative: bool) -> FastConfig {
    FastConfig {
        server_ip: SERVER_IP,
        server_mac: SERVER_MAC,
        authoritative,
        subnets: vec![
            subnet(LOCAL.0, 0, 3600),
            subnet(RELAYED.0, 1, 7200),
            subnet(LINKSEL.0, 2, 1800),
        ],
        local_subnet: Some(0),
    }
}

pub fn lease_map() -> LeaseMap {
    LeaseMap::new(&[
        (Ipv4Addr::new(10, 0, 0, 100), 100),
        (Ipv4Addr::new(10, 1, 0, 100), 100),
        (Ipv4Addr::new(10, 2, 0, 100), 100),
    ])
    .unwrap()
}

/// The key hash of the test client identified by its MAC.
pub fn hw_key(subnet_id: u32) -> u64 {
    ClientKey::from_hw(1, &CLIENT_MAC).hash(subnet_id)
}

/// The key hash of a client identified by option 61.
pub fn id_key(id: &[u8], subnet_id: u32) -> u64 {
    ClientKey::new(id).hash(subnet_id)
}

pub fn leased(key_hash: u64, expiry: u64) -> LeaseView {
    LeaseView {
        key_hash,
        expiry,
        durable: expiry,
        state: LeaseState::Leased,
    }
}

pub fn declined(key_hash: u64) -> LeaseView {
    LeaseView {
        key_hash,
        expiry: NOW + 86_400,
        durable: NOW + 86_400,
        state: LeaseState::Declined,
    }
}

/// A request from the test client, broadcast flag set.
pub fn msg(t: v4::MessageType) -> v4::Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = v4::Message::new_with_id(XID, z, z, z, z, &CLIENT_MAC);
    m.set_flags(v4::Flags::default().set_broadcast());
    m.opts_mut().insert(v4::DhcpOption::MessageType(t));
    m
}

pub fn with(mut m: v4::Message, o: v4::DhcpOption) -> v4::Message {
    m.opts_mut().insert(o);
    m
}

pub fn prl(codes: &[u8]) -> v4::DhcpOption {
    v4::DhcpOption::ParameterRequestList(codes.iter().map(|&c| v4::OptionCode::from(c)).collect())
}

pub fn relay_info(link: Option<Ipv4Addr>) -> v4::DhcpOption {
    let mut info = relay::RelayAgentInformation::default();
    info.insert(relay::RelayInfo::AgentCircuitId(b"eth0/1/7".to_vec()));
    if let Some(l) = link {
        info.insert(relay::RelayInfo::LinkSelection(l));
    }
    v4::DhcpOption::RelayAgentInformation(info)
}

/// A reply frame taken apart.
#[derive(Debug)]
pub struct Decoded {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub vlan: Option<u16>,
    pub ip_src: Ipv4Addr,
    pub ip_dst: Ipv4Addr,
    pub udp_src: u16,
    pub udp_dst: u16,
    pub msg: v4::Message,
    /// The option codes in wire order (dhcproto keeps them in a map).
    pub codes: Vec<u8>,
    /// The raw value of each option, in wire order.
    pub raw: Vec<(u8, Vec<u8>)>,
}

/// Decodes a reply frame, asserting sane lengths and both checksums.
pub fn decode(f: &[u8]) -> Decoded {
    assert!(f.len() >= 14 + 20 + 8 + 300, "reply too short: {}", f.len());
    let mut l3 = 14;
    let mut vlan = None;
    if f[12..14] == [0x81, 0x00] {
        vlan = Some(u16::from_be_bytes([f[14], f[15]]));
        l3 = 18;
    }
    assert_eq!(&f[l3 - 2..l3], &[0x08, 0x00], "ethertype");
    let ip = &f[l3..];
    assert_eq!(ip[0], 0x45, "version/ihl");
    assert_eq!(
        usize::from(u16::from_be_bytes([ip[2], ip[3]])),
        ip.len(),
        "ip total length"
    );
    assert_eq!(ip[6] & 0x40, 0, "DF must be unset");
    assert_eq!(ip[8], 64, "ttl");
    assert_eq!(ip[9], 17, "protocol");
    assert_eq!(fold(csum(&ip[..20], 0)), 0xffff, "ipv4 header checksum");
    let udp = &ip[20..];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    assert_eq!(udp_len, udp.len(), "udp length");
    assert_ne!(&udp[6..8], &[0, 0], "udp checksum must be computed");
    assert_eq!(
        fold(csum(udp, pseudo(&ip[12..16], &ip[16..20], udp_len))),
        0xffff,
        "udp checksum"
    );
    let bootp = &udp[8..];
    let msg = v4::Message::decode(&mut Decoder::new(bootp)).expect("dhcproto decodes the reply");
    let mut raw = Vec::new();
    let mut at = 240;
    loop {
        match bootp[at] {
            255 => break,
            0 => at += 1,
            code => {
                let len = usize::from(bootp[at + 1]);
                raw.push((code, bootp[at + 2..at + 2 + len].to_vec()));
                at += 2 + len;
            }
        }
    }
    Decoded {
        eth_dst: f[0..6].try_into().unwrap(),
        eth_src: f[6..12].try_into().unwrap(),
        vlan,
        ip_src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        ip_dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        udp_src: u16::from_be_bytes([udp[0], udp[1]]),
        udp_dst: u16::from_be_bytes([udp[2], udp[3]]),
        msg,
        codes: raw.iter().map(|(c, _)| *c).collect(),
        raw,
    }
}

/// The raw value of option `code` in the encoded request `m`.
pub fn encoded_option(m: &v4::Message, code: u8) -> Option<Vec<u8>> {
    let mut b = Vec::new();
    m.encode(&mut Encoder::new(&mut b)).unwrap();
    let mut at = 240;
    while at < b.len() {
        match b[at] {
            255 => break,
            0 => at += 1,
            c => {
                let len = usize::from(b[at + 1]);
                if c == code {
                    return Some(b[at + 2..at + 2 + len].to_vec());
                }
                at += 2 + len;
            }
        }
    }
    None
}

/// Valid request frames of every message type and shape the handler
/// distinguishes, as seeds for mutation.
pub fn seed_frames() -> Vec<Vec<u8>> {
    use v4::{DhcpOption as O, MessageType as T};
    let a = Ipv4Addr::new(10, 0, 0, 150);
    let r1 = Ipv4Addr::new(10, 1, 0, 150);
    let fresh = Ipv4Addr::new(10, 0, 0, 170);
    let id = vec![0xff, 0, 0, 0, 7];
    let p = prl(&[1, 3, 6, 15, 42, 51, 82, 200]);
    let ci = |t, addr| {
        let mut m = msg(t);
        m.set_ciaddr(addr);
        m
    };
    let gi = |mut m: v4::Message| {
        m.set_giaddr(RELAY_IP);
        with(m, relay_info(Some(Ipv4Addr::new(10, 2, 0, 0))))
    };
    let frames: Vec<(v4::Message, Path)> = vec![
        (with(msg(T::Discover), p.clone()), Path::broadcast()),
        (
            with(
                with(msg(T::Discover), O::ClientIdentifier(id.clone())),
                p.clone(),
            ),
            Path::broadcast().vlan(7),
        ),
        (
            with(msg(T::Discover), O::MaxMessageSize(1500)),
            Path::broadcast(),
        ),
        (gi(msg(T::Discover)), Path::relayed()),
        (
            with(
                with(msg(T::Request), O::ServerIdentifier(SERVER_IP)),
                O::RequestedIpAddress(a),
            ),
            Path::broadcast(),
        ),
        (
            with(msg(T::Request), O::RequestedIpAddress(a)),
            Path::broadcast(),
        ),
        (
            gi(with(msg(T::Request), O::RequestedIpAddress(r1))),
            Path::relayed(),
        ),
        (ci(T::Request, a), Path::unicast(a, CLIENT_MAC)),
        (ci(T::Request, a), Path::broadcast_from(a)),
        (
            with(ci(T::Release, a), O::ServerIdentifier(SERVER_IP)),
            Path::unicast(a, CLIENT_MAC),
        ),
        (
            with(
                with(msg(T::Decline), O::RequestedIpAddress(a)),
                O::ServerIdentifier(SERVER_IP),
            ),
            Path::broadcast(),
        ),
        (
            with(ci(T::Inform, a), p.clone()),
            Path::unicast(a, CLIENT_MAC),
        ),
        (
            with(
                msg(T::Discover),
                O::SubnetSelection(Ipv4Addr::new(10, 2, 0, 0)),
            ),
            Path::broadcast(),
        ),
        // Clients the map does not know: these go to the control plane.
        (
            with(
                with(msg(T::Request), O::ServerIdentifier(SERVER_IP)),
                O::RequestedIpAddress(fresh),
            ),
            Path::broadcast(),
        ),
        (ci(T::Request, fresh), Path::unicast(fresh, CLIENT_MAC)),
        (
            with(msg(T::Discover), O::ClientIdentifier(vec![1, 2, 3])),
            Path::broadcast(),
        ),
    ];
    frames.iter().map(|(m, p)| frame(m, p)).collect()
}

/// A lease map with leases of the seed client (by MAC and by client id) in
/// every subnet, plus foreign, declined and expired slots.
pub fn populated_lease_map() -> LeaseMap {
    let map = lease_map();
    let id = [0xff, 0, 0, 0, 7];
    let sets = [
        (
            Ipv4Addr::new(10, 0, 0, 150),
            leased(hw_key(LOCAL.0), NOW + 1000),
        ),
        (
            Ipv4Addr::new(10, 0, 0, 151),
            leased(id_key(&id, LOCAL.0), NOW + 1000),
        ),
        (Ipv4Addr::new(10, 0, 0, 152), leased(0x1234, NOW + 1000)),
        (Ipv4Addr::new(10, 0, 0, 153), declined(0x5678)),
        (
            Ipv4Addr::new(10, 1, 0, 150),
            leased(hw_key(RELAYED.0), NOW - 5),
        ),
        (
            Ipv4Addr::new(10, 2, 0, 150),
            leased(hw_key(LINKSEL.0), NOW + 1000),
        ),
    ];
    for (a, v) in sets {
        map.set(a, v).unwrap();
    }
    map
}
