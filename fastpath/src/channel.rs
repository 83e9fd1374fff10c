//! The messages that cross between the fast path and the control plane.
//!
//! Workers never await and never block: they `try_send` on bounded crossbeam
//! channels and drop (and count) the packet when a channel is full, trusting
//! the client to retransmit. Messages carry their data inline (no heap
//! allocation per packet); an [`AllocRequest`] carries a copy of the whole
//! request frame so the worker can build the reply when the decision returns.

use std::net::Ipv4Addr;

/// Largest frame the fast path handles (Ethernet + one VLAN tag + 1500 MTU).
pub const MAX_FRAME: usize = 1522;

/// A frame copied inline, so it can travel through a channel without a `Vec`.
#[derive(Clone)]
pub struct FrameBuf {
    pub len: u16,
    pub bytes: [u8; MAX_FRAME],
}

impl FrameBuf {
    /// Copies `frame`; `None` when it is longer than [`MAX_FRAME`].
    pub fn copy_from(frame: &[u8]) -> Option<Self> {
        if frame.len() > MAX_FRAME {
            return None;
        }
        let mut bytes = [0u8; MAX_FRAME];
        bytes[..frame.len()].copy_from_slice(frame);
        Some(Self {
            len: frame.len() as u16,
            bytes,
        })
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl std::fmt::Debug for FrameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrameBuf({} bytes)", self.len)
    }
}

/// The identity of a client: option 61 (client identifier) when present,
/// else the hardware type followed by chaddr (as Kea and dhcpd do).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKey {
    len: u8,
    bytes: [u8; 255],
}

impl ClientKey {
    /// A key from raw bytes (at most 255; longer input is cut, which cannot
    /// happen for a key read from one DHCP option).
    pub fn new(raw: &[u8]) -> Self {
        let n = raw.len().min(255);
        let mut bytes = [0u8; 255];
        bytes[..n].copy_from_slice(&raw[..n]);
        Self {
            len: n as u8,
            bytes,
        }
    }

    /// The key of a client that sent no option 61: htype then chaddr.
    pub fn from_hw(htype: u8, chaddr: &[u8]) -> Self {
        let n = chaddr.len().min(16);
        let mut bytes = [0u8; 255];
        bytes[0] = htype;
        bytes[1..1 + n].copy_from_slice(&chaddr[..n]);
        Self {
            len: (n + 1) as u8,
            bytes,
        }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The 64-bit hash the lease map stores for this key within `subnet_id`.
    #[inline]
    pub fn hash(&self, subnet_id: u32) -> u64 {
        key_hash(subnet_id, self.as_bytes())
    }
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.as_bytes().iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Hashes a client key within a subnet to the 64-bit value the lease map
/// compares. FNV-1a over the bytes, then a splitmix64 finaliser so that the
/// low bits (used for bucket selection) are well mixed. Never returns 0,
/// which the lease map uses for "no owner".
#[inline]
pub fn key_hash(subnet_id: u32, key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in subnet_id.to_le_bytes().iter().chain(key.iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    if h == 0 {
        1
    } else {
        h
    }
}

/// What the client asked for that needs the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocKind {
    /// DISCOVER from a client without a lease: choose and offer an address.
    Discover,
    /// SELECTING REQUEST (our server id): commit the offered (or any
    /// available) `requested` address before the ACK.
    Request,
    /// RENEWING/REBINDING/INIT-REBOOT: the client claims it holds
    /// `requested`. The control plane may only extend a lease that is the
    /// client's (durably, before the ACK); it never creates one.
    Renew,
}

/// A request the fast path hands to the control plane.
#[derive(Debug, Clone)]
pub struct AllocRequest {
    /// The worker (RX queue) the reply must go back to.
    pub worker: u16,
    pub kind: AllocKind,
    /// Index into `FastConfig::subnets` chosen by subnet selection.
    pub subnet: u16,
    pub client_key: ClientKey,
    /// The client's hardware address (first 6 bytes of chaddr for Ethernet).
    pub hw_addr: [u8; 6],
    /// Option 50, or ciaddr for a REQUEST in RENEWING/REBINDING state.
    pub requested: Option<Ipv4Addr>,
    /// The request frame, so the worker can build the reply from it.
    pub frame: FrameBuf,
}

/// The control plane's answer to an [`AllocRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocDecision {
    /// DHCPOFFER of `addr` (held in memory for the offer lifetime).
    Offer { addr: Ipv4Addr, lease_secs: u32 },
    /// DHCPACK: the lease of `addr` until `expiry` is durable in storage.
    Ack { addr: Ipv4Addr, lease_secs: u32 },
    /// DHCPNAK: the requested address cannot be given to this client.
    Nak,
    /// Stay silent (pool exhausted, not our client, ...).
    Ignore,
}

/// A decision travelling back to the worker that asked.
#[derive(Debug, Clone)]
pub struct AllocReply {
    pub decision: AllocDecision,
    pub frame: FrameBuf,
}

/// A lease change the fast path answered from memory and the control plane
/// must persist (write-behind) and apply to the lease map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastEvent {
    /// A renewal was ACKed; the lease of `addr` now runs until `expiry`.
    Renewed {
        subnet: u16,
        addr: Ipv4Addr,
        key_hash: u64,
        expiry: u64,
    },
    /// The client released `addr`.
    Released {
        subnet: u16,
        addr: Ipv4Addr,
        key_hash: u64,
    },
    /// The client declined `addr` (it found it in use): quarantine it.
    Declined {
        subnet: u16,
        addr: Ipv4Addr,
        key_hash: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_depends_on_subnet_and_key_and_is_never_zero() {
        let k = ClientKey::from_hw(1, &[0, 1, 2, 3, 4, 5]);
        assert_eq!(k.as_bytes(), &[1, 0, 1, 2, 3, 4, 5]);
        assert_ne!(k.hash(1), k.hash(2));
        assert_ne!(k.hash(1), ClientKey::new(&[1, 0, 1, 2, 3, 4, 6]).hash(1));
        assert_eq!(k.hash(1), ClientKey::new(&[1, 0, 1, 2, 3, 4, 5]).hash(1));
        assert_ne!(key_hash(0, &[]), 0);
    }

    #[test]
    fn frame_buf_refuses_oversize() {
        assert!(FrameBuf::copy_from(&[0; MAX_FRAME + 1]).is_none());
        assert_eq!(FrameBuf::copy_from(&[7; 60]).unwrap().as_slice(), &[7; 60]);
    }
}
