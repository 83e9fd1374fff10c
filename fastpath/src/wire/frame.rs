//! Ethernet II / 802.1Q / IPv4 / UDP framing of requests.
//!
//! The XDP program steers UDP/67 here but checks little else, so every field
//! is untrusted: each read is a bounds-checked `get` and every inconsistent
//! length is a [`DropReason::BadFrame`]. Parsing only reads the headers and
//! returns a small `Copy` summary; the DHCP payload stays in the frame.
//!
//! Neither the IPv4 header checksum nor the UDP checksum of a request is
//! verified: the NIC has already checked the Ethernet FCS, and senders with
//! TX checksum offload (a veth peer, a relay on the same host) hand us
//! frames whose UDP checksum is legitimately unfinished (docs/decisions.md, 1). A
//! corrupt field that survives is just another untrusted input.

use std::net::Ipv4Addr;

use crate::channel::MAX_FRAME;
use crate::counters::DropReason;

pub const ETH_HEADER: usize = 14;
pub const VLAN_TAG: usize = 4;
pub const IPV4_HEADER: usize = 20;
pub const UDP_HEADER: usize = 8;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const IPPROTO_UDP: u8 = 17;
pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// The header fields of one request frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// The 802.1Q tag control information (PCP, DEI, VID) when tagged.
    pub vlan_tci: Option<u16>,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    /// Where the UDP payload (the BOOTP message) starts in the frame.
    pub payload_off: usize,
    /// Its length as the UDP header states it (the frame may be longer:
    /// Ethernet padding follows short datagrams).
    pub payload_len: usize,
}

impl FrameInfo {
    /// The UDP payload of `frame`, the frame this summary was parsed from.
    #[inline]
    pub fn payload<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        let end = self.payload_off.checked_add(self.payload_len)?;
        frame.get(self.payload_off..end)
    }
}

