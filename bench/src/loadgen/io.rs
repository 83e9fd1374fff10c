//! Packet I/O: AF_XDP (our `XskSocket`, fed by our XDP program) or an
//! AF_PACKET raw socket as the fallback, plus the interface facts the
//! generator needs (MAC, RX queue count).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use irondhcp_fastpath::xsk::{RxDesc, XskConfig, XskSocket};

/// Frames handled per RX batch.
pub const RX_BATCH: usize = 64;

/// What the engine needs from a packet socket.
pub trait Io {
    /// Calls `f` on each received frame, up to one batch; returns how many.
    fn recv(&mut self, f: impl FnMut(&[u8])) -> usize;
    /// Lets `f` write one frame into a TX buffer (returning its length, 0
    /// to cancel) and queues it. False when no buffer or ring slot is free.
    fn send(&mut self, f: impl FnOnce(&mut [u8]) -> usize) -> bool;
    /// Transmits what `send` queued.
    fn flush(&mut self);
    /// Sleeps until a frame arrives or `timeout_ns` passes.
    fn wait(&mut self, timeout_ns: u64);
    /// Frames addressed to this socket that it dropped so far (receive
    /// ring full, no free buffer), if the socket type reports it: replies
    /// the generator lost, not the server.
    fn rx_dropped(&self) -> Option<u64> {
        None
    }
}

/// Waits for `fd` to become readable, with nanosecond resolution.
pub fn wait_fd(fd: RawFd, timeout_ns: u64) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: ppoll on one valid pollfd with a valid timespec, no sigmask.
    unsafe { libc::ppoll(&mut p, 1, &ts, std::ptr::null()) };
}

/// AF_XDP on one queue.
pub struct XdpIo {
    sock: XskSocket,
    descs: [RxDesc; RX_BATCH],
}

impl XdpIo {
    /// UMEM: 8192 frames of 2 KiB (16 MiB; the memlock limit is raised
    /// first), 4096-entry rings: room for large TX bursts.
    pub fn open(iface: &str, queue: u32) -> io::Result<Self> {
        let cfg = XskConfig {
            frame_count: 8192,
            frame_size: 2048,
            ring_size: 4096,
            force_copy: false,
        };
        let sock = XskSocket::open(iface, queue, &cfg).map_err(io::Error::other)?;
        Ok(Self {
            sock,
            descs: [RxDesc::default(); RX_BATCH],
        })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.fd()
    }
}

impl Io for XdpIo {
    #[inline]
    fn recv(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let n = self.sock.poll_rx(&mut self.descs);
        for d in &self.descs[..n] {
            f(self.sock.rx_frame(d));
        }
        if n > 0 {
            self.sock.recycle_rx(&self.descs[..n]);
        }
        n
    }

    #[inline]
    fn send(&mut self, f: impl FnOnce(&mut [u8]) -> usize) -> bool {
        let addr = match self.sock.alloc_tx() {
            Some(a) => a,
            None => {
                // Everything in flight: kick the kernel and reap.
                self.sock.flush_tx();
                match self.sock.alloc_tx() {
                    Some(a) => a,
                    None => return false,
                }
            }
        };
        let len = f(self.sock.tx_buf(addr));
        if len == 0 {
            self.sock.free_tx(addr);
            return false;
        }
        // False (and the frame freed) only when the TX ring is full; the
        // engine flushes often enough that it never is in practice.
        self.sock.submit_tx(addr, len)
    }

    #[inline]
    fn flush(&mut self) {
        self.sock.flush_tx();
    }

    fn wait(&mut self, timeout_ns: u64) {
        self.sock.reap_completions();
        wait_fd(self.sock.fd(), timeout_ns);
    }

    fn rx_dropped(&self) -> Option<u64> {
        // No free UMEM frame (counted in rx_dropped in copy mode) and a
        // full RX ring (rx_ring_full) are counted apart by the kernel.
        self.sock
            .statistics()
            .map(|st| st.rx_dropped.saturating_add(st.rx_ring_full))
    }
}

