//! ARP around the generator: resolving the server's MAC (relay mode) and
//! answering who-has for simulated clients' leased addresses.
//!
//! A server that answers renewals through the kernel (ISC Kea, dnsmasq)
//! unicasts the ACK to ciaddr and therefore ARPs for it first, as it would
//! for a real client; nobody else on the link owns those addresses, so the
//! generator answers with the client's MAC. The same socket puts the
//! interface into promiscuous mode for the run, so a NIC's unicast filter
//! does not drop replies addressed to the simulated clients' MACs.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::addrtable::AddrTable;
use super::frame::{client_mac, BROADCAST_MAC};
use super::io::{packet_socket, wait_fd};

const ETH_P_ARP: u16 = 0x0806;

/// An Ethernet ARP frame (padded to the 60-byte minimum).
fn arp_frame(
    op: u16,
    eth_dst: [u8; 6],
    sha: [u8; 6],
    spa: [u8; 4],
    tha: [u8; 6],
    tpa: [u8; 4],
) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&eth_dst);
    f[6..12].copy_from_slice(&sha);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 0]);
    f[20..22].copy_from_slice(&op.to_be_bytes());
    f[22..28].copy_from_slice(&sha);
    f[28..32].copy_from_slice(&spa);
    f[32..38].copy_from_slice(&tha);
    f[38..42].copy_from_slice(&tpa);
    f
}

/// The fields of an Ethernet/IPv4 ARP frame the generator reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Arp {
    op: u16,
    sha: [u8; 6],
    spa: [u8; 4],
    tpa: [u8; 4],
}

fn parse_arp(f: &[u8]) -> Option<Arp> {
    if f.len() < 42 || f[12..14] != ETH_P_ARP.to_be_bytes() || f[14..20] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    Some(Arp {
        op: u16::from_be_bytes([f[20], f[21]]),
        sha: f[22..28].try_into().ok()?,
        spa: f[28..32].try_into().ok()?,
        tpa: f[38..42].try_into().ok()?,
    })
}

fn send(fd: &OwnedFd, frame: &[u8]) {
    // SAFETY: send(2) of a buffer we own; the socket is bound to the interface.
    unsafe {
        libc::send(
            fd.as_raw_fd(),
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            0,
        )
    };
}

fn recv<'a>(fd: &OwnedFd, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    // SAFETY: recv into a buffer we own.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    (n > 0).then(|| &buf[..(n as usize).min(buf.len())])
}

/// Asks who has `target` (from `our_mac`/`our_ip`) and returns its MAC:
/// three tries, one second each.
pub fn resolve(
    ifindex: i32,
    our_mac: [u8; 6],
    our_ip: [u8; 4],
    target: [u8; 4],
) -> io::Result<Option<[u8; 6]>> {
    let fd = packet_socket(ifindex, ETH_P_ARP)?;
    let req = arp_frame(1, BROADCAST_MAC, our_mac, our_ip, [0; 6], target);
    let mut buf = [0u8; 128];
    for _ in 0..3 {
        send(&fd, &req);
        let deadline = Instant::now() + Duration::from_secs(1);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            wait_fd(fd.as_raw_fd(), left.as_nanos() as u64);
            while let Some(f) = recv(&fd, &mut buf) {
                if let Some(a) = parse_arp(f) {
                    if a.op == 2 && a.spa == target {
                        return Ok(Some(a.sha));
                    }
                }
            }
        }
    }
    Ok(None)
}

/// Puts the interface into promiscuous mode while the returned socket is
/// open (PACKET_MR_PROMISC membership; the kernel undoes it on close).
fn promiscuous(fd: &OwnedFd, ifindex: i32) -> io::Result<()> {
    let mreq = libc::packet_mreq {
        mr_ifindex: ifindex,
        mr_type: libc::PACKET_MR_PROMISC as u16,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    // SAFETY: setsockopt with a pointer to a live packet_mreq.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq as *const libc::packet_mreq as *const libc::c_void,
            std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The ARP responder thread (and the promiscuous-mode guard).
pub struct ArpResponder {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<u64>>,
}

impl ArpResponder {
    /// Starts answering who-has for addresses the table assigns to a
    /// simulated client (only when `answer`; promiscuous mode either way).
    pub fn start(ifindex: i32, table: Arc<AddrTable>, answer: bool) -> io::Result<Self> {
        let fd = packet_socket(ifindex, ETH_P_ARP)?;
        promiscuous(&fd, ifindex)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("loadgen-arp".into())
            .spawn(move || {
                let mut buf = [0u8; 256];
                let mut answered = 0u64;
                while !flag.load(Ordering::Relaxed) {
                    wait_fd(fd.as_raw_fd(), 100_000_000);
                    while let Some(f) = recv(&fd, &mut buf) {
                        let Some(a) = parse_arp(f) else {
                            continue;
                        };
                        if a.op != 1 || !answer {
                            continue;
                        }
                        if let Some(client) = table.owner(u32::from_be_bytes(a.tpa)) {
                            let mac = client_mac(u64::from(client));
                            send(&fd, &arp_frame(2, a.sha, mac, a.tpa, a.sha, a.spa));
                            answered += 1;
                        }
                    }
                }
                answered
            })?;
        Ok(Self {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread; returns how many requests it answered.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().and_then(|h| h.join().ok()).unwrap_or(0)
    }
}

impl Drop for ArpResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_frames_round_trip() {
        let f = arp_frame(2, [1; 6], [2; 6], [10, 0, 0, 1], [3; 6], [10, 0, 0, 2]);
        assert_eq!(
            parse_arp(&f),
            Some(Arp {
                op: 2,
                sha: [2; 6],
                spa: [10, 0, 0, 1],
                tpa: [10, 0, 0, 2]
            })
        );
        assert_eq!(&f[0..6], &[1; 6]);
        assert_eq!(parse_arp(&f[..41]), None);
        let mut g = f;
        g[13] = 0;
        assert_eq!(parse_arp(&g), None);
    }
}
