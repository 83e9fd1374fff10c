//! Frame in, frame out: `handler::handle` for every kind of request the
//! fast path answers from the lease map (parse, subnet selection, map
//! lookup, reply build with software IPv4/UDP checksums), the hand-off of a
//! new client to the control plane, and `handler::build_decision_reply` for
//! the control plane's OFFER and ACK. The lease map covers the 65,536
//! addresses of the local /16, all leased.
//!
//! Reference figures (ns per frame, the median of criterion's samples),
//! measured 2026-11-22 00:42 UTC on an Intel(R) Xeon(R) Processor (`lscpu |
//! grep 'Model name'`; a 2-vCPU KVM guest shared with other jobs).
//! The last column is the range of the medians over three runs
//! (00:29, 00:37 and 00:42 UTC):
//!
//! | bench | ns/frame | frames/s per core | 3 runs, ns |
//! | --- | ---: | ---: | ---: |
//! | `handle/renew_ack` | 165.2 | 6.05 M | 159.2–165.2 |
//! | `handle/rebind_ack` | 163.4 | 6.12 M | 156.4–163.4 |
//! | `handle/init_reboot_ack` | 165.0 | 6.06 M | 158.8–165.0 |
//! | `handle/discover_known_offer` | 166.6 | 6.00 M | 158.7–166.6 |
//! | `handle/inform_ack` | 137.7 | 7.26 M | 131.7–137.7 |
//! | `handle/nak_wrong_network` | 109.2 | 9.16 M | 106.5–110.5 |
//! | `handle/release_event` | 67.1 | 14.9 M | 67.1–76.5 |
//! | `handle/discover_new_control` | 81.8 | 12.2 M | 81.8–95.4 |
//! | `build_decision_reply/offer` | 117.1 | 8.54 M | 116.5–117.1 |
//! | `build_decision_reply/ack` | 121.0 | 8.26 M | 117.7–121.0 |
//!
//! Where a renewal ACK goes (perf): ~27 % IPv4/UDP checksums
//! (`wire::checksum::udp_checksum`, `accumulate`), ~20 % `build_reply`,
//! ~9 % `memmove` (the largest share in `ClientKey::from_hw`, which
//! zero-fills and copies a 255-byte inline key on every request although
//! the ACK path only needs its hash), ~9 % parsing. None of the paths
//! allocates (checked in the set-up with a counting allocator).
//!
//! Reproduce: `cargo bench -p irondhcp-bench --bench handler`
//! (defaults in `support::criterion()`: 1 s warm-up, 3 s measurement).

mod support;

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dhcproto::v4::{self, DhcpOption as O, MessageType as T};
use irondhcp_fastpath::channel::{AllocDecision, AllocKind, FastEvent, MAX_FRAME};
use irondhcp_fastpath::counters::WorkerCounters;
use irondhcp_fastpath::handler::{build_decision_reply, handle, HandlerCtx, Verdict};
use irondhcp_fastpath::wire::msg_type::{ACK, NAK, OFFER};
use support::*;

/// The test client's lease.
const A: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 150);
/// An address a client INFORMs from.
const INFORMER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);
/// Outside every configured subnet.
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 5);
/// What the control plane gives the new client.
const GRANTED: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 7);
const Z: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

/// The verdict a fixture must get, checked before it is measured.
enum Expect {
    /// A reply of this type with this yiaddr; `renewal` when it also
    /// carries the write-behind event of an extension.
    Reply {
        msg_type: u8,
        yiaddr: Ipv4Addr,
        renewal: bool,
    },
    /// RELEASE: an event, no reply.
    Released,
    /// Needs the control plane.
    Control(AllocKind),
}

struct Fixture {
    name: &'static str,
    frame: Vec<u8>,
    expect: Expect,
}

fn ack(yiaddr: Ipv4Addr, renewal: bool) -> Expect {
    Expect::Reply {
        msg_type: ACK,
        yiaddr,
        renewal,
    }
}

/// A broadcast from the client that has no lease in the map.
fn new_client(t: T) -> v4::Message {
    with(msg_from(&NEW_CLIENT_MAC, t), typical_prl())
}

fn new_client_path() -> Path {
    Path {
        src_mac: NEW_CLIENT_MAC,
        ..Path::broadcast()
    }
}

fn fixtures() -> Vec<Fixture> {
    let request = || with(msg(T::Request), typical_prl());
    let fx = |name, m: v4::Message, p: Path, expect| Fixture {
        name,
        frame: frame(&m, &p),
        expect,
    };
    vec![
        fx(
            "renew_ack",
            no_bcast(ci(request(), A)),
            Path::unicast(A, CLIENT_MAC),
            ack(A, true),
        ),
        fx(
            "rebind_ack",
            ci(request(), A),
            Path::broadcast_from(A),
            ack(A, true),
        ),
        fx(
            "init_reboot_ack",
            with(request(), O::RequestedIpAddress(A)),
            Path::broadcast(),
            ack(A, true),
        ),
        fx(
            "discover_known_offer",
            with(msg(T::Discover), typical_prl()),
            Path::broadcast(),
            Expect::Reply {
                msg_type: OFFER,
                yiaddr: A,
                renewal: false,
            },
        ),
        fx(
            "inform_ack",
            no_bcast(ci(with(msg(T::Inform), typical_prl()), INFORMER)),
            Path::unicast(INFORMER, CLIENT_MAC),
            ack(Z, false),
        ),
        fx(
            "nak_wrong_network",
            with(request(), O::RequestedIpAddress(OUTSIDE)),
            Path::broadcast(),
            Expect::Reply {
                msg_type: NAK,
                yiaddr: Z,
                renewal: false,
            },
        ),
        fx(
            "release_event",
            no_bcast(ci(with(msg(T::Release), O::ServerIdentifier(SERVER_IP)), A)),
            Path::unicast(A, CLIENT_MAC),
            Expect::Released,
        ),
        fx(
            "discover_new_control",
            new_client(T::Discover),
            new_client_path(),
            Expect::Control(AllocKind::Discover),
        ),
    ]
}

