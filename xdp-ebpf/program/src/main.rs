//! irondhcp XDP program.
//!
//! Steers DHCPv4 server traffic (IPv4/UDP to port 67, optionally behind one
//! 802.1Q tag) *addressed to this server* into the AF_XDP socket bound to
//! the RX queue the frame arrived on (`XSKS[rx_queue]`). "Addressed to us"
//! means: destination MAC ours or `ff:ff:ff:ff:ff:ff`, and destination IPv4
//! address one of ours (up to `STEER_IPS_MAX`) or `255.255.255.255`. Frames
//! redirected to AF_XDP bypass the kernel's stack and firewall, so anything
//! merely passing by (a unicast DHCP frame for another server on a shared
//! segment, a frame to another MAC seen in promiscuous mode) stays with the
//! kernel. So do IPv4 fragments, first fragments included (the fast path
//! needs whole datagrams; the kernel reassembles), ARP, ICMP, BGP, ssh,
//! other UDP/TCP, and DHCP traffic on a queue that has no socket. Frames
//! with truncated or inconsistent headers are passed too (and counted): the
//! kernel drops what is truly broken, and the fast path never sees them.
//!
//! What to steer is set by the loader at load time through globals in
//! `.rodata` (port, MAC, addresses, "any" flags; names in
//! `irondhcp_xdp_common`): the daemon steers UDP/67 to its MAC and server
//! address, the load generator UDP/68 (or 67 as a relay) to any MAC and
//! address. Left at their defaults, the program steers only broadcasts.
//!
//! Per-CPU counters (`COUNTERS`, indexed by `irondhcp_xdp_common::COUNTER_*`)
//! record every decision; there is no per-packet logging.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action::{XDP_PASS, XDP_REDIRECT},
    macros::{map, xdp},
    maps::{PerCpuArray, XskMap},
    programs::XdpContext,
};
use irondhcp_xdp_common::{
    COUNTER_COUNT, COUNTER_FRAGMENT, COUNTER_MALFORMED, COUNTER_NOT_OURS, COUNTER_NO_SOCKET,
    COUNTER_PASSED, COUNTER_REDIRECTED, DHCP_SERVER_PORT, STEER_ANY_IP, STEER_ANY_MAC,
    STEER_IPS_MAX, XSKS_MAX_ENTRIES,
};

/// AF_XDP sockets, indexed by RX queue. Filled by user space.
#[map(name = "XSKS")]
static XSKS: XskMap = XskMap::with_max_entries(XSKS_MAX_ENTRIES, 0);

/// Per-CPU packet counters, indexed by the `COUNTER_*` constants.
#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

/// Length of an Ethernet header without VLAN tag.
const ETH_HLEN: usize = 14;
/// Length of one 802.1Q tag (TCI + inner EtherType).
const VLAN_HLEN: usize = 4;
/// EtherType of IPv4.
const ETH_P_IP: u16 = 0x0800;
/// EtherType of an 802.1Q VLAN tag.
const ETH_P_8021Q: u16 = 0x8100;
/// Minimum IPv4 header length (IHL 5).
const IPV4_MIN_HLEN: usize = 20;
/// IPv4 protocol number of UDP.
const IPPROTO_UDP: u8 = 17;
/// Mask of the "more fragments" flag and the fragment offset in the IPv4
/// flags/fragment-offset field: any bit set means the packet is a fragment.
const IP_FRAGMENT_MASK: u16 = 0x3fff;
/// Length of a UDP header.
const UDP_HLEN: usize = 8;

/// Why a frame is not redirected.
enum Verdict {
    /// Not for the DHCP server: hand it to the kernel.
    NotDhcp,
    /// UDP to the steered port, but to another MAC or IPv4 address: the
    /// kernel's.
    NotOurs,
    /// An IPv4 fragment: the kernel reassembles.
    Fragment,
    /// Headers truncated or inconsistent: hand it to the kernel, count it.
    Malformed,
}

#[xdp]
pub fn irondhcp_xdp(ctx: XdpContext) -> u32 {
    match try_irondhcp_xdp(&ctx) {
        Ok(action) => action,
        Err(_) => XDP_PASS,
    }
}

