//! What irondhcp's tests, benches, fuzz targets and demo share, in one
//! crate instead of `#[path]` includes and copies:
//!
//! * [`netns`], [`testbed`], [`cluster`]: throw-away network namespaces over veth with
//!   the real daemon in them (root only);
//! * [`fixtures`]: the handler's world (configuration, lease map) and
//!   request frames built with `dhcproto`, independently of
//!   `irondhcp_fastpath::wire`, so the code is never checked with itself;
//! * [`rawclient`]: hand-built frames on an AF_PACKET socket, for the
//!   sequences real clients will not produce on demand;
//! * [`peers`]: parsers of other tools' reports (perfdhcp);
//! * [`postgres`], [`redis`]: a private PostgreSQL or Redis server per test;
//! * [`ctl`], [`bins`]: the management socket and the workspace's binaries,
//!   without depending on the daemon crate (the load generator must not).

pub mod bins;
pub mod cluster;
pub mod ctl;
pub mod fixtures;
pub mod netns;
pub mod peers;
pub mod postgres;
pub mod rawclient;
pub mod redis;
pub mod testbed;