/// Panics unless `v` (with the reply in `tx`) is what `f` expects.
fn check(f: &Fixture, v: &Verdict, tx: &[u8]) {
    let name = f.name;
    match (&f.expect, v) {
        (
            Expect::Reply {
                msg_type,
                yiaddr,
                renewal,
            },
            Verdict::Reply {
                len,
                msg_type: sent,
                event,
            },
        ) => {
            assert_eq!(sent, msg_type, "{name}: message type");
            match event {
                Some(FastEvent::Renewed { addr, expiry, .. }) if *renewal => {
                    assert_eq!(addr, yiaddr, "{name}: renewed address");
                    assert_eq!(*expiry, NOW + 3600, "{name}: renewed expiry");
                }
                None if !renewal => {}
                other => panic!("{name}: unexpected event {other:?}"),
            }
            let reply = decode_reply(&tx[..*len]);
            assert_eq!(
                reply.opts().msg_type().map(u8::from),
                Some(*msg_type),
                "{name}: decoded type"
            );
            assert_eq!(reply.yiaddr(), *yiaddr, "{name}: yiaddr");
            assert_eq!(reply.xid(), XID, "{name}: xid");
        }
        (Expect::Released, Verdict::Event(FastEvent::Released { addr, .. })) => {
            assert_eq!(*addr, A, "{name}: released address");
        }
        (Expect::Control(kind), Verdict::Control(meta)) => {
            assert_eq!(meta.kind, *kind, "{name}: control kind");
        }
        (_, v) => panic!("{name}: unexpected verdict {v:?}"),
    }
}

fn handler(c: &mut Criterion) {
    let cfg = config();
    let leases = populated_local_map(&CLIENT_MAC, A);
    let counters = WorkerCounters::default();
    let ctx = HandlerCtx {
        cfg: &cfg,
        leases: &leases,
        counters: &counters,
    };
    let mut tx = vec![0u8; MAX_FRAME];

    let mut g = c.benchmark_group("handle");
    g.throughput(Throughput::Elements(1));
    for f in &fixtures() {
        let v = handle(&ctx, &f.frame, NOW, &mut tx);
        check(f, &v, &tx);
        let allocs = allocations(|| {
            for _ in 0..1000 {
                sink(handle(&ctx, &f.frame, NOW, &mut tx));
            }
        });
        assert_eq!(allocs, 0, "{}: handle allocates", f.name);
        g.bench_function(f.name, |b| {
            b.iter(|| sink(handle(&ctx, black_box(&f.frame), NOW, &mut tx)));
        });
    }
    g.finish();

    // The control plane's decisions for the new client, built into the
    // reply to the request frame the worker kept.
    let discover = frame(&new_client(T::Discover), &new_client_path());
    let selecting = frame(
        &with(
            with(new_client(T::Request), O::ServerIdentifier(SERVER_IP)),
            O::RequestedIpAddress(GRANTED),
        ),
        &new_client_path(),
    );
    let decisions = [("offer", discover, OFFER), ("ack", selecting, ACK)];
    let mut g = c.benchmark_group("build_decision_reply");
    g.throughput(Throughput::Elements(1));
    for (name, request, t) in &decisions {
        let decision = |t| {
            let (addr, lease_secs) = (GRANTED, 3600);
            if t == OFFER {
                AllocDecision::Offer { addr, lease_secs }
            } else {
                AllocDecision::Ack { addr, lease_secs }
            }
        };
        let (len, sent) = build_decision_reply(&ctx, request, decision(*t), &mut tx)
            .unwrap_or_else(|e| panic!("{name}: dropped ({e:?})"));
        assert_eq!(sent, *t, "{name}: message type");
        let reply = decode_reply(&tx[..len]);
        assert_eq!(reply.yiaddr(), GRANTED, "{name}: yiaddr");
        assert_eq!(reply.chaddr()[..6], NEW_CLIENT_MAC, "{name}: chaddr");
        let d = decision(*t);
        let allocs = allocations(|| {
            for _ in 0..1000 {
                sink(build_decision_reply(&ctx, request, d, &mut tx));
            }
        });
        assert_eq!(allocs, 0, "{name}: build_decision_reply allocates");
        g.bench_function(*name, |b| {
            b.iter(|| {
                sink(build_decision_reply(
                    &ctx,
                    black_box(request),
                    black_box(d),
                    &mut tx,
                ))
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = handler
}
criterion_main!(benches);