/// Classifies the frame and redirects DHCP server traffic. `Ok` carries the
/// XDP action; `Err` means "pass" (the counter is already bumped).
#[inline(always)]
fn try_irondhcp_xdp(ctx: &XdpContext) -> Result<u32, ()> {
    match classify(ctx) {
        Ok(()) => {}
        Err(Verdict::NotDhcp) => {
            count(COUNTER_PASSED);
            return Ok(XDP_PASS);
        }
        Err(Verdict::NotOurs) => {
            count(COUNTER_NOT_OURS);
            return Ok(XDP_PASS);
        }
        Err(Verdict::Fragment) => {
            count(COUNTER_FRAGMENT);
            return Ok(XDP_PASS);
        }
        Err(Verdict::Malformed) => {
            count(COUNTER_MALFORMED);
            return Ok(XDP_PASS);
        }
    }
    // The low bits of the flags are the action returned when XSKS has no
    // socket at this index (or the index is out of range).
    match XSKS.redirect(ctx.rx_queue_index(), u64::from(XDP_PASS)) {
        Ok(action) if action == XDP_REDIRECT => {
            count(COUNTER_REDIRECTED);
            Ok(XDP_REDIRECT)
        }
        _ => {
            count(COUNTER_NO_SOCKET);
            Err(())
        }
    }
}

/// The UDP destination port to steer: 67 for the server. A global, so user
/// space can set it at load time (the load generator steers 68, the client
/// port); read volatile so the compiler keeps the load instead of folding in
/// the default.
#[no_mangle]
static REDIRECT_PORT: u16 = DHCP_SERVER_PORT;

/// Our MAC: the unicast destination MAC to steer (besides broadcast).
#[no_mangle]
static STEER_MAC: [u8; 6] = [0; 6];

/// Our IPv4 addresses, as the wire bytes read natively; 0 = unused slot.
#[no_mangle]
static STEER_IPS: [u32; STEER_IPS_MAX] = [0; STEER_IPS_MAX];

/// `STEER_ANY_MAC` / `STEER_ANY_IP` bits: skip the MAC / IPv4 check.
#[no_mangle]
static STEER_FLAGS: u8 = 0;

#[inline(always)]
fn redirect_port() -> u16 {
    // SAFETY: reading a plain static that the loader may have rewritten.
    unsafe { core::ptr::read_volatile(&REDIRECT_PORT) }
}

/// All ones: the broadcast MAC's first four bytes and 255.255.255.255.
const ALL_ONES_U32: u32 = u32::MAX;
/// All ones: the broadcast MAC's last two bytes.
const ALL_ONES_U16: u16 = u16::MAX;

/// Whether the destination MAC (`dst`, the frame's first six bytes) is ours
/// or broadcast, or the MAC check is off.
#[inline(always)]
fn mac_is_ours(flags: u8, dst: &[u8; 12]) -> bool {
    if flags & STEER_ANY_MAC != 0 {
        return true;
    }
    // Compared as a u32 and a u16 (not as arrays: that could become a memcmp
    // call, which BPF does not have).
    let head = u32::from_ne_bytes([dst[0], dst[1], dst[2], dst[3]]);
    let tail = u16::from_ne_bytes([dst[4], dst[5]]);
    if head == ALL_ONES_U32 && tail == ALL_ONES_U16 {
        return true;
    }
    // SAFETY: reading a plain static that the loader may have rewritten.
    let mac = unsafe { core::ptr::read_volatile(&STEER_MAC) };
    head == u32::from_ne_bytes([mac[0], mac[1], mac[2], mac[3]])
        && tail == u16::from_ne_bytes([mac[4], mac[5]])
}

/// Whether the destination IPv4 address (`dst`, wire bytes read natively) is
/// one of ours or 255.255.255.255, or the address check is off.
#[inline(always)]
fn ip_is_ours(flags: u8, dst: u32) -> bool {
    if flags & STEER_ANY_IP != 0 || dst == ALL_ONES_U32 {
        return true;
    }
    if dst == 0 {
        // 0.0.0.0 is no one's address, and marks unused slots.
        return false;
    }
    // SAFETY: reading a plain static that the loader may have rewritten.
    let ips = unsafe { core::ptr::read_volatile(&STEER_IPS) };
    let mut i = 0;
    while i < STEER_IPS_MAX {
        if ips[i] == dst {
            return true;
        }
        i += 1;
    }
    false
}

