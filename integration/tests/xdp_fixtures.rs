//! The XDP program against tables of frames (`BPF_PROG_TEST_RUN`), one per
//! steering configuration (the server's, the load generator's as clients and
//! as a relay), and attached for real to a veth pair in a throw-away network
//! namespace.
//!
//! The tests need root and the program built into the binary
//! (`cargo xtask build-ebpf`, then `cargo test`): without either they FAIL
//! with a message saying so — they never pass silently.
//!
//! No AF_XDP socket is registered here, so a frame the program would redirect
//! comes back as `XDP_PASS` with the `no_socket` counter bumped; that is how
//! "would redirect" is told apart from "not for the server" (`passed`),
//! "addressed to someone else" (`not_ours`), "fragment" and "malformed".

use std::{
    fs::File,
    net::Ipv4Addr,
    os::fd::AsRawFd as _,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use irondhcp_xdp_loader::{
    SteerConfig, XdpCounters, XdpError, XdpMode, XdpProgram, MAX_STEER_ADDRESSES, XDP_OBJECT,
};

const XDP_PASS: u32 = 2;

/// Which counter a frame must bump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counter {
    /// Would be redirected (no socket registered): `no_socket`.
    Dhcp,
    /// `passed`.
    Passed,
    /// `malformed`.
    Malformed,
    /// `not_ours`: to the steered port, but addressed to someone else.
    NotOurs,
    /// `fragments`.
    Fragment,
}

fn bump(c: XdpCounters, counter: Counter) -> XdpCounters {
    let mut c = c;
    match counter {
        Counter::Dhcp => c.no_socket += 1,
        Counter::Passed => c.passed += 1,
        Counter::Malformed => c.malformed += 1,
        Counter::NotOurs => c.not_ours += 1,
        Counter::Fragment => c.fragments += 1,
    }
    c
}

// ---------------------------------------------------------------- frames

const BROADCAST_MAC: [u8; 6] = [0xff; 6];
const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const SERVER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const RELAY_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x03];
const OTHER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x04];
const MULTICAST_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01];
const SERVER_IP: [u8; 4] = [192, 0, 2, 1];
/// A second address of the server (e.g. an anycast address), in slot 2.
const SERVER_IP_2: [u8; 4] = [192, 0, 2, 53];
const OTHER_SERVER_IP: [u8; 4] = [192, 0, 2, 2];
const RELAY_IP: [u8; 4] = [10, 0, 0, 1];
/// A relay's giaddr distinct from its source address (load generator).
const RELAY_GIADDR: [u8; 4] = [10, 1, 0, 1];
/// An address a client was offered (load generator replies go there).
const YIADDR: [u8; 4] = [192, 0, 2, 10];
/// IPv4 "don't fragment" flag: not a fragment.
const IP_DF: u16 = 0x4000;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// IPv4 "more fragments" flag.
const IP_MF: u16 = 0x2000;

/// Ethernet header, optionally with 802.1Q tags (`vlans`: TPID, VID).
fn eth(dst: [u8; 6], src: [u8; 6], vlans: &[(u16, u16)], ether_type: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for &(tpid, vid) in vlans {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ether_type.to_be_bytes());
    f
}

