//! The irondhcp fast path.
//!
//! Everything a DHCP server can answer from memory is answered here, on
//! pinned worker threads that never await and never take a lock on the
//! packet path. The core is a set of pure functions over byte slices
//! ([`wire`] parses and builds frames, [`handler`] decides what to answer),
//! so it is unit-testable and fuzzable without a NIC. Around that core sit
//! the AF_XDP socket ([`xsk`]) and the worker loop ([`worker`]) that moves
//! frames between the socket, the handler and the control plane.
//!
//! What the fast path cannot answer (a client that needs a new address) is
//! handed to the control plane over a bounded channel ([`channel`]); the
//! decision comes back to the same worker, which builds and sends the reply.

pub mod channel;
pub mod config;
pub mod counters;
pub mod handler;
pub mod idle;
pub mod lease_map;
pub mod wire;
pub mod worker;
pub mod xsk;

/// Seconds since the UNIX epoch, the time base of every lease expiry.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
