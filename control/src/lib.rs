//! The irondhcp control plane and daemon.
//!
//! The fast path (crate `irondhcp-fastpath`) answers everything it can from
//! memory; this crate owns what needs agreement and durability: the config
//! ([`config`]), the allocation engine ([`alloc`]), the lease store
//! ([`store`]), the control-plane task that commits new leases in batches and
//! persists renewals write-behind ([`plane`]), the management socket
//! ([`ctl`]) and the daemon that wires them together ([`daemon`]). The XDP
//! program loader is crate `irondhcp-xdp-loader`.

pub mod alloc;
pub mod clock;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod hex;
pub mod histogram;
pub mod http;
pub mod kea_api;
pub mod kea_hosts;
pub mod kea_import;
pub mod membership;
pub mod metrics;
pub mod netif;
pub mod notify;
pub mod ownership;
pub mod plane;
pub mod reload;
pub mod reservations;
pub mod rest;
pub mod stats;
pub mod store;
pub mod sync;
