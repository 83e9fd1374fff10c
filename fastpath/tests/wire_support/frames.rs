//! Request frames for tests and benches: a DHCP message encoded by
//! `dhcproto`, wrapped in Ethernet (optionally VLAN-tagged), IPv4 and UDP
//! headers with valid checksums, built independently of `fastpath::wire`.
//! Shared by fastpath's integration tests and bench's criterion benches
//! (`#[path]`-included), each of which defines the addresses it imports.

use std::net::Ipv4Addr;

use dhcproto::v4;
use dhcproto::{Encodable, Encoder};

use super::{BCAST_MAC, CLIENT_MAC, RELAY_IP, RELAY_MAC, SERVER_IP, SERVER_MAC};

/// How the request travels: link and network headers.
#[derive(Clone, Copy, Debug)]
pub struct Path {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub vlan: Option<u16>,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
}

impl Path {
    /// A client without an address broadcasting on the local link.
    pub fn broadcast() -> Path {
        Path {
            src_mac: CLIENT_MAC,
            dst_mac: BCAST_MAC,
            vlan: None,
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: 68,
        }
    }

    /// A client with `ciaddr` broadcasting (REBINDING).
    pub fn broadcast_from(ciaddr: Ipv4Addr) -> Path {
        Path {
            src_ip: ciaddr,
            ..Path::broadcast()
        }
    }

    /// A client with `ciaddr` unicasting to the server (RENEWING), through
    /// `via` (its own MAC on the local link, a router's otherwise).
    pub fn unicast(ciaddr: Ipv4Addr, via: [u8; 6]) -> Path {
        Path {
            src_mac: via,
            dst_mac: SERVER_MAC,
            vlan: None,
            src_ip: ciaddr,
            dst_ip: SERVER_IP,
            src_port: 68,
        }
    }

    /// Forwarded by the relay agent at `RELAY_IP`.
    pub fn relayed() -> Path {
        Path {
            src_mac: RELAY_MAC,
            dst_mac: SERVER_MAC,
            vlan: None,
            src_ip: RELAY_IP,
            dst_ip: SERVER_IP,
            src_port: 67,
        }
    }

    pub fn vlan(self, tci: u16) -> Path {
        Path {
            vlan: Some(tci),
            ..self
        }
    }
}

pub fn csum(data: &[u8], mut acc: u32) -> u32 {
    for (i, b) in data.iter().enumerate() {
        acc += if i % 2 == 0 {
            u32::from(*b) << 8
        } else {
            u32::from(*b)
        };
    }
    acc
}

pub fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

pub fn pseudo(src: &[u8], dst: &[u8], udp_len: usize) -> u32 {
    csum(dst, csum(src, 0)) + 17 + udp_len as u32
}

/// Encodes `m` and wraps it in Ethernet/IPv4/UDP headers along `p`.
pub fn frame(m: &v4::Message, p: &Path) -> Vec<u8> {
    let mut dhcp = Vec::new();
    m.encode(&mut Encoder::new(&mut dhcp)).unwrap();
    wrap(&dhcp, p)
}

/// Wraps a UDP payload in Ethernet/IPv4/UDP headers along `p`.
pub fn wrap(payload: &[u8], p: &Path) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 46);
    f.extend_from_slice(&p.dst_mac);
    f.extend_from_slice(&p.src_mac);
    if let Some(tci) = p.vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let ip = f.len();
    let udp_len = 8 + payload.len();
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&p.src_ip.octets());
    f.extend_from_slice(&p.dst_ip.octets());
    let c = !fold(csum(&f[ip..ip + 20], 0));
    f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
    let udp = f.len();
    f.extend_from_slice(&p.src_port.to_be_bytes());
    f.extend_from_slice(&67u16.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let c = !fold(csum(
        &f[udp..],
        pseudo(&p.src_ip.octets(), &p.dst_ip.octets(), udp_len),
    ));
    f[udp + 6..udp + 8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
    f
}

/// Whether a reply frame's lengths and IPv4/UDP checksums are consistent
/// (no assertion, for the fuzz loops).
pub fn checksums_ok(f: &[u8]) -> bool {
    let l3 = if f.get(12..14) == Some(&[0x81, 0x00][..]) {
        18
    } else {
        14
    };
    let Some(ip) = f.get(l3..) else { return false };
    if ip.len() < 28 || ip[0] != 0x45 || usize::from(u16::from_be_bytes([ip[2], ip[3]])) != ip.len()
    {
        return false;
    }
    let udp = &ip[20..];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    udp_len == udp.len()
        && fold(csum(&ip[..20], 0)) == 0xffff
        && udp[6..8] != [0, 0]
        && fold(csum(udp, pseudo(&ip[12..16], &ip[16..20], udp_len))) == 0xffff
}
