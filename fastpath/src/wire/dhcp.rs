//! Zero-copy parsing of a BOOTP/DHCP request.
//!
//! The fixed BOOTP header is read into a small struct; the options are
//! walked exactly once and only the ones the handler needs are kept, as
//! values or as sub-slices of the message (no copies, no allocation).
//!
//! Choices worth knowing:
//! * Option overload (52) is ignored: options carried in `sname`/`file` are
//!   not read. Clients put nothing the fast path needs there in practice.
//! * When an option appears more than once, the first occurrence is used;
//!   RFC 3396 concatenation of split long options is not performed.
//! * A fixed-size option with the wrong length (53, 50, 54, 57, 118, the
//!   link-selection sub-option) makes the message malformed, as does any
//!   option or relay sub-option running past the end.
//! * A missing END option is tolerated (the options run to the end of the
//!   datagram); bytes after END are padding and not read.
//! * An empty client identifier (61 with length 0) counts as absent.

use std::net::Ipv4Addr;

use crate::config::opt;
use crate::counters::DropReason;

/// The fixed BOOTP header, up to and excluding the magic cookie.
pub const BOOTP_FIXED: usize = 236;
/// The shortest message we accept: the fixed header and the magic cookie.
pub const BOOTP_MIN: usize = BOOTP_FIXED + 4;
/// The smallest BOOTP message a reply is padded to (RFC 951/1542).
pub const BOOTP_MIN_REPLY: usize = 300;
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
pub const OP_BOOTREQUEST: u8 = 1;
pub const OP_BOOTREPLY: u8 = 2;
/// The broadcast bit of the `flags` field (RFC 2131 §2).
pub const FLAG_BROADCAST: u16 = 0x8000;
pub const HTYPE_ETHERNET: u8 = 1;

/// Offsets of the fixed header fields.
pub mod off {
    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const HOPS: usize = 3;
    pub const XID: usize = 4;
    pub const SECS: usize = 8;
    pub const FLAGS: usize = 10;
    pub const CIADDR: usize = 12;
    pub const YIADDR: usize = 16;
    pub const SIADDR: usize = 20;
    pub const GIADDR: usize = 24;
    pub const CHADDR: usize = 28;
    pub const SNAME: usize = 44;
    pub const FILE: usize = 108;
    pub const COOKIE: usize = 236;
    pub const OPTIONS: usize = 240;
}

/// DHCP message types (option 53).
pub mod msg_type {
    pub const DISCOVER: u8 = 1;
    pub const OFFER: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const DECLINE: u8 = 4;
    pub const ACK: u8 = 5;
    pub const NAK: u8 = 6;
    pub const RELEASE: u8 = 7;
    pub const INFORM: u8 = 8;
}

/// The options of a request the fast path reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DhcpOptions<'a> {
    /// Option 53; always present in a parsed message.
    pub msg_type: u8,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 61, the value only.
    pub client_id: Option<&'a [u8]>,
    /// Option 55, the requested codes in the client's order.
    pub param_request_list: Option<&'a [u8]>,
    /// Option 57.
    pub max_message_size: Option<u16>,
    /// Option 12, the value only.
    pub hostname: Option<&'a [u8]>,
    /// Option 82, the whole value (all sub-options), echoed verbatim.
    pub relay_agent_info: Option<&'a [u8]>,
    /// Sub-option 5 of option 82 (RFC 3527).
    pub link_selection: Option<Ipv4Addr>,
    /// Option 118 (RFC 3011).
    pub subnet_selection: Option<Ipv4Addr>,
}

/// A parsed BOOTREQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpMessage<'a> {
    pub htype: u8,
    /// At most 16 (checked by the parser).
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    pub opts: DhcpOptions<'a>,
}

