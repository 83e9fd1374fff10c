//! Parsing one request frame: `wire::parse_frame` (Ethernet/802.1Q/IPv4/UDP)
//! then `wire::parse_dhcp` (BOOTP header and the one-pass option index), as
//! the handler does for every packet.
//!
//! Reference figures (ns per frame, the median of criterion's samples),
//! measured 2026-11-22 00:42 UTC on an Intel(R) Xeon(R) Processor (`lscpu |
//! grep 'Model name'`; a 2-vCPU KVM guest shared with other jobs).
//! The last column is the range of the medians over three runs
//! (00:29, 00:37 and 00:42 UTC):
//!
//! | bench | ns/frame | frames/s per core | 3 runs, ns |
//! | --- | ---: | ---: | ---: |
//! | `wire_parse/discover` | 26.4 | 37.9 M | 25.9–27.9 |
//! | `wire_parse/request_many_options` | 35.6 | 28.1 M | 34.7–35.7 |
//! | `wire_parse/relayed_option82` | 30.4 | 32.9 M | 29.0–30.4 |
//! | `wire_parse/vlan_tagged_discover` | 27.3 | 36.6 M | 26.5–27.3 |
//!
//! Reproduce: `cargo bench -p irondhcp-bench --bench wire`
//! (defaults in `support::criterion()`: 1 s warm-up, 3 s measurement).

mod support;

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dhcproto::v4::{DhcpOption as O, MessageType as T, OptionCode, UnknownOption};
use irondhcp_fastpath::wire::{msg_type, parse_dhcp, parse_frame, DhcpMessage, FrameInfo};
use support::*;

/// What parsing a fixture must yield, checked before it is measured.
struct Expect {
    msg_type: u8,
    vlan_tci: Option<u16>,
    giaddr: Ipv4Addr,
    /// Whether option 82 is present, and its link-selection sub-option.
    relay_info: bool,
    link_selection: Option<Ipv4Addr>,
    client_id: bool,
    prl_len: usize,
}

struct Fixture {
    name: &'static str,
    frame: Vec<u8>,
    expect: Expect,
}

const Z: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

fn fixtures() -> Vec<Fixture> {
    let a = Ipv4Addr::new(10, 0, 1, 150);
    let link = Ipv4Addr::new(10, 1, 0, 0);
    let long_prl: Vec<u8> = vec![
        1, 121, 33, 3, 6, 12, 15, 26, 28, 42, 44, 46, 47, 51, 58, 59, 119, 252, 2, 4, 7, 40, 41,
        66, 67, 69, 70, 150,
    ];
    let request_many = [
        O::ServerIdentifier(SERVER_IP),
        O::RequestedIpAddress(a),
        O::ClientIdentifier(vec![0xff, 0x00, 0x00, 0x00, 0x07, 0x00, 0x01, 0x02, 0x03]),
        O::Hostname("host-0042.rack-7.example.net".to_string()),
        O::MaxMessageSize(1500),
        O::ClassIdentifier(b"MSFT 5.0 android-dhcp-13".to_vec()),
        O::AddressLeaseTime(86_400),
        prl(&long_prl),
        // Client FQDN (81) and an unknown vendor option: skipped by the
        // parser, but walked.
        O::Unknown(UnknownOption::new(
            OptionCode::from(81),
            b"\x01\x00\x00host-0042".to_vec(),
        )),
        O::Unknown(UnknownOption::new(OptionCode::from(224), vec![0x5a; 32])),
    ]
    .into_iter()
    .fold(msg(T::Request), with);

    vec![
        Fixture {
            name: "discover",
            frame: frame(&with(msg(T::Discover), typical_prl()), &Path::broadcast()),
            expect: Expect {
                msg_type: msg_type::DISCOVER,
                vlan_tci: None,
                giaddr: Z,
                relay_info: false,
                link_selection: None,
                client_id: false,
                prl_len: 13,
            },
        },
        Fixture {
            name: "request_many_options",
            frame: frame(&request_many, &Path::broadcast()),
            expect: Expect {
                msg_type: msg_type::REQUEST,
                vlan_tci: None,
                giaddr: Z,
                relay_info: false,
                link_selection: None,
                client_id: true,
                prl_len: long_prl.len(),
            },
        },
        Fixture {
            name: "relayed_option82",
            frame: frame(
                &gi(
                    with(
                        with(msg(T::Discover), typical_prl()),
                        relay_info(Some(link)),
                    ),
                    RELAY_IP,
                ),
                &Path::relayed(),
            ),
            expect: Expect {
                msg_type: msg_type::DISCOVER,
                vlan_tci: None,
                giaddr: RELAY_IP,
                relay_info: true,
                link_selection: Some(link),
                client_id: false,
                prl_len: 13,
            },
        },
        Fixture {
            name: "vlan_tagged_discover",
            frame: frame(
                &with(msg(T::Discover), typical_prl()),
                &Path::broadcast().vlan(0x2064),
            ),
            expect: Expect {
                msg_type: msg_type::DISCOVER,
                vlan_tci: Some(0x2064),
                giaddr: Z,
                relay_info: false,
                link_selection: None,
                client_id: false,
                prl_len: 13,
            },
        },
    ]
}

/// What the handler does first with every frame.
#[inline]
fn parse(frame: &[u8]) -> Option<(FrameInfo, DhcpMessage<'_>)> {
    let fi = parse_frame(frame).ok()?;
    let msg = parse_dhcp(fi.payload(frame)?).ok()?;
    Some((fi, msg))
}

fn check(f: &Fixture) {
    let (fi, m) = parse(&f.frame).unwrap_or_else(|| panic!("{}: does not parse", f.name));
    let e = &f.expect;
    let o = &m.opts;
    assert_eq!(o.msg_type, e.msg_type, "{}: message type", f.name);
    assert_eq!(fi.vlan_tci, e.vlan_tci, "{}: vlan", f.name);
    assert_eq!(m.giaddr, e.giaddr, "{}: giaddr", f.name);
    assert_eq!(o.relay_agent_info.is_some(), e.relay_info, "{}: 82", f.name);
    assert_eq!(o.link_selection, e.link_selection, "{}: link sel", f.name);
    assert_eq!(o.client_id.is_some(), e.client_id, "{}: 61", f.name);
    assert_eq!(
        o.param_request_list.map_or(0, <[u8]>::len),
        e.prl_len,
        "{}: 55",
        f.name
    );
    assert_eq!(m.mac(), CLIENT_MAC, "{}: chaddr", f.name);
    let allocs = allocations(|| {
        for _ in 0..1000 {
            sink(parse(&f.frame));
        }
    });
    assert_eq!(allocs, 0, "{}: parsing allocates", f.name);
}

fn wire(c: &mut Criterion) {
    let fixtures = fixtures();
    let mut g = c.benchmark_group("wire_parse");
    g.throughput(Throughput::Elements(1));
    for f in &fixtures {
        check(f);
        g.bench_function(f.name, |b| {
            b.iter(|| sink(parse(black_box(&f.frame))));
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = wire
}
criterion_main!(benches);
