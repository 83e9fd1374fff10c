//! Shared set-up of the micro-benchmarks: request frames encoded by
//! `dhcproto` inside a small Ethernet/IPv4/UDP wrapper, a configuration and a
//! populated lease map. The approach (and most constants) follow
//! `fastpath/tests/wire_support`, which a bench crate cannot import; the
//! wrapper is written independently of `irondhcp_fastpath::wire` so a fixture
//! is not built by the code it measures.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::Criterion;
use dhcproto::v4::{self, relay};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use irondhcp_fastpath::channel::ClientKey;
use irondhcp_fastpath::config::{opt, EncodedOptions, FastConfig, SubnetView};
use irondhcp_fastpath::lease_map::{LeaseMap, LeaseState, LeaseView};

pub const NOW: u64 = 1_700_000_000;
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const SERVER_MAC: [u8; 6] = [0x02, 0x5e, 0x00, 0x00, 0x00, 0x01];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
pub const NEW_CLIENT_MAC: [u8; 6] = [0x02, 0x99, 0x88, 0x77, 0x66, 0x55];
pub const RELAY_MAC: [u8; 6] = [0x02, 0xee, 0xee, 0xee, 0xee, 0x01];
pub const BCAST_MAC: [u8; 6] = [0xff; 6];
pub const RELAY_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
pub const XID: u32 = 0x1234_5678;

/// The local subnet: 10.0.0.0/16, every address in the lease map.
pub const LOCAL_ID: u32 = 100;
pub const LOCAL_NET: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 0);
pub const LOCAL_ADDRS: u32 = 1 << 16;
/// A relayed subnet, 10.1.0.0/24 (not in the map: only parsed and selected).
pub const RELAYED_ID: u32 = 200;

/// The system allocator, counting allocations, so a fixture can assert that
/// the path it measures does not allocate.
pub struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Heap allocations (any thread) while `f` runs.
pub fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    f();
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

/// Keeps a routine's result alive and gives criterion `()`. Criterion 0.5
/// passes whatever a routine returns through its own `black_box`, a
/// `read_volatile` that copies a large value byte by byte: returning a
/// `Verdict` (~290 bytes) that way added ~30 ns to every handler iteration.
#[inline(always)]
pub fn sink<T>(value: T) {
    std::hint::black_box(&value);
}

/// Criterion settings of every bench: short runs and no plots (rendering
/// them took as long as measuring on a 2-core machine). Command-line flags
/// (`--measurement-time`, ...) still override them.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
        .without_plots()
}

fn subnet(id: u32, network: Ipv4Addr, prefix_len: u8, lease: u32) -> SubnetView {
    let o = network.octets();
    let mut opts = EncodedOptions::default();
    let mask = (u32::MAX << (32 - u32::from(prefix_len))).to_be_bytes();
    opts.set(opt::SUBNET_MASK, &mask, true).unwrap();
    opts.set(opt::ROUTERS, &[o[0], o[1], o[2], 1], true)
        .unwrap();
    opts.set(opt::DNS_SERVERS, &[10, 0, 0, 53, 10, 0, 0, 54], false)
        .unwrap();
    opts.set(opt::DOMAIN_NAME, b"example.net", false).unwrap();
    opts.set(42, &[10, 0, 0, 123], false).unwrap(); // NTP
    SubnetView {
        id,
        network,
        prefix_len,
        lease_time: lease,
        renew_time: lease / 2,
        rebind_time: lease / 8 * 7,
        options: opts,
    }
}

pub fn config() -> FastConfig {
    FastConfig {
        server_ip: SERVER_IP,
        server_mac: SERVER_MAC,
        authoritative: true,
        subnets: vec![
            subnet(LOCAL_ID, LOCAL_NET, 16, 3600),
            subnet(RELAYED_ID, Ipv4Addr::new(10, 1, 0, 0), 24, 7200),
        ],
        local_subnet: Some(0),
    }
}

pub fn leased(key_hash: u64, expiry: u64) -> LeaseView {
    LeaseView {
        key_hash,
        expiry,
        state: LeaseState::Leased,
    }
}

/// The key hash of a MAC-identified client in the local subnet.
pub fn hw_key(mac: &[u8; 6]) -> u64 {
    ClientKey::from_hw(1, mac).hash(LOCAL_ID)
}

/// The MAC of the synthetic client holding local address number `i`.
pub fn synthetic_mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x00, b[0], b[1], b[2], b[3]]
}

