//! A barrage of malformed frames through the veth: broken headers, DHCP
//! messages with hostile lengths, garbage. The server keeps running, counts
//! the drops, and still serves a real client afterwards.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Message, MessageType};
use dhcproto::Encodable;
use irondhcp_testkit::testbed::{TestbedOptions, SERVER_IP};

use crate::{events, started, stat, udhcpc_script, LONG};

const FRAMES: usize = 20_000;

/// Ethernet + IPv4 + UDP 68→67 broadcast around `payload`.
fn frame(payload: &[u8], src_mac: [u8; 6]) -> Vec<u8> {
    irondhcp_testkit::rawclient::frame(
        payload,
        &irondhcp_testkit::rawclient::Path::broadcast(src_mac),
    )
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn barrage(ifname: &str) -> std::io::Result<usize> {
    let mut m = Message::new_with_id(
        7,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &[2, 0, 0, 0, 0, 9],
    );
    m.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER_IP));
    let valid = m.to_vec().map_err(std::io::Error::other)?;
    let mac = [2, 0, 0, 0, 0, 9];

    // SAFETY: plain socket(2); closed at the end of this function.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from((libc::ETH_P_ALL as u16).to_be()),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let cname = std::ffi::CString::new(ifname).map_err(std::io::Error::other)?;
    // SAFETY: valid C string.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    // SAFETY: zeroed plain C struct, then filled.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);

    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut sent = 0;
    for i in 0..FRAMES {
        let f: Vec<u8> = match i % 8 {
            // DHCP payload truncated at a random point.
            0 => frame(&valid[..(rng.next() as usize) % valid.len()], mac),
            // Random bit flips all over the DHCP message.
            1 => {
                let mut p = valid.clone();
                for _ in 0..8 {
                    let at = (rng.next() as usize) % p.len();
                    p[at] ^= 1 << (rng.next() % 8);
                }
                frame(&p, mac)
            }
            // hlen > 16.
            2 => {
                let mut p = valid.clone();
                p[2] = 200;
                frame(&p, mac)
            }
            // An option length that runs past the end.
            3 => {
                let mut p = valid.clone();
                let n = p.len();
                p[n - 1] = 61;
                p.extend_from_slice(&[250, 1, 2]);
                frame(&p, mac)
            }
            // Missing message type: options area is only END.
            4 => {
                let mut p = valid[..240].to_vec();
                p.push(255);
                frame(&p, mac)
            }
            // Oversize: a 1400-byte option soup.
            5 => {
                let mut p = valid[..240].to_vec();
                while p.len() < 1400 {
                    p.push((rng.next() % 256) as u8);
                }
                frame(&p, mac)
            }
            // Broken IPv4 header (IHL 3) and pure garbage.
            6 => {
                let mut f = frame(&valid, mac);
                f[14] = 0x43;
                f
            }
            _ => (0..(rng.next() % 200 + 1))
                .map(|_| (rng.next() % 256) as u8)
                .collect(),
        };
        // SAFETY: sendto from a live buffer with a valid sockaddr_ll.
        let rc = unsafe {
            libc::sendto(
                fd,
                f.as_ptr().cast(),
                f.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc >= 0 {
            sent += 1;
        }
        if i % 256 == 0 {
            // Let the veth and the worker keep up (bounded run, not a flood).
            std::thread::yield_now();
        }
    }
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
    Ok(sent)
}

#[test]
fn malformed_barrage_is_counted_and_server_keeps_serving() {
    let mut tb = started(&TestbedOptions::default());
    let ifname = tb.cli_if.clone();
    let sent = tb
        .client
        .run_inside(move || barrage(&ifname))
        .expect("enter namespace")
        .expect("send barrage");
    assert!(sent >= FRAMES * 9 / 10, "sent only {sent}");
    let ok = tb.wait_for(std::time::Duration::from_secs(5), || {
        stat(&tb, "/packets/drops_total") >= 5_000
    });
    let stats = tb.ctl("stats").expect("stats after the barrage");
    assert!(ok, "drops not counted: {stats}");
    assert!(tb.daemon_alive(), "irondhcp died; log:\n{}", tb.log_text());
    assert!(
        stats["packets"]["drops"]["bad_dhcp"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
    assert!(
        stats["xdp"]["malformed"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );

    // And it still serves a real client.
    let (script, ev) = udhcpc_script(&tb);
    tb.client
        .exec(&[
            "udhcpc",
            "-f",
            "-q",
            "-n",
            "-t",
            "10",
            "-T",
            "1",
            "-i",
            &tb.cli_if,
            "-s",
            &script.display().to_string(),
        ])
        .expect("udhcpc after the barrage");
    let ok = tb.wait_for(LONG, || events(&ev).iter().any(|l| l.starts_with("bound ")));
    assert!(ok, "no lease after the barrage: {:?}", events(&ev));
}
