//! Shared set-up of the micro-benchmarks: request frames encoded by
//! `dhcproto` inside a small Ethernet/IPv4/UDP wrapper, a configuration and a
//! populated lease map. The frames come from `irondhcp_testkit::fixtures`,
//! written independently of `irondhcp_fastpath::wire` so a fixture is not
//! built by the code it measures.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::Criterion;
use dhcproto::v4::{self, relay};
use dhcproto::{Decodable, Decoder};
use irondhcp_fastpath::channel::ClientKey;
use irondhcp_fastpath::config::{opt, EncodedOptions, FastConfig, SubnetView};
use irondhcp_fastpath::lease_map::{LeaseMap, LeaseState, LeaseView};

// The frame builder and the addresses are the test kit's, shared rather
// than copied.
pub use irondhcp_testkit::fixtures::frames::*;
// Each bench uses some of them.
#[allow(unused_imports)]
pub use irondhcp_testkit::fixtures::{CLIENT_MAC, NOW, RELAY_IP, SERVER_IP, SERVER_MAC, XID};

pub const NEW_CLIENT_MAC: [u8; 6] = [0x02, 0x99, 0x88, 0x77, 0x66, 0x55];

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

// SAFETY: every method forwards to the system allocator with the caller's
// own arguments, so its contract is the system allocator's.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds GlobalAlloc's contract for these arguments.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds GlobalAlloc's contract for these arguments.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds GlobalAlloc's contract for these arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds GlobalAlloc's contract for these arguments.
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
        mclt: lease / 2,
        options: opts,
    }
}

pub fn config() -> FastConfig {
    FastConfig {
        server_ip: SERVER_IP,
        server_mac: SERVER_MAC,
        authoritative: true,
        shared_store: false,
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
        durable: expiry,
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
        map.set(a, leased(hw_key(&synthetic_mac(i)), NOW + 1800))
            .unwrap();
    }
    map.set(addr, leased(hw_key(client), NOW + 1800)).unwrap();
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

/// Decodes the DHCP message of a reply frame with `dhcproto` (set-up
/// checks only), after checking the IPv4 and UDP checksums.
pub fn decode_reply(f: &[u8]) -> v4::Message {
    assert!(checksums_ok(f), "reply lengths and IPv4/UDP checksums");
    let l3 = if f[12..14] == [0x81, 0x00] { 18 } else { 14 };
    v4::Message::decode(&mut Decoder::new(&f[l3 + 28..])).expect("dhcproto decodes the reply")
}