impl DhcpMessage<'_> {
    /// The client hardware address, `hlen` bytes of chaddr.
    #[inline]
    pub fn hw_addr(&self) -> &[u8] {
        self.chaddr
            .get(..usize::from(self.hlen))
            .unwrap_or(&self.chaddr)
    }

    /// The first six bytes of chaddr (an Ethernet MAC), zero-padded.
    #[inline]
    pub fn mac(&self) -> [u8; 6] {
        let c = &self.chaddr;
        [c[0], c[1], c[2], c[3], c[4], c[5]]
    }

    /// Whether chaddr is an Ethernet address a reply can be unicast to.
    #[inline]
    pub fn has_ethernet_chaddr(&self) -> bool {
        self.htype == HTYPE_ETHERNET && self.hlen == 6
    }

    #[inline]
    pub fn broadcast_flag(&self) -> bool {
        self.flags & FLAG_BROADCAST != 0
    }
}

#[inline]
fn ip_at(b: &[u8; BOOTP_FIXED], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

#[inline]
fn ip4(v: &[u8]) -> Result<Ipv4Addr, DropReason> {
    match v {
        [a, b, c, d] => Ok(Ipv4Addr::new(*a, *b, *c, *d)),
        _ => Err(DropReason::BadDhcp),
    }
}

/// Parses a BOOTREQUEST carried in a UDP payload.
pub fn parse_dhcp(msg: &[u8]) -> Result<DhcpMessage<'_>, DropReason> {
    const BAD: DropReason = DropReason::BadDhcp;
    if msg.len() < BOOTP_MIN {
        return Err(BAD);
    }
    let b: &[u8; BOOTP_FIXED] = msg
        .get(..BOOTP_FIXED)
        .ok_or(BAD)?
        .try_into()
        .map_err(|_| BAD)?;
    if b[off::OP] != OP_BOOTREQUEST || b[off::HLEN] > 16 {
        return Err(BAD);
    }
    if msg.get(off::COOKIE..off::OPTIONS) != Some(&MAGIC_COOKIE[..]) {
        return Err(BAD);
    }
    let mut chaddr = [0u8; 16];
    chaddr.copy_from_slice(&b[off::CHADDR..off::SNAME]);
    let opts = parse_options(msg.get(off::OPTIONS..).unwrap_or(&[]))?;
    Ok(DhcpMessage {
        htype: b[off::HTYPE],
        hlen: b[off::HLEN],
        hops: b[off::HOPS],
        xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        secs: u16::from_be_bytes([b[8], b[9]]),
        flags: u16::from_be_bytes([b[10], b[11]]),
        ciaddr: ip_at(b, off::CIADDR),
        yiaddr: ip_at(b, off::YIADDR),
        siaddr: ip_at(b, off::SIADDR),
        giaddr: ip_at(b, off::GIADDR),
        chaddr,
        opts,
    })
}

/// Walks the options area once; `BadMessageType` when option 53 is absent.
pub fn parse_options(area: &[u8]) -> Result<DhcpOptions<'_>, DropReason> {
    const BAD: DropReason = DropReason::BadDhcp;
    let mut o = DhcpOptions::default();
    let mut have_type = false;
    let mut at = 0usize;
    while let Some(&code) = area.get(at) {
        if code == opt::PAD {
            at += 1;
            continue;
        }
        if code == opt::END {
            break;
        }
        let len = usize::from(*area.get(at + 1).ok_or(BAD)?);
        let v = area.get(at + 2..at + 2 + len).ok_or(BAD)?;
        at += 2 + len;
        match code {
            opt::MESSAGE_TYPE if !have_type => {
                let [t] = v else { return Err(BAD) };
                o.msg_type = *t;
                have_type = true;
            }
            opt::REQUESTED_IP if o.requested_ip.is_none() => o.requested_ip = Some(ip4(v)?),
            opt::SERVER_ID if o.server_id.is_none() => o.server_id = Some(ip4(v)?),
            opt::CLIENT_ID if o.client_id.is_none() && !v.is_empty() => o.client_id = Some(v),
            opt::PARAM_REQUEST_LIST if o.param_request_list.is_none() => {
                o.param_request_list = Some(v)
            }
            opt::MAX_MESSAGE_SIZE if o.max_message_size.is_none() => {
                let [h, l] = v else { return Err(BAD) };
                o.max_message_size = Some(u16::from_be_bytes([*h, *l]));
            }
            opt::HOST_NAME if o.hostname.is_none() => o.hostname = Some(v),
            opt::RELAY_AGENT_INFO if o.relay_agent_info.is_none() => {
                o.link_selection = parse_relay_info(v)?;
                o.relay_agent_info = Some(v);
            }
            opt::SUBNET_SELECTION if o.subnet_selection.is_none() => {
                o.subnet_selection = Some(ip4(v)?)
            }
            _ => {}
        }
    }
    if !have_type {
        return Err(DropReason::BadMessageType);
    }
    Ok(o)
}