/// IPv4 header (+ `options`, padded to 32 bits) followed by `payload`.
fn ipv4(
    src: [u8; 4],
    dst: [u8; 4],
    protocol: u8,
    frag: u16,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut options = options.to_vec();
    while !options.len().is_multiple_of(4) {
        options.push(0); // End of Options List
    }
    let hlen = 20 + options.len();
    let total = u16::try_from(hlen + payload.len()).expect("IPv4 packet too long");
    let ihl = u8::try_from(hlen / 4).expect("IPv4 options too long");
    let mut h = vec![0x40 | ihl, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&0x1234u16.to_be_bytes()); // identification
    h.extend_from_slice(&frag.to_be_bytes());
    h.push(64); // TTL
    h.push(protocol);
    h.extend_from_slice(&[0, 0]); // checksum, below
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&options);
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// Internet checksum.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// UDP header (checksum 0: none, allowed over IPv4) followed by `payload`.
fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).expect("UDP datagram too long");
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// A BOOTREQUEST with DHCP message type `msg_type` and `extra` options.
fn dhcp(msg_type: u8, giaddr: [u8; 4], hops: u8, extra: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; 236];
    m[0] = 1; // op: BOOTREQUEST
    m[1] = 1; // htype: Ethernet
    m[2] = 6; // hlen
    m[3] = hops;
    m[4..8].copy_from_slice(&0xdead_beefu32.to_be_bytes()); // xid
    if giaddr == [0; 4] {
        m[10] = 0x80; // broadcast flag
    }
    m[24..28].copy_from_slice(&giaddr);
    m[28..34].copy_from_slice(&CLIENT_MAC);
    m.extend_from_slice(&[99, 130, 83, 99]); // magic cookie
    m.extend_from_slice(&[53, 1, msg_type]);
    m.extend_from_slice(extra);
    m.push(255);
    m
}

fn discover() -> Vec<u8> {
    dhcp(1, [0; 4], 0, &[55, 3, 1, 3, 6])
}

fn request() -> Vec<u8> {
    // requested address 192.0.2.10, server identifier 192.0.2.1
    dhcp(3, [0; 4], 0, &[50, 4, 192, 0, 2, 10, 54, 4, 192, 0, 2, 1])
}

/// A client's broadcast DHCP frame (UDP 68 -> 67), with `vlans` tags and
/// IPv4 `options`.
fn client_frame(vlans: &[(u16, u16)], options: &[u8], dhcp: &[u8]) -> Vec<u8> {
    let mut f = eth(BROADCAST_MAC, CLIENT_MAC, vlans, ETH_P_IP);
    f.extend(ipv4(
        [0; 4],
        [255; 4],
        IPPROTO_UDP,
        0,
        options,
        &udp(68, 67, dhcp),
    ));
    f
}

/// A DHCP frame from a client (UDP 68 -> `dport`) to `dst_mac`/`dst_ip`,
/// with `vlans` tags and IPv4 flags/fragment offset `frag`.
fn addressed(
    dst_mac: [u8; 6],
    dst_ip: [u8; 4],
    vlans: &[(u16, u16)],
    frag: u16,
    dport: u16,
) -> Vec<u8> {
    let mut f = eth(dst_mac, CLIENT_MAC, vlans, ETH_P_IP);
    f.extend(ipv4(
        [192, 0, 2, 10],
        dst_ip,
        IPPROTO_UDP,
        frag,
        &[],
        &udp(68, dport, &request()),
    ));
    f
}

/// A client's frame to the server port 67 (see [`addressed`]).
fn to_server_port(dst_mac: [u8; 6], dst_ip: [u8; 4], vlans: &[(u16, u16)]) -> Vec<u8> {
    addressed(dst_mac, dst_ip, vlans, 0, 67)
}

/// A server's reply frame (UDP 67 -> `dport`) to `dst_mac`/`dst_ip`.
fn reply_to(dst_mac: [u8; 6], dst_ip: [u8; 4], dport: u16, frag: u16) -> Vec<u8> {
    let mut reply = dhcp(2, [0; 4], 0, &[]);
    reply[0] = 2; // op: BOOTREPLY
    reply[16..20].copy_from_slice(&YIADDR);
    let mut f = eth(dst_mac, SERVER_MAC, &[], ETH_P_IP);
    f.extend(ipv4(
        SERVER_IP,
        dst_ip,
        IPPROTO_UDP,
        frag,
        &[],
        &udp(67, dport, &reply),
    ));
    f
}

