//! Request frames: Ethernet II + IPv4 + UDP + BOOTREQUEST, written in place.
//!
//! The fixed 282 bytes (headers, the 236-byte BOOTP header with its empty
//! `sname`/`file`, the magic cookie) are copied from a template built once;
//! the per-packet fields (addresses, xid, chaddr, ciaddr) are patched in, the
//! few options are written after them, and both checksums are computed in
//! software with `irondhcp_fastpath::wire::checksum` (AF_XDP frames get no
//! offload). Nothing allocates.

use irondhcp_fastpath::wire::checksum;

pub const ETH_LEN: usize = 14;
pub const IP_OFF: usize = ETH_LEN;
pub const UDP_OFF: usize = IP_OFF + 20;
pub const BOOTP_OFF: usize = UDP_OFF + 8;
/// Options start after the 236-byte BOOTP header and the 4-byte cookie.
pub const OPTIONS_OFF: usize = BOOTP_OFF + 240;
/// The classic BOOTP minimum message size; shorter requests are padded
/// (some servers and relays drop anything smaller).
pub const MIN_BOOTP: usize = 300;
/// Longest frame [`build`] writes.
pub const MAX_FRAME: usize = OPTIONS_OFF + 128;

pub const CLIENT_PORT: u16 = 68;
pub const SERVER_PORT: u16 = 67;
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
pub const BROADCAST_IP: [u8; 4] = [255; 4];

pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;
pub const RELEASE: u8 = 7;

/// Parameter request list: subnet mask, router, DNS, domain name, lease
/// time, server id.
const PRL: [u8; 6] = [1, 3, 6, 15, 51, 54];

// BOOTP field offsets within the message.
const B_HOPS: usize = 3;
const B_XID: usize = 4;
const B_SECS: usize = 8;
const B_FLAGS: usize = 10;
const B_CIADDR: usize = 12;
const B_GIADDR: usize = 24;
const B_CHADDR: usize = 28;

/// The constant part of every request frame.
pub struct Template {
    bytes: [u8; OPTIONS_OFF],
}

impl Default for Template {
    fn default() -> Self {
        Self::new()
    }
}

impl Template {
    pub fn new() -> Self {
        let mut b = [0u8; OPTIONS_OFF];
        b[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        // IPv4: version 4, IHL 5, TTL 64, UDP; id, flags, lengths and
        // addresses are per packet.
        b[IP_OFF] = 0x45;
        b[IP_OFF + 8] = 64;
        b[IP_OFF + 9] = 17;
        // BOOTREQUEST, Ethernet, 6-byte hardware address.
        b[BOOTP_OFF] = 1;
        b[BOOTP_OFF + 1] = 1;
        b[BOOTP_OFF + 2] = 6;
        b[BOOTP_OFF + 236..BOOTP_OFF + 240].copy_from_slice(&[99, 130, 83, 99]);
        Self { bytes: b }
    }
}

/// Everything that varies between two requests.
#[derive(Debug, Clone, Copy)]
pub struct FrameSpec {
    pub eth_src: [u8; 6],
    pub eth_dst: [u8; 6],
    pub ip_src: [u8; 4],
    pub ip_dst: [u8; 4],
    pub src_port: u16,
    pub dst_port: u16,
    pub msg_type: u8,
    pub xid: u32,
    pub secs: u16,
    /// Set the BROADCAST bit of `flags`.
    pub broadcast: bool,
    pub hops: u8,
    pub ciaddr: [u8; 4],
    pub giaddr: [u8; 4],
    pub chaddr: [u8; 6],
    /// Option 50.
    pub requested: Option<[u8; 4]>,
    /// Option 54.
    pub server_id: Option<[u8; 4]>,
    /// Option 61 = 0x01 + chaddr.
    pub client_id: bool,
    /// Option 82 with circuit-id `sub-<n>` and remote-id = chaddr.
    pub relay_subscriber: Option<u64>,
}

impl FrameSpec {
    /// A client's own request: from its MAC, 0.0.0.0:68 to the broadcast
    /// address :67, no options beyond the message type.
    pub fn client(msg_type: u8, xid: u32, chaddr: [u8; 6]) -> Self {
        Self {
            eth_src: chaddr,
            eth_dst: BROADCAST_MAC,
            ip_src: [0; 4],
            ip_dst: BROADCAST_IP,
            src_port: CLIENT_PORT,
            dst_port: SERVER_PORT,
            msg_type,
            xid,
            secs: 0,
            broadcast: false,
            hops: 0,
            ciaddr: [0; 4],
            giaddr: [0; 4],
            chaddr,
            requested: None,
            server_id: None,
            client_id: false,
            relay_subscriber: None,
        }
    }
}

/// Writes the decimal digits of `n` into `out`, returning how many.
fn write_decimal(mut n: u64, out: &mut [u8; 20]) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = 0;
    loop {
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        i += 1;
        if n == 0 {
            break;
        }
    }
    for (k, d) in tmp[..i].iter().rev().enumerate() {
        out[k] = *d;
    }
    i
}

