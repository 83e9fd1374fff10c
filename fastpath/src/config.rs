//! The read-only view of the server configuration that workers need.
//!
//! The control plane parses and validates the operator's TOML file and turns
//! it into a [`FastConfig`]; workers hold it behind an `Arc` and only read it.
//! DHCP options are encoded to their wire form once, at start, so that
//! building a reply copies bytes instead of formatting values per packet.

use std::net::Ipv4Addr;

/// DHCP option codes the reply builder treats specially.
pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTERS: u8 = 3;
    pub const DNS_SERVERS: u8 = 6;
    pub const HOST_NAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAM_REQUEST_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const RELAY_AGENT_INFO: u8 = 82;
    pub const SUBNET_SELECTION: u8 = 118;
    pub const END: u8 = 255;
    /// Relay agent sub-options (RFC 3046, RFC 3527).
    pub const RAI_CIRCUIT_ID: u8 = 1;
    pub const RAI_REMOTE_ID: u8 = 2;
    pub const RAI_LINK_SELECTION: u8 = 5;
}

/// Options of one subnet, already in wire form.
///
/// `data` holds complete TLVs (code, length, value) back to back; `index[code]`
/// says where the TLV of `code` starts in `data` (`u16::MAX` when absent), so
/// the builder can honour a parameter request list in the client's order with
/// one table lookup per requested code.
#[derive(Debug, Clone)]
pub struct EncodedOptions {
    data: Vec<u8>,
    index: Box<[u16; 256]>,
    /// Codes sent even when the client did not ask for them, in this order.
    always: Vec<u8>,
}

impl Default for EncodedOptions {
    fn default() -> Self {
        Self {
            data: Vec::new(),
            index: Box::new([u16::MAX; 256]),
            always: Vec::new(),
        }
    }
}

impl EncodedOptions {
    /// Adds option `code` with `value` (at most 255 bytes). A later call for
    /// the same code replaces the earlier value. `always` marks it as sent
    /// whether or not it was requested.
    pub fn set(&mut self, code: u8, value: &[u8], always: bool) -> Result<(), ConfigError> {
        if code == opt::PAD || code == opt::END {
            return Err(ConfigError::ReservedOption(code));
        }
        let len = u8::try_from(value.len()).map_err(|_| ConfigError::OptionTooLong(code))?;
        if self.index[code as usize] != u16::MAX {
            self.remove(code);
        }
        let at = u16::try_from(self.data.len()).map_err(|_| ConfigError::OptionsTooLarge)?;
        self.data.push(code);
        self.data.push(len);
        self.data.extend_from_slice(value);
        self.index[code as usize] = at;
        if always && !self.always.contains(&code) {
            self.always.push(code);
        }
        Ok(())
    }

    fn remove(&mut self, code: u8) {
        let old = std::mem::take(&mut self.data);
        let always = std::mem::take(&mut self.always);
        *self.index = [u16::MAX; 256];
        let mut at = 0;
        while at + 2 <= old.len() {
            let (c, l) = (old[at], old[at + 1] as usize);
            if c != code {
                // Re-adding cannot fail: every TLV was valid when first added.
                let _ = self.set(c, &old[at + 2..at + 2 + l], always.contains(&c));
            }
            at += 2 + l;
        }
    }

    /// The complete TLV (code, length, value) of `code`, if configured.
    #[inline]
    pub fn tlv(&self, code: u8) -> Option<&[u8]> {
        let at = self.index[code as usize];
        if at == u16::MAX {
            return None;
        }
        let at = at as usize;
        let len = self.data[at + 1] as usize;
        Some(&self.data[at..at + 2 + len])
    }

    /// Codes to send unrequested, in configuration order.
    #[inline]
    pub fn always(&self) -> &[u8] {
        &self.always
    }
}

