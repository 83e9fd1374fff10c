//! Benchmarks (criterion, in `benches/`) and the bundled DHCPv4 load
//! generator, `irondhcp-loadgen` ([`loadgen`]).

pub mod loadgen;
