//! Building a BOOTREPLY as a whole Ethernet frame.
//!
//! The worker transmits frames, not datagrams (docs/decisions.md, 1), so a
//! reply carries its own Ethernet, IPv4 and UDP headers, addressed by the
//! rules of RFC 2131 §4.1: a client without an address is reached at its
//! MAC without ARP, a relay at its MAC on port 67.
//!
//! The option order is fixed here because several RFCs constrain it: the
//! lease options first, then configured options (the subnet's "always" list,
//! then the client's parameter request list in the client's order), then the
//! client identifier echoed (RFC 6842) and the relay agent information echoed
//! verbatim as the last option before END (RFC 3046 §2.2).
//!
//! Size: the IP datagram is kept within 576 bytes unless the client's
//! maximum message size (option 57, read as the largest IP datagram it
//! accepts, RFC 2132 §9.10) allows more, and never above a 1500-byte MTU.
//! Optional options that do not fit are skipped so that the mandatory ones,
//! the echoes and END always do; if even those do not fit, the reply is
//! refused with [`DropReason::ReplyTooLarge`]. `siaddr` is always 0: the fast
//! path has no next-server (TFTP) configuration.

use std::net::Ipv4Addr;

use super::checksum;
use super::dhcp::{self, msg_type, off, DhcpMessage};
use super::frame::{self, FrameInfo};
use crate::config::{opt, EncodedOptions};
use crate::counters::DropReason;

/// The smallest IP datagram every client must accept (RFC 2131 §2).
pub const MIN_IP_DATAGRAM: usize = 576;
/// The largest IP datagram the fast path sends (a 1500-byte MTU).
pub const MAX_IP_DATAGRAM: usize = 1500;

/// Lease time, T1 and T2 in seconds (options 51, 58, 59).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimes {
    pub lease: u32,
    pub renew: u32,
    pub rebind: u32,
}

/// What the reply says, beyond what is copied from the request.
#[derive(Debug, Clone, Copy)]
pub struct ReplySpec<'a> {
    /// OFFER, ACK or NAK.
    pub msg_type: u8,
    pub yiaddr: Ipv4Addr,
    /// Echoed in an ACK to a client that already has an address; 0 otherwise.
    pub ciaddr: Ipv4Addr,
    pub server_ip: Ipv4Addr,
    pub server_mac: [u8; 6],
    /// Options 51/58/59; `None` for INFORM and NAK.
    pub lease: Option<LeaseTimes>,
    /// Option 56, a short text for the client (NAK).
    pub message: Option<&'a [u8]>,
    /// The subnet's configured options; `None` sends none (NAK).
    pub options: Option<&'a EncodedOptions>,
}

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub port: u16,
}

impl Destination {
    const BROADCAST: Destination = Destination {
        mac: frame::BROADCAST_MAC,
        ip: Ipv4Addr::BROADCAST,
        port: frame::CLIENT_PORT,
    };
}

/// The destination of a reply by RFC 2131 §4.1.
///
/// The request's source MAC is the next hop whenever the reply goes to an
/// IP address the request came from (a relay, or a client with `ciaddr`),
/// which spares the worker an ARP table. A client without an address is
/// unicast at chaddr only when chaddr is an Ethernet address; anything else
/// is broadcast.
pub fn destination(
    frame: &FrameInfo,
    req: &DhcpMessage,
    msg_type: u8,
    yiaddr: Ipv4Addr,
) -> Destination {
    if !req.giaddr.is_unspecified() {
        return Destination {
            mac: frame.src_mac,
            ip: req.giaddr,
            port: frame::SERVER_PORT,
        };
    }
    if msg_type == msg_type::NAK {
        return Destination::BROADCAST;
    }
    if !req.ciaddr.is_unspecified() {
        return Destination {
            mac: frame.src_mac,
            ip: req.ciaddr,
            port: frame::CLIENT_PORT,
        };
    }
    if req.broadcast_flag() || yiaddr.is_unspecified() || !req.has_ethernet_chaddr() {
        return Destination::BROADCAST;
    }
    Destination {
        mac: req.mac(),
        ip: yiaddr,
        port: frame::CLIENT_PORT,
    }
}

/// A set of option codes, to write each configured option at most once.
#[derive(Default)]
struct CodeSet([u64; 4]);

impl CodeSet {
    #[inline]
    fn insert(&mut self, code: u8) {
        if let Some(w) = self.0.get_mut(usize::from(code >> 6)) {
            *w |= 1 << (code & 63);
        }
    }