/// `Ok(())` when the frame is a whole (unfragmented) IPv4/UDP datagram to
/// the steered port (67 unless configured), with at most one 802.1Q tag,
/// addressed to us.
#[inline(always)]
fn classify(ctx: &XdpContext) -> Result<(), Verdict> {
    // Ethernet: destination and source MAC, EtherType at 12, then optionally
    // one 802.1Q tag.
    let macs: *const [u8; 12] = ptr_at(ctx, 0)?;
    let mut ether_type = read_u16(ctx, 12)?;
    let mut l3 = ETH_HLEN;
    if ether_type == ETH_P_8021Q {
        ether_type = read_u16(ctx, ETH_HLEN + 2)?;
        l3 += VLAN_HLEN;
    }
    if ether_type != ETH_P_IP {
        return Err(Verdict::NotDhcp);
    }

    // IPv4 fixed header.
    let ip: *const [u8; IPV4_MIN_HLEN] = ptr_at(ctx, l3)?;
    // SAFETY: `ptr_at` checked that IPV4_MIN_HLEN bytes at `l3` are in the packet.
    let ip = unsafe { &*ip };
    let version = ip[0] >> 4;
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if version != 4 || ihl < IPV4_MIN_HLEN {
        return Err(Verdict::Malformed);
    }
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    let protocol = ip[9];
    if total_len < ihl {
        return Err(Verdict::Malformed);
    }
    if frag & IP_FRAGMENT_MASK != 0 {
        // A fragment: later ones have no UDP header to look at, and the
        // first one is not the whole datagram the fast path needs.
        return Err(Verdict::Fragment);
    }
    if protocol != IPPROTO_UDP {
        return Err(Verdict::NotDhcp);
    }
    let dst_ip = u32::from_ne_bytes([ip[16], ip[17], ip[18], ip[19]]);

    // UDP header after the options, if any (IHL 5..15, so l4 <= 18 + 60).
    // Bounds-checked before the total-length checks below on purpose: the
    // verifier needs this explicit check, and LLVM would drop it as redundant
    // if it came after them.
    let udp: *const [u8; UDP_HLEN] = ptr_at(ctx, l3 + ihl)?;
    // SAFETY: `ptr_at` checked that UDP_HLEN bytes at `l3 + ihl` are in the packet.
    let udp = unsafe { &*udp };
    if total_len < ihl + UDP_HLEN {
        return Err(Verdict::Malformed);
    }
    // A frame shorter than the IPv4 packet it carries is truncated
    // (longer is fine: Ethernet padding).
    if ctx.data() + l3 + total_len > ctx.data_end() {
        return Err(Verdict::Malformed);
    }
    if u16::from_be_bytes([udp[2], udp[3]]) != redirect_port() {
        return Err(Verdict::NotDhcp);
    }

    // SAFETY: reading a plain static that the loader may have rewritten.
    let flags = unsafe { core::ptr::read_volatile(&STEER_FLAGS) };
    // SAFETY: `ptr_at` checked that the 12 MAC bytes at 0 are in the packet.
    let macs = unsafe { &*macs };
    if !mac_is_ours(flags, macs) || !ip_is_ours(flags, dst_ip) {
        return Err(Verdict::NotOurs);
    }
    Ok(())
}

/// Pointer to a `T` at `offset` bytes into the packet, after checking that
/// the whole `T` lies before `data_end` (the check the verifier requires).
/// Out of bounds means a truncated header.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, Verdict> {
    let start = ctx.data();
    let end = ctx.data_end();
    let len = core::mem::size_of::<T>();
    if start + offset + len > end {
        return Err(Verdict::Malformed);
    }
    Ok((start + offset) as *const T)
}

/// Big-endian `u16` at `offset` bytes into the packet.
#[inline(always)]
fn read_u16(ctx: &XdpContext, offset: usize) -> Result<u16, Verdict> {
    let p: *const [u8; 2] = ptr_at(ctx, offset)?;
    // SAFETY: `ptr_at` checked that both bytes are in the packet.
    Ok(u16::from_be_bytes(unsafe { *p }))
}

/// Adds one to this CPU's counter `index`. Per-CPU, so no atomics needed.
#[inline(always)]
fn count(index: u32) {
    if let Some(counter) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: the map value lives as long as the map and belongs to this
        // CPU; XDP programs are not preempted on it.
        unsafe { *counter += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Licence declared to the kernel. GPL-compatible, as aya-template does, so
/// GPL-only helpers stay available.
#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