#[inline]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// Parses the link, network and transport headers of a request to UDP/67.
pub fn parse_frame(frame: &[u8]) -> Result<FrameInfo, DropReason> {
    const BAD: DropReason = DropReason::BadFrame;
    if frame.len() > MAX_FRAME {
        // The worker must be able to copy any frame it hands the control
        // plane into a `FrameBuf`.
        return Err(BAD);
    }
    let eth: &[u8; ETH_HEADER] = frame
        .get(..ETH_HEADER)
        .ok_or(BAD)?
        .try_into()
        .map_err(|_| BAD)?;
    let dst_mac = [eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]];
    let src_mac = [eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]];
    let mut ethertype = be16([eth[12], eth[13]]);
    let mut l3 = ETH_HEADER;
    let mut vlan_tci = None;
    if ethertype == ETHERTYPE_VLAN {
        let tag: &[u8; VLAN_TAG] = frame
            .get(ETH_HEADER..ETH_HEADER + VLAN_TAG)
            .ok_or(BAD)?
            .try_into()
            .map_err(|_| BAD)?;
        vlan_tci = Some(be16([tag[0], tag[1]]));
        ethertype = be16([tag[2], tag[3]]);
        l3 += VLAN_TAG;
    }
    if ethertype != ETHERTYPE_IPV4 {
        return Err(BAD);
    }

    let ip = frame.get(l3..).ok_or(BAD)?;
    let h: &[u8; IPV4_HEADER] = ip
        .get(..IPV4_HEADER)
        .ok_or(BAD)?
        .try_into()
        .map_err(|_| BAD)?;
    if h[0] >> 4 != 4 {
        return Err(BAD);
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(be16([h[2], h[3]]));
    if ihl < IPV4_HEADER || total < ihl + UDP_HEADER || total > ip.len() {
        return Err(BAD);
    }
    // A fragment (MF set or a non-zero offset) cannot be answered without
    // reassembly, and DHCP requests are never fragmented in practice.
    if be16([h[6], h[7]]) & 0x3fff != 0 || h[9] != IPPROTO_UDP {
        return Err(BAD);
    }
    let src_ip = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let dst_ip = Ipv4Addr::new(h[16], h[17], h[18], h[19]);

    let udp = ip.get(ihl..total).ok_or(BAD)?;
    let u: &[u8; UDP_HEADER] = udp
        .get(..UDP_HEADER)
        .ok_or(BAD)?
        .try_into()
        .map_err(|_| BAD)?;
    let src_port = be16([u[0], u[1]]);
    let dst_port = be16([u[2], u[3]]);
    let udp_len = usize::from(be16([u[4], u[5]]));
    if udp_len < UDP_HEADER || udp_len > udp.len() || dst_port != SERVER_PORT {
        return Err(BAD);
    }
    Ok(FrameInfo {
        dst_mac,
        src_mac,
        vlan_tci,
        src_ip,
        dst_ip,
        src_port,
        dst_port,
        payload_off: l3 + ihl + UDP_HEADER,
        payload_len: udp_len - UDP_HEADER,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal request frame around `payload`: optional VLAN tag, IPv4
    /// with `ip_opts` bytes of options (a multiple of 4).
    pub(crate) fn frame(vlan: Option<u16>, ip_opts: usize, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        if let Some(tci) = vlan {
            f.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ihl = IPV4_HEADER + ip_opts;
        let total = (ihl + UDP_HEADER + payload.len()) as u16;
        f.push(0x40 | (ihl / 4) as u8);
        f.push(0);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 64, IPPROTO_UDP, 0, 0]);
        f.extend_from_slice(&[0, 0, 0, 0, 255, 255, 255, 255]);
        f.extend(std::iter::repeat_n(1u8, ip_opts)); // NOP options
        f.extend_from_slice(&CLIENT_PORT.to_be_bytes());
        f.extend_from_slice(&SERVER_PORT.to_be_bytes());
        f.extend_from_slice(&((UDP_HEADER + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn plain_frame() {
        let f = frame(None, 0, b"hello");
        let i = parse_frame(&f).unwrap();
        assert_eq!(i.vlan_tci, None);
        assert_eq!(i.src_mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(i.dst_mac, BROADCAST_MAC);
        assert_eq!(i.dst_ip, Ipv4Addr::BROADCAST);
        assert_eq!((i.src_port, i.dst_port), (68, 67));
        assert_eq!(i.payload(&f), Some(&b"hello"[..]));
    }

    #[test]
    fn vlan_tag_and_ip_options() {
        let f = frame(Some(0x2064), 40, b"abc");
        let i = parse_frame(&f).unwrap();
        assert_eq!(i.vlan_tci, Some(0x2064));
        assert_eq!(i.payload_off, ETH_HEADER + VLAN_TAG + 60 + UDP_HEADER);
        assert_eq!(i.payload(&f), Some(&b"abc"[..]));
    }

    #[test]
    fn ethernet_padding_is_ignored() {
        let mut f = frame(None, 0, b"x");
        f.extend_from_slice(&[0; 20]);
        assert_eq!(parse_frame(&f).unwrap().payload(&f), Some(&b"x"[..]));
    }

    #[test]
    fn every_truncation_is_rejected() {
        let f = frame(Some(5), 8, b"payload");
        for n in 0..f.len() {
            assert_eq!(parse_frame(&f[..n]), Err(DropReason::BadFrame), "len {n}");
        }
    }

    #[test]
    fn bad_headers_are_rejected() {
        let base = frame(None, 0, b"payload");
        let ip = ETH_HEADER;
        let udp = ip + IPV4_HEADER;
        type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("arp", Box::new(|f| f[12..14].copy_from_slice(&[8, 6]))),
            ("ipv6 version", Box::new(move |f| f[ip] = 0x65)),
            ("ihl 4", Box::new(move |f| f[ip] = 0x44)),
            ("ihl 15 past end", Box::new(move |f| f[ip] = 0x4f)),
            ("tcp", Box::new(move |f| f[ip + 9] = 6)),
            ("more fragments", Box::new(move |f| f[ip + 6] = 0x20)),
            ("fragment offset", Box::new(move |f| f[ip + 7] = 1)),
            (
                "total > frame",
                Box::new(move |f| f[ip + 2..ip + 4].copy_from_slice(&500u16.to_be_bytes())),
            ),
            (
                "total < header",
                Box::new(move |f| f[ip + 2..ip + 4].copy_from_slice(&27u16.to_be_bytes())),
            ),
            (
                "udp len > ip",
                Box::new(move |f| f[udp + 4..udp + 6].copy_from_slice(&100u16.to_be_bytes())),
            ),
            (
                "udp len < 8",
                Box::new(move |f| f[udp + 4..udp + 6].copy_from_slice(&7u16.to_be_bytes())),
            ),
            (
                "port 68",
                Box::new(move |f| f[udp + 2..udp + 4].copy_from_slice(&68u16.to_be_bytes())),
            ),
            ("oversize", Box::new(|f| f.resize(MAX_FRAME + 1, 0))),
        ];
        for (name, mutate) in cases {
            let mut f = base.clone();
            mutate(&mut f);
            assert_eq!(parse_frame(&f), Err(DropReason::BadFrame), "{name}");
        }
    }

    #[test]
    fn double_tag_is_not_ipv4() {
        let mut f = frame(Some(7), 0, b"p");
        // An inner 0x8100 (QinQ) is not supported: one tag only.
        f[16..18].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        assert_eq!(parse_frame(&f), Err(DropReason::BadFrame));
    }
}