/// Walks the sub-options of option 82 for link selection (RFC 3527).
fn parse_relay_info(v: &[u8]) -> Result<Option<Ipv4Addr>, DropReason> {
    let mut link = None;
    let mut at = 0usize;
    while let Some(&code) = v.get(at) {
        let len = usize::from(*v.get(at + 1).ok_or(DropReason::BadDhcp)?);
        let s = v.get(at + 2..at + 2 + len).ok_or(DropReason::BadDhcp)?;
        at += 2 + len;
        if code == opt::RAI_LINK_SELECTION && link.is_none() {
            link = Some(ip4(s)?);
        }
    }
    Ok(link)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal BOOTREQUEST with the given options area (cookie added).
    pub(crate) fn message(options: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; BOOTP_FIXED];
        m[off::OP] = OP_BOOTREQUEST;
        m[off::HTYPE] = 1;
        m[off::HLEN] = 6;
        m[off::XID..off::XID + 4].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        m[off::FLAGS] = 0x80;
        m[off::CIADDR..off::CIADDR + 4].copy_from_slice(&[10, 0, 0, 9]);
        m[off::GIADDR..off::GIADDR + 4].copy_from_slice(&[10, 0, 0, 1]);
        m[off::CHADDR..off::CHADDR + 6].copy_from_slice(&[2, 1, 2, 3, 4, 5]);
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(options);
        m
    }

    #[test]
    fn fixed_header_and_common_options() {
        let m = message(&[
            53, 1, 3, 0, 0, 50, 4, 10, 0, 0, 7, 54, 4, 10, 0, 0, 2, 61, 3, 1, 2, 3, 55, 3, 1, 3, 6,
            57, 2, 5, 220, 12, 2, b'h', b'i', 118, 4, 10, 9, 0, 0, 255, 99, 99,
        ]);
        let d = parse_dhcp(&m).unwrap();
        assert_eq!(d.xid, 0xdead_beef);
        assert!(d.broadcast_flag());
        assert_eq!(d.ciaddr, Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(d.giaddr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(d.hw_addr(), &[2, 1, 2, 3, 4, 5]);
        assert!(d.has_ethernet_chaddr());
        let o = d.opts;
        assert_eq!(o.msg_type, msg_type::REQUEST);
        assert_eq!(o.requested_ip, Some(Ipv4Addr::new(10, 0, 0, 7)));
        assert_eq!(o.server_id, Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(o.client_id, Some(&[1, 2, 3][..]));
        assert_eq!(o.param_request_list, Some(&[1, 3, 6][..]));
        assert_eq!(o.max_message_size, Some(1500));
        assert_eq!(o.hostname, Some(&b"hi"[..]));
        assert_eq!(o.subnet_selection, Some(Ipv4Addr::new(10, 9, 0, 0)));
        assert_eq!(o.relay_agent_info, None);
    }

    #[test]
    fn relay_agent_info_and_link_selection() {
        let m = message(&[
            53, 1, 1, 82, 12, 1, 2, b'c', b'1', 5, 4, 10, 7, 0, 0, 2, 0, 255,
        ]);
        let o = parse_dhcp(&m).unwrap().opts;
        assert_eq!(
            o.relay_agent_info,
            Some(&[1, 2, b'c', b'1', 5, 4, 10, 7, 0, 0, 2, 0][..])
        );
        assert_eq!(o.link_selection, Some(Ipv4Addr::new(10, 7, 0, 0)));
        // A sub-option running past the end of option 82.
        let m = message(&[53, 1, 1, 82, 4, 1, 9, 0, 0, 255]);
        assert_eq!(parse_dhcp(&m), Err(DropReason::BadDhcp));
        // A link selection that is not four bytes.
        let m = message(&[53, 1, 1, 82, 5, 5, 3, 10, 0, 0, 255]);
        assert_eq!(parse_dhcp(&m), Err(DropReason::BadDhcp));
    }

    #[test]
    fn pad_first_occurrence_and_missing_end() {
        let m = message(&[
            0, 0, 53, 1, 1, 53, 1, 3, 0, 50, 4, 1, 1, 1, 1, 50, 4, 2, 2, 2, 2,
        ]);
        let o = parse_dhcp(&m).unwrap().opts;
        assert_eq!(o.msg_type, msg_type::DISCOVER);
        assert_eq!(o.requested_ip, Some(Ipv4Addr::new(1, 1, 1, 1)));
        // Garbage after END is not read.
        let m = message(&[53, 1, 1, 255, 50, 200]);
        assert!(parse_dhcp(&m).is_ok());
        // An empty client identifier counts as absent.
        let m = message(&[53, 1, 1, 61, 0, 255]);
        assert_eq!(parse_dhcp(&m).unwrap().opts.client_id, None);
    }

    #[test]
    fn malformed_messages() {
        let bad = DropReason::BadDhcp;
        let ok = message(&[53, 1, 1, 255]);
        assert!(parse_dhcp(&ok).is_ok());
        for n in 0..BOOTP_MIN {
            assert_eq!(parse_dhcp(&ok[..n]), Err(bad), "short {n}");
        }
        let mut m = ok.clone();
        m[off::OP] = OP_BOOTREPLY;
        assert_eq!(parse_dhcp(&m), Err(bad), "op");
        let mut m = ok.clone();
        m[off::HLEN] = 17;
        assert_eq!(parse_dhcp(&m), Err(bad), "hlen > 16");
        m[off::HLEN] = 16;
        assert!(parse_dhcp(&m).is_ok(), "hlen 16");
        let mut m = ok.clone();
        m[off::COOKIE] = 98;
        assert_eq!(parse_dhcp(&m), Err(bad), "cookie");
        // Option lengths past the end, at every place an option can end.
        assert_eq!(parse_dhcp(&message(&[53, 1, 1, 12])), Err(bad));
        assert_eq!(parse_dhcp(&message(&[53, 1, 1, 12, 5, 1, 2])), Err(bad));
        assert_eq!(parse_dhcp(&message(&[53, 2, 1])), Err(bad));
        // Wrong fixed lengths.
        assert_eq!(parse_dhcp(&message(&[53, 2, 1, 1, 255])), Err(bad));
        assert_eq!(
            parse_dhcp(&message(&[53, 1, 1, 50, 3, 1, 2, 3, 255])),
            Err(bad)
        );
        assert_eq!(parse_dhcp(&message(&[53, 1, 1, 57, 1, 5, 255])), Err(bad));
        // No message type.
        assert_eq!(
            parse_dhcp(&message(&[50, 4, 1, 2, 3, 4, 255])),
            Err(DropReason::BadMessageType)
        );
        assert_eq!(parse_dhcp(&message(&[])), Err(DropReason::BadMessageType));
    }

    #[test]
    fn short_chaddr() {
        let mut m = message(&[53, 1, 1, 255]);
        m[off::HTYPE] = 6;
        m[off::HLEN] = 2;
        let d = parse_dhcp(&m).unwrap();
        assert_eq!(d.hw_addr(), &[2, 1]);
        assert!(!d.has_ethernet_chaddr());
    }
}
