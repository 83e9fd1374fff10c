//! Names and numbers shared by the irondhcp XDP program (`xdp-ebpf/program`)
//! and the user-space loader (`xdp-ebpf/loader`).
//!
//! The crate is `no_std` and has no dependencies, so the eBPF program can use
//! it as is. The `user` feature is reserved for user-space-only additions
//! (e.g. `aya::Pod` impls should a map ever carry a `#[repr(C)]` struct); the
//! constants below are available with or without it.
#![no_std]

/// Name of the XDP entry point in the eBPF object (the `#[xdp]` function).
pub const PROGRAM_NAME: &str = "irondhcp_xdp";

/// Name of the `XskMap` the program redirects DHCP frames into.
///
/// Indexed by RX queue: entry `q` holds the AF_XDP socket bound to queue `q`
/// of the interface the program is attached to.
pub const XSKS_MAP: &str = "XSKS";

/// Number of entries in [`XSKS_MAP`], i.e. the highest RX queue index the
/// program can redirect from, plus one.
pub const XSKS_MAX_ENTRIES: u32 = 64;

/// Name of the `PerCpuArray<u64>` of packet counters, indexed by the
/// `COUNTER_*` constants and [`COUNTER_COUNT`] entries long.
pub const COUNTERS_MAP: &str = "COUNTERS";

/// Counter: DHCP frames redirected to an AF_XDP socket.
pub const COUNTER_REDIRECTED: u32 = 0;

/// Counter: frames that are not for the DHCP server (ARP, other UDP, TCP,
/// …) and were handed to the kernel (`XDP_PASS`).
pub const COUNTER_PASSED: u32 = 1;

/// Counter: frames whose headers were truncated or inconsistent; handed to
/// the kernel (`XDP_PASS`), which drops what is truly broken.
pub const COUNTER_MALFORMED: u32 = 2;

/// Counter: DHCP frames that arrived on an RX queue with no AF_XDP socket in
/// [`XSKS_MAP`]; handed to the kernel (`XDP_PASS`) instead.
pub const COUNTER_NO_SOCKET: u32 = 3;

/// Counter: UDP frames to the steered port whose destination MAC or IPv4
/// address is not ours (see [`STEER_MAC_GLOBAL`], [`STEER_IPS_GLOBAL`]);
/// handed to the kernel (`XDP_PASS`) so its firewall and sockets see them.
pub const COUNTER_NOT_OURS: u32 = 4;

/// Counter: IPv4 fragments of any protocol (first fragments with MF set and
/// later fragments alike); handed to the kernel (`XDP_PASS`): the fast path
/// needs whole datagrams, and the kernel reassembles.
pub const COUNTER_FRAGMENT: u32 = 5;

/// Number of counters, i.e. the number of entries in [`COUNTERS_MAP`].
pub const COUNTER_COUNT: u32 = 6;

/// UDP destination port of a DHCPv4 server (BOOTP server port, RFC 2131).
pub const DHCP_SERVER_PORT: u16 = 67;

/// UDP destination port of a DHCPv4 client (BOOTP client port).
pub const DHCP_CLIENT_PORT: u16 = 68;

/// Name of the program's global that holds the UDP destination port it
/// steers (default [`DHCP_SERVER_PORT`]); the load generator sets it to
/// [`DHCP_CLIENT_PORT`] at load time to receive replies on AF_XDP.
pub const REDIRECT_PORT_GLOBAL: &str = "REDIRECT_PORT";

/// Name of the program's global `[u8; 6]`: the destination MAC it steers
/// besides `ff:ff:ff:ff:ff:ff` (the interface's own MAC). Ignored when
/// [`STEER_ANY_MAC`] is set in [`STEER_FLAGS_GLOBAL`].
pub const STEER_MAC_GLOBAL: &str = "STEER_MAC";

/// Name of the program's global `[u32; STEER_IPS_MAX]`: the destination IPv4
/// addresses it steers besides `255.255.255.255`, each stored as the four
/// bytes seen on the wire (`u32::from_ne_bytes(addr.octets())`); `0`
/// (0.0.0.0) marks an unused slot. Ignored when [`STEER_ANY_IP`] is set.
pub const STEER_IPS_GLOBAL: &str = "STEER_IPS";

/// Number of unicast addresses the program can steer: the server address,
/// with room for an anycast address and more later.
pub const STEER_IPS_MAX: usize = 4;

/// Name of the program's global `u8` of `STEER_ANY_*` bits. Both clear by
/// default: with no globals set, the program steers only broadcast frames.
pub const STEER_FLAGS_GLOBAL: &str = "STEER_FLAGS";

/// [`STEER_FLAGS_GLOBAL`] bit: steer whatever the destination MAC (the load
/// generator, whose simulated clients each have their own MAC).
pub const STEER_ANY_MAC: u8 = 1;

/// [`STEER_FLAGS_GLOBAL`] bit: steer whatever the destination IPv4 address
/// (the load generator, whose replies go to every address of the pool).
pub const STEER_ANY_IP: u8 = 2;
