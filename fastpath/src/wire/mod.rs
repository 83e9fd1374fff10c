//! Frame and DHCP message parsing and building.
//!
//! Pure functions over byte slices: no allocation, no I/O, and no panic on
//! any input, so the whole module can be unit-tested and fuzzed without a
//! NIC. Parsing is zero-copy ([`parse_frame`] summarises the headers,
//! [`parse_dhcp`] indexes the options the handler reads); building writes a
//! complete Ethernet frame into a caller's buffer ([`build_reply`]).
//!
//! * [`frame`]: Ethernet II, one optional 802.1Q tag, IPv4, UDP.
//! * [`dhcp`]: the BOOTP header and the option index.
//! * [`build`]: reply layout, RFC 2131 §4.1 addressing, option order.
//! * [`checksum`]: the Internet checksum, computed in software.

pub mod build;
pub mod checksum;
pub mod dhcp;
pub mod frame;

pub use build::{build_reply, destination, Destination, LeaseTimes, ReplySpec};
pub use dhcp::{msg_type, parse_dhcp, DhcpMessage, DhcpOptions};
pub use frame::{parse_frame, FrameInfo};