/// A lease map of the 65,536 local addresses, every one leased (valid) to
/// its own synthetic client, then `client`'s lease on `addr` on top.
pub fn populated_local_map(client: &[u8; 6], addr: Ipv4Addr) -> LeaseMap {
    let map = LeaseMap::new(&[(LOCAL_NET, LOCAL_ADDRS)]).unwrap();
    let base = u32::from(LOCAL_NET);
    for i in 0..LOCAL_ADDRS {
        let a = Ipv4Addr::from(base + i);
        map.set(a, leased(hw_key(&synthetic_mac(i)), NOW + 1000))
            .unwrap();
    }
    map.set(addr, leased(hw_key(client), NOW + 1000)).unwrap();
    map
}

/// A request from `mac`, broadcast flag set.
pub fn msg_from(mac: &[u8; 6], t: v4::MessageType) -> v4::Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = v4::Message::new_with_id(XID, z, z, z, z, mac);
    m.set_flags(v4::Flags::default().set_broadcast());
    m.opts_mut().insert(v4::DhcpOption::MessageType(t));
    m
}

/// A request from the test client, broadcast flag set.
pub fn msg(t: v4::MessageType) -> v4::Message {
    msg_from(&CLIENT_MAC, t)
}

pub fn with(mut m: v4::Message, o: v4::DhcpOption) -> v4::Message {
    m.opts_mut().insert(o);
    m
}

pub fn ci(mut m: v4::Message, ciaddr: Ipv4Addr) -> v4::Message {
    m.set_ciaddr(ciaddr);
    m
}

pub fn gi(mut m: v4::Message, giaddr: Ipv4Addr) -> v4::Message {
    m.set_giaddr(giaddr);
    m
}

pub fn no_bcast(mut m: v4::Message) -> v4::Message {
    m.set_flags(v4::Flags::default());
    m
}

pub fn prl(codes: &[u8]) -> v4::DhcpOption {
    v4::DhcpOption::ParameterRequestList(codes.iter().map(|&c| v4::OptionCode::from(c)).collect())
}

/// The parameter request list of a typical Linux client (dhclient).
pub fn typical_prl() -> v4::DhcpOption {
    prl(&[1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42])
}

/// Option 82 with circuit id and remote id, and link selection if given.
pub fn relay_info(link: Option<Ipv4Addr>) -> v4::DhcpOption {
    let mut info = relay::RelayAgentInformation::default();
    info.insert(relay::RelayInfo::AgentCircuitId(
        b"eth0/1/7:vlan100".to_vec(),
    ));
    info.insert(relay::RelayInfo::AgentRemoteId(vec![
        0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e,
    ]));
    if let Some(l) = link {
        info.insert(relay::RelayInfo::LinkSelection(l));
    }
    v4::DhcpOption::RelayAgentInformation(info)
}

/// How a request travels: link and network headers.
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

    /// A client with `ciaddr` unicasting to the server (RENEWING).
    pub fn unicast(ciaddr: Ipv4Addr) -> Path {
        Path {
            src_mac: CLIENT_MAC,
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

fn csum(data: &[u8], mut acc: u32) -> u32 {
    for (i, b) in data.iter().enumerate() {
        acc += if i % 2 == 0 {
            u32::from(*b) << 8
        } else {
            u32::from(*b)
        };
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Encodes `m` and wraps it in Ethernet/IPv4/UDP headers along `p`.
pub fn frame(m: &v4::Message, p: &Path) -> Vec<u8> {
    let mut dhcp = Vec::new();
    m.encode(&mut Encoder::new(&mut dhcp)).unwrap();
    wrap(&dhcp, p)
}

/// Wraps a UDP payload in Ethernet/IPv4/UDP headers along `p`, with valid
/// IPv4 and UDP checksums.
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
    let pseudo = csum(&p.dst_ip.octets(), csum(&p.src_ip.octets(), 0)) + 17 + udp_len as u32;
    let c = !fold(csum(&f[udp..], pseudo));
    f[udp + 6..udp + 8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
    f
}

/// Decodes the DHCP message of a reply frame with `dhcproto` (set-up
/// checks only), after checking the IPv4 and UDP checksums.
pub fn decode_reply(f: &[u8]) -> v4::Message {
    let l3 = if f[12..14] == [0x81, 0x00] { 18 } else { 14 };
    let ip = &f[l3..];
    assert_eq!(fold(csum(&ip[..20], 0)), 0xffff, "reply ipv4 checksum");
    let udp = &ip[20..];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    assert_eq!(udp_len, udp.len(), "reply udp length");
    let pseudo = csum(&ip[16..20], csum(&ip[12..16], 0)) + 17 + udp_len as u32;
    assert_eq!(fold(csum(udp, pseudo)), 0xffff, "reply udp checksum");
    v4::Message::decode(&mut Decoder::new(&udp[8..])).expect("dhcproto decodes the reply")
}
