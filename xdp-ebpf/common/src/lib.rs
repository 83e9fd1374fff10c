//! Names and numbers shared by the irondhcp XDP program (`xdp-ebpf/program`)
//! and the user-space loader (`control/src/xdp.rs`).
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
/// non-first IPv4 fragments, …) and were handed to the kernel (`XDP_PASS`).
pub const COUNTER_PASSED: u32 = 1;

/// Counter: frames whose headers were truncated or inconsistent; handed to
/// the kernel (`XDP_PASS`), which drops what is truly broken.
pub const COUNTER_MALFORMED: u32 = 2;

/// Counter: DHCP frames that arrived on an RX queue with no AF_XDP socket in
/// [`XSKS_MAP`]; handed to the kernel (`XDP_PASS`) instead.
pub const COUNTER_NO_SOCKET: u32 = 3;

/// Number of counters, i.e. the number of entries in [`COUNTERS_MAP`].
pub const COUNTER_COUNT: u32 = 4;

/// UDP destination port of a DHCPv4 server (BOOTP server port, RFC 2131).
pub const DHCP_SERVER_PORT: u16 = 67;

/// UDP destination port of a DHCPv4 client (BOOTP client port).
pub const DHCP_CLIENT_PORT: u16 = 68;

/// Name of the program's global that holds the UDP destination port it
/// steers (default [`DHCP_SERVER_PORT`]); the load generator sets it to
/// [`DHCP_CLIENT_PORT`] at load time to receive replies on AF_XDP.
pub const REDIRECT_PORT_GLOBAL: &str = "REDIRECT_PORT";