/// A relay agent's unicast frame to the server (UDP 67 -> 67, giaddr set).
fn relayed_frame() -> Vec<u8> {
    let mut f = eth(SERVER_MAC, RELAY_MAC, &[], ETH_P_IP);
    f.extend(ipv4(
        RELAY_IP,
        SERVER_IP,
        IPPROTO_UDP,
        0,
        &[],
        &udp(67, 67, &dhcp(1, RELAY_IP, 1, &[])),
    ));
    f
}

fn udp_frame(dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = eth(SERVER_MAC, CLIENT_MAC, &[], ETH_P_IP);
    f.extend(ipv4(
        [192, 0, 2, 20],
        SERVER_IP,
        IPPROTO_UDP,
        0,
        &[],
        &udp(40000, dport, payload),
    ));
    f
}

fn tcp_syn_to_67() -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&40000u16.to_be_bytes());
    tcp.extend_from_slice(&67u16.to_be_bytes());
    tcp.extend_from_slice(&1u32.to_be_bytes()); // seq
    tcp.extend_from_slice(&0u32.to_be_bytes()); // ack
    tcp.extend_from_slice(&[0x50, 0x02]); // data offset 5, SYN
    tcp.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]); // window, checksum, urgent
    let mut f = eth(SERVER_MAC, CLIENT_MAC, &[], ETH_P_IP);
    f.extend(ipv4([192, 0, 2, 20], SERVER_IP, IPPROTO_TCP, 0, &[], &tcp));
    f
}

fn arp_request() -> Vec<u8> {
    let mut f = eth(BROADCAST_MAC, CLIENT_MAC, &[], ETH_P_ARP);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]); // Ethernet/IPv4, request
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[192, 0, 2, 20]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&SERVER_IP);
    f
}

/// A UDP/67 datagram split in two IPv4 fragments; returns (first, second).
fn fragments() -> (Vec<u8>, Vec<u8>) {
    let datagram = udp(68, 67, &discover());
    let (head, tail) = datagram.split_at(128); // 128 = 16 * 8 bytes
    let mut first = eth(BROADCAST_MAC, CLIENT_MAC, &[], ETH_P_IP);
    first.extend(ipv4([0; 4], [255; 4], IPPROTO_UDP, IP_MF, &[], head));
    // The second fragment starts with bytes that would read as UDP port 67
    // if the program wrongly parsed a UDP header in it.
    let mut tail = tail.to_vec();
    tail[..4].copy_from_slice(&[0, 68, 0, 67]);
    let mut second = eth(BROADCAST_MAC, CLIENT_MAC, &[], ETH_P_IP);
    second.extend(ipv4([0; 4], [255; 4], IPPROTO_UDP, 128 / 8, &[], &tail));
    (first, second)
}