/// A cursor over the option area.
struct Opts<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Opts<'_> {
    #[inline]
    fn put(&mut self, code: u8, value: &[u8]) {
        self.buf[self.at] = code;
        self.buf[self.at + 1] = value.len() as u8;
        self.buf[self.at + 2..self.at + 2 + value.len()].copy_from_slice(value);
        self.at += 2 + value.len();
    }
}

/// Writes the request described by `spec` into `buf` and returns the frame
/// length, or 0 when `buf` is shorter than [`MAX_FRAME`].
pub fn build(buf: &mut [u8], tmpl: &Template, spec: &FrameSpec) -> usize {
    if buf.len() < MAX_FRAME {
        return 0;
    }
    buf[..OPTIONS_OFF].copy_from_slice(&tmpl.bytes);
    buf[0..6].copy_from_slice(&spec.eth_dst);
    buf[6..12].copy_from_slice(&spec.eth_src);
    buf[IP_OFF + 12..IP_OFF + 16].copy_from_slice(&spec.ip_src);
    buf[IP_OFF + 16..IP_OFF + 20].copy_from_slice(&spec.ip_dst);
    buf[UDP_OFF..UDP_OFF + 2].copy_from_slice(&spec.src_port.to_be_bytes());
    buf[UDP_OFF + 2..UDP_OFF + 4].copy_from_slice(&spec.dst_port.to_be_bytes());

    let b = BOOTP_OFF;
    buf[b + B_HOPS] = spec.hops;
    buf[b + B_XID..b + B_XID + 4].copy_from_slice(&spec.xid.to_be_bytes());
    buf[b + B_SECS..b + B_SECS + 2].copy_from_slice(&spec.secs.to_be_bytes());
    if spec.broadcast {
        buf[b + B_FLAGS] = 0x80;
    }
    buf[b + B_CIADDR..b + B_CIADDR + 4].copy_from_slice(&spec.ciaddr);
    buf[b + B_GIADDR..b + B_GIADDR + 4].copy_from_slice(&spec.giaddr);
    buf[b + B_CHADDR..b + B_CHADDR + 6].copy_from_slice(&spec.chaddr);

    let mut o = Opts {
        buf: &mut buf[..MAX_FRAME],
        at: OPTIONS_OFF,
    };
    o.put(53, &[spec.msg_type]);
    if spec.client_id {
        let c = spec.chaddr;
        o.put(61, &[1, c[0], c[1], c[2], c[3], c[4], c[5]]);
    }
    if let Some(r) = spec.requested {
        o.put(50, &r);
    }
    if let Some(s) = spec.server_id {
        o.put(54, &s);
    }
    if spec.msg_type != RELEASE {
        o.put(55, &PRL);
    }
    if let Some(n) = spec.relay_subscriber {
        // Option 82 (RFC 3046), last: sub-option 1 circuit-id "sub-<n>",
        // sub-option 2 remote-id = the subscriber's MAC.
        let mut digits = [0u8; 20];
        let nd = write_decimal(n, &mut digits);
        let circuit_len = 4 + nd;
        let mut v = [0u8; 2 + 24 + 2 + 6];
        v[0] = 1;
        v[1] = circuit_len as u8;
        v[2..6].copy_from_slice(b"sub-");
        v[6..6 + nd].copy_from_slice(&digits[..nd]);
        let r = 2 + circuit_len;
        v[r] = 2;
        v[r + 1] = 6;
        v[r + 2..r + 8].copy_from_slice(&spec.chaddr);
        o.put(82, &v[..r + 8]);
    }
    o.buf[o.at] = 255;
    let mut end = o.at + 1;
    let min_end = BOOTP_OFF + MIN_BOOTP;
    if end < min_end {
        buf[end..min_end].fill(0);
        end = min_end;
    }

    let udp_len = end - UDP_OFF;
    let ip_len = end - IP_OFF;
    buf[IP_OFF + 2..IP_OFF + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    let ip_sum = checksum::checksum(&buf[IP_OFF..UDP_OFF]);
    buf[IP_OFF + 10..IP_OFF + 12].copy_from_slice(&ip_sum.to_be_bytes());
    buf[UDP_OFF + 4..UDP_OFF + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    let udp_sum = checksum::udp_checksum(spec.ip_src, spec.ip_dst, &buf[UDP_OFF..end]);
    buf[UDP_OFF + 6..UDP_OFF + 8].copy_from_slice(&udp_sum.to_be_bytes());
    end
}

/// The MAC of simulated client `index`: 02 (locally administered, unicast)
/// followed by the low 40 bits of the index.
#[inline]
pub fn client_mac(index: u64) -> [u8; 6] {
    let b = index.to_be_bytes();
    [0x02, b[3], b[4], b[5], b[6], b[7]]
}

/// The client index a MAC of [`client_mac`] encodes.
#[inline]
pub fn mac_index(mac: &[u8; 6]) -> Option<u64> {
    (mac[0] == 0x02).then(|| u64::from_be_bytes([0, 0, 0, mac[1], mac[2], mac[3], mac[4], mac[5]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4::{relay, DhcpOption, Message, MessageType, OptionCode};
    use dhcproto::Decodable;
    use irondhcp_fastpath::wire::checksum::{verify, verify_udp};
    use std::net::Ipv4Addr;

    fn check_and_decode(f: &[u8]) -> Message {
        assert!(f.len() >= BOOTP_OFF + MIN_BOOTP);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(
            usize::from(u16::from_be_bytes([f[16], f[17]])),
            f.len() - IP_OFF
        );
        assert_eq!(
            usize::from(u16::from_be_bytes([f[38], f[39]])),
            f.len() - UDP_OFF
        );
        assert!(verify(&f[IP_OFF..UDP_OFF]), "IPv4 header checksum");
        let src = [f[26], f[27], f[28], f[29]];
        let dst = [f[30], f[31], f[32], f[33]];
        assert_ne!(&f[40..42], &[0, 0], "UDP checksum must be present");
        assert!(verify_udp(src, dst, &f[UDP_OFF..]), "UDP checksum");
        Message::from_bytes(&f[BOOTP_OFF..]).expect("dhcproto decodes the request")
    }

    fn frame(spec: &FrameSpec) -> Vec<u8> {
        let mut buf = vec![0xaa; 2048];
        let n = build(&mut buf, &Template::new(), spec);
        assert!(n > 0);
        buf.truncate(n);
        buf
    }

    #[test]
    fn mac_round_trips() {
        for i in [0u64, 1, 255, 256, 0x12_3456_789a, (1 << 40) - 1] {
            assert_eq!(mac_index(&client_mac(i)), Some(i));
        }
        assert_eq!(client_mac(0x0102), [2, 0, 0, 0, 1, 2]);
        assert_eq!(mac_index(&[0x00, 1, 2, 3, 4, 5]), None);
    }

    #[test]
    fn discover_decodes() {
        let mac = client_mac(7);
        let mut s = FrameSpec::client(DISCOVER, 0xdead_beef, mac);
        s.client_id = true;
        let f = frame(&s);
        assert_eq!(&f[0..6], &BROADCAST_MAC);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[34..38], &[0, 68, 0, 67]);
        let m = check_and_decode(&f);
        assert_eq!(m.opcode(), dhcproto::v4::Opcode::BootRequest);
        assert_eq!(m.xid(), 0xdead_beef);
        assert_eq!(&m.chaddr()[..6], &mac);
        assert_eq!(m.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
        let mut cid = vec![1];
        cid.extend_from_slice(&mac);
        assert_eq!(
            m.opts().get(OptionCode::ClientIdentifier),
            Some(&DhcpOption::ClientIdentifier(cid))
        );
        assert!(m.opts().get(OptionCode::ParameterRequestList).is_some());
        assert!(!m.flags().broadcast());
    }

    #[test]
    fn selecting_request_decodes() {
        let mac = client_mac(0x0a0b0c);
        let mut s = FrameSpec::client(REQUEST, 42, mac);
        s.requested = Some([198, 18, 1, 9]);
        s.server_id = Some([198, 18, 0, 1]);
        s.broadcast = true;
        s.secs = 3;
        let m = check_and_decode(&frame(&s));
        assert_eq!(m.opts().msg_type(), Some(MessageType::Request));
        assert_eq!(
            m.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(Ipv4Addr::new(
                198, 18, 1, 9
            )))
        );
        assert_eq!(
            m.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(Ipv4Addr::new(198, 18, 0, 1)))
        );
        assert!(m.opts().get(OptionCode::ClientIdentifier).is_none());
        assert!(m.flags().broadcast());
        assert_eq!(m.secs(), 3);
    }

    #[test]
    fn renew_is_unicast_with_ciaddr_and_no_50_54() {
        let mac = client_mac(3);
        let mut s = FrameSpec::client(REQUEST, 9, mac);
        let server_mac = [0x0e, 1, 2, 3, 4, 5];
        s.eth_dst = server_mac;
        s.ip_src = [198, 18, 1, 3];
        s.ip_dst = [198, 18, 0, 1];
        s.ciaddr = [198, 18, 1, 3];
        let f = frame(&s);
        assert_eq!(&f[0..6], &server_mac);
        assert_eq!(&f[26..34], &[198, 18, 1, 3, 198, 18, 0, 1]);
        let m = check_and_decode(&f);
        assert_eq!(m.ciaddr(), Ipv4Addr::new(198, 18, 1, 3));
        assert!(m.opts().get(OptionCode::RequestedIpAddress).is_none());
        assert!(m.opts().get(OptionCode::ServerIdentifier).is_none());
    }

    #[test]
    fn release_decodes() {
        let mac = client_mac(11);
        let mut s = FrameSpec::client(RELEASE, 77, mac);
        s.ip_src = [198, 18, 1, 11];
        s.ip_dst = [198, 18, 0, 1];
        s.ciaddr = [198, 18, 1, 11];
        s.server_id = Some([198, 18, 0, 1]);
        s.client_id = true;
        let m = check_and_decode(&frame(&s));
        assert_eq!(m.opts().msg_type(), Some(MessageType::Release));
        assert_eq!(m.ciaddr(), Ipv4Addr::new(198, 18, 1, 11));
        assert!(m.opts().get(OptionCode::ServerIdentifier).is_some());
        assert!(m.opts().get(OptionCode::ParameterRequestList).is_none());
    }

    #[test]
    fn relayed_discover_decodes_with_option_82_last() {
        let mac = client_mac(1234);
        let mut s = FrameSpec::client(DISCOVER, 5, mac);
        s.eth_src = [0x0e, 0, 0, 0, 0, 1];
        s.eth_dst = [0x0e, 0, 0, 0, 0, 2];
        s.ip_src = [198, 18, 0, 2];
        s.ip_dst = [198, 18, 0, 1];
        s.src_port = SERVER_PORT;
        s.hops = 1;
        s.giaddr = [198, 19, 0, 1];
        s.relay_subscriber = Some(1234);
        let f = frame(&s);
        assert_eq!(&f[34..38], &[0, 67, 0, 67]);
        let m = check_and_decode(&f);
        assert_eq!(m.giaddr(), Ipv4Addr::new(198, 19, 0, 1));
        assert_eq!(m.hops(), 1);
        let Some(DhcpOption::RelayAgentInformation(info)) =
            m.opts().get(OptionCode::RelayAgentInformation)
        else {
            panic!("no option 82");
        };
        assert_eq!(
            info.get(relay::RelayCode::AgentCircuitId),
            Some(&relay::RelayInfo::AgentCircuitId(b"sub-1234".to_vec()))
        );
        assert_eq!(
            info.get(relay::RelayCode::AgentRemoteId),
            Some(&relay::RelayInfo::AgentRemoteId(mac.to_vec()))
        );
        // Option 82 is the last option before END.
        let mut i = OPTIONS_OFF;
        let mut last = 0;
        while f[i] != 255 {
            last = f[i];
            i += 2 + usize::from(f[i + 1]);
        }
        assert_eq!(last, 82);
    }

    #[test]
    fn short_buffer_builds_nothing() {
        let mut buf = [0u8; 100];
        assert_eq!(
            build(
                &mut buf,
                &Template::new(),
                &FrameSpec::client(DISCOVER, 1, client_mac(1))
            ),
            0
        );
    }

    #[test]
    fn decimal_digits() {
        let mut d = [0u8; 20];
        let n = write_decimal(0, &mut d);
        assert_eq!(&d[..n], b"0");
        let n = write_decimal(u64::MAX, &mut d);
        assert_eq!(&d[..n], b"18446744073709551615");
    }
}
