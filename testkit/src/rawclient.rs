//! A DHCP client made of hand-built frames on an AF_PACKET socket in the
//! client namespace: for the sequences real clients will not produce on
//! demand (renew at an exact moment, ask for someone else's address, forge
//! a sender), with every reply read back and decoded by dhcproto.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::testbed::Testbed;
use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};

/// The internet checksum of `data`.
pub fn csum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Where a frame goes: link and IP addresses of both ends.
#[derive(Debug, Clone, Copy)]
pub struct Path {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
}

impl Path {
    /// A broadcast from a client without an address.
    pub fn broadcast(src_mac: [u8; 6]) -> Self {
        Self {
            src_mac,
            dst_mac: [0xff; 6],
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
        }
    }
}

/// Ethernet + IPv4 + UDP 68→67 around `payload`, lengths consistent, UDP
/// checksum 0 (none).
pub fn frame(payload: &[u8], p: &Path) -> Vec<u8> {
    let mut f = Vec::with_capacity(42 + payload.len());
    f.extend_from_slice(&p.dst_mac);
    f.extend_from_slice(&p.src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&p.src_ip.octets());
    ip[16..20].copy_from_slice(&p.dst_ip.octets());
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&68u16.to_be_bytes());
    f.extend_from_slice(&67u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A raw socket on the client end of a testbed.
pub struct RawClient {
    fd: OwnedFd,
    ifindex: i32,
}

impl RawClient {
    /// Opens the socket inside the client namespace (a socket stays in the
    /// namespace it was made in, whichever thread uses it later).
    pub fn open(tb: &Testbed) -> io::Result<Self> {
        let ifname = tb.cli_if.clone();
        tb.client.run_inside(move || -> io::Result<Self> {
            // SAFETY: plain socket(2); owned right after.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW,
                    i32::from((libc::ETH_P_IP as u16).to_be()),
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a fresh descriptor nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let cname = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
            // SAFETY: valid C string.
            let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
            // SAFETY: zeroed plain C struct, then filled; bind with its size.
            let rc = unsafe {
                let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
                sll.sll_ifindex = ifindex;
                libc::bind(
                    fd.as_raw_fd(),
                    &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            // SAFETY: setsockopt with a live timeval of the right size.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    &tv as *const libc::timeval as *const libc::c_void,
                    std::mem::size_of::<libc::timeval>() as u32,
                )
            };
            Ok(Self { fd, ifindex })
        })?
    }

    /// Sends `msg` along `path`.
    pub fn send(&self, msg: &Message, path: &Path) -> io::Result<()> {
        let f = frame(&msg.to_vec().map_err(io::Error::other)?, path);
        self.send_frame(&f, path.dst_mac)
    }

    /// Sends a whole frame.
    pub fn send_frame(&self, f: &[u8], dst_mac: [u8; 6]) -> io::Result<()> {
        // SAFETY: zeroed plain C struct, then filled; sendto with live
        // buffers and the struct's size.
        let n = unsafe {
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = self.ifindex;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&dst_mac);
            libc::sendto(
                self.fd.as_raw_fd(),
                f.as_ptr() as *const libc::c_void,
                f.len(),
                0,
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next DHCP reply (UDP from port 67) with transaction id `xid`,
    /// within `timeout`; other frames are skipped.
    pub fn recv(&self, xid: u32, timeout: Duration) -> Option<Message> {
        let end = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        while Instant::now() < end {
            // SAFETY: recv into a live buffer of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                )
            };
            if n <= 0 {
                continue;
            }
            let f = &buf[..n as usize];
            if f.len() < 42 || f[12..14] != [0x08, 0x00] || f[23] != 17 {
                continue;
            }
            let ihl = usize::from(f[14] & 0x0f) * 4;
            let udp = 14 + ihl;
            if f.len() < udp + 8 || f[udp..udp + 2] != 67u16.to_be_bytes() {
                continue;
            }
            if let Ok(m) = Message::decode(&mut Decoder::new(&f[udp + 8..])) {
                if m.xid() == xid {
                    return Some(m);
                }
            }
        }
        None
    }

    /// Sends `msg` and waits for its reply, resending every second.
    pub fn exchange(&self, msg: &Message, path: &Path, timeout: Duration) -> Option<Message> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            self.send(msg, path).ok()?;
            if let Some(r) = self.recv(msg.xid(), Duration::from_secs(1)) {
                return Some(r);
            }
        }
        None
    }
}

/// A client message of type `t` from `mac`, broadcast flag set.
pub fn message(t: MessageType, mac: [u8; 6], xid: u32) -> Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(xid, z, z, z, z, &mac);
    m.set_flags(m.flags().set_broadcast());
    m.opts_mut().insert(DhcpOption::MessageType(t));
    m
}

/// The message type of a reply.
pub fn msg_type(m: &Message) -> Option<MessageType> {
    m.opts().msg_type()
}

/// The lease time (option 51) of a reply.
pub fn lease_time(m: &Message) -> Option<u32> {
    match m.opts().get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => Some(*t),
        _ => None,
    }
}

/// The MAC of an interface inside a namespace.
pub fn mac_in(ns: &Netns, ifname: &str) -> [u8; 6] {
    let out = ns
        .exec(&["cat", &format!("/sys/class/net/{ifname}/address")])
        .expect("read the MAC");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut mac = [0u8; 6];
    for (i, b) in text.trim().split(':').enumerate().take(6) {
        mac[i] = u8::from_str_radix(b, 16).unwrap_or(0);
    }
    mac
}
