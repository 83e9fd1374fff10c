//! irondhcp XDP program.
//!
//! Steers DHCPv4 server traffic (IPv4/UDP to port 67, optionally behind one
//! 802.1Q tag) into the AF_XDP socket bound to the RX queue the frame arrived
//! on (`XSKS[rx_queue]`). Everything else — ARP, ICMP, BGP, ssh, non-first
//! IPv4 fragments, other UDP/TCP — goes to the kernel with `XDP_PASS`, and so
//! does DHCP traffic on a queue that has no socket. Frames with truncated or
//! inconsistent headers are passed too (and counted): the kernel drops what is
//! truly broken, and the fast path never sees them.
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
    COUNTER_COUNT, COUNTER_MALFORMED, COUNTER_NO_SOCKET, COUNTER_PASSED, COUNTER_REDIRECTED,
    DHCP_SERVER_PORT, XSKS_MAX_ENTRIES,
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
/// Mask of the fragment offset in the IPv4 flags/fragment-offset field.
const IP_OFFSET_MASK: u16 = 0x1fff;
/// Length of a UDP header.
const UDP_HLEN: usize = 8;

/// Why a frame is not redirected.
enum Verdict {
    /// Not for the DHCP server: hand it to the kernel.
    NotDhcp,
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

#[inline(always)]
fn redirect_port() -> u16 {
    // SAFETY: reading a plain static that the loader may have rewritten.
    unsafe { core::ptr::read_volatile(&REDIRECT_PORT) }
}

/// `Ok(())` when the frame is IPv4/UDP to port 67 (or the configured port) (first fragment or
/// unfragmented), with at most one 802.1Q tag.
#[inline(always)]
fn classify(ctx: &XdpContext) -> Result<(), Verdict> {
    // Ethernet: EtherType at 12, then optionally one 802.1Q tag.
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
    if protocol != IPPROTO_UDP || frag & IP_OFFSET_MASK != 0 {
        // Not UDP, or a non-first fragment (no UDP header to look at).
        return Err(Verdict::NotDhcp);
    }

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
