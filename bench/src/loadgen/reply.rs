//! A minimal, bounds-checked BOOTREPLY parser.
//!
//! The fast path's parser only accepts BOOTREQUESTs, so the generator has
//! its own: Ethernet (one optional 802.1Q tag), IPv4 (any IHL), UDP to the
//! port the replies come to, then the BOOTP fields and the two options the
//! generator needs (53, message type; 54, server identifier). Every read is
//! a checked `get`; no input panics. Checksums are not verified: a server
//! on the same host may hand us frames whose checksum offload is unfinished.

use super::frame::{ACK, NAK, OFFER};

/// The fields of a DHCP reply the generator uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reply {
    pub src_mac: [u8; 6],
    pub src_ip: [u8; 4],
    pub xid: u32,
    pub yiaddr: [u8; 4],
    pub chaddr: [u8; 6],
    pub msg_type: u8,
    /// Option 54, or zeros when absent.
    pub server_id: [u8; 4],
    /// Option 51 (seconds), or 0 when absent.
    pub lease_secs: u32,
}

/// What a received frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Not IPv4/UDP to the reply port: somebody else's traffic.
    NotOurs,
    /// To the reply port, but not a usable DHCP reply.
    Invalid,
    Reply(Reply),
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

#[inline]
fn arr<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Classifies `frame`; `port` is the UDP destination port replies come to
/// (68, or 67 when acting as a relay).
pub fn parse(frame: &[u8], port: u16) -> Parsed {
    match headers(frame, port) {
        None => Parsed::NotOurs,
        Some((src_mac, src_ip, payload)) => match bootreply(payload) {
            Some(mut r) => {
                r.src_mac = src_mac;
                r.src_ip = src_ip;
                Parsed::Reply(r)
            }
            None => Parsed::Invalid,
        },
    }
}

/// The source MAC, source IP and UDP payload of an IPv4/UDP frame to `port`.
fn headers(frame: &[u8], port: u16) -> Option<([u8; 6], [u8; 4], &[u8])> {
    let src_mac = arr::<6>(frame, 6)?;
    let mut l3 = 14;
    let mut ethertype = be16(frame, 12)?;
    if ethertype == 0x8100 {
        ethertype = be16(frame, 16)?;
        l3 = 18;
    }
    if ethertype != 0x0800 {
        return None;
    }
    let ip = frame.get(l3..)?;
    let vihl = *ip.first()?;
    if vihl >> 4 != 4 || *ip.get(9)? != 17 {
        return None;
    }
    let ihl = usize::from(vihl & 0x0f) * 4;
    let total = usize::from(be16(ip, 2)?);
    if ihl < 20 || total < ihl + 8 || total > ip.len() {
        return None;
    }
    // Only unfragmented datagrams (or a first fragment) carry the header.
    if be16(ip, 6)? & 0x1fff != 0 {
        return None;
    }
    let src_ip = arr::<4>(ip, 12)?;
    let udp = ip.get(ihl..total)?;
    if be16(udp, 2)? != port {
        return None;
    }
    let udp_len = usize::from(be16(udp, 4)?);
    // An inconsistent UDP length on our port is still our (broken) packet.
    let payload = if udp_len >= 8 && udp_len <= udp.len() {
        udp.get(8..udp_len)?
    } else {
        &[]
    };
    Some((src_mac, src_ip, payload))
}