    #[inline]
    fn contains(&self, code: u8) -> bool {
        self.0
            .get(usize::from(code >> 6))
            .is_some_and(|w| w & (1 << (code & 63)) != 0)
    }
}

/// Codes the builder writes itself (or must never send from configuration).
const RESERVED: [u8; 9] = [
    opt::PAD,
    opt::END,
    opt::OVERLOAD,
    opt::MESSAGE_TYPE,
    opt::SERVER_ID,
    opt::LEASE_TIME,
    opt::RENEWAL_TIME,
    opt::REBINDING_TIME,
    opt::CLIENT_ID,
];

/// A bounds-checked cursor: every write fails instead of panicking.
struct Out<'a> {
    buf: &'a mut [u8],
    pos: usize,
    /// Writes stop here (≤ `buf.len()`).
    limit: usize,
}

impl Out<'_> {
    #[inline]
    fn put(&mut self, b: &[u8]) -> Result<(), DropReason> {
        let end = self
            .pos
            .checked_add(b.len())
            .filter(|&e| e <= self.limit)
            .ok_or(DropReason::ReplyTooLarge)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(DropReason::ReplyTooLarge)?
            .copy_from_slice(b);
        self.pos = end;
        Ok(())
    }

    #[inline]
    fn tlv(&mut self, code: u8, value: &[u8]) -> Result<(), DropReason> {
        let len = u8::try_from(value.len()).map_err(|_| DropReason::ReplyTooLarge)?;
        self.put(&[code, len])?;
        self.put(value)
    }

    /// Whether `n` more bytes fit while keeping `reserve` bytes free.
    #[inline]
    fn fits(&self, n: usize, reserve: usize) -> bool {
        self.pos + n + reserve <= self.limit
    }

    #[inline]
    fn zero_to(&mut self, end: usize) -> Result<(), DropReason> {
        if end > self.pos {
            if end > self.limit {
                return Err(DropReason::ReplyTooLarge);
            }
            self.buf
                .get_mut(self.pos..end)
                .ok_or(DropReason::ReplyTooLarge)?
                .fill(0);
            self.pos = end;
        }
        Ok(())
    }
}

