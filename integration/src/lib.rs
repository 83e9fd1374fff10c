//! irondhcp's privileged tests live in `tests/`: the real daemon, XDP
//! program and load generator in per-test network namespaces, against
//! dhclient, udhcpc, dhcpcd, perfdhcp and hand-built frames.
//!
//! The crate is outside the workspace's `default-members`, so a plain
//! `cargo test` (any user) runs only what needs no privileges;
//! `cargo xtask test` (root) runs everything, these included. Binaries are
//! built on first use through [`irondhcp_testkit::bins`].