/// A fixture: (name, frame, expected counter).
type Fixture = (&'static str, Vec<u8>, Counter);

/// How the server steers in these tests: UDP/67 to its MAC and to its two
/// addresses (slots 1 and 2 of the program's four).
fn server_steering() -> SteerConfig {
    SteerConfig::server(SERVER_MAC, &[SERVER_IP.into(), SERVER_IP_2.into()])
}

/// The fixture table for [`server_steering`]. Every frame must get
/// `XDP_PASS` (no socket is registered).
fn fixtures() -> Vec<Fixture> {
    let discover_frame = client_frame(&[], &[], &discover());
    let (first_fragment, second_fragment) = fragments();
    let vlan = [(ETH_P_8021Q, 100)];
    let (mut vlan_first_fragment, _) = fragments();
    // Insert an 802.1Q tag after the MACs.
    vlan_first_fragment.splice(12..12, [0x81, 0x00, 0x00, 100]);

    let mut ihl_below_5 = discover_frame.clone();
    ihl_below_5[14] = 0x44;
    let mut version_6 = discover_frame.clone();
    version_6[14] = 0x65;
    let mut total_len_below_ihl = discover_frame.clone();
    total_len_below_ihl[16..18].copy_from_slice(&12u16.to_be_bytes());
    let mut total_len_below_udp = discover_frame.clone();
    total_len_below_udp[16..18].copy_from_slice(&24u16.to_be_bytes());
    let mut padded = discover_frame.clone();
    padded.extend_from_slice(&[0; 32]);

    let mut arp_in_vlan = eth(BROADCAST_MAC, CLIENT_MAC, &[(ETH_P_8021Q, 10)], ETH_P_ARP);
    arp_in_vlan.extend_from_slice(&arp_request()[14..]);
    let mut small_padded_udp = udp_frame(53, &[1, 2]);
    small_padded_udp.resize(60, 0);

    vec![
        (
            "DHCPDISCOVER, broadcast, UDP 68->67",
            discover_frame.clone(),
            Counter::Dhcp,
        ),
        (
            "DHCPREQUEST, broadcast",
            client_frame(&[], &[], &request()),
            Counter::Dhcp,
        ),
        (
            "relayed DISCOVER, giaddr set, UDP 67->67 unicast",
            relayed_frame(),
            Counter::Dhcp,
        ),
        (
            "VLAN-tagged (802.1Q) DISCOVER",
            client_frame(&[(ETH_P_8021Q, 100)], &[], &discover()),
            Counter::Dhcp,
        ),
        (
            "IPv4 with options (IHL 6, router alert)",
            client_frame(&[], &[0x94, 0x04, 0, 0], &discover()),
            Counter::Dhcp,
        ),
        (
            "IPv4 with maximal options (IHL 15)",
            client_frame(&[], &[1; 40], &discover()),
            Counter::Dhcp,
        ),
        (
            "VLAN-tagged and IPv4 options (IHL 15)",
            client_frame(&[(ETH_P_8021Q, 4094)], &[1; 40], &request()),
            Counter::Dhcp,
        ),
        (
            "DISCOVER with Ethernet trailer padding",
            padded,
            Counter::Dhcp,
        ),
        (
            "first fragment (offset 0, MF) of UDP/67: the kernel reassembles",
            first_fragment,
            Counter::Fragment,
        ),
        (
            "non-first fragment of UDP/67",
            second_fragment,
            Counter::Fragment,
        ),
        (
            "802.1Q first fragment of UDP/67",
            vlan_first_fragment,
            Counter::Fragment,
        ),
        (
            "first fragment to our MAC and IP",
            addressed(SERVER_MAC, SERVER_IP, &[], IP_MF, 67),
            Counter::Fragment,
        ),
        (
            "DF set, offset 0: whole datagram, not a fragment",
            addressed(SERVER_MAC, SERVER_IP, &[], IP_DF, 67),
            Counter::Dhcp,
        ),
        (
            "our MAC + our IP (a unicast renewal)",
            to_server_port(SERVER_MAC, SERVER_IP, &[]),
            Counter::Dhcp,
        ),
        (
            "our MAC + our second address",
            to_server_port(SERVER_MAC, SERVER_IP_2, &[]),
            Counter::Dhcp,
        ),
        (
            "our MAC + broadcast IP",
            to_server_port(SERVER_MAC, [255; 4], &[]),
            Counter::Dhcp,
        ),
        (
            "broadcast MAC + our IP",
            to_server_port(BROADCAST_MAC, SERVER_IP, &[]),
            Counter::Dhcp,
        ),
        (
            "unicast to another MAC, to our IP",
            to_server_port(OTHER_MAC, SERVER_IP, &[]),
            Counter::NotOurs,
        ),
        (
            "unicast to another MAC and another server's IP (promiscuous)",
            to_server_port(OTHER_MAC, OTHER_SERVER_IP, &[]),
            Counter::NotOurs,
        ),
        (
            "broadcast MAC, IP unicast to someone else",
            to_server_port(BROADCAST_MAC, OTHER_SERVER_IP, &[]),
            Counter::NotOurs,
        ),
        (
            "our MAC, IP unicast to someone else",
            to_server_port(SERVER_MAC, OTHER_SERVER_IP, &[]),
            Counter::NotOurs,
        ),
        (
            "our MAC, destination 0.0.0.0 (the unused slots' value)",
            to_server_port(SERVER_MAC, [0; 4], &[]),
            Counter::NotOurs,
        ),
        (
            "subnet-directed broadcast 192.0.2.255 (not steered)",
            to_server_port(BROADCAST_MAC, [192, 0, 2, 255], &[]),
            Counter::NotOurs,
        ),
        (
            "multicast MAC, broadcast IP",
            to_server_port(MULTICAST_MAC, [255; 4], &[]),
            Counter::NotOurs,
        ),
        (
            "802.1Q: our MAC + our IP",
            to_server_port(SERVER_MAC, SERVER_IP, &vlan),
            Counter::Dhcp,
        ),
        (
            "802.1Q: unicast to another MAC",
            to_server_port(OTHER_MAC, SERVER_IP, &vlan),
            Counter::NotOurs,
        ),
        (
            "802.1Q: broadcast MAC, IP unicast to someone else",
            to_server_port(BROADCAST_MAC, OTHER_SERVER_IP, &vlan),
            Counter::NotOurs,
        ),
        (
            "another MAC, to UDP 53 (not the steered port)",
            {
                let mut f = udp_frame(53, &[0; 12]);
                f[..6].copy_from_slice(&OTHER_MAC);
                f
            },
            Counter::Passed,
        ),
        (
            "non-DHCP UDP (port 53)",
            udp_frame(53, &[0; 12]),
            Counter::Passed,
        ),
        (
            "DHCP client port (UDP 68)",
            udp_frame(68, &discover()),
            Counter::Passed,
        ),
        (
            "short UDP padded to 60 bytes",
            small_padded_udp,
            Counter::Passed,
        ),
        ("TCP SYN to port 67", tcp_syn_to_67(), Counter::Passed),
        ("ARP request", arp_request(), Counter::Passed),
        ("ARP in 802.1Q", arp_in_vlan, Counter::Passed),
        (
            "two 802.1Q tags (only one is parsed)",
            client_frame(&[(ETH_P_8021Q, 1), (ETH_P_8021Q, 2)], &[], &discover()),
            Counter::Passed,
        ),
        (
            "802.1ad outer tag (not parsed)",
            client_frame(&[(ETH_P_8021AD, 1), (ETH_P_8021Q, 2)], &[], &discover()),
            Counter::Passed,
        ),
        (
            "truncated: Ethernet header only",
            eth(BROADCAST_MAC, CLIENT_MAC, &[], ETH_P_IP),
            Counter::Malformed,
        ),
        (
            "truncated: VLAN tag cut",
            eth(BROADCAST_MAC, CLIENT_MAC, &[], ETH_P_8021Q)
                .into_iter()
                .chain([0, 100])
                .collect(),
            Counter::Malformed,
        ),
        (
            "truncated: IPv4 header cut",
            discover_frame[..14 + 12].to_vec(),
            Counter::Malformed,
        ),
        (
            "truncated: UDP header cut",
            discover_frame[..14 + 20 + 4].to_vec(),
            Counter::Malformed,
        ),
        (
            "truncated: IPv4 options cut",
            client_frame(&[], &[1; 40], &discover())[..14 + 40].to_vec(),
            Counter::Malformed,
        ),
        (
            "truncated: frame shorter than IPv4 total length",
            discover_frame[..discover_frame.len() - 10].to_vec(),
            Counter::Malformed,
        ),
        ("IPv4 IHL 4", ihl_below_5, Counter::Malformed),
        (
            "IPv4 version 6 in an IPv4 EtherType",
            version_6,
            Counter::Malformed,
        ),
        (
            "IPv4 total length < header length",
            total_len_below_ihl,
            Counter::Malformed,
        ),
        (
            "IPv4 total length < IPv4 + UDP headers",
            total_len_below_udp,
            Counter::Malformed,
        ),
    ]
}

// ---------------------------------------------------------------- preconditions

/// Fails the test (never skips) unless it can really run.
fn require_root_and_object() {
    assert!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() } == 0,
        "this test loads an XDP program and needs root (run `cargo xtask test -p \
         irondhcp-integration --test xdp_fixtures` as root)"
    );
    assert!(
        !XDP_OBJECT.is_empty(),
        "the XDP program is not embedded in this build: run `cargo xtask build-ebpf` \
         (writes target/bpf/irondhcp-xdp.o), then rerun the test"
    );
}