/// Writes the reply to `req` (parsed from the frame `frame` describes) into
/// `tx` and returns the frame length.
pub fn build_reply(
    tx: &mut [u8],
    frame: &FrameInfo,
    req: &DhcpMessage,
    spec: &ReplySpec,
) -> Result<usize, DropReason> {
    const BIG: DropReason = DropReason::ReplyTooLarge;
    let is_nak = spec.msg_type == msg_type::NAK;
    let l2 = frame::ETH_HEADER
        + if frame.vlan_tci.is_some() {
            frame::VLAN_TAG
        } else {
            0
        };
    let ip_off = l2;
    let udp_off = ip_off + frame::IPV4_HEADER;
    let bootp_off = udp_off + frame::UDP_HEADER;
    let max_ip = req
        .opts
        .max_message_size
        .map(usize::from)
        .filter(|&m| m >= MIN_IP_DATAGRAM)
        .unwrap_or(MIN_IP_DATAGRAM)
        .min(MAX_IP_DATAGRAM);
    let mut out = Out {
        limit: tx.len().min(l2 + max_ip),
        buf: tx,
        pos: bootp_off,
    };

    // The fixed BOOTP header, assembled on the stack and copied once.
    let mut h = [0u8; dhcp::BOOTP_MIN];
    h[off::OP] = dhcp::OP_BOOTREPLY;
    h[off::HTYPE] = req.htype;
    h[off::HLEN] = req.hlen;
    h[off::XID..off::XID + 4].copy_from_slice(&req.xid.to_be_bytes());
    let mut flags = req.flags;
    if is_nak && !req.giaddr.is_unspecified() {
        // The relay must broadcast a NAK to the client (RFC 2131 §4.3.2).
        flags |= dhcp::FLAG_BROADCAST;
    }
    h[off::FLAGS..off::FLAGS + 2].copy_from_slice(&flags.to_be_bytes());
    h[off::CIADDR..off::CIADDR + 4].copy_from_slice(&spec.ciaddr.octets());
    h[off::YIADDR..off::YIADDR + 4].copy_from_slice(&spec.yiaddr.octets());
    h[off::GIADDR..off::GIADDR + 4].copy_from_slice(&req.giaddr.octets());
    h[off::CHADDR..off::SNAME].copy_from_slice(&req.chaddr);
    h[off::COOKIE..off::OPTIONS].copy_from_slice(&dhcp::MAGIC_COOKIE);
    out.put(&h)?;

    out.tlv(opt::MESSAGE_TYPE, &[spec.msg_type])?;
    out.tlv(opt::SERVER_ID, &spec.server_ip.octets())?;
    if let Some(l) = spec.lease {
        out.tlv(opt::LEASE_TIME, &l.lease.to_be_bytes())?;
        out.tlv(opt::RENEWAL_TIME, &l.renew.to_be_bytes())?;
        out.tlv(opt::REBINDING_TIME, &l.rebind.to_be_bytes())?;
    }
    if let Some(m) = spec.message {
        out.tlv(opt::MESSAGE, m.get(..255).unwrap_or(m))?;
    }

    let echo_id = req.opts.client_id;
    let echo_relay = req.opts.relay_agent_info;
    let reserve = echo_id.map_or(0, |v| 2 + v.len()) + echo_relay.map_or(0, |v| 2 + v.len()) + 1;
    if let Some(opts) = spec.options {
        let mut done = CodeSet::default();
        for c in RESERVED {
            done.insert(c);
        }
        done.insert(opt::RELAY_AGENT_INFO);
        let requested = req.opts.param_request_list.unwrap_or(&[]);
        for &code in opts.always().iter().chain(requested) {
            if done.contains(code) {
                continue;
            }
            done.insert(code);
            if let Some(tlv) = opts.tlv(code) {
                if out.fits(tlv.len(), reserve) {
                    out.put(tlv)?;
                }
            }
        }
    }
    if let Some(id) = echo_id {
        out.tlv(opt::CLIENT_ID, id)?;
    }
    if let Some(rai) = echo_relay {
        out.tlv(opt::RELAY_AGENT_INFO, rai)?;
    }
    out.put(&[opt::END])?;
    out.zero_to(bootp_off + dhcp::BOOTP_MIN_REPLY)?;
    let end = out.pos;
    let tx = out.buf;

    let dst = destination(frame, req, spec.msg_type, spec.yiaddr);
    let udp_len = u16::try_from(end - udp_off).map_err(|_| BIG)?;
    let ip_len = u16::try_from(end - ip_off).map_err(|_| BIG)?;

    let eth = tx.get_mut(..l2).ok_or(BIG)?;
    eth[0..6].copy_from_slice(&dst.mac);
    eth[6..12].copy_from_slice(&spec.server_mac);
    let mut at = 12;
    if let Some(tci) = frame.vlan_tci {
        eth[12..14].copy_from_slice(&frame::ETHERTYPE_VLAN.to_be_bytes());
        eth[14..16].copy_from_slice(&tci.to_be_bytes());
        at = 16;
    }
    eth[at..at + 2].copy_from_slice(&frame::ETHERTYPE_IPV4.to_be_bytes());

    let src = spec.server_ip.octets();
    let dip = dst.ip.octets();
    let ip = tx.get_mut(ip_off..udp_off).ok_or(BIG)?;
    let [l0, l1] = ip_len.to_be_bytes();
    ip.copy_from_slice(&[
        0x45,
        0,
        l0,
        l1,
        0,
        0,
        0,
        0,
        64,
        frame::IPPROTO_UDP,
        0,
        0,
        src[0],
        src[1],
        src[2],
        src[3],
        dip[0],
        dip[1],
        dip[2],
        dip[3],
    ]);
    let c = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());

    let udp = tx.get_mut(udp_off..end).ok_or(BIG)?;
    let [p0, p1] = dst.port.to_be_bytes();
    let [u0, u1] = udp_len.to_be_bytes();
    let [s0, s1] = frame::SERVER_PORT.to_be_bytes();
    udp.get_mut(..frame::UDP_HEADER)
        .ok_or(BIG)?
        .copy_from_slice(&[s0, s1, p0, p1, u0, u1, 0, 0]);
    let c = checksum::udp_checksum(src, dip, udp);
    udp.get_mut(6..8)
        .ok_or(BIG)?
        .copy_from_slice(&c.to_be_bytes());
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::{verify, verify_udp};
    use crate::wire::dhcp::tests::message;
    use crate::wire::frame::tests::frame;
    use crate::wire::{parse_dhcp, parse_frame};

    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xaa];

    fn spec<'a>(t: u8, options: Option<&'a EncodedOptions>) -> ReplySpec<'a> {
        ReplySpec {
            msg_type: t,
            yiaddr: Ipv4Addr::new(10, 0, 0, 50),
            ciaddr: Ipv4Addr::UNSPECIFIED,
            server_ip: SERVER,
            server_mac: SERVER_MAC,
            lease: Some(LeaseTimes {
                lease: 3600,
                renew: 1800,
                rebind: 3150,
            }),
            message: None,
            options,
        }
    }

    /// Builds the reply to a request made of `opts` and returns the frame.
    fn build(
        vlan: Option<u16>,
        opts: &[u8],
        s: &ReplySpec,
        tx_len: usize,
    ) -> Result<Vec<u8>, DropReason> {
        let f = frame(vlan, 0, &message(opts));
        let fi = parse_frame(&f).unwrap();
        let req = parse_dhcp(fi.payload(&f).unwrap()).unwrap();
        let mut tx = vec![0xee; tx_len];
        let n = build_reply(&mut tx, &fi, &req, s)?;
        tx.truncate(n);
        Ok(tx)
    }

    /// Checks the framing of a built reply and returns (l3 offset, option codes in order).
    fn check(f: &[u8]) -> (usize, Vec<u8>) {
        let l3 = if f[12..14] == [0x81, 0x00] { 18 } else { 14 };
        let ip = &f[l3..];
        assert_eq!(ip[0], 0x45);
        assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), ip.len());
        assert!(verify(&ip[..20]), "ip checksum");
        let udp = &ip[20..];
        assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
        let (src, dst) = (
            ip[12..16].try_into().unwrap(),
            ip[16..20].try_into().unwrap(),
        );
        assert!(verify_udp(src, dst, udp), "udp checksum");
        let bootp = &udp[8..];
        assert!(bootp.len() >= dhcp::BOOTP_MIN_REPLY);
        assert_eq!(bootp[0], dhcp::OP_BOOTREPLY);
        assert_eq!(&bootp[236..240], &dhcp::MAGIC_COOKIE);
        let mut codes = Vec::new();
        let mut at = 240;
        while bootp[at] != opt::END {
            codes.push(bootp[at]);
            at += 2 + usize::from(bootp[at + 1]);
        }
        (l3, codes)
    }

    fn options() -> EncodedOptions {
        let mut o = EncodedOptions::default();
        o.set(opt::SUBNET_MASK, &[255, 255, 255, 0], true).unwrap();
        o.set(opt::ROUTERS, &[10, 0, 0, 1], true).unwrap();
        o.set(opt::DNS_SERVERS, &[10, 0, 0, 53], false).unwrap();
        o.set(opt::DOMAIN_NAME, b"example.net", false).unwrap();
        o
    }

    #[test]
    fn layout_order_padding_and_checksums() {
        let o = options();
        let req = [
            53, 1, 1, 55, 4, 15, 1, 6, 82, 61, 2, 9, 9, 82, 4, 1, 2, b'a', b'b', 255,
        ];
        let f = build(None, &req, &spec(msg_type::OFFER, Some(&o)), 1600).unwrap();
        let (l3, codes) = check(&f);
        assert_eq!(codes, [53, 54, 51, 58, 59, 1, 3, 15, 6, 61, 82]);
        let bootp = &f[l3 + 28..];
        assert_eq!(&bootp[off::YIADDR..off::YIADDR + 4], &[10, 0, 0, 50]);
        assert_eq!(&bootp[off::SIADDR..off::SIADDR + 4], &[0; 4]);
        assert_eq!(
            &bootp[off::XID..off::XID + 4],
            &0xdead_beefu32.to_be_bytes()
        );
        // The request's giaddr 10.0.0.1 makes this a relayed reply.
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&f[6..12], &SERVER_MAC);
        assert_eq!(&f[l3 + 22..l3 + 24], &67u16.to_be_bytes());
        assert_eq!(&f[l3 + 16..l3 + 20], &[10, 0, 0, 1]);
        // Padding is zeros, not the 0xee the buffer held.
        assert!(f.iter().all(|&b| b != 0xee));
    }

    #[test]
    fn vlan_tag_is_copied() {
        let f = build(
            Some(0x6123),
            &[53, 1, 1, 255],
            &spec(msg_type::OFFER, None),
            1600,
        )
        .unwrap();
        assert_eq!(&f[12..18], &[0x81, 0x00, 0x61, 0x23, 0x08, 0x00]);
        check(&f);
        // A short reply is padded to the 300-byte BOOTP minimum.
        assert_eq!(f.len() - 18 - 28, dhcp::BOOTP_MIN_REPLY);
    }

    #[test]
    fn every_short_buffer_is_refused() {
        let o = options();
        let s = spec(msg_type::ACK, Some(&o));
        let need = build(None, &[53, 1, 3, 255], &s, 1600).unwrap().len();
        for n in 0..need {
            assert_eq!(
                build(None, &[53, 1, 3, 255], &s, n),
                Err(DropReason::ReplyTooLarge),
                "{n}"
            );
        }
    }

    #[test]
    fn max_message_size_bounds_optional_options() {
        // Six 180-byte options: 1092 bytes, far above 576, within 1500.
        let mut o = EncodedOptions::default();
        for code in 200..206 {
            o.set(code, &[code; 180], false).unwrap();
        }
        let prl = [55, 6, 200, 201, 202, 203, 204, 205];
        let rai = [82, 3, 1, 1, 7];
        let mut req = vec![53, 1, 1];
        req.extend_from_slice(&prl);
        req.extend_from_slice(&rai);
        req.push(255);
        let s = spec(msg_type::OFFER, Some(&o));

        let f = build(None, &req, &s, 1600).unwrap();
        let (l3, codes) = check(&f);
        assert!(f.len() - l3 <= MIN_IP_DATAGRAM);
        assert_eq!(
            codes,
            [53, 54, 51, 58, 59, 200, 82],
            "only what fits in 576, 82 still last"
        );

        let mut big = req.clone();
        big.splice(0..0, [57, 2, 0x05, 0xdc]); // 1500
        let f = build(None, &big, &s, 1600).unwrap();
        let (l3, codes) = check(&f);
        assert!(f.len() - l3 <= 1500);
        assert_eq!(
            codes,
            [53, 54, 51, 58, 59, 200, 201, 202, 203, 204, 205, 82]
        );

        // A maximum below 576 is illegal and treated as 576; a small tx
        // buffer bounds the reply too.
        let mut small = req.clone();
        small.splice(0..0, [57, 2, 0x01, 0x00]);
        let f = build(None, &small, &s, 1600).unwrap();
        assert_eq!(check(&f).1, [53, 54, 51, 58, 59, 200, 82]);
        let f = build(None, &big, &s, 500).unwrap();
        assert!(f.len() <= 500);
        assert_eq!(check(&f).1, [53, 54, 51, 58, 59, 200, 82]);
    }

    #[test]
    fn nak_is_broadcast_and_relayed_nak_sets_the_flag() {
        let mut s = spec(msg_type::NAK, None);
        s.yiaddr = Ipv4Addr::UNSPECIFIED;
        s.lease = None;
        s.message = Some(b"no");
        let f = build(None, &[53, 1, 3, 255], &s, 1600).unwrap();
        let (l3, codes) = check(&f);
        assert_eq!(codes, [53, 54, 56]);
        // Relayed (giaddr set in the test message): to the relay, broadcast bit on.
        assert_eq!(&f[l3 + 16..l3 + 20], &[10, 0, 0, 1]);
        assert_eq!(f[l3 + 28 + off::FLAGS], 0x80);
    }

    #[test]
    fn destination_rules() {
        let f = frame(None, 0, &message(&[53, 1, 1, 255]));
        let fi = parse_frame(&f).unwrap();
        let base = parse_dhcp(fi.payload(&f).unwrap()).unwrap();
        let y = Ipv4Addr::new(10, 0, 0, 50);
        let relay = Destination {
            mac: fi.src_mac,
            ip: base.giaddr,
            port: 67,
        };
        assert_eq!(destination(&fi, &base, msg_type::OFFER, y), relay);
        assert_eq!(destination(&fi, &base, msg_type::NAK, y), relay);

        let mut m = base;
        m.giaddr = Ipv4Addr::UNSPECIFIED;
        let to_ciaddr = Destination {
            mac: fi.src_mac,
            ip: m.ciaddr,
            port: 68,
        };
        assert_eq!(destination(&fi, &m, msg_type::ACK, y), to_ciaddr);
        assert_eq!(
            destination(&fi, &m, msg_type::NAK, y),
            Destination::BROADCAST
        );

        m.ciaddr = Ipv4Addr::UNSPECIFIED;
        assert_eq!(
            destination(&fi, &m, msg_type::OFFER, y),
            Destination::BROADCAST
        );
        m.flags = 0;
        let to_chaddr = Destination {
            mac: [2, 1, 2, 3, 4, 5],
            ip: y,
            port: 68,
        };
        assert_eq!(destination(&fi, &m, msg_type::OFFER, y), to_chaddr);
        assert_eq!(
            destination(&fi, &m, msg_type::ACK, Ipv4Addr::UNSPECIFIED),
            Destination::BROADCAST
        );
        m.htype = 6;
        assert_eq!(
            destination(&fi, &m, msg_type::OFFER, y),
            Destination::BROADCAST
        );
    }
}