/// An AF_PACKET raw socket: whole frames out with `sendto`, everything
/// IPv4 in with `recv` (the caller filters for its UDP port). Several
/// threads share the traffic through a fanout group.
pub struct PacketIo {
    fd: OwnedFd,
    ifindex: i32,
    rx: Box<[u8; 2048]>,
    tx: Box<[u8; 2048]>,
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> libc::c_int {
    // SAFETY: setsockopt with a pointer to a live c_int.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    }
}

/// An AF_PACKET socket for `protocol` (host order ethertype), bound to
/// `ifindex`.
pub fn packet_socket(ifindex: i32, protocol: u16) -> io::Result<OwnedFd> {
    let proto_be = protocol.to_be();
    // SAFETY: plain socket(2); owned right after the check.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::c_int::from(proto_be),
        )
    };
    check(raw, "socket(AF_PACKET)")?;
    // SAFETY: fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = proto_be;
    sa.sll_ifindex = ifindex;
    // SAFETY: bind with a correctly sized sockaddr_ll.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    check(rc, "bind(AF_PACKET) to the interface")?;
    Ok(fd)
}

impl PacketIo {
    /// A socket on `ifindex` in fanout group `group` (one per run).
    pub fn open(ifindex: i32, group: u16) -> io::Result<Self> {
        let fd = packet_socket(ifindex, libc::ETH_P_IP as u16)?;
        let raw = fd.as_raw_fd();
        // Our own transmissions must not come back to us (relay mode sends
        // and receives UDP/67).
        check(
            setsockopt_int(raw, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1),
            "setsockopt(PACKET_IGNORE_OUTGOING) (kernel ≥ 4.20 needed)",
        )?;
        // Bigger buffers absorb bursts; failures only cost drops.
        let _ = setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 32 << 20);
        let _ = setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 8 << 20);
        let _ = setsockopt_int(raw, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1);
        let fanout = libc::c_int::from(group) | ((libc::PACKET_FANOUT_HASH as libc::c_int) << 16);
        check(
            setsockopt_int(raw, libc::SOL_PACKET, libc::PACKET_FANOUT, fanout),
            "setsockopt(PACKET_FANOUT)",
        )?;
        Ok(Self {
            fd,
            ifindex,
            rx: Box::new([0; 2048]),
            tx: Box::new([0; 2048]),
        })
    }
}

impl Io for PacketIo {
    fn recv(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < RX_BATCH {
            // SAFETY: recv into our own buffer of the stated length.
            let len = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.rx.as_mut_ptr() as *mut libc::c_void,
                    self.rx.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if len <= 0 {
                break;
            }
            let len = (len as usize).min(self.rx.len());
            f(&self.rx[..len]);
            n += 1;
        }
        n
    }

    fn send(&mut self, f: impl FnOnce(&mut [u8]) -> usize) -> bool {
        let len = f(&mut self.tx[..]);
        if len < 14 {
            return false;
        }
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_ifindex = self.ifindex;
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&self.tx[..6]);
        // SAFETY: sendto from our own buffer with a valid sockaddr_ll.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                self.tx.as_ptr() as *const libc::c_void,
                len,
                0,
                &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        rc == len as isize
    }

    fn flush(&mut self) {}

    fn wait(&mut self, timeout_ns: u64) {
        wait_fd(self.fd.as_raw_fd(), timeout_ns);
    }
}

/// The index of interface `name` in this thread's network namespace.
pub fn ifindex(name: &str) -> io::Result<i32> {
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"))?;
    // SAFETY: plain libc call with a valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no network interface named {name:?}"),
        ));
    }
    Ok(i as i32)
}

/// The hardware address of interface `name` (SIOCGIFHWADDR).
pub fn iface_mac(name: &str) -> io::Result<[u8; 6]> {
    // SAFETY: plain socket(2); owned right after the check.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(raw, "socket(AF_INET)")?;
    // SAFETY: fresh descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills the ifreq we pass.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    check(rc, "ioctl(SIOCGIFHWADDR)")?;
    // SAFETY: the kernel filled ifru_hwaddr.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(mac)
}

/// How many RX queues `name` has, from sysfs (None when sysfs does not
/// show this namespace's interface).
pub fn rx_queues(name: &str) -> Option<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{name}/queues")).ok()?;
    let n = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    (n > 0).then_some(n as u32)
}