/// The BOOTREPLY fields and options 53, 54 and 51 of a DHCP message.
fn bootreply(m: &[u8]) -> Option<Reply> {
    if m.len() < 240 || m[0] != 2 || m[1] != 1 || m[2] != 6 || m[236..240] != [99, 130, 83, 99] {
        return None;
    }
    let mut r = Reply {
        xid: u32::from_be_bytes(arr::<4>(m, 4)?),
        yiaddr: arr::<4>(m, 16)?,
        chaddr: arr::<6>(m, 28)?,
        ..Reply::default()
    };
    let mut i = 240;
    let mut msg_type = None;
    while let Some(&code) = m.get(i) {
        match code {
            0 => {
                i += 1;
                continue;
            }
            255 => break,
            _ => {}
        }
        let len = usize::from(*m.get(i + 1)?);
        let value = m.get(i + 2..i + 2 + len)?;
        match (code, len) {
            (53, 1) => msg_type = Some(value[0]),
            (54, 4) => r.server_id = arr::<4>(value, 0)?,
            (51, 4) => r.lease_secs = u32::from_be_bytes(arr::<4>(value, 0)?),
            _ => {}
        }
        i += 2 + len;
    }
    r.msg_type = msg_type?;
    matches!(r.msg_type, OFFER | ACK | NAK).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
    use dhcproto::Encodable;
    use std::net::Ipv4Addr;

    /// A whole frame around a reply built by dhcproto.
    fn reply_frame(m: &Message, vlan: bool, dport: u16) -> Vec<u8> {
        raw_frame(&m.to_vec().unwrap(), vlan, dport)
    }

    /// A whole frame around a raw DHCP payload.
    fn raw_frame(payload: &[u8], vlan: bool, dport: u16) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[0x0e, 1, 2, 3, 4, 5]);
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 8 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0]);
        let l = f.len();
        f[l - 10..l - 8].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[198, 18, 0, 1, 255, 255, 255, 255]);
        f.extend_from_slice(&67u16.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        f
    }

    fn message(kind: MessageType) -> Message {
        let mut m = Message::new_with_id(
            0x1234_5678,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(198, 18, 1, 7),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &[2, 0, 0, 0, 0, 9],
        );
        m.set_opcode(Opcode::BootReply);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        m.opts_mut()
            .insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(198, 18, 0, 1)));
        m
    }

    #[test]
    fn parses_offer_ack_nak() {
        for (kind, code) in [
            (MessageType::Offer, OFFER),
            (MessageType::Ack, ACK),
            (MessageType::Nak, NAK),
        ] {
            for vlan in [false, true] {
                let f = reply_frame(&message(kind), vlan, 68);
                let Parsed::Reply(r) = parse(&f, 68) else {
                    panic!("{kind:?} not parsed");
                };
                assert_eq!(r.msg_type, code);
                assert_eq!(r.xid, 0x1234_5678);
                assert_eq!(r.yiaddr, [198, 18, 1, 7]);
                assert_eq!(r.chaddr, [2, 0, 0, 0, 0, 9]);
                assert_eq!(r.server_id, [198, 18, 0, 1]);
                assert_eq!(r.src_mac, [0x0e, 1, 2, 3, 4, 5]);
                assert_eq!(r.src_ip, [198, 18, 0, 1]);
                assert_eq!(r.lease_secs, 0, "no option 51");
            }
        }
        let mut m = message(MessageType::Ack);
        m.opts_mut().insert(DhcpOption::AddressLeaseTime(3600));
        let Parsed::Reply(r) = parse(&reply_frame(&m, false, 68), 68) else {
            panic!("not parsed");
        };
        assert_eq!(r.lease_secs, 3600);
    }

    #[test]
    fn other_ports_and_protocols_are_not_ours() {
        let f = reply_frame(&message(MessageType::Ack), false, 68);
        assert_eq!(parse(&f, 67), Parsed::NotOurs);
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(parse(&arp, 68), Parsed::NotOurs);
        let mut tcp = f.clone();
        tcp[14 + 9] = 6;
        assert_eq!(parse(&tcp, 68), Parsed::NotOurs);
        assert_eq!(parse(&[], 68), Parsed::NotOurs);
    }

    #[test]
    fn bad_replies_are_invalid() {
        // A BOOTREQUEST on the reply port.
        let mut req = message(MessageType::Ack);
        req.set_opcode(Opcode::BootRequest);
        assert_eq!(parse(&reply_frame(&req, false, 68), 68), Parsed::Invalid);
        // No message type (plain BOOTP), or a type that is no reply.
        let mut m = message(MessageType::Ack);
        m.opts_mut().remove(dhcproto::v4::OptionCode::MessageType);
        assert_eq!(parse(&reply_frame(&m, false, 68), 68), Parsed::Invalid);
        assert_eq!(
            parse(&reply_frame(&message(MessageType::Discover), false, 68), 68),
            Parsed::Invalid
        );
        // Bad cookie.
        let mut f = reply_frame(&message(MessageType::Ack), false, 68);
        f[42 + 236] = 0;
        assert_eq!(parse(&f, 68), Parsed::Invalid);
        // An option running past the end.
        let good = message(MessageType::Ack).to_vec().unwrap();
        let mut p = good[..240].to_vec();
        p.extend_from_slice(&[53, 1, 5, 54, 200, 1, 2]);
        assert_eq!(parse(&raw_frame(&p, false, 68), 68), Parsed::Invalid);
        // The same with END in place is fine.
        p.truncate(243);
        p.push(255);
        assert!(matches!(
            parse(&raw_frame(&p, false, 68), 68),
            Parsed::Reply(_)
        ));
    }

    #[test]
    fn every_truncation_and_byte_flip_is_safe() {
        let f = reply_frame(&message(MessageType::Offer), true, 68);
        for n in 0..f.len() {
            let _ = parse(&f[..n], 68);
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut g = f.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed % g.len() as u64) as usize;
                g[i] = (seed >> 32) as u8;
            }
            let _ = parse(&g, 68);
        }
    }
}