// ---------------------------------------------------------------- tests

/// Runs every frame of `table` through `program`; returns what went wrong.
fn run_table(program: &XdpProgram, table: &[Fixture]) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, frame, counter) in table {
        let before = program.counters().expect("reading counters");
        let action = match program.test_run(frame) {
            Ok(action) => action,
            Err(error) => {
                failures.push(format!("{name}: test run failed: {error}"));
                continue;
            }
        };
        let after = program.counters().expect("reading counters");
        if action != XDP_PASS {
            failures.push(format!("{name}: action {action}, expected XDP_PASS (2)"));
        }
        let expected = bump(before, *counter);
        if after != expected {
            failures.push(format!(
                "{name}: expected {counter:?} to increase by 1; before {before:?}, after {after:?}"
            ));
        }
    }
    failures
}

/// The load generator's steering (see `bench/src/loadgen/mod.rs`,
/// `reply_steering`): as clients, replies to UDP/68 whatever the MAC and
/// address; as a relay, replies to UDP/67 at the relay's MAC and giaddr.
/// And a server that lists no address steers broadcasts only.
#[test]
fn load_generator_and_broadcast_only_steering_through_prog_test_run() {
    require_root_and_object();
    let clients = SteerConfig {
        port: 68,
        mac: None,
        ips: None,
    };
    let relay = SteerConfig {
        port: 67,
        mac: Some(RELAY_MAC),
        ips: Some(vec![RELAY_GIADDR.into(), RELAY_IP.into()]),
    };
    let broadcast_only = SteerConfig::server(SERVER_MAC, &[]);
    let cases: Vec<(&str, SteerConfig, Vec<Fixture>)> = vec![
        (
            "clients (UDP/68, any MAC, any IP)",
            clients,
            vec![
                (
                    "OFFER unicast to a simulated client's MAC and yiaddr",
                    reply_to(CLIENT_MAC, YIADDR, 68, 0),
                    Counter::Dhcp,
                ),
                (
                    "OFFER to another simulated client",
                    reply_to(OTHER_MAC, [192, 0, 2, 11], 68, 0),
                    Counter::Dhcp,
                ),
                (
                    "broadcast OFFER",
                    reply_to(BROADCAST_MAC, [255; 4], 68, 0),
                    Counter::Dhcp,
                ),
                (
                    "reply to a relay (UDP/67): not this port",
                    reply_to(RELAY_MAC, RELAY_GIADDR, 67, 0),
                    Counter::Passed,
                ),
                (
                    "first fragment of a reply",
                    reply_to(CLIENT_MAC, YIADDR, 68, IP_MF),
                    Counter::Fragment,
                ),
            ],
        ),
        (
            "relay (UDP/67, relay MAC, giaddr and relay IP)",
            relay,
            vec![
                (
                    "reply to the relay's MAC and giaddr",
                    reply_to(RELAY_MAC, RELAY_GIADDR, 67, 0),
                    Counter::Dhcp,
                ),
                (
                    "reply to the relay's MAC and source address",
                    reply_to(RELAY_MAC, RELAY_IP, 67, 0),
                    Counter::Dhcp,
                ),
                (
                    "to the relay's MAC, another IP",
                    reply_to(RELAY_MAC, YIADDR, 67, 0),
                    Counter::NotOurs,
                ),
                (
                    "to another MAC, the giaddr",
                    reply_to(OTHER_MAC, RELAY_GIADDR, 67, 0),
                    Counter::NotOurs,
                ),
            ],
        ),
        (
            "server listing no address (broadcast IP only)",
            broadcast_only,
            vec![
                (
                    "broadcast DISCOVER",
                    client_frame(&[], &[], &discover()),
                    Counter::Dhcp,
                ),
                (
                    "our MAC, unicast IP",
                    to_server_port(SERVER_MAC, SERVER_IP, &[]),
                    Counter::NotOurs,
                ),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (what, steer, table) in &cases {
        let program = XdpProgram::load_unattached(steer)
            .unwrap_or_else(|e| panic!("loading the XDP program for {what}: {e}"));
        failures.extend(
            run_table(&program, table)
                .into_iter()
                .map(|f| format!("{what}: {f}")),
        );
    }
    assert!(
        failures.is_empty(),
        "{} fixtures failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );

    // A fifth address has no slot.
    let five: Vec<Ipv4Addr> = (1..=5).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect();
    assert_eq!(MAX_STEER_ADDRESSES, 4);
    assert!(matches!(
        XdpProgram::load_unattached(&SteerConfig::server(SERVER_MAC, &five)),
        Err(XdpError::TooManyAddresses { given: 5, max: 4 })
    ));
}

#[test]
fn fixture_table_through_prog_test_run() {
    require_root_and_object();
    let program = XdpProgram::load_unattached(&server_steering()).expect("loading the XDP program");
    assert_eq!(
        program.mode(),
        XdpMode::Auto,
        "unattached program reports Auto"
    );
    assert!(program.interface().is_none());
    assert!(program.program_fd().is_ok());

    let table = fixtures();
    let failures = run_table(&program, &table);
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n  {}",
        failures.len(),
        table.len(),
        failures.join("\n  ")
    );

    // The socket map takes AF_XDP sockets only, and only 64 queues.
    // SAFETY: plain socket(2) call; the fd is closed below.
    let udp_fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    assert!(udp_fd >= 0);
    let mut program = program;
    let refused = program.register_socket(0, udp_fd);
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(udp_fd) };
    assert!(
        matches!(refused, Err(XdpError::RegisterSocket { queue: 0, .. })),
        "a UDP socket must be refused by XSKS, got {refused:?}"
    );
    assert!(matches!(
        program.register_socket(64, 0),
        Err(XdpError::QueueOutOfRange { queue: 64, max: 64 })
    ));
}

static NETNS_SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace with a veth pair `veth0`/`veth1` (2 queues each), both
/// up; deleted (with its interfaces) on drop.
struct NetNs {
    name: String,
}

impl NetNs {
    fn new() -> Self {
        let name = format!(
            "irondhcp-t-{}-{}",
            std::process::id(),
            NETNS_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        // Native XDP on veth needs as many RX queues as the peer has TX
        // queues (ENOSPC otherwise), hence equal counts on both ends.
        ns.ip(&[
            "link",
            "add",
            "veth0",
            "numtxqueues",
            "2",
            "numrxqueues",
            "2",
            "type",
            "veth",
            "peer",
            "name",
            "veth1",
            "numtxqueues",
            "2",
            "numrxqueues",
            "2",
        ]);
        ns.ip(&["link", "set", "veth0", "up"]);
        ns.ip(&["link", "set", "veth1", "up"]);
        ns
    }

    /// Runs `ip -n NAME args…`, panicking on failure; returns stdout.
    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs `f` on a thread that has entered this namespace (`setns(2)`
    /// affects only the calling thread; interface names and indexes, netlink
    /// and `bpf_link_create` all resolve in the thread's namespace).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
            // SAFETY: valid namespace fd; only this thread changes namespace.
            let ret = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(ret, 0, "setns({path}): {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running ip {args:?}: {e} (is iproute2 installed?)"));
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends `frame` out of `iface` through an AF_PACKET socket (calling
/// thread's namespace).
fn send_frame(iface: &str, frame: &[u8]) {
    let name = std::ffi::CString::new(iface).expect("interface name");
    // SAFETY: valid C string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(ifindex, 0, "no interface {iface}");
    // SAFETY: plain socket(2); closed below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(
        fd >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: zeroed sockaddr_ll is valid; fields set below.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = i32::try_from(ifindex).expect("ifindex");
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: buffer and address are valid for the given lengths.
    let sent = unsafe {
        libc::sendto(
            fd,
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    let error = std::io::Error::last_os_error();
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(fd) };
    assert_eq!(
        usize::try_from(sent).ok(),
        Some(frame.len()),
        "sendto on {iface}: {error}"
    );
}

#[test]
fn attach_native_to_veth_in_netns_and_detach_on_drop() {
    require_root_and_object();
    let ns = NetNs::new();

    ns.run(|| {
        assert!(matches!(
            XdpProgram::load("no-such-if0", XdpMode::Auto, &server_steering()),
            Err(XdpError::UnknownInterface(_))
        ));
    });

    for mode in [XdpMode::Native, XdpMode::Auto, XdpMode::Generic] {
        let program = ns.run(move || {
            XdpProgram::load("veth0", mode, &server_steering())
                .unwrap_or_else(|e| panic!("attaching in {mode} mode to veth0: {e}"))
        });
        let expected = if mode == XdpMode::Generic {
            XdpMode::Generic
        } else {
            XdpMode::Native // veth has native XDP
        };
        assert_eq!(program.mode(), expected, "requested {mode}");
        assert_eq!(program.interface(), Some("veth0"));
        let link = ns.ip(&["-d", "link", "show", "veth0"]);
        // `ip -d link` shows "xdp" or "xdpgeneric" among the flags and the
        // program on a "prog/xdp id …" line.
        let flag = if expected == XdpMode::Native {
            " xdp "
        } else {
            " xdpgeneric "
        };
        assert!(
            link.contains(flag) && link.contains("prog/xdp id") && link.contains("irondhcp_xdp"),
            "irondhcp_xdp not attached ({flag:?}) to veth0:\n{link}"
        );

        // A DHCP frame sent from the peer goes through the program: with no
        // socket registered it is counted as no_socket and passed on.
        let before = program.counters().expect("counters");
        ns.run(|| send_frame("veth1", &client_frame(&[], &[], &discover())));
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut after = program.counters().expect("counters");
        while after.no_socket == before.no_socket && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
            after = program.counters().expect("counters");
        }
        assert_eq!(
            after.no_socket,
            before.no_socket + 1,
            "the DHCP frame sent over veth1 was not seen by the program in {mode} mode"
        );
        assert_eq!(after.redirected, 0);

        // A DHCP frame to another MAC reaches the program too (veth does
        // not filter by MAC before XDP) and is left to the kernel.
        ns.run(|| send_frame("veth1", &to_server_port(OTHER_MAC, SERVER_IP, &[])));
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut later = program.counters().expect("counters");
        while later.not_ours == after.not_ours && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
            later = program.counters().expect("counters");
        }
        assert_eq!(
            (later.not_ours, later.no_socket),
            (after.not_ours + 1, after.no_socket),
            "the frame to another MAC was not counted as not ours in {mode} mode"
        );

        // Drop from inside the namespace (where it was attached), then check
        // the interface is free again.
        ns.run(move || drop(program));
        let link = ns.ip(&["-d", "link", "show", "veth0"]);
        assert!(
            !link.contains("prog/xdp"),
            "XDP still attached to veth0 after drop:\n{link}"
        );
    }
}