/// One subnet as the fast path sees it.
#[derive(Debug, Clone)]
pub struct SubnetView {
    /// Operator-chosen subnet id (stable across restarts; stored with leases).
    pub id: u32,
    pub network: Ipv4Addr,
    pub prefix_len: u8,
    /// Lease, renewal (T1) and rebinding (T2) times in seconds.
    pub lease_time: u32,
    pub renew_time: u32,
    pub rebind_time: u32,
    /// Maximum client lead time: how far past the durable expiry the fast
    /// path may promise (the promise bound, docs/decisions.md).
    pub mclt: u32,
    /// Subnet mask, routers, DNS, domain name and any custom options.
    pub options: EncodedOptions,
}

impl SubnetView {
    /// The netmask as a host-order integer.
    #[inline]
    pub fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix_len))
        }
    }

    /// Whether `addr` lies inside this subnet's network.
    #[inline]
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        (u32::from(addr) & self.mask()) == (u32::from(self.network) & self.mask())
    }
}

/// Everything a worker needs to answer, read-only after start.
#[derive(Debug, Clone)]
pub struct FastConfig {
    /// The server identifier (option 54) and source address of replies.
    pub server_ip: Ipv4Addr,
    /// Source MAC of replies (the MAC of the serving interface).
    pub server_mac: [u8; 6],
    /// Answer NAK to INIT-REBOOT clients the server knows nothing about
    /// (RFC 2131 §4.3.2); silence when false.
    pub authoritative: bool,
    /// The lease store is shared with other servers (a cluster), so the
    /// lease map may lack a lease a peer granted a moment ago: an
    /// INIT-REBOOT for an address the map does not know goes to the
    /// control plane, which looks it up, instead of being NAKed here.
    pub shared_store: bool,
    pub subnets: Vec<SubnetView>,
    /// Index into `subnets` of the subnet directly attached to the serving
    /// interface, used for clients that are neither relayed nor link-selected.
    pub local_subnet: Option<usize>,
}

impl FastConfig {
    /// The index of the subnet that contains `addr`.
    #[inline]
    pub fn subnet_for(&self, addr: Ipv4Addr) -> Option<usize> {
        self.subnets.iter().position(|s| s.contains(addr))
    }
}

/// Errors in building a [`FastConfig`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("option {0} is reserved (pad/end) and cannot be configured")]
    ReservedOption(u8),
    #[error("option {0} is longer than 255 bytes")]
    OptionTooLong(u8),
    #[error("the options of one subnet exceed 64 KiB")]
    OptionsTooLarge,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_keep_wire_form_and_replace() {
        let mut o = EncodedOptions::default();
        o.set(opt::ROUTERS, &[10, 0, 0, 1], true).unwrap();
        o.set(opt::DOMAIN_NAME, b"example.net", false).unwrap();
        o.set(opt::ROUTERS, &[10, 0, 0, 254], true).unwrap();
        assert_eq!(o.tlv(opt::ROUTERS), Some(&[3u8, 4, 10, 0, 0, 254][..]));
        assert_eq!(o.tlv(opt::DOMAIN_NAME).unwrap()[2..], b"example.net"[..]);
        assert_eq!(o.tlv(opt::DNS_SERVERS), None);
        assert_eq!(o.always(), &[opt::ROUTERS]);
        assert_eq!(o.set(0, &[], false), Err(ConfigError::ReservedOption(0)));
        assert_eq!(
            o.set(7, &[0; 256], false),
            Err(ConfigError::OptionTooLong(7))
        );
    }

    #[test]
    fn subnet_contains_and_mask() {
        let s = SubnetView {
            id: 1,
            network: Ipv4Addr::new(10, 1, 0, 0),
            prefix_len: 16,
            lease_time: 3600,
            renew_time: 1800,
            rebind_time: 3150,
            mclt: 1800,
            options: EncodedOptions::default(),
        };
        assert_eq!(s.mask(), 0xffff_0000);
        assert!(s.contains(Ipv4Addr::new(10, 1, 200, 3)));
        assert!(!s.contains(Ipv4Addr::new(10, 2, 0, 1)));
    }
}
